#!/bin/sh
# Session 16: a 10000x10000 mosaic of the bench photos, saved by Pillow as
# JPEG q90 (4:2:0, no restart markers), 8.5 MB.
# 1. imgpar bench at j = 1 and 2, the strip path (IMGPAR_JPEG_FAST=1) and
#    the whole decode (IMGPAR_JPEG_FAST=0) alternating, 3 rounds:
for i in 1 2 3; do for e in 1 0; do
    IMGPAR_JPEG_FAST=$e build-rel/imgpar bench --jobs 1,2 --strategies threads --split strips \
        --repeat 3 --warmup 1 --no-progress --json huge10k-norst-fast$e-$i.json huge10k.jpg
done; done
# 2. CPU seconds of each step on one thread (seqbench.c, linked against
#    build-rel/libimgpar.a): argument 1 = luma-only output, 0 = RGB.
#    gcc -O2 -std=c11 -D_GNU_SOURCE -Iinclude -Isrc -Ibuild-rel seqbench.c build-rel/libimgpar.a \
#        -o seqbench -ljpeg -lpng -ldeflate -lz -lpthread -lm -lrt
./seqbench huge10k.jpg 1; ./seqbench huge10k.jpg 0
