#!/bin/sh
# Generates each spec given (default: every spec in tests/specs/grad/), compiles its model.c
# in double around gradcheck.c (Winograd wherever the compiler emitted it, whatever this
# build's vectors would choose) and runs the finite-difference check, then compiles model.c
# in float with the trainer's flags (model.o) and compares its gradients with the double ones
# (gradcheck_f32.c). Fails if any gradient is wrong. AEC_CHECK_OUT names the build folder
# (default build/gradcheck).
set -eu
cd "$(dirname "$0")/../.."
out=${AEC_CHECK_OUT:-build/gradcheck}
mkdir -p "$out"
[ $# -gt 0 ] || set -- tests/specs/grad/*.ae
# the float check's harness: AEC_GRADCHECK_F32_O where the caller compiled it once (specgen
# does, for its hundreds of specs), else its source, compiled with each spec
f32=${AEC_GRADCHECK_F32_O:-tests/gradcheck/gradcheck_f32.c}
# The double build's optimisation: -O1 (the larger specs here check faster); specgen, whose
# tiny specs spend more in the compiler than in the check, gives -O0 (AEC_GRADCHECK_OPT).
opt=${AEC_GRADCHECK_OPT:--O1}
# One spec: the double check, then the float build against it; "name: FAILED" when either fails.
check() {
  name=$(basename "$1" .ae)
  bin/aec build --no-compile --out "$out/$name" "$1" >/dev/null || { echo "$name: FAILED (aec build)"; return; }
  ${CC:-cc} $opt -fopenmp -std=gnu11 -Wall -Wextra -Werror -Wno-unused-function -Wno-unused-const-variable \
    -DAERT_DOUBLE -DAERT_WINO_MIN=1 -DAERT_WINO2_MIN=1 -DAERT_WINO_DW_MIN=1 -DAERT_WINO2_DW_MIN=1 -DAEC_NO_MAIN -DAEC_MODEL_NAME="\"$name\"" \
    -Iruntime -I"$out/$name" \
    -o "$out/$name/gradcheck" tests/gradcheck/gradcheck.c build/libaert.a -lopenblas -ltiff -lpng -lz -lpthread -lm &&
    "$out/$name/gradcheck" "$out/$name/grad.f64" || echo "$name: FAILED (double)"
  # the same gradients from the trainer's own build: float, its compiler flags, model.c
  # compiled on its own ($out/$name/model.o, which tests/specgen links into its trainers)
  ${CC:-cc} -O3 -march=native -fopenmp -std=gnu11 -Wall -Wextra -Werror -DAEC_NO_MAIN -Iruntime -I"$out/$name" \
    -c -o "$out/$name/model.o" "$out/$name/model.c" &&
    ${CC:-cc} -O2 -fopenmp -std=gnu11 -Wall -Wextra -Werror -Wno-unused-function -Iruntime \
      -o "$out/$name/gradcheck_f32" "$f32" "$out/$name/model.o" build/libaert.a \
      -lopenblas -ltiff -lpng -lz -lpthread -lm &&
    { [ ! -s "$out/$name/grad.f64" ] || "$out/$name/gradcheck_f32" "$out/$name/grad.f64"; } || echo "$name: FAILED (float)"
}
# Two specs at a time (the checks run on one thread each), every other spec a lane; the
# lanes' output is printed in order after both end.
lane() {   # first index (1 or 2), specs...
  i=0 first=$1
  shift
  for spec in "$@"; do
    i=$((i + 1))
    [ $((i % 2)) -eq $((first % 2)) ] || continue
    check "$spec"
  done
}
export OMP_NUM_THREADS=1
lane 1 "$@" >"$out/lane1.log" 2>&1 &
lane 2 "$@" >"$out/lane2.log" 2>&1 &
wait
cat "$out/lane1.log" "$out/lane2.log"
! grep -q ": FAILED (" "$out/lane1.log" "$out/lane2.log"
