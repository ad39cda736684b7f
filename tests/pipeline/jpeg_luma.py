#!/usr/bin/python3
"""--jpeg-luma is its own mode: exactly the JPEG's Y channel, and only when
the chain starts with Rec.601 gray.

Usage: jpeg_luma.py IMGPAR SAMPLES_DIR
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image


def run(imgpar, args, inputs, out):
    p = subprocess.run([imgpar] + args + inputs + [out], capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        sys.exit(f"FAIL: imgpar {args}: exit {p.returncode}: {p.stderr}")


def pixels(path):
    return np.asarray(Image.open(path)).astype(np.int32)


def main():
    imgpar, samples = sys.argv[1:3]
    tmp = tempfile.mkdtemp(prefix="imgpar-luma-")
    jpgs = [os.path.join(samples, f) for f in sorted(os.listdir(samples)) if f.endswith(".jpg")]
    colour = [j for j in jpgs if Image.open(j).mode == "RGB"]
    if len(colour) < 2:
        sys.exit("FAIL: need colour JPEG samples")
    o = lambda n: os.path.join(tmp, n)
    run(imgpar, ["--jpeg-luma", "--gray", "--format", "png"], jpgs, o("luma"))
    run(imgpar, ["--gray", "--format", "png"], jpgs, o("rgb"))
    worst = 0
    for j in colour:
        name = os.path.splitext(os.path.basename(j))[0] + ".png"
        im = Image.open(j)
        im.draft("L", im.size)          # libjpeg decodes straight to Y, as --jpeg-luma does
        y = np.asarray(im).astype(np.int32)
        got = pixels(o("luma/" + name))
        if got.shape != y.shape or (got != y).any():
            sys.exit(f"FAIL: {name}: --jpeg-luma --gray is not the JPEG's Y channel")
        ref = pixels(o("rgb/" + name))
        diff = np.abs(got - ref)
        worst = max(worst, int(diff.max()))
        if diff.max() > 8 or diff.mean() > 0.5:
            sys.exit(f"FAIL: {name}: luma differs from gray-of-RGB by max {diff.max()}, mean {diff.mean():.3f}")
        if (diff != 0).sum() == 0:
            sys.exit(f"FAIL: {name}: luma mode gave exactly the RGB route: was it applied?")
    # Where it does not apply, the flag changes nothing.
    for args in (["--gray=709"], ["--blur", "2"], ["--box", "1", "--gray"]):
        run(imgpar, ["--jpeg-luma", "--format", "png"] + args, colour, o("a" + "".join(args)))
        run(imgpar, ["--format", "png"] + args, colour, o("b" + "".join(args)))
        for j in colour:
            name = os.path.splitext(os.path.basename(j))[0] + ".png"
            if open(o("a" + "".join(args) + "/" + name), "rb").read() != open(o("b" + "".join(args) + "/" + name), "rb").read():
                sys.exit(f"FAIL: --jpeg-luma changed the output of {args} on {name}")
    subprocess.run(["rm", "-rf", tmp])
    print(f"ok: {len(colour)} colour JPEGs; luma mode = Y exactly, max {worst} levels from gray-of-RGB")


if __name__ == "__main__":
    main()
