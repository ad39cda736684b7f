#!/bin/bash
# Device driver, third run (session 14): A/B of the drain, then the batch curves.
# Run from the repository root with .dev/ (git-ignored) holding: imgpar (a release
# build of this tree), imgpar-old/imgpar-kill (builds of the compared commits), lib/
# (libpng16, libdeflate, libz, libjpeg from this Debian 12 machine) and jpeg/ (the 13
# photographs of bench/corpus/jpeg, not the Elephants), as carried to the device.
set -u
D=$PWD/.dev
O=${OUT:?}
N=${N:-$(nproc)}
export LD_LIBRARY_PATH=$D/lib SVG= PY=${PY:-python3}
chmod +x "$D"/imgpar* bench/scaling16.sh bench/ab.py
{ date -u; nproc; cat /proc/loadavg; "$D/imgpar" --version; md5sum "$D"/imgpar*; } > "$O/machine.txt" 2>&1
P=/tmp/ab-photos; rm -rf $P; mkdir -p $P
for k in 1 2 3 4 5; do for f in "$D"/jpeg/*.jpg; do cp "$f" "$P/$k-$(basename "$f")"; done; done
AB=bench/ab.py
V=("threads-old=$D/imgpar-old --threads" "threads-new=$D/imgpar --threads" "procs-old=$D/imgpar-old --procs" "procs-kill=$D/imgpar-kill --procs" "procs-new=$D/imgpar --procs")
{ echo "== $(date -u +%T) A/B j=$N"; "$PY" $AB 14 "$N" $P "${V[@]}"
  echo "== $(date -u +%T) A/B j=8"; "$PY" $AB 6 "8" $P "${V[@]}"; echo "== $(date -u +%T) A/B done"; } > "$O/ab.txt" 2>&1
JOBS=${JOBS:-1,2,4,8,12,14,$N} bench/scaling16.sh "$D/imgpar" "$D/jpeg" "$O" batch-jpeg
JOBS_PNG=1,$N REPEAT=1 WARMUP=0 bench/scaling16.sh "$D/imgpar" "$D/jpeg" "$O" batch-png
echo "driver done $(date -u +%T)" | tee -a "$O/log.txt"
