#!/bin/sh
# Re-runs every measurement in BENCHMARKS.md on this machine, writing to
# bench/results/ (peers-*.md/.csv, bench-*.json/.csv/.svg/.txt).
#
#   bench/reproduce.sh [JOBS]     JOBS: -j values, default 1,2
#   bench/reproduce.sh 1-16       the 16-core scaling curves
#
# Needs a release build in build/ (meson setup build && ninja -C build), the
# corpus (bench/make_corpus.sh) and the peers (see bench/peers.sh). Run it on
# an otherwise idle machine: the load average is recorded with each result.
set -eu
cd "$(dirname "$0")/.."
jobs=${1:-1,2}
tag=$(echo "$jobs" | tr ',' '_')
res=bench/results
mkdir -p "$res"
[ -d bench/corpus/jpeg ] || bench/make_corpus.sh
for set in jpeg png; do
    ./build/imgpar bench --jobs "$jobs" --strategies serial,threads,procs --split image,strips \
        --csv "$res/bench-$set-j$tag.csv" --json "$res/bench-$set-j$tag.json" --svg "$res/bench-$set-j$tag.svg" \
        "bench/corpus/$set" | tee "$res/bench-$set-j$tag.txt"
    # Codec-only baseline: the same pipeline without filters.
    ./build/imgpar bench --jobs 1 --strategies threads --split image --no-filter \
        "bench/corpus/$set" | tee "$res/bench-$set-nofilter-j1.txt"
    bench/peers.sh "bench/corpus/$set" --jobs "$(echo "$jobs" | sed 's/^1-\([0-9]*\)$/1,2,4,8,\1/')" \
        --imgpar build/imgpar --out "$res/peers-$set-j$tag"
done
