#!/usr/bin/python3
"""Writes a deterministic set of test images for the pipeline suites.

Usage: gen_images.py OUTDIR [--small N] [--shapes] [--big WxH]
  --shapes   odd widths, 1-row and 1-column images, every channel count, PNG and JPEG
  --small N  N tiny 48x40 RGB PNGs (for memory tests)
  --medium N N 400x300 RGB PNGs (batches that take a while)
  --big WxH  one RGB PNG of that size (larger than one strip budget)
"""
import argparse
import os

import numpy as np
from PIL import Image


def textured(h, w, c, seed):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = (np.sin(x / 7.0 + seed) + np.cos(y / 5.0)) * 60 + 128
    planes = []
    for k in range(c):
        noise = rng.integers(-40, 41, size=(h, w))
        planes.append(np.clip(base + k * 25 + noise, 0, 255))
    arr = np.stack(planes, axis=-1).astype(np.uint8)
    if c in (2, 4):  # give alpha some fully transparent and opaque areas
        a = arr[..., -1].astype(np.int32)
        a[: max(1, h // 4), :] = 0
        a[-max(1, h // 4):, :] = 255
        arr[..., -1] = a.astype(np.uint8)
    return arr


MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


def save(arr, path, **kw):
    c = 1 if arr.ndim == 2 else arr.shape[2]
    img = Image.fromarray(arr[..., 0] if c == 1 and arr.ndim == 3 else arr, MODES[c])
    img.save(path, **kw)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("outdir")
    ap.add_argument("--small", type=int, default=0)
    ap.add_argument("--shapes", action="store_true")
    ap.add_argument("--medium", type=int, default=0)
    ap.add_argument("--big")
    a = ap.parse_args()
    os.makedirs(a.outdir, exist_ok=True)
    n = 0
    if a.shapes:
        sizes = [(1, 1), (1, 37), (29, 1), (2, 3), (7, 13), (33, 17), (61, 45), (127, 9), (3, 101), (257, 130)]
        for (w, h) in sizes:
            for c in (1, 2, 3, 4):
                save(textured(h, w, c, n), os.path.join(a.outdir, f"s{n:03d}_{w}x{h}_c{c}.png"))
                n += 1
            save(textured(h, w, 3, n), os.path.join(a.outdir, f"s{n:03d}_{w}x{h}.jpg"), quality=92)
            n += 1
            save(textured(h, w, 1, n), os.path.join(a.outdir, f"s{n:03d}_{w}x{h}_g.jpg"), quality=92)
            n += 1
    for i in range(a.small):
        save(textured(40, 48, 3, 1000 + i), os.path.join(a.outdir, f"m{i:05d}.png"), compress_level=1)
    for i in range(a.medium):
        save(textured(300, 400, 3, 5000 + i), os.path.join(a.outdir, f"d{i:04d}.png"), compress_level=1)
    if a.big:
        w, h = (int(v) for v in a.big.split("x"))
        save(textured(h, w, 3, 7), os.path.join(a.outdir, "big.png"), compress_level=1)


if __name__ == "__main__":
    main()
