#!/usr/bin/python3
"""Synthetic batches for scaling shapes that real corpora do not cover.

usage: bench/gen_synthetic.py SHAPE [OUTDIR] [--count N] [--size WxH] [--format jpeg|png|mix] [--seed S]

SHAPE (defaults in brackets; OUTDIR defaults to bench/corpus/synthetic/SHAPE,
which is git-ignored):
  many-small  [2000 images, 320x240, mix]   per-image overhead: open, decode,
              queue hand-offs, rename; parallelism across images only
  few-huge    [3 images, 8000x6000, jpeg]    fewer images than cores: only
              --split strips can use them all; memory budget (--mem) matters
  skewed      [1 of 6000x4000 + 200 of 640x480, mix]   load imbalance: one
              straggler among many small images (--count sets the small ones)

The pictures are photograph-like, so the codecs work as on photos: smooth
colour fields (bicubic-upsampled noise) plus gradients, edges and a little
per-pixel noise; not flat colour, which compresses unrealistically well.
Deterministic for a given seed. Needs /usr/bin/python3 with numpy and Pillow
(python3-numpy, python3-pil).
"""
import argparse
import os
import sys

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))

SHAPES = {
    "many-small": {"count": 2000, "size": (320, 240), "format": "mix"},
    "few-huge": {"count": 3, "size": (8000, 6000), "format": "jpeg"},
    "skewed": {"count": 200, "size": (640, 480), "format": "mix"},
}


def smooth_field(rng, w, h, cell):
    """Noise with features about `cell` pixels wide, float32 h x w, in about [-1, 1]."""
    cw, ch = max(2, w // cell + 2), max(2, h // cell + 2)
    small = Image.fromarray(rng.uniform(-1, 1, (ch, cw)).astype(np.float32), "F")
    return np.asarray(small.resize((w, h), Image.BICUBIC), dtype=np.float32)


def photo_like(rng, w, h):
    """An RGB uint8 array of h x w that compresses like a photograph."""
    big = max(w, h)
    # Luma: octaves of smooth noise, amplitude falling with feature size (1/f, as in natural images).
    lum = np.full((h, w), 128.0, dtype=np.float32)
    for cell, amp in ((big // 3, 70.0), (big // 12, 30.0), (big // 48, 14.0), (max(4, big // 300), 6.0)):
        lum += amp * smooth_field(rng, w, h, max(cell, 4))
    lum += np.linspace(-25, 25, h, dtype=np.float32)[:, None]     # sky-to-ground gradient
    # A few hard-edged objects.
    for _ in range(4):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x1 = min(w, x0 + int(rng.integers(w // 10 + 1, w // 3 + 2)))
        y1 = min(h, y0 + int(rng.integers(h // 10 + 1, h // 3 + 2)))
        lum[y0:y1, x0:x1] += float(rng.uniform(-50, 50))
    # Chroma: large, gentle colour casts.
    cb = 25.0 * smooth_field(rng, w, h, max(big // 4, 4))
    cr = 25.0 * smooth_field(rng, w, h, max(big // 6, 4))
    out = np.empty((h, w, 3), dtype=np.uint8)
    for y in range(0, h, 512):   # in slices: memory stays flat on huge images
        l, b, r = lum[y:y + 512], cb[y:y + 512], cr[y:y + 512]
        noise = rng.normal(0, 2.5, l.shape).astype(np.float32)      # sensor noise
        rgb = np.stack((l + 1.402 * r, l - 0.344 * b - 0.714 * r, l + 1.772 * b), axis=-1) + noise[..., None]
        out[y:y + 512] = np.clip(rgb + 0.5, 0, 255).astype(np.uint8)
    return out


def save(arr, path, fmt):
    im = Image.fromarray(arr, "RGB")
    if fmt == "jpeg":
        im.save(path, quality=92)
    else:
        im.save(path, compress_level=6)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("shape", choices=sorted(SHAPES))
    ap.add_argument("outdir", nargs="?")
    ap.add_argument("--count", type=int)
    ap.add_argument("--size", help="WxH")
    ap.add_argument("--format", choices=("jpeg", "png", "mix"))
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()

    spec = dict(SHAPES[a.shape])
    if a.count is not None:
        spec["count"] = a.count
    if a.size:
        w, h = a.size.lower().split("x")
        spec["size"] = (int(w), int(h))
    if a.format:
        spec["format"] = a.format
    out = a.outdir or os.path.join(HERE, "corpus", "synthetic", a.shape)
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(a.seed)

    jobs = []
    if a.shape == "skewed":
        jobs.append(("huge-0000", (6000, 4000), "jpeg"))
    for i in range(spec["count"]):
        fmt = spec["format"]
        if fmt == "mix":
            fmt = "png" if i % 3 == 2 else "jpeg"
        jobs.append(("img-%05d" % i, spec["size"], fmt))

    total = 0
    for name, (w, h), fmt in jobs:
        save(photo_like(rng, w, h), os.path.join(out, name + (".jpg" if fmt == "jpeg" else ".png")), fmt)
        total += w * h
    print("%s: %d images, %.1f MP" % (out, len(jobs), total / 1e6))
    return 0


if __name__ == "__main__":
    sys.exit(main())
