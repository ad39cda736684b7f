#!/usr/bin/python3
"""Generates the sample images in this directory.

Run from anywhere:  /usr/bin/python3 samples/make_samples.py [OUTDIR]
(OUTDIR defaults to the directory holding this script).

Deterministic: every random draw comes from a fixed seed, nothing depends on
the clock, and Pillow writes no timestamps into PNG or JPEG files, so a rerun
with the same Pillow/zlib/libjpeg reproduces the committed bytes. The 16-bit
RGB PNG is written by hand (Pillow cannot save 16-bit RGB) with zlib.
"""
import os
import struct
import sys
import zlib

import numpy as np
from PIL import Image


def scene(width, height, seed):
    """A synthetic outdoor-looking RGB scene as float64 in [0, 1], shape (h, w, 3).

    Sky gradient, a soft sun, rolling hills with a textured surface, a few
    soft-edged shapes and fine grain noise: smooth areas for the blur to keep
    smooth, edges for it to soften, and noise so the codecs have real work.
    """
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    u, v = x / (width - 1), y / (height - 1)

    img = np.empty((height, width, 3))
    # sky: deep blue at the top to pale near the horizon
    img[..., 0] = 0.25 + 0.55 * v
    img[..., 1] = 0.45 + 0.40 * v
    img[..., 2] = 0.85 + 0.10 * v

    # sun with a soft glow
    sx, sy = 0.72 + 0.1 * rng.random(), 0.22 + 0.05 * rng.random()
    d = np.hypot((u - sx) * width, (v - sy) * height) / min(width, height)
    glow = np.exp(-(d / 0.12) ** 2)
    img += glow[..., None] * np.array([0.9, 0.75, 0.35])

    # two ranges of hills, the nearer one darker and textured
    for k, (base, amp, col) in enumerate([(0.55, 0.08, (0.35, 0.50, 0.30)),
                                          (0.70, 0.06, (0.20, 0.40, 0.12))]):
        phase = rng.random() * 2 * np.pi
        ridge = base + amp * np.sin(2 * np.pi * (1.3 + k) * u + phase) \
            + 0.02 * np.sin(2 * np.pi * 7 * u + 2 * phase)
        edge = np.clip((v - ridge) * height / 2.0, 0.0, 1.0)  # ~2 px soft edge
        shade = 1.0 - 0.35 * (v - ridge).clip(0, None)
        tex = 0.06 * np.sin(40 * u + 25 * v + phase) * np.sin(13 * v * (k + 1))
        hill = (np.array(col)[None, None, :] * shade[..., None]) + tex[..., None]
        img = img * (1 - edge[..., None]) + hill * edge[..., None]

    # a few soft discs and a rectangle ("objects" in the foreground)
    for _ in range(4):
        cx, cy = rng.random() * width, (0.6 + 0.35 * rng.random()) * height
        r = (0.04 + 0.08 * rng.random()) * min(width, height)
        col = 0.2 + 0.8 * rng.random(3)
        a = np.clip(r - np.hypot(x - cx, y - cy), 0.0, 1.0)
        img = img * (1 - a[..., None]) + col * a[..., None]
    x0, y0 = int(0.08 * width), int(0.62 * height)
    img[y0:y0 + height // 6, x0:x0 + width // 7] = [0.75, 0.2, 0.15]

    # grain
    img += rng.normal(0.0, 0.025, img.shape)
    return np.clip(img, 0.0, 1.0)


def to8(f):
    return np.clip(np.floor(f * 255.0 + 0.5), 0, 255).astype(np.uint8)


def to16(f):
    return np.clip(np.floor(f * 65535.0 + 0.5), 0, 65535).astype(np.uint16)


def luma(rgb):
    return 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]


def png_chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xffffffff)


def write_png16_rgb(path, rgb16):
    """Minimal PNG writer: 16-bit RGB, filter type 0 on every row."""
    h, w, _ = rgb16.shape
    raw = b"".join(b"\x00" + rgb16[r].astype(">u2").tobytes() for r in range(h))
    data = (b"\x89PNG\r\n\x1a\n"
            + png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
            + png_chunk(b"IDAT", zlib.compress(raw, 9))
            + png_chunk(b"IEND", b""))
    with open(path, "wb") as f:
        f.write(data)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    os.makedirs(out, exist_ok=True)

    def p(name):
        return os.path.join(out, name)

    # PNG gray 8-bit
    Image.fromarray(to8(luma(scene(200, 150, 1))), "L").save(p("gray8.png"))

    # PNG RGB 8-bit
    Image.fromarray(to8(scene(256, 192, 2)), "RGB").save(p("rgb8.png"))

    # PNG RGBA: opaque centre fading to fully transparent corners, plus a hole
    rgb = scene(240, 180, 3)
    y, x = np.mgrid[0:180, 0:240].astype(np.float64)
    d = np.hypot((x - 120) / 120, (y - 90) / 90)
    alpha = np.clip(1.4 - d, 0.0, 1.0)
    alpha[np.hypot(x - 60, y - 60) < 18] = 0.0
    rgba = np.concatenate([to8(rgb), to8(alpha)[..., None]], axis=2)
    Image.fromarray(rgba, "RGBA").save(p("rgba8.png"))

    # PNG palette (adaptive 64-colour palette, no dithering for stable bytes)
    Image.fromarray(to8(scene(160, 120, 4)), "RGB").quantize(
        colors=64, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(p("palette.png"))

    # PNG 16-bit: RGB (hand-written) and gray
    write_png16_rgb(p("rgb16.png"), to16(scene(192, 144, 5)))
    Image.fromarray(to16(luma(scene(160, 120, 6))), "I;16").save(p("gray16.png"))

    # JPEG colour baseline (4:2:0), gray, and progressive
    Image.fromarray(to8(scene(640, 480, 7)), "RGB").save(p("photo.jpg"), quality=85)
    Image.fromarray(to8(luma(scene(320, 240, 8))), "L").save(p("gray.jpg"), quality=85)
    Image.fromarray(to8(scene(400, 300, 9)), "RGB").save(
        p("progressive.jpg"), quality=85, progressive=True)


if __name__ == "__main__":
    main()
