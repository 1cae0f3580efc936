#!/bin/sh
# The dense kernels: every register-tile variant computes the same bits (native build, and
# the AVX2 path where the CPU runs it), the thin products of 1x1 convolutions (thin.c), a conv's
# activation and bias gradient in one pass (act_bias.c), Winograd
# F(2x2, 3x3) and the direct kernel against a double-precision direct convolution, floats and
# doubles (wino.c); the AVX-512 path compiled where the host cannot run it; then the autotune's wisdom file: written on the
# first run with AERT_TUNE=1, read on the next, set aside with a message when garbled or
# from another machine; nothing tuned or written without AERT_TUNE=1 or with
# AERT_WISDOM=off; a message (no crash) when it cannot be written.
set -eu
cd "$(dirname "$0")/../.."
out=build/dense
mkdir -p "$out"
status=0
isas=native
grep -q ' avx2 ' /proc/cpuinfo && grep -q ' fma ' /proc/cpuinfo && isas="native x86-64-v3"
for isa in $isas; do
  ${CC:-cc} -O2 -march=$isa -fopenmp -std=gnu11 -Wall -Wextra -Werror -Wno-unused-function -Iruntime \
    -o "$out/variants_$isa" tests/dense/variants.c build/libaert.a -lopenblas -lpthread -lm
  AERT_WISDOM=off "$out/variants_$isa" check || status=1
  ${CC:-cc} -O2 -march=$isa -fopenmp -std=gnu11 -Wall -Wextra -Werror -Wno-unused-function -Iruntime \
    -o "$out/thin_$isa" tests/dense/thin.c build/libaert.a -lopenblas -lpthread -lm
  "$out/thin_$isa" || status=1
  ${CC:-cc} -O2 -march=$isa -fopenmp -std=gnu11 -Wall -Wextra -Werror -Wno-unused-function -Iruntime \
    -o "$out/act_bias_$isa" tests/dense/act_bias.c build/libaert.a -lopenblas -lpthread -lm
  "$out/act_bias_$isa" || status=1
  ${CC:-cc} -O2 -march=$isa -fopenmp -std=gnu11 -Wall -Wextra -Werror -Wno-unused-function -Iruntime \
    -o "$out/wino_$isa" tests/dense/wino.c build/libaert.a -lopenblas -lpthread -lm
  "$out/wino_$isa" || status=1
  ${CC:-cc} -O2 -march=$isa -fopenmp -std=gnu11 -DAERT_DOUBLE -Wall -Wextra -Werror -Wno-unused-function -Iruntime \
    -o "$out/wino_double_$isa" tests/dense/wino.c build/libaert.a -lopenblas -lpthread -lm
  "$out/wino_double_$isa" || status=1
done
# The AVX-512 path (its 32-register tiles) compiles without a warning where this host cannot
# run it: the kernels' tests and a model
if ! grep -q ' avx512f ' /proc/cpuinfo; then
  for src in tests/dense/variants.c tests/dense/wino.c tests/dense/thin.c generated/unet_landcover_small/model.c; do
    ${CC:-cc} -O2 -march=skylake-avx512 -fopenmp -std=gnu11 -Wall -Wextra -Werror -Wno-unused-function -DAEC_NO_MAIN \
      -Iruntime -Igenerated/unet_landcover_small -c -o "$out/compile_avx512.o" "$src" ||
      { echo "FAIL: $src does not compile for -march=skylake-avx512"; status=1; }
  done
fi
v="$out/variants_native" w="$out/variants.wisdom"
fail() { echo "FAIL wisdom: $1"; status=1; }
rm -f "$w" "$w.log"
AERT_TUNE=1 AERT_WISDOM="$w" "$v" pick > "$out/pick1" 2> "$w.log" || fail "the first run failed"
[ -s "$w.log" ] && fail "the first run printed: $(cat "$w.log")"
head -1 "$w" | grep -qx 'aec-wisdom 1' || fail "no header in $w"
[ "$(grep -c '^dense_' "$w")" = 2 ] || fail "$w does not hold the two shapes"
cp "$w" "$w.first"
AERT_TUNE=1 AERT_WISDOM="$w" "$v" pick > "$out/pick2" 2> "$w.log" || fail "the second run failed"
cmp -s "$out/pick1" "$out/pick2" || fail "the second run chose otherwise than the wisdom says"
cmp -s "$w" "$w.first" || fail "the second run rewrote the wisdom"
echo garbage > "$w"
AERT_TUNE=1 AERT_WISDOM="$w" "$v" pick > /dev/null 2> "$w.log" || fail "a garbled file crashed the run"
grep -q "set aside (it does not start with 'aec-wisdom 1'); tuning again" "$w.log" || fail "no message for a garbled file"
[ "$(grep -c '^dense_' "$w")" = 2 ] || fail "a garbled file was not replaced"
sed '2s/.*/machine: Some Other CPU | family 6 model 85 | avx512 f32/' "$w.first" > "$w"
AERT_TUNE=1 AERT_WISDOM="$w" "$v" pick > /dev/null 2> "$w.log" || fail "a foreign file crashed the run"
grep -q "it was written for 'Some Other CPU" "$w.log" || fail "no message for another machine's file"
[ "$(sed -n 2p "$w")" = "$(sed -n 2p "$w.first")" ] && [ "$(grep -c '^dense_' "$w")" = 2 ] ||
  fail "another machine's file was not replaced by this one's"
rm -f "$w"
AERT_TUNE=1 AERT_WISDOM=off "$v" pick > /dev/null || fail "AERT_WISDOM=off failed"
[ -e "$w" ] && fail "AERT_WISDOM=off wrote a file"
AERT_WISDOM="$w" "$v" pick > "$out/pick0" || fail "a run without AERT_TUNE failed"
[ -e "$w" ] && fail "a run without AERT_TUNE=1 wrote a file"
[ "$(cat "$out/pick0")" = "$(AERT_TUNE=0 "$v" pick)" ] || fail "AERT_TUNE=0 chose otherwise than no AERT_TUNE"
AERT_TUNE=1 AERT_WISDOM=/nonexistent/dir/w "$v" pick > /dev/null 2> "$w.log" || fail "an unwritable wisdom path crashed the run"
grep -q "tuning is not kept" "$w.log" || fail "no message for an unwritable wisdom path"
[ $status = 0 ] && echo "dense wisdom: written, read back, garbled and foreign files retuned; off by default; unwritable handled"
exit $status
