#!/usr/bin/python3
"""Worker deaths and interruption leave a correct batch and nothing behind.

Usage: faults.py IMGPAR GEN_SCRIPT CASE
CASE:
  kill-worker   kill -9 a worker stalled on a chosen file (IMGPAR_TEST_STALL):
                the file is retried on a fresh worker, every output is correct
  crash-twice   a worker aborts on a chosen file on every attempt
                (IMGPAR_TEST_CRASH): only that file fails, exit 1
  sigint        SIGINT mid-batch (threads and procs, several times): exit 130,
                no temporary files, finished outputs complete and correct
  sigterm       the same with SIGTERM
  kill-parent   kill -9 the parent mid-batch: workers exit by themselves, no
                shared memory or temporary file is left, finished outputs whole
  sigint-decode SIGINT while one big PNG (6000x6000, decoded by libpng:
                IMGPAR_PNG_FAST=0, the slowest path) is decoded on one
                thread, at -j1 --threads and -j2 --procs: exit 130, no
                output, and the decode stops there: the CPU time the process
                uses after the signal is under a quarter of the decode's
                busy time in an uninterrupted run (--stats). CPU time, not
                wall time, so a loaded machine does not change the outcome.
  sigint-encode the same while that image is encoded as a PNG in strips (the
                strip threshold lowered): at -j1 one thread encodes them
                all, and must stop between two.
  soak [N]      N runs (default 50) each stopped by SIGINT or SIGTERM at a
                random moment (from before start-up to the batch's usual
                end, the best of three runs: some runs finish first), a
                fifth of them by two signals in quick succession, threads
                and procs alternating: exit 130 (0 only when the batch had
                finished), every output present identical to the reference,
                no temporary, no shared memory, no process left.
                IMGPAR_SOAK_SEED=S repeats a run's sequence of choices.
After every run: no /dev/shm/imgpar-* objects and no imgpar process left
(workers included: they are found by their command line).
"""
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pipeline"))
from determinism import digest_dir  # noqa: E402


def shm_objects():
    return sorted(n for n in os.listdir("/dev/shm") if n.startswith("imgpar"))


def procs_with(marker):
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if marker.encode() in f.read():
                    found.append(int(pid))
        except OSError:
            pass
    return found


def check_clean(outdir, shm_before):
    leftovers = [n for n in os.listdir(outdir) if n.startswith(".")]
    if leftovers:
        sys.exit(f"FAIL: temporary files left in {outdir}: {leftovers}")
    shm_now = [n for n in shm_objects() if n not in shm_before]
    if shm_now:
        sys.exit(f"FAIL: shared memory left behind: {shm_now}")
    deadline = time.time() + 5
    while procs_with(outdir) and time.time() < deadline:
        time.sleep(0.05)
    if procs_with(outdir):
        sys.exit(f"FAIL: processes left running: {procs_with(outdir)}")


def soak(imgpar, gen, tmp, shm_before, runs):
    import random
    seed = int(os.environ.get("IMGPAR_SOAK_SEED", time.time_ns() % 1000000))
    rng = random.Random(seed)
    print(f"soak: {runs} runs, seed {seed} (IMGPAR_SOAK_SEED={seed} repeats them)")
    batch = os.path.join(tmp, "soak")
    subprocess.run(["/usr/bin/python3", gen, batch, "--medium", "24"], check=True)
    ref_dir = os.path.join(tmp, "soak-ref")
    full = {}
    for ex in ("--threads", "--procs"):
        # The batch's usual time: the best of three (the first run of each
        # also writes the reference), so that the signals below land mostly
        # mid-batch, not after a slow first run's length.
        for k in range(3):
            out = ref_dir + ex if k == 0 else os.path.join(tmp, "soak-time")
            t0 = time.monotonic()
            subprocess.run([imgpar, ex, "-j", "2", batch, out], check=True, timeout=300)
            full[ex] = min(full.get(ex, 1e9), time.monotonic() - t0)
            if k:
                subprocess.run(["rm", "-rf", out])
    ref = digest_dir(ref_dir + "--threads")
    if digest_dir(ref_dir + "--procs") != ref:
        sys.exit("FAIL: threads and procs references differ")
    interrupted = partial = finished = doubles = early = 0
    for i in range(runs):
        ex = ("--threads", "--procs")[i % 2]
        sig = rng.choice([signal.SIGINT, signal.SIGTERM])
        delay = rng.uniform(0, full[ex])
        double = rng.random() < 0.2
        out = os.path.join(tmp, f"soak-{i}")
        what = f"run {i} ({ex}, {signal.Signals(sig).name}{' twice' if double else ''} after {delay:.3f} s)"
        p = subprocess.Popen([imgpar, ex, "-j", "2", batch, out], stderr=subprocess.PIPE, text=True)
        time.sleep(delay)
        done_before = p.poll() is not None
        p.send_signal(sig)
        if double:
            time.sleep(rng.uniform(0, 0.05))
            p.send_signal(sig)
            doubles += 1
        try:
            _, err = p.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            sys.exit(f"FAIL: {what}: still running 60 s after the signal")
        got = digest_dir(out) if os.path.isdir(out) else {}
        if p.returncode == 130:
            interrupted += 1
        elif p.returncode == -sig and not os.path.exists(out) and delay < 0.2:
            # Killed while still being exec'ed, before main() could block the
            # signal (only a slow sanitizer start leaves time): nothing began.
            early += 1
        elif p.returncode == 0 and (done_before or len(got) == len(ref)):
            finished += 1
        else:
            sys.exit(f"FAIL: {what}: exit {p.returncode}: {err}")
        wrong = [k for k in got if ref.get(k) != got[k]]
        if wrong:
            sys.exit(f"FAIL: {what}: incomplete or wrong outputs: {wrong[:5]}")
        if p.returncode == 0 and len(got) != len(ref):
            sys.exit(f"FAIL: {what}: exit 0 with {len(got)} of {len(ref)} outputs")
        if 0 < len(got) < len(ref):
            partial += 1
        os.makedirs(out, exist_ok=True)   # stopped before creating it: still check processes, shm
        check_clean(out, shm_before)
        subprocess.run(["rm", "-rf", out])
    print(f"ok: {runs} runs: {interrupted} interrupted ({doubles} by two signals), {finished} had finished, "
          f"{early} killed before main(), {partial} left a partial batch; no temporary, shared memory or "
          f"process left")
    if interrupted < runs // 2 or partial < runs // 5:
        sys.exit("FAIL: too few runs were really interrupted mid-batch; the batch is too small")


def cpu_ticks(pid):
    """utime + stime of a live process, all its threads, in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def tree_ticks(pid):
    """cpu_ticks of a live process plus those of its live children (--procs
    workers): what wait4 will count for them once they are reaped."""
    total = cpu_ticks(pid)
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                kids = f.read().split()
        except OSError:
            continue
        for kid in kids:
            try:
                total += cpu_ticks(int(kid))
            except OSError:
                pass   # gone already: its time then counts as after the signal
    return total


def read_chars(pid):
    with open(f"/proc/{pid}/io") as f:
        return int(next(l for l in f if l.startswith("rchar:")).split()[1])


def sigint_in_stage(imgpar, tmp, shm_before, stage):
    """SIGINT while one big PNG is decoded (stage "decode") or encoded
    ("encode") on one thread: the stage stops there."""
    big = os.path.join(tmp, "big", "big.png")
    os.makedirs(os.path.dirname(big))
    subprocess.run(["/usr/bin/python3", "-c", """
import sys
import numpy as np
from PIL import Image
w = h = 6000
a = np.empty((h, w, 3), np.uint8)
a[:, :, 0] = (np.arange(w, dtype=np.uint32) * 255 // w)[None, :]
a[:, :, 1] = (np.arange(h, dtype=np.uint32) * 255 // h)[:, None]
a[:, :, 2] = 128
a += np.random.default_rng(1).integers(0, 8, a.shape, dtype=np.uint8)
Image.fromarray(a).save(sys.argv[1], compress_level=1)
""", big], check=True)
    size = os.path.getsize(big)
    if stage == "decode":
        # libpng, the slowest PNG path; no filter, a quick JPEG encode.
        env = dict(os.environ, IMGPAR_PNG_FAST="0")
        args = ["--no-filter", "--format", "jpeg", big]
    else:
        # The default chain, then PNG level 7 in strips of 256 KiB (the
        # strip threshold lowered from 64 MiB to 1 MB): a long encode.
        env = dict(os.environ, IMGPAR_TEST_PNG_STRIP_MIN="1000000")
        args = ["--png-level", "7", big]
    p = subprocess.run([imgpar, "-j1", "--stats"] + args + [os.path.join(tmp, "big-ref")], env=env,
                       capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        sys.exit(f"FAIL: uninterrupted run: exit {p.returncode}: {p.stderr}")
    busy = p.stderr.split("busy seconds")[1].split()
    busy = {k: float(busy[busy.index(k) + 1]) for k in ("decode", "filter", "encode")}
    stage_s = busy[stage]
    # Under way: the whole file read, then this much CPU time more.
    lead = 0.15 if stage == "decode" else busy["decode"] + busy["filter"] + stage_s / 4
    hz = os.sysconf("SC_CLK_TCK")
    for ex, jobs in (("--threads", "-j1"), ("--procs", "-j2")):
        out = os.path.join(tmp, f"out-{stage}{ex}")
        q = subprocess.Popen([imgpar, ex, jobs] + args + [out], env=env, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 60
        start = None
        try:
            while True:
                if q.poll() is not None or time.time() > deadline:
                    sys.exit(f"FAIL: {ex}: the run ended before the {stage} was under way; make the image bigger")
                if start is None and read_chars(q.pid) >= size:
                    start = cpu_ticks(q.pid)
                if start is not None and cpu_ticks(q.pid) - start >= lead * hz:
                    break
                time.sleep(0.005)
            # The workers' time so far too: wait4 counts the reaped workers'.
            at_signal = tree_ticks(q.pid)
        except (OSError, StopIteration):
            sys.exit(f"FAIL: {ex}: the run ended before the {stage} was under way; make the image bigger")
        q.send_signal(signal.SIGINT)
        _, status, usage = os.wait4(q.pid, 0)
        rc = os.waitstatus_to_exitcode(status)
        q.returncode = rc
        err = q.stderr.read()
        after = usage.ru_utime + usage.ru_stime - at_signal / hz
        if rc != 130:
            sys.exit(f"FAIL: {ex} {jobs}: exit {rc} after SIGINT during the {stage}, expected 130: {err}")
        if os.path.exists(out) and os.listdir(out):
            sys.exit(f"FAIL: {ex} {jobs}: outputs after SIGINT during the only {stage}: {os.listdir(out)}")
        if after > stage_s / 4:
            sys.exit(f"FAIL: {ex} {jobs}: {after:.3f} s of CPU after SIGINT, the {stage} alone takes "
                     f"{stage_s:.3f} s: it was not stopped")
        if os.path.exists(out):
            check_clean(out, shm_before)
        print(f"ok: {ex} {jobs}: {after:.3f} s of CPU after SIGINT ({stage} alone {stage_s:.3f} s), exit 130")


def main():
    imgpar, gen, case = sys.argv[1:4]
    tmp = tempfile.mkdtemp(prefix="imgpar-fault-")
    indir = os.path.join(tmp, "in")
    subprocess.run(["/usr/bin/python3", gen, indir, "--shapes"], check=True)
    ref_dir = os.path.join(tmp, "ref")
    subprocess.run([imgpar, "--serial", indir, ref_dir], check=True, timeout=120)
    ref = digest_dir(ref_dir)
    names = sorted(os.listdir(indir))
    victim = [n for n in names if "257x130_c3" in n][0]
    victim_out = victim  # PNG in, same name out
    shm_before = shm_objects()

    # Each worker case runs twice: with the image kept on its loader (the
    # default: the loader hands the job to a worker itself and waits, procs'
    # run()), and handed on through the dispatcher (IMGPAR_INLINE=0).
    if case == "kill-worker":
        for inline in ("1", "0"):
            out = os.path.join(tmp, "out-kill" + inline)
            pidfile = os.path.join(tmp, "stall.pid" + inline)
            env = dict(os.environ, IMGPAR_TEST_STALL=victim, IMGPAR_TEST_STALL_PIDFILE=pidfile,
                       IMGPAR_INLINE=inline)
            p = subprocess.Popen([imgpar, "--procs", "-j", "2", "-v", indir, out], env=env,
                                 stderr=subprocess.PIPE, text=True)
            deadline = time.time() + 30
            while not (os.path.exists(pidfile) and open(pidfile).read().strip()):
                if time.time() > deadline or p.poll() is not None:
                    sys.exit("FAIL: the worker never stalled on the chosen file")
                time.sleep(0.02)
            wpid = int(open(pidfile).read())
            if wpid == p.pid:
                sys.exit("FAIL: stall pid is the parent, not a worker")
            os.kill(wpid, signal.SIGKILL)
            _, err = p.communicate(timeout=60)
            if p.returncode != 0:
                sys.exit(f"FAIL: exit {p.returncode} after a retried worker death: {err}")
            got = digest_dir(out)
            if got != ref:
                sys.exit(f"FAIL: outputs differ from the serial reference: {sorted(k for k in ref if got.get(k) != ref[k])}")
            try:
                os.kill(wpid, 0)
                sys.exit("FAIL: killed worker still exists (not reaped)")
            except ProcessLookupError:
                pass
            check_clean(out, shm_before)
            print(f"ok (IMGPAR_INLINE={inline}): worker {wpid} killed on {victim}, retried, "
                  f"{len(got)} outputs identical to serial")

    elif case == "crash-twice":
        for inline in ("1", "0"):
            out = os.path.join(tmp, "out-crash" + inline)
            env = dict(os.environ, IMGPAR_TEST_CRASH=victim, IMGPAR_INLINE=inline)
            p = subprocess.run([imgpar, "--procs", "-j", "2", indir, out], env=env, capture_output=True,
                               text=True, timeout=120)
            if p.returncode != 1:
                sys.exit(f"FAIL: expected exit 1, got {p.returncode}: {p.stderr}")
            lines = [l for l in p.stderr.splitlines() if l]
            want = f"imgpar: {os.path.join(indir, victim)}: "
            if len(lines) != 1 or not lines[0].startswith(want) or "worker" not in lines[0]:
                sys.exit(f"FAIL: expected one error line for {victim}, got {lines}")
            got = digest_dir(out)
            expect = {k: v for k, v in ref.items() if k != victim_out}
            if got != expect:
                sys.exit(f"FAIL: outputs other than the crashing file differ or are missing")
            check_clean(out, shm_before)
            print(f"ok (IMGPAR_INLINE={inline}): {victim} failed alone after two worker crashes; "
                  f"{len(got)} others correct")

    elif case in ("sigint", "sigterm"):
        sig = signal.SIGINT if case == "sigint" else signal.SIGTERM
        big = os.path.join(tmp, "many")
        subprocess.run(["/usr/bin/python3", gen, big, "--medium", "160"], check=True)
        bref_dir = os.path.join(tmp, "bref")
        subprocess.run([imgpar, "--threads", "--png-level", "9", big, bref_dir], check=True, timeout=300)
        bref = digest_dir(bref_dir)
        runs = 0
        for i, ex in enumerate(["--threads", "--procs"] * 5):
            out = os.path.join(tmp, f"out-{case}-{i}")
            p = subprocess.Popen([imgpar, ex, "-j", "2", "--png-level", "9", big, out],
                                 stderr=subprocess.PIPE, text=True)
            time.sleep(0.1 + 0.08 * i)
            if p.poll() is not None:
                sys.exit(f"FAIL: batch finished before the signal; make it bigger")
            p.send_signal(sig)
            _, err = p.communicate(timeout=60)
            if p.returncode != 130:
                sys.exit(f"FAIL: {ex}: exit {p.returncode} after {case}, expected 130: {err}")
            got = digest_dir(out)
            wrong = [k for k in got if bref.get(k) != got[k]]
            if wrong:
                sys.exit(f"FAIL: {ex}: incomplete or wrong outputs after {case}: {wrong[:5]}")
            if len(got) >= len(bref):
                sys.exit(f"FAIL: {ex}: every output written; the signal did not stop the batch")
            check_clean(out, shm_before)
            runs += 1
        print(f"ok: {runs} interrupted runs, all clean")
    elif case == "kill-parent":
        big = os.path.join(tmp, "many")
        subprocess.run(["/usr/bin/python3", gen, big, "--medium", "160"], check=True)
        bref_dir = os.path.join(tmp, "bref")
        subprocess.run([imgpar, "--threads", "--png-level", "9", big, bref_dir], check=True, timeout=300)
        bref = digest_dir(bref_dir)
        for i in range(3):
            out = os.path.join(tmp, f"out-kill-parent-{i}")
            p = subprocess.Popen([imgpar, "--procs", "-j", "3", "--png-level", "9", big, out],
                                 stderr=subprocess.DEVNULL)
            time.sleep(0.2 + 0.2 * i)
            if p.poll() is not None:
                sys.exit("FAIL: batch finished before the kill; make it bigger")
            workers = [q for q in procs_with(out) if q != p.pid]
            if len(workers) < 3:
                sys.exit(f"FAIL: expected 3 worker processes, found {workers}")
            p.kill()
            p.wait()
            got = digest_dir(out)
            wrong = [k for k in got if bref.get(k) != got[k]]
            if wrong:
                sys.exit(f"FAIL: incomplete or wrong outputs after kill -9 of the parent: {wrong[:5]}")
            # The workers exit by themselves (PR_SET_PDEATHSIG, socket EOF); check_clean waits up to 5 s.
            check_clean(out, shm_before)
        print("ok: parent killed 3 times; workers exited, no shared memory, no temporaries, outputs whole")
    elif case in ("sigint-decode", "sigint-encode"):
        sigint_in_stage(imgpar, tmp, shm_before, case.split("-")[1])
    elif case == "soak":
        soak(imgpar, gen, tmp, shm_before, int(sys.argv[4]) if len(sys.argv) > 4 else 50)
    else:
        sys.exit(f"unknown case {case}")
    subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    main()
