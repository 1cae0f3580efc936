#!/bin/sh
# Every example spec (specs/*.ae) on the emulator against the CPU target, at a small batch
# (tests/cuda/compare.cu, model.cu as host C++ under runtime/cuda_emu.h):
#  - one training step in each of the three thread orders (forward, reverse, random): the
#    loss terms, the output, the latent, an evaluation forward, batch norm's running
#    statistics and every parameter gradient within 1e-5 of the tensor's largest value,
#    and two steps of each optimizer;
#  - then STEPS training steps on random batches (default 10; the full 256x256 U-Net 2 at
#    batch 1), the CPU device against model.cu's, driven as the trainer drives a device,
#    model.cu's taking the CPU's parameters again after each update (compare.cu says why):
#    every step's loss within 1e-5 and every update of the whole model within STEP_TOL
#    (default 1e-2) in the 2-norm, |u_cpu - u_cuda| / |u_cpu|; then the same steps with
#    plain SGD, within SGD_TOL (default 1e-2). Rounding leaves 1e-6 to 5e-5 there; a ReLU
#    whose input rounds to the other side of zero on one side changes a gradient visibly
#    (img2img's SGD steps on an AMD EPYC without AVX-512: 3.3e-3); a wrong step or stale
#    state is of order 1. The worst update and the worst tensor (relative to its largest
#    value) are printed.
#  - without `quick`, for the specs trained on Fashion-MNIST (all but img2img and the
#    land-cover U-Nets, whose data is not on every machine): the CPU trainer and the
#    emulated CUDA trainer (aec build --target cuda --emulate) train ten steps of one epoch
#    from one seed, with the spec's optimizer replaced by SGD (lr 1e-4): the losses of their
#    train.csv (the epoch's training loss, its terms, the validation loss) within 1e-5
#    relative and their last.ckpt's parameters within TRAINER_TOL (default 1e-3) of each
#    tensor's largest value (tests/cuda/ckpt_diff.c; measured up to 2.9e-4, denoising_ae's
#    last bias, whose gradient sums 3,136 pixel gradients that nearly cancel). With Adam, real data drifts further than the random
#    batches above: conv_vae's logvar weights, whose gradients are nearly zero, differ by
#    5e-2 of their largest after ten steps and the losses by 8e-5, where SGD's agree to
#    2e-6 and 1e-8.
# grow_stage2, grow_stage3 and latent_classifier import a parent's checkpoint: the parents
# (grow_stage1, grow_stage2, conv_ae) are first trained for a few steps on the CPU in a
# scratch copy of specs/, whose ../runs/ the imports then read.
#
#   tests/cuda/specs.sh          every spec, and the trainers (make test-cuda-full)
#   tests/cuda/specs.sh quick    those tests/cuda/target.sh does not take, the full U-Net
#                                included, without the trainers (make test: 3.5 minutes of CPU)
#   CUDA_SPECS="vae2:8 img2img:4" tests/cuda/specs.sh   some, as spec:batch[:steps]
set -eu
cd "$(dirname "$0")/../.."
. tests/cuda/cpu_direct.sh   # the CPU side without Winograd (CC)
root=$(pwd)
out=${CUDA_SPECS_OUT:-build/cuda-specs}
tree=$root/$out/tree
rm -rf "$out"
mkdir -p "$tree/specs" "$tree/runs" "$tree/gen"
cp specs/*.ae "$tree/specs/"
fail() { echo "tests/cuda/specs.sh: $*"; exit 1; }
step_tol=${STEP_TOL:-1e-2} sgd_tol=${SGD_TOL:-1e-2} trainer_tol=${TRAINER_TOL:-1e-3}
quick="conv_ae_1x1:4 conv_vae:4 deep_ae:8 denoising_ae:4 grow_stage1:8 grow_stage2:8 grow_stage3:8 img2img:4 latent_classifier:4
  sparse_kl_ae:8 sparse_l1_ae:8 sparse_none_ae:8 vae2:8 unet_landcover:1:2"
in_target="conv_ae:4 conv_ae_transpose:4 denoising_skip:4 dense_ae:8 unet_landcover_small:2 vae:8"
cases=${CUDA_SPECS:-"$quick $in_target"}
trainers=1
[ "${1:-}" != quick ] || cases=$quick trainers=0
data=${AERT_DATA:-/usr/share/datasets/fashion-mnist}
[ -d "$data" ] || trainers=0

# The CPU trainer against the emulated CUDA trainer: ten SGD steps of batch $2 from one seed.
trainers() {   # name, batch, dir
  sed 's/^\( *optimizer \).*/\1sgd(lr = 1e-4)/' "$tree/specs/$1.ae" >"$tree/specs/sgd_$1.ae"
  grep -q "optimizer sgd(lr = 1e-4)" "$tree/specs/sgd_$1.ae" || fail "$1: no optimizer line to replace"
  ( cd "$3" && "$root/bin/aec" build --batch "$2" --out cpu "$tree/specs/sgd_$1.ae" >build-cpu.log 2>&1 &&
    "$root/bin/aec" build --target cuda --emulate --batch "$2" --out emu "$tree/specs/sgd_$1.ae" >build-emu.log 2>&1 ) ||
    fail "$1: a trainer did not build: $(tail -3 "$3/build-cpu.log" "$3/build-emu.log")"
  train="train --epochs 1 --limit $(($2 * 11)) --seed 3 --threads 1 --quiet"   # a tenth to validation: ten batches
  "$3/bin/$1" $train --out "$3/run-cpu" >"$3/cpu.log" 2>&1 || fail "$1: the CPU trainer failed: $(tail -3 "$3/cpu.log")"
  "$3/bin/$1-cuda-emu" $train --out "$3/run-emu" >"$3/emu.log" 2>&1 || fail "$1: the emulated trainer failed: $(tail -3 "$3/emu.log")"
  worst=$(paste -d, "$3/run-cpu/train.csv" "$3/run-emu/train.csv" | awk -F, -f tests/cuda/max_rel.awk)
  awk -v w="$worst" 'BEGIN { exit !(w <= 1e-5) }' || fail "$1: the trainers' losses differ by $worst relative"
  params=$("$out/ckpt_diff" "$3/run-cpu/last.ckpt" "$3/run-emu/last.ckpt" "$trainer_tol") || fail "$1: the trainers' checkpoints: $params"
  echo "  trainers: losses within $worst; $params"
}
cxx="${CXX:-g++} -std=gnu++20 -O2 -march=native -fopenmp -Wall -Wextra -Werror -Wno-unused-parameter -Iruntime"
libs="build/libaert.a -lopenblas -ltiff -lpng -lz -lpthread -lm"
[ $trainers -eq 0 ] || ${CC:-cc} -O2 -fopenmp -std=gnu11 -Wall -Wextra -Werror -Iruntime -o "$out/ckpt_diff" tests/cuda/ckpt_diff.c $libs

# A parent's checkpoint, for the specs that import it: a few CPU steps on Fashion-MNIST.
parent() {
  [ -e "$tree/runs/$1/best.ckpt" ] && return 0
  ( cd "$tree" && "$root/bin/aec" build --batch 8 --out "gen/$1" "specs/$1.ae" >"gen-$1.log" 2>&1 &&
    "bin/$1" train --epochs 1 --limit 64 --seed 3 --threads 1 --quiet --out "runs/$1" >>"gen-$1.log" 2>&1 ) ||
    fail "$1 (a parent) did not build or train: $(tail -5 "$tree/gen-$1.log")"
}

for c in $cases; do
  name=${c%%:*}; rest=${c#*:}; batch=${rest%%:*}; steps=10
  [ "$rest" = "$batch" ] || steps=${rest#*:}
  case $name in
    grow_stage2) parent grow_stage1 ;;
    grow_stage3) parent grow_stage1; parent grow_stage2 ;;
    latent_classifier) parent conv_ae ;;
  esac
  dir="$out/$name"
  mkdir -p "$dir"
  "$root/bin/aec" build --target cuda --no-compile --batch "$batch" --out "$dir/cuda" "$tree/specs/$name.ae" >"$dir/build.log" 2>&1 ||
    fail "$name: model.cu was not generated: $(tail -5 "$dir/build.log")"
  ${CC:-cc} -O3 -march=native -fopenmp -std=gnu11 -DAEC_NO_MAIN -Iruntime -I"$dir/cuda" -c -o "$dir/model_cpu.o" "$dir/cuda/model.c" ||
    fail "$name: model.c did not compile"
  $cxx -I"$dir/cuda" -o "$dir/compare" -x c++ tests/cuda/compare.cu -x none "$dir/model_cpu.o" $libs ||
    fail "$name: tests/cuda/compare.cu did not build"
  tol=1e-5 adam=$step_tol sgd=$sgd_tol
  # The full U-Net: a first-layer weight's gradient sums 65,536 pixels of each image, and
  # sums in another order differ by their length's rounding (measured 1.4e-5 of the largest
  # gradient; two steps run apart: a tensor's Adam parameters 8.3e-3, SGD 3.7e-4, losses 7e-7;
  # the updates from the same parameters: Adam 9.4e-4, SGD 1.2e-4 on an AMD EPYC without AVX-512).
  [ "$name" != unet_landcover ] || tol=5e-5 adam=5e-2 sgd=2e-2
  report="$name (batch $batch):"
  for order in forward reverse random; do
    more=""
    [ "$order" != forward ] || more="$steps $adam $sgd"
    got=$(AECU_ORDER=$order AECU_SEED=5 OMP_NUM_THREADS=1 "$dir/compare" $tol $more) ||
      fail "$name differs in $order order: $got"
    report="$report
  $order: $got"
  done
  echo "$report"
  case $name in img2img|unet_*) ;; *) [ $trainers -eq 0 ] || trainers "$name" "$batch" "$dir" ;; esac
done
