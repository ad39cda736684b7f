#!/bin/bash
# The gray kernel's share of `perf record` samples (cpu-clock) for two
# imgpar binaries at -j1, one run each per input and output directory name
# (outputs on tmpfs). Before the twelfth session whether libjpeg-turbo wrote
# the decoder's batch rows with non-temporal stores (rows on a 32-byte
# boundary), so that the gray kernel read them back from memory, depended
# on where malloc put the batch buffer, which the length of the output
# path alone could change; the rows now always start 8 bytes past one.
# usage: row-skew-perf.sh OLD_IMGPAR NEW_IMGPAR DIR...
OLD=$1; NEW=$2; shift 2
D=$(mktemp -d)
for dir in "$@"; do
    for out in /dev/shm/pp/ /dev/shm/row-skew-perf/ /dev/shm/x/ /dev/shm/abcdefgh/; do
        for B in "$OLD" "$NEW"; do
            tag=$([ "$B" = "$OLD" ] && echo old || echo new)
            rm -rf "$out"
            perf record -q -o "$D/p.data" "$B" -q -j1 "$dir" "$out" >/dev/null 2>&1
            perf report -i "$D/p.data" --no-children --sort symbol 2>/dev/null |
                awk -v d="$(basename "$dir")" -v t="$tag" -v o="$out" \
                    '/^# Event count/ {c = $NF} /gray_avx2/ {g = $1} END {printf "%-9s %-3s out %-24s cpu-clock %.2f s  gray_avx2 %s\n", d, t, o, c / 1e9, g}'
            rm -rf "$out"
        done
    done
done
rm -rf "$D"
