#!/bin/sh
# Builds the bench corpus of real pictures from Debian's mate-backgrounds
# package (GPL-2+ desktop wallpapers: photographs and digital art; see the
# package's copyright file for the authors). Nothing here is committed:
# bench/corpus/ is git-ignored.
#
#   bench/make_corpus.sh [OUTDIR]          (default: bench/corpus)
#
# OUTDIR/jpeg/  the package's 16 JPEGs, unchanged: 12 nature photographs,
#               one more photo, and the Elephants artwork at three sizes up
#               to 5640x3172; five are progressive. 68.0 MP, 32.9 MB.
# OUTDIR/png/   the package's 14 PNGs, unchanged (digital art: RGB, RGBA
#               with large semi-transparent areas, gray+alpha; 31.9 MP),
#               plus the 12 nature photographs re-encoded losslessly as PNG
#               (photo-*.png, Pillow, level 6) so the PNG half holds
#               photographic content too. 69.4 MP, 44.0 MB.
#
# Needs: apt-get (the .deb is fetched with `apt-get download`, not
# installed; set MATE_BACKGROUNDS_DEB=/path/to.deb to use a copy you have),
# dpkg-deb, /usr/bin/python3 with Pillow (python3-pil).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/corpus}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM

if [ -n "${MATE_BACKGROUNDS_DEB:-}" ]; then
    deb=$MATE_BACKGROUNDS_DEB
else
    (cd "$work" && apt-get download mate-backgrounds >/dev/null 2>&1) || {
        echo "make_corpus.sh: apt-get download mate-backgrounds failed (run apt-get update?)" >&2
        exit 1
    }
    deb=$(ls "$work"/mate-backgrounds_*.deb)
fi
dpkg-deb -x "$deb" "$work/x"
src=$work/x/usr/share/backgrounds/mate

rm -rf "$out/jpeg" "$out/png"
mkdir -p "$out/jpeg" "$out/png"
cp "$src"/*/*.jpg "$out/jpeg/"
cp "$src"/*/*.png "$out/png/"
/usr/bin/python3 - "$src/nature" "$out/png" <<'PY'
import os, sys
from PIL import Image
src, dst = sys.argv[1], sys.argv[2]
for name in sorted(os.listdir(src)):
    if name.lower().endswith(".jpg"):
        stem = os.path.splitext(name)[0]
        Image.open(os.path.join(src, name)).convert("RGB").save(
            os.path.join(dst, "photo-%s.png" % stem), compress_level=6)
PY
cp "$work/x/usr/share/doc/mate-backgrounds/copyright" "$out/COPYRIGHT.mate-backgrounds"
for d in jpeg png; do
    n=$(ls "$out/$d" | wc -l)
    bytes=$(du -sb "$out/$d" | cut -f1)
    echo "$out/$d: $n files, $bytes bytes"
done
