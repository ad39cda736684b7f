#!/usr/bin/python3
"""Output format and name rules: the format comes from magic bytes, JPEG stays
JPEG, everything else becomes PNG, --format overrides, and the extension is
changed only when it does not name the output format.

usage: test_formats.py IMGPAR SAMPLES
"""
import os
import shutil
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cliutil import (JPEG_MAGIC, PNG_MAGIC, check, compare, expect_rc, gray601, gray_ref,  # noqa: E402
                     head, listdir, load, main)


def run_single(env, src, *opts, expect):
    """Runs imgpar on one file and checks that exactly OUTDIR/expect appears."""
    out = env.fresh_dir("out")
    r = env.run(*opts, src, out)
    expect_rc(r, 0)
    check(listdir(out) == [expect], "%s %s: outputs %s, expected [%s]" % (
        " ".join(opts), os.path.basename(src), listdir(out), expect))
    return os.path.join(out, expect)


def pil_format(path):
    with Image.open(path) as im:
        im.load()
        return im.format, im.size


def check_jpeg_stays_jpeg(env):
    for name in ["photo.jpg", "gray.jpg", "progressive.jpg"]:
        p = run_single(env, env.sample(name), expect=name)
        check(head(p, 3) == JPEG_MAGIC, "%s: output is not a JPEG" % name)
        with Image.open(env.sample(name)) as im:
            size = im.size
        check(pil_format(p) == ("JPEG", size), "%s: Pillow reads %s" % (name, pil_format(p)))
    # Other JPEG extensions, any case, are kept as they are.
    d = env.fresh_dir("ext")
    for name in ["upper.JPG", "long.jpeg"]:
        shutil.copy(env.sample("photo.jpg"), os.path.join(d, name))
        p = run_single(env, os.path.join(d, name), expect=name)
        check(head(p, 3) == JPEG_MAGIC, "%s: output is not a JPEG" % name)


def check_png_stays_png(env):
    for name in ["rgb8.png", "palette.png", "rgb16.png"]:
        p = run_single(env, env.sample(name), expect=name)
        check(head(p) == PNG_MAGIC, "%s: output is not a PNG" % name)


def check_other_formats_become_png(env):
    d = env.fresh_dir("in")
    src, _ = load(env.sample("rgb8.png"))
    Image.fromarray(src, "RGB").save(os.path.join(d, "pic.bmp"))
    Image.fromarray(src, "RGB").quantize(64).save(os.path.join(d, "anim.gif"))
    Image.fromarray(src, "RGB").save(os.path.join(d, "pic.ppm"))
    for name, stem in [("pic.bmp", "pic"), ("anim.gif", "anim"), ("pic.ppm", "pic")]:
        inp = os.path.join(d, name)
        p = run_single(env, inp, "--gray", expect=stem + ".png")
        check(head(p) == PNG_MAGIC, "%s: output is not a PNG" % name)
        with Image.open(inp) as im:
            decoded = np.asarray(im.convert("RGB"))
        got, mode = load(p)
        ref, rmode = gray_ref(decoded, "RGB")
        check(mode == rmode, "%s: output mode %s, expected %s" % (name, mode, rmode))
        compare("%s --gray" % name, got, ref, 0)


def check_magic_not_name(env):
    """A PNG named .jpg is decoded as PNG and written as PNG named .png; a JPEG
    named .png is written as JPEG named .jpg."""
    d = env.fresh_dir("in")
    fake = os.path.join(d, "really-png.jpg")
    shutil.copy(env.sample("gray8.png"), fake)
    p = run_single(env, fake, "--gray", expect="really-png.png")
    check(head(p) == PNG_MAGIC, "PNG named .jpg: output is not a PNG")
    src, mode = load(env.sample("gray8.png"))
    compare("PNG named .jpg", load(p)[0], gray_ref(src, mode)[0], 0)

    fake = os.path.join(d, "really-jpeg.png")
    shutil.copy(env.sample("photo.jpg"), fake)
    p = run_single(env, fake, expect="really-jpeg.jpg")
    check(head(p, 3) == JPEG_MAGIC, "JPEG named .png: output is not a JPEG")


def check_format_jpg(env):
    for name in ["rgb8.png", "rgba8.png", "gray8.png", "palette.png"]:
        stem = name[:-4]
        for opts in (["--format", "jpg"], ["--format=jpeg", "--no-filter"]):
            p = run_single(env, env.sample(name), *opts, expect=stem + ".jpg")
            check(head(p, 3) == JPEG_MAGIC, "%s %s: output is not a JPEG" % (name, opts))
            with Image.open(env.sample(name)) as im:
                size = im.size
            check(pil_format(p) == ("JPEG", size), "%s %s: Pillow reads %s" % (
                name, opts, pil_format(p)))
    # The pixels survive JPEG: --no-filter of an RGB PNG at quality 100 keeps the
    # luma within a level or two (chroma is 4:2:0, so compare luma only).
    p = run_single(env, env.sample("rgb8.png"), "--format", "jpg", "--no-filter",
                   "--quality", "100", expect="rgb8.jpg")
    src, _ = load(env.sample("rgb8.png"))
    got, mode = load(p)
    check(mode == "RGB", "rgb8.jpg mode %s" % mode)
    diff = np.abs(gray601(got).astype(float) - gray601(src).astype(float))
    check(diff.mean() < 0.5 and diff.max() <= 4,
          "JPEG at quality 100: luma off by %.2f on average, %d at most" % (diff.mean(), diff.max()))


def check_format_png(env):
    for name in ["photo.jpg", "gray.jpg"]:
        stem = name[:-4]
        p = run_single(env, env.sample(name), "--format", "png", expect=stem + ".png")
        check(head(p) == PNG_MAGIC, "%s --format png: output is not a PNG" % name)
        check(pil_format(p)[0] == "PNG", "%s --format png: Pillow reads %s" % (name, pil_format(p)))
    # PNG in, --format png: name unchanged.
    run_single(env, env.sample("gray8.png"), "--format", "png", expect="gray8.png")


if __name__ == "__main__":
    main([check_jpeg_stays_jpeg, check_png_stays_png, check_other_formats_become_png,
          check_magic_not_name, check_format_jpg, check_format_png])
