#!/usr/bin/python3
"""-r/--recursive: the tree is mirrored under OUTDIR with outputs identical to
single-file runs; unreadable subdirectories are reported and skipped (exit 1);
symlinked directories are entered only with --follow-symlinks (or when given
as INPUT) and loops are not followed; OUTDIR inside the tree is not walked;
collisions are refused before any work.

usage: test_recursive.py IMGPAR SAMPLES
"""
import os
import shutil
import subprocess

from batchutil import (check, expect_rc, files_under, main, make_image, make_tree,
                       reference_outputs, tree)

RELS = ["top.png", "a/photo.jpg", "a/b/gray.png", "a/b/c/deep.png", "z/last.bmp"]


def check_mirror(env):
    src = make_tree(env.fresh_dir("in"), RELS)
    os.makedirs(os.path.join(src, "empty"))
    with open(os.path.join(src, "a", "notes.txt"), "w") as f:
        f.write("not an image\n")
    out = os.path.join(env.fresh_dir("o"), "out")
    r = env.run("-r", src, out)
    expect_rc(r, 0)
    check(r.err == "", "stderr not empty on a clean run without a terminal\n" + r.describe())
    want = ["a/b/c/deep.png", "a/b/gray.png", "a/photo.jpg", "top.png", "z/last.png"]
    got = files_under(out)
    check(got == want, "outputs %s, expected %s" % (got, want))
    check(not os.path.exists(os.path.join(out, "empty")), "a directory without images was mirrored")
    ref = reference_outputs(env, [os.path.join(src, rel) for rel in RELS])
    for rel, o in zip(RELS, ["top.png", "a/photo.jpg", "a/b/gray.png", "a/b/c/deep.png", "z/last.png"]):
        with open(os.path.join(out, o), "rb") as f:
            check(f.read() == ref[os.path.join(src, rel)], "%s differs from a single-file run" % o)

    # Without -r only the top level, as before.
    out2 = env.fresh_dir("o")
    r = env.run(src, out2)
    expect_rc(r, 0)
    check(files_under(out2) == ["top.png"], "without -r: %s" % files_under(out2))

    # Order: depth first, names sorted, files and directories interleaved.
    r = env.run("-r", "--dry-run", src, out)
    expect_rc(r, 0)
    order = [os.path.relpath(line.split("\t")[1], src) for line in r.out.splitlines()]
    check(order == ["a/b/c/deep.png", "a/b/gray.png", "a/photo.jpg", "top.png", "z/last.bmp"],
          "walk order %s" % order)


def run_unprivileged(env, args):
    """Runs imgpar as nobody when we are root (root reads any directory)."""
    argv = [env.imgpar] + args
    if os.geteuid() == 0:
        exe = os.path.join(env.tmp, "imgpar-copy")
        if not os.path.exists(exe):
            shutil.copy(env.imgpar, exe)
            os.chmod(exe, 0o755)
        argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", exe] + args
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def check_unreadable_subdir(env):
    os.chmod(env.tmp, 0o755)
    src = make_tree(env.fresh_dir("in"), ["a.png", "locked/b.png", "m/c.png", "m/locked2/d.png", "z.png"])
    out = env.fresh_dir("o")
    for d in (src, out, os.path.join(src, "m")):
        os.chmod(d, 0o777)
    for root, dirs, files in os.walk(src):
        for f in files:
            os.chmod(os.path.join(root, f), 0o644)
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o755)
    locked = [os.path.join(src, "locked"), os.path.join(src, "m", "locked2")]
    for d in locked:
        os.chmod(d, 0)
    try:
        p = run_unprivileged(env, ["-r", src, out])
    finally:
        for d in locked:
            os.chmod(d, 0o755)
    check(p.returncode == 1, "expected exit 1 with unreadable subdirectories, got %d\n%s"
          % (p.returncode, p.stderr))
    for d in locked:
        check("imgpar: %s: Permission denied\n" % d in p.stderr,
              "no error line for %s:\n%s" % (d, p.stderr))
    got = files_under(out)
    check(got == ["a.png", "m/c.png", "z.png"], "outputs past unreadable directories: %s" % got)


def check_symlinks(env):
    src = env.fresh_dir("in")
    make_image(os.path.join(src, "real", "x.png"), seed=1)
    make_image(os.path.join(src, "other", "y.png"), seed=2)
    os.symlink("other", os.path.join(src, "link"))            # a symlinked directory
    os.symlink("..", os.path.join(src, "real", "up"))         # a loop back to src
    os.symlink(os.path.join("real", "x.png"), os.path.join(src, "flink.png"))  # a symlinked file
    os.symlink(".", os.path.join(src, "other", "self"))       # a loop to itself

    out = env.fresh_dir("o")
    r = env.run("-r", src, out, timeout=30)
    expect_rc(r, 0)
    got = files_under(out)
    check(got == ["flink.png", "other/y.png", "real/x.png"], "default (no follow): %s" % got)

    out = env.fresh_dir("o")
    r = env.run("-r", "--follow-symlinks", src, out, timeout=30)
    expect_rc(r, 0)
    got = files_under(out)
    check(got == ["flink.png", "link/y.png", "other/y.png", "real/x.png"],
          "--follow-symlinks: %s\n%s" % (got, r.describe()))
    check("directory loop" in r.err and os.path.join(src, "real", "up") in r.err
          and os.path.join(src, "other", "self") in r.err,
          "loops not reported\n" + r.describe())
    t = tree(out)
    check(t["link/y.png"] == t["other/y.png"], "the same image through a link differs")
    r = env.run("-q", "-r", "--follow-symlinks", src, env.fresh_dir("o"), timeout=30)
    check(r.rc == 0 and r.err == "", "-q still printed the loop warnings\n" + r.describe())

    # A symlinked directory given as INPUT is entered.
    out = env.fresh_dir("o")
    r = env.run("-r", os.path.join(src, "link"), out)
    expect_rc(r, 0)
    check(files_under(out) == ["y.png"], "symlinked INPUT: %s" % files_under(out))


def check_outdir_inside(env):
    src = make_tree(env.fresh_dir("in"), ["a.png", "s/b.png"])
    out = os.path.join(src, "out")
    r = env.run("-r", src, out)
    expect_rc(r, 0)
    first = tree(out)
    check(sorted(first) == ["a.png", "s/b.png"], "first run: %s" % sorted(first))
    r = env.run("-r", src, out)
    expect_rc(r, 0)
    check(tree(out) == first, "second run walked OUTDIR: %s" % sorted(tree(out)))


def check_collisions(env):
    src = env.fresh_dir("in")
    make_image(os.path.join(src, "a", "x.png"), seed=1)
    make_image(os.path.join(src, "a", "x.bmp"), seed=2, fmt="BMP")
    make_image(os.path.join(src, "b", "x.png"), seed=3)
    out = env.fresh_dir("o")
    r = env.run("-r", src, out)
    expect_rc(r, 2)
    check("would both write" in r.err and os.path.join(out, "a", "x.png") in r.err,
          "no collision message\n" + r.describe())
    check(files_under(out) == [], "collision: outputs written %s" % files_under(out))

    # a/x.png and b/x.png do not collide when mirrored, do when flattened.
    os.unlink(os.path.join(src, "a", "x.bmp"))
    r = env.run("-r", src, out)
    expect_rc(r, 0)
    check(files_under(out) == ["a/x.png", "b/x.png"], "mirrored: %s" % files_under(out))
    out = env.fresh_dir("o")
    r = env.run("-r", "--out-pattern", "{stem}.{ext}", src, out)
    expect_rc(r, 2)
    check(files_under(out) == [], "flattened collision wrote %s" % files_under(out))


if __name__ == "__main__":
    main([check_mirror, check_unreadable_subdir, check_symlinks, check_outdir_inside,
          check_collisions])
