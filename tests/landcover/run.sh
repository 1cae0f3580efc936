#!/bin/sh
# Land cover end to end with bin/unet_landcover_small: synthetic GeoTIFF tiles written by the
# trainer, training with per-epoch validation IoU, the full-size 24-band U-Net with
# standardized bands on the same tiles, the mean IoU reached on held-out tiles,
# whole-tile prediction whose GeoTIFF carries the input's georeferencing (gdalinfo), the
# same test tiles rewritten by GDAL in other layouts giving identical metrics, and the
# messages for truncated and missing tiles.
set -eu
cd "$(dirname "$0")/../.."
bin=$PWD/bin/unet_landcover_small
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
MIN_IOU=0.60
fail() { echo "landcover: FAIL: $*" >&2; exit 1; }
has() { grep -q -- "$2" "$1" || { cat "$1" >&2; fail "$3"; }; }

# ---- training on tiles the trainer writes itself
"$bin" train --data "$T/synth" --out "$T/run" --seed 1 > "$T/train.log" 2>&1 || { cat "$T/train.log"; fail "train"; }
has "$T/train.log" "writing 12 synthetic 512x512 tiles" "the synthetic tiles were not written"
has "$T/train.log" "epoch 10/10 .* mIoU" "the epoch line lacks the validation mean IoU"
has "$T/train.log" "patches, [0-9]*/s)" "the epoch line lacks the patch rate"
head -1 "$T/run/train.csv" | grep -q "val_pixel_accuracy,val_mean_iou" || fail "train.csv lacks the IoU columns"
ls "$T/synth/train/synth_000_naip-new.tif" "$T/synth/train/synth_000_landsat-leaf-on.tif" \
   "$T/synth/train/synth_000_lc.tif" > /dev/null || fail "tile files"
gdalinfo "$T/synth/train/synth_000_naip-new.tif" | grep -q 'ID\["EPSG",26918\]' || fail "synthetic tiles are not in UTM 18N"

# ---- the data threads share out each batch's patches (a tile's random patches to one of
# them, a grid's batch in runs): one, two and three of them train to the same bits
for n in 1 2 3; do
  "$bin" train --data "$T/synth" --out "$T/dt$n" --epochs 1 --limit 256 --seed 4 --data-threads $n --quiet \
    > "$T/dt$n.log" 2>&1 || { cat "$T/dt$n.log"; fail "train --data-threads $n"; }
done
cmp -s "$T/dt1/last.ckpt" "$T/dt2/last.ckpt" && cmp -s "$T/dt1/last.ckpt" "$T/dt3/last.ckpt" ||
  fail "--data-threads 1, 2 and 3 train to different checkpoints"

# ---- the full-size U-Net (24 bands from 4 files, standardize) reads the same tiles
"$PWD/bin/unet_landcover" train --data "$T/synth" --out "$T/big" --epochs 1 --limit 16 > "$T/big.log" 2>&1 \
  || { cat "$T/big.log"; fail "unet_landcover train"; }
"$PWD/bin/unet_landcover" eval --data "$T/synth" --out "$T/big" > "$T/bigeval.log" 2>&1 \
  || { cat "$T/bigeval.log"; fail "unet_landcover eval with the checkpoint's band statistics"; }
has "$T/bigeval.log" "test examples  12" "unet_landcover: 3 test tiles of 2x2 patches"
grep -q -a "data/mean" "$T/big/best.ckpt" || fail "the checkpoint lacks the band statistics"

# ---- the test tiles: mean IoU over a grid of patches
"$bin" eval --data "$T/synth" --out "$T/run" > "$T/eval.log" 2>&1 || { cat "$T/eval.log"; fail "eval"; }
cat "$T/eval.log"
miou=$(awk '/^mean IoU/ {print $3}' "$T/eval.log")
awk -v m="$miou" -v min="$MIN_IOU" 'BEGIN { exit !(m >= min) }' || fail "mean IoU $miou < $MIN_IOU"
has "$T/eval.log" "IoU road" "per-class IoU"

# ---- whole tiles: GeoTIFF in the input's place, and a PNG
"$bin" predict --data "$T/synth" --out "$T/run" > "$T/pred.log" 2>&1 || { cat "$T/pred.log"; fail "predict"; }
tail -4 "$T/pred.log"
pred=$T/run/predictions/synth_000_pred.tif
test -s "$T/run/predictions/synth_000_pred.png" || fail "no prediction PNG"
for key in "Origin =" "Pixel Size =" 'ID\["EPSG",26918\]' "Size is 512, 512"; do
  a=$(gdalinfo "$T/synth/test/synth_000_naip-new.tif" | grep -- "$key" | head -1)
  b=$(gdalinfo "$pred" | grep -- "$key" | head -1)
  [ -n "$a" ] && [ "$a" = "$b" ] || fail "prediction georeferencing differs: '$a' vs '$b'"
done
whole=$(awk '/^mean IoU/ {print $3}' "$T/pred.log")
awk -v m="$whole" -v min="$MIN_IOU" 'BEGIN { exit !(m >= min) }' || fail "whole-tile mean IoU $whole < $MIN_IOU"

# ---- the same test tiles written by GDAL in other layouts read to the same numbers
convert() {   # folder, then gdal_translate options for naip, landsat, labels
  mkdir -p "$T/$1/test"
  for f in "$T"/synth/test/*_naip-new.tif; do
    tile=$(basename "$f" _naip-new.tif)
    gdal_translate -q $2 "$f" "$T/$1/test/${tile}_naip-new.tif"
    gdal_translate -q $3 "$T/synth/test/${tile}_landsat-leaf-on.tif" "$T/$1/test/${tile}_landsat-leaf-on.tif"
    gdal_translate -q $4 "$T/synth/test/${tile}_lc.tif" "$T/$1/test/${tile}_lc.tif"
  done
}
convert gdal_a "-co TILED=YES -co BLOCKXSIZE=64 -co BLOCKYSIZE=32 -co INTERLEAVE=BAND -co COMPRESS=ZSTD" \
        "-co COMPRESS=LZW -co PREDICTOR=3" "-co COMPRESS=PACKBITS"
convert gdal_b "-ot UInt16 -co COMPRESS=LZW -co PREDICTOR=2 -co BIGTIFF=YES -co ENDIANNESS=BIG" \
        "-co TILED=YES -co INTERLEAVE=PIXEL -co COMPRESS=DEFLATE" "-ot Int16 -co BLOCKYSIZE=7"
convert gdal_c "-ot Float32 -co INTERLEAVE=PIXEL" "-co COMPRESS=LZMA" "-co TILED=YES -co COMPRESS=ZSTD -co BIGTIFF=YES"
for v in gdal_a gdal_b gdal_c; do
  "$bin" eval --data "$T/$v" --out "$T/run" > "$T/$v.log" 2>&1 || { cat "$T/$v.log"; fail "eval of $v"; }
  diff "$T/eval.log" "$T/$v.log" > /dev/null || { diff "$T/eval.log" "$T/$v.log"; fail "$v reads differently"; }
done
echo "landcover: GDAL layouts (tiled planar ZSTD, BigTIFF big-endian uint16 LZW, int16 strips, float32, LZMA) read identically"

# ---- bad tiles: named, then left out with --bad-tiles skip
cp -r "$T/synth/test" "$T/bad_test"
mkdir -p "$T/bad" && mv "$T/bad_test" "$T/bad/test"
f=$T/bad/test/synth_001_naip-new.tif
head -c 20000 "$T/synth/test/synth_001_naip-new.tif" > "$f"
if "$bin" eval --data "$T/bad" --out "$T/run" > "$T/bad.log" 2>&1; then fail "a truncated tile was accepted"; fi
has "$T/bad.log" "synth_001_naip-new.tif" "the truncated file is not named"
"$bin" eval --data "$T/bad" --out "$T/run" --bad-tiles skip > "$T/skip.log" 2>&1 || { cat "$T/skip.log"; fail "--bad-tiles skip"; }
has "$T/skip.log" "skipped 1 bad tile" "the skipped count is not printed"
rm "$T/bad/test/synth_002_lc.tif" "$T/bad/test/synth_001_lc.tif"
rm "$T/bad/test/synth_000_naip-new.tif"
if "$bin" eval --data "$T/bad" --out "$T/run" > "$T/missing.log" 2>&1; then fail "a missing layer file was accepted"; fi
has "$T/missing.log" "synth_000_naip-new.tif" "the missing layer file is not named"
if "$bin" eval --data "$T/bad" --out "$T/run" --overlap 3 > "$T/flag.log" 2>&1; then fail "--overlap accepted by eval"; fi
has "$T/flag.log" "unknown option '--overlap' for 'eval'" "a predict-only flag given to eval"
if "$bin" predict --data "$T/synth" --out "$T/run" --overlap 64 > "$T/ov.log" 2>&1; then fail "--overlap 64 accepted"; fi
has "$T/ov.log" "--overlap 64 must be smaller than the 64-pixel patch" "an overlap as large as the patch"
# a tile whose data ends early (GDAL writes the directory first: it opens, then fails to decode)
mkdir -p "$T/trunc/train" "$T/trunc/test"
cp "$T"/synth/test/synth_000_* "$T/trunc/test/"
for k in 000 001 002; do
  cp "$T/synth/train/synth_${k}_lc.tif" "$T/trunc/train/"
  gdal_translate -q -co TILED=YES "$T/synth/train/synth_${k}_naip-new.tif" "$T/trunc/train/synth_${k}_naip-new.tif"
done
head -c 300000 "$T/trunc/train/synth_001_naip-new.tif" > "$T/cut.tif" && mv "$T/cut.tif" "$T/trunc/train/synth_001_naip-new.tif"
if "$bin" train --data "$T/trunc" --out "$T/trunc/run" --epochs 1 > "$T/trunc.log" 2>&1; then fail "training on a cut tile went on"; fi
has "$T/trunc.log" "synth_001_naip-new.tif' is truncated or corrupt: tile 1 of 4 cannot be decoded (the file ends at byte 300000" \
  "the cut tile's message"
"$bin" train --data "$T/trunc" --out "$T/trunc/run2" --epochs 1 --bad-tiles skip > "$T/trunc2.log" 2>&1 \
  || { cat "$T/trunc2.log"; fail "--bad-tiles skip in training"; }
has "$T/trunc2.log" "skipped 1 bad tile(s) in '$T/trunc/train'" "the skipped count after training"
echo "landcover: ok (mean IoU $miou on patches, $whole on whole tiles)"
