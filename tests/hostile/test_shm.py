#!/usr/bin/python3
"""Shared memory of --procs: created with O_CREAT|O_EXCL and mode 0600 under
an unpredictable name (/imgpar-<pid>-<n>-<16 random hex digits>), unlinked
at once, so no /dev/shm/imgpar-* name is visible for more than an instant.

An LD_PRELOAD shim (shim.c) logs every shm_open (name, flags, mode, the
object's mode from fstat) and shm_unlink; a thread polls /dev/shm during
the runs. A process killed between shm_open and shm_unlink leaves its
name: the next --procs run removes names whose pid is gone, and imgpar
bench does after it SIGKILLs a configuration child (the shim holds the name
open long enough to kill the child inside that window).

A full /dev/shm (the shim makes fallocate fail past a limit) shrinks the
arena to below the block that could not be allocated: images wait for room
in it and the batch completes; only images that can never fit fail, one
line each, exit 1, no crash. The arena fallocates only pages it never
allocated before, so a run whose images reuse one block calls fallocate
once. Once the input is exhausted, the arena punches out the pages of its
free blocks, and of each block freed after that (draining): every page
fallocated is punched out again by the end of the run.

usage: test_shm.py IMGPAR SAMPLES CONFORMANCE SHIM
"""
import os
import re
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hutil import check, expect, main, run, shim_env  # noqa: E402

O_CREAT, O_EXCL, O_RDWR = 0o100, 0o200, 0o2


class Poller(threading.Thread):
    """Lists /dev/shm as fast as it can; records first and last sighting of
    every imgpar-* name."""

    def __init__(self):
        super().__init__(daemon=True)
        self.seen = {}
        self.polls = 0
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            now = time.monotonic()
            for n in os.listdir("/dev/shm"):
                if n.startswith("imgpar"):
                    first, _ = self.seen.get(n, (now, now))
                    self.seen[n] = (first, now)
            self.polls += 1


def check_shm_lifetime(env):
    gen = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pipeline", "gen_images.py")
    d = os.path.join(env.tmp, "many")
    subprocess.run(["/usr/bin/python3", gen, d, "--medium", "24"], check=True, stdout=subprocess.DEVNULL)
    log = os.path.join(env.tmp, "shim.log")
    before = {n for n in os.listdir("/dev/shm") if n.startswith("imgpar")}
    randoms = set()
    pids = set()
    poller = Poller()
    poller.start()
    runs = 0
    for i in range(6):
        e = shim_env(log)
        out = env.fresh_dir("out")
        p = subprocess.Popen([env.imgpar, "--procs", "-j", "2", d, out], env=e,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _, err = p.communicate(timeout=120)
        check(p.returncode == 0, "exit %d: %s" % (p.returncode, err.decode()))
        with open(log) as f:
            ev = [l.split() for l in f.read().splitlines()]
        opens = [x for x in ev if x[0] == "shm_open"]
        unlinks = [x for x in ev if x[0] == "shm_unlink"]
        check(len(opens) == 1, "expected one shm_open, got %s" % opens)
        name, flags, mode, st_mode, t_open = opens[0][1], int(opens[0][2], 16), opens[0][3], opens[0][4], \
            int(opens[0][5])
        m = re.fullmatch(r"/imgpar-(\d+)-(\d+)-([0-9a-f]{16})", name)
        check(m and int(m.group(1)) == p.pid, "name %s does not follow /imgpar-<pid %d>-<n>-<random>" % (
            name, p.pid))
        randoms.add(m.group(3))
        check(flags & (O_CREAT | O_EXCL) == (O_CREAT | O_EXCL), "shm_open flags %#x lack O_CREAT|O_EXCL" % flags)
        check(flags & 3 == O_RDWR, "shm_open flags %#x" % flags)
        check(mode == "600" and st_mode == "600", "mode %s, object mode %s, expected 600" % (mode, st_mode))
        # Its own name exactly once (the run may also sweep names of dead
        # processes: check_stale_names_swept).
        unlinks = [x for x in unlinks if x[1].startswith("/imgpar-%d-" % p.pid)]
        check([x[1] for x in unlinks] == [name], "unlinks %s, expected exactly %s" % (unlinks, name))
        gap = (int(unlinks[0][2]) - t_open) / 1e6
        check(0 <= gap < 500, "unlinked %.1f ms after creation" % gap)
        # Unlinked before any work: before the first output is even created.
        order = [x[0] if x[0] != "shm_unlink" or x[1] == name else "sweep" for x in ev]
        check("tmpfile" in order and order.index("shm_unlink") < order.index("tmpfile"),
              "the name outlived the start of work: %s" % order[:6])
        pids.add(str(p.pid))
        runs += 1
    poller.stop.set()
    poller.join()
    check(len(randoms) == runs, "random parts repeat across runs: %s" % randoms)
    # Names of these runs only (other imgpar processes may run meanwhile);
    # 0.5 s: a loaded machine may deschedule imgpar between the two calls.
    mine = {n: v for n, v in poller.seen.items() if n.split("-")[1:2] and n.split("-")[1] in pids}
    long_lived = {n: (b - a) for n, (a, b) in mine.items() if b - a > 0.5}
    check(not long_lived, "names visible in /dev/shm for more than 0.5 s: %s" % long_lived)
    left = {n for n in os.listdir("/dev/shm") if n.startswith("imgpar")} - before
    check(not left, "left in /dev/shm: %s" % left)
    check(poller.polls > 100, "only %d polls of /dev/shm" % poller.polls)
    print("  %d runs, %d polls of /dev/shm, %d of their names glimpsed (each < 0.5 s), created O_EXCL 0600" % (
        runs, poller.polls, len(mine)))


def check_threads_use_no_shm(env):
    """--threads and --serial keep pixels in private memory: no shm_open at all."""
    log = os.path.join(env.tmp, "shim.log")
    for opts in (["--threads"], ["--serial"]):
        e = shim_env(log)
        out = env.fresh_dir("out")
        expect(run(env.imgpar, *opts, env.sample("gray8.png"), out, env=e), 0)
        ev = open(log).read() if os.path.exists(log) else ""
        check("shm_open" not in ev, "%s opened shared memory: %s" % (opts, ev))


def shm_names():
    return {n for n in os.listdir("/dev/shm") if n.startswith("imgpar")}


def dead_pid():
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def make_name(pid):
    name = "imgpar-%d-0-%016x" % (pid, int.from_bytes(os.urandom(8), "big"))
    fd = os.open(os.path.join("/dev/shm", name), os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
    os.close(fd)
    return name


def check_stale_names_swept(env):
    """A name left by a process killed between shm_open and shm_unlink (its
    pid no longer exists) is removed by the next --procs run; a name whose
    process is alive is left alone."""
    stale, live = make_name(dead_pid()), make_name(os.getpid())
    try:
        expect(run(env.imgpar, "--procs", "-j", "2", env.sample("gray8.png"), env.fresh_dir("out")), 0)
        names = shm_names()
        check(stale not in names, "stale %s was not removed" % stale)
        check(live in names, "%s of a live process was removed" % live)
    finally:
        for n in (stale, live):
            if os.path.exists(os.path.join("/dev/shm", n)):
                os.unlink(os.path.join("/dev/shm", n))


def check_bench_kill_in_window(env):
    """imgpar bench cancels a configuration with SIGKILL. The shim holds
    every new name for 3 s before shm_unlink, so the SIGINT lands while the
    child holds one: the bench must remove it after killing the child."""
    before = shm_names()
    e = shim_env(IMGPAR_SHIM_SHM_HOLD_MS="3000")
    p = subprocess.Popen([env.imgpar, "bench", "--no-progress", "--strategies", "procs", "--jobs", "1",
                          "--repeat", "1", "--warmup", "0", env.sample("gray8.png")], env=e,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    held = set()
    deadline = time.monotonic() + 20
    while not held and time.monotonic() < deadline and p.poll() is None:
        time.sleep(0.05)
        held = shm_names() - before
    check(held, "no name appeared in /dev/shm while the shim held it")
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=30)
    check(p.returncode == 130, "exit %d (wanted 130): %s" % (p.returncode, err.decode()))
    left = shm_names() - before
    check(not left, "left in /dev/shm after the bench killed its child: %s" % left)


def check_shm_full(env):
    from PIL import Image
    import numpy as np
    src = env.fresh_dir("full-in")
    rng = np.random.default_rng(3)
    names = ["im%d.png" % i for i in range(6)]
    for n in names:
        Image.fromarray(rng.integers(0, 256, (400, 600, 3), dtype=np.uint8)).save(os.path.join(src, n))
    block = 600 * 400 * 3 + 600 * 400   # decoded RGB + gray output, both 64-byte aligned
    block = (block + 4095) // 4096 * 4096
    log = os.path.join(env.tmp, "fallocate.log")

    events, out_dirs = [], []

    def pages(evs, kind):
        return {p for ev in evs if ev[0] == kind for p in range(int(ev[1]) // 4096, (int(ev[1]) + int(ev[2])) // 4096)}

    def go(limit, *opts, strip_min=None):
        e = shim_env(log, IMGPAR_SHIM_FALLOCATE_LIMIT=str(limit))
        if strip_min:
            e["IMGPAR_TEST_PNG_STRIP_MIN"] = str(strip_min)
        out = env.fresh_dir("full-out")
        out_dirs.append(out)
        r = run(env.imgpar, "--procs", *opts, src, out, env=e)
        lines = open(log).read().splitlines() if os.path.exists(log) else []
        events[:] = [l.split() for l in lines if l.startswith(("fallocate", "punch"))]
        calls = [ev[1:] for ev in events if ev[0] == "fallocate"]
        return r, sorted(os.listdir(out)), calls

    # One image in flight: every image reuses the first block, fallocated
    # once, and punched out once the input is exhausted.
    r, outs, calls = go(block, "-j", "1", "--queue", "1")
    expect(r, 0)
    check(outs == names, "outputs %s" % outs)
    check(events == [["fallocate", "0", str(block)], ["punch", "0", str(block)]],
          "calls %s, wanted one fallocate of [0, %d), then its punch" % (events, block))
    # No room for even one image: each file fails with one line, nothing crashes.
    r, outs, calls = go(block - 4096, "-j", "1", "--queue", "1")
    expect(r, 1)
    check(outs == [], "outputs %s with a full /dev/shm" % outs)
    err = r.err.decode()
    lines = [l for l in err.splitlines() if "no room in /dev/shm" in l]
    check(sorted(n for n in names for l in lines if "/%s:" % n in l) == names and len(lines) == len(names),
          "error lines: %s" % err)
    # Room for two images at a time, asked for four: the arena shrinks to two
    # blocks and the other images wait for them; every file completes.
    r, outs, calls = go(2 * block, "-j", "4", "--queue", "4")
    expect(r, 0)
    check(outs == names, "outputs %s with room for two images" % outs)
    check(r.err == b"" or b"no room" not in r.err, "errors with room for two: %s" % r.err.decode())
    ok_calls = [c for c in calls if int(c[0]) + int(c[1]) <= 2 * block]
    check(len(ok_calls) >= 1 and len(calls) > len(ok_calls),
          "fallocate calls %s: expected growth up to two blocks and a refused third" % calls)
    ok_pages = pages([["fallocate"] + c for c in ok_calls], "fallocate")
    check(ok_pages <= pages(events, "punch"), "pages fallocated %s, not all punched by the end: %s"
          % (len(ok_pages), events))
    print("  /dev/shm full: one fallocate for six reused blocks, punched at the end; ENOSPC per file when "
          "nothing fits; with room for two, %d fallocate calls, all six written, all pages punched" % len(calls))
    # Images counted as huge (the strip threshold lowered under their
    # 720,000 bytes of RGB): once an image is filtered, its dead RGB is
    # punched out of the object before the output is encoded, and the block
    # is fallocated again before the next image uses it, so that a full
    # /dev/shm stays an error and never a SIGBUS; after the last image,
    # the rest of the block (the gray output's pages) is punched out too.
    # Same outputs as before.
    # (the lowered threshold also strip-encodes the outputs: other bytes, same pixels)
    def pixels(d):
        return {n: np.asarray(Image.open(os.path.join(d, n))).tobytes() for n in sorted(os.listdir(d))}
    ref = pixels(out_dirs[-1])
    r, outs, calls = go(block, "-j", "1", "--queue", "1", strip_min=100000)
    expect(r, 0)
    check(outs == names, "outputs %s with huge images" % outs)
    check(pixels(out_dirs[-1]) == ref, "output pixels differ when the dead pixels are given back")
    dead = 600 * 400 * 3 // 4096 * 4096
    kinds = [ev[0] for ev in events]
    check(kinds == ["fallocate", "punch"] * len(names) + ["punch"], "fallocate and punch calls: %s" % events)
    check(all(ev[1:] == ["0", str(dead)] for ev in events[:-1] if ev[0] == "punch") and
          calls == [["0", str(block)]] + [["0", str(dead)]] * (len(names) - 1) and
          events[-1] == ["punch", str(dead), str(block - dead)],
          "each image's dead RGB [0, %d) punched and fallocated again, the block [0, %d) fallocated once, "
          "the rest punched at the end: %s" % (dead, block, events))
    print("  huge images: the dead RGB of each of the six punched out and fallocated again; the rest at the end")


if __name__ == "__main__":
    main([check_shm_lifetime, check_threads_use_no_shm, check_stale_names_swept, check_bench_kill_in_window,
          check_shm_full])
