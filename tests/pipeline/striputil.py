"""Helpers shared by the strip-decoding tests (jpeg_strip_decode.py,
png_strip_decode.py): failure collection, test images, running imgpar."""
import os
import subprocess

import numpy as np

STRIPS_LINE = "decoded by strips on several cores: 1 image"
FAILS = []


def check(cond, msg):
    if not cond:
        FAILS.append(msg)
        print("FAIL: " + msg)


def photo_like(w, h, seed, channels=3):
    """Smooth colour fields, edges, saturated patches and noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.empty((h, w, channels), np.float32)
    for c in range(channels):
        fx, fy, ph = rng.uniform(0.002, 0.03), rng.uniform(0.002, 0.03), rng.uniform(0, 6.3)
        img[..., c] = 128 + 90 * np.sin(xx * fx + ph) * np.cos(yy * fy)
    img[(xx // 97 + yy // 61) % 5 == 0] = (255, 0, 40, 200)[:channels]   # saturated: chroma clamps
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def run(imgpar, args, env, expect_rc=None):
    p = subprocess.run([imgpar] + args, capture_output=True, text=True, timeout=180, env=env)
    if expect_rc is not None:
        check(p.returncode == expect_rc, "imgpar %s exited %d: %s" % (" ".join(args), p.returncode, p.stderr))
    return p


def read_out(d):
    return {n: open(os.path.join(d, n), "rb").read() for n in sorted(os.listdir(d))}
