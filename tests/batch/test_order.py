#!/usr/bin/python3
"""Processing order: INPUTs start largest file first (ties in input order),
--in-order keeps the order given, --files-from keeps the list's order, and
--dry-run lists the plan in input order. Observed through the JSON report of
a run at -j 1 with one I/O thread and one writer, where every stage is
first in, first out; outputs do not depend on the order.

usage: test_order.py IMGPAR SAMPLES
"""
import os
import subprocess

from batchutil import check, dry_run_lines, expect_rc, files_under, main, make_image, read_report, sha256

SERIAL = ["-j", "1", "--serial", "--io-threads", "1", "--writers", "1"]


def inputs(env):
    """Five PNGs given smallest first; two have the same size."""
    d = env.fresh_dir("in")
    paths = [make_image(os.path.join(d, "%s.png" % n), w, h, seed=i)
             for i, (n, w, h) in enumerate([("a", 20, 10), ("b", 40, 30), ("c", 90, 70),
                                            ("d", 160, 120), ("e", 300, 200)])]
    twin = os.path.join(d, "b2.png")
    with open(paths[1], "rb") as f, open(twin, "wb") as g:
        g.write(f.read())
    paths.insert(2, twin)   # a, b, b2 (same size as b), c, d, e
    sizes = [os.path.getsize(p) for p in paths]
    check(sorted(sizes) == sizes and len(set(sizes)) == len(sizes) - 1,
          "test images are not in size order: %s" % sizes)
    return paths


def run_order(env, args, paths, out):
    rep = os.path.join(env.tmp, "order.jsonl")
    r = env.run(*(SERIAL + args + ["--report", rep] + paths + [out]))
    expect_rc(r, 0)
    return [os.path.basename(x["path"]) for x in read_report(rep) if x["status"] == "ok"]


def check_largest_first(env):
    paths = inputs(env)
    out1, out2 = os.path.join(env.tmp, "o1"), os.path.join(env.tmp, "o2")
    got = run_order(env, [], paths, out1)
    check(got == ["e.png", "d.png", "c.png", "b.png", "b2.png", "a.png"], "default order %s" % got)
    got = run_order(env, ["--in-order"], paths, out2)
    check(got == ["a.png", "b.png", "b2.png", "c.png", "d.png", "e.png"], "--in-order order %s" % got)
    names = files_under(out1)
    check(names == files_under(out2) and len(names) == 6, "outputs %s / %s" % (names, files_under(out2)))
    for n in names:
        check(sha256(os.path.join(out1, n)) == sha256(os.path.join(out2, n)), "%s differs by order" % n)


def check_dry_run_and_list_keep_input_order(env):
    paths = inputs(env)
    r = env.run("--dry-run", *paths, os.path.join(env.tmp, "never"))
    expect_rc(r, 0)
    got = [os.path.basename(i) for _, i, _ in dry_run_lines(r)]
    check(got == [os.path.basename(p) for p in paths], "--dry-run order %s" % got)
    rep = os.path.join(env.tmp, "list.jsonl")
    p = subprocess.run([env.imgpar] + SERIAL + ["--report", rep, "--files-from", "-",
                                               os.path.join(env.tmp, "ol")],
                       input="\n".join(paths).encode() + b"\n", capture_output=True, timeout=60)
    check(p.returncode == 0, "--files-from: exit %d: %s" % (p.returncode, p.stderr))
    got = [os.path.basename(x["path"]) for x in read_report(rep) if x["status"] == "ok"]
    check(got == [os.path.basename(q) for q in paths], "--files-from order %s" % got)


if __name__ == "__main__":
    main([check_largest_first, check_dry_run_and_list_keep_input_order])
