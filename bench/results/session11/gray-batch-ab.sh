#!/bin/bash
# The decoder's gray in batches of RGB rows, against one row per call (the
# eleventh session's table in BENCHMARKS.md): ROUNDS alternating runs of
# `imgpar -j1 DIR /dev/shm/OUT` per binary and input, the outputs on tmpfs
# (a disk's file creation is not what is measured); prints wall, user and
# system seconds of each run, then the medians.
# usage: gray-batch-ab.sh OLD_IMGPAR NEW_IMGPAR ROUNDS DIR...
OLD=$1; NEW=$2; ROUNDS=$3; shift 3
T=$(mktemp)
for D in "$@"; do
    for r in $(seq 1 "$ROUNDS"); do
        for B in "$OLD" "$NEW"; do
            rm -rf /dev/shm/gray-batch-ab
            tag=$([ "$B" = "$OLD" ] && echo old || echo new)
            /usr/bin/time -f "$(basename "$D") $tag %e %U %S" "$B" -j1 "$D" /dev/shm/gray-batch-ab/ 2>>"$T"
        done
    done
done
rm -rf /dev/shm/gray-batch-ab
cat "$T"
/usr/bin/python3 - "$T" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    d, tag, w, u, s = line.split()
    runs.setdefault((d, tag), []).append((float(w), float(u), float(s)))
for (d, tag), v in runs.items():
    print("%-10s %s  n=%d  median wall %.3f s  user %.3f s  sys %.3f s" % (
        d, tag, len(v), statistics.median(x[0] for x in v), statistics.median(x[1] for x in v),
        statistics.median(x[2] for x in v)))
PY
rm -f "$T"
