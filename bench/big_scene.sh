#!/bin/sh
# Issue 18's demonstration that predict streams a scene of any size in bounded memory: a
# synthetic NAIP scene of N x N/4 and then N x N pixels (default N = 20000; GDAL writes it,
# bench/make_scene.py) predicted by bench/big_scene.ae with `predict --input`, under
# /usr/bin/time -v. Prints each run's peak resident memory and wall time (the peak should not
# grow with the height), checks the class map with GDAL's COG validator and its no-data margin,
# and appends the numbers to bench/big_scene.txt. Not part of `make test` (minutes, ~2 GB of
# disk in BIG_SCENE_DIR, default a temporary folder). Run after `make all`.
set -eu
cd "$(dirname "$0")/.."
N=${1:-20000}
T=${BIG_SCENE_DIR:-$(mktemp -d)}
[ -n "${BIG_SCENE_DIR:-}" ] || trap 'rm -rf "$T"' EXIT
fail() { echo "big_scene: FAIL: $*" >&2; exit 1; }
PY=
for p in python3 /usr/bin/python3; do
  if "$p" -c "import osgeo" 2> /dev/null; then PY=$p; break; fi
done
[ -n "$PY" ] || fail "no python3 with GDAL's bindings (python3-gdal)"
validator=$("$PY" -c "import osgeo_utils.samples.validate_cloud_optimized_geotiff as v; print(v.__file__)")
bin/aec build --out "$T/gen" bench/big_scene.ae > /dev/null
bin/big_scene init --out "$T/run" > /dev/null
for h in $((N / 4)) "$N"; do
  "$PY" bench/make_scene.py "$T/scene.tif" "$N" "$h"
  rm -rf "$T/out"
  /usr/bin/time -v bin/big_scene predict --input "$T/scene.tif" --ckpt "$T/run/init.ckpt" \
    --out "$T/out" --quiet 2> "$T/time.log" || { cat "$T/time.log"; fail "predict of ${N}x$h"; }
  pred=$T/out/predictions/scene_pred.tif
  "$PY" "$validator" "$pred" | grep "is a valid cloud optimized GeoTIFF" > /dev/null || fail "$pred is not a COG"
  "$PY" -c "
from osgeo import gdal
ds = gdal.Open('$pred')
b = ds.GetRasterBand(1)
m = b.ReadAsArray(0, 0, 400, 256)
assert (m[:, :300] == 15).all() and (m[:, 300:] != 15).all(), 'the no-data margin is not 15 exactly'
w, h, levels = ds.RasterXSize, ds.RasterYSize, 0
while w > 256 or h > 256:
    w, h, levels = (w + 1) // 2, (h + 1) // 2, levels + 1
assert b.GetOverviewCount() == levels, f'{b.GetOverviewCount()} overviews, not {levels}'" || fail "the class map of ${N}x$h"
  rss=$(awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2 / 1024}' "$T/time.log")
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$T/time.log")
  cpu=$(awk -F': ' '/(User|System) time/ {s += $2} END {printf "%.0f", s}' "$T/time.log")
  line="scene ${N} x ${h}: peak RSS ${rss} MiB, wall ${wall}, CPU ${cpu} s, $(ls -s --block-size=M "$pred" | cut -d' ' -f1) class map, $(nproc) cores"
  echo "$line"
  echo "$(date -u +%Y-%m-%d) $line" >> bench/big_scene.txt
done
