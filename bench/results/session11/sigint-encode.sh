#!/bin/bash
# SIGINT while a huge image is encoded at -j1 (the eleventh session's table
# in BENCHMARKS.md): the default workload (gray, blur sigma 2, PNG level 6)
# on the 20000x20000 PNG mosaic, the signal DELAY s after the start, when
# the encode is under way (read + decode + filter take about 8.5 s here).
# usage: sigint-encode.sh OLD_IMGPAR NEW_IMGPAR INPUT
OLD=$1; NEW=$2; IN=$3
LIM="--max-pixels 1000000000 --max-file-size 4G"
for D in 10 15 20; do
  for B in "$OLD" "$NEW"; do
    O=$(mktemp -d)
    # shellcheck disable=SC2086
    "$B" -j1 $LIM "$IN" "$O/" 2>/dev/null &
    pid=$!
    sleep "$D"
    t0=$(date +%s.%N)
    kill -INT $pid
    wait $pid; rc=$?
    t1=$(date +%s.%N)
    printf '%-12s -j1 delay %2d s  %-4s  rc %s  latency %.3f s  outputs %s\n' "$(basename "$IN")" "$D" \
      "$([ "$B" = "$OLD" ] && echo old || echo new)" $rc "$(echo "$t1 - $t0" | bc)" "$(ls "$O" | wc -l)"
    rm -rf "$O"
  done
done
