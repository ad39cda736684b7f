#!/usr/bin/python3
"""Round trip of imgpar's encoders through independent decoders.

    roundtrip.py CODEC_TOOL PNGCHECK SCRATCH_DIR

PNG: generated images (1-4 channels; 1x1, 1xN, Nx1 and odd sizes; noise and
smooth content) are encoded at levels 0, 6 and 9. Every file must pass
pngcheck, decode in Pillow to exactly the source pixels in the right mode,
and decode back through imgpar (libpng and stb) to the same bytes. Encoding
is deterministic, and level 9 is smaller than level 0 on smooth content.

JPEG: smooth images encode at quality 90 to files Pillow reads with the
right size and mode (L for 1-2 channels, RGB for 3-4), 4:2:0 for colour,
with a mean absolute difference under 3 from the source (alpha dropped,
gray+alpha encodes its gray channel). Encoding is deterministic.
"""
import os
import struct
import subprocess
import sys

import numpy as np
from PIL import Image, JpegImagePlugin

TOOL, PNGCHECK, SCRATCH = sys.argv[1], sys.argv[2], sys.argv[3]
WORK = os.path.join(SCRATCH, 'roundtrip-%d' % os.getpid())
os.makedirs(WORK, exist_ok=True)

SIZES = [(1, 1), (1, 9), (9, 1), (2, 3), (17, 13), (64, 48), (5, 200), (333, 7)]
MODES = {1: 'L', 2: 'LA', 3: 'RGB', 4: 'RGBA'}
failures = []


def fail(msg):
    failures.append(msg)
    print('FAIL', msg, file=sys.stderr)


def noise(w, h, c, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(h, w, c), dtype=np.uint8)


def smooth(w, h, c):
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    planes = []
    for k in range(c):
        v = 128 + 100 * np.sin(x / 23.0 + k) * np.cos(y / 31.0 - k / 2.0)
        planes.append(v)
    return np.clip(np.stack(planes, axis=2) + 0.5, 0, 255).astype(np.uint8)


def run(args):
    return subprocess.run(args, capture_output=True, text=True)


def encode(arr, fmt, param, name):
    h, w, c = arr.shape
    raw = os.path.join(WORK, name + '.raw')
    out = os.path.join(WORK, name + ('.png' if fmt == 'png' else '.jpg'))
    with open(raw, 'wb') as f:
        f.write(arr.tobytes())
    r = run([TOOL, 'encode', raw, str(w), str(h), str(c), fmt, str(param), out])
    if r.returncode != 0:
        fail('%s: encode failed: %s %s' % (name, r.stdout, r.stderr))
        return None
    return out


def imgpar_decode(path, extra=()):
    raw = path + '.dec'
    r = run([TOOL, 'decode', *extra, path, raw])
    if r.returncode != 0:
        return None, r.stdout + r.stderr
    w, h, c, _fmt = r.stdout.split()[:4]
    with open(raw, 'rb') as f:
        data = np.frombuffer(f.read(), dtype=np.uint8)
    return data.reshape(int(h), int(w), int(c)), r.stdout


def check_png(arr, level, name):
    h, w, c = arr.shape
    out = encode(arr, 'png', level, name)
    if out is None:
        return 0
    r = run([PNGCHECK, '-q', out])
    if r.returncode != 0:
        fail('%s: pngcheck: %s %s' % (name, r.stdout, r.stderr))
    with Image.open(out) as im:
        if im.format != 'PNG' or im.mode != MODES[c] or im.size != (w, h):
            fail('%s: Pillow sees %s %s %s' % (name, im.format, im.mode, im.size))
            return 1
        got = np.asarray(im).reshape(h, w, c)
    if not np.array_equal(got, arr):
        fail('%s: Pillow pixels differ (%d samples)' % (name, int(np.sum(got != arr))))
    for extra in ((), ('--stb',)):
        back, msg = imgpar_decode(out, extra)
        if back is None or back.shape != arr.shape or not np.array_equal(back, arr):
            fail('%s: imgpar %s decode differs: %s' % (name, extra, msg))
    return 1


def check_jpeg(arr, name):
    h, w, c = arr.shape
    out = encode(arr, 'jpeg', 90, name)
    if out is None:
        return 0
    want_mode = 'L' if c <= 2 else 'RGB'
    with Image.open(out) as im:
        if im.format != 'JPEG' or im.mode != want_mode or im.size != (w, h):
            fail('%s: Pillow sees %s %s %s' % (name, im.format, im.mode, im.size))
            return 1
        if c >= 3 and JpegImagePlugin.get_sampling(im) != 2:
            fail('%s: not 4:2:0 (sampling %s)' % (name, JpegImagePlugin.get_sampling(im)))
        got = np.asarray(im).astype(np.int32).reshape(h, w, 1 if c <= 2 else 3)
    src = arr[:, :, :1] if c <= 2 else arr[:, :, :3]
    mad = float(np.mean(np.abs(got - src.astype(np.int32))))
    if mad >= 3.0:
        fail('%s: mean abs diff %.3f' % (name, mad))
    return 1


def main():
    if not PNGCHECK or not os.path.exists(PNGCHECK):
        print('pngcheck not found', file=sys.stderr)
        return 1
    png_cases = jpeg_cases = 0
    for c in (1, 2, 3, 4):
        for (w, h) in SIZES:
            for kind, arr in (('noise', noise(w, h, c, w * 1000 + h * 10 + c)),
                              ('smooth', smooth(w, h, c))):
                for level in (0, 6, 9):
                    png_cases += check_png(arr, level, '%s-%dx%dx%d-l%d' % (kind, w, h, c, level))
            jpeg_cases += check_jpeg(smooth(w, h, c), 'smooth-%dx%dx%d-q90' % (w, h, c))

    # Compressed data over 1 MiB: several IDAT chunks (1 MiB each, the last
    # shorter), framed in place after compressing.
    big = noise(1200, 1000, 3, 77)
    png_cases += check_png(big, 6, 'noise-1200x1000x3-l6')
    with open(os.path.join(WORK, 'noise-1200x1000x3-l6.png'), 'rb') as f:
        data = f.read()
    idat, pos = [], 8
    while pos < len(data):
        n = struct.unpack('>I', data[pos:pos + 4])[0]
        if data[pos + 4:pos + 8] == b'IDAT':
            idat.append(n)
        pos += 12 + n
    if len(idat) < 3 or any(n != 1 << 20 for n in idat[:-1]) or not 0 < idat[-1] <= 1 << 20:
        fail('noise-1200x1000x3-l6: IDAT chunk sizes %r' % idat)

    # Levels matter, output is deterministic.
    arr = smooth(256, 128, 3)
    a = encode(arr, 'png', 0, 'level0')
    b = encode(arr, 'png', 9, 'level9')
    b2 = encode(arr, 'png', 9, 'level9-again')
    if a and b and b2:
        sa, sb = os.path.getsize(a), os.path.getsize(b)
        if not sb < sa / 2:
            fail('level 9 (%d bytes) not much smaller than level 0 (%d bytes)' % (sb, sa))
        if open(b, 'rb').read() != open(b2, 'rb').read():
            fail('PNG encoding is not deterministic')
    j1 = encode(arr, 'jpeg', 90, 'det1')
    j2 = encode(arr, 'jpeg', 90, 'det2')
    j3 = encode(arr, 'jpeg', 30, 'q30')
    if j1 and j2 and j3:
        if open(j1, 'rb').read() != open(j2, 'rb').read():
            fail('JPEG encoding is not deterministic')
        if not os.path.getsize(j3) < os.path.getsize(j1):
            fail('quality 30 not smaller than quality 90')

    expected_png = 4 * len(SIZES) * 2 * 3 + 1   # + the multi-IDAT case
    expected_jpeg = 4 * len(SIZES)
    if png_cases != expected_png or jpeg_cases != expected_jpeg:
        fail('ran %d PNG and %d JPEG cases, expected %d and %d'
             % (png_cases, jpeg_cases, expected_png, expected_jpeg))
    print('roundtrip: %d PNG cases, %d JPEG cases, %d failures'
          % (png_cases, jpeg_cases, len(failures)))
    if not failures:
        for f in os.listdir(WORK):
            os.unlink(os.path.join(WORK, f))
        os.rmdir(WORK)
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
