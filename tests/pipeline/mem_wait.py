#!/usr/bin/python3
"""A full --mem budget makes images wait for memory, never fail.

usage: mem_wait.py IMGPAR [--threads-only]

Eight 600x400 RGB PNGs need 0.92 MiB of arena each (decoded RGB plus the
gray output); --mem 2M holds two at a time while -j 4 --queue 8 brings eight
in flight, so most loaders find the budget full and must wait for a writer
to free a block. Every executor must then write all eight files, exit 0,
print no error, and write the bytes of an unconstrained run.
--threads-only leaves out --procs (the ThreadSanitizer copy: TSan and fork
do not mix).
"""
import hashlib
import os
import re
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image


def run(imgpar, args, indir, outdir):
    p = subprocess.run([imgpar] + args + [indir, outdir], capture_output=True, text=True, timeout=120)
    sums = {n: hashlib.sha256(open(os.path.join(outdir, n), "rb").read()).hexdigest()
            for n in sorted(os.listdir(outdir))} if os.path.isdir(outdir) else {}
    return p, sums


def main():
    imgpar = sys.argv[1]
    executors = ("--threads", "--serial") if "--threads-only" in sys.argv[2:] else ("--threads", "--procs", "--serial")
    tmp = tempfile.mkdtemp(prefix="imgpar-memwait-")
    src = os.path.join(tmp, "in")
    os.makedirs(src)
    rng = np.random.default_rng(11)
    for i in range(8):
        Image.fromarray(rng.integers(0, 256, (400, 600, 3), dtype=np.uint8)).save(os.path.join(src, "im%d.png" % i))
    p, ref = run(imgpar, ["--serial", "-j", "1"], src, os.path.join(tmp, "ref"))
    if p.returncode != 0 or len(ref) != 8:
        sys.exit("FAIL: reference run exited %d with %d outputs: %s" % (p.returncode, len(ref), p.stderr))
    fails = []
    for ex in executors:
        for split in ("image", "strips"):
            args = [ex, "-j", "4", "--queue", "8", "--mem", "2M", "--split", split, "--stats"]
            p, got = run(imgpar, args, src, os.path.join(tmp, ex + split))
            m = re.search(r"wait_load ([0-9.]+)", p.stderr)
            waited = m is not None and float(m.group(1)) > 0
            if p.returncode != 0 or got != ref or "exhausted" in p.stderr or not waited:
                fails.append("%s: exit %d, %d of 8 outputs equal to the reference: %s" % (
                    " ".join(args), p.returncode, sum(got.get(n) == h for n, h in ref.items()), p.stderr))
    subprocess.run(["rm", "-rf", tmp])
    if fails:
        sys.exit("FAIL:\n" + "\n".join(fails))
    print("ok: %d configurations waited for a 2 MiB budget and wrote the reference bytes" % (2 * len(executors)))


if __name__ == "__main__":
    main()
