#!/bin/sh
# Runs each libFuzzer harness over its seed corpus, then fuzzes it for SECONDS (default 15).
# With RUNS set instead (make test does), each harness makes exactly RUNS executions from
# a fixed seed: the same inputs every time, so a passing commit passes in CI too.
# Corpora: the spec harness starts from every example, broken and gradient-check spec;
# the IDX harness from tests/fuzz/seeds/idx, the TIFF harness from tests/fuzz/seeds/tiff
# (small GeoTIFFs of our writer and of GDAL, one per layout); the checkpoint harness from a checkpoint
# written by a tiny trainer. New inputs found go to build/fuzz/corpus-*; a crash stops
# with the input saved as build/fuzz/crash-* and fails.
set -eu
cd "$(dirname "$0")/../.."
seconds=${1:-15}
fz=build/fuzz
mkdir -p "$fz/corpus-spec" "$fz/corpus-idx" "$fz/corpus-ckpt" "$fz/corpus-tiff" "$fz/seeds-ckpt"

# a real checkpoint to start the checkpoint harness from
if [ ! -s "$fz/seeds-ckpt/last.ckpt" ]; then
  bin/aec build --no-compile --out "$fz/tiny" tests/fuzz/tiny.ae >/dev/null
  ${CC:-cc} -O2 -fopenmp -std=gnu11 -Iruntime -I"$fz/tiny" -o "$fz/tiny/fuzz_tiny" "$fz/tiny/model.c" \
    build/libaert.a -lopenblas -ltiff -lpng -lz -lpthread -lm
  "$fz/tiny/fuzz_tiny" train --epochs 1 --limit 80 --out "$fz/seeds-ckpt" --quiet
  rm -f "$fz/seeds-ckpt/best.ckpt" "$fz/seeds-ckpt/train.csv"
fi

run() {   # name, max_len, corpus dirs...
  name=$1; len=$2; shift 2
  if [ -n "${RUNS:-}" ]; then echo "fuzz_$name: seeds, then $RUNS runs from seed 1"; else echo "fuzz_$name: seeds, then ${seconds}s of fuzzing"; fi
  "$fz/fuzz_$name" -runs=0 -max_len="$len" "$@" 2>"$fz/$name.seeds.log" || { tail -40 "$fz/$name.seeds.log"; exit 1; }
  if [ -n "${RUNS:-}" ]; then budget="-runs=$RUNS -seed=1"; else budget="-max_total_time=$seconds"; fi
  "$fz/fuzz_$name" $budget -max_len="$len" -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$fz/crash-$name-" -print_final_stats=1 "$@" 2>"$fz/$name.log" || { tail -60 "$fz/$name.log"; exit 1; }
  grep -E "^stat::number_of_executed_units|^Done" "$fz/$name.log" | sed 's/^/  /'
}
run spec 16384 "$fz/corpus-spec" specs tests/specs/broken tests/specs/grad
run idx 4096 "$fz/corpus-idx" tests/fuzz/seeds/idx
run ckpt 65536 "$fz/corpus-ckpt" "$fz/seeds-ckpt"
run tiff 16384 "$fz/corpus-tiff" tests/fuzz/seeds/tiff
echo "fuzzing: no crash, leak, hang or undefined behaviour found"
