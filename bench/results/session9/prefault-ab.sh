#!/bin/bash
# A/B of the prefault helper (IMGPAR_PREFAULT=0 is off), alternating, on
# the huge images of bench/scaling16.sh made on this machine:
#   $1/png/huge.png          20000x20000 RGB PNG, level 6, written by imgpar
#   $1/norst/huge-norst.jpg  the same as JPEG q90 by Pillow (no restart markers)
# Each run: imgpar -j2 --gray, output JPEG (strip-encoded on both cores), so
# that the serial decode is most of the wall time; then the default chain
# (gray + blur) to PNG, for the full workload.
# usage: prefault-ab.sh HUGE_DIR IMGPAR ROUNDS
H=$1; BIN=$2; ROUNDS=${3:-6}
LIM="--max-pixels 1000000000 --max-file-size 4G"
O=$(mktemp -d)
trap 'rm -rf "$O"' EXIT
one() {   # label, env value, args...
    local label=$1 pf=$2; shift 2
    rm -f "$O"/*
    /usr/bin/time -f "$label prefault=$pf %e s wall %U s user %S s sys" env IMGPAR_PREFAULT=$pf "$BIN" -q $LIM "$@" "$O/" 2>&1 | tail -1
}
for round in $(seq "$ROUNDS"); do
  for pf in 0 1; do
    one "png  gray->jpeg -j2" $pf -j2 --gray --format jpeg "$H/png/huge.png"
    one "jpeg gray->jpeg -j2" $pf -j2 --gray --format jpeg "$H/norst/huge-norst.jpg"
  done
done
