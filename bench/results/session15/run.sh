#!/bin/bash
# The fifteenth session's measurements on the 2-core VM (no device lent).
# BASE: a build of ce5d8b8 (before); NEW: this session's. PNG: 65 photos as
# PNG (bench/make_corpus.sh's 13 photos x 5 copies, converted); JPEG: the same
# as JPEG. Memory at -j16 (oversubscribed on 2 cores: what it measures is how
# much 16 loaders hold, not speed), then A/B wall times at -j1 and -j2.
set -eu
BASE=${BASE:-/tmp/imgpar-base} NEW=${NEW:-build-rel/imgpar}
PNG=${PNG:-/tmp/p65} JPEG=${JPEG:-/tmp/b65} OUT=${OUT:-bench/results/session15}
for set in PNG JPEG; do
  dir=${!set}
  for v in base new; do
    bin=$BASE; [ $v = new ] && bin=$NEW
    $bin bench --jobs 16 --strategies threads,procs --split image --repeat 4 --warmup 0 --no-progress \
      --json $OUT/mem16-$set-$v.json $dir > $OUT/mem16-$set-$v.txt 2>&1
  done
done
/usr/bin/python3 - "$OUT" <<'PY' | tee $OUT/mem16-summary.txt
import json, sys
out = sys.argv[1]
for s in ("PNG", "JPEG"):
    for v in ("base", "new"):
        d = json.load(open("%s/mem16-%s-%s.json" % (out, s, v)))
        for c in d["configurations"]:
            if c["jobs"] != 16:
                continue
            runs = [r for r in c["runs"] if not r["warmup"]]
            print("%-4s %-4s %-7s RSS-pix-64MiB per run: %s" % (s, v, c["strategy"], " ".join(
                "%+.1f" % (r["peak_rss_kb"] / 1024 - r["peak_pixel_bytes"] / 2**20 - 64) for r in runs)),
                "| RSS", " ".join("%.0f" % (r["peak_rss_kb"] / 1024) for r in runs),
                "| pix", " ".join("%.0f" % (r["peak_pixel_bytes"] / 2**20) for r in runs))
PY
/usr/bin/python3 bench/ab.py 5 "1 2" $PNG base=$BASE new=$NEW > $OUT/ab-png.txt 2>&1
/usr/bin/python3 bench/ab.py 5 "1 2" $JPEG base=$BASE new=$NEW > $OUT/ab-jpeg.txt 2>&1
tail -4 $OUT/ab-png.txt; tail -4 $OUT/ab-jpeg.txt
