#!/bin/sh
# The CUDA trainer's step without needless host round trips, under the emulator:
#  (a) a replayed CUDA graph computes what plain launches compute: tests/cuda/graph_random.ae
#      (gaussian noise, dropout and sampling, whose seeds change every step, and Adam, whose
#      bias corrections do) and tests/cuda/dense_clip.ae (accumulation, clipping, SGD with
#      Nesterov) train the same epoch with graphs (the default) and with AEC_CUDA_GRAPH=0:
#      train.csv's losses and the checkpoints must be byte for byte equal, and only the first
#      run may have replayed graphs (AECU_REPORT=1 counts them);
#  (b) the finite check and the clipping run on the device: tests/cuda/on_device.cu finds the
#      first NaN or infinity of the gradient arena as the CPU device does, with and without
#      graphs, and the clipping kernels give optim.c's clipped gradient bit for bit;
#  (c) --device: 0 is taken, 1 is refused with the number of devices (the emulator has one),
#      and the CPU trainer refuses the option, naming the CUDA trainers; a wrong
#      AEC_CUDA_GRAPH is refused by name.
set -eu
cd "$(dirname "$0")/../.."
. tests/cuda/cpu_direct.sh   # the CPU side without Winograd (CC)
root=$(pwd)
out=build/cuda-graph
rm -rf "$out"
mkdir -p "$out"
fail() { echo "tests/cuda/graph.sh: $*"; exit 1; }
libs="build/libaert.a -lopenblas -ltiff -lpng -lz -lpthread -lm"
train="train --epochs 1 --limit 64 --seed 3 --threads 1 --quiet"

# train.csv without its last column (seconds)
losses() { sed 's/,[^,]*$//' "$1"; }

for name in graph_random dense_clip; do
  dir="$out/$name"
  mkdir -p "$dir"
  ( cd "$dir" && "$root/bin/aec" build --target cuda --emulate --batch 8 --out cuda "$root/tests/cuda/$name.ae" >build.log 2>&1 ) ||
    fail "$name: the emulated CUDA trainer did not build: $(tail -5 "$dir/build.log")"
  AECU_REPORT=1 "$dir/bin/$name-cuda-emu" $train --device 0 --out "$dir/graph" >"$dir/graph.log" 2>&1 ||
    fail "$name: training with graphs failed: $(tail -5 "$dir/graph.log")"
  AECU_REPORT=1 AEC_CUDA_GRAPH=0 "$dir/bin/$name-cuda-emu" $train --out "$dir/plain" >"$dir/plain.log" 2>&1 ||
    fail "$name: training with plain launches failed: $(tail -5 "$dir/plain.log")"
  replays=$(sed -n 's/^cuda_emu: \([0-9]*\) graph launches.*/\1/p' "$dir/graph.log")
  [ "${replays:-0}" -gt 0 ] || fail "$name: the default run replayed no graph: $(tail -3 "$dir/graph.log")"
  ! grep -q "graph launches" "$dir/plain.log" || fail "$name: AEC_CUDA_GRAPH=0 still replayed graphs"
  [ "$(losses "$dir/graph/train.csv")" = "$(losses "$dir/plain/train.csv")" ] ||
    fail "$name: the losses of graph replays and plain launches differ:
$(cat "$dir/graph/train.csv" "$dir/plain/train.csv")"
  for f in last.ckpt best.ckpt; do
    cmp -s "$dir/graph/$f" "$dir/plain/$f" || fail "$name: $f differs between graph replays and plain launches"
  done
  echo "$name: $replays graph replays give the plain launches' losses and checkpoints, bit for bit"
done

# (b) the finite check and the clipping, on graph_random's device
dir="$out/graph_random"
${CC:-cc} -O2 -fopenmp -std=gnu11 -DAEC_NO_MAIN -Iruntime -I"$dir/cuda" -c -o "$dir/model_cpu.o" "$dir/cuda/model.c" ||
  fail "graph_random: model.c did not compile"
${CXX:-g++} -std=gnu++20 -O2 -fopenmp -Wall -Wextra -Werror -Wno-unused-parameter -Iruntime -I"$dir/cuda" -o "$dir/on_device" \
  -x c++ tests/cuda/on_device.cu -x none "$dir/model_cpu.o" $libs || fail "tests/cuda/on_device.cu did not build"
for g in 1 0; do
  AEC_CUDA_GRAPH=$g "$dir/on_device" >"$dir/on_device-$g.log" 2>&1 ||
    fail "the device's finite check or clipping (AEC_CUDA_GRAPH=$g) differs from the host's: $(cat "$dir/on_device-$g.log")"
done
echo "the finite check on the device finds the CPU device's first NaN or infinity, with and without graphs; the clipping kernels give optim.c's bits"

# (c) --device and AEC_CUDA_GRAPH
emu="$dir/bin/graph_random-cuda-emu"
code=0
"$emu" $train --device 1 --out "$dir/dev1" >"$dir/dev1.log" 2>&1 || code=$?
[ $code -eq 2 ] || fail "--device 1 on the emulator ended with status $code, not 2: $(cat "$dir/dev1.log")"
grep -q "aec: --device expects a CUDA device number from 0 to 0 (this machine has 1 device), got '1'" "$dir/dev1.log" ||
  fail "--device 1 said: $(cat "$dir/dev1.log")"
"$emu" train --help | grep -q -- "--device   N     the CUDA device to run on" || fail "the CUDA trainer's help does not list --device"
code=0
AEC_CUDA_GRAPH=yes "$emu" $train --out "$dir/badenv" >"$dir/badenv.log" 2>&1 || code=$?
[ $code -ne 0 ] && grep -q "AEC_CUDA_GRAPH must be 1 .* or 0 .*, got 'yes'" "$dir/badenv.log" ||
  fail "AEC_CUDA_GRAPH=yes (status $code) said: $(cat "$dir/badenv.log")"
( cd "$dir" && "$root/bin/aec" build --batch 8 --out cpu "$root/tests/cuda/graph_random.ae" >build-cpu.log 2>&1 ) ||
  fail "the CPU trainer did not build: $(tail -5 "$dir/build-cpu.log")"
code=0
"$dir/bin/graph_random" $train --device 0 --out "$dir/cpu" >"$dir/cpu.log" 2>&1 || code=$?
[ $code -eq 2 ] && grep -q "option '--device' is an option of the CUDA trainers (bin/graph_random-cuda, bin/graph_random-cuda-emu)" "$dir/cpu.log" ||
  fail "the CPU trainer's --device (status $code) said: $(cat "$dir/cpu.log")"
echo "--device: listed by the CUDA trainer's help, 0 taken, 1 refused with the emulator's one device; the CPU trainer refuses it; AEC_CUDA_GRAPH=yes refused"
