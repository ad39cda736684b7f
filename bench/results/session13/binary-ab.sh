#!/bin/bash
# Two imgpar commands side by side (the thirteenth session's tables in
# BENCHMARKS.md; the twelfth's inline-ab.sh runs through it): ROUNDS
# alternating runs of `A -q -jJ ARGS DIR /dev/shm/OUT`, then the same with
# B, for each J and DIR, outputs on tmpfs (a disk's file creation is not
# what is measured). A and B are an imgpar binary, or a command line ending
# in one ("env IMGPAR_INLINE=0 build-rel/imgpar"; no spaces inside words).
# Prints every run, then medians of wall, user and system seconds, minor
# faults, and voluntary and involuntary context switches.
# usage: [ARGS="--procs"] [NAMES="old new"] binary-ab.sh A B ROUNDS "1 2" DIR...
A=$1; B=$2; ROUNDS=$3; JOBS=$4; shift 4
read -r NAME_A NAME_B <<<"${NAMES:-A B}"
T=$(mktemp)
for J in $JOBS; do
    for D in "$@"; do
        for r in $(seq 1 "$ROUNDS"); do
            for v in "$NAME_A" "$NAME_B"; do
                cmd=$A; [ "$v" = "$NAME_B" ] && cmd=$B
                rm -rf /dev/shm/binary-ab
                # shellcheck disable=SC2086 # cmd is a command line
                /usr/bin/time -f "$(basename "$D") j$J $v %e %U %S %R %w %c" \
                    $cmd -q -j"$J" ${ARGS:-} "$D" /dev/shm/binary-ab/ 2>>"$T"
            done
        done
    done
done
rm -rf /dev/shm/binary-ab
cat "$T"
/usr/bin/python3 - "$T" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    d, j, v, *x = line.split()
    runs.setdefault((d, j, v), []).append([float(y) for y in x])
for (d, j, v), x in runs.items():
    m = [statistics.median(r[i] for r in x) for i in range(6)]
    print("%-10s %-3s %-9s n=%d  median wall %.3f s  user %.3f s  sys %.3f s  minflt %d  voluntary cs %d  involuntary cs %d"
          % (d, j, v, len(x), *m))
PY
rm -f "$T"
