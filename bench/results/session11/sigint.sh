#!/bin/bash
# SIGINT while a huge image is worked on one thread (the eleventh session's
# tables in BENCHMARKS.md): seconds from the signal to the exit, the exit
# status and the outputs left, for an old and a new binary in turn.
# usage: sigint.sh decode OLD_IMGPAR NEW_IMGPAR INPUT...
#          -j1 and -j2, --gray --format jpeg, the signal 0.4, 0.8, 1.2 s in
#        sigint.sh encode OLD_IMGPAR NEW_IMGPAR INPUT
#          -j1, the default workload (gray, blur, PNG level 6), the signal
#          10, 15, 20 s in (the encode of the 20000x20000 mosaic)
MODE=$1; OLD=$2; NEW=$3; shift 3
LIM="--max-pixels 1000000000 --max-file-size 4G"

interrupt() { # BIN J DELAY INPUT [imgpar options...]
    local b=$1 j=$2 d=$3 in=$4 o pid rc t0 t1
    shift 4
    o=$(mktemp -d)
    # shellcheck disable=SC2086
    "$b" -j"$j" $LIM "$@" "$in" "$o/" 2>/dev/null &
    pid=$!
    sleep "$d"
    t0=$(date +%s.%N)
    kill -INT $pid
    wait $pid; rc=$?
    t1=$(date +%s.%N)
    printf '%-28s -j%s delay %4.1f  %-4s  rc %s  latency %.3f s  outputs %s\n' "$(basename "$in")" "$j" "$d" \
        "$([ "$b" = "$OLD" ] && echo old || echo new)" $rc "$(echo "$t1 - $t0" | bc)" "$(ls "$o" | wc -l)"
    rm -rf "$o"
}

for IN in "$@"; do
    if [ "$MODE" = decode ]; then
        for J in 1 2; do
            for D in 0.4 0.8 1.2; do
                for B in "$OLD" "$NEW"; do interrupt "$B" $J $D "$IN" --gray --format jpeg; done
            done
        done
    else
        for D in 10 15 20; do
            for B in "$OLD" "$NEW"; do interrupt "$B" 1 $D "$IN"; done
        done
    fi
done
