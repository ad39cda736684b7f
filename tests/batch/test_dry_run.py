#!/usr/bin/python3
"""--dry-run: one 'process|skip<TAB>INPUT<TAB>OUTPUT' line per input on stdout,
exit 0, and nothing done: no OUTDIR, no outputs, no report; the plan it lists
is exactly what a real run then writes; refused plans are refused (exit 2).

usage: test_dry_run.py IMGPAR SAMPLES
"""
import os
import subprocess
import time

from batchutil import check, dry_run_lines, expect_rc, files_under, main, make_image, make_tree


def check_dry_run(env):
    src = make_tree(env.fresh_dir("in"), ["a.png", "s/b.jpg", "s/c.bmp"])
    out = os.path.join(env.tmp, "never-created")
    rep = os.path.join(env.tmp, "dry.jsonl")
    r = env.run("-r", "--dry-run", "--report", rep, src, out)
    expect_rc(r, 0)
    check(r.err == "", "stderr: " + r.err)
    lines = dry_run_lines(r)
    want = [("process", os.path.join(src, "a.png"), os.path.join(out, "a.png")),
            ("process", os.path.join(src, "s", "b.jpg"), os.path.join(out, "s", "b.jpg")),
            ("process", os.path.join(src, "s", "c.bmp"), os.path.join(out, "s", "c.png"))]
    check(lines == want, "dry-run lines %s, expected %s" % (lines, want))
    check(not os.path.exists(out), "--dry-run created OUTDIR")
    check(not os.path.exists(rep), "--dry-run wrote the report")

    # The real run writes exactly the listed outputs.
    r = env.run("-r", src, out)
    expect_rc(r, 0)
    check(files_under(out) == sorted(os.path.relpath(o, out) for _, _, o in want),
          "real run wrote %s" % files_under(out))
    before = {f: os.stat(os.path.join(out, f)).st_mtime_ns for f in files_under(out)}

    # With --skip-existing: up-to-date outputs are 'skip', a touched input 'process'.
    future = time.time() + 5
    os.utime(os.path.join(src, "s", "b.jpg"), (future, future))
    r = env.run("-r", "--dry-run", "--skip-existing", src, out)
    expect_rc(r, 0)
    acts = [(a, os.path.basename(i)) for a, i, _ in dry_run_lines(r)]
    check(acts == [("skip", "a.png"), ("process", "b.jpg"), ("skip", "c.bmp")], "actions %s" % acts)
    after = {f: os.stat(os.path.join(out, f)).st_mtime_ns for f in files_under(out)}
    check(after == before, "--dry-run touched outputs")

    # A plan that would be refused is refused.
    make_image(os.path.join(src, "s", "c.png"), seed=7)
    r = env.run("-r", "--dry-run", src, os.path.join(env.tmp, "x"))
    expect_rc(r, 2)
    check("would both write" in r.err, r.describe())


def check_dry_run_files_from(env):
    work = env.fresh_dir("w")
    make_tree(work, ["in/a.png", "in/t/b.png"])
    p = subprocess.run([env.imgpar, "-0", "--files-from", "-", "--dry-run", "--shard", "0/1", "out"],
                       input=b"in/a.png\0in/t/b.png\0", capture_output=True, cwd=work, timeout=60)
    check(p.returncode == 0, "exit %d: %s" % (p.returncode, p.stderr))
    lines = [tuple(x.split("\t")) for x in p.stdout.decode().splitlines()]
    check(lines == [("process", "in/a.png", "out/in/a.png"), ("process", "in/t/b.png", "out/in/t/b.png")],
          "lines %s" % lines)
    check(not os.path.exists(os.path.join(work, "out")), "--dry-run created OUTDIR")


if __name__ == "__main__":
    main([check_dry_run, check_dry_run_files_from])
