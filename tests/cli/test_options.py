#!/usr/bin/python3
"""--help, --version and usage errors.

usage: test_options.py IMGPAR SAMPLES
"""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cliutil import check, expect_rc, listdir, main  # noqa: E402

# Hard-coded on purpose: the help text must document each of these.
LONG_OPTIONS = [
    "gray", "blur", "box", "no-filter", "format", "quality", "png-level", "decoder",
    "allow-truncated", "jpeg-luma", "max-pixels", "max-dim", "max-file-size", "mem", "jobs", "serial",
    "threads", "procs", "split", "io-threads", "writers", "queue", "fsync", "stats",
    "verbose", "quiet", "help", "version",
]


def check_help(env):
    r = env.run("--help")
    expect_rc(r, 0)
    check(r.out.startswith("Usage: imgpar "), "--help does not start with 'Usage: imgpar '")
    missing = [o for o in LONG_OPTIONS if not re.search(r"--%s(?![\w-])" % re.escape(o), r.out)]
    check(not missing, "--help does not document: %s" % ", ".join("--" + o for o in missing))
    check(r.err == "", "--help wrote to stderr: %r" % r.err)
    for short in ["-h", "-j", "-v", "-q"]:
        check(re.search(r"(^|\s)%s[,\s]" % short, r.out), "--help does not document %s" % short)
    r2 = env.run("-h")
    expect_rc(r2, 0)
    check(r2.out == r.out, "-h and --help print different texts")


def check_version(env):
    r = env.run("--version")
    expect_rc(r, 0)
    check(re.match(r"imgpar \d+\.\d+\.\d+", r.out), "--version prints %r" % r.out)


def usage_error(env, *args, mention=None, outdir=True):
    """Exit 2, a message on stderr, nothing on stdout, and no work done.
    IN in args stands for a valid input; OUTDIR is appended unless outdir=False."""
    out = env.path("never-created")
    argv = [env.sample("gray8.png") if a == "IN" else a for a in args]
    r = env.run(*(argv + [out] if outdir else argv))
    expect_rc(r, 2)
    check(r.err.strip() != "", "usage error without a message\n" + r.describe())
    check(r.out == "", "usage error wrote to stdout\n" + r.describe())
    check(r.err.rstrip().endswith("Try 'imgpar --help' for more information."),
          "usage error does not end with the pointer to --help\n" + r.describe())
    if mention:
        check(mention in r.err, "stderr does not mention %r\n%s" % (mention, r.describe()))
    check(not os.path.exists(out), "usage error created OUTDIR\n" + r.describe())


def check_usage_errors(env):
    usage_error(env, "--no-such-option", "IN", mention="no-such-option")
    usage_error(env, outdir=False)                 # no arguments at all
    usage_error(env, "IN", outdir=False)           # INPUT without OUTDIR
    usage_error(env, "--blur", "0", "IN", mention="0")
    usage_error(env, "--blur", "-1", "IN")
    usage_error(env, "--blur", "abc", "IN", mention="abc")
    usage_error(env, "--blur", "101", "IN")
    usage_error(env, "--quality", "101", "IN", mention="101")
    usage_error(env, "--quality", "0", "IN")
    usage_error(env, "--split", "foo", "IN", mention="foo")
    usage_error(env, "--box", "0", "IN")
    usage_error(env, "--png-level", "10", "IN")
    usage_error(env, "--format", "gif", "IN", mention="gif")
    usage_error(env, "--decoder", "foo", "IN", mention="foo")
    usage_error(env, "--gray=123", "IN")
    usage_error(env, "-j", "0", "IN")
    usage_error(env, "--jobs", "x", "IN")
    usage_error(env, "--mem", "lots", "IN")
    usage_error(env, "--max-pixels", "-5", "IN")
    usage_error(env, "--no-filter", "--gray", "IN")
    usage_error(env, "--blur", "IN")               # sigma missing: takes the path, then one arg


def check_valid_values_accepted(env):
    """The boundaries of the ranges above are accepted (so the refusals are not blanket)."""
    for opts in (["--quality", "100", "--format", "jpg"], ["--quality", "1", "--format", "jpg"],
                 ["--blur", "100"], ["--box", "1"], ["--png-level", "0"], ["--png-level", "9"],
                 ["--split", "image"], ["--split", "auto"], ["--gray=709"], ["--gray=601"],
                 ["-j", "1"], ["--mem", "64M"], ["--max-file-size", "10M"], ["--no-filter"],
                 ["--decoder=native"], ["-q"], ["--fsync", "--stats", "-v"]):
        out = env.fresh_dir("ok")
        r = env.run(*opts, env.sample("gray8.png"), out)
        expect_rc(r, 0)
        check(len(listdir(out)) == 1, "%s: outputs %s" % (" ".join(opts), listdir(out)))


if __name__ == "__main__":
    main([check_help, check_version, check_usage_errors, check_valid_values_accepted])
