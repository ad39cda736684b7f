#!/usr/bin/python3
"""Strip-parallel inflating of huge PNGs that imgpar wrote gives exactly
the pixels of a whole-image decode.

usage: png_strip_decode.py IMGPAR [--threads-only]

--threads-only keeps the run short (for ThreadSanitizer builds): one image,
-j1 against --threads -j4, no default-chain run.

imgpar writes a huge PNG in strips and records their layout in an ipST
chunk; its loader then inflates the strips on several cores. The test
lowers the strip threshold (IMGPAR_TEST_PNG_STRIP_MIN) so that images of
about a megapixel count as huge. For each image (RGB, RGBA, gray; photo-like
with noise, and flat with a short repeating pattern) it checks:
- the PNG imgpar writes carries an ipST chunk whose offsets fall inside its
  image data, and Pillow (zlib, independent of imgpar's inflater) decodes it
  to the source pixels;
- `imgpar --no-filter --format png` of that PNG at -j1 and at several -j and
  strategies writes the same bytes, whose pixels are the source's;
- --stats says the image was decoded by strips exactly when -j > 1, and not
  for the same file without its ipST chunk, which gives the same bytes;
- the default chain writes the same bytes at -j1 and -j4;
- a file damaged inside a middle strip (a bit flipped, the CRC made right)
  gets the same exit code, error line and outputs at -j4 as at -j1.
"""
import os
import struct
import sys
import tempfile
import zlib

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from striputil import FAILS, STRIPS_LINE, check, photo_like, read_out, run  # noqa: E402

STRIP_MIN = "400000"


def flat_pattern(w, h, channels):
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([(60 + 40 * c + (xx % 5) * 3 + (yy // 50) % 2) for c in range(channels)], axis=2)
    return img.astype(np.uint8)


def chunks(data):
    """(name, offset of the body, length) of each chunk."""
    pos, out = 8, []
    while pos + 12 <= len(data):
        n, name = struct.unpack(">I4s", data[pos:pos + 8])
        out.append((name, pos + 8, n))
        pos += 12 + n
    return out


def without_chunk(data, name):
    out = data[:8]
    for n, body, length in chunks(data):
        if n != name:
            out += data[body - 8:body + length + 4]
    return out


def pixels(path):
    return np.asarray(Image.open(path))


def error_lines(stderr):
    return [l for l in stderr.splitlines() if l.startswith("imgpar: ")]


def main():
    imgpar = sys.argv[1]
    threads_only = "--threads-only" in sys.argv[2:]
    tmp = tempfile.mkdtemp(prefix="imgpar-psd-")
    env = dict(os.environ, IMGPAR_TEST_PNG_STRIP_MIN=STRIP_MIN)
    env.pop("IMGPAR_PNG_FAST", None)
    configs = [["--threads", "-j", "4"]]
    if not threads_only:
        configs += [["-j", "2"], ["--procs", "-j", "4"], ["--threads", "-j", "3", "--io-threads", "2"]]
    images = [("rgb", photo_like(1000, 700, 1)), ("rgba", photo_like(640, 500, 2, 4)),
              ("gray", photo_like(1500, 900, 3, 1)), ("flat", flat_pattern(900, 600, 3))]
    if threads_only:
        images = images[:1]
    stripped = 0
    for name, arr in images:
        d = os.path.join(tmp, name)
        os.makedirs(os.path.join(d, "src"))
        mode = {1: "L", 3: "RGB", 4: "RGBA"}[arr.shape[2]] if arr.ndim == 3 else "L"
        Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr, mode).save(os.path.join(d, "src", name + ".png"))
        # imgpar's strip PNG of it.
        run(imgpar, ["-j", "1", "--no-filter", "--format", "png", os.path.join(d, "src", name + ".png"),
                     os.path.join(d, "huge")], env, 0)
        huge = os.path.join(d, "huge", name + ".png")
        data = open(huge, "rb").read()
        ch = chunks(data)
        layout = [c for c in ch if c[0] == b"ipST"]
        idats = [c for c in ch if c[0] == b"IDAT"]
        check(len(layout) == 1, "%s: %d ipST chunks" % (name, len(layout)))
        if not layout:
            continue
        body = data[layout[0][1]:layout[0][1] + layout[0][2]]
        rows, count = struct.unpack(">II", body[:8])
        offsets = struct.unpack(">%dQ" % (count - 1), body[8:])
        zlen = sum(c[2] for c in idats)
        check(count >= 2 and list(offsets) == sorted(offsets) and 2 < offsets[0] and offsets[-1] < zlen - 4
              and (count - 1) * rows < arr.shape[0] <= count * rows,
              "%s: layout %d rows x %d strips, offsets %s.. of %d" % (name, rows, count, offsets[:3], zlen))
        want = arr[:, :, 0] if arr.shape[2] == 1 else arr
        check(np.array_equal(pixels(huge), want), "%s: Pillow does not decode imgpar's PNG to the source" % name)

        # Decoded at -j1 and with strips.
        ref_dir = os.path.join(d, "j1")
        p = run(imgpar, ["-j", "1", "--stats", "--no-filter", "--format", "png", huge, ref_dir], env, 0)
        check(STRIPS_LINE not in p.stderr, "%s -j1: decoded by strips" % name)
        ref = read_out(ref_dir)
        check(np.array_equal(pixels(os.path.join(ref_dir, name + ".png")), want), "%s -j1: pixels differ" % name)
        for i, cfg in enumerate(configs):
            od = os.path.join(d, "c%d" % i)
            p = run(imgpar, cfg + ["--stats", "--no-filter", "--format", "png", huge, od], env, 0)
            check(STRIPS_LINE in p.stderr, "%s %s: not decoded by strips" % (name, " ".join(cfg)))
            stripped += STRIPS_LINE in p.stderr
            check(read_out(od) == ref, "%s %s: output differs from -j1" % (name, " ".join(cfg)))

        # Without the chunk: decoded whole, the same bytes.
        plain = os.path.join(d, "plain", name + ".png")
        os.makedirs(os.path.dirname(plain))
        open(plain, "wb").write(without_chunk(data, b"ipST"))
        od = os.path.join(d, "plain-out")
        p = run(imgpar, ["-j", "4", "--stats", "--no-filter", "--format", "png", plain, od], env, 0)
        check(STRIPS_LINE not in p.stderr, "%s without ipST: decoded by strips" % name)
        check(read_out(od) == ref, "%s without ipST: output differs" % name)

        # The default chain.
        outs = []
        for j in ("1", "4") if not threads_only else ():
            od = os.path.join(d, "chain-j" + j)
            run(imgpar, ["-j", j, huge, od], env, 0)
            outs.append(read_out(od))
        check(threads_only or (outs[0] == outs[1] and len(outs[0]) == 1),
              "%s: default chain differs between -j1 and -j4" % name)

        # Damaged inside a middle strip.
        mid = offsets[len(offsets) // 2] + 50
        bad = bytearray(data)
        at = None
        for n, b, length in idats:   # the zlib stream runs through the IDATs in order
            if mid < length:
                at = (b, length)
                bad[b + mid] ^= 0x08
                break
            mid -= length
        check(at is not None, "%s: no IDAT byte to damage" % name)
        if at:
            b, length = at
            bad[b + length:b + length + 4] = struct.pack(">I", zlib.crc32(bytes(bad[b - 4:b + length])))
            bd = os.path.join(d, "bad")
            os.makedirs(bd)
            open(os.path.join(bd, "bad.png"), "wb").write(bytes(bad))
            open(os.path.join(bd, "good.png"), "wb").write(data)
            res = []
            for j in ("1", "4"):
                od = os.path.join(d, "bad-j" + j)
                p = run(imgpar, ["-j", j, "--no-filter", "--format", "png", bd, od], env)
                res.append((p.returncode, error_lines(p.stderr), read_out(od) if os.path.isdir(od) else {}))
            check(res[0] == res[1], "%s damaged: -j1 %s vs -j4 %s" % (name, res[0][:2], res[1][:2]))
            check(res[0][0] == 1 and len(res[0][1]) == 1 and "bad.png" in res[0][1][0] and
                  list(res[0][2]) == ["good.png"],
                  "%s damaged: expected exit 1, one error line for bad.png, good.png written: %s" % (name, res[0][:2]))
    check(stripped == len(images) * len(configs), "only %d runs decoded by strips" % stripped)
    if FAILS:
        print("%d failure(s)" % len(FAILS))
        return 1
    print("ok: %d images, %d strip decodes" % (len(images), stripped))
    return 0


if __name__ == "__main__":
    sys.exit(main())
