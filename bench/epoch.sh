#!/bin/sh
# make bench, per epoch: the whole trainer, `bin/<model> train --epochs 1` (data,
# augmentation, validation, best and last checkpoints), against one epoch of a plain
# PyTorch loop on the same data and model (bench/torch_epoch.py), in alternating rounds;
# PyTorch in both layouts, the report keeping the faster. conv_ae's epoch is shortened
# with --limit on both sides (EPOCH_LIMIT images, a tenth of them validation); the U-Net
# runs its whole epoch (64 patches from each of 10 training tiles, 2 validation tiles on a grid).
# Appends JSON lines to build/bench/results.jsonl: the epoch's seconds as each side times
# it (aec: train.csv's `seconds`), and the whole process from the outside.
set -eu
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-2}
EPOCH_LIMIT=${EPOCH_LIMIT:-7112}   # 6401 training images (50 steps of 128), 711 validation
out=build/bench/epoch
results=build/bench/results.jsonl
mkdir -p "$out"
now() { date +%s.%N; }
load() { cut -d' ' -f1 /proc/loadavg; }   # the shared machine's load as each run starts
# the synthetic land-cover tiles, written once by the trainer itself
[ -d "$out/landcover/train" ] ||
  bin/unet_landcover_small train --epochs 1 --data "$out/landcover" --out "$out/warm" --quiet --threads "$THREADS"
for round in $(seq "$ROUNDS"); do
  for spec in conv_ae:/usr/share/datasets/fashion-mnist unet_landcover_small:$out/landcover; do
    model=${spec%%:*}; data=${spec#*:}; limit=; [ "$model" = conv_ae ] && limit=$EPOCH_LIMIT
    rm -rf "$out/aec_$model"
    l0=$(load)
    t0=$(now)
    bin/$model train --epochs 1 --seed 1 --threads "$THREADS" --data "$data" --out "$out/aec_$model" ${limit:+--limit $limit} --quiet
    t1=$(now)
    tail -n 1 "$out/aec_$model/train.csv" | awk -F, -v m="$model" -v l="${limit:-0}" -v p="$(echo "$t1 - $t0" | bc)" \
      -v b="$(sed -n 's/^  "batch": \([0-9]*\),/\1/p' "generated/$model/manifest.json")" -v th="$THREADS" -v ld="$l0" \
      '{printf "{\"side\": \"epoch\", \"trainer\": \"aec\", \"model\": \"%s\", \"examples\": %d, \"steps\": %d, \"limit\": %d, \"threads\": %d, \"epoch_s\": %.3f, \"process_s\": %.3f, \"load\": %s}\n", m, $2 * b, $2, l, th, $NF, p, ld}' |
      tee -a "$results"
    for layout in nchw channels_last; do
      l0=$(load)
      t0=$(now)
      line=$(OPENBLAS_NUM_THREADS=1 /usr/bin/python3 bench/torch_epoch.py --model "$model" --data "$data" --out "$out/torch_$model" \
        --threads "$THREADS" --layout "$layout" ${limit:+--limit $limit})
      t1=$(now)
      echo "$line" | sed "s/}\$/, \"process_s\": $(echo "$t1 - $t0" | bc), \"load\": $l0}/" | tee -a "$results"
    done
  done
done
