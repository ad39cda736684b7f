#!/usr/bin/python3
"""Many small JPEGs from the bench corpus's photographs, for per-image
overheads (the eleventh session's small-image measurements).

usage: bench/make_crops.py CORPUS_JPEG_DIR OUTDIR [--size 320x240] [--per 80]

Each photograph (not the Elephants artworks) gives --per crops of --size,
at offsets stepped through the picture, saved by Pillow at quality 90:
13 photos x 80 = 1040 files of 320x240 by default. Needs /usr/bin/python3
with Pillow (python3-pil)."""
import argparse
import glob
import os

from PIL import Image

ap = argparse.ArgumentParser()
ap.add_argument("src")
ap.add_argument("out")
ap.add_argument("--size", default="320x240")
ap.add_argument("--per", type=int, default=80)
a = ap.parse_args()
cw, ch = (int(v) for v in a.size.split("x"))
os.makedirs(a.out, exist_ok=True)
n = 0
for path in sorted(glob.glob(os.path.join(a.src, "*.jpg"))):
    if os.path.basename(path).startswith("Elephants"):
        continue
    im = Image.open(path).convert("RGB")
    w, h = im.size
    for k in range(a.per):
        x = (k * 97) % max(1, w - cw)
        y = (k * 61) % max(1, h - ch)
        im.crop((x, y, x + cw, y + ch)).save(os.path.join(a.out, "%04d.jpg" % n), quality=90)
        n += 1
print("%s: %d crops of %dx%d" % (a.out, n, cw, ch))
