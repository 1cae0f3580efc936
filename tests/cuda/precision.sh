#!/bin/sh
# The CUDA target's --precision tf32 and bf16 (tensor cores through wmma) without a GPU:
#  (a) tests/cuda/wmma_test.cu under the emulator: aecd_gemm in tf32 and bf16 bitwise
#      equal to a C loop that rounds the operands as the format does and adds in the
#      emulator's order, in forward and reverse thread order; the conversions' rounding; a
#      wmma call that half a warp skips, and a load off 32 bytes, stop the emulator;
#  (b) nvcc compiles wmma_test and the tf32 and bf16 model.cu of dense_ae and conv_ae for
#      sm_90 and sm_80 with -Xptxas -v: no spill, no stack frame (tests/cuda/ptxas.sh), the
#      launch table of manifest.json (the tensor-core tiles' shared memory) as ptxas counts it, and
#      the PTX holds wmma.mma instructions (the tensor-core path is the one compiled);
#  (c) one training step under the emulator against the CPU target's fp32 step
#      (tests/cuda/compare.cu --low): within 2 sqrt(u) of the format (u = 2^-11 for tf32's
#      10-bit significand, 2^-8 for bf16's 7-bit one; measured about 0.9 sqrt(u): ReLUs whose
#      input is within rounding of zero pass a gradient in one precision and not in the other,
#      and their number grows with u), yet differing from it by more than 1e-4, ten times the
#      fp32 tolerance (an fp32 build differs by under 1e-6), and the fp32 optimizer within 1e-5;
#  (d) --gemm cublaslt (dense layers' GEMMs by cuBLASLt under nvcc): the model.cu of
#      dense_ae and conv_ae compile for sm_90 and sm_80 as in (b), the objects call
#      cublasLtMatmul, and aec build links bin/dense_ae-cuda with -lcublasLt (it answers
#      --help here); under the emulator the GEMM kernels run, which target.sh's fp32 checks
#      cover; the cuBLASLt path itself runs only on a GPU (tests/gpu/run.sh);
#  (e) the options: the CPU target and unknown values are refused with the accepted ones
#      named; model.cu's head and manifest.json say the precision and the GEMM library.
set -eu
cd "$(dirname "$0")/../.."
root=$(pwd)
nvcc=${NVCC:-/usr/local/cuda/bin/nvcc}
[ -x "$nvcc" ] || { echo "tests/cuda/precision.sh: no nvcc at $nvcc (NVCC=path overrides)"; exit 1; }
out=build/cuda-precision
rm -rf "$out"
mkdir -p "$out"
fail() { echo "tests/cuda/precision.sh: $*"; exit 1; }
. tests/cuda/ptxas.sh
cxx="${CXX:-g++} -std=gnu++20 -O2 -march=native -fopenmp -Wall -Wextra -Werror -Wno-unused-parameter -Iruntime"
libs="build/libaert.a -lopenblas -ltiff -lpng -lz -lpthread -lm"
upper() { echo "$1" | tr a-z A-Z; }

# (a) and (b) for wmma_test
for p in tf32 bf16; do   # (fp32 builds too; target.sh covers that GEMM)
  $cxx -DAECD_PRECISION=AECD_$(upper $p) -x c++ tests/cuda/wmma_test.cu -o "$out/wmma_$p" || fail "wmma_test.cu ($p) did not build"
  for order in forward reverse; do
    got=$(AECU_ORDER=$order OMP_NUM_THREADS=1 "$out/wmma_$p") || fail "wmma_test ($p, $order order): $got"
    [ "$got" = "ok $p" ] || fail "wmma_test ($p, $order order): $got"
  done
  for m in "divergent:the lanes of one warp are at different wmma calls" "misaligned:load_matrix_sync from a pointer that is not 32-byte aligned"; do
    code=0
    "$out/wmma_$p" "${m%%:*}" >"$out/$p-${m%%:*}.log" 2>&1 || code=$?
    [ $code -eq 3 ] && grep -q "${m#*:}" "$out/$p-${m%%:*}.log" ||
      fail "a ${m%%:*} wmma call ($p) was not stopped (status $code): $(cat "$out/$p-${m%%:*}.log")"
  done
  for arch in sm_90 sm_80; do
    "$nvcc" -std=c++17 -O3 -arch=$arch -Xptxas -v -Iruntime -DAECD_PRECISION=AECD_$(upper $p) -c tests/cuda/wmma_test.cu \
      -o "$out/wmma_${p}_$arch.o" >"$out/wmma_${p}_$arch.log" 2>&1 || fail "nvcc -arch=$arch wmma_test.cu ($p): $(tail -20 "$out/wmma_${p}_$arch.log")"
    why=$(ptxas_check "wmma_test ($p) for $arch" "$out/wmma_${p}_$arch.log") || fail "$why"
  done
done
echo "aecd_gemm: tf32 and bf16 bitwise equal to the rounded C loop in both orders; a divergent or misaligned wmma call stopped; nvcc clean"

# (b) and (c) for the models: spec:batch:precisions compared under the emulator
for c in dense_ae:8:tf32,bf16 conv_ae:4:bf16; do
  name=${c%%:*}; rest=${c#*:}; batch=${rest%%:*}; emulated=${rest#*:}
  report="$name (batch $batch):"
  for p in tf32 bf16 cublaslt; do
    dir="$out/$name-$p"
    flag="--precision $p"; [ $p = cublaslt ] && flag="--gemm cublaslt"
    # shellcheck disable=SC2086
    bin/aec build --target cuda $flag --no-compile --batch "$batch" --out "$dir" "specs/$name.ae" >"$dir.log" 2>&1 ||
      fail "$name ($p): model.cu was not generated: $(tail -5 "$dir.log")"
    for arch in sm_90 sm_80; do
      keep=""; [ $arch = sm_90 ] && keep="-keep -keep-dir $dir"
      "$nvcc" -std=c++17 -O3 -arch=$arch -Xptxas -v $keep -Iruntime -I"$dir" -c "$dir/model.cu" -o "$dir/model_$arch.o" \
        >"$dir/ptxas_$arch.log" 2>&1 &
    done
    wait
    for arch in sm_90 sm_80; do
      [ -s "$dir/model_$arch.o" ] || fail "$name ($p): nvcc -arch=$arch: $(tail -20 "$dir/ptxas_$arch.log")"
      why=$(ptxas_check "$name ($p): nvcc -arch=$arch" "$dir/ptxas_$arch.log") || fail "$why"
    done
    launches=$(awk -v REGS=0 -f tests/cuda/launch_check.awk "$dir/ptxas_sm_90.log" "$dir/manifest.json") ||
      fail "$name ($p): manifest.json's launch table disagrees with ptxas: $launches"
    if [ $p = cublaslt ]; then
      nm -u "$dir/model_sm_90.o" | grep -q cublasLtMatmul || fail "$name (cublaslt): model.cu does not call cublasLtMatmul"
      report="$report cublaslt: nvcc clean, calls cublasLtMatmul;"
      continue
    fi
    mma=$(cat "$dir"/*.ptx | grep -c "wmma.mma.sync" || true)
    [ "$mma" -gt 0 ] || fail "$name ($p): the PTX for sm_90 has no wmma.mma: the tensor-core GEMM was not compiled"
    report="$report $p: nvcc clean, $mma wmma.mma in the PTX;"
    case ",$emulated," in *,$p,*) ;; *) continue ;; esac
    [ -e "$out/$name.o" ] || ${CC:-cc} -O3 -march=native -fopenmp -std=gnu11 -DAEC_NO_MAIN -Iruntime -I"$dir" -c -o "$out/$name.o" "$dir/model.c" ||
      fail "$name: model.c did not compile"
    $cxx -I"$dir" -o "$out/compare-$name-$p" -x c++ tests/cuda/compare.cu -x none "$out/$name.o" $libs || fail "$name ($p): compare.cu did not build"
    tol=$([ $p = tf32 ] && echo 0.044 || echo 0.125)   # 2 sqrt(2^-11), 2 sqrt(2^-8)
    code=0
    step=$(OMP_NUM_THREADS=1 "$out/compare-$name-$p" $tol --low 1e-4) || code=$?
    [ $code -ne 4 ] || fail "$name ($p): one step equals the fp32 step to 1e-4: the tensor cores were not used: $step"
    [ $code -eq 0 ] || fail "$name ($p): one step differs from the CPU's fp32 step by more than $tol: $step"
    report="$report step within $tol: $step;"
  done
  echo "$report"
done

# (d) the cuBLASLt trainer links
( cd "$out" && "$root/bin/aec" build --target cuda --gemm cublaslt --batch 8 --out lt "$root/specs/dense_ae.ae" >lt.log 2>&1 ) ||
  fail "aec build --gemm cublaslt did not link bin/dense_ae-cuda: $(tail -5 "$out/lt.log")"
grep -q -- "-lcublasLt" "$out/lt.log" && "$out/bin/dense_ae-cuda" --help | grep -q "model dense_ae" ||
  fail "bin/dense_ae-cuda (--gemm cublaslt) was not linked with -lcublasLt or does not start"
echo "--gemm cublaslt: nvcc links bin/dense_ae-cuda with -lcublasLt"

# (e) the options
if bin/aec build --precision bf16 --no-compile --out "$out/refused" specs/dense_ae.ae >"$out/refused.log" 2>&1; then
  fail "aec build --precision bf16 (the CPU target) was not refused"
fi
grep -q "precision bf16 is for --target cuda; the CPU target computes in fp32 only" "$out/refused.log" ||
  fail "the CPU target's refusal of --precision bf16 says: $(cat "$out/refused.log")"
if bin/aec build --target cuda --precision fp16 --no-compile --out "$out/refused" specs/dense_ae.ae >"$out/refused.log" 2>&1; then
  fail "aec build --precision fp16 was not refused"
fi
grep -q "precision takes fp32, tf32 or bf16, not 'fp16'" "$out/refused.log" || fail "the refusal of --precision fp16 says: $(cat "$out/refused.log")"
if bin/aec build --gemm cublaslt --no-compile --out "$out/refused" specs/dense_ae.ae >"$out/refused.log" 2>&1; then
  fail "aec build --gemm cublaslt (the CPU target) was not refused"
fi
grep -q "gemm cublaslt is for --target cuda" "$out/refused.log" || fail "the CPU target's refusal of --gemm cublaslt says: $(cat "$out/refused.log")"
if bin/aec build --target cuda --gemm cublas --no-compile --out "$out/refused" specs/dense_ae.ae >"$out/refused.log" 2>&1; then
  fail "aec build --gemm cublas was not refused"
fi
grep -q "gemm takes kernels or cublaslt, not 'cublas'" "$out/refused.log" || fail "the refusal of --gemm cublas says: $(cat "$out/refused.log")"
[ ! -e "$out/refused" ] || fail "a refused build still wrote $out/refused"
grep -q '"precision": "bf16"' "$out/conv_ae-bf16/manifest.json" || fail "manifest.json does not say bf16"
grep -q '"gemm_library": "cublaslt"' "$out/conv_ae-cublaslt/manifest.json" || fail "manifest.json does not say cublaslt"
grep -q "^/\* gemm cublaslt: " "$out/conv_ae-cublaslt/model.cu" || fail "model.cu does not say it uses cuBLASLt"
grep -q "^#define AECD_PRECISION AECD_BF16" "$out/conv_ae-bf16/model.cu" && grep -q "^/\* precision bf16: every GEMM" "$out/conv_ae-bf16/model.cu" ||
  fail "model.cu does not say its precision"
echo "--precision and --gemm: the CPU target, fp16 and cublas refused; model.cu and manifest.json say the precision and the library"
