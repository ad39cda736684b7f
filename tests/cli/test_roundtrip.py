#!/usr/bin/python3
"""Every PNG imgpar writes for samples/ passes pngcheck and decodes in Pillow;
every JPEG decodes in Pillow; sizes are kept.

usage: test_roundtrip.py IMGPAR SAMPLES CONFORMANCE PNGCHECK
"""
import os
import subprocess
import sys

from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cliutil import JPEG_MAGIC, PNG_MAGIC, check, expect_rc, head, listdir, main  # noqa: E402

RUNS = [
    [],                                   # default chain: gray outputs (L, LA)
    ["--blur", "1"],                      # colour kept: RGB, RGBA
    ["--no-filter", "--png-level", "0"],  # stored deflate
    ["--no-filter", "--png-level", "9", "--format", "png"],
    ["--box", "1", "--format", "jpg", "--quality", "50"],  # JPEG from every layout
    ["--gray", "--format", "jpg"],
]


def input_sizes(env):
    sizes = {}
    for n in listdir(env.samples):
        p = os.path.join(env.samples, n)
        if head(p, 8) == PNG_MAGIC or head(p, 3) == JPEG_MAGIC:
            with Image.open(p) as im:
                sizes[os.path.splitext(n)[0]] = im.size
    return sizes


def check_outputs_valid(env):
    check(env.pngcheck, "pngcheck not given")
    sizes = input_sizes(env)
    check(len(sizes) >= 8, "samples/ holds only %d images" % len(sizes))
    pngs = jpegs = 0
    modes = set()
    for opts in RUNS:
        out = env.fresh_dir("out")
        r = env.run(*opts, env.samples, out)
        expect_rc(r, 0)
        names = listdir(out)
        check(sorted(os.path.splitext(n)[0] for n in names) == sorted(sizes),
              "%s: outputs %s" % (" ".join(opts), names))
        png_paths = []
        for n in names:
            p = os.path.join(out, n)
            if head(p, 8) == PNG_MAGIC:
                check(n.endswith(".png"), "%s: PNG output named %s" % (opts, n))
                png_paths.append(p)
                pngs += 1
            else:
                check(head(p, 3) == JPEG_MAGIC, "%s: %s is neither PNG nor JPEG" % (opts, n))
                check(n.endswith(".jpg"), "%s: JPEG output named %s" % (opts, n))
                jpegs += 1
            with Image.open(p) as im:
                im.load()
                check(im.format == ("PNG" if p in png_paths else "JPEG"),
                      "%s: Pillow reads %s as %s" % (opts, n, im.format))
                check(im.size == sizes[os.path.splitext(n)[0]],
                      "%s: %s is %s, input was %s" % (opts, n, im.size,
                                                      sizes[os.path.splitext(n)[0]]))
                modes.add((im.format, im.mode))
        if png_paths:
            pc = subprocess.run([env.pngcheck, "-q"] + png_paths, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, timeout=60)
            check(pc.returncode == 0, "%s: pngcheck failed:\n%s" % (
                " ".join(opts), pc.stdout.decode("utf-8", "replace")))
    check(pngs >= 20 and jpegs >= 12, "only %d PNGs and %d JPEGs checked" % (pngs, jpegs))
    want = {("PNG", "L"), ("PNG", "LA"), ("PNG", "RGB"), ("PNG", "RGBA"),
            ("JPEG", "L"), ("JPEG", "RGB")}
    check(want <= modes, "layouts never written: %s" % sorted(want - modes))


if __name__ == "__main__":
    main([check_outputs_valid])
