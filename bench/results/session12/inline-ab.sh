#!/bin/bash
# Whole images on their loader thread against handing them on (the twelfth
# session's table in BENCHMARKS.md): ROUNDS alternating runs of
# `imgpar -jJ DIR /dev/shm/OUT` with IMGPAR_INLINE=0 (handed on: loader,
# dispatcher, filter worker, completer, writer) and without it (the default:
# the loader does it all), for each J and DIR, outputs on tmpfs (a disk's
# file creation is not what is measured). Prints every run, then medians of
# wall, user and system seconds and of voluntary and involuntary context
# switches.
# usage: [ARGS="--procs"] inline-ab.sh IMGPAR ROUNDS "1 2" DIR...   (ARGS: more imgpar options)
B=$1; ROUNDS=$2; JOBS=$3; shift 3
T=$(mktemp)
for J in $JOBS; do
    for D in "$@"; do
        for r in $(seq 1 "$ROUNDS"); do
            for mode in handed-on loader; do
                rm -rf /dev/shm/inline-ab
                v=$([ $mode = loader ] && echo 1 || echo 0)
                IMGPAR_INLINE=$v /usr/bin/time -f "$(basename "$D") j$J $mode %e %U %S %w %c" \
                    "$B" -q -j"$J" ${ARGS:-} "$D" /dev/shm/inline-ab/ 2>>"$T"
            done
        done
    done
done
rm -rf /dev/shm/inline-ab
cat "$T"
/usr/bin/python3 - "$T" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    d, j, mode, *v = line.split()
    runs.setdefault((d, j, mode), []).append([float(x) for x in v])
for (d, j, mode), v in runs.items():
    m = [statistics.median(x[i] for x in v) for i in range(5)]
    print("%-10s %-3s %-9s n=%d  median wall %.3f s  user %.3f s  sys %.3f s  voluntary cs %d  involuntary cs %d"
          % (d, j, mode, len(v), *m))
PY
rm -f "$T"
