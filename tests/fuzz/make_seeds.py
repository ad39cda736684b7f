#!/usr/bin/python3
"""Writes small seed images for the stb_image fuzz target, one per format
and variant stb decodes (the conformance data has only PNG and JPEG):
BMP (24-bit, 8-bit palette, 32-bit), GIF, PPM, PGM, TGA (raw, RLE, gray,
RGBA), PSD (raw and RLE), HDR (flat and run-length).

usage: make_seeds.py OUTDIR
"""
import os
import struct
import sys

import numpy as np
from PIL import Image


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    p = lambda n: os.path.join(out, n)  # noqa: E731
    y, x = np.mgrid[0:12, 0:17]
    rgb = np.dstack([(x * 15) % 256, (y * 21) % 256, (x * y) % 256]).astype(np.uint8)
    rgba = np.dstack([rgb, ((x + y) * 9 % 256).astype(np.uint8)])
    gray = rgb[:, :, 0].copy()
    Image.fromarray(rgb, "RGB").save(p("rgb.bmp"))
    Image.fromarray(rgba, "RGBA").save(p("rgba.bmp"))
    Image.fromarray(rgb, "RGB").quantize(16).save(p("pal.bmp"))
    Image.fromarray(rgb, "RGB").quantize(32).save(p("pal.gif"))
    Image.fromarray(rgb, "RGB").save(p("rgb.ppm"))
    Image.fromarray(gray, "L").save(p("gray.pgm"))
    Image.fromarray(rgb, "RGB").save(p("rgb.tga"))
    Image.fromarray(rgba, "RGBA").save(p("rgba.tga"))
    Image.fromarray(gray, "L").save(p("gray.tga"))
    Image.fromarray(rgb, "RGB").save(p("rle.tga"), compression="tga_rle")
    h, w = rgb.shape[:2]
    head = b"8BPS" + struct.pack(">H6xHIIHH", 1, 3, h, w, 8, 3) + struct.pack(">III", 0, 0, 0)
    with open(p("raw.psd"), "wb") as f:
        f.write(head + struct.pack(">H", 0) + b"".join(rgb[:, :, k].tobytes() for k in range(3)))
    # PSD RLE (PackBits): one literal run per row.
    counts, rows = b"", b""
    for k in range(3):
        for r in range(h):
            row = bytes([w - 1]) + rgb[r, :, k].tobytes()
            counts += struct.pack(">H", len(row))
            rows += row
    with open(p("rle.psd"), "wb") as f:
        f.write(head + struct.pack(">H", 1) + counts + rows)
    hdr = b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n"
    with open(p("flat.hdr"), "wb") as f:
        f.write(hdr + b"-Y 3 +X 5\n" + bytes((i * 37 + 120) % 256 for i in range(3 * 5 * 4)))
    body = b""
    for r in range(3):
        body += bytes([2, 2, 0, 12])
        for k in range(4):
            body += bytes([128 + 6, 10 * k + r, 5]) + bytes(range(5)) + bytes([1, 128])
    with open(p("rle.hdr"), "wb") as f:
        f.write(hdr + b"-Y 3 +X 12\n" + body)
    print("%d seeds in %s" % (len(os.listdir(out)), out))


if __name__ == "__main__":
    main()
