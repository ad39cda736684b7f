#!/bin/bash
# Per-core scaling runs for BENCHMARKS.md ("16-core scaling"), meant for an
# otherwise idle machine with many cores. Everything it measures goes to
# OUTDIR: log.txt (all tables), a JSON and an SVG per bench run.
#
# usage: bench/scaling16.sh IMGPAR JPEG_CORPUS OUTDIR [PARTS]
#   IMGPAR       the imgpar binary (a release build)
#   JPEG_CORPUS  bench/corpus/jpeg (bench/make_corpus.sh)
#   PARTS        comma list of batch-jpeg, huge, huge-jpeg, batch-png,
#                batch-jpeg-long, kernel (default: batch-jpeg,huge,batch-png; they
#                run in that order; huge-jpeg is the restart-marker JPEG alone)
# Environment: JOBS (default 1-N, N the online CPUs), JOBS_PNG (for the PNG
# batch; default JOBS), JOBS_HUGE (default 1,2,4,8,16), JOBS_HUGE_PNG (the
# huge PNG's; default 1,4,16), REPEAT and WARMUP (timed and warm-up runs of
# each batch configuration; default 2 and 1), SVG (empty: no charts), PY (a
# python3 with numpy and Pillow), HUGE (side of the huge image, default
# 20000), COPIES (copies of the photo set, default 5).
#
# Inputs, made here in $TMPDIR (removed at the end):
# - batch-jpeg: the corpus's 13 photographs (not the three Elephants
#   artworks) COPIES times over: 65 real photos, 2 of them progressive.
# - batch-png: the same photos decoded and written losslessly as PNG by
#   imgpar --no-filter (RGB, level 6), COPIES times over.
# - huge: one HUGE x HUGE mosaic of those photos (tiled, not scaled), as a
#   PPM, then encoded by imgpar --no-filter as JPEG q90 (which has restart
#   markers at its strip boundaries: decoded by strips on several cores) and
#   as PNG level 6, and by Pillow as JPEG q90 without restart markers (which
#   any decoder must decode serially).
# - batch-jpeg-long: the JPEG batch with twice the copies, at j = 1, 8, 16
#   (does a longer batch scale further?).
# - kernel: the JPEG batch run as plain imgpar processes by bench/ab.py
#   (the variants alternating), --threads and --procs (each image kept on
#   its loader thread, and with IMGPAR_INLINE=0 handed on between stages)
#   at j = 1 and N, three times each, with each
#   run's getrusage (user and system seconds, minor faults, voluntary and
#   involuntary context switches, the workers included): is the time
#   --procs loses on many cores spent in the kernel (page faults on shared
#   memory), or waiting? And what does keeping an image on its loader give
#   on many cores? Not in the default PARTS; about 30 s on 16 cores.
# - versus: this binary against another build, BASE (an imgpar binary), as
#   whole processes by bench/ab.py, --threads and --procs, on the JPEG batch
#   and the PNG batch at j = 1 and N, three rounds each (wall, CPU, minor
#   faults), then the memory bench at j = N on the PNG batch for both. Not
#   in the default PARTS; about 60 s on 16 cores. The fifteenth session's
#   changes (the arena's holes and the PNG files given back, more faults)
#   await this: BASE a build of ce5d8b8.
# Every bench run checks that each configuration writes the same bytes as a
# serial -j1 reference run.
set -u
BIN=$(realpath "$1")
SRC=$2
OUTD=$3
PARTS=${4:-batch-jpeg,huge,batch-png}
# A 20000x20000 image is over the default --max-pixels (2^28) and its PPM
# over the default --max-file-size (1G).
LIM="--max-pixels 1000000000 --max-file-size 4G"
NCPU=$(nproc)
JOBS=${JOBS:-1-$NCPU}
SVG=${SVG-1}   # empty: no SVG charts
HUGE=${HUGE:-20000}
COPIES=${COPIES:-5}
REPEAT=${REPEAT:-2}
WARMUP=${WARMUP:-1}
W=$(mktemp -d "${TMPDIR:-/tmp}/imgpar-scaling.XXXXXX")
trap 'rm -rf "$W"' EXIT
mkdir -p "$OUTD"
exec > >(tee -a "$OUTD/log.txt") 2>&1

has() { case ",$PARTS," in *",$1,"*) return 0 ;; esac; return 1; }
stamp() { echo "== $(date -u +%H:%M:%S) $*"; }

stamp "machine"
uname -a
grep -m1 'model name' /proc/cpuinfo
lscpu 2>/dev/null | grep -E '^(CPU\(s\)|Thread|Core|Socket|NUMA node\(s\)|L2|L3|Model name)' 
echo "online CPUs: $NCPU"
grep -E 'MemTotal' /proc/meminfo
cat /proc/loadavg
"$BIN" --version

mkdir -p "$W/photos" "$W/jpeg" "$W/png1" "$W/png"
for f in "$SRC"/*.jpg; do
    case $(basename "$f") in Elephants*) continue ;; esac
    cp "$f" "$W/photos/"
done
for k in $(seq 1 "$COPIES"); do
    for f in "$W"/photos/*.jpg; do cp "$f" "$W/jpeg/$k-$(basename "$f")"; done
done
echo "photos: $(ls "$W/photos" | wc -l) distinct, $(ls "$W/jpeg" | wc -l) in the JPEG batch"

if has batch-jpeg; then
    stamp "batch-jpeg"
    "$BIN" bench --jobs "$JOBS" --strategies threads,procs --split image --repeat "$REPEAT" --warmup "$WARMUP" \
        --no-progress --json "$OUTD/batch-jpeg.json" ${SVG:+--svg "$OUTD/batch-jpeg.svg"} "$W/jpeg"
    echo "exit $?"
fi

if has huge || has huge-jpeg; then
    stamp "huge: making a ${HUGE}x${HUGE} mosaic"
    mkdir -p "$W/huge-ppm" "$W/huge-jpeg" "$W/huge-png"
    "${PY:-python3}" - "$W/photos" "$W/huge-ppm/huge.ppm" "$HUGE" <<'EOF' || echo "mosaic failed"
import glob, sys
import numpy as np
from PIL import Image
src, dst, side = sys.argv[1], sys.argv[2], int(sys.argv[3])
tiles = [np.asarray(Image.open(f).convert("RGB")) for f in sorted(glob.glob(src + "/*.jpg"))]
img = np.empty((side, side, 3), np.uint8)
y, i = 0, 0
while y < side:
    x, rowh = 0, 0
    while x < side:
        t = tiles[i % len(tiles)]; i += 1
        h, w = min(t.shape[0], side - y), min(t.shape[1], side - x)
        img[y:y + h, x:x + w] = t[:h, :w]
        x += w; rowh = max(rowh, h)
    y += rowh
with open(dst, "wb") as f:
    f.write(b"P6\n%d %d\n255\n" % (side, side))
    img.tofile(f)
EOF
    # shellcheck disable=SC2086
    "$BIN" -q -j "$NCPU" $LIM --no-filter --format jpg "$W/huge-ppm/huge.ppm" "$W/huge-jpeg" || echo "jpeg failed"
    mkdir -p "$W/huge-jpeg-norst"
    if has huge; then
        # shellcheck disable=SC2086
        "$BIN" -q -j "$NCPU" $LIM --no-filter --format png "$W/huge-ppm/huge.ppm" "$W/huge-png" || echo "png failed"
        "${PY:-python3}" -c 'import sys; from PIL import Image; Image.MAX_IMAGE_PIXELS = None; \
Image.open(sys.argv[1]).save(sys.argv[2], quality=90)' "$W/huge-ppm/huge.ppm" "$W/huge-jpeg-norst/huge-norst.jpg" ||
            echo "Pillow jpeg failed"
    fi
    rm -f "$W/huge-ppm/huge.ppm"
    ls -l "$W/huge-jpeg" "$W/huge-png" "$W/huge-jpeg-norst"
    stamp "huge-jpeg (restart markers: decoded by strips)"
    # shellcheck disable=SC2086
    "$BIN" bench $LIM --jobs "${JOBS_HUGE:-1,2,4,8,16}" --strategies threads,procs --split strips --repeat 1 \
        --warmup 0 --no-progress --json "$OUTD/huge-jpeg.json" "$W/huge-jpeg"
    echo "exit $?"
fi
if has huge; then
    stamp "huge-jpeg-norst (no restart markers: strips found by speculative decoding)"
    # shellcheck disable=SC2086
    "$BIN" bench $LIM --jobs 1,16 --strategies threads --split strips --repeat 1 --warmup 0 \
        --no-progress --json "$OUTD/huge-jpeg-norst.json" "$W/huge-jpeg-norst"
    echo "exit $?"
    stamp "huge-png"
    # shellcheck disable=SC2086
    "$BIN" bench $LIM --jobs "${JOBS_HUGE_PNG:-1,4,16}" --strategies threads --split strips --repeat 1 --warmup 0 \
        --no-progress --json "$OUTD/huge-png.json" "$W/huge-png"
    echo "exit $?"
fi
# The PNG batch, made once for the parts that need it.
make_pngs() {
    [ -n "$(ls "$W/png")" ] && return
    stamp "making the PNGs"
    "$BIN" -q -j "$NCPU" --no-filter --format png "$W/photos" "$W/png1" || echo "conversion failed"
    for k in $(seq 1 "$COPIES"); do
        for f in "$W"/png1/*.png; do cp "$f" "$W/png/$k-$(basename "$f")"; done
    done
    du -sh "$W/png"
}

if has batch-png; then
    make_pngs
    stamp "batch-png"
    "$BIN" bench --jobs "${JOBS_PNG:-$JOBS}" --strategies threads,procs --split image --repeat "$REPEAT" --warmup "$WARMUP" \
        --no-progress --json "$OUTD/batch-png.json" ${SVG:+--svg "$OUTD/batch-png.svg"} "$W/png"
    echo "exit $?"
fi

if has batch-jpeg-long; then
    stamp "batch-jpeg-long"
    mkdir -p "$W/jpeg-long"
    for k in $(seq 1 $((2 * COPIES))); do
        for f in "$W"/photos/*.jpg; do cp "$f" "$W/jpeg-long/$k-$(basename "$f")"; done
    done
    "$BIN" bench --jobs 1,8,16 --strategies threads,procs --split image --repeat 1 --warmup 1 \
        --no-progress --json "$OUTD/batch-jpeg-long.json" "$W/jpeg-long"
    echo "exit $?"
fi

if has kernel; then
    stamp "kernel: getrusage of whole runs, batch-jpeg"
    # *-handed-on: IMGPAR_INLINE=0, every image handed from the loader to the
    # dispatcher, a filter thread or worker process, the completer and a writer
    # (before the twelfth session, the only path); plain threads keeps each
    # image on its loader, plain procs has the loader's worker filter it and
    # reply to the loader directly (thirteenth session).
    Q=$(printf %q "$BIN")
    "${PY:-python3}" "$(dirname "$0")/ab.py" 3 "$(printf '%s\n' 1 "$NCPU" | sort -un | tr '\n' ' ')" "$W/jpeg" \
        "threads=env IMGPAR_INLINE=1 $Q --threads" "threads-handed-on=env IMGPAR_INLINE=0 $Q --threads" \
        "procs=env IMGPAR_INLINE=1 $Q --procs" "procs-handed-on=env IMGPAR_INLINE=0 $Q --procs" ||
        echo "kernel part failed"
fi

if has versus; then
    if [ -z "${BASE:-}" ]; then
        echo "versus: BASE (the other imgpar binary) is not set"
    else
        make_pngs
        Q=$(printf %q "$BIN") B=$(printf %q "$(realpath "$BASE")")
        for set in jpeg png; do
            stamp "versus: $set batch, BASE=$BASE against $BIN"
            "${PY:-python3}" "$(dirname "$0")/ab.py" 3 "$(printf '%s\n' 1 "$NCPU" | sort -un | tr '\n' ' ')" "$W/$set" \
                "base-threads=$B --threads" "threads=$Q --threads" "base-procs=$B --procs" "procs=$Q --procs" ||
                echo "versus failed"
        done
        for v in base new; do
            stamp "versus: memory, $v, PNG batch at j=$NCPU"
            bin=$BIN
            [ $v = base ] && bin=$(realpath "$BASE")
            "$bin" bench --jobs "$NCPU" --strategies threads,procs --split image --repeat 3 --warmup 0 \
                --no-progress --json "$OUTD/versus-mem-$v.json" "$W/png"
        done
    fi
fi

stamp "done"
cat /proc/loadavg
