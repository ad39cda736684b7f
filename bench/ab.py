#!/usr/bin/python3
"""Several imgpar command lines side by side (the fourteenth session's A/B
runs on the 16-core machine): ROUNDS rounds, each running every variant
once in turn (the order rotates every round), as
`COMMAND -q -jJ DIR OUT` with OUT on /dev/shm, for each J. Prints every
run's wall, user and system seconds, minor faults and voluntary and
involuntary context switches (getrusage of the child: --procs workers
included), then the median of each per variant and J.

usage: ab.py ROUNDS "1 16" DIR NAME=COMMAND [NAME=COMMAND ...]
  COMMAND: an imgpar binary and its options, e.g.
  "procs-old=/tmp/old/imgpar --procs"
  "procs-fallocate=env IMGPAR_ARENA_POPULATE=0 build-rel/imgpar --procs"
"""
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import time


def main():
    rounds, jobs, src = int(sys.argv[1]), [int(j) for j in sys.argv[2].split()], sys.argv[3]
    variants = [v.split("=", 1) for v in sys.argv[4:]]
    out = "/dev/shm/imgpar-ab-out"
    rows = []
    print("%-18s %3s %3s %7s %7s %7s %8s %6s %6s" % ("variant", "j", "run", "wall", "user", "sys", "minflt",
                                                   "nvcsw", "nivcsw"), flush=True)
    for j in jobs:
        for r in range(rounds):
            k = r % len(variants)
            for name, cmd in variants[k:] + variants[:k]:
                shutil.rmtree(out, ignore_errors=True)
                argv = shlex.split(cmd) + ["-q", "-j", str(j), src, out]
                t0 = time.monotonic()
                pid = subprocess.Popen(argv).pid
                _, status, ru = os.wait4(pid, 0)
                wall = time.monotonic() - t0
                rc = os.waitstatus_to_exitcode(status)
                rows.append((name, j, wall, ru.ru_utime, ru.ru_stime, ru.ru_minflt, ru.ru_nvcsw, ru.ru_nivcsw))
                print("%-18s %3d %3d %7.3f %7.3f %7.3f %8d %6d %6d%s" % (
                    name, j, r, wall, ru.ru_utime, ru.ru_stime, ru.ru_minflt, ru.ru_nvcsw, ru.ru_nivcsw,
                    "" if rc == 0 else "  exit %d" % rc), flush=True)
    shutil.rmtree(out, ignore_errors=True)
    print("medians")
    for j in jobs:
        for name, _ in variants:
            sel = [x for x in rows if x[0] == name and x[1] == j]
            med = [statistics.median(x[i] for x in sel) for i in range(2, 8)]
            print("%-18s j=%-3d n=%-3d wall %.4f  user %.3f  sys %.3f  minflt %d  nvcsw %d  nivcsw %d"
                  % (name, j, len(sel), *med), flush=True)


if __name__ == "__main__":
    main()
