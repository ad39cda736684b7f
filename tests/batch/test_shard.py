#!/usr/bin/python3
"""--shard K/N: the shards of a batch are disjoint, their union is the whole
batch, membership is FNV-1a 64 of the path relative to its INPUT modulo N
(as documented, so any machine computes the same split), and N shard runs
into one OUTDIR write exactly what a single run writes, byte for byte.
Both for directory inputs (-r) and --files-from.

usage: test_shard.py IMGPAR SAMPLES
"""
import os
import subprocess

from batchutil import (check, dry_run_lines, expect_rc, fnv1a64, main, make_tree,
                       read_report, tree)


def make_batch(env, n=60):
    src = env.fresh_dir("in")
    rels = ["d%d/%s%02d.%s" % (i % 5, "sub/" if i % 3 == 0 else "", i, "jpg" if i % 4 == 0 else "png")
            for i in range(n)]
    make_tree(src, rels, size=(24, 20))
    return src, rels


def check_dirs(env):
    src, rels = make_batch(env)
    full = dry_run_lines(env.run("-r", "--dry-run", src, os.path.join(env.tmp, "x")))
    check(len(full) == len(rels), "dry run lists %d of %d" % (len(full), len(rels)))
    for n in (1, 2, 3, 7):
        seen = []
        for k in range(n):
            r = env.run("-r", "--dry-run", "--shard", "%d/%d" % (k, n), src, os.path.join(env.tmp, "x"))
            expect_rc(r, 0)
            mine = dry_run_lines(r)
            for _, inp, _ in mine:
                rel = os.path.relpath(inp, src)
                check(fnv1a64(rel.encode()) % n == k, "%s is in shard %d/%d, FNV-1a says %d"
                      % (rel, k, n, fnv1a64(rel.encode()) % n))
            seen += mine
        check(len(seen) == len(set(seen)), "shards of N=%d overlap" % n)
        check(sorted(seen) == sorted(full), "shards of N=%d do not cover the batch" % n)
        if n == 7:
            check(all(any(fnv1a64(os.path.relpath(i, src).encode()) % 7 == k for _, i, _ in full)
                      for k in range(7)), "some shard of 7 is empty: weak test")

    ref = os.path.join(env.fresh_dir("ref"), "out")
    expect_rc(env.run("-r", src, ref), 0)
    out = os.path.join(env.fresh_dir("sh"), "out")
    seen = []
    for k in range(3):
        rep = os.path.join(env.tmp, "shard%d.jsonl" % k)
        r = env.run("-r", "--shard", "%d/3" % k, "--report", rep, src, out)
        expect_rc(r, 0)
        recs = read_report(rep)
        check(all(x["status"] == "ok" for x in recs), "shard %d: %s" % (k, recs))
        seen += [x["output"] for x in recs]
    check(len(seen) == len(set(seen)) == len(rels), "outputs written more than once or missing")
    check(tree(out) == tree(ref), "sharded outputs differ from a single run")


def check_files_from(env):
    src, rels = make_batch(env, 40)
    lst = b"".join(b"./" + r.encode() + b"\0" for r in rels)   # "./" is dropped from the key
    ref = os.path.join(src, "ref")
    p = subprocess.run([env.imgpar, "-0", "--files-from", "-", ref], input=lst, cwd=src, capture_output=True)
    check(p.returncode == 0, p.stderr.decode())
    out = os.path.join(src, "out")
    seen = []
    for k in range(4):
        p = subprocess.run([env.imgpar, "-0", "--files-from", "-", "--shard", "%d/4" % k, "--report", "-", out],
                           input=lst, cwd=src, capture_output=True)
        check(p.returncode == 0, p.stderr.decode())
        for x in read_report(p.stdout.decode(), from_text=True):
            rel = x["path"][2:]
            check(fnv1a64(rel.encode()) % 4 == k, "%s in shard %d/4" % (rel, k))
            seen.append(rel)
    check(sorted(seen) == sorted(rels), "files-from shards: %d of %d, %d distinct" %
          (len(seen), len(rels), len(set(seen))))
    check(tree(out) == tree(ref), "files-from sharded outputs differ from a single run")


def check_bad(env):
    src, _ = make_batch(env, 3)
    for bad in ("3/3", "1/0", "a/b", "1", "-1/2", "1/2x", "/2"):
        r = env.run("-r", "--shard", bad, src, os.path.join(env.tmp, "x"))
        expect_rc(r, 2)


if __name__ == "__main__":
    main([check_dirs, check_files_from, check_bad])
