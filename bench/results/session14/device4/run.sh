#!/bin/bash
# Device driver, fourth run (session 14): the final build, batches at j=1 and 16 with more repeats.
# Run from the repository root with .dev/ (git-ignored) holding: imgpar (a release
# build of this tree), lib/ (libpng16, libdeflate, libz, libjpeg from this Debian 12
# machine) and jpeg/ (the 13 photographs of bench/corpus/jpeg, not the Elephants).
set -u
D=$PWD/.dev
O=${OUT:?}
N=${N:-$(nproc)}
export LD_LIBRARY_PATH=$D/lib SVG= PY=${PY:-python3}
chmod +x "$D"/imgpar bench/scaling16.sh
{ date -u; nproc; cat /proc/loadavg; "$D/imgpar" --version; md5sum "$D"/imgpar; } > "$O/machine.txt" 2>&1
JOBS=1,$N REPEAT=5 WARMUP=1 bench/scaling16.sh "$D/imgpar" "$D/jpeg" "$O" batch-jpeg
JOBS_PNG=1,$N REPEAT=3 WARMUP=1 bench/scaling16.sh "$D/imgpar" "$D/jpeg" "$O" batch-png
echo "driver done $(date -u +%T)" | tee -a "$O/log.txt"
