#!/usr/bin/python3
"""--out-pattern: {dir}, {stem}, {ext}, {n} and {{ }} expand as documented;
outputs are byte-identical to the default names' outputs; collisions are
refused before any work; patterns or names that would leave OUTDIR are refused.

usage: test_out_pattern.py IMGPAR SAMPLES
"""
import os

from batchutil import check, expect_rc, files_under, main, make_image, make_tree, tree

RELS = ["a.png", "d/b.jpg", "d/e/c.bmp", "d/e/f.PNG"]


def check_fields(env):
    src = make_tree(env.fresh_dir("in"), RELS)
    plain = env.fresh_dir("plain")
    expect_rc(env.run("-r", src, plain), 0)
    base = tree(plain)   # a.png d/b.jpg d/e/c.png d/e/f.PNG

    out = env.fresh_dir("o")
    r = env.run("-r", "--out-pattern", "{dir}/{stem}_gray.{ext}", src, out)
    expect_rc(r, 0)
    want = {"a_gray.png": "a.png", "d/b_gray.jpg": "d/b.jpg", "d/e/c_gray.png": "d/e/c.png",
            "d/e/f_gray.png": "d/e/f.PNG"}
    got = tree(out)
    check(sorted(got) == sorted(want), "names %s, expected %s" % (sorted(got), sorted(want)))
    for new, old in want.items():
        check(got[new] == base[old], "%s differs from the default-named %s" % (new, old))

    # {n}: the 0-based index in walk order; flat, so {dir} is not needed.
    out = env.fresh_dir("o")
    r = env.run("-r", "--out-pattern", "img-{n}.{ext}", src, out)
    expect_rc(r, 0)
    got = tree(out)
    want = {"img-0.png": "a.png", "img-1.jpg": "d/b.jpg", "img-2.png": "d/e/c.png",
            "img-3.png": "d/e/f.PNG"}
    check(sorted(got) == sorted(want), "{n} names %s" % sorted(got))
    for new, old in want.items():
        check(got[new] == base[old], "%s differs from %s" % (new, old))

    # --format decides {ext}; braces; {dir} of a file argument is empty.
    out = env.fresh_dir("o")
    r = env.run("--format", "jpg", "--out-pattern", "x/{{{stem}}}.{ext}", os.path.join(src, "a.png"),
                os.path.join(src, "d", "b.jpg"), out)
    expect_rc(r, 0)
    check(files_under(out) == ["x/{a}.jpg", "x/{b}.jpg"], "braces/--format: %s" % files_under(out))
    out = env.fresh_dir("o")
    r = env.run("--out-pattern", "{dir}/{stem}.{ext}", os.path.join(src, "d", "e", "c.bmp"), out)
    expect_rc(r, 0)
    check(files_under(out) == ["c.png"], "{dir} of a file argument: %s" % files_under(out))


def check_collisions(env):
    src = make_tree(env.fresh_dir("in"), RELS)
    out = env.fresh_dir("o")
    r = env.run("-r", "--out-pattern", "{ext}", src, out)
    expect_rc(r, 2)
    check("would both write %s" % os.path.join(out, "png") in r.err, "no collision line\n" + r.describe())
    check(files_under(out) == [], "a refused plan wrote %s" % files_under(out))
    # same stem in two directories, flattened
    make_image(os.path.join(src, "d", "a.png"), seed=9)
    r = env.run("-r", "--out-pattern", "{stem}.{ext}", src, out)
    expect_rc(r, 2)
    check(os.path.join(src, "a.png") in r.err and os.path.join(src, "d", "a.png") in r.err,
          "collision does not name both inputs\n" + r.describe())
    check(files_under(out) == [], "a refused plan wrote %s" % files_under(out))


def check_refused(env):
    src = make_tree(env.fresh_dir("in"), ["a.png"])
    out = env.fresh_dir("o")
    for pat in ["../{stem}.{ext}", "/tmp/{stem}.{ext}", "{dir}/../../{stem}", "a/../../{n}",
                "{bogus}.png", "{stem", "x}y", "{stem}/", ""]:
        r = env.run("-r", "--out-pattern", pat, src, out)
        expect_rc(r, 2)
        check("--out-pattern" in r.err, "pattern %r: no reason given\n%s" % (pat, r.describe()))
        check(files_under(out) == [], "pattern %r wrote %s" % (pat, files_under(out)))
    # A name that only escapes once expanded: the stem of "...png" is "..".
    odd = make_image(os.path.join(env.fresh_dir("in"), "...png"), fmt="PNG")
    r = env.run("--out-pattern", "{stem}/x.{ext}", odd, out)
    expect_rc(r, 2)
    check("leave OUTDIR" in r.err, "expanded '..' not refused\n" + r.describe())
    check(files_under(out) == [], "escape wrote %s" % files_under(out))
    check(not os.path.exists(os.path.join(os.path.dirname(out), "x.png")), "wrote outside OUTDIR")


if __name__ == "__main__":
    main([check_fields, check_collisions, check_refused])
