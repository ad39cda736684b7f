#!/usr/bin/python3
"""Planning: output name collisions and outputs that are inputs are refused
before any work (exit 2); OUTDIR is created when missing; directory inputs
take their image files only, sorted.

usage: test_plan.py IMGPAR SAMPLES
"""
import os
import re
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cliutil import check, expect_rc, listdir, main, sha256  # noqa: E402


def no_outputs(out):
    """OUTDIR may have been created, but holds nothing."""
    return listdir(out) == []


def check_name_collision(env):
    base = env.fresh_dir("in")
    for sub in ("a", "b"):
        os.makedirs(os.path.join(base, sub))
    a = os.path.join(base, "a", "x.png")
    b = os.path.join(base, "b", "x.png")
    shutil.copy(env.sample("gray8.png"), a)
    shutil.copy(env.sample("rgb8.png"), b)
    good = env.sample("rgba8.png")   # a file that would have been fine on its own
    out = os.path.join(env.fresh_dir("o"), "out")
    r = env.run(good, a, b, out)
    expect_rc(r, 2)
    check(a in r.err and b in r.err, "stderr does not name both %s and %s\n%s" % (a, b, r.describe()))
    check(no_outputs(out), "collision: OUTDIR holds %s" % listdir(out))

    # Different input names, same output name: x.bmp becomes x.png.
    from PIL import Image
    bmp = os.path.join(base, "b", "x.bmp")
    Image.open(env.sample("rgb8.png")).save(bmp)
    out = env.fresh_dir("out")
    r = env.run(a, bmp, out)
    expect_rc(r, 2)
    check(a in r.err and bmp in r.err, "stderr does not name both inputs\n" + r.describe())
    check(no_outputs(out), "collision: OUTDIR holds %s" % listdir(out))

    # The same file twice is a collision too.
    out = env.fresh_dir("out")
    r = env.run(a, a, out)
    expect_rc(r, 2)
    check(no_outputs(out), "duplicate input: OUTDIR holds %s" % listdir(out))

    # Through directories: a/ and b/ both hold x.png.
    out = env.fresh_dir("out")
    r = env.run(os.path.join(base, "a"), os.path.join(base, "b"), out)
    expect_rc(r, 2)
    check(re.search(r"a/+x\.png", r.err) and re.search(r"b/+x\.png", r.err),
          "stderr does not name both a/x.png and b/x.png\n" + r.describe())
    check(no_outputs(out), "collision: OUTDIR holds %s" % listdir(out))


def snapshot(d):
    return {n: (sha256(os.path.join(d, n)), os.stat(os.path.join(d, n)).st_mtime_ns)
            for n in listdir(d)}


def check_output_is_input(env):
    d = env.fresh_dir("in")
    for n in ("gray8.png", "photo.jpg"):
        shutil.copy(env.sample(n), d)
    before = snapshot(d)
    for args in ([os.path.join(d, "gray8.png")], [os.path.join(d, "photo.jpg")], [d],
                 [env.sample("rgb8.png"), os.path.join(d, "gray8.png")]):
        r = env.run(*args, d)
        expect_rc(r, 2)
        named = [n for n in ("gray8.png", "photo.jpg") if n in r.err]
        check(named, "refusal does not name the input\n" + r.describe())
        check(snapshot(d) == before, "%s: input directory changed: %s" % (args, listdir(d)))
    # OUTDIR spelled differently (trailing slash, ./ and ..) is still the same directory.
    r = env.run(os.path.join(d, "gray8.png"), d + "/./")
    expect_rc(r, 2)
    check(snapshot(d) == before, "input directory changed")


def check_output_is_input_symlink(env):
    d = env.fresh_dir("in")
    shutil.copy(env.sample("gray8.png"), d)
    before = snapshot(d)
    link = os.path.join(env.fresh_dir("links"), "outlink")
    os.symlink(d, link)
    r = env.run(os.path.join(d, "gray8.png"), link)
    expect_rc(r, 2)
    check("gray8.png" in r.err, "refusal does not name the input\n" + r.describe())
    check(snapshot(d) == before, "input changed through a symlinked OUTDIR")
    # And the other way: the input reached through the link, OUTDIR the real one.
    r = env.run(os.path.join(link, "gray8.png"), d)
    expect_rc(r, 2)
    check(snapshot(d) == before, "input changed when read through a symlink")
    # A hard link to the input in OUTDIR is the same file as well.
    out = env.fresh_dir("out")
    os.link(os.path.join(d, "gray8.png"), os.path.join(out, "gray8.png"))
    r = env.run(os.path.join(d, "gray8.png"), out)
    expect_rc(r, 2)
    check(snapshot(d) == before, "input changed through a hard link in OUTDIR")


def check_outdir_created(env):
    out = os.path.join(env.fresh_dir("o"), "deep", "er", "out")
    r = env.run(env.sample("gray8.png"), env.sample("photo.jpg"), out)
    expect_rc(r, 0)
    check(listdir(out) == ["gray8.png", "photo.jpg"], "nested OUTDIR holds %s" % listdir(out))
    # An existing output is replaced, not appended to or refused.
    first = sha256(os.path.join(out, "gray8.png"))
    r = env.run("--box", "1", env.sample("gray8.png"), out)
    expect_rc(r, 0)
    check(sha256(os.path.join(out, "gray8.png")) != first, "existing output not replaced")
    # OUTDIR that is a regular file: refused, file untouched.
    f = os.path.join(env.fresh_dir("o"), "file")
    with open(f, "wb") as fh:
        fh.write(b"keep")
    r = env.run(env.sample("gray8.png"), f)
    check(r.rc in (2, 3), "OUTDIR is a file: exit %d\n%s" % (r.rc, r.describe()))
    with open(f, "rb") as fh:
        check(fh.read() == b"keep", "OUTDIR file was modified")


def check_directory_input(env):
    d = env.fresh_dir("in")
    images = {"b.png": "rgb8.png", "a.jpg": "gray.jpg", "c.png": "gray8.png",
              "B-upper.png": "palette.png", "noext": "rgba8.png"}
    for dst, src in images.items():
        shutil.copy(env.sample(src), os.path.join(d, dst))
    # Not images and not named like one (an empty or text .png fails
    # instead: tests/cli/test_bad_files.py), or hidden.
    for junk, data in [("README.txt", b"not an image\n"), ("data.json", b"{}"),
                       ("empty", b""), (".hidden", b"x"), ("._b.png", b"\x00\x05\x16\x07" + bytes(60))]:
        with open(os.path.join(d, junk), "wb") as f:
            f.write(data)
    os.makedirs(os.path.join(d, "subdir.png"))
    shutil.copy(env.sample("rgb16.png"), os.path.join(d, "subdir.png", "inner.png"))
    out = env.fresh_dir("out")
    # --in-order: the directory's files in name order (by default the
    # largest go first: tests/batch/test_order.py).
    r = env.run("--serial", "-j", "1", "--in-order", "-v", d, out)
    expect_rc(r, 0)
    expected = sorted(["b.png", "a.jpg", "c.png", "B-upper.png", "noext.png"])
    check(listdir(out) == expected, "outputs %s, expected %s" % (listdir(out), expected))
    # No line for skipped files; one verbose line per image, in sorted order.
    lines = r.err.splitlines()
    check(len(lines) == len(images), "expected %d verbose lines\n%s" % (len(images), r.describe()))
    order = [re.match(r"imgpar: (.*?) -> ", l).group(1) for l in lines]
    want = [os.path.join(d, n) for n in sorted(images)]
    check([os.path.normpath(p) for p in order] == want,
          "processed in order %s, expected sorted %s" % (order, want))
    # Quiet run: no output at all on success.
    out = env.fresh_dir("out")
    r = env.run(d, out)
    expect_rc(r, 0)
    check(r.err == "" and r.out == "", "a clean run printed something\n" + r.describe())
    check(listdir(out) == expected, "outputs %s, expected %s" % (listdir(out), expected))


def check_empty_directory(env):
    d = env.fresh_dir("empty")
    with open(os.path.join(d, "notes.txt"), "w") as f:
        f.write("nothing to see\n")
    out = env.fresh_dir("out")
    r = env.run(d, out)
    expect_rc(r, 0)
    check(listdir(out) == [], "outputs from a directory without images: %s" % listdir(out))


if __name__ == "__main__":
    main([check_name_collision, check_output_is_input, check_output_is_input_symlink,
          check_outdir_created, check_directory_input, check_empty_directory])
