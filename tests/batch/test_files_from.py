#!/usr/bin/python3
"""--files-from: newline and NUL (-0) lists, from a file or stdin; directories
mirrored; bad entries fail alone; collisions are reported, never silent (the
write-time rule of a streamed list); 100000 names run in constant memory.

usage: test_files_from.py IMGPAR SAMPLES
"""
import os
import subprocess
import time

from batchutil import (check, expect_rc, files_under, main, make_image, make_tree,
                       read_report, reference_outputs, run_rss, tree)


def run_list(env, data, args, cwd=None, timeout=120):
    p = subprocess.run([env.imgpar] + args, input=data, capture_output=True, cwd=cwd, timeout=timeout)
    return p.returncode, p.stdout.decode(), p.stderr.decode("utf-8", "replace")


def check_lists(env):
    work = env.fresh_dir("w")
    rels = ["in/a.png", "in/s/b.jpg", "in/s/t/c.png", "in/name with space.png", "in/nl\nname.png"]
    make_tree(work, rels)
    ref = reference_outputs(env, [os.path.join(work, r) for r in rels])

    # NUL-separated on stdin, relative paths: mirrored under OUTDIR.
    rc, out, err = run_list(env, b"\0".join(r.encode() for r in rels) + b"\0",
                            ["-0", "--files-from", "-", "o1"], cwd=work)
    check(rc == 0, "exit %d\n%s" % (rc, err))
    got = tree(os.path.join(work, "o1"))
    check(sorted(got) == sorted(rels), "outputs %s" % sorted(got))
    for r in rels:
        with open(os.path.join(work, "o1", r), "rb") as f:
            check(f.read() == ref[os.path.join(work, r)], "%s differs from a single-file run" % r)

    # Newline-separated in a file, "./" and "//" normalised, empty lines ignored,
    # absolute paths mirrored without their leading "/".
    lst = os.path.join(work, "list.txt")
    with open(lst, "w") as f:
        f.write("./in/a.png\n\nin//s/b.jpg\n%s\n" % os.path.join(work, "in/s/t/c.png"))
    r = env.run("--files-from", lst, os.path.join(work, "o2"))
    expect_rc(r, 1)   # relative to the test's cwd, not work/: the first two do not exist
    r = subprocess.run([env.imgpar, "--files-from", lst, "o2"], cwd=work, capture_output=True, text=True)
    check(r.returncode == 0, "newline list: exit %d\n%s" % (r.returncode, r.stderr))
    want = sorted(["in/a.png", "in/s/b.jpg", os.path.join(work, "in/s/t/c.png").lstrip("/")])
    check(files_under(os.path.join(work, "o2")) == want, "newline list outputs %s" %
          files_under(os.path.join(work, "o2")))


def check_bad_entries(env):
    work = env.fresh_dir("w")
    make_tree(work, ["in/a.png", "in/b.png"])
    with open(os.path.join(work, "in", "junk.png"), "wb") as f:
        f.write(b"not an image at all")
    data = b"in/a.png\nin/missing.png\nin/junk.png\n../escape.png\nin/b.png\n"
    rc, out, err = run_list(env, data, ["--files-from", "-", "--report", "rep.jsonl", "out"], cwd=work)
    check(rc == 1, "exit %d with bad entries\n%s" % (rc, err))
    for path in ("in/missing.png", "in/junk.png", "../escape.png"):
        check("imgpar: %s: " % path in err, "no error line for %s:\n%s" % (path, err))
    check(files_under(os.path.join(work, "out")) == ["in/a.png", "in/b.png"],
          "outputs %s" % files_under(os.path.join(work, "out")))
    recs = {r["path"]: r for r in read_report(os.path.join(work, "rep.jsonl"))}
    check(sorted(recs) == sorted(["in/a.png", "in/missing.png", "in/junk.png", "../escape.png", "in/b.png"]),
          "report paths %s" % sorted(recs))
    check(recs["../escape.png"]["status"] == "failed" and "leave OUTDIR" in recs["../escape.png"]["error"]
          and recs["../escape.png"]["output"] is None, "escape record %s" % recs["../escape.png"])
    # With a pattern that does not use {dir}, the same entry is fine.
    make_image(os.path.join(os.path.dirname(work), "escape.png"))
    rc, out, err = run_list(env, b"../escape.png\n", ["--files-from", "-", "--out-pattern",
                                                       "{stem}.{ext}", "out3"], cwd=work)
    check(rc == 0 and files_under(os.path.join(work, "out3")) == ["escape.png"], "flat: %d %s" % (rc, err))


def check_usage(env):
    out = env.fresh_dir("o")
    for args in (["--files-from", "-", "x.png", out], ["-0", "x.png", out],
                 ["--files-from", os.path.join(env.tmp, "nope.txt"), out]):
        r = env.run(*args)
        expect_rc(r, 2)


def check_collisions(env):
    """A streamed list cannot be checked in advance: a second entry with the
    same output is refused when its turn comes, whether the first is still
    being written or already done, and the first one's output stays."""
    work = env.fresh_dir("w")
    make_image(os.path.join(work, "d1", "x.png"), seed=1)
    make_image(os.path.join(work, "d2", "x.png"), seed=2)
    ref = reference_outputs(env, [os.path.join(work, "d1", "x.png")])[os.path.join(work, "d1", "x.png")]
    filler = ["missing/%04d.png" % i for i in range(300)]
    for name, entries in (("near", ["d1/x.png", "d2/x.png"]),
                          ("far", ["d1/x.png"] + filler + ["d2/x.png"]),
                          ("dup", ["d1/x.png"] + filler + ["d1/x.png"])):
        out = "o-" + name
        data = "".join(e + "\n" for e in entries).encode()
        rc, _, err = run_list(env, data, ["-j", "1", "--files-from", "-", "--out-pattern",
                                          "{stem}.{ext}", "--report", out + ".jsonl", out], cwd=work)
        check(rc == 1, "%s: collision did not fail the run (exit %d)\n%s" % (name, rc, err))
        second = entries[-1]
        lines = [ln for ln in err.splitlines() if ln.startswith("imgpar: %s: " % second)
                 and "refusing to overwrite" in ln]
        check(len(lines) == 1, "%s: no refusal line for %s:\n%s" % (name, second, err[-2000:]))
        check(files_under(os.path.join(work, out)) == ["x.png"], "%s: outputs %s" % (name, files_under(out)))
        with open(os.path.join(work, out, "x.png"), "rb") as f:
            check(f.read() == ref, "%s: the first entry's output was replaced" % name)
        recs = read_report(os.path.join(work, out + ".jsonl"))
        mine = [r for r in recs if r["output"] == os.path.join(out, "x.png")]
        check(sorted(r["status"] for r in mine) == ["failed", "ok"], "%s: records %s" % (name, mine))

    # Paced through a pipe: the second entry arrives well after the first
    # output was renamed into place, so the mtime-after-start rule must catch it.
    out = os.path.join(work, "o-paced")
    p = subprocess.Popen([env.imgpar, "--files-from", "-", "--out-pattern", "{stem}.{ext}", out],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=work)
    p.stdin.write(b"d1/x.png\n")
    p.stdin.flush()
    deadline = time.monotonic() + 30
    while not os.path.exists(os.path.join(out, "x.png")) and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)
    p.stdin.write(b"d2/x.png\n")
    p.stdin.close()
    err = p.stderr.read().decode()
    rc = p.wait(timeout=30)
    check(rc == 1 and "imgpar: d2/x.png: %s was already written by this run" % os.path.join(out, "x.png") in err,
          "paced collision: exit %d\n%s" % (rc, err))
    with open(os.path.join(out, "x.png"), "rb") as f:
        check(f.read() == ref, "paced: the first entry's output was replaced")

    # An output that is the entry itself (OUTDIR ".", {dir}/{stem}.{ext}).
    before = open(os.path.join(work, "d1", "x.png"), "rb").read()
    rc, _, err = run_list(env, b"d1/x.png\n", ["--files-from", "-", "--out-pattern", "{dir}/{stem}.{ext}", "."],
                          cwd=work)
    check(rc == 1 and "is the input" in err, "output == input: exit %d\n%s" % (rc, err))
    check(open(os.path.join(work, "d1", "x.png"), "rb").read() == before, "the input was overwritten")

    # A rerun over the same OUTDIR replaces older outputs normally (not a collision).
    rc, _, err = run_list(env, b"d1/x.png\n", ["--files-from", "-", "--out-pattern", "{stem}.{ext}", "o-near"],
                          cwd=work)
    check(rc == 0, "rerun over an old output: exit %d\n%s" % (rc, err))


def check_100k(env):
    """100000 names (a few hundred hard links to one image, the rest missing)
    through stdin with -0: exact counts, and peak RSS no higher than for
    10000 names (memory is flat in the number of files)."""
    work = env.fresh_dir("w")
    img = make_image(os.path.join(work, "src.png"), 48, 40)
    os.makedirs(os.path.join(work, "in"))
    names = []
    links = 0
    for i in range(100000):
        if i % 250 == 0:
            p = "in/l%06d.png" % i
            os.link(img, os.path.join(work, p))
            links += 1
        else:
            p = "in/missing-%06d.png" % i
        names.append(p.encode())
    lists = {}
    for n in (10000, 100000):
        lists[n] = os.path.join(work, "list%d" % n)
        with open(lists[n], "wb") as f:
            f.write(b"\0".join(names[:n]) + b"\0")
    ref = reference_outputs(env, [img])[img]
    rss = {}
    for n in (10000, 100000):
        out = os.path.join(work, "out%d" % n)
        err = os.path.join(work, "err%d" % n)
        rep = os.path.join(work, "rep%d" % n)
        t0 = time.monotonic()
        rc, rss[n] = run_rss([env.imgpar, "-j", "2", "-0", "--files-from", "-", "--report", rep, out],
                             stdin_path=lists[n], stderr_path=err, timeout=120, cwd=work)
        dt = time.monotonic() - t0
        print("%d names: %.1f s, peak RSS %d KiB" % (n, dt, rss[n]))
        check(rc == 1, "%d names: exit %d" % (n, rc))
        want_ok = (n + 249) // 250
        outs = files_under(os.path.join(out, "in"))
        check(len(outs) == want_ok, "%d names: %d outputs, expected %d" % (n, len(outs), want_ok))
        with open(os.path.join(out, "in", outs[-1]), "rb") as f:
            check(f.read() == ref, "output differs from a single-file run")
        with open(err, "rb") as f:
            nerr = sum(1 for line in f if b": No such file or directory" in line)
        check(nerr == n - want_ok, "%d names: %d error lines, expected %d" % (n, nerr, n - want_ok))
        with open(rep, "rb") as f:
            nrec = sum(1 for _ in f)
        check(nrec == n, "%d names: %d report lines" % (n, nrec))
        check(dt < 50, "%d names took %.1f s" % (n, dt))
    check(rss[100000] <= rss[10000] + 3 * 1024,
          "peak RSS grew from %d KiB (10000 names) to %d KiB (100000 names)" % (rss[10000], rss[100000]))


if __name__ == "__main__":
    main([check_lists, check_bad_entries, check_usage, check_collisions, check_100k])
