#!/bin/bash
# Device driver: one 16-core scaling run (session 14).
# Run from the repository root with .dev/ (git-ignored) holding: imgpar (a release
# build of this tree), imgpar-old/imgpar-kill (builds of the compared commits), lib/
# (libpng16, libdeflate, libz, libjpeg from this Debian 12 machine) and jpeg/ (the 13
# photographs of bench/corpus/jpeg, not the Elephants), as carried to the device.
set -u
D=$PWD/.dev
O=${OUT:?}
N=${N:-$(nproc)}
export LD_LIBRARY_PATH=$D/lib SVG= PY=${PY:-python3}
chmod +x "$D/imgpar" bench/scaling16.sh
{
  date -u; nproc; uname -r
  cat /sys/kernel/mm/transparent_hugepage/enabled /sys/kernel/mm/transparent_hugepage/shmem_enabled
  df -h /dev/shm /tmp; free -g
  "$PY" -c 'import numpy, PIL; print("numpy", numpy.__version__, "Pillow", PIL.__version__)'
  ldd "$D/imgpar"; "$D/imgpar" --version
} > "$O/machine.txt" 2>&1
JOBS=${JOBS:-1,2,4,8,12,14,$N} bench/scaling16.sh "$D/imgpar" "$D/jpeg" "$O" batch-jpeg,kernel
JOBS_HUGE=${JOBS_HUGE:-1,2,4,8,$N} JOBS_HUGE_PNG=1,$N bench/scaling16.sh "$D/imgpar" "$D/jpeg" "$O" huge
JOBS_PNG=1,$N REPEAT=1 WARMUP=0 bench/scaling16.sh "$D/imgpar" "$D/jpeg" "$O" batch-png
echo "driver done $(date -u +%T)" | tee -a "$O/log.txt"
