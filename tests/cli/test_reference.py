#!/usr/bin/python3
"""imgpar's pixels against an independent numpy reference (see cliutil).

usage: test_reference.py IMGPAR SAMPLES
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cliutil import (check, compare, expect_rc, gauss_ref, box_ref, gray601, gray_ref,  # noqa: E402
                     load, main, PNG_MAGIC, head, listdir)

PNG_INPUTS = ["rgb8.png", "rgba8.png", "gray8.png"]
# Blurred outputs may be off by one from the float reference, but only rarely.
OFF_FRAC = 0.01


def run_one(env, name, *opts):
    out = env.fresh_dir("out")
    r = env.run(*opts, env.sample(name), out)
    expect_rc(r, 0)
    check(listdir(out) == [name], "%s: outputs %s, expected [%s]" % (name, listdir(out), name))
    path = os.path.join(out, name)
    check(head(path) == PNG_MAGIC, "%s: output is not a PNG" % name)
    return load(path)


def expected_gray_mode(mode):
    return {"RGB": "L", "RGBA": "LA", "L": "L"}[mode]


def check_default_chain(env):
    """Default chain (gray, then Gaussian sigma 2) within 1 level."""
    for name in PNG_INPUTS:
        src, mode = load(env.sample(name))
        got, got_mode = run_one(env, name)
        g, gmode = gray_ref(src, mode)
        check(got_mode == gmode, "%s: output mode %s, expected %s" % (name, got_mode, gmode))
        ref = gauss_ref(g, 2.0, has_alpha=(gmode == "LA"))
        compare("%s default chain" % name, got, ref, 1, OFF_FRAC)
        # Not vacuous: the blur changed the image a lot and the output follows it.
        check(np.abs(g.astype(int) - ref.astype(int)).max() > 10,
              "%s: reference blur barely changes the image" % name)


def check_gray_exact(env):
    for name in PNG_INPUTS:
        src, mode = load(env.sample(name))
        got, got_mode = run_one(env, name, "--gray")
        ref, rmode = gray_ref(src, mode)
        check(got_mode == rmode, "%s: --gray mode %s, expected %s" % (name, got_mode, rmode))
        compare("%s --gray" % name, got, ref, 0)


def check_gray_709(env):
    src, _ = load(env.sample("rgb8.png"))
    got, _ = run_one(env, "rgb8.png", "--gray=709")
    v = src.astype(np.int64)
    ref = ((2126 * v[..., 0] + 7152 * v[..., 1] + 722 * v[..., 2] + 5000) // 10000).astype(np.uint8)
    compare("rgb8.png --gray=709", got, ref, 0)
    check((ref != gray601(src)).any(), "709 and 601 references are identical: test is vacuous")


def check_jpeg_decoded_gray(env):
    """A colour JPEG's leading gray is made by the decoder, row by row: the
    pixels are the gray of the RGB decode (Pillow's, the same libjpeg-turbo),
    exactly for --gray and --gray=709, within 1 level after the blur, and
    byte-identical to the chain making the gray (IMGPAR_DECODE_GRAY=0)."""
    for name in ["photo.jpg", "progressive.jpg"]:
        src, mode = load(env.sample(name))
        check(mode == "RGB", "%s: sample is %s, not a colour JPEG" % (name, mode))
        v = src.astype(np.int64)
        g709 = ((2126 * v[..., 0] + 7152 * v[..., 1] + 722 * v[..., 2] + 5000) // 10000).astype(np.uint8)
        for opts, ref, tol in [(["--gray"], gray601(src), 0), (["--gray=709"], g709, 0),
                               ([], gauss_ref(gray601(src), 2.0, False), 1)]:
            outs = []
            for decode_gray in ("1", "0"):
                out = env.fresh_dir("out")
                r = env.run("--format", "png", *opts, env.sample(name), out,
                            env={"IMGPAR_DECODE_GRAY": decode_gray})
                expect_rc(r, 0)
                files = listdir(out)
                check(len(files) == 1, "%s %s: outputs %s" % (name, opts, files))
                with open(os.path.join(out, files[0]), "rb") as f:
                    outs.append(f.read())
                got, got_mode = load(os.path.join(out, files[0]))
                check(got_mode == "L", "%s %s: output mode %s" % (name, opts, got_mode))
                compare("%s %s IMGPAR_DECODE_GRAY=%s" % (name, " ".join(opts), decode_gray), got, ref, tol,
                        OFF_FRAC if tol else None)
            check(outs[0] == outs[1], "%s %s: decoder gray and chain gray give different bytes" % (name, opts))


def check_box_exact(env):
    for name in ["rgb8.png", "gray8.png"]:
        src, mode = load(env.sample(name))
        got, got_mode = run_one(env, name, "--box", "1")
        check(got_mode == mode, "%s: --box 1 mode %s, expected %s" % (name, got_mode, mode))
        compare("%s --box 1" % name, got, box_ref(src, 1), 0)


def check_blur_only(env):
    """--blur 2 alone keeps colour and blurs each channel (alpha premultiplied)."""
    for name in ["rgb8.png", "rgba8.png"]:
        src, mode = load(env.sample(name))
        got, got_mode = run_one(env, name, "--blur", "2")
        check(got_mode == mode, "%s: --blur 2 mode %s, expected %s" % (name, got_mode, mode))
        compare("%s --blur 2" % name, got, gauss_ref(src, 2.0, mode == "RGBA"), 1, OFF_FRAC)


def check_filter_order(env):
    """--blur 2 --gray and --gray --blur 2 differ and each matches its own order."""
    src, _ = load(env.sample("rgb8.png"))
    blur_then_gray, m1 = run_one(env, "rgb8.png", "--blur", "2", "--gray")
    gray_then_blur, m2 = run_one(env, "rgb8.png", "--gray", "--blur", "2")
    check(m1 == "L" and m2 == "L", "modes %s, %s: expected L, L" % (m1, m2))
    check((blur_then_gray != gray_then_blur).any(),
          "--blur 2 --gray and --gray --blur 2 wrote identical pixels")
    ref_bg = gray601(gauss_ref(src, 2.0, False))
    ref_gb = gauss_ref(gray601(src), 2.0, False)
    compare("--blur 2 --gray", blur_then_gray, ref_bg, 1)
    compare("--gray --blur 2", gray_then_blur, ref_gb, 1, OFF_FRAC)

    # Box filters are exact, so there the order is visible pixel by pixel.
    box_then_gray, _ = run_one(env, "rgb8.png", "--box", "1", "--gray")
    gray_then_box, _ = run_one(env, "rgb8.png", "--gray", "--box", "1")
    ref_xg = gray601(box_ref(src, 1))
    ref_gx = box_ref(gray601(src), 1)
    check((ref_xg != ref_gx).any(), "box/gray references do not depend on order: vacuous")
    compare("--box 1 --gray", box_then_gray, ref_xg, 0)
    compare("--gray --box 1", gray_then_box, ref_gx, 0)

    # A chain of three filters, two of them the same kind.
    chain, _ = run_one(env, "rgb8.png", "--gray", "--box", "2", "--box", "1")
    compare("--gray --box 2 --box 1", chain, box_ref(box_ref(gray601(src), 2), 1), 0)


def check_no_filter(env):
    """--no-filter writes the decoded pixels unchanged (PNG is lossless)."""
    for name in PNG_INPUTS + ["palette.png"]:
        src, mode = load(env.sample(name))
        got, got_mode = run_one(env, name, "--no-filter")
        check(got_mode == mode, "%s: --no-filter mode %s, expected %s" % (name, got_mode, mode))
        compare("%s --no-filter" % name, got, src, 0)


def check_16bit(env):
    """16-bit inputs are reduced to 8 bits with rounding (within 1 of v >> 8)."""
    from PIL import Image
    with Image.open(env.sample("gray16.png")) as im:
        v16 = np.asarray(im).astype(np.int64)
    got, mode = run_one(env, "gray16.png", "--no-filter")
    check(mode == "L", "gray16.png --no-filter mode %s, expected L" % mode)
    compare("gray16.png --no-filter", got, np.clip((v16 * 255 + 32767) // 65535, 0, 255), 1)


if __name__ == "__main__":
    main([check_default_chain, check_gray_exact, check_gray_709, check_jpeg_decoded_gray, check_box_exact,
          check_blur_only, check_filter_order, check_no_filter, check_16bit])
