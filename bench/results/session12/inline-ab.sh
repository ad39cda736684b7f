#!/bin/bash
# Whole images on their loader thread against handing them on (the twelfth
# session's table in BENCHMARKS.md): ROUNDS alternating runs of
# `imgpar -jJ DIR /dev/shm/OUT` with IMGPAR_INLINE=0 (handed on: loader,
# dispatcher, filter worker, completer, writer) and without it (the default:
# the loader does it all), for each J and DIR, outputs on tmpfs. Prints
# every run, then the medians (see ../session13/binary-ab.sh, which runs it;
# the twelfth session's output had no minor-fault column).
# usage: [ARGS="--procs"] inline-ab.sh IMGPAR ROUNDS "1 2" DIR...   (ARGS: more imgpar options)
B=$1; ROUNDS=$2; JOBS=$3; shift 3
NAMES="handed-on loader" exec "$(dirname "$0")/../session13/binary-ab.sh" \
    "env IMGPAR_INLINE=0 $B" "env IMGPAR_INLINE=1 $B" "$ROUNDS" "$JOBS" "$@"
