#!/bin/sh
# tests/gpu/run.sh - the CUDA target's proof on a GPU (docs/cuda.md, "Proof on a GPU"), one
# command on a machine with an NVIDIA GPU, nvcc and PyTorch 2.x with CUDA; under 8 minutes
# on one H200:
#  (1) nvcc (sm_90, ARCH overrides) builds the trainers of the four bench models at
#      bench/run.sh's batches (aec build --target cuda) and bench/aec_cuda_step.cu for each,
#      in fp32, with --precision tf32 and bf16 (tensor cores) and with --gemm cublaslt;
#  (2) tests/cuda/compare.cu, built by nvcc instead of against the emulator, runs one
#      training step of the GPU kernels against the CPU target for the specs of
#      tests/cuda/target.sh and every example spec that imports no checkpoint: everything
#      within TOL (1e-5) of each tensor's largest value; then ten steps on random batches
#      (the full U-Net two), losses within TOL and parameters as tests/cuda/specs.sh bounds them;
#      tests/cuda/on_device.cu: the finite check and the clipping kernels give the host's bits;
#      and the tf32 and bf16 builds of dense_ae and conv_ae within tests/cuda/precision.sh's
#      tolerances (compare.cu --low), differing from the fp32 step by more than 1e-4; and the
#      --gemm cublaslt builds (dense layers' GEMMs by cuBLASLt) within TOL, as fp32;
#  (3) the GPU trainer and the CPU trainer train an epoch of ten or eleven steps from one
#      seed at a small batch (unet_landcover_small on its synthetic data; dense_ae, vae and
#      conv_ae too when Fashion-MNIST is there): every loss of train.csv (the epoch's mean
#      train loss and terms, the validation loss after it) within STEPS_TOL (1e-3) relative
#      (Adam turns rounding into learning-rate steps where gradients are nearly zero); the
#      GPU trainer's replayed CUDA graphs and its plain launches (AEC_CUDA_GRAPH=0) give the
#      same losses and last.ckpt bit for bit; --device 99 is refused with the device count;
#  (4) compute-sanitizer --tool memcheck (conv_ae, seg_ops, unet_landcover_small) and
#      --tool racecheck (conv_ae, seg_ops) find nothing in one step;
#  (5) a training step of the four bench models, aec's kernels (bench/aec_cuda_step.cu;
#      fp32, tf32, bf16 and cublaslt) against PyTorch eager fp32 and PyTorch fast (channels_last, cudnn.benchmark, bf16
#      autocast, torch.compile: bench/torch_gpu.py), written to bench/GPU_RESULTS.md.
# --build-only does (1) and (2)'s builds and nothing that needs a GPU: the check a machine
# without one can make.
set -eu
cd "$(dirname "$0")/../.."
. tests/cuda/cpu_direct.sh   # the CPU side without Winograd (CC)
root=$(pwd)
nvcc=${NVCC:-/usr/local/cuda/bin/nvcc}
python=${PYTHON:-python3}
arch=${ARCH:-sm_90}
tol=${TOL:-1e-5}
steps_tol=${STEPS_TOL:-1e-3}
build_only=0
[ "${1:-}" = --build-only ] && build_only=1
out=build/gpu
fail() { echo "tests/gpu/run.sh: $*"; exit 1; }
[ -x "$nvcc" ] || fail "no nvcc at $nvcc (NVCC=path overrides)"
rm -rf "$out"
mkdir -p "$out/bench" "$out/step" "$out/train"
make all >"$out/make.log" 2>&1 || fail "make all failed: $(tail -5 "$out/make.log")"
gpu="no GPU (--build-only)"
if [ $build_only = 0 ]; then
  gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1) || fail "nvidia-smi does not answer: no GPU?"
fi
echo "GPU: $gpu"
libs="build/libaert.a -Xcompiler -fopenmp -lgomp -lopenblas -ltiff -lpng -lz -lpthread -lm -lcublasLt"   # cuBLASLt: --gemm cublaslt
t0=$(date +%s)
elapsed() { echo "$(( $(date +%s) - t0 )) s"; }

# model.c as the descriptor (AEC_NO_MAIN), and PROGRAM.cu by nvcc around the folder DIR.
# shellcheck disable=SC2086
build_with() {   # DIR PROGRAM.cu OUTPUT
  ${CC:-cc} -O3 -march=native -fopenmp -std=gnu11 -DAEC_NO_MAIN -Iruntime -I"$1" -c -o "$1/model_cpu.o" "$1/model.c" &&
    "$nvcc" -std=c++17 -O3 -arch="$arch" -Iruntime -I"$1" -o "$3" "$2" "$1/model_cpu.o" $libs
}

# (1) the bench models' trainers and step timers, and (2) the one-step comparisons, all built at once
bench="dense_ae:256 conv_ae:128 vae:256 unet_landcover:4"
# target.sh's specs and the example specs that import no parent's checkpoint (tests/cuda/specs.sh's)
steps="dense_ae:8 vae:8 conv_ae:4 denoising_skip:4 conv_ae_transpose:4 unet_landcover_small:2 ops:4 seg_ops:3
  conv_ae_1x1:4 conv_vae:4 deep_ae:8 denoising_ae:4 grow_stage1:8 img2img:4 sparse_kl_ae:8 sparse_l1_ae:8 sparse_none_ae:8 vae2:8
  unet_landcover:1"
for c in $bench; do
  m=${c%%:*} b=${c#*:} dir="$out/bench/${c%%:*}"
  mkdir -p "$dir"
  ( cd "$dir" && NVCC=$nvcc "$root/bin/aec" build --target cuda --batch "$b" --out gen "$root/specs/$m.ae" >build.log 2>&1 &&
      cd "$root" && build_with "$dir/gen" bench/aec_cuda_step.cu "$dir/aec_cuda_step" >>"$dir/build.log" 2>&1 ||
      echo "$m: $(tail -5 "$root/$dir/build.log")" >"$root/$dir/failed" ) &
  for p in tf32 bf16 cublaslt; do   # the step timer alone
    flag="--precision $p"; [ $p = cublaslt ] && flag="--gemm cublaslt"
    # shellcheck disable=SC2086
    ( bin/aec build --target cuda $flag --no-compile --batch "$b" --out "$dir/gen-$p" "specs/$m.ae" >"$dir/build-$p.log" 2>&1 &&
        build_with "$dir/gen-$p" bench/aec_cuda_step.cu "$dir/aec_cuda_step_$p" >>"$dir/build-$p.log" 2>&1 ||
        echo "$m ($p): $(tail -5 "$dir/build-$p.log")" >"$dir/failed-$p" ) &
  done
done
low="dense_ae:8:tf32 dense_ae:8:bf16 conv_ae:4:tf32 conv_ae:4:bf16"   # tests/cuda/precision.sh's
for c in $low dense_ae:8:cublaslt conv_ae:4:cublaslt; do
  m=${c%%:*} rest=${c#*:} p=${c##*:}
  b=${rest%%:*} dir="$out/step/$m-$p"
  flag="--precision $p"; [ $p = cublaslt ] && flag="--gemm cublaslt"
  mkdir -p "$dir"
  # shellcheck disable=SC2086
  ( bin/aec build --target cuda $flag --no-compile --batch "$b" --out "$dir/gen" "specs/$m.ae" >"$dir/build.log" 2>&1 &&
      build_with "$dir/gen" tests/cuda/compare.cu "$dir/compare" >>"$dir/build.log" 2>&1 ||
      echo "$m ($p): $(tail -5 "$dir/build.log")" >"$dir/failed" ) &
done
for c in $steps; do
  m=${c%%:*} b=${c#*:} dir="$out/step/${c%%:*}"
  spec="specs/$m.ae"
  [ -f "$spec" ] || spec="tests/cuda/$m.ae"
  mkdir -p "$dir"
  ( bin/aec build --target cuda --no-compile --batch "$b" --out "$dir/gen" "$spec" >"$dir/build.log" 2>&1 &&
      build_with "$dir/gen" tests/cuda/compare.cu "$dir/compare" >>"$dir/build.log" 2>&1 &&
      build_with "$dir/gen" tests/cuda/on_device.cu "$dir/on_device" >>"$dir/build.log" 2>&1 ||
      echo "$m: $(tail -5 "$dir/build.log")" >"$dir/failed" ) &
done
wait
failed=$(cat "$out"/bench/*/failed* "$out"/step/*/failed 2>/dev/null || true)
[ -z "$failed" ] || fail "a build failed: $failed"
echo "built by nvcc for $arch: the trainers of $bench, the comparison of $steps ($(elapsed))"
[ $build_only = 0 ] || exit 0

# (2) one step, then ten training steps on random batches (the spec's optimizer and SGD, as
#     tests/cuda/specs.sh; the full U-Net two, within its wider bounds), the GPU against the CPU target
for c in $steps; do
  m=${c%%:*} more="10 1e-2 1e-2" t=$tol
  [ "$m" != unet_landcover ] || more="2 5e-2 2e-2" t=5e-5
  # shellcheck disable=SC2086
  r=$("$out/step/$m/compare" "$t" $more) || fail "$m: the GPU's steps differ from the CPU target's: $r"
  echo "$m (batch ${c#*:}): $r"
  "$out/step/$m/on_device" >"$out/step/$m/on_device.log" 2>&1 ||
    fail "$m: the finite check or the clipping on the GPU differs from the host's: $(cat "$out/step/$m/on_device.log")"
done
echo "the finite check and the clipping on the GPU give the host's answers, bit for bit"
echo "one step agrees within $tol ($(elapsed))"
for c in $low; do   # 2 sqrt(u) of the format; over 1e-4 from fp32 (compare.cu --low)
  m=${c%%:*} p=${c##*:}
  ltol=$([ $p = tf32 ] && echo 0.044 || echo 0.125)
  r=$("$out/step/$m-$p/compare" "$ltol" --low 1e-4) || fail "$m ($p): one step on the GPU is not within $ltol of fp32, or not over 1e-4 from it: $r"
  echo "$m ($p): $r"
done
echo "tf32 and bf16 steps within 2 sqrt(u) of the CPU's fp32 step ($(elapsed))"
for m in dense_ae conv_ae; do
  r=$("$out/step/$m-cublaslt/compare" "$tol") || fail "$m (--gemm cublaslt): one step differs on the GPU: $r"
  echo "$m (cublaslt): $r"
done
echo "--gemm cublaslt: one step agrees within $tol ($(elapsed))"

# (3) ten steps of the GPU trainer against the CPU trainer
train_cases="unet_landcover_small:2"
[ -d /usr/share/datasets/fashion-mnist ] && train_cases="$train_cases dense_ae:8 vae:8 conv_ae:4"
for c in $train_cases; do
  m=${c%%:*} b=${c#*:} dir="$out/train/${c%%:*}"
  mkdir -p "$dir"
  ( cd "$dir" && "$root/bin/aec" build --batch "$b" --out cpu "$root/specs/$m.ae" >build-cpu.log 2>&1 &&
      NVCC=$nvcc "$root/bin/aec" build --target cuda --batch "$b" --out cuda "$root/specs/$m.ae" >build-cuda.log 2>&1 ) ||
    fail "$m: the trainers did not build: $(tail -5 "$dir"/build-*.log)"
  train="train --epochs 1 --limit $((11 * b)) --seed 3 --threads 1 --quiet"   # 11 steps, 10 where a tenth is held out
  # shellcheck disable=SC2086
  "$dir/bin/$m" $train --out "$dir/run-cpu" >"$dir/cpu.log" 2>&1 || fail "$m: the CPU trainer failed: $(tail -5 "$dir/cpu.log")"
  # shellcheck disable=SC2086
  "$dir/bin/$m-cuda" $train --out "$dir/run-gpu" >"$dir/gpu.log" 2>&1 || fail "$m: the GPU trainer failed: $(tail -5 "$dir/gpu.log")"
  # shellcheck disable=SC2086
  AEC_CUDA_GRAPH=0 "$dir/bin/$m-cuda" $train --out "$dir/run-plain" >"$dir/plain.log" 2>&1 ||
    fail "$m: the GPU trainer without graphs failed: $(tail -5 "$dir/plain.log")"
  [ "$(sed 's/,[^,]*$//' "$dir/run-gpu/train.csv")" = "$(sed 's/,[^,]*$//' "$dir/run-plain/train.csv")" ] &&
    cmp -s "$dir/run-gpu/last.ckpt" "$dir/run-plain/last.ckpt" ||
    fail "$m: graph replays and plain launches (AEC_CUDA_GRAPH=0) differ on the GPU"
  # shellcheck disable=SC2086
  if "$dir/bin/$m-cuda" $train --device 99 --out "$dir/run-99" >"$dir/dev99.log" 2>&1 ||
    ! grep -q "device number from 0 to .* (this machine has [0-9]* device" "$dir/dev99.log"; then
    fail "$m: --device 99 was not refused with the device count: $(cat "$dir/dev99.log")"
  fi
  worst=$(paste -d, "$dir/run-cpu/train.csv" "$dir/run-gpu/train.csv" | awk -F, -f tests/cuda/max_rel.awk)
  awk -v w="$worst" -v t="$steps_tol" 'BEGIN { exit !(w <= t) }' ||
    fail "$m: the losses of ten steps differ by $worst relative (over $steps_tol)"
  echo "$m (batch $b): $(tail -1 "$dir/run-gpu/train.csv" | cut -d, -f2) steps, losses within $worst relative; graphs = plain launches"
done
echo "ten steps agree within $steps_tol ($(elapsed))"

# (4) compute-sanitizer on one step (racecheck, much the slower, on the two smaller models)
sanitizer=${SANITIZER:-$(command -v compute-sanitizer || echo "$(dirname "$nvcc")/compute-sanitizer")}
[ -x "$sanitizer" ] || fail "no compute-sanitizer at $sanitizer (SANITIZER=path overrides)"
for check in memcheck:"conv_ae seg_ops unet_landcover_small" racecheck:"conv_ae seg_ops"; do
  tool=${check%%:*}
  for m in ${check#*:}; do
    "$sanitizer" --tool "$tool" --error-exitcode 1 "$out/step/$m/compare" "$tol" >"$out/step/$m/$tool.log" 2>&1 ||
      fail "$m: compute-sanitizer --tool $tool: $(grep -m5 -iE "error|race|hazard" "$out/step/$m/$tool.log")"
  done
  echo "compute-sanitizer --tool $tool: no errors in one step of ${check#*:} ($(elapsed))"
done

# (5) the bench models against PyTorch on this GPU
results="$out/results.jsonl"
: >"$results"
for c in $bench; do
  m=${c%%:*} b=${c#*:}
  for t in aec_cuda_step aec_cuda_step_tf32 aec_cuda_step_bf16 aec_cuda_step_cublaslt; do "$out/bench/$m/$t" 20 | tee -a "$results"; done
  "$python" bench/torch_gpu.py --model "$m" --batch "$b" --steps 20 | tee -a "$results"
done
"$python" bench/gpu_report.py "$results" "$gpu" bench/GPU_RESULTS.md
echo "wrote bench/GPU_RESULTS.md ($(elapsed))"
