#!/usr/bin/python3
"""Writes the photo-like PNGs bench_png_decode reads: smooth gradients,
soft blobs and grain noise (fixed seed), saved by Pillow at its default
settings (zlib level 6, adaptive filters).

    /usr/bin/python3 tests/conformance/make_bench_png.py OUT_DIR [WIDTH HEIGHT]

writes OUT_DIR/bench_rgb.png, bench_rgba.png, bench_gray.png, bench_palette.png
(Pillow; Pillow picks mostly Sub and Up for these), and bench_rgb_paeth.png
and bench_rgb_smooth.png: the same RGB scene, and a noise-free one, filtered
per row like libpng's default heuristic (all five filters, smallest sum of
absolute differences wins: mostly Paeth and Average), zlib level 6."""
import os
import struct
import sys
import zlib

import numpy as np
from PIL import Image


def scene(w, h, seed):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.empty((h, w, 3), np.float32)
    img[..., 0] = 40 + 150 * x / w + 30 * np.sin(y / 97.0)
    img[..., 1] = 60 + 120 * y / h + 25 * np.cos(x / 131.0)
    img[..., 2] = 180 - 100 * (x + y) / (w + h)
    for _ in range(12):
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        r = rng.uniform(0.05, 0.25) * min(w, h)
        blob = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r))
        img += blob[..., None] * rng.uniform(-80, 80, 3)
    img += rng.normal(0, 4.0, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def filter_rows(raw, bpp):
    """libpng-style adaptive filtering of an (h, rowbytes) uint8 array."""
    h, n = raw.shape
    x = raw.astype(np.int16)
    a = np.zeros_like(x)
    a[:, bpp:] = x[:, :-bpp]
    b = np.zeros_like(x)
    b[1:] = x[:-1]
    c = np.zeros_like(x)
    c[1:, bpp:] = x[:-1, :-bpp]
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
    cands = [x, x - a, x - b, x - (a + b) // 2, x - paeth]
    cands = [(f & 0xff).astype(np.uint8) for f in cands]
    cost = np.stack([np.abs(f.astype(np.int8).astype(np.int32)).sum(axis=1) for f in cands])
    best = cost.argmin(axis=0)
    out = np.empty((h, n + 1), np.uint8)
    out[:, 0] = best
    for k in range(5):
        rows = best == k
        out[rows, 1:] = cands[k][rows]
    return out


def write_png(path, img, level=6):
    h, w, ch = img.shape
    color = {1: 0, 2: 4, 3: 2, 4: 6}[ch]
    data = filter_rows(img.reshape(h, w * ch), ch)

    def chunk(name, body):
        return (struct.pack('>I', len(body)) + name + body +
                struct.pack('>I', zlib.crc32(name + body) & 0xffffffff))
    z = zlib.compress(data.tobytes(), level)
    with open(path, 'wb') as f:
        f.write(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, color, 0, 0, 0)))
        for i in range(0, len(z), 65536):
            f.write(chunk(b'IDAT', z[i:i + 65536]))
        f.write(chunk(b'IEND', b''))


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else '.'
    w = int(sys.argv[2]) if len(sys.argv) > 2 else 3000
    h = int(sys.argv[3]) if len(sys.argv) > 3 else 2000
    os.makedirs(out, exist_ok=True)
    rgb = scene(w, h, 1)
    Image.fromarray(rgb, 'RGB').save(os.path.join(out, 'bench_rgb.png'))
    alpha = (np.linspace(255, 64, w)[None, :] * np.ones((h, 1))).astype(np.uint8)
    Image.fromarray(np.dstack([rgb, alpha]), 'RGBA').save(os.path.join(out, 'bench_rgba.png'))
    Image.fromarray(rgb, 'RGB').convert('L').save(os.path.join(out, 'bench_gray.png'))
    Image.fromarray(rgb, 'RGB').quantize(256, dither=Image.Dither.NONE).save(
        os.path.join(out, 'bench_palette.png'))
    write_png(os.path.join(out, 'bench_rgb_paeth.png'), rgb)
    smooth = scene(w, h, 1)  # same scene, then the noise taken out by a box blur
    k = 5
    pad = np.pad(smooth.astype(np.float32), ((k, k), (k, k), (0, 0)), mode='edge')
    cs = pad.cumsum(0).cumsum(1)
    box = (cs[2 * k:, 2 * k:] - cs[:-2 * k, 2 * k:] - cs[2 * k:, :-2 * k] + cs[:-2 * k, :-2 * k])
    smooth = (box[:h, :w] / (4 * k * k)).round().clip(0, 255).astype(np.uint8)
    write_png(os.path.join(out, 'bench_rgb_smooth.png'), smooth)


if __name__ == '__main__':
    main()
