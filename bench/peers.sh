#!/bin/sh
# Compares imgpar with the image tools people would otherwise use, on one
# directory of JPEGs and/or PNGs, with the same workload: grayscale (Rec.601)
# then Gaussian blur sigma 2, one output per input (JPEG quality 90, PNG
# level 6). Every peer installed is run (a missing one is reported as
# "not installed"), each timed best of 3 at each -j, with total output bytes
# and a pixel comparison of its outputs against imgpar's.
#
#   bench/peers.sh DIR [--jobs 1,2] [--repeat 3] [--imgpar build/imgpar] [--out PREFIX]
#   bench/peers.sh bench/corpus/jpeg --out bench/results/peers-jpeg
#
# Peers (Debian 12 packages):
#   libvips-tools   vips CLI: one process per file under GNU parallel -j N
#                   with VIPS_CONCURRENCY=1, and files in turn with
#                   VIPS_CONCURRENCY=N (vips's own threading)
#   python3-pil     Pillow under multiprocessing.Pool(N)
#   python3-opencv  OpenCV under multiprocessing.Pool(N), cv2.setNumThreads(1)
#   graphicsmagick  gm mogrify, one process, OMP_NUM_THREADS=N
#   imagemagick     convert (IM6) under parallel -j N, MAGICK_THREAD_LIMIT=1
#   parallel        GNU parallel
# apt-get install libvips-tools graphicsmagick imagemagick parallel python3-opencv python3-pil
#
# Results: a Markdown table on stdout (and PREFIX.md, PREFIX.csv with --out);
# progress on stderr. The details of each peer's command are in peers.py.
exec /usr/bin/python3 "$(dirname "$0")/peers.py" "$@"
