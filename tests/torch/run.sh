#!/bin/sh
# PyTorch cross-check (llm.c's state dump): for every spec in tests/torch/specs/, dump.c runs
# the generated float model.c on fixed random weights and inputs (outputs, loss terms,
# gradients, one and two steps of sgd, adam and adamw) and compare.py checks all of it
# against a PyTorch twin; then ten Adam steps of four example specs, loss by loss; then
# checkpoints through ckpt_npy.py and back.
# Needs Debian's python3-torch; run after `make all`.
set -eu
cd "$(dirname "$0")/../.."
out=build/torch
py=${PYTHON:-/usr/bin/python3}
mkdir -p "$out"
build() {  # name spec [batch]
  mkdir -p "$out/$1"
  bin/aec build --no-compile ${3:+--batch $3} --out "$out/$1/src" "$2" >/dev/null
  ${CC:-cc} -O2 -fopenmp -std=gnu11 -Wall -Wextra -Werror -Wno-unused-function -Wno-unused-const-variable \
    -DAEC_NO_MAIN -Iruntime -I"$out/$1/src" -o "$out/$1/dump" tests/torch/dump.c build/libaert.a \
    -lopenblas -ltiff -lpng -lz -lpthread -lm
}
status=0
for spec in tests/torch/specs/*.ae; do
  name=$(basename "$spec" .ae)
  build "$name" "$spec"
  OMP_NUM_THREADS=1 "$out/$name/dump" op "$out/$name"
done
for name in dense_ae conv_ae vae unet_landcover_small; do
  build "$name" "specs/$name.ae" 8
  OMP_NUM_THREADS=1 "$out/$name/dump" train "$out/$name" 10
done
$py tests/torch/compare.py "$out" || status=1
# ckpt_npy.py: a checkpoint to .npy files and back is the same file, byte for byte.
for name in conv_ae unet_landcover_small; do
  rm -rf "$out/$name/npy"
  $py tests/torch/ckpt_npy.py export "$out/$name/end.ckpt" "$out/$name/npy" >/dev/null
  $py tests/torch/ckpt_npy.py import "$out/$name/npy" "$out/$name/back.ckpt" >/dev/null
  if cmp -s "$out/$name/end.ckpt" "$out/$name/back.ckpt"; then
    echo "  ckpt_npy round trip of $name: identical"
  else
    echo "  ckpt_npy round trip of $name: DIFFERS"; status=1
  fi
done
exit $status
