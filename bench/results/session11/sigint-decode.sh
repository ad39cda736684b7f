#!/bin/bash
# SIGINT while a huge image is decoded on one thread (the eleventh session's
# table in BENCHMARKS.md). For each binary, input, -j and delay: seconds
# from the signal to the exit, and the exit status.
# usage: sigint-decode.sh OLD_IMGPAR NEW_IMGPAR INPUT...
OLD=$1; NEW=$2; shift 2
LIM="--max-pixels 1000000000 --max-file-size 4G"
for IN in "$@"; do
  for J in 1 2; do
    for D in 0.4 0.8 1.2; do
      for B in "$OLD" "$NEW"; do
        O=$(mktemp -d)
        # shellcheck disable=SC2086
        "$B" -j$J $LIM --gray --format jpeg "$IN" "$O/" 2>/dev/null &
        pid=$!
        sleep "$D"
        t0=$(date +%s.%N)
        kill -INT $pid
        wait $pid; rc=$?
        t1=$(date +%s.%N)
        printf '%-28s -j%s delay %.1f  %-4s  rc %s  latency %.3f s  outputs %s\n' "$(basename "$IN")" "$J" "$D" \
          "$([ "$B" = "$OLD" ] && echo old || echo new)" $rc "$(echo "$t1 - $t0" | bc)" "$(ls "$O" | wc -l)"
        rm -rf "$O"
      done
    done
  done
done
