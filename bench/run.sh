#!/bin/sh
# make bench: the four pinned example specs, one process each, aec and PyTorch side by
# side at the same batch and thread count, in alternating rounds; PyTorch in its faster
# layout. Writes build/bench/<model>/profile.json (for `aec report --profile`) and
# bench/RESULTS.md (its section for this machine: CPU, date, command, per-model numbers and
# ratios, per kernel GFLOP/s and share of the measured FMA peak, and per epoch the whole
# trainer against a plain PyTorch loop: bench/epoch.sh) and prints it. On a machine
# with AVX-512 the AVX2 path (-march=x86-64-v3) is built and timed beside the native one;
# with build/torch2 (`make torch2`) PyTorch 2.x, eager and compiled, is a second column.
set -eu
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}
STEPS=${STEPS:-20}
ROUNDS=${ROUNDS:-2}
out=build/bench
mkdir -p "$out"
: > "$out/results.jsonl"
# the shared machine's load as the run starts (its 1-, 5- and 15-minute averages), for the report
echo "{\"side\": \"load\", \"at\": \"start\", \"loadavg\": \"$(cut -d' ' -f1-3 /proc/loadavg)\"}" >> "$out/results.jsonl"
# PyTorch 2.x beside Debian's 1.13 when build/torch2 exists (scripts/torch2-venv.sh, `make torch2`):
# eager in both layouts and torch.compile'd, its best setting the second column
TORCH2=${TORCH2_PYTHON:-build/torch2/bin/python3}
[ -x "$TORCH2" ] || TORCH2=
# the machine's FMA peak, natively and for the AVX2 path
${CC:-cc} -O2 -march=native -fopenmp -o "$out/fma_peak_native" bench/fma_peak.c
${CC:-cc} -O2 -march=x86-64-v3 -fopenmp -o "$out/fma_peak_avx2" bench/fma_peak.c
peak=$("$out/fma_peak_native" "$THREADS")
echo "$peak" | tee -a "$out/results.jsonl"
isas=native
case $peak in *'"isa": "avx512"'*) isas="native avx2"; "$out/fma_peak_avx2" "$THREADS" | tee -a "$out/results.jsonl" ;; esac
for spec in dense_ae:256 conv_ae:128 vae:256 unet_landcover:4; do
  model=${spec%%:*}; batch=${spec##*:}
  bin/aec build --no-compile --batch "$batch" --out "$out/$model" "specs/$model.ae" >/dev/null
  flops=$(bin/aec summary --json --batch "$batch" "specs/$model.ae" | sed -n 's/.*"flops_train_step": \([0-9.e+]*\).*/\1/p')
  # the native build, and on a machine with AVX-512 the AVX2 path too (x86-64-v3: the
  # kernels' 8-float tiles, as on AMD Zen 2/3 or Intel without AVX-512)
  for isa in $isas; do
    march=native; [ "$isa" = avx2 ] && march=x86-64-v3
    ${CC:-cc} -O3 -march=$march -fopenmp -std=gnu11 -DAEC_NO_MAIN -Wno-unused-function -Iruntime -I"$out/$model" \
      -o "$out/$model/aec_step_$isa" bench/aec_step.c build/libaert.a -lopenblas -ltiff -lpng -lz -lpthread -lm
  done
  # ROUNDS rounds, the two sides alternating, so that a slow spell of a shared machine
  # hits both; the report keeps each side's fastest round
  for round in $(seq "$ROUNDS"); do
    for isa in $isas; do
      prof=; [ "$isa" = native ] && prof="$out/$model/profile.json"
      "$out/$model/aec_step_$isa" "$STEPS" "$THREADS" "$flops" $prof |
        sed "s/^{\"side\": \"aec\(-kernel\)*\"/&, \"isa\": \"$isa\"/" | tee -a "$out/results.jsonl"
    done
    for layout in nchw channels_last; do
      [ "$layout" = channels_last ] && [ "$model" != conv_ae ] && [ "$model" != unet_landcover ] && continue
      OPENBLAS_NUM_THREADS=1 /usr/bin/python3 bench/torch_step.py --model "$model" --batch "$batch" \
        --steps "$STEPS" --threads "$THREADS" --layout "$layout" | tee -a "$out/results.jsonl"
      [ -n "$TORCH2" ] || continue
      for compile in "" --compile; do
        OPENBLAS_NUM_THREADS=1 "$TORCH2" bench/torch_step.py --model "$model" --batch "$batch" \
          --steps "$STEPS" --threads "$THREADS" --layout "$layout" $compile 2>"$out/torch2.log" |
          sed 's/^{"side": "torch"/{"side": "torch2"/' | tee -a "$out/results.jsonl"
      done
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
# one epoch of the whole trainer against a plain PyTorch loop, for conv_ae and the small U-Net
THREADS=$THREADS ROUNDS=$ROUNDS bench/epoch.sh
echo "{\"side\": \"load\", \"at\": \"end\", \"loadavg\": \"$(cut -d' ' -f1-3 /proc/loadavg)\"}" >> "$out/results.jsonl"
/usr/bin/python3 bench/report.py "$out/results.jsonl" "$THREADS" bench/RESULTS.md
