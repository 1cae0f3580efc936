#!/bin/sh
# How batches reach the CUDA target's device (runtime/aert_cuda_data.h), under the emulator:
#  (a) tests/cuda/augment_ae.ae (every augmentation, a normalisation of its own): for two
#      epochs, each batch the device makes from the IDX set it keeps is bit for bit the host
#      loader's, and the loader's batch sent from its pinned slot, and from other memory
#      through the device's pinned buffers, arrives unchanged
#      (tests/cuda/data.cu), in forward and in reverse thread order;
#  (b) denoising_ae (the gaussian_noise op on the kept set's batches): the emulated trainer
#      and the CPU trainer train two short epochs from one seed; every loss of train.csv
#      within 1e-5 relative, and the device's own counters (AEC_CUDA_FEED) say that each
#      training step sent only its batch's indices: no silent fall-back to host batches; and
#      the same run replaying CUDA graphs (the default) and with AEC_CUDA_GRAPH=0 gives the
#      same train.csv and last.ckpt bit for bit;
#  (c) unet_landcover_small's network on a few small synthetic GeoTIFF tiles: host batches
#      that the data thread makes in its two slots of the device's pinned memory, copied
#      from there on the copy stream; train.csv as (b), and the counters say every training
#      batch went straight from the slots (validation through the device's pinned buffers).
# About 40 s of CPU. DATA overrides the Fashion-MNIST folder.
set -eu
cd "$(dirname "$0")/../.."
. tests/cuda/cpu_direct.sh   # the CPU side without Winograd (CC)
root=$(pwd)
data=${DATA:-/usr/share/datasets/fashion-mnist}
out=build/cuda-data
rm -rf "$out"
mkdir -p "$out"
fail() { echo "tests/cuda/data.sh: $*"; exit 1; }
[ -d "$data" ] || fail "no Fashion-MNIST at $data (DATA=folder overrides)"
cxx="${CXX:-g++} -std=gnu++20 -O2 -march=native -fopenmp -Wall -Wextra -Werror -Wno-unused-parameter -Iruntime"
libs="build/libaert.a -lopenblas -ltiff -lpng -lz -lpthread -lm"
tol=1e-5

# (a) the kept set's batches against the host loader's
dir=$out/augment_ae
bin/aec build --target cuda --no-compile --batch 8 --out "$dir" tests/cuda/augment_ae.ae >"$out/augment_ae.log" 2>&1 ||
  fail "augment_ae: model.cu was not generated: $(tail -5 "$out/augment_ae.log")"
${CC:-cc} -O3 -march=native -fopenmp -std=gnu11 -DAEC_NO_MAIN -Iruntime -I"$dir" -c -o "$dir/model_cpu.o" "$dir/model.c" ||
  fail "augment_ae: model.c did not compile"
$cxx -I"$dir" -o "$dir/data" -x c++ tests/cuda/data.cu -x none "$dir/model_cpu.o" $libs || fail "tests/cuda/data.cu did not build"
for order in forward reverse; do
  said=$(AECU_ORDER=$order OMP_NUM_THREADS=1 "$dir/data" "$data" 100 2>&1) || fail "augment_ae ($order order): $said"
  echo "augment_ae ($order order): $said"
done

# The device's counters, printed at close: "... N kept batches, B bytes of indices; H host batches, P bytes ..."
feed() { grep "aec cuda feed:" "$1" | sed -E "s/.* ([0-9]+) kept batches, ([0-9]+) bytes of indices; ([0-9]+) host batches, ([0-9]+) bytes .*; ([0-9]+) straight .*/\\$2/"; }

# Trains spec (its model name, batch, examples, epochs, more options) on the CPU and
# emulated trainers in $out/NAME, compares train.csv, and leaves the emulated run's log in
# $out/NAME/emu.log.
train_both() {
  name=$1 spec=$2 batch=$3 limit=$4 epochs=$5 more=${6:-} dir=$out/$1
  mkdir -p "$dir"
  ( cd "$dir" && "$root/bin/aec" build --batch "$batch" --out cpu "$spec" >build-cpu.log 2>&1 &&
      "$root/bin/aec" build --target cuda --emulate --batch "$batch" --out cuda "$spec" >build-cuda.log 2>&1 ) ||
    fail "$name: the trainers did not build: $(tail -5 "$dir"/build-*.log)"
  train="train --epochs $epochs --limit $limit --seed 3 --threads 1 --quiet $more"
  # shellcheck disable=SC2086
  "$dir/bin/$name" $train --out "$dir/run-cpu" >"$dir/cpu.log" 2>&1 || fail "$name: the CPU trainer failed: $(tail -5 "$dir/cpu.log")"
  # shellcheck disable=SC2086
  AEC_CUDA_FEED=1 "$dir/bin/$name-cuda-emu" $train --out "$dir/run-emu" >"$dir/emu.log" 2>&1 ||
    fail "$name: the emulated trainer failed: $(tail -5 "$dir/emu.log")"
  worst=$(paste -d, "$dir/run-cpu/train.csv" "$dir/run-emu/train.csv" | awk -F, -f tests/cuda/max_rel.awk)
  awk -v w="$worst" -v t="$tol" 'BEGIN { exit !(w <= t) }' ||
    fail "$name: losses differ by $worst relative (over $tol):
$(cat "$dir/run-cpu/train.csv")
$(cat "$dir/run-emu/train.csv")"
  steps=$(tail -1 "$dir/run-emu/train.csv" | cut -d, -f2)
}

# (b) denoising_ae on the kept set: batch 4, 16 examples (15 to train): 3 steps an epoch
train_both denoising_ae "$root/specs/denoising_ae.ae" 4 16 2
kept=$(feed "$out/denoising_ae/emu.log" 1) index=$(feed "$out/denoising_ae/emu.log" 2)
[ "$kept" = "$steps" ] && [ "$index" = $((steps * 4 * 4)) ] ||
  fail "denoising_ae: $steps training steps, but the device made $kept batches from its kept set with $index bytes of indices: $(grep "aec cuda feed" "$out/denoising_ae/emu.log")"
echo "denoising_ae (batch 4): $steps steps, losses within $worst relative; each step sent its 16 bytes of indices alone"

# (b') the kept set's batches under replayed CUDA graphs: the emulated run above replayed
#      graphs (the default); the same run with plain launches (AEC_CUDA_GRAPH=0) must give
#      its train.csv and last.ckpt bit for bit. The batch alternates between two device
#      buffers, so a graph captured on one must not be replayed on the other's batch.
dir=$out/denoising_ae
AECU_REPORT=1 AEC_CUDA_FEED=1 "$dir/bin/denoising_ae-cuda-emu" train --epochs 2 --limit 16 --seed 3 --threads 1 --quiet \
  --out "$dir/run-graph" >"$dir/graph.log" 2>&1 || fail "denoising_ae: the emulated trainer failed with graphs: $(tail -5 "$dir/graph.log")"
AEC_CUDA_GRAPH=0 AEC_CUDA_FEED=1 "$dir/bin/denoising_ae-cuda-emu" train --epochs 2 --limit 16 --seed 3 --threads 1 --quiet \
  --out "$dir/run-plain" >"$dir/plain.log" 2>&1 || fail "denoising_ae: the emulated trainer failed with AEC_CUDA_GRAPH=0: $(tail -5 "$dir/plain.log")"
replays=$(sed -n 's/^cuda_emu: \([0-9]*\) graph launches.*/\1/p' "$dir/graph.log")
[ "${replays:-0}" -gt 0 ] || fail "denoising_ae: the default run replayed no graph: $(tail -3 "$dir/graph.log")"
[ "$(feed "$dir/graph.log" 1)" = "$steps" ] && [ "$(feed "$dir/plain.log" 1)" = "$steps" ] ||
  fail "denoising_ae: not every training batch came from the kept set: $(grep "aec cuda feed" "$dir/graph.log" "$dir/plain.log")"
[ "$(sed 's/,[^,]*$//' "$dir/run-graph/train.csv")" = "$(sed 's/,[^,]*$//' "$dir/run-plain/train.csv")" ] ||
  fail "denoising_ae: the kept set's losses with graphs and with plain launches differ:
$(cat "$dir/run-graph/train.csv" "$dir/run-plain/train.csv")"
cmp -s "$dir/run-graph/last.ckpt" "$dir/run-plain/last.ckpt" || fail "denoising_ae: last.ckpt differs between graphs and plain launches"
echo "denoising_ae on the kept set: $replays graph replays give the plain launches' losses and last.ckpt bit for bit"

# (c) unet_landcover_small's network on 4 synthetic tiles of 128 px, 4 patches of 64 each
spec=$out/unet_landcover_small.ae
sed -e 's#dir = "../data/synthetic", tiles = 12, tile_size = 512#dir = "synthetic", tiles = 4, tile_size = 128#' \
    -e 's#patches_per_tile = 64#patches_per_tile = 4#' specs/unet_landcover_small.ae >"$spec"
grep -q 'tiles = 4, tile_size = 128' "$spec" || fail "specs/unet_landcover_small.ae's data section changed: update the sed above"
# (Adam at the spec's rate makes the rounding-level differences of the U-Net's nearly-zero
# gradients grow to 1.4e-4 in three steps; at 1e-5 they stay at the rounding's size.)
train_both unet_landcover_small "$root/$spec" 2 6 1 "--lr 1e-5"
kept=$(feed "$out/unet_landcover_small/emu.log" 1) host=$(feed "$out/unet_landcover_small/emu.log" 3)
bytes=$(feed "$out/unet_landcover_small/emu.log" 4) direct=$(feed "$out/unet_landcover_small/emu.log" 5)
[ "$kept" = 0 ] && [ "$host" -gt "$steps" ] && [ "$bytes" = $((host * 2 * (64 * 64 * 4 + 64 * 64) * 4)) ] && [ "$direct" = "$steps" ] ||
  fail "unet_landcover_small: $steps steps, but the counters say: $(grep "aec cuda feed" "$out/unet_landcover_small/emu.log")"
echo "unet_landcover_small (batch 2, small tiles): $steps steps, losses within $worst relative; $host batches through pinned memory, the $steps training batches straight from the data thread's slots"
