#!/usr/bin/python3
"""The prefault helper of a huge image decoded on one core (loader.c).

While a loader decodes a huge image whole (a PNG; a JPEG without restart
markers whose strips are not found, here because IMGPAR_JPEG_FAST=0 turns
the fast entropy decoders off), a helper thread on a free CPU token maps the decoded image's
pages ahead of the decoder with madvise(MADV_POPULATE_WRITE), 2 MiB at a
time from the top, so the kernel clears them on another core. The shim
(shim.c) logs every such call as "populate LEN". The strip threshold is
lowered (IMGPAR_TEST_PNG_STRIP_MIN) so that small images count as huge.

Checked, with --threads (private arena) and --procs (shared memory):
- one image at a time (--io-threads 1 --queue 1, so the second token is
  free while each image decodes): every image gets a helper whose calls
  cover exactly its decoded pixels, no more (the PNG decoder's rows carry
  one spare byte: (3 * width + 1) * height bytes; a JPEG that the decoder
  makes gray: width * height), in 2 MiB steps; the first step always runs,
  a later one only while the decode lasts;
- no helper at -j1, with IMGPAR_PREFAULT=0, or under the threshold;
- the outputs are byte-identical in every one of those runs;
- a huge PNG whose deflate stream is damaged midway (the fast decoder
  allocates, fails and frees; libpng allocates again, and fails): its
  helpers are stopped before each free, the file gets its one error line,
  the other files are written, exit 1.

usage: test_prefault.py IMGPAR SAMPLES CONFORMANCE SHIM
"""
import os
import struct
import sys
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hutil import check, error_lines, expect, main, png_chunk, run, shim_env  # noqa: E402

STEP = 2 << 20


def populate_calls(log):
    lines = open(log).read().splitlines() if os.path.exists(log) else []
    return [int(l.split()[1]) for l in lines if l.startswith("populate ")]


def make_inputs(d):
    from PIL import Image
    import numpy as np
    rng = np.random.default_rng(11)
    shapes = {}
    # Smooth colour (compressible, like a photo) plus a little noise.
    for name, (w, h) in [("small.png", (600, 400)), ("tall.png", (700, 1300)), ("photo.jpg", (640, 480))]:
        y, x = np.mgrid[0:h, 0:w]
        rgb = np.stack([(x * 255 // w), (y * 255 // h), ((x + y) * 255 // (w + h))], axis=2)
        rgb = (rgb + rng.integers(0, 8, rgb.shape)).clip(0, 255).astype(np.uint8)
        im = Image.fromarray(rgb)
        if name.endswith(".png"):
            im.save(os.path.join(d, name))
            shapes[name] = (3 * w + 1) * h
        else:
            im.save(os.path.join(d, name), quality=90)   # Pillow writes no restart markers
            shapes[name] = w * h
    return shapes


def check_prefault(env):
    src = env.fresh_dir("in")
    src_bytes = make_inputs(src)
    log = os.path.join(env.tmp, "shim.log")
    outputs = {}

    def go(tag, *opts, prefault=None, strip_min="100000"):
        e = shim_env(log)
        e["IMGPAR_JPEG_FAST"] = "0"   # the JPEG decoded whole (codec_jpeg_seq.c would split it)
        if strip_min:
            e["IMGPAR_TEST_PNG_STRIP_MIN"] = strip_min
        if prefault is not None:
            e["IMGPAR_PREFAULT"] = prefault
        out = env.fresh_dir("out-" + tag)
        r = run(env.imgpar, "--io-threads", "1", "--queue", "1", *opts, src, out, env=e)
        expect(r, 0)
        names = sorted(os.listdir(out))
        check(names == sorted(src_bytes), "%s: outputs %s" % (tag, names))
        outputs[tag] = {n: open(os.path.join(out, n), "rb").read() for n in names}
        return populate_calls(log)

    small, jpg, tall = src_bytes["small.png"], src_bytes["photo.jpg"], src_bytes["tall.png"]
    # The tall PNG is the only image over 2 MiB: a 2 MiB step, then the rest
    # unless its decode ended first.
    want = [sorted([small, jpg, STEP]), sorted([small, jpg, STEP, tall - STEP])]
    for strategy in ("--threads", "--procs"):
        calls = go("j2" + strategy, "-j", "2", strategy)
        check(sorted(calls) in want, "%s: populate calls %s, wanted %s or %s" % (strategy, calls, *want))
        print("  %s -j2: populate calls %s (decoded pixels %s)" % (strategy, calls, src_bytes))
    for tag, opts, prefault, strip_min in [("j1", ("-j", "1"), None, "100000"),
                                           ("off", ("-j", "2"), "0", "100000"),
                                           ("small", ("-j", "2"), None, None)]:
        calls = go(tag, *opts, prefault=prefault, strip_min=strip_min)
        check(calls == [], "%s: populate calls %s, wanted none" % (tag, calls))
    ref = outputs["off"]
    for tag in ("j2--threads", "j2--procs", "j1"):   # "small" has other strips: other bytes
        check(outputs[tag] == ref, "%s: outputs differ from the run without the helper" % tag)
    print("  no helper at -j1, with IMGPAR_PREFAULT=0 or under the threshold; outputs identical")


def check_damaged(env):
    import numpy as np
    src = env.fresh_dir("bad-in")
    rng = np.random.default_rng(5)
    w, h = 700, 1300
    rows = rng.integers(0, 64, (h, 3 * w), dtype=np.uint8)
    raw = b"".join(b"\0" + rows[y].tobytes() for y in range(h))
    z = bytearray(zlib.compress(raw, 6))
    mid = len(z) // 2
    z[mid:mid + 64] = bytes(b ^ 0x5A for b in z[mid:mid + 64])
    bad = os.path.join(src, "bad.png")
    with open(bad, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
                png_chunk(b"IDAT", bytes(z)) + png_chunk(b"IEND", b""))
    # Alone, with the shim: two helpers (the fast decoder's rows of 3w + 1
    # bytes, then libpng's of 3w), each a first 2 MiB step.
    log = os.path.join(env.tmp, "bad.log")
    r = run(env.imgpar, "-j", "2", bad, env.fresh_dir("bad-alone"),
            env=shim_env(log, IMGPAR_TEST_PNG_STRIP_MIN="100000"))
    expect(r, 1)
    error_lines(r, {bad.encode(): "IDAT"})
    calls = populate_calls(log)
    check(calls.count(STEP) == 2 and set(calls) <= {STEP, (3 * w + 1) * h - STEP, 3 * w * h - STEP},
          "populate calls for the damaged PNG: %s" % calls)
    make_inputs(src)
    e = dict(os.environ, IMGPAR_TEST_PNG_STRIP_MIN="100000")
    for strategy in ("--threads", "--procs"):
        out = env.fresh_dir("bad-out")
        r = run(env.imgpar, "-j", "2", strategy, src, out, env=e)
        expect(r, 1)
        error_lines(r, {bad.encode(): "IDAT"})
        names = sorted(os.listdir(out))
        check(names == ["photo.jpg", "small.png", "tall.png"], "%s: outputs %s" % (strategy, names))
    print("  a damaged huge PNG: one error line, the other three written, exit 1 (both strategies)")


if __name__ == "__main__":
    main([check_prefault, check_damaged])
