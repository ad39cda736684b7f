#!/usr/bin/python3
"""Runs one workload with imgpar and every peer installed; see peers.sh.

Workload: each input to grayscale (Rec.601 weights: 0.299 R + 0.587 G + 0.114 B,
on the stored, gamma-encoded values) then a Gaussian blur of sigma 2, one
output per input with the input's name and format: JPEG quality 90, PNG
zlib level 6 with adaptive row filters (libpng's default). Each tool is
timed as a user would run it (process start-up and pools included), best of
--repeat runs, into a fresh output directory, with the CPU time (user +
system) of everything it started, the lowest of the runs: on a machine that
other work keeps busy, CPU time is the steadier figure; the outputs of its last run
are compared pixel by pixel with imgpar's (the gray channel: mean and max
absolute difference over every pixel of every image). A peer that is not
installed gets a row saying so.

usage: peers.py DIR [--jobs 1,2] [--repeat 3] [--imgpar PATH] [--out PREFIX]
       peers.py --worker pillow|opencv N OUTDIR FILE...   (internal)
"""
import argparse
import csv
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# The Python that runs the Pillow and OpenCV pools (IMGPAR_PEERS_PYTHON overrides it).
PY = os.environ.get("IMGPAR_PEERS_PYTHON", "/usr/bin/python3")
IM_CONVERT = "/usr/bin/convert-im6.q16"   # not /usr/local/bin/convert or GraphicsMagick's convert


def is_jpeg(path):
    return path.lower().endswith((".jpg", ".jpeg"))


# ---- Pool workers (run in a child python, timed from outside) ----

def _pillow_one(args):
    from PIL import Image, ImageFilter
    path, outdir = args
    im = Image.open(path)
    alpha = im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)
    im = im.convert("LA" if alpha else "L")
    # Pillow's GaussianBlur(radius) takes sigma and approximates the Gaussian
    # with three box blurs.
    im = im.filter(ImageFilter.GaussianBlur(2))
    out = os.path.join(outdir, os.path.basename(path))
    if is_jpeg(path):
        im.save(out, quality=90)
    else:
        im.save(out, compress_level=6)


def _opencv_init():
    import cv2
    cv2.setNumThreads(1)


def _opencv_one(args):
    import cv2
    path, outdir = args
    im = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    alpha = None
    if im.ndim == 3 and im.shape[2] == 4:
        gray = cv2.cvtColor(im, cv2.COLOR_BGRA2GRAY)
        alpha = im[:, :, 3]
    elif im.ndim == 3:
        gray = cv2.cvtColor(im, cv2.COLOR_BGR2GRAY)
    else:
        gray = im
    # 13x13 = radius ceil(3 sigma) = 6, as imgpar; reflect-101 edges, as imgpar.
    out_im = cv2.GaussianBlur(gray, (13, 13), 2, borderType=cv2.BORDER_REFLECT_101)
    if alpha is not None:
        # Alpha blurred on its own (not premultiplied); OpenCV cannot write
        # gray+alpha, so the result is written as BGRA.
        a = cv2.GaussianBlur(alpha, (13, 13), 2, borderType=cv2.BORDER_REFLECT_101)
        out_im = cv2.merge([out_im, out_im, out_im, a])
    out = os.path.join(outdir, os.path.basename(path))
    if is_jpeg(path):
        cv2.imwrite(out, out_im, [cv2.IMWRITE_JPEG_QUALITY, 90])
    else:
        cv2.imwrite(out, out_im, [cv2.IMWRITE_PNG_COMPRESSION, 6])


def worker_main(kind, n, outdir, files):
    from multiprocessing import Pool
    if kind == "opencv":
        _opencv_init()
        with Pool(n, initializer=_opencv_init) as pool:
            pool.map(_opencv_one, [(f, outdir) for f in files], chunksize=1)
    else:
        with Pool(n) as pool:
            pool.map(_pillow_one, [(f, outdir) for f in files], chunksize=1)


# ---- helper scripts for the command-line peers ----

VIPS_ONE = r"""#!/bin/sh
# vips_one.sh IN OUTDIR: Rec.601 gray (recomb), Gaussian sigma 2 out to
# radius 6 (min-ampl 0.01, as imgpar's ceil(3 sigma)), rounded, saved.
set -e
in=$1
out=$2/$(basename "$1")
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
case $(vipsheader -f bands "$in") in
1) m=@DIR@/m1.mat ;; 2) m=@DIR@/m2.mat ;; 3) m=@DIR@/m3.mat ;; *) m=@DIR@/m4.mat ;;
esac
case $in in *.[jJ][pP][gG]|*.[jJ][pP][eE][gG]) opt="[Q=90]" ;; *) opt="[compression=6,filter=all]" ;; esac
vips recomb "$in" "$t/g.v" "$m"
vips gaussblur "$t/g.v" "$t/b.v" 2 --min-ampl 0.01
vips round "$t/b.v" "$t/r.v" rint
vips cast "$t/r.v" "$out$opt" uchar
"""

VIPS_BW = r"""#!/bin/sh
# vips_bw.sh IN OUTDIR: the short vips route, two commands and no float
# temporaries: vips's own b-w conversion (not Rec.601 luma), then an
# integer Gaussian out to radius 6 written straight to the output.
set -e
in=$1
out=$2/$(basename "$1")
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
case $in in *.[jJ][pP][gG]|*.[jJ][pP][eE][gG]) opt="[Q=90]" ;; *) opt="[compression=6,filter=all]" ;; esac
vips colourspace "$in" "$t/g.v" b-w
vips gaussblur "$t/g.v" "$out$opt" 2 --min-ampl 0.01
"""

IM_ONE = r"""#!/bin/sh
# im_one.sh IN OUTDIR: ImageMagick 6, one thread (parallel runs N of these).
in=$1
out=$2/$(basename "$1")
case $in in *.[jJ][pP][gG]|*.[jJ][pP][eE][gG]) q=90 ;; *) q=65 ;; esac
exec env MAGICK_THREAD_LIMIT=1 @CONVERT@ "$in" -intensity Rec601Luma -colorspace gray -blur 6x2 -depth 8 -quality $q "$out"
"""

# vips matrix files: "width height scale offset", then the rows (without an
# explicit scale and offset vips 8.14 refuses some of them).
MATS = {
    "m1.mat": "1 1 1 0\n1\n",
    "m2.mat": "2 2 1 0\n1 0\n0 1\n",
    "m3.mat": "3 1 1 0\n0.299 0.587 0.114\n",
    "m4.mat": "4 2 1 0\n0.299 0.587 0.114 0\n0 0 0 1\n",
}


def have(prog):
    return shutil.which(prog) is not None


def have_py(module):
    return subprocess.run([PY, "-c", "import " + module], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode == 0


class Peer:
    def __init__(self, name, how, installed, command, note=""):
        self.name, self.how, self.installed, self.command, self.note = name, how, installed, command, note


def peers(imgpar, helpers):
    jpgs = lambda files: [f for f in files if is_jpeg(f)]
    pngs = lambda files: [f for f in files if not is_jpeg(f)]

    def imgpar_cmd(strategy):
        return lambda n, out, files: [[imgpar, "-j%d" % n, "--" + strategy, "--quality", "90",
                                       "--png-level", "6"] + files + [out]]

    def gm_cmd(n, out, files):
        # mogrify appends the input's path to -output-directory: run it in the
        # input directory with bare names (all files of DIR share it).
        cmds = []
        for group, q in ((jpgs(files), "90"), (pngs(files), "65")):
            if group:
                cmds.append(["sh", "-c", 'cd "$0" && exec "$@"', os.path.dirname(group[0]),
                             "env", "OMP_NUM_THREADS=%d" % n, "gm", "mogrify", "-output-directory", out,
                             "-colorspace", "gray", "-blur", "6x2", "-quality", q] +
                            [os.path.basename(f) for f in group])
        return cmds

    return [
        Peer("imgpar --threads", "one process, -j N", True, imgpar_cmd("threads")),
        Peer("imgpar --procs", "N forked workers, shared memory", True, imgpar_cmd("procs")),
        Peer("imgpar --serial", "filters in one thread (codecs still -j N)", True, imgpar_cmd("serial")),
        Peer("vips (process per file)", "parallel -j N, VIPS_CONCURRENCY=1", have("vips") and have("parallel"),
             lambda n, out, files: [["env", "VIPS_CONCURRENCY=1", "parallel", "-j", str(n),
                                     os.path.join(helpers, "vips_one.sh"), "{}", out, ":::"] + files],
             "4 vips commands per file (recomb, gaussblur, round, cast)"),
        Peer("vips (own threads)", "files in turn, VIPS_CONCURRENCY=N", have("vips"),
             lambda n, out, files: [["env", "VIPS_CONCURRENCY=%d" % n, "sh", "-c",
                                     'for f; do "$0" "$f" "%s" || exit 1; done' % out,
                                     os.path.join(helpers, "vips_one.sh")] + files],
             "same commands; concurrency inside each vips"),
        Peer("vips b-w (process per file)", "parallel -j N, VIPS_CONCURRENCY=1", have("vips") and have("parallel"),
             lambda n, out, files: [["env", "VIPS_CONCURRENCY=1", "parallel", "-j", str(n),
                                     os.path.join(helpers, "vips_bw.sh"), "{}", out, ":::"] + files],
             "2 vips commands per file (colourspace b-w, gaussblur): vips's gray, not Rec.601"),
        Peer("Pillow", "multiprocessing.Pool(N)", have_py("PIL"),
             lambda n, out, files: [[PY, os.path.abspath(__file__), "--worker", "pillow", str(n), out] + files],
             "GaussianBlur = 3 box blurs"),
        Peer("OpenCV", "multiprocessing.Pool(N), cv2.setNumThreads(1)", have_py("cv2"),
             lambda n, out, files: [[PY, os.path.abspath(__file__), "--worker", "opencv", str(n), out] + files],
             "13x13 kernel, reflect-101; gray+alpha written as BGRA"),
        Peer("GraphicsMagick mogrify", "one process, OMP_NUM_THREADS=N", have("gm"), gm_cmd,
             "-colorspace gray -blur 6x2"),
        Peer("ImageMagick convert", "parallel -j N, MAGICK_THREAD_LIMIT=1", os.path.exists(IM_CONVERT) and have("parallel"),
             lambda n, out, files: [["parallel", "-j", str(n), os.path.join(helpers, "im_one.sh"), "{}", out,
                                     ":::"] + files],
             "Rec601Luma, -blur 6x2, Q16"),
    ]


def gray_alpha(path):
    """The gray channel and the alpha channel (None without one) as int32 arrays."""
    import numpy as np
    from PIL import Image
    im = Image.open(path)
    if im.mode in ("LA", "RGBA", "PA") or (im.mode == "P" and "transparency" in im.info):
        g, a = im.convert("LA").split()
        return np.asarray(g, dtype=np.int32), np.asarray(a, dtype=np.int32)
    return np.asarray(im.convert("L") if im.mode != "L" else im, dtype=np.int32), None


def compare(ref_dir, out_dir, names):
    """Mean and max absolute difference against imgpar's outputs, over every
    pixel of every image: of the gray channel, or where either image has an
    alpha channel, of the visible value gray * alpha / 255 (what shows over
    black; an image without alpha counts as opaque). Returns (mean, max, why)."""
    total = 0
    pixels = 0
    worst = 0
    for name in names:
        ga, aa = gray_alpha(os.path.join(ref_dir, name))
        gb, ab = gray_alpha(os.path.join(out_dir, name))
        if ga.shape != gb.shape:
            return None, None, "size differs on " + name
        if aa is not None or ab is not None:
            ga = (ga * (255 if aa is None else aa) + 127) // 255
            gb = (gb * (255 if ab is None else ab) + 127) // 255
        d = abs(ga - gb)
        total += int(d.sum())
        pixels += d.size
        worst = max(worst, int(d.max()))
    return total / pixels, worst, ""


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_once(cmds):
    """Runs the commands in turn: (wall seconds, CPU seconds of everything they
    started, error lines or None)."""
    c0 = children_cpu()
    t0 = time.monotonic()
    for cmd in cmds:
        p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if p.returncode != 0:
            return None, None, (p.stderr.decode("utf-8", "replace").strip().splitlines()[-1:]
                                or ["exit %d" % p.returncode])
    return time.monotonic() - t0, children_cpu() - c0, None


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker_main(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5:])
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir")
    ap.add_argument("--jobs", default="1,2")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--imgpar", default=os.path.join(HERE, "..", "build", "imgpar"))
    ap.add_argument("--out", help="write PREFIX.md and PREFIX.csv (default: print only)")
    ap.add_argument("--only", help="comma-separated peer names to run (substring match)")
    a = ap.parse_args()

    files = sorted(os.path.join(a.dir, f) for f in os.listdir(a.dir)
                   if f.lower().endswith((".jpg", ".jpeg", ".png")))
    if not files:
        sys.exit("peers: no .jpg/.png files in %s" % a.dir)
    names = [os.path.basename(f) for f in files]
    imgpar = os.path.abspath(a.imgpar)
    if not os.access(imgpar, os.X_OK):
        sys.exit("peers: %s is not executable (build imgpar first, or pass --imgpar)" % imgpar)
    from PIL import Image
    mp = sum(Image.open(f).size[0] * Image.open(f).size[1] for f in files) / 1e6
    in_bytes = sum(os.path.getsize(f) for f in files)
    jobs = [int(x) for x in a.jobs.split(",")]

    work = tempfile.mkdtemp(prefix="imgpar-peers-")
    helpers = os.path.join(work, "helpers")
    os.makedirs(helpers)
    for name, text in MATS.items():
        with open(os.path.join(helpers, name), "w") as f:
            f.write(text)
    for name, text in (("vips_one.sh", VIPS_ONE), ("vips_bw.sh", VIPS_BW), ("im_one.sh", IM_ONE)):
        path = os.path.join(helpers, name)
        with open(path, "w") as f:
            f.write(text.replace("@DIR@", helpers).replace("@CONVERT@", IM_CONVERT))
        os.chmod(path, 0o755)

    rows = []
    load0 = os.getloadavg()[0]
    try:
        for n in jobs:
            ref_dir = None
            for peer in peers(imgpar, helpers):
                if a.only and not any(s in peer.name for s in a.only.split(",")):
                    continue
                row = {"tool": peer.name, "how": peer.how, "jobs": n, "best_s": "", "cpu_s": "", "images_per_s": "",
                       "mp_per_s": "", "out_bytes": "", "mean_abs_diff": "", "max_abs_diff": "",
                       "note": peer.note}
                rows.append(row)
                if not peer.installed:
                    row["note"] = "not installed"
                    print("%-26s j=%d  not installed" % (peer.name, n), file=sys.stderr)
                    continue
                best = None
                best_cpu = None
                err = None
                out = None
                for r in range(a.repeat):
                    out = os.path.join(work, "out-%d-%d" % (n, len(rows)))
                    shutil.rmtree(out, ignore_errors=True)
                    os.makedirs(out)
                    t, cpu, err = run_once(peer.command(n, out, files))
                    if t is None:
                        break
                    best = t if best is None or t < best else best
                    best_cpu = cpu if best_cpu is None or cpu < best_cpu else best_cpu
                if best is None:
                    row["note"] = "failed: %s" % (err[0] if err else "?")
                    print("%-26s j=%d  FAILED %s" % (peer.name, n, row["note"]), file=sys.stderr)
                    continue
                missing = [x for x in names if not os.path.exists(os.path.join(out, x))]
                row["best_s"] = "%.3f" % best
                row["cpu_s"] = "%.2f" % best_cpu
                row["images_per_s"] = "%.2f" % (len(files) / best)
                row["mp_per_s"] = "%.1f" % (mp / best)
                row["out_bytes"] = str(sum(os.path.getsize(os.path.join(out, x)) for x in names
                                           if os.path.exists(os.path.join(out, x))))
                if missing:
                    row["note"] = "%d outputs missing (%s)" % (len(missing), missing[0])
                elif ref_dir is None and peer.name.startswith("imgpar"):
                    ref_dir = out
                    row["mean_abs_diff"], row["max_abs_diff"] = "0 (reference)", "0"
                elif ref_dir:
                    mean, worst, why = compare(ref_dir, out, names)
                    if mean is None:
                        row["note"] = why
                    else:
                        row["mean_abs_diff"] = "%.3f" % mean
                        row["max_abs_diff"] = str(worst)
                print("%-26s j=%d  %7s s  %6s CPU s  %s" % (peer.name, n, row["best_s"], row["cpu_s"], row["note"]),
                      file=sys.stderr)
                if out != ref_dir:
                    shutil.rmtree(out, ignore_errors=True)
            if ref_dir:
                shutil.rmtree(ref_dir, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    head = ("%s: %d files (%d JPEG, %d PNG), %.1f MP, %.1f MB; best of %d; gray (Rec.601) + Gaussian sigma 2, "
            "JPEG q90 / PNG level 6; %d online CPUs, load average %.2f at the start, %.2f at the end\n"
            % (a.dir, len(files), sum(map(is_jpeg, files)), len(files) - sum(map(is_jpeg, files)), mp,
               in_bytes / 1e6, a.repeat, os.cpu_count() or 0, load0, os.getloadavg()[0]))
    cols = ["tool", "how", "jobs", "best_s", "cpu_s", "images_per_s", "mp_per_s", "out_bytes", "mean_abs_diff",
            "max_abs_diff", "note"]
    titles = ["tool", "how it runs", "j", "best s", "CPU s", "images/s", "MP/s", "output MB", "mean \\|diff\\|",
              "max \\|diff\\|", "notes"]
    md = [head, "| " + " | ".join(titles) + " |", "|" + "---|" * len(titles)]
    for r in rows:
        vals = [str(r[c]) for c in cols]
        if r["out_bytes"]:
            vals[7] = "%.2f" % (int(r["out_bytes"]) / 1e6)
        md.append("| " + " | ".join(vals) + " |")
    text = "\n".join(md) + "\n"
    sys.stdout.write(text)
    if a.out:
        with open(a.out + ".md", "w") as f:
            f.write(text)
        with open(a.out + ".csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=cols)
            w.writeheader()
            w.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
