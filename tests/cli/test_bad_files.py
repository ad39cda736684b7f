#!/usr/bin/python3
"""A batch with bad files among good ones: exit 1, one 'imgpar: PATH: reason'
line per bad file, no output for them, every good output present and correct.

usage: test_bad_files.py IMGPAR SAMPLES CONFORMANCE
"""
import json
import os
import random
import re
import shutil
import struct
import sys
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cliutil import (check, compare, expect_rc, gauss_ref, gray_ref, listdir, load,  # noqa: E402
                     main, tree_sums)

GOOD = ["gray8.png", "photo.jpg", "rgba8.png", "progressive.jpg"]


def make_bad_files(env):
    """Returns (paths, names of outputs none of them may produce)."""
    d = env.fresh_dir("bad")
    paths = []

    def put(name, data):
        p = os.path.join(d, name)
        with open(p, "wb") as f:
            f.write(data)
        paths.append(p)

    put("empty.png", b"")
    put("notes.txt", b"these are not the pixels you are looking for\n" * 20)
    with open(env.sample("rgb8.png"), "rb") as f:
        png = f.read()
    put("cut.png", png[: len(png) // 2])
    with open(env.sample("photo.jpg"), "rb") as f:
        jpg = f.read()
    put("cut.jpg", jpg[: len(jpg) // 2])
    # All 14 of PngSuite's deliberately corrupt files (x*.png): mangled
    # signatures, bad CRCs, bad bit depths and colour types, missing IDAT...
    suite = os.path.join(env.conformance, "pngsuite", "png")
    corrupt = sorted(n for n in os.listdir(suite) if n.startswith("x") and n.endswith(".png"))
    check(len(corrupt) == 14, "expected 14 x*.png in %s, found %s" % (suite, corrupt))
    paths += [os.path.join(suite, n) for n in corrupt]
    paths.append(os.path.join(d, "does-not-exist.png"))
    forbidden = {"empty.png", "notes.txt", "notes.png", "cut.png", "cut.jpg", "does-not-exist.png"}
    forbidden |= set(corrupt)
    return paths, forbidden


def parse_error_lines(r, bad_paths):
    lines = r.err.splitlines()
    check(len(lines) == len(bad_paths),
          "expected %d stderr lines, one per bad file\n%s" % (len(bad_paths), r.describe()))
    seen = []
    for line in lines:
        m = re.fullmatch(r"imgpar: (.+?): (\S.*)", line)
        check(m, "stderr line not of the form 'imgpar: PATH: reason': %r" % line)
        path = next((p for p in bad_paths if line.startswith("imgpar: %s: " % p)), None)
        check(path is not None, "stderr line names no bad input: %r" % line)
        reason = line[len("imgpar: %s: " % path):]
        check(reason.strip() != "", "empty reason: %r" % line)
        seen.append(path)
    check(sorted(seen) == sorted(bad_paths),
          "stderr lines name %s, expected each of %s once" % (sorted(seen), sorted(bad_paths)))


def check_mixed_batch(env):
    bad, forbidden = make_bad_files(env)
    good = [env.sample(n) for n in GOOD]
    # Reference outputs: the good files alone.
    clean = env.fresh_dir("clean")
    expect_rc(env.run(*good, clean), 0)
    check(listdir(clean) == sorted(GOOD), "clean run wrote %s" % listdir(clean))
    clean_sums = tree_sums(clean)

    # Interleave bad and good inputs.
    inputs = []
    for i in range(max(len(bad), len(good))):
        inputs += bad[i:i + 1] + good[i:i + 1]
    for opts in ([], ["--serial"], ["--procs", "-j", "2"]):
        out = env.fresh_dir("mixed")
        r = env.run(*opts, *inputs, out)
        expect_rc(r, 1)
        parse_error_lines(r, bad)
        names = listdir(out)
        check(not forbidden & set(names), "%s: outputs for bad files: %s" % (
            opts, sorted(forbidden & set(names))))
        check(names == sorted(GOOD), "%s: outputs %s, expected %s" % (opts, names, sorted(GOOD)))
        check(tree_sums(out) == clean_sums,
              "%s: good outputs differ from a run without the bad files" % opts)

    # And one good output is right, not just the same as another run.
    src, mode = load(env.sample("gray8.png"))
    got, _ = load(os.path.join(clean, "gray8.png"))
    g, _ = gray_ref(src, mode)
    compare("gray8.png in a mixed batch", got, gauss_ref(g, 2.0, False), 1)


def check_bad_in_directory(env):
    """Inside a directory, truncated images (right magic) fail, and so do
    entries that cannot be opened (a dangling link, a link loop) and files
    named like images that are not (empty, text, a name in capitals), with
    the reason a named INPUT gets; files neither images nor named like one,
    hidden names (macOS's ._x.jpg) and FIFOs are skipped."""
    d = env.fresh_dir("dir")
    for n in GOOD:
        shutil.copy(env.sample(n), d)
    with open(env.sample("rgb8.png"), "rb") as f:
        png = f.read()
    with open(os.path.join(d, "b-cut.png"), "wb") as f:
        f.write(png[: len(png) // 3])
    with open(os.path.join(d, "a-empty.png"), "wb") as f:
        pass  # zero bytes, named like an image: fails
    with open(os.path.join(d, "g-text.JPEG"), "w") as f:
        f.write("not an image either\n")
    with open(os.path.join(d, "f-notes.txt"), "w") as f:
        f.write("not an image\n")  # skipped
    with open(os.path.join(d, "h-data.bin"), "wb") as f:
        f.write(bytes(range(256)))  # skipped
    with open(os.path.join(d, "._photo.jpg"), "wb") as f:
        f.write(b"\x00\x05\x16\x07" + bytes(60))  # an AppleDouble header: skipped
    os.symlink("/nonexistent/imgpar-test.png", os.path.join(d, "c-dangling.png"))
    os.symlink("d-loop", os.path.join(d, "d-loop"))
    os.mkfifo(os.path.join(d, "e-fifo.png"))
    reasons = {os.path.join(d, "b-cut.png"): "truncated PNG data",
               os.path.join(d, "a-empty.png"): "empty file",
               os.path.join(d, "g-text.JPEG"): "not a recognized image format",
               os.path.join(d, "c-dangling.png"): "No such file or directory",
               os.path.join(d, "d-loop"): "Too many levels of symbolic links"}
    for opts in ([], ["--procs", "-j", "2"]):
        out = env.fresh_dir("out")
        rep = os.path.join(env.tmp, "dir-report.jsonl")
        r = env.run(*opts, "--report", rep, d, out)
        expect_rc(r, 1)
        parse_error_lines(r, list(reasons))
        for path, why in reasons.items():
            check("imgpar: %s: %s" % (path, why) in r.err, "%s: no '%s' line\n%s" % (path, why, r.describe()))
        check(listdir(out) == sorted(GOOD), "%s: outputs %s, expected %s" % (opts, listdir(out), sorted(GOOD)))
        with open(rep) as f:
            recs = [json.loads(line) for line in f]
        failed = sorted(rec["path"] for rec in recs if rec["status"] == "failed")
        check(failed == sorted(reasons), "%s: failed records %s, expected %s" % (opts, failed, sorted(reasons)))
        check(len(recs) == len(GOOD) + len(reasons), "%s: %d records, expected one per image and per bad entry"
              % (opts, len(recs)))


def check_only_bad(env):
    bad, forbidden = make_bad_files(env)
    out = env.fresh_dir("out")
    r = env.run(*bad, out)
    expect_rc(r, 1)
    parse_error_lines(r, bad)
    check(listdir(out) == [], "outputs %s from bad files only" % listdir(out))


def png_chunk(name, body):
    return struct.pack(">I", len(body)) + name + body + struct.pack(">I", zlib.crc32(name + body))


def check_damaged_late(env):
    """A PNG whose image data is damaged three quarters in, CRCs intact. At
    -j16 the loader gives the file's pages back while inflating (16 loaders
    x 1.9 MB is over 16 MiB), so the fast path cannot leave the file to
    libpng: the file is read again. The reason must be -j1's (where
    nothing is given back), and a good file beside it is written."""
    d = env.fresh_dir("late")
    rng = random.Random(5)
    w, h = 800, 800
    rows = b"".join(b"\0" + rng.randbytes(3 * w) for _ in range(h))
    z = bytearray(zlib.compress(rows, 1))
    z[len(z) * 3 // 4] ^= 0x5A
    idats = b"".join(png_chunk(b"IDAT", bytes(z[i:i + 65536])) for i in range(0, len(z), 65536))
    png = (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + idats
           + png_chunk(b"IEND", b""))
    check(len(png) > 1800000, "the damaged PNG is only %d bytes" % len(png))
    bad = os.path.join(d, "late.png")
    with open(bad, "wb") as f:
        f.write(png)
    good = env.sample("rgb8.png")
    lines = {}
    for opts in (["-j", "1"], ["-j", "16"], ["--procs", "-j", "16"]):
        out = env.fresh_dir("late-out")
        r = env.run(*opts, bad, good, out)
        expect_rc(r, 1)
        parse_error_lines(r, [bad])
        lines[" ".join(opts)] = r.err.strip()
        check(listdir(out) == ["rgb8.png"], "%s: outputs %s, expected rgb8.png only" % (opts, listdir(out)))
    check(len(set(lines.values())) == 1, "the reason depends on -j: %s" % lines)
    check("IDAT" in lines["-j 1"], "libpng's reason expected, got %r" % lines["-j 1"])


if __name__ == "__main__":
    main([check_mixed_batch, check_bad_in_directory, check_only_bad, check_damaged_late])
