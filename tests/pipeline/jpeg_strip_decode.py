#!/usr/bin/python3
"""Strip-parallel decoding of huge sequential JPEGs (with restart markers,
or without, whose strips speculative decoding finds) gives exactly the
pixels of a whole-image decode.

usage: jpeg_strip_decode.py IMGPAR JPEG_MAKE [--threads-only]

--threads-only leaves out the procs executor and keeps the run short (for
ThreadSanitizer builds): five files, -j1 against --threads -j4.

The files are made by libjpeg directly (JPEG_MAKE, tests/pipeline/jpeg_make.c)
in every chroma layout and restart interval that matters, and by imgpar's own
strip encoder. The test lowers the strip threshold (IMGPAR_TEST_PNG_STRIP_MIN)
so that images of about a megapixel count as huge. For each file it checks:
- `imgpar --no-filter --format png` at -j1 and at several -j and strategies
  writes exactly the pixels Pillow decodes (an independent libjpeg-turbo
  decode with the same defaults), and the same bytes at every -j;
- --stats says the image was decoded by strips exactly when it should be:
  -j > 1 and a sequential file with a restart interval of whole MCU rows
  or none (not progressive, not an interval that ends inside an MCU row,
  not small);
- the default chain and --jpeg-luma write the same bytes at -j1 and -j4;
- a damaged file (an RST marker out of order, bad entropy data, truncation)
  gets the same exit code, error line and output at -j4 as at -j1.
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from striputil import FAILS, STRIPS_LINE, check, photo_like, read_out, run  # noqa: E402

def write_ppm(path, arr):
    with open(path, "wb") as f:
        f.write(b"P6\n%d %d\n255\n" % (arr.shape[1], arr.shape[0]))
        f.write(arr.tobytes())


def error_lines(stderr):
    return [l for l in stderr.splitlines() if "error" in l.lower() or "fail" in l.lower()]


def main():
    imgpar, jpeg_make = sys.argv[1:3]
    tmp = tempfile.mkdtemp(prefix="imgpar-jsd-")
    env = dict(os.environ, IMGPAR_TEST_PNG_STRIP_MIN="100000")
    env.pop("IMGPAR_PNG_FAST", None)

    # name: (width, height, sampling, restart, progressive, decoded by strips)
    cases = {
        "c420_r1": (1003, 917, "420", "r1", False, True),
        "c420_r3": (1003, 917, "420", "r3", False, True),
        "c420_rowmcus": (1003, 917, "420", "m%d" % (2 * ((1003 + 15) // 16)), False, True),
        "c420_r8": (1003, 1917, "420", "r8", False, True),
        "c422_r2": (998, 601, "422", "r2", False, True),
        "c440_r5": (1201, 1100, "440", "r5", False, True),
        "c440_r1": (777, 555, "440", "r1", False, True),
        "c444_r1": (640, 480, "444", "r1", False, True),
        "gray_r2": (1200, 700, "gray", "r2", False, True),
        "c420_m7": (1003, 917, "420", "m7", False, False),
        "c420_norst": (1003, 917, "420", "0", False, True),
        "c422_norst": (998, 601, "422", "0", False, True),
        "c444_norst": (640, 480, "444", "0", False, True),
        "gray_norst": (1200, 700, "gray", "0", False, True),
        "c420_prog": (1003, 917, "420", "r1", True, False),
        "c420_small": (200, 150, "420", "r1", False, False),
    }
    files = {}
    for i, (name, (w, h, samp, rst, prog, _)) in enumerate(cases.items()):
        ppm = os.path.join(tmp, name + ".ppm")
        write_ppm(ppm, photo_like(w, h, i))
        jpg = os.path.join(tmp, "in", name + ".jpg")
        os.makedirs(os.path.dirname(jpg), exist_ok=True)
        subprocess.run([jpeg_make, ppm, jpg, samp, rst] + (["progressive"] if prog else []), check=True)
        files[name] = jpg
    # imgpar's own strip encoder (restart markers at its strip boundaries).
    own = os.path.join(tmp, "own")
    write_ppm(os.path.join(tmp, "own.ppm"), photo_like(1500, 1100, 99))
    run(imgpar, ["-q", "--no-filter", "--format", "jpg", os.path.join(tmp, "own.ppm"), own], env, 0)
    check(b"\xff\xdd" in open(os.path.join(own, "own.jpg"), "rb").read(), "imgpar's strip JPEG has no DRI")
    files["own"] = os.path.join(own, "own.jpg")
    cases["own"] = (1500, 1100, "420", "own", False, True)

    configs = [["-j", "1"], ["--threads", "-j", "2"], ["--threads", "-j", "8"], ["--procs", "-j", "3"],
               ["--threads", "-j", "4", "--split", "strips"]]
    threads_only = "--threads-only" in sys.argv
    if threads_only:
        configs = [["-j", "1"], ["--threads", "-j", "4"]]
        checked = {n: files[n] for n in ("c420_r8", "c422_r2", "gray_r2", "own", "c420_norst")}
    else:
        checked = files
    stripped = 0
    for name, jpg in checked.items():
        expect = cases[name][5]
        ref = np.asarray(Image.open(jpg))
        first = None
        for k, cfg in enumerate(configs):
            out = os.path.join(tmp, "o", name, str(k))
            p = run(imgpar, cfg + ["--stats", "--no-filter", "--format", "png", jpg, out], env, 0)
            got = read_out(out) if os.path.isdir(out) else {}
            check(list(got) == [name + ".png"], "%s %s: outputs %s" % (name, cfg, list(got)))
            if not got:
                continue
            px = np.asarray(Image.open(os.path.join(out, name + ".png")))
            check(px.shape == ref.shape and (px == ref).all(),
                  "%s %s: pixels differ from Pillow's decode (%s)" % (
                      name, cfg, "shape %s vs %s" % (px.shape, ref.shape) if px.shape != ref.shape
                      else "%d values" % int((px != ref).sum())))
            if first is None:
                first = got
            check(got == first, "%s %s: output bytes differ from -j1" % (name, cfg))
            want = expect and cfg[-1] != "1" and cfg[1] != "1"
            said = STRIPS_LINE in p.stderr
            check(said == want, "%s %s: decoded by strips: %s, expected %s" % (name, cfg, said, want))
            stripped += said

    # The default chain (gray + blur) and --jpeg-luma: -j4 writes -j1's bytes.
    for name in ("c420_r1", "c422_r2", "gray_r2", "own")[2 if threads_only else 0:]:
        for extra in ([], ["--jpeg-luma"], ["--blur", "1.5"])[:2 if threads_only else 3]:
            outs = []
            for j in ("1", "4"):
                out = os.path.join(tmp, "chain", name + "".join(extra), j)
                p = run(imgpar, ["-j", j, "--stats"] + (["--threads"] if threads_only else []) + extra +
                        [files[name], out], env, 0)
                if j == "4":
                    check(STRIPS_LINE in p.stderr, "%s %s -j4: not decoded by strips" % (name, extra))
                outs.append(read_out(out))
            check(outs[0] == outs[1] and len(outs[0]) == 1, "%s %s: -j4 differs from -j1" % (name, extra))

    # Damaged files: the same outcome at -j4 as at -j1.
    data = open(files["c420_r1"], "rb").read()
    scan = data.index(b"\xff\xda")
    rst2 = data.index(b"\xff\xd2", scan)
    mid = (scan + len(data)) // 2
    damaged = {
        "rst_order": data[:rst2 + 1] + b"\xd5" + data[rst2 + 2:],
        "entropy": data[:mid] + bytes(b ^ 0x5A for b in data[mid:mid + 40]) + data[mid + 40:],
        "truncated": data[:int(len(data) * 0.6)],
        "no_eoi": data[:-2],
    }
    # The same damage without restart markers (speculative decoding finds
    # the strips of the intact part; the damaged strip declines).
    data = open(files["c420_norst"], "rb").read()
    scan = data.index(b"\xff\xda")
    mid = (scan + len(data)) // 2
    damaged.update({
        "norst_entropy": data[:mid] + bytes(b ^ 0x5A for b in data[mid:mid + 40]) + data[mid + 40:],
        "norst_marker": data[:mid] + b"\xff\xd3" + data[mid + 2:],
        "norst_truncated": data[:int(len(data) * 0.6)],
        "norst_tail": data[:-2] + b"\x00\x00\xff\xd9",
        "norst_no_eoi": data[:-2],
    })
    for name, blob in damaged.items():
        path = os.path.join(tmp, "bad", name + ".jpg")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        open(path, "wb").write(blob)
        for extra in ([], ["--allow-truncated"]):
            res = []
            for j in ("1", "4"):
                out = os.path.join(tmp, "bado", name + "".join(extra), j)
                p = run(imgpar, ["-j", j, "--no-filter", "--format", "png"] + (["--threads"] if threads_only else []) +
                        extra + [path, out], env)
                res.append((p.returncode, error_lines(p.stderr), read_out(out) if os.path.isdir(out) else {}))
            check(res[0] == res[1], "%s %s: -j1 gives %s, -j4 %s" % (
                name, extra, res[0][:2], res[1][:2]))
    if stripped < (4 if threads_only else 20):
        check(False, "only %d runs decoded by strips: the test tested too little" % stripped)
    subprocess.run(["rm", "-rf", tmp])
    if FAILS:
        sys.exit("%d failures" % len(FAILS))
    print("ok: %d files, %d strip-decoded runs, pixels equal to Pillow's decode" % (len(checked), stripped))


if __name__ == "__main__":
    main()
