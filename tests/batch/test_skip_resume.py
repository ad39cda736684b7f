#!/usr/bin/python3
"""--skip-existing and resuming: outputs newer than their inputs are skipped
(a -v line, a 'skipped' report record), older ones redone; a batch
interrupted by SIGINT (exit 130, a valid report of what finished) and rerun
with --skip-existing ends with every output present and byte-identical to an
uninterrupted run, the finished ones skipped and untouched.

usage: test_skip_resume.py IMGPAR SAMPLES
"""
import os
import signal
import subprocess
import time

from batchutil import (check, expect_rc, files_under, main, make_image, make_tree,
                       read_report, tree)


def check_skip(env):
    src = make_tree(env.fresh_dir("in"), ["a.png", "s/b.jpg", "s/c.png"])
    out = env.fresh_dir("o")
    expect_rc(env.run("-r", src, out), 0)
    first = tree(out)
    mtimes = {rel: os.stat(os.path.join(out, rel)).st_mtime_ns for rel in first}

    # Input c.png is now newer than its output; b.jpg's output is removed.
    future = time.time() + 5
    os.utime(os.path.join(src, "s", "c.png"), (future, future))
    os.unlink(os.path.join(out, "s", "b.jpg"))
    rep = os.path.join(env.tmp, "skip.jsonl")
    r = env.run("-r", "-v", "--skip-existing", "--report", rep, src, out)
    expect_rc(r, 0)
    a_in, a_out = os.path.join(src, "a.png"), os.path.join(out, "a.png")
    check("imgpar: %s: skipped, %s is newer\n" % (a_in, a_out) in r.err, "no skip line\n" + r.describe())
    check(os.stat(a_out).st_mtime_ns == mtimes["a.png"], "a skipped output was rewritten")
    check(os.stat(os.path.join(out, "s", "c.png")).st_mtime_ns != mtimes["s/c.png"],
          "an output older than its input was not redone")
    check(tree(out) == first, "outputs differ after the skip run")
    recs = {os.path.relpath(x["path"], src): x for x in read_report(rep)}
    check({k: v["status"] for k, v in recs.items()} ==
          {"a.png": "skipped", "s/b.jpg": "ok", "s/c.png": "ok"}, "statuses %s" % recs)
    skip = recs["a.png"]
    check(skip["output"] == a_out and skip["error"] is None and skip["format"] == "png"
          and skip["bytes_out"] == 0, "skipped record %s" % skip)

    # Without the option, everything is redone.
    r = env.run("-r", "-v", src, out)
    expect_rc(r, 0)
    check(": skipped, " not in r.err, "skipped without --skip-existing\n" + r.describe())


def check_resume_after_sigint(env):
    work = env.fresh_dir("w")
    src = os.path.join(work, "in")
    for i in range(80):
        make_image(os.path.join(src, "d%d" % (i % 4), "i%03d.png" % i), 320, 240, seed=i)
    args = ["-r", "--blur", "8"]
    ref = os.path.join(work, "ref")
    expect_rc(env.run(*args, src, ref, timeout=120), 0)
    want = tree(ref)
    check(len(want) == 80, "reference run wrote %d files" % len(want))

    out = os.path.join(work, "out")
    rep1 = os.path.join(work, "run1.jsonl")
    p = subprocess.Popen([env.imgpar, "-j", "1"] + args + ["--report", rep1, src, out],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while len(files_under(out)) < 8 and time.monotonic() < deadline and p.poll() is None:
        time.sleep(0.005)
    p.send_signal(signal.SIGINT)
    err = p.stderr.read().decode()
    rc = p.wait(timeout=60)
    check(rc == 130, "interrupted run exited %d\n%s" % (rc, err))
    done = tree(out)
    check(8 <= len(done) < 80, "interrupt left %d outputs (the test needs a partial batch)" % len(done))
    check(not [f for f in done if os.path.basename(f).startswith(".")], "temporaries left: %s" % done)
    for rel, h in done.items():
        check(h == want[rel], "%s finished before the interrupt differs from the reference" % rel)
    mtimes = {rel: os.stat(os.path.join(out, rel)).st_mtime_ns for rel in done}

    # The report of the interrupted run is valid and says what finished.
    recs = read_report(rep1)
    ok = sorted(os.path.relpath(x["output"], out) for x in recs if x["status"] == "ok")
    check(ok == sorted(done), "interrupted report's ok records %s != outputs present %s" % (ok, sorted(done)))
    for x in recs:
        check(x["status"] in ("ok", "failed"), "record %s" % x)
        if x["status"] == "failed":
            check(x["error"] == "interrupted", "non-interrupt failure %s" % x)

    rep2 = os.path.join(work, "run2.jsonl")
    r = env.run(*args, "--skip-existing", "--report", rep2, src, out, timeout=120)
    expect_rc(r, 0)
    check(tree(out) == want, "resumed batch differs from an uninterrupted run")
    for rel, m in mtimes.items():
        check(os.stat(os.path.join(out, rel)).st_mtime_ns == m, "%s was redone, not skipped" % rel)
    recs = read_report(rep2)
    skipped = sorted(os.path.relpath(x["output"], out) for x in recs if x["status"] == "skipped")
    redone = sorted(os.path.relpath(x["output"], out) for x in recs if x["status"] == "ok")
    check(skipped == sorted(done), "skipped %d, finished before %d" % (len(skipped), len(done)))
    check(sorted(skipped + redone) == sorted(want), "resume did not cover the batch exactly once")


if __name__ == "__main__":
    main([check_skip, check_resume_after_sigint])
