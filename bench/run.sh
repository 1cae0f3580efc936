#!/bin/sh
# make bench: the four pinned example specs, one process each, aec and PyTorch side by
# side at the same batch and thread count, in alternating rounds; PyTorch in its faster
# layout. Writes build/bench/<model>/profile.json (for `aec report --profile`) and
# bench/RESULTS.md (machine, date, command, per-model numbers and ratios) and prints it.
set -eu
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}
STEPS=${STEPS:-20}
ROUNDS=${ROUNDS:-2}
out=build/bench
mkdir -p "$out"
: > "$out/results.jsonl"
for spec in dense_ae:256 conv_ae:128 vae:256 unet_landcover:4; do
  model=${spec%%:*}; batch=${spec##*:}
  bin/aec build --no-compile --batch "$batch" --out "$out/$model" "specs/$model.ae" >/dev/null
  flops=$(bin/aec summary --json --batch "$batch" "specs/$model.ae" | sed -n 's/.*"flops_train_step": \([0-9.e+]*\).*/\1/p')
  ${CC:-cc} -O3 -march=native -fopenmp -std=gnu11 -DAEC_NO_MAIN -Wno-unused-function -Iruntime -I"$out/$model" \
    -o "$out/$model/aec_step" bench/aec_step.c build/libaert.a -lopenblas -ltiff -lpng -lz -lpthread -lm
  # ROUNDS rounds, the two sides alternating, so that a slow spell of a shared machine
  # hits both; the report keeps each side's fastest round
  for round in $(seq "$ROUNDS"); do
    OMP_WAIT_POLICY=PASSIVE "$out/$model/aec_step" "$STEPS" "$THREADS" "$flops" "$out/$model/profile.json" | tee -a "$out/results.jsonl"
    for layout in nchw channels_last; do
      [ "$layout" = channels_last ] && [ "$model" != conv_ae ] && [ "$model" != unet_landcover ] && continue
      OPENBLAS_NUM_THREADS=1 /usr/bin/python3 bench/torch_step.py --model "$model" --batch "$batch" \
        --steps "$STEPS" --threads "$THREADS" --layout "$layout" | tee -a "$out/results.jsonl"
    done
  done
done
# OpenBLAS's own SGEMM rate at the GEMM shape of every convolution: the ceiling
${CC:-cc} -O2 -o "$out/sgemm_ceiling" bench/sgemm_ceiling.c -lopenblas
for model in conv_ae unet_landcover; do
  /usr/bin/python3 -c "
import json, sys
for k in json.load(open('$out/$model/manifest.json'))['kernels']:
    if 'gemm' in k: print(k['name'], *k['gemm'])" | while read -r name m n k; do
    g=$("$out/sgemm_ceiling" "$m" "$n" "$k" "$THREADS")
    echo "{\"side\": \"sgemm\", \"model\": \"$model\", \"kernel\": \"$name\", \"m\": $m, \"n\": $n, \"k\": $k, \"gflops\": $g}" | tee -a "$out/results.jsonl"
  done
done
/usr/bin/python3 bench/report.py "$out/results.jsonl" "$THREADS" > bench/RESULTS.md
cat bench/RESULTS.md
