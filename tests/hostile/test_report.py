#!/usr/bin/python3
"""--report statuses and the documented exit statuses 0, 1, 2, 3, 130.

usage: test_report.py IMGPAR SAMPLES CONFORMANCE SHIM
"""
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hutil import check, error_lines, expect, main, read_report, report_path, run, tree_sums  # noqa: E402


def check_statuses(env):
    """ok, failed and skipped records, with their error field; exit 1 when a
    file failed, 0 when the rest were ok or skipped."""
    d = env.fresh_dir("in")
    for n in ("gray8.png", "photo.jpg", "rgba8.png"):
        shutil.copy(env.sample(n), d)
    with open(env.sample("rgb8.png"), "rb") as f:
        data = f.read()
    bad = os.path.join(d, "broken.png")
    with open(bad, "wb") as f:
        f.write(data[:5000])
    out = env.fresh_dir("out")
    # photo.jpg's output exists and is newer: --skip-existing skips it.
    expect(run(env.imgpar, os.path.join(d, "photo.jpg"), out), 0)
    future = time.time() + 100
    os.utime(os.path.join(out, "photo.jpg"), (future, future))
    rep = os.path.join(env.tmp, "r1.jsonl")
    r = run(env.imgpar, "--skip-existing", "--report", rep, d, out)
    expect(r, 1)
    error_lines(r, {bad: "truncated PNG data"})
    recs = {os.path.basename(report_path(x)): x for x in read_report(rep)}
    check(sorted(recs) == [b"broken.png", b"gray8.png", b"photo.jpg", b"rgba8.png"], "records %s" % sorted(recs))
    want = {b"broken.png": "failed", b"gray8.png": "ok", b"photo.jpg": "skipped", b"rgba8.png": "ok"}
    for n, status in want.items():
        x = recs[n]
        check(x["status"] == status, "%s: status %s, expected %s" % (n, x["status"], status))
        check((x["error"] is None) == (status != "failed"), "%s: error %r" % (n, x["error"]))
        check(x["output"] == os.path.join(out, n.decode().replace(".png", ".png")), "%s: output %r" % (n, x["output"]))
    check(recs[b"broken.png"]["error"] == "truncated PNG data", "error field %r" % recs[b"broken.png"]["error"])
    check(recs[b"gray8.png"]["width"] == 200 and recs[b"broken.png"]["width"] is None, "width fields")

    os.unlink(bad)
    rep = os.path.join(env.tmp, "r2.jsonl")
    r = run(env.imgpar, "--skip-existing", "--report", rep, d, out)
    expect(r, 0)
    statuses = sorted(x["status"] for x in read_report(rep))
    check(statuses == ["skipped"] * 3, "second run statuses %s" % statuses)


def check_exit_usage(env):
    """2: a usage error or a refused plan; nothing is done (no OUTDIR, no report)."""
    out = os.path.join(env.tmp, "never")
    rep = os.path.join(env.tmp, "never.jsonl")
    for args in (["--no-such-option"], ["--quality", "101"], ["-j", "0"], ["--max-pixels", "-5"]):
        r = run(env.imgpar, *args, "--report", rep, env.sample("gray8.png"), out)
        expect(r, 2)
        check(r.lines and b"imgpar: " in r.lines[0], "usage error line\n" + r.describe())
    d = env.fresh_dir("collide")
    shutil.copy(env.sample("gray8.png"), os.path.join(d, "x.png"))
    shutil.copy(env.sample("photo.jpg"), os.path.join(d, "x.jpg"))
    os.rename(os.path.join(d, "x.jpg"), os.path.join(d, "x.jpeg"))
    shutil.copy(env.sample("gray8.png"), os.path.join(d, "x.bmp"))  # PNG data: also writes x.png
    r = run(env.imgpar, "--report", rep, os.path.join(d, "x.png"), os.path.join(d, "x.bmp"), out)
    expect(r, 2)
    check(b"would both write" in r.err, r.describe())
    check(not os.path.exists(out) and not os.path.exists(rep), "a refused plan created OUTDIR or the report")


def one_line_no_start(r, want):
    expect(r, 3)
    check(len(r.lines) == 1 and r.lines[0].startswith(b"imgpar: cannot start: ") and want in r.lines[0],
          "expected one line 'imgpar: cannot start: ...%s...'\n%s" % (want.decode(), r.describe()))


def check_exit_no_start(env):
    """3: imgpar could not start. Three real ways: /dev/shm too small for
    --procs, too few file descriptors for the worker sockets, a --mem arena
    larger than the address space. One clear line, no output, nothing in
    /dev/shm."""
    shm_before = set(os.listdir("/dev/shm"))
    good = env.sample("gray8.png")

    # A 1 MiB tmpfs on /dev/shm in a private mount namespace.
    out = env.fresh_dir("out")
    p = subprocess.run(["unshare", "-m", "--propagation", "private", "bash", "-c",
                        'mount -t tmpfs -o size=1m imgpar-test /dev/shm || exit 99; exec "$@"', "bash",
                        env.imgpar, "--procs", "-j", "2", good, out],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    check(p.returncode != 99, "cannot mount a tmpfs on /dev/shm: %r" % p.stderr)

    class R:
        rc = p.returncode
        lines = [l for l in p.stderr.split(b"\n") if l]

        def describe(self):
            return "exit %d\n%s" % (p.returncode, p.stderr.decode())
    one_line_no_start(R(), b"not enough shared memory")
    check(tree_sums(out) == {}, "outputs after a failed start")

    def few_fds():
        resource.setrlimit(resource.RLIMIT_NOFILE, (8, 8))
    out = env.fresh_dir("out")
    r = run(env.imgpar, "--procs", "-j", "8", good, out, preexec_fn=few_fds)
    one_line_no_start(r, b"Too many open files")
    check(tree_sums(out) == {}, "outputs after a failed start")

    out = env.fresh_dir("out")
    r = run(env.imgpar, "--mem", "200T", good, out)
    one_line_no_start(r, b"cannot map the --mem arena")
    check(tree_sums(out) == {}, "outputs after a failed start")
    left = set(os.listdir("/dev/shm")) - shm_before
    check(not [n for n in left if n.startswith("imgpar")], "shared memory left: %s" % left)


def check_exit_interrupted(env):
    """130: interrupted. The report holds one valid record per finished
    input; interrupted ones are failed with error 'interrupted' and have no
    output, finished ones are complete."""
    gen = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pipeline", "gen_images.py")
    d = os.path.join(env.tmp, "many")
    subprocess.run(["/usr/bin/python3", gen, d, "--medium", "80"], check=True, stdout=subprocess.DEVNULL)
    ref = env.fresh_dir("ref")
    expect(run(env.imgpar, "--png-level", "9", d, ref, timeout=300), 0)
    ref_sums = tree_sums(ref)
    for opts, sig in ((["--threads"], signal.SIGINT), (["--procs"], signal.SIGTERM)):
        out = env.fresh_dir("out")
        rep = os.path.join(env.tmp, "int-%s.jsonl" % opts[0].strip("-"))
        p = subprocess.Popen([env.imgpar, *opts, "-j", "2", "--png-level", "9", "--report", rep, d, out],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        # Signal once a few files are done (however slow this build is).
        deadline = time.time() + 60
        while time.time() < deadline and p.poll() is None:
            if os.path.exists(rep) and open(rep, "rb").read().count(b"\n") >= 3:
                break
            time.sleep(0.01)
        check(p.poll() is None, "batch finished before the signal")
        p.send_signal(sig)
        _, err = p.communicate(timeout=60)
        check(p.returncode == 130, "%s: exit %d after %s\n%s" % (opts, p.returncode, sig, err.decode()))
        check(err.decode().strip().endswith("imgpar: interrupted"), "last line: %r" % err)
        recs = read_report(rep)
        got = tree_sums(out)
        for x in recs:
            name = os.path.basename(report_path(x, "output"))
            if x["status"] == "ok":
                check(got.get(name) == ref_sums[name], "%s: ok but output missing or wrong" % name)
            else:
                check(x["status"] == "failed" and x["error"] == "interrupted", "record %s" % x)
                check(name not in got, "%s: interrupted but has an output" % name)
        check(len(got) == len([x for x in recs if x["status"] == "ok"]), "outputs without ok records")
        check(0 < len(got) < len(ref_sums), "%s: %d of %d done: not an interruption test" % (
            opts, len(got), len(ref_sums)))


def check_documented(env):
    """--help and the README state the same exit statuses."""
    r = run(env.imgpar, "--help")
    expect(r, 0)
    text = r.out.decode()
    m = re.search(r"Exit status:(.*?)(\n\n|\Z)", text, re.S)
    check(m, "--help has no 'Exit status:' paragraph")
    helptext = " ".join(m.group(1).split())
    for code, words in (("0", "succeeded"), ("1", "failed"), ("2", "usage"), ("3", "could not start"),
                        ("130", "interrupted")):
        check(re.search(r"\b%s [^,]*%s" % (code, words), helptext),
              "--help: no '%s ... %s' in %r" % (code, words, helptext))
    readme = os.path.join(env.samples, "..", "README.md")
    with open(readme) as f:
        body = " ".join(f.read().split())
    m = re.search(r"Exit status: (.*?)interrupted", body)
    check(m, "README has no 'Exit status:' item")
    for code in ("0", "1", "2", "3", "130"):
        check(re.search(r"\b%s\b" % code, m.group(0)), "README's exit statuses lack %s" % code)


if __name__ == "__main__":
    main([check_statuses, check_exit_usage, check_exit_no_start, check_exit_interrupted, check_documented])
