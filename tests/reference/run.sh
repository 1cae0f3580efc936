#!/bin/sh
# Compares the generated forward pass of each spec given (default: every gradient-check
# spec and the small example specs) with the plain reference interpreter in reference.c,
# in double (Winograd wherever the compiler emitted it). AEC_CHECK_OUT names the build folder
# (default build/reference).
set -eu
cd "$(dirname "$0")/../.."
out=${AEC_CHECK_OUT:-build/reference}
mkdir -p "$out"
[ $# -gt 0 ] || set -- tests/specs/grad/*.ae specs/dense_ae.ae specs/vae.ae specs/conv_ae.ae specs/conv_ae_1x1.ae \
    specs/conv_ae_transpose.ae specs/denoising_ae.ae specs/denoising_skip.ae specs/img2img.ae specs/unet_landcover_small.ae
status=0
for spec in "$@"; do
  name=$(basename "$spec" .ae)
  bin/aec build --no-compile --batch 2 --out "$out/$name" "$spec" >/dev/null
  ${CC:-cc} -Og -fopenmp -std=gnu11 -Wall -Wextra -Werror -Wno-unused-function -Wno-unused-const-variable \
    -Wno-unused-parameter -DAERT_DOUBLE -DAERT_WINO_MIN=1 -DAERT_WINO2_MIN=1 -DAERT_WINO_DW_MIN=1 -DAERT_WINO2_DW_MIN=1 -DAEC_NO_MAIN -Iruntime -Icompiler -Ibuild -I"$out/$name" \
    -o "$out/$name/reference" tests/reference/reference.c \
    build/parser.o build/lexer.o $(find compiler -name '*.c' ! -path compiler/main.c | sed 's|^compiler/\(.*\)\.c$|build/compiler/\1.o|' | sort) build/libaert.a \
    -lopenblas -ltiff -lpng -lz -lpthread -lm
  "$out/$name/reference" "$spec" || status=1
done
exit $status
