#!/bin/sh
# The CUDA target (aec build --target cuda) without a GPU. For each example spec it
# supports, at a small batch:
#  (a) nvcc compiles its model.cu for sm_90 and sm_80 with -Xptxas -v, and no kernel
#      spills registers, needs a local-memory stack frame or more than 48 KiB of shared memory;
#      manifest.json's launch table names only kernels ptxas compiled, with ptxas's static
#      shared memory, and says that registers were not measured (no nvcc in aec build);
#  (b) with the emulator's threads in forward, reverse and random order: one training step of
#      the CUDA kernels under the emulator (tests/cuda/compare.cu) gives the CPU target's loss
#      terms, output, latent and parameter gradients within 1e-5 (relative to each tensor's
#      largest value); ten training steps on random batches (the CPU device against model.cu's,
#      which takes the CPU's parameters again after each update: tests/cuda/compare.cu says
#      why) keep every loss within 1e-5 and every update of the whole model within 1e-2 in
#      the 2-norm, with the spec's optimizer and with plain SGD; in forward and reverse order the emulated trainer
#      (--emulate: the same model.cu as host C++
#      under cuda_emu.h) and the CPU trainer train one seed on Fashion-MNIST with every loss
#      of their train.csv (train loss, its terms, validation loss) within 1e-5 relative.
#      Their training steps take their batches from the IDX set the device keeps (the
#      device's counters, AEC_CUDA_FEED, say so). Training runs few steps: Adam turns rounding-level differences of gradients that are
#      nearly zero into steps of the learning rate, so longer runs drift apart (conv_ae by
#      1e-4 after ten steps) although each step agrees;
#  (b') for the cases trained two epochs, one checkpoint format: the CPU trainer trains one
#      epoch and the emulated trainer (model.cu's device) resumes for the second, and the
#      reverse; both agree with the uninterrupted CPU run within 1e-5 relative;
#  (c) what the target does not have (--mpi; every op and loss of a spec is in) is refused, and
#      nothing is written;
#  (d) without --emulate, nvcc builds and links the real trainer (bin/dense_ae-cuda), which
#      answers --help here (training needs a GPU); its manifest.json has ptxas's registers.
# Trainers are built inside build/cuda-target, so bin/ keeps the full-batch trainers.
set -eu
cd "$(dirname "$0")/../.."
. tests/cuda/cpu_direct.sh   # the CPU side without Winograd (CC)
root=$(pwd)
nvcc=${NVCC:-/usr/local/cuda/bin/nvcc}
[ -x "$nvcc" ] || { echo "tests/cuda/target.sh: no nvcc at $nvcc (NVCC=path overrides)"; exit 1; }
out=build/cuda-target
rm -rf "$out"
mkdir -p "$out"
fail() { echo "tests/cuda/target.sh: $*"; exit 1; }
. tests/cuda/ptxas.sh

# spec:batch:examples:epochs (examples: --limit, a tenth of them the validation split; 0
# epochs: the one-step comparison alone). A spec is specs/NAME.ae, else tests/cuda/NAME.ae.
cases=${CUDA_TARGET_CASES:-"dense_ae:8:64:2 vae:8:64:2 dense_clip:8:64:2 conv_ae:4:24:1 denoising_skip:4:0:0 conv_ae_transpose:4:0:0 unet_landcover_small:2:0:0 ops:4:0:0 seg_ops:3:0:0"}
cxx="${CXX:-g++} -std=gnu++20 -O2 -march=native -fopenmp -Wall -Wextra -Werror -Wno-unused-parameter -Iruntime"
libs="build/libaert.a -lopenblas -ltiff -lpng -lz -lpthread -lm"
tol=1e-5
# each update of the whole model, |u_cpu - u_cuda| / |u_cpu|: with the spec's optimizer and
# with plain SGD (rounding 1e-6 to 5e-5; a ReLU meeting its kink, img2img, 3.3e-3); tests/cuda/specs.sh
step_tol=${STEP_TOL:-1e-2} sgd_tol=${SGD_TOL:-1e-2}

# The largest relative difference between the losses of two train.csv files
# (tests/cuda/max_rel.awk; tests/gpu/run.sh uses it too).
max_rel() { paste -d, "$1" "$2" | awk -F, -f tests/cuda/max_rel.awk; }

within() { awk -v w="$1" -v t="$tol" 'BEGIN { exit !(w <= t) }'; }

for c in $cases; do
  name=${c%%:*}; rest=${c#*:}; batch=${rest%%:*}; rest=${rest#*:}; limit=${rest%%:*}; epochs=${rest#*:}
  dir="$out/$name"
  spec="$root/specs/$name.ae"
  [ -f "$spec" ] || spec="$root/tests/cuda/$name.ae"
  mkdir -p "$dir"
  if [ "$epochs" -gt 0 ]; then
    # the CPU target's model.c; its trainer is linked below from model_cpu.o, since the CUDA
    # target's model.c (the descriptor and the CPU decoder) is the same file
    "$root/bin/aec" build --no-compile --batch "$batch" --out "$dir/cpu" "$spec" >"$dir/build-cpu.log" 2>&1 ||
      fail "$name: the CPU target's model.c was not generated: $(tail -5 "$dir/build-cpu.log")"
    ( cd "$dir" && "$root/bin/aec" build --target cuda --emulate --batch "$batch" --out cuda "$spec" >build-cuda.log 2>&1 ) ||
      fail "$name: the emulated CUDA trainer did not build: $(tail -5 "$dir/build-cuda.log")"
  else
    "$root/bin/aec" build --target cuda --no-compile --batch "$batch" --out "$dir/cuda" "$spec" >"$dir/build-cuda.log" 2>&1 ||
      fail "$name: model.cu was not generated: $(tail -5 "$dir/build-cuda.log")"
  fi
  [ ! -e "$dir/cuda/model_cpu.o" ] && [ ! -e "$dir/bin/$name-cuda.o" ] || fail "$name: aec build left model.c's object behind"
  ${CC:-cc} -O3 -march=native -fopenmp -std=gnu11 -DAEC_NO_MAIN -Iruntime -I"$dir/cuda" -c -o "$dir/model_cpu.o" "$dir/cuda/model.c" ||
    fail "$name: model.c did not compile"
  if [ "$epochs" -gt 0 ]; then   # the CPU trainer: model.c with the main aec build gives it
    mkdir -p "$dir/bin"
    for f in model.c model.h; do
      cmp -s "$dir/cpu/$f" "$dir/cuda/$f" || fail "$name: the CPU and CUDA targets wrote different $f ($dir/cpu, $dir/cuda)"
    done
    ${CC:-cc} -fopenmp -std=gnu11 -Wall -Wextra -Werror -Iruntime -o "$dir/bin/$name" tests/specgen/trainer_main.c "$dir/model_cpu.o" $libs ||
      fail "$name: the CPU trainer did not link"
  fi

  for arch in sm_90 sm_80; do   # both at once
    "$nvcc" -std=c++17 -O3 -arch=$arch -Xptxas -v -Iruntime -I"$dir/cuda" -c "$dir/cuda/model.cu" -o "$dir/model_$arch.o" \
      >"$dir/ptxas_$arch.log" 2>&1 &
  done
  wait
  for arch in sm_90 sm_80; do
    [ -s "$dir/model_$arch.o" ] || fail "$name: nvcc -arch=$arch: $(tail -20 "$dir/ptxas_$arch.log")"
    why=$(ptxas_check "$name: nvcc -arch=$arch" "$dir/ptxas_$arch.log") || fail "$why"
  done
  smem=$(ptxas_check "$name" "$dir/ptxas_sm_90.log"; echo "$ptxas_smem")
  launches=$(awk -v REGS=0 -f tests/cuda/launch_check.awk "$dir/ptxas_sm_90.log" "$dir/cuda/manifest.json") ||
    fail "$name: manifest.json's launch table disagrees with ptxas: $launches"
  grep -q '"registers": "not measured: ' "$dir/cuda/manifest.json" || fail "$name: manifest.json does not say its registers were not measured"
  kernels=$(grep -c "Compiling entry" "$dir/ptxas_sm_90.log")
  regs=$(grep -oE "Used [0-9]+ registers" "$dir/ptxas_sm_90.log" | awk '$2 > m { m = $2 } END { print m + 0 }')

  $cxx -I"$dir/cuda" -o "$dir/compare" -x c++ tests/cuda/compare.cu -x none "$dir/model_cpu.o" $libs ||
    fail "$name: tests/cuda/compare.cu did not build"
  train="train --epochs $epochs --limit $limit --seed 3 --threads 1 --quiet"
  if [ "$epochs" -gt 0 ]; then
    "$dir/bin/$name" $train --out "$dir/run-cpu" >"$dir/cpu.log" 2>&1 || fail "$name: the CPU trainer failed: $(tail -5 "$dir/cpu.log")"
  fi
  report="$name (batch $batch):"
  for order in forward reverse random; do
    more=""; [ "$order" != forward ] || more="10 $step_tol $sgd_tol"   # ten steps once: every order gives the same bits
    step=$(AECU_ORDER=$order AECU_SEED=5 OMP_NUM_THREADS=1 "$dir/compare" $tol $more) || fail "$name: one step differs in $order order: $step"
    report="$report step ($order): $(echo "$step" | tr '\n' ' ');"
    [ "$epochs" -gt 0 ] && [ "$order" != random ] || continue
    AEC_CUDA_FEED=1 AECU_ORDER=$order "$dir/bin/$name-cuda-emu" $train --out "$dir/run-$order" >"$dir/$order.log" 2>&1 ||
      fail "$name: the emulated trainer failed in $order order: $(tail -5 "$dir/$order.log")"
    # every training step's batch made on the device from the kept IDX set (tests/cuda/data.sh)
    steps=$(tail -1 "$dir/run-$order/train.csv" | cut -d, -f2)
    grep -q "; $steps kept batches, $((steps * batch * 4)) bytes of indices;" "$dir/$order.log" ||
      fail "$name: $steps training steps, but not each from the kept set: $(grep "aec cuda feed" "$dir/$order.log")"
    worst=$(max_rel "$dir/run-cpu/train.csv" "$dir/run-$order/train.csv")
    within "$worst" ||
      fail "$name: losses differ by $worst relative in $order order (over $tol):
$(cat "$dir/run-cpu/train.csv")
$(cat "$dir/run-$order/train.csv")"
    report="$report training ($order): losses within $worst;"
  done
  if [ "$epochs" -gt 1 ]; then   # one checkpoint format: the CPU trainer's resumes on the device, and back
    report="$report resumed after epoch 1:"
    for from in "$name" "$name-cuda-emu"; do
      to=$name; [ "$from" != "$name" ] || to=$name-cuda-emu
      "$dir/bin/$from" ${train%--epochs*}--epochs 1 ${train#*--epochs $epochs} --out "$dir/run-$from" >"$dir/resume.log" 2>&1 &&
        "$dir/bin/$to" $train --resume --out "$dir/run-$from" >>"$dir/resume.log" 2>&1 ||
        fail "$name: $from for one epoch, then $to with --resume, failed: $(tail -5 "$dir/resume.log")"
      worst=$(max_rel "$dir/run-cpu/train.csv" "$dir/run-$from/train.csv")
      within "$worst" ||
        fail "$name: $from for one epoch, then $to: losses differ by $worst relative from the uninterrupted run (over $tol)"
      report="$report $from -> $to within $worst;"
    done
  fi
  echo "$report
  $kernels kernels, at most $regs registers and $smem bytes of shared memory on sm_90; manifest.json: $launches"
done

# (c) refusal: every op and loss of a spec is in the target now (tests/cuda/seg_ops.ae holds the
# last ones added); what it still lacks is data-parallel training, refused before anything is written
if bin/aec build --target cuda --mpi --no-compile --out "$out/refused" specs/dense_ae.ae >"$out/refused.log" 2>&1; then
  fail "aec build --target cuda --mpi was not refused"
fi
grep -q "data-parallel training (--mpi) is not in the CUDA target yet" "$out/refused.log" ||
  fail "the refusal of --mpi does not name it: $(cat "$out/refused.log")"
[ ! -e "$out/refused/model.cu" ] || fail "a refused build still wrote model.cu"
echo "what is not in the CUDA target (--mpi) is refused, and nothing is written"

# (d) the real trainer links
mkdir -p "$out/dense_ae"
( cd "$out/dense_ae" && "$root/bin/aec" build --target cuda --batch 8 --out nvcc "$root/specs/dense_ae.ae" >build-nvcc.log 2>&1 ) ||
  fail "nvcc did not build bin/dense_ae-cuda: $(tail -5 "$out/dense_ae/build-nvcc.log")"
"$out/dense_ae/bin/dense_ae-cuda" --help | grep -q "model dense_ae" || fail "bin/dense_ae-cuda --help does not name its model"
# its manifest has ptxas's registers (the one-step case above compiled the same model.cu)
if [ -f "$out/dense_ae/ptxas_sm_90.log" ]; then
  regs=$(awk -v REGS=1 -f tests/cuda/launch_check.awk "$out/dense_ae/ptxas_sm_90.log" "$out/dense_ae/nvcc/manifest.json") ||
    fail "bin/dense_ae-cuda's manifest.json: $regs"
else   # dense_ae was not among the cases: registers at least
  regs="$(grep -c '"registers": [0-9]' "$out/dense_ae/nvcc/manifest.json") kernels with registers"
  ! grep -q '"registers": null' "$out/dense_ae/nvcc/manifest.json" || fail "bin/dense_ae-cuda's manifest.json lacks registers"
fi
grep -q '"registers": "ptxas -v' "$out/dense_ae/nvcc/manifest.json" || fail "bin/dense_ae-cuda's manifest.json does not name ptxas"
echo "nvcc builds and links bin/dense_ae-cuda; its manifest.json's registers and shared memory: $regs"
