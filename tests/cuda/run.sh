#!/bin/sh
# The CUDA side without a GPU: the emulator (runtime/cuda_emu.h) runs tests/cuda/emu_test.cu
# as host C++ in the three thread orders and must match plain C loops bitwise; with one
# barrier left out the tiled SGEMM must go wrong in every order; built with ucontext's
# switch instead of its own (as on other architectures) it must still match; under ASan and UBSan it
# must run clean, and ASan must name the kernel line of a read past the end; each mistake
# the emulator promises to catch must stop it with its message; and nvcc must compile the
# same file for sm_90 and sm_80 without register spills or a local-memory stack frame.
set -eu
cd "$(dirname "$0")/../.."
nvcc=${NVCC:-/usr/local/cuda/bin/nvcc}
[ -x "$nvcc" ] || { echo "tests/cuda: no nvcc at $nvcc: the CUDA Toolkit is needed (it lives in /usr/local/cuda on every machine of the project; NVCC=path overrides)"; exit 1; }
out=build/cuda
mkdir -p "$out"
src=tests/cuda/emu_test.cu
cxx="${CXX:-g++} -std=gnu++20 -fopenmp -Iruntime -x c++"
fail() { echo "tests/cuda: $*"; exit 1; }

$cxx -O2 -Wall -Wextra -Werror "$src" -o "$out/emu_test"
$cxx -O2 -DDROP_BARRIER "$src" -o "$out/emu_drop"
$cxx -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined "$src" -o "$out/emu_asan"
$cxx -O2 -DAECU_UCONTEXT "$src" -o "$out/emu_ucontext"   # the switch of other architectures

for order in forward reverse random; do
  got=$(AECU_ORDER=$order AECU_SEED=7 "$out/emu_test") || fail "the kernels in $order order: $got"
  [ "$got" = ok ] || fail "the kernels in $order order: $got"
  if AECU_ORDER=$order "$out/emu_drop" >"$out/drop.log" 2>&1; then fail "without its second barrier, sgemm_tiled still matched in $order order"; fi
  grep -q "sgemm_tiled: .* differ" "$out/drop.log" || fail "without a barrier ($order): $(cat "$out/drop.log")"
done
got=$(AECU_ORDER=random "$out/emu_ucontext") && [ "$got" = ok ] || fail "with ucontext's switch: $got"
echo "emulator: kernels bitwise equal to C in forward, reverse and random order (ucontext's switch too); a missing barrier caught in each"

ASAN_OPTIONS=detect_leaks=1 "$out/emu_asan" >"$out/asan.log" 2>&1 || fail "under ASan and UBSan: $(grep -v WARNING "$out/asan.log" | head -20)"
if "$out/emu_asan" out-of-bounds >"$out/oob.log" 2>&1; then fail "a read past the end of device memory went unseen by ASan"; fi
grep -q "heap-buffer-overflow" "$out/oob.log" && grep -q "in read_past_end.*emu_test.cu:" "$out/oob.log" ||
  fail "ASan did not name the kernel line of the read past the end: $(head -20 "$out/oob.log")"
echo "emulator: clean under ASan and UBSan; ASan names the kernel line of a read past the end"

expect() {   # case, words of the message
  code=0
  "$out/emu_test" "$1" >"$out/$1.log" 2>&1 || code=$?
  [ $code -eq 3 ] || fail "the mistake '$1' ended with status $code, not 3: $(cat "$out/$1.log")"
  grep -q "$2" "$out/$1.log" || fail "the mistake '$1' said: $(cat "$out/$1.log") (expected: $2)"
}
expect partial-barrier "__syncthreads reached by 16 of the block's 32 threads"
expect host-pointer "argument 0 .* is a host pointer"
expect memcpy-direction "cudaMemcpyDeviceToHost of 256 bytes from host memory to device memory"
expect block-too-big "a block of 2048x1x1 threads"
expect shared-too-big "65536 bytes of dynamic shared memory, over the 49152 allowed"
expect warp-deadlock "deadlock"
expect captured-pageable-copy "captured into a graph reads or writes pageable host memory"
expect legacy-stream-in-capture "legacy default stream .* while a stream is captured"
expect free-host "cudaFreeHost(.*): not a pointer cudaMallocHost returned"
expect null-event "cudaStreamWaitEvent on a null event"
expect stack-overflow "kernel deep_stack, block (0,0,0), thread (0,0,0)"
grep -q "overflowed its stack" "$out/stack-overflow.log" || fail "a stack overflow was not named: $(cat "$out/stack-overflow.log")"
echo "emulator: partial barrier, host pointer, copy direction, launch limits, a warp deadlock, graph capture mistakes, a stray cudaFreeHost, a null event and a stack overflow reported"

for arch in sm_90 sm_80; do
  "$nvcc" -std=c++17 -O3 -arch=$arch -Xptxas -v -Iruntime -c "$src" -o "$out/emu_test_$arch.o" >"$out/ptxas_$arch.log" 2>&1 ||
    fail "nvcc -arch=$arch: $(tail -20 "$out/ptxas_$arch.log")"
  bad=$(grep -E "bytes stack frame|spill" "$out/ptxas_$arch.log" | grep -vE "^ *0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads" || true)
  [ -z "$bad" ] || fail "nvcc -arch=$arch: spills or a stack frame: $bad"
done
echo "nvcc: the test kernels compile for sm_90 and sm_80 without spills or stack frames"
