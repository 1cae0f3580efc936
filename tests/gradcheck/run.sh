#!/bin/sh
# Generates each spec given (default: every spec in tests/specs/grad/), compiles its model.c
# in double around gradcheck.c and runs the finite-difference check, then builds it in float
# with the trainer's flags and compares its gradients with the double ones. Fails if any
# gradient is wrong. AEC_CHECK_OUT names the build folder (default build/gradcheck).
set -eu
cd "$(dirname "$0")/../.."
out=${AEC_CHECK_OUT:-build/gradcheck}
mkdir -p "$out"
[ $# -gt 0 ] || set -- tests/specs/grad/*.ae
status=0
for spec in "$@"; do
  name=$(basename "$spec" .ae)
  bin/aec build --no-compile --out "$out/$name" "$spec" >/dev/null
  ${CC:-cc} -O1 -fopenmp -std=gnu11 -Wall -Wextra -Werror -Wno-unused-function -Wno-unused-const-variable \
    -DAERT_DOUBLE -DAEC_NO_MAIN -DAEC_MODEL_NAME="\"$name\"" \
    -Iruntime -I"$out/$name" \
    -o "$out/$name/gradcheck" tests/gradcheck/gradcheck.c build/libaert.a -lopenblas -ltiff -lpng -lz -lpthread -lm
  "$out/$name/gradcheck" "$out/$name/grad.f64" || status=1
  # the same gradients from the trainer's own build: float, its compiler flags
  ${CC:-cc} -O3 -march=native -fopenmp -std=gnu11 -Wall -Wextra -Werror -Wno-unused-function -Wno-unused-const-variable \
    -DAEC_NO_MAIN -DAEC_MODEL_NAME="\"$name\"" -Iruntime -I"$out/$name" \
    -o "$out/$name/gradcheck_f32" tests/gradcheck/gradcheck.c build/libaert.a -lopenblas -ltiff -lpng -lz -lpthread -lm
  [ ! -s "$out/$name/grad.f64" ] || "$out/$name/gradcheck_f32" "$out/$name/grad.f64" || status=1
done
exit $status
