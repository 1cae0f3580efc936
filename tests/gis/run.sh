#!/bin/sh
# Land-cover predictions that GIS tools take as they are, GDAL on both sides (issue 18): class
# maps and probabilities that validate as cloud-optimised GeoTIFFs with NoData 15, a colour
# table and class names; the NoData tag and internal masks of the inputs honoured per layer
# (predictions 15 exactly there, metrics without them); paletted label files read as their
# indices and their NoData value ignored; a tile whose files disagree on CRS or origin refused
# naming both; each tile's own UTM zone carried to its output; one multi-band scene file and a
# folder of them; the Chesapeake release's folder and layer names through a spec that names them.
set -eu
cd "$(dirname "$0")/../.."
bin=$PWD/bin/unet_landcover_small
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "gis: FAIL: $*" >&2; exit 1; }
has() { grep -q -- "$2" "$1" || { cat "$1" >&2; fail "$3"; }; }
PY=
for p in python3 /usr/bin/python3; do
  if "$p" -c "import osgeo" 2> /dev/null; then PY=$p; break; fi
done
[ -n "$PY" ] || fail "no python3 with GDAL's bindings (sh scripts/install-deps.sh test installs python3-gdal)"
fx() { "$PY" tests/gis/fixtures.py "$@"; }
validator=$("$PY" -c "import osgeo_utils.samples.validate_cloud_optimized_geotiff as v; print(v.__file__)")
cog() {
  "$PY" "$validator" "$1" > "$T/cog.log" 2>&1 || { cat "$T/cog.log" >&2; fail "$1 is not a valid COG"; }
  has "$T/cog.log" "is a valid cloud optimized GeoTIFF" "$1: the validator's verdict"
}
confusion_total() {   # the sum of the confusion matrix that eval and predict print last
  awk '/^confusion/ {on = 1; next} on && NF == 7 && $2 ~ /^[0-9]+$/ {for (i = 2; i <= 7; i++) s += $i}
       END {print s + 0}' "$1"
}

# ---- a model: one short epoch on the trainer's synthetic tiles
"$bin" train --data "$T/synth" --out "$T/run" --epochs 1 --limit 64 > "$T/train.log" 2>&1 \
  || { cat "$T/train.log"; fail "train"; }

# ---- 3. class maps and probabilities as finished products
"$bin" predict --data "$T/synth" --out "$T/run" --probabilities float32 > "$T/pred.log" 2>&1 \
  || { cat "$T/pred.log"; fail "predict --probabilities float32"; }
P=$T/run/predictions
cog "$P/synth_000_pred.tif"
cog "$P/synth_000_prob.tif"
gdalinfo "$P/synth_000_pred.tif" > "$T/info.log"
for want in "Block=256x256 Type=Byte, ColorInterp=Palette" "NoData Value=15" "Overviews: 256x256" \
            "COMPRESSION=DEFLATE" "1: water" "6: road" "15: no data" "1: 0,90,200,255" \
            "Description = land cover classes" 'ID\["EPSG",26918\]'; do
  has "$T/info.log" "$want" "the class map lacks '$want'"
done
mv "$P/synth_000_prob.tif" "$T/prob_f32.tif"
"$bin" predict --data "$T/synth" --out "$T/run" --probabilities uint8 > "$T/pred8.log" 2>&1 \
  || { cat "$T/pred8.log"; fail "predict --probabilities uint8"; }
cog "$P/synth_000_prob.tif"
gdalinfo "$P/synth_000_prob.tif" > "$T/info8.log"
has "$T/info8.log" "Description = impervious" "probability bands are not named by class"
has "$T/info8.log" "NoData Value=255" "uint8 probabilities lack NoData 255"
fx probs "$P/synth_000_pred.tif" "$T/prob_f32.tif" "$P/synth_000_prob.tif" 1 2 3 4 5 6
if "$bin" predict --data "$T/synth" --out "$T/run" --probabilities f16 > "$T/bad.log" 2>&1; then
  fail "--probabilities f16 accepted"; fi
has "$T/bad.log" "--probabilities expects uint8 or float32, got 'f16'" "the --probabilities message"
echo "gis: class maps and probabilities (uint8, float32) are valid COGs with palette, NoData and names"

# ---- 2. no data from the inputs' NoData tags and internal masks
mkdir -p "$T/nd/test"
cp "$T"/synth/test/synth_000_* "$T"/synth/test/synth_001_* "$T/nd/test/"
fx nodata "$T/nd/test/synth_000_naip-new.tif" 7
fx mask "$T/nd/test/synth_001_naip-new.tif"
"$bin" predict --input "$T/nd/test" --ckpt "$T/run/best.ckpt" --out "$T/nd/out" > "$T/nd.log" 2>&1 \
  || { cat "$T/nd.log"; fail "predict --input over tiles with NoData and a mask"; }
fx expect "$T/nd/out/predictions/synth_000_pred.tif" "$T/nd/test/synth_000_naip-new.tif" 7
fx expect "$T/nd/out/predictions/synth_001_pred.tif" "$T/nd/test/synth_001_naip-new.tif"
cog "$T/nd/out/predictions/synth_001_pred.tif"
# the metrics leave those pixels out: 5000 fewer counted in each tile (none was labelled 15 there)
"$bin" predict --data "$T/nd" --out "$T/run" > "$T/ndm.log" 2>&1 || { cat "$T/ndm.log"; fail "predict on nd"; }
mkdir -p "$T/plain/test" && cp "$T"/synth/test/synth_000_* "$T"/synth/test/synth_001_* "$T/plain/test/"
"$bin" predict --data "$T/plain" --out "$T/run" > "$T/plain.log" 2>&1 || { cat "$T/plain.log"; fail "predict on plain"; }
a=$(confusion_total "$T/plain.log") b=$(confusion_total "$T/ndm.log")
lab15=$("$PY" -c "
from osgeo import gdal
n = 0
for t, (r0, r1, c0, c1) in (('000', (100, 150, 200, 300)), ('001', (300, 350, 50, 150))):
    a = gdal.Open('$T/plain/test/synth_' + t + '_lc.tif').ReadAsArray()[r0:r1, c0:c1]
    n += int(((a >= 1) & (a <= 6)).sum())
print(n)")
[ "$a" -gt 0 ] && [ $((a - b)) -eq "$lab15" ] || fail "metrics counted $a pixels, then $b with no data; expected $lab15 fewer"
echo "gis: NoData tags and masks give 15 exactly there; metrics count $lab15 pixels fewer"

# ---- 4. paletted labels read as indices; the label layer's NoData value ignored
mkdir -p "$T/pal/test"
cp "$T"/plain/test/* "$T/pal/test/"
for t in 000 001; do fx palette "$T/plain/test/synth_${t}_lc.tif" "$T/pal/test/synth_${t}_lc.tif"; done
"$bin" eval --data "$T/plain" --out "$T/run" > "$T/eval_plain.log" 2>&1 || { cat "$T/eval_plain.log"; fail "eval plain"; }
"$bin" eval --data "$T/pal" --out "$T/run" > "$T/eval_pal.log" 2>&1 || { cat "$T/eval_pal.log"; fail "eval of paletted labels"; }
diff "$T/eval_plain.log" "$T/eval_pal.log" > /dev/null || { diff "$T/eval_plain.log" "$T/eval_pal.log"; fail "paletted labels read differently"; }
for t in 000 001; do fx palette "$T/plain/test/synth_${t}_lc.tif" "$T/pal/test/synth_${t}_lc.tif" 3; done
"$bin" eval --data "$T/pal" --out "$T/run" > "$T/eval_nd.log" 2>&1 || { cat "$T/eval_nd.log"; fail "eval with label NoData 3"; }
awk '/^confusion/ {on = 1; next} on && $1 == "lowveg" && NF == 7 {s = $2+$3+$4+$5+$6+$7; found = 1}
     END {exit !(found && s == 0)}' "$T/eval_nd.log" || { cat "$T/eval_nd.log"; fail "label NoData 3 (lowveg) was counted"; }
echo "gis: paletted labels read as their indices; the label NoData value is ignored"

# ---- 5. the files of a tile share CRS and geotransform; each tile keeps its own CRS
mkdir -p "$T/crs/test"
cp "$T"/plain/test/* "$T/crs/test/"
fx srs "$T/crs/test/synth_001_naip-new.tif" 26917
if "$bin" eval --data "$T/crs" --out "$T/run" > "$T/crs.log" 2>&1; then fail "a CRS mismatch was accepted"; fi
has "$T/crs.log" "synth_001_lc.tif' and '.*synth_001_naip-new.tif' do not lie on one pixel grid: the CRS is EPSG:26918 in one and EPSG:26917 in the other" \
  "the CRS mismatch message"
fx srs "$T/crs/test/synth_001_lc.tif" 26917   # now the whole tile is in UTM 17N
fx shift "$T/crs/test/synth_000_naip-new.tif" 3
if "$bin" eval --data "$T/crs" --out "$T/run" > "$T/shift.log" 2>&1; then fail "an origin mismatch was accepted"; fi
has "$T/shift.log" "the origin and pixel size are (400000.000000, 4200000.000000) 1 x -1 in one and (400003.000000, 4200000.000000) 1 x -1 in the other" \
  "the origin mismatch message"
fx shift "$T/crs/test/synth_000_naip-new.tif" -3
"$bin" predict --data "$T/crs" --out "$T/crs/run" --ckpt "$T/run/best.ckpt" > "$T/zones.log" 2>&1 \
  || { cat "$T/zones.log"; fail "predict over tiles in two UTM zones"; }
gdalinfo "$T/crs/run/predictions/synth_000_pred.tif" | grep -q 'ID\["EPSG",26918\]' || fail "tile 000 lost UTM 18N"
gdalinfo "$T/crs/run/predictions/synth_001_pred.tif" | grep -q 'ID\["EPSG",26917\]' || fail "tile 001 lost UTM 17N"
echo "gis: CRS and origin mismatches refused naming both files; tiles in two UTM zones keep theirs"

# ---- 1. one multi-band scene file of any name: the same map as its tile
gdal_translate -q -co TILED=YES -co COMPRESS=LZW "$T/plain/test/synth_000_naip-new.tif" "$T/scene.tif"
"$bin" predict --input "$T/scene.tif" --ckpt "$T/run/best.ckpt" --out "$T/sc" > "$T/sc.log" 2>&1 \
  || { cat "$T/sc.log"; fail "predict --input scene.tif"; }
cmp "$T/sc/predictions/scene_pred.tif" "$T/run/predictions/synth_000_pred.tif" > /dev/null 2>&1 \
  || "$PY" -c "
from osgeo import gdal
a = gdal.Open('$T/sc/predictions/scene_pred.tif').ReadAsArray()
b = gdal.Open('$P/synth_000_pred.tif').ReadAsArray()
assert (a == b).all(), 'the scene and its tile predict differently'" || fail "scene vs tile"
mkdir -p "$T/scenes"   # a folder of scenes: every .tif, of any size
cp "$T/scene.tif" "$T/scenes/a.tif"
gdal_translate -q -srcwin 0 0 300 200 "$T/scene.tif" "$T/scenes/b.tif"
"$bin" predict --input "$T/scenes" --ckpt "$T/run/best.ckpt" --out "$T/scs" > "$T/scs.log" 2>&1 \
  || { cat "$T/scs.log"; fail "predict --input of a folder of scenes"; }
cmp -s "$T/scs/predictions/a_pred.tif" "$T/sc/predictions/scene_pred.tif" || fail "a scene in a folder predicts differently"
has "$T/scs.log" "b  *300x200, 24 windows" "the second scene of the folder"
if "$bin" predict --input "$T/plain/test/synth_000_lc.tif" --ckpt "$T/run/best.ckpt" --out "$T/sc" > "$T/sc1.log" 2>&1; then
  fail "a one-band scene for a 4-band model was accepted"; fi
has "$T/sc1.log" "synth_000_lc.tif' has 1 band(s), model 'unet_landcover_small' takes 4" "the scene band-count message"

# ---- 7. the release's folder names and layers, through a spec that names them
R=$T/release
mkdir -p "$R/de_1m_2013_extended-debuffered-train_tiles" "$R/de_1m_2013_extended-debuffered-test_tiles"
for split in train test; do
  for f in "$T/synth/$split"/synth_00[01]_lc.tif; do
    k=$(basename "$f" _lc.tif | sed 's/synth_//')
    d=$R/de_1m_2013_extended-debuffered-${split}_tiles/m_38075${k}_ne_18_1
    cp "$f" "${d}_lc.tif"
    cp "$T/synth/$split/synth_${k}_naip-new.tif" "${d}_naip-new.tif"
    gdal_translate -q -b 4 "$T/synth/$split/synth_${k}_naip-new.tif" "${d}_buildings.tif"
    gdal_translate -q -ot Float32 "$f" "${d}_nlcd.tif"
  done
done
cat > "$T/release.ae" <<'SPEC'
model gis_release {
  input x: f32[64, 64, 6]
  target t: classes[64, 64] { 1 water, 2 tree, 3 lowveg, 4 barren, 5 impervious, 6 road } ignore 15
  batch 4
  logits = conv(x, 8, k=3) |> relu |> conv(6, k=1)
  loss softmax_xent(logits, t)
  optimizer adam(lr = 1e-3)
  data {
    source geotiff(dir = "unused", labels = "lc", patch = 64, patches_per_tile = 4,
                   train = "de_1m_2013_extended-debuffered-train_tiles",
                   test = "de_1m_2013_extended-debuffered-test_tiles",
                   layers = ["naip-new", "nlcd", "buildings"])
    normalize scale(1 / 255)
    validation 0
  }
}
SPEC
bin/aec build --out "$T/gen" "$T/release.ae" > "$T/build.log" 2>&1 || { cat "$T/build.log"; fail "building the release spec"; }
bin/gis_release train --data "$R" --out "$T/rel" --epochs 1 > "$T/rel.log" 2>&1 || { cat "$T/rel.log"; fail "train on the release layout"; }
bin/gis_release predict --data "$R" --out "$T/rel" > "$T/relp.log" 2>&1 || { cat "$T/relp.log"; fail "predict on the release layout"; }
has "$T/relp.log" "m_38075001_ne_18_1 .* 512x512" "the release's tile names"
cog "$T/rel/predictions/m_38075001_ne_18_1_pred.tif"
rm -f bin/gis_release
echo "gis: the release's folders and layers (naip-new, nlcd, buildings, lc) through a spec that names them"
echo "gis: ok"
