#!/bin/bash
# A/B of the strip-parallel PNG inflate, alternating, on the huge PNG of
# bench/scaling16.sh made on this machine (20000x20000 RGB, level 6):
#   $1/png/huge.png    written by imgpar before the ipST chunk existed: the
#                      same bytes except that chunk, so decoded by one thread
#   $1/png2/huge.png   the same image written by this imgpar (ipST chunk):
#                      inflated by strips on a team
# Each run: imgpar -j2 --gray, output JPEG (strip-encoded on both cores), so
# that the decode is most of the wall time; and -j1 (no team either way).
# usage: strips-ab.sh HUGE_DIR IMGPAR ROUNDS
H=$1; BIN=$2; ROUNDS=${3:-6}
LIM="--max-pixels 1000000000 --max-file-size 4G"
O=$(mktemp -d)
trap 'rm -rf "$O"' EXIT
one() {   # label, args...
    local label=$1; shift
    rm -f "$O"/*
    /usr/bin/time -f "$label %e s wall %U s user %S s sys" "$BIN" -q $LIM "$@" "$O/" 2>&1 | tail -1
}
for round in $(seq "$ROUNDS"); do
  for f in png png2; do
    one "$f -j2 gray->jpeg" -j2 --gray --format jpeg "$H/$f/huge.png"
  done
done
for f in png png2; do
  one "$f -j1 gray->jpeg" -j1 --gray --format jpeg "$H/$f/huge.png"
done
