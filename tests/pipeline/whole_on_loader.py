#!/usr/bin/python3
"""An image filtered whole stays with the thread that decoded it.

Usage: whole_on_loader.py IMGPAR SAMPLES_DIR GEN_SCRIPT [--threads-only]

- --stats counts exactly the images that went from decode to output file on
  their loader thread (under --procs the loader hands the filter to a worker
  process and waits for it): every image under --threads, --procs or
  --no-filter when there are at least as many --io-threads as -j; none under
  --serial, --split strips, fewer --io-threads than -j, or IMGPAR_INLINE=0;
  and all but the image bigger than its share of --mem (which is cut into
  strips for the filter workers).
- Whichever way an image goes, the output bytes equal those of the serial
  reference (--serial -j1), which hands every image on between threads.
- On that path too, a bad input or an output that cannot be written costs
  only its own file: one error line naming it, exit code 1, the other
  outputs complete and equal to the reference's, no temporary left.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from determinism import digest_dir  # noqa: E402

LINE = re.compile(r"from decode to output file on one thread, no hand-offs: (\d+) images?$", re.M)
failures = []


def check(ok, msg):
    if not ok:
        failures.append(msg)


def run(imgpar, args, inputs, outdir, env_extra=None, want_rc=0):
    env = dict(os.environ)
    env.pop("IMGPAR_INLINE", None)
    env.update(env_extra or {})
    p = subprocess.run([imgpar, "--stats", "-q"] + args + inputs + [outdir + "/"],
                       capture_output=True, text=True, timeout=300, env=env)
    if p.returncode != want_rc:
        sys.exit(f"FAIL: imgpar {' '.join(args)} exited {p.returncode}, expected {want_rc}: {p.stderr}")
    m = LINE.search(p.stderr)
    return (int(m.group(1)) if m else 0), digest_dir(outdir), p.stderr


def main():
    imgpar, samples, gen = sys.argv[1:4]
    threads_only = "--threads-only" in sys.argv
    tmp = tempfile.mkdtemp(prefix="imgpar-whole-")
    gdir = os.path.join(tmp, "gen")
    subprocess.run(["/usr/bin/python3", gen, gdir, "--shapes"], check=True)
    inputs = [samples, gdir]
    _, ref, _ = run(imgpar, ["--serial", "-j", "1", "--io-threads", "1", "--writers", "1"], inputs,
                    os.path.join(tmp, "ref"))
    total = len(ref)
    check(total > 60, f"the reference wrote only {total} files")

    configs = [  # (arguments, environment, images expected on their loader)
        (["--threads", "-j", "1"], None, total),
        (["--threads", "-j", "2"], None, total),
        (["--threads", "-j", "3", "--writers", "1", "--queue", "1"], None, total),
        (["--threads", "-j", "2", "--io-threads", "4"], None, total),
        (["--threads", "-j", "2"], {"IMGPAR_INLINE": "0"}, 0),
        (["--threads", "-j", "2", "--io-threads", "1"], None, 0),
        (["--threads", "-j", "2", "--split", "strips"], None, 0),
        (["--serial", "-j", "2"], None, 0),
        (["--procs", "-j", "1"], None, total),
        (["--procs", "-j", "3", "--writers", "1"], None, total),
        (["--procs", "-j", "2"], {"IMGPAR_INLINE": "0"}, 0),
        (["--procs", "-j", "2", "--split", "strips"], None, 0),
    ]
    for i, (args, env, want) in enumerate(configs):
        if threads_only and "--procs" in args:
            continue
        n, got, _ = run(imgpar, args, inputs, os.path.join(tmp, f"c{i}"), env)
        check(n == want, f"{args} {env or ''}: {n} images on their loader, expected {want}")
        check(got == ref, f"{args} {env or ''}: outputs differ from the serial reference: "
                          f"{sorted(k for k in set(got) | set(ref) if got.get(k) != ref.get(k))[:5]}")

    # --no-filter: every image stays on its loader, whatever the executor.
    _, nref, _ = run(imgpar, ["--no-filter", "-j", "1"], inputs, os.path.join(tmp, "nref"),
                     {"IMGPAR_INLINE": "0"})
    for ex in ["--threads"] + ([] if threads_only else ["--procs"]):
        n, got, _ = run(imgpar, ["--no-filter", ex, "-j", "2"], inputs, os.path.join(tmp, "n" + ex))
        check(n == total, f"--no-filter {ex}: {n} images on their loader, expected {total}")
        check(got == nref, f"--no-filter {ex}: outputs differ from the handed-on run's")

    # Three small images and one whose pixels (1500x1200 RGB plus its gray,
    # 7.2 MB) exceed its share of --mem 12M at -j2 (6 MiB): that one is cut
    # into strips for the filter workers, the others stay on their loaders.
    mdir = os.path.join(tmp, "mixed")
    subprocess.run(["/usr/bin/python3", gen, mdir, "--small", "3", "--big", "1500x1200"], check=True)
    _, mref, _ = run(imgpar, ["--serial", "-j", "1"], [mdir], os.path.join(tmp, "mref"))
    check(len(mref) == 4, f"mixed reference wrote {len(mref)} files, expected 4")
    for ex in ["--threads"] + ([] if threads_only else ["--procs"]):
        n, got, _ = run(imgpar, [ex, "-j", "2", "--mem", "12M"], [mdir], os.path.join(tmp, "mixed" + ex))
        check(n == 3, f"{ex} --mem 12M: {n} images on their loader, expected 3")
        check(got == mref, f"{ex} --mem 12M: outputs differ from the serial reference")

    # Failures on that path: two bad inputs, and one output whose final name
    # is a directory. Each costs its own file only.
    bdir = os.path.join(tmp, "bad")
    shutil.copytree(gdir, bdir)
    with open(os.path.join(bdir, "garbage.png"), "wb") as f:
        f.write(b"not an image at all")
    with open(os.path.join(gdir, sorted(k for k in os.listdir(gdir) if k.endswith(".png"))[0]), "rb") as f:
        head = f.read(60)
    with open(os.path.join(bdir, "truncated.png"), "wb") as f:
        f.write(head)
    victim = sorted(k for k in ref if k.endswith(".png") and os.path.exists(os.path.join(gdir, k)))[0]
    for ex in ["--threads"] + ([] if threads_only else ["--procs"]):
        bad_batch(imgpar, ex, bdir, os.path.join(tmp, "bad-out" + ex), victim, ref, gdir)

    shutil.rmtree(tmp)
    if failures:
        for f in failures:
            print("FAIL:", f)
        sys.exit(1)
    print(f"ok: {total} images, {len(configs)} configurations, --no-filter, --mem, failures")


def bad_batch(imgpar, ex, bdir, out, victim, ref, gdir):
    """Two bad inputs and one output that cannot be written, under ex."""
    os.makedirs(os.path.join(out, victim))
    n, got, err = run(imgpar, [ex, "-j", "2"], [bdir], out, want_rc=1)
    gref = {k: v for k, v in ref.items() if os.path.exists(os.path.join(gdir, k))}
    lines = [l for l in err.splitlines() if l.startswith("imgpar: ")]
    check(len(lines) == 3, f"{ex}: expected 3 error lines, got {lines}")
    for name in ["garbage.png", "truncated.png", victim]:
        check(sum(name in l for l in lines) == 1, f"{ex}: no error line names {name}: {lines}")
    check(n == len(gref), f"{ex} bad batch: {n} images on their loader, expected {len(gref)} (every decoded one)")
    got.pop(victim, None)
    want = {k: v for k, v in gref.items() if k != victim}
    check(got == want, f"{ex} bad batch: the good outputs differ from the reference or are missing: "
                       f"{sorted(set(got) ^ set(want))[:5]}")
    check(not any(k.startswith(".") or k.endswith(".tmp") for k in os.listdir(out)),
          f"{ex}: a temporary was left: {os.listdir(out)}")


if __name__ == "__main__":
    main()
