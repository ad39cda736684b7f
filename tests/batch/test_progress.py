#!/usr/bin/python3
"""Progress for people at a terminal: with stderr on a pty, a progress line
(done/total, MP/s, failures, ETA) redrawn in place at most ~10 times a
second and one final summary line; -q silences all but errors; error lines
stay whole lines. With stderr on a pipe: no progress and no summary (-v:
per-file lines only).

usage: test_progress.py IMGPAR SAMPLES
"""
import os
import pty
import re
import select
import subprocess
import time

from batchutil import check, main, make_image

PROGRESS = re.compile(r"\rimgpar: (\d+)/(\d+) images, ([0-9.]+) MP/s, (\d+) failed(, ETA \d+:\d\d)?\x1b\[K")
STREAM_PROGRESS = re.compile(r"\rimgpar: (\d+) images, ([0-9.]+) MP/s, (\d+) failed\x1b\[K")


def run_pty(argv, stdin_data=None, timeout=120):
    """Runs argv with stderr on a pty; returns (exit status, stderr text, seconds)."""
    master, slave = pty.openpty()
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin_data is not None else subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    if stdin_data is not None:
        p.stdin.write(stdin_data)
        p.stdin.close()
    buf = b""
    deadline = t0 + timeout
    while time.monotonic() < deadline:
        r, _, _ = select.select([master], [], [], 0.1)
        if r:
            try:
                chunk = os.read(master, 65536)
            except OSError:   # EIO: the other side is closed
                break
            if not chunk:
                break
            buf += chunk
        elif p.poll() is not None:
            break
    rc = p.wait(timeout=10)
    dt = time.monotonic() - t0
    os.close(master)
    return rc, buf.decode("utf-8", "replace").replace("\r\n", "\n"), dt


def make_batch(env, n):
    src = env.fresh_dir("in")
    for i in range(n):
        make_image(os.path.join(src, "i%03d.png" % i), 640, 480, seed=i)   # about 1 s at -j1: several redraws
    with open(os.path.join(src, "zz-bad.png"), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n broken")
    return src


def check_terminal(env):
    src = make_batch(env, 40)
    out = env.fresh_dir("o")
    rc, text, dt = run_pty([env.imgpar, "-j", "1", "--blur", "10", src, out])
    check(rc == 1, "exit %d\n%r" % (rc, text[-2000:]))
    draws = PROGRESS.findall(text)
    check(len(draws) >= 3, "only %d progress redraws in %.1f s:\n%r" % (len(draws), dt, text[:2000]))
    check(len(draws) <= 10 * dt + 3, "%d redraws in %.1f s (more than 10 a second)" % (len(draws), dt))
    check(all(tot == "41" for _, tot, _, _, _ in draws), "total is not 41: %s" % draws[:3])
    done = [int(d) for d, _, _, _, _ in draws]
    check(done == sorted(done), "done went backwards: %s" % done)
    check(any(eta for *_, eta in draws), "no ETA shown: %s" % draws[:5])
    check(any(float(mp) > 0 for _, _, mp, _, _ in draws), "MP/s never above 0")
    # The error line is a whole line (the progress line was erased first).
    bad = os.path.join(src, "zz-bad.png")
    check(re.search(r"(^|\n|\x1b\[K)imgpar: %s: [^\r\n]+\n" % re.escape(bad), text),
          "error line not on its own line:\n%r" % text[-1500:])
    # What the terminal shows last: the text after the last carriage return.
    last = text.rstrip("\n").split("\n")[-1].split("\r")[-1].replace("\x1b[K", "")
    check(re.fullmatch(r"imgpar: done: 41 images in [0-9.]+ s: 40 ok, 0 skipped, 1 failed, "
                       r"[0-9.]+ MP/s", last), "final summary line %r" % last)
    check(text.endswith("\n"), "output does not end with a newline")

    # -q: only the error line.
    out = env.fresh_dir("o")
    rc, text, _ = run_pty([env.imgpar, "-q", src, out])
    check(rc == 1, "exit %d" % rc)
    check(text == "imgpar: %s: %s\n" % (bad, text.split(": ", 2)[2].rstrip("\n")) and "\r" not in text,
          "-q on a terminal printed %r" % text)

    # --files-from: no total, "N images".
    out = env.fresh_dir("o")
    names = b"".join(os.path.join(src, "i%03d.png" % i).encode() + b"\n" for i in range(40))
    rc, text, _ = run_pty([env.imgpar, "-j", "1", "--blur", "10", "--files-from", "-", out], stdin_data=names)
    check(rc == 0, "files-from exit %d: %r" % (rc, text[-500:]))
    check(STREAM_PROGRESS.search(text), "no streaming progress line: %r" % text[:500])
    check("imgpar: done: 40 images" in text, "no summary: %r" % text[-300:])


def check_pipe(env):
    src = make_batch(env, 6)
    out = env.fresh_dir("o")
    r = env.run(src, out)
    check(r.rc == 1, r.describe())
    lines = r.err.splitlines()
    check(len(lines) == 1 and lines[0].startswith("imgpar: %s: " % os.path.join(src, "zz-bad.png")),
          "stderr on a pipe:\n" + r.err)
    check("\r" not in r.err and "\x1b" not in r.err, "terminal codes on a pipe")
    os.unlink(os.path.join(src, "zz-bad.png"))
    r = env.run(src, env.fresh_dir("o"))
    check(r.rc == 0 and r.err == "", "clean run on a pipe printed %r" % r.err)
    r = env.run("-v", src, env.fresh_dir("o"))
    lines = r.err.splitlines()
    check(r.rc == 0 and len(lines) == 6 and all(" -> " in x for x in lines), "-v on a pipe:\n" + r.err)
    check("\r" not in r.err, "redraws with -v on a pipe")


if __name__ == "__main__":
    main([check_terminal, check_pipe])
