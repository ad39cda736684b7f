#!/usr/bin/python3
"""Formats decoded by stb_image, against files written by Pillow or by hand.

    stb_formats.py CODEC_TOOL SCRATCH_DIR

BMP (24-bit, 8-bit palette), GIF (first frame of two; opaque as RGB,
with a transparent colour as RGBA), TGA (RGB, RGBA, gray,
RLE), PPM/PGM (P6/P5) are written by Pillow from known pixels; PSD (raw RGB)
and Radiance HDR (flat RGBE) are written here. Each must be detected as its
format and decode to the known pixels (HDR: stb's tone mapping,
(v)^(1/2.2) * 255, within 1 level). Also a truncated GIF is an error, and
a PNG with zlib distance code 30 decodes the same whatever the heap held.
"""
import math
import os
import struct
import subprocess
import sys
import zlib

import numpy as np
from PIL import Image

TOOL, SCRATCH = sys.argv[1], sys.argv[2]
WORK = os.path.join(SCRATCH, 'stb-formats-%d' % os.getpid())
os.makedirs(WORK, exist_ok=True)
failures = []
checked = 0


def fail(msg):
    failures.append(msg)
    print('FAIL', msg, file=sys.stderr)


def decode(path, timeout=60):
    raw = path + '.raw'
    r = subprocess.run([TOOL, 'decode', path, raw], capture_output=True, text=True,
                       timeout=timeout)
    if r.returncode != 0:
        return None, None, r.stdout + r.stderr
    w, h, c, fmt = r.stdout.split()[:4]
    with open(raw, 'rb') as f:
        data = np.frombuffer(f.read(), dtype=np.uint8)
    return data.reshape(int(h), int(w), int(c)), fmt, r.stdout


def check(path, want_fmt, want, tolerance=0, alpha_only_where_opaque=False):
    global checked
    checked += 1
    got, fmt, msg = decode(path)
    name = os.path.basename(path)
    if got is None:
        fail('%s: decode failed: %s' % (name, msg))
        return
    if fmt != want_fmt:
        fail('%s: detected %s, want %s' % (name, fmt, want_fmt))
    if got.shape != want.shape:
        fail('%s: shape %s, want %s' % (name, got.shape, want.shape))
        return
    if alpha_only_where_opaque:
        # The colour under alpha 0 is not defined: compare it where it shows.
        shows = want[:, :, 3:] != 0
        got = np.where(shows, got, want)
    diff = np.abs(got.astype(np.int32) - want.astype(np.int32))
    if diff.max() > tolerance:
        fail('%s: max diff %d (%d samples off)' % (name, diff.max(), int(np.sum(diff > tolerance))))


def pattern(w, h, c, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(h, w, c), dtype=np.uint8)


def with_alpha(rgb):
    a = np.full(rgb.shape[:2] + (1,), 255, dtype=np.uint8)
    return np.concatenate([rgb, a], axis=2)


def main():
    global checked
    rgb = pattern(13, 7, 3, 1)
    rgba = pattern(13, 7, 4, 2)
    gray = pattern(13, 7, 1, 3)
    p = lambda n: os.path.join(WORK, n)

    # BMP: 24-bit RGB; 8-bit palette (Pillow writes L as a gray palette) -> RGB.
    Image.fromarray(rgb, 'RGB').save(p('rgb.bmp'))
    check(p('rgb.bmp'), 'bmp', rgb)
    Image.fromarray(gray[:, :, 0], 'L').save(p('gray.bmp'))
    check(p('gray.bmp'), 'bmp', np.repeat(gray, 3, axis=2))

    # GIF: first frame of two. Without transparency it is RGB (stb gives
    # RGBA; imgpar drops the all-opaque alpha), with a transparent colour
    # RGBA, transparent pixels at alpha 0.
    pal = Image.fromarray(rgb, 'RGB').quantize(colors=64)
    other = Image.fromarray(pattern(13, 7, 3, 9), 'RGB').quantize(colors=64)
    pal.save(p('anim.gif'), save_all=True, append_images=[other], duration=100, loop=0)
    with Image.open(p('anim.gif')) as im:
        im.seek(0)
        first = np.asarray(im.convert('RGB'))
    check(p('anim.gif'), 'gif', first)
    idx = np.asarray(pal).copy()
    pal.save(p('transparent.gif'), transparency=int(idx[0, 0]))
    want = np.concatenate([np.asarray(pal.convert('RGB')),
                           np.where(idx == idx[0, 0], 0, 255).astype(np.uint8)[:, :, None]], axis=2)
    if int(np.sum(want[:, :, 3] == 0)) == 0:
        fail('transparent.gif: the test image has no transparent pixel')
    check(p('transparent.gif'), 'gif', want, alpha_only_where_opaque=True)

    # TGA: RGB, RGBA, gray, and RLE-compressed RGB.
    Image.fromarray(rgb, 'RGB').save(p('rgb.tga'))
    check(p('rgb.tga'), 'tga', rgb)
    Image.fromarray(rgba, 'RGBA').save(p('rgba.tga'))
    check(p('rgba.tga'), 'tga', rgba)
    Image.fromarray(gray[:, :, 0], 'L').save(p('gray.tga'))
    check(p('gray.tga'), 'tga', gray)
    Image.fromarray(rgb, 'RGB').save(p('rle.tga'), compression='tga_rle')
    check(p('rle.tga'), 'tga', rgb)

    # PNM
    Image.fromarray(rgb, 'RGB').save(p('rgb.ppm'))
    check(p('rgb.ppm'), 'pnm', rgb)
    Image.fromarray(gray[:, :, 0], 'L').save(p('gray.pgm'))
    check(p('gray.pgm'), 'pnm', gray)

    # PSD: version 1, 3 channels, 8-bit, RGB mode, raw planar data. stb
    # returns RGBA.
    h, w = rgb.shape[:2]
    psd = b'8BPS' + struct.pack('>H6xHIIHH', 1, 3, h, w, 8, 3)
    psd += struct.pack('>III', 0, 0, 0) + struct.pack('>H', 0)
    psd += b''.join(rgb[:, :, k].tobytes() for k in range(3))
    with open(p('rgb.psd'), 'wb') as f:
        f.write(psd)
    check(p('rgb.psd'), 'psd', with_alpha(rgb))

    # Radiance HDR, flat RGBE (width < 8 is never run-length encoded).
    hw, hh = 5, 3
    rgbe = pattern(hw, hh, 4, 4)
    rgbe[:, :, 3] = 120 + rgbe[:, :, 3] % 16   # exponents around 2^-8 .. 2^7
    rgbe[0, 0] = (0, 0, 0, 0)                    # exact zero
    with open(p('flat.hdr'), 'wb') as f:
        f.write(b'#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y %d +X %d\n' % (hh, hw))
        f.write(rgbe.tobytes())
    want = np.zeros((hh, hw, 3), dtype=np.uint8)
    for y in range(hh):
        for x in range(hw):
            r, g, b, e = (int(v) for v in rgbe[y, x])
            for k, m in enumerate((r, g, b)):
                v = m * math.ldexp(1.0, e - 136) if e else 0.0
                want[y, x, k] = max(0, min(255, int(v ** (1 / 2.2) * 255 + 0.5)))
    check(p('flat.hdr'), 'hdr', want, tolerance=1)

    # Run-length HDR (width >= 8): runs and literals decode like flat data;
    # cut short it is an error (stb_image 2.27 alone would loop forever).
    rw, rh = 12, 3
    rle = np.zeros((rh, rw, 4), dtype=np.uint8)
    for y in range(rh):
        for x in range(rw):
            rle[y, x] = ((x * 20) % 256, 100 if x < 6 else 40, 7 * y + x, 128 + y)
    body = b''
    for y in range(rh):
        body += bytes([2, 2, 0, rw])
        for k in range(4):
            comp = rle[y, :, k]
            if k in (1, 3):   # runs (the green run splits at x = 6)
                body += bytes([128 + 6, comp[0], 128 + 6, comp[6]])
            else:             # literals: 5 then 7
                body += bytes([5]) + comp[:5].tobytes() + bytes([7]) + comp[5:].tobytes()
    head = b'#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y %d +X %d\n' % (rh, rw)
    with open(p('rle.hdr'), 'wb') as f:
        f.write(head + body)
    want = np.zeros((rh, rw, 3), dtype=np.uint8)
    for y in range(rh):
        for x in range(rw):
            e = int(rle[y, x, 3])
            for k in range(3):
                v = int(rle[y, x, k]) * math.ldexp(1.0, e - 136)
                want[y, x, k] = max(0, min(255, int(v ** (1 / 2.2) * 255 + 0.5)))
    check(p('rle.hdr'), 'hdr', want, tolerance=1)
    with open(p('cut.hdr'), 'wb') as f:
        f.write(head + body[:len(body) - 9])
    try:
        got, fmt, msg = decode(p('cut.hdr'), timeout=20)
        if got is not None or not msg.startswith('error -6 truncated HDR data'):
            fail('cut.hdr: expected "truncated HDR data", got %s' % msg)
    except subprocess.TimeoutExpired:
        fail('cut.hdr: decoder hangs')

    # A GIF cut after its header is an error, not a crash.
    data = open(p('anim.gif'), 'rb').read()
    with open(p('cut.gif'), 'wb') as f:
        f.write(data[:20])
    got, fmt, msg = decode(p('cut.gif'))
    if got is not None or not msg.startswith('error -'):
        fail('cut.gif: expected an error, got %s' % msg)

    # A PNG whose zlib stream uses distance code 30 (undefined in deflate;
    # zlib rejects it): stb_image 2.27 copies 5 bytes it has not written
    # yet. imgpar zeroes stb's buffers, so the result is the same whatever
    # the heap held: filter byte 0 and four zero pixels. The allocator's
    # fill byte is varied with MALLOC_PERTURB_ (fills 0xfe, 0x02, 0x00).
    bits = []

    def put(value, n, msb_first=False):
        for i in range(n):
            bits.append((value >> (n - 1 - i if msb_first else i)) & 1)
    put(1, 1)                     # BFINAL
    put(1, 2)                     # BTYPE 01: fixed Huffman codes
    put(259 - 256, 7, True)       # length symbol 259: 5 bytes
    put(30, 5, True)              # distance code 30
    put(0, 7, True)               # end of block
    while len(bits) % 8:
        bits.append(0)
    stream = b'\x78\x01' + bytes(sum(b << i for i, b in enumerate(bits[k:k + 8]))
                                 for k in range(0, len(bits), 8)) + struct.pack('>I', 1)

    def chunk(kind, body):
        return struct.pack('>I', len(body)) + kind + body + struct.pack('>I', zlib.crc32(kind + body))
    with open(p('dist30.png'), 'wb') as f:
        f.write(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', 4, 1, 8, 0, 0, 0, 0))
                + chunk(b'IDAT', stream) + chunk(b'IEND', b''))
    for perturb in ('1', '253', '255'):
        checked += 1
        raw = p('dist30.raw')
        r = subprocess.run([TOOL, 'decode', '--stb', p('dist30.png'), raw], capture_output=True, text=True,
                           timeout=60, env=dict(os.environ, MALLOC_PERTURB_=perturb))
        got = open(raw, 'rb').read() if r.returncode == 0 else None
        if r.stdout.split()[:4] != ['4', '1', '1', 'png'] or got != bytes(4):
            fail('dist30.png, MALLOC_PERTURB_=%s: %s, pixels %r (want 4x1 gray zeros)'
                 % (perturb, (r.stdout + r.stderr).strip(), got))

    if checked != 16:
        fail('checked %d files, expected 16' % checked)
    print('stb_formats: %d files, %d failures' % (checked, len(failures)))
    if not failures:
        for f in os.listdir(WORK):
            os.unlink(os.path.join(WORK, f))
        os.rmdir(WORK)
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
