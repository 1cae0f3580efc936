#!/bin/sh
# nvcc_specs.sh - every example spec's model.cu, as committed in generated/ (the spec's own
# batch: what a user builds), compiled by nvcc for sm_90 and sm_80 with -Xptxas -v (device
# code only, -cubin): no kernel may spill registers, need a local-memory stack frame or use
# more than 48 KiB of shared memory (tests/cuda/ptxas.sh), and the launch table of
# generated/<model>/manifest.json must name only kernels ptxas compiled, each with the
# static shared memory ptxas counts (tests/cuda/launch_check.awk). tests/cuda/target.sh and
# tests/cuda/specs.sh run the same kernels at small batches under the emulator.
#   tests/cuda/nvcc_specs.sh [MODEL...]      (part of make test)
set -eu
cd "$(dirname "$0")/../.."
nvcc=${NVCC:-/usr/local/cuda/bin/nvcc}
[ -x "$nvcc" ] || { echo "tests/cuda/nvcc_specs.sh: no nvcc at $nvcc: the CUDA Toolkit is needed (NVCC=path overrides)"; exit 1; }
out=build/nvcc-specs
rm -rf "$out"
mkdir -p "$out"
fail() { echo "tests/cuda/nvcc_specs.sh: $*"; exit 1; }
. tests/cuda/ptxas.sh
models=${*:-$(for d in generated/*/model.cu; do basename "$(dirname "$d")"; done)}
count=0 kernels=0 regs=0 smem=0
for name in $models; do
  dir=generated/$name
  [ -f "$dir/model.cu" ] || fail "$name: no $dir/model.cu (make generated)"
  for arch in sm_90 sm_80; do   # both at once
    "$nvcc" -std=c++17 -O3 -arch=$arch -Xptxas -v -Iruntime -I"$dir" -cubin -o "$out/${name}_$arch.cubin" "$dir/model.cu" \
      >"$out/${name}_$arch.log" 2>&1 &
  done
  wait
  for arch in sm_90 sm_80; do
    [ -s "$out/${name}_$arch.cubin" ] || fail "$name: nvcc -arch=$arch: $(tail -20 "$out/${name}_$arch.log")"
    ptxas_check "$name: nvcc -arch=$arch" "$out/${name}_$arch.log" >"$out/why" || fail "$(cat "$out/why")"
    [ "$ptxas_smem" -le "$smem" ] || smem=$ptxas_smem
  done
  launches=$(awk -v REGS=0 -f tests/cuda/launch_check.awk "$out/${name}_sm_90.log" "$dir/manifest.json") ||
    fail "$name: generated/$name/manifest.json's launch table disagrees with ptxas: $launches"
  k=$(grep -c "Compiling entry" "$out/${name}_sm_90.log")
  r=$(grep -oE "Used [0-9]+ registers" "$out/${name}_sm_90.log" | awk '$2 > m { m = $2 } END { print m + 0 }')
  count=$((count + 1)) kernels=$((kernels + k))
  [ "$r" -le "$regs" ] || regs=$r
done
echo "nvcc: $count example specs' model.cu for sm_90 and sm_80, $kernels kernels (sm_90): no spill, no stack frame," \
  "at most $regs registers and $smem bytes of shared memory; every manifest's launch table agrees with ptxas"
