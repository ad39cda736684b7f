#!/bin/bash
# usage: [EXTRA=--procs] sigint.sh IMGPAR DELAY_S INPUT  (the table in BENCHMARKS.md, tenth session)
# SIGINT DELAY s after start; prints seconds from the signal to the exit.
BIN=$1; DELAY=$2; IN=$3
O=$(mktemp -d)
$BIN -j2 ${EXTRA:-} --max-pixels 1000000000 --max-file-size 4G --gray --format jpeg "$IN" "$O/" 2>/dev/null &
pid=$!
sleep "$DELAY"
t0=$(date +%s.%N)
kill -INT $pid
wait $pid; rc=$?
t1=$(date +%s.%N)
echo "rc $rc latency $(echo "$t1 - $t0" | bc) outputs $(ls $O | wc -l)"
rm -rf "$O"
