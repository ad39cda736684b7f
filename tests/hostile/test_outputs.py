#!/usr/bin/python3
"""Output safety: temporaries in OUTDIR (O_TMPFILE, or a named O_EXCL file
where O_TMPFILE fails), --fsync, a full disk, a file size limit, a
read-only OUTDIR, and outputs that never write through links.

An LD_PRELOAD shim (shim.c) logs the libc calls that matter and can make
O_TMPFILE fail; a full or read-only disk is a small tmpfs mounted in a
private mount namespace (unshare -m, as root).

usage: test_outputs.py IMGPAR SAMPLES CONFORMANCE SHIM
"""
import os
import re
import resource
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hutil import check, error_lines, expect, main, run, sha, shim_env, tree_sums  # noqa: E402

SAMPLES = ["gray8.png", "gray16.png", "palette.png", "rgb8.png", "rgb16.png", "rgba8.png",
           "gray.jpg", "photo.jpg", "progressive.jpg"]


def events(log):
    if not os.path.exists(log):
        return []
    with open(log, "rb") as f:
        return [l.split(b" ") for l in f.read().splitlines()]


def inputs(env, copies=1):
    d = env.fresh_dir("in")
    paths = []
    for k in range(copies):
        for n in SAMPLES:
            stem, ext = n.rsplit(".", 1)
            p = os.path.join(d, "%s-%d.%s" % (stem, k, ext))
            shutil.copy(env.sample(n), p)
            paths.append(p)
    return d, paths


def reference(env, paths):
    out = env.fresh_dir("ref")
    expect(run(env.imgpar, *paths, out), 0)
    return tree_sums(out)


def out_dirs(out, names):
    """The real directory of each output, sorted."""
    return sorted(os.path.realpath(os.path.dirname(os.path.join(os.fsencode(out), n))) for n in names)


def check_tmpfile_and_fallback(env):
    """Each output is written to an O_TMPFILE in its own directory; where
    that fails, to a named temporary created with O_EXCL next to it. Both
    give the same bytes and leave nothing else."""
    d, paths = inputs(env)
    os.makedirs(os.path.join(d, "sub"))
    shutil.copy(env.sample("rgba8.png"), os.path.join(d, "sub", "deep.png"))
    ref_out = env.fresh_dir("ref")
    expect(run(env.imgpar, "-r", d, ref_out), 0)
    ref = tree_sums(ref_out)
    log = os.path.join(env.tmp, "shim.log")
    for opts in ([], ["--procs", "-j", "2"]):
        out = env.fresh_dir("out")
        r = run(env.imgpar, *opts, "-r", d, out, env=shim_env(log))
        expect(r, 0)
        ev = events(log)
        tmp = sorted(os.path.realpath(e[1]) for e in ev if e[0] == b"tmpfile")
        want = out_dirs(out, ref)
        check(tmp == want, "%s: O_TMPFILE opens in %s, expected one in each output's directory %s" % (
            opts, tmp, want))
        check(not [e for e in ev if e[0] == b"excl"], "named temporaries without need: %s" % ev)
        check(tree_sums(out) == ref, "%s: outputs differ from a plain run" % opts)

        out = env.fresh_dir("out-excl")
        r = run(env.imgpar, *opts, "-r", d, out, env=shim_env(log, IMGPAR_SHIM_NO_TMPFILE="1"))
        expect(r, 0)
        want = out_dirs(out, ref)
        excl = [e[1] for e in events(log) if e[0] == b"excl"]
        check(len(excl) == len(ref), "%s: %d O_EXCL temporaries for %d outputs" % (opts, len(excl), len(ref)))
        for t in excl:
            name = os.path.basename(t)
            check(re.fullmatch(rb"\..+\.imgpar-\d+-[0-9a-f]{16}\.tmp", name), "temporary name %r" % t)
            check(os.path.realpath(os.path.dirname(t)) in want, "temporary %r outside the output's directory" % t)
        check(tree_sums(out) == ref, "%s: O_EXCL fallback outputs differ (or temporaries left): %s" % (
            opts, sorted(set(tree_sums(out)) ^ set(ref))))


def check_fsync(env):
    """--fsync: every output (and its directory) is fsync'ed; without it, nothing is."""
    _, paths = inputs(env)
    log = os.path.join(env.tmp, "shim.log")
    out = env.fresh_dir("out")
    expect(run(env.imgpar, *paths, out, env=shim_env(log)), 0)
    n0 = len([e for e in events(log) if e[0] in (b"fsync", b"fdatasync")])
    check(n0 == 0, "%d fsync calls without --fsync" % n0)
    for opts in (["--fsync"], ["--fsync", "--procs", "-j", "2"]):
        out = env.fresh_dir("out")
        expect(run(env.imgpar, *opts, *paths, out, env=shim_env(log)), 0)
        n = len([e for e in events(log) if e[0] in (b"fsync", b"fdatasync")])
        check(n >= 2 * len(paths), "%s: %d fsync calls for %d outputs (file and directory each)" % (
            opts, n, len(paths)))
    print("  --fsync: %d fsync calls for %d outputs; none without it" % (n, len(paths)))


def in_namespace(env, size, outdir, save, argv, ro=False, extra_env=None):
    """Runs argv with a fresh tmpfs of `size` mounted on outdir in a private
    mount namespace, then copies what it left (hidden files included) to
    save. Returns the CompletedProcess of the whole script."""
    script = ('mount -t tmpfs -o size="$SIZE" imgpar-test "$OUT" || exit 99; '
              + ('mount -o remount,ro "$OUT" || exit 99; ' if ro else '')
              + '"$@"; rc=$?; cp -a "$OUT/." "$SAVE/"; exit $rc')
    e = dict(extra_env or os.environ, SIZE=size, OUT=outdir, SAVE=save)
    return subprocess.run(["unshare", "-m", "--propagation", "private", "bash", "-c", script, "bash"] + argv,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e, timeout=120)


def lines_of(p):
    return [l for l in p.stderr.split(b"\n") if l]


def check_disk_full(env):
    """A full disk fails the outputs that do not fit, with the reason; no
    temporary is left, inputs are untouched, the rest are written whole."""
    d, paths = inputs(env, copies=3)
    ref = reference(env, paths)
    before = tree_sums(d)
    total = sum(os.path.getsize(os.path.join(d, n)) for n in os.listdir(d))
    log = os.path.join(env.tmp, "shim.log")
    for label, extra in (("O_TMPFILE", {}), ("O_EXCL fallback", {"IMGPAR_SHIM_NO_TMPFILE": "1"})):
        for opts in ([], ["--procs", "-j", "2"]):
            out = env.fresh_dir("full")
            save = env.fresh_dir("saved")
            p = in_namespace(env, "96k", out, save, [env.imgpar, *opts, *paths, out],
                             extra_env=shim_env(log, **extra))
            check(p.returncode != 99, "cannot mount a tmpfs (needs root and unshare -m): %r" % p.stderr)
            got = tree_sums(save)
            lines = lines_of(p)
            what = "%s %s" % (label, opts)
            check(p.returncode == 1, "%s: exit %d, expected 1\n%s" % (what, p.returncode, p.stderr.decode()))
            check(not [n for n in got if n.startswith(b".")], "%s: temporaries left: %s" % (what, sorted(got)))
            check(0 < len(got) < len(ref), "%s: %d of %d outputs fit: not a full disk test" % (
                what, len(got), len(ref)))
            check(all(ref[n] == got[n] for n in got), "%s: a written output is not complete" % what)
            check(len(lines) == len(ref) - len(got), "%s: %d error lines for %d missing outputs\n%s" % (
                what, len(lines), len(ref) - len(got), p.stderr.decode()))
            check(all(b"No space left on device" in l for l in lines), "%s: reasons:\n%s" % (
                what, p.stderr.decode()))
            check(tree_sums(d) == before, "%s: inputs changed" % what)
    print("  96k tmpfs: %d of %d outputs fit (inputs %d bytes); the others failed cleanly" % (
        len(got), len(ref), total))


def check_read_only(env):
    """A read-only OUTDIR: every file fails with the reason, nothing is left."""
    _, paths = inputs(env)
    out = env.fresh_dir("ro")
    save = env.fresh_dir("saved")
    p = in_namespace(env, "1m", out, save, [env.imgpar, *paths, out], ro=True)
    check(p.returncode != 99, "cannot mount a read-only tmpfs: %r" % p.stderr)
    check(p.returncode == 1, "exit %d\n%s" % (p.returncode, p.stderr.decode()))
    lines = lines_of(p)
    check(len(lines) == len(paths) and all(b"Read-only file system" in l for l in lines),
          "expected one 'Read-only file system' line per input:\n" + p.stderr.decode())
    check(tree_sums(save) == {}, "files left: %s" % sorted(tree_sums(save)))


def check_file_size_limit(env):
    """RLIMIT_FSIZE: outputs over the limit fail with 'File too large'
    (imgpar is not killed by SIGXFSZ), the others are written."""
    _, paths = inputs(env)
    ref = reference(env, paths)
    limit = 9000
    out = env.fresh_dir("out")

    def fsize():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    r = run(env.imgpar, *paths, out, preexec_fn=fsize)
    expect(r, 1)
    got = tree_sums(out)
    ref_dir = env.fresh_dir("ref")
    expect(run(env.imgpar, *paths, ref_dir), 0)
    big = {n for n in ref if os.path.getsize(os.path.join(ref_dir, os.fsdecode(n))) > limit}
    check(big and len(big) < len(ref), "limit %d does not split the outputs" % limit)
    check(set(got) == set(ref) - big, "outputs %s, expected those under %d bytes" % (sorted(got), limit))
    check(all(got[n] == ref[n] for n in got), "an output under the limit differs")
    check(len(r.lines) == len(big) and all(b"File too large" in l for l in r.lines),
          "expected one 'File too large' line per big output\n" + r.describe())


def check_no_write_through_links(env):
    """An existing OUTDIR entry that is a symlink or a hard link to some
    other file is replaced, never written through; one that is an input
    refuses the run."""
    victim_dir = env.fresh_dir("victims")
    victims = {}
    for n in ("sym", "hard"):
        p = os.path.join(victim_dir, n + ".png")
        shutil.copy(env.sample("rgb8.png"), p)
        victims[p] = sha(p)
    out = env.fresh_dir("out")
    os.symlink(os.path.join(victim_dir, "sym.png"), os.path.join(out, "gray8.png"))
    os.link(os.path.join(victim_dir, "hard.png"), os.path.join(out, "photo.jpg"))
    ref = reference(env, [env.sample("gray8.png"), env.sample("photo.jpg")])
    r = run(env.imgpar, env.sample("gray8.png"), env.sample("photo.jpg"), out)
    expect(r, 0)
    for p, h in victims.items():
        check(sha(p) == h, "%s was written through a link" % p)
    for n in ("gray8.png", "photo.jpg"):
        q = os.path.join(out, n)
        check(not os.path.islink(q) and os.stat(q).st_nlink == 1, "%s is still a link" % q)
    check(tree_sums(out) == ref, "outputs differ")

    # The same links pointing at an input: refused before any work.
    d = env.fresh_dir("in")
    src = os.path.join(d, "gray8.png")
    shutil.copy(env.sample("gray8.png"), src)
    h = sha(src)
    for kind in ("symlink", "hardlink"):
        out = env.fresh_dir("out")
        (os.symlink if kind == "symlink" else os.link)(src, os.path.join(out, "gray8.png"))
        r = run(env.imgpar, src, out)
        expect(r, 2)
        check(b"refusing to overwrite" in r.err, "%s: %s" % (kind, r.describe()))
        check(sha(src) == h, "input changed through a %s in OUTDIR" % kind)
    # --files-from with OUTDIR the input's parent: the entry's output is the entry.
    lst = os.path.join(env.tmp, "list")
    with open(lst, "w") as f:
        f.write(os.path.basename(d) + "/gray8.png\n")
    p = subprocess.run([env.imgpar, "--files-from", lst, "."], cwd=os.path.dirname(d),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    check(p.returncode == 1 and b"refusing to overwrite" in p.stderr, "--files-from: exit %d %r" % (
        p.returncode, p.stderr))
    check(sha(os.path.join(d, "gray8.png")) == h, "input changed by --files-from")


def check_output_is_directory(env):
    """A directory where an output should go fails that file alone."""
    out = env.fresh_dir("out")
    os.mkdir(os.path.join(out, "gray8.png"))
    r = run(env.imgpar, env.sample("gray8.png"), env.sample("rgba8.png"), out)
    expect(r, 1)
    error_lines(r, {env.sample("gray8.png"): "Is a directory"})
    got = tree_sums(out)
    check(list(got) == [b"rgba8.png"], "outputs %s" % sorted(got))


if __name__ == "__main__":
    main([check_tmpfile_and_fallback, check_fsync, check_disk_full, check_read_only,
          check_file_size_limit, check_no_write_through_links, check_output_is_directory])
