#!/usr/bin/python3
"""Reading a huge input from a slow disk, and Ctrl-C meanwhile (loader.c,
ip__file_read in codec.c).

The shim (shim.c) logs every read() that asks for 1 MiB or more as
"read LEN", and with IMGPAR_SHIM_SLOW_READ_MS=N returns at most 1 MiB from
each such read, N ms late: a slow disk.

Checked:
- a 48 MiB input is read with no read call asking for more than 4 MiB, and
  the bytes asked add up to the file (then it fails as what it is: not an
  image, one error line, exit 1);
- on the slow disk (50 ms per MiB: 2.4 s to read it all), SIGINT 0.5 s in
  stops the read: imgpar exits 130 within 1.2 s of the signal (one read of
  the whole file, or a loop that does not look at the cancel flag between
  reads, takes the 1.9 s left), with no output, at -j1 --threads and
  -j2 --procs.

usage: test_read.py IMGPAR SAMPLES CONFORMANCE SHIM
"""
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hutil import check, error_lines, expect, main, run, shim_env  # noqa: E402

SIZE = 48 << 20


def big_file(env):
    path = env.path("big.png")
    with open(path, "wb") as f:   # sparse: no disk space, read at memory speed
        f.truncate(SIZE)
    return path


def read_calls(log):
    lines = open(log).read().splitlines() if os.path.exists(log) else []
    return [int(l.split()[1]) for l in lines if l.startswith("read ")]


def check_chunks(env):
    src = big_file(env)
    log = env.path("read.log")
    out = env.fresh_dir("out")
    r = run(env.imgpar, "-j1", src, out, env=shim_env(log))
    expect(r, 1)
    error_lines(r, {src.encode(): "not a recognized image format"})
    calls = read_calls(log)
    check(calls and max(calls) <= 4 << 20, "read calls asked for more than 4 MiB: %s" % calls[:8])
    check(sum(calls) == SIZE, "read calls asked for %d bytes of %d" % (sum(calls), SIZE))
    check(os.listdir(out) == [], "output written: %s" % os.listdir(out))
    print("  %d read calls of at most 4 MiB for a %d MiB file" % (len(calls), SIZE >> 20))


def check_sigint(env):
    src = big_file(env)
    for args in (["-j1", "--threads"], ["-j2", "--procs"]):
        out = env.fresh_dir("out")
        p = subprocess.Popen([env.imgpar, "-q"] + args + [src, out], stderr=subprocess.PIPE,
                             env=shim_env(None, IMGPAR_SHIM_SLOW_READ_MS="50"))
        time.sleep(0.5)
        check(p.poll() is None, "%s: imgpar ended before the signal" % args)
        t0 = time.monotonic()
        p.send_signal(signal.SIGINT)
        try:
            p.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
        after = time.monotonic() - t0
        check(p.returncode == 130, "%s: exit %s, expected 130" % (args, p.returncode))
        check(after < 1.2, "%s: %.2f s from SIGINT to exit: the read went on" % (args, after))
        check(os.listdir(out) == [], "%s: output written: %s" % (args, os.listdir(out)))
        print("  %s: exit 130 %.3f s after SIGINT" % (" ".join(args), after))


if __name__ == "__main__":
    main([check_chunks, check_sigint])
