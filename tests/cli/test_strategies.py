#!/usr/bin/python3
"""Every execution strategy writes the same bytes as --serial, and the stb
PNG decoder gives the same bytes as libpng. A quick check over samples/
(the pipeline suite goes deeper).

usage: test_strategies.py IMGPAR SAMPLES
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cliutil import check, expect_rc, listdir, main, tree_sums  # noqa: E402

SAMPLE_OUTPUTS = ["gray.jpg", "gray16.png", "gray8.png", "palette.png", "photo.jpg",
                  "progressive.jpg", "rgb16.png", "rgb8.png", "rgba8.png"]
PNG_SAMPLES = [n for n in SAMPLE_OUTPUTS if n.endswith(".png")]

STRATEGIES = [
    ["--threads", "-j", "2"],
    ["--threads", "-j", "2", "--split", "image"],
    ["--procs", "-j", "3"],
    ["--procs", "-j", "2", "--split", "strips"],
    ["--split", "strips"],
    ["--threads", "-j", "4", "--split", "strips", "--io-threads", "1", "--writers", "1",
     "--queue", "1"],
    ["--serial", "-j", "2", "--split", "strips"],
]


def run_samples(env, *opts, inputs=None):
    out = env.fresh_dir("out")
    r = env.run(*opts, *(inputs or [env.samples]), out)
    expect_rc(r, 0)
    return out


def check_strategies_identical(env):
    for chain in ([], ["--blur", "1.5", "--box", "2"], ["--blur", "2"]):
        ref_dir = run_samples(env, "--serial", *chain)
        check(listdir(ref_dir) == SAMPLE_OUTPUTS, "--serial %s: outputs %s" % (
            " ".join(chain), listdir(ref_dir)))
        ref = tree_sums(ref_dir)
        for opts in STRATEGIES:
            got = tree_sums(run_samples(env, *opts, *chain))
            diff = sorted(n for n in set(ref) | set(got) if ref.get(n) != got.get(n))
            check(not diff, "%s %s differs from --serial on %s" % (
                " ".join(opts), " ".join(chain), diff))


def check_stb_decoder_identical(env):
    inputs = [os.path.join(env.samples, n) for n in PNG_SAMPLES]
    for chain in ([], ["--no-filter"], ["--blur", "1"]):
        native = tree_sums(run_samples(env, *chain, inputs=inputs))
        check(sorted(native) == PNG_SAMPLES, "native: outputs %s" % sorted(native))
        stb = tree_sums(run_samples(env, "--decoder=stb", *chain, inputs=inputs))
        diff = sorted(n for n in set(native) | set(stb) if native.get(n) != stb.get(n))
        check(not diff, "--decoder=stb %s differs from the native decoder on %s" % (
            " ".join(chain), diff))


def check_stb_decoder_jpeg(env):
    """stb decodes JPEG too (its IDCT differs, so only shape and success are checked)."""
    out = run_samples(env, "--decoder", "stb", inputs=[
        os.path.join(env.samples, n) for n in ("photo.jpg", "gray.jpg", "progressive.jpg")])
    check(listdir(out) == ["gray.jpg", "photo.jpg", "progressive.jpg"],
          "--decoder stb on JPEG: outputs %s" % listdir(out))


if __name__ == "__main__":
    main([check_strategies_identical, check_stb_decoder_identical, check_stb_decoder_jpeg])
