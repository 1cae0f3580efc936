#!/bin/sh
# The test suites again, built with AddressSanitizer and UndefinedBehaviorSanitizer:
# the compiler and runtime Criterion suites, and generated trainers (conv_ae and vae
# training, resuming, evaluating and encoding; the small U-Net on synthetic GeoTIFF tiles;
# dense_ae's emulated CUDA trainer training, resuming and decoding).
# Any sanitizer report fails the run.
set -eu
cd "$(dirname "$0")/.."
san=build/san
mkdir -p "$san"
CC=${CC:-cc}
FLAGS="-O1 -g -fopenmp -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=23
export LSAN_OPTIONS=suppressions=$(pwd)/tests/lsan-test-helpers.supp
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
compiler="build/parser.c build/lexer.c $(find compiler -name '*.c' ! -path compiler/main.c | sort)"
runtime="$(find runtime -name '*.c' | sort)"
libs="-lopenblas -ltiff -lpng -lz -lpthread -lm"

echo "sanitize: building the suites"
# the three builds side by side (each one compiler process): wait reports each one's status
$CC $FLAGS -Wno-unused-function -Icompiler -Ibuild -Iruntime -o "$san/test_compiler" tests/compiler/*.c $compiler -lcriterion -lm &
p1=$!
$CC $FLAGS -Icompiler -Ibuild -Iruntime -o "$san/aec" compiler/main.c $compiler -lm &
p2=$!
$CC $FLAGS -Icompiler -Ibuild -Iruntime -o "$san/test_runtime" tests/runtime/*.c $runtime -lcriterion $libs
wait $p1
wait $p2
# Criterion's workers report what they find on stderr without failing the suite: look.
# The device tests run on their own with one job: with two, Criterion's parent process
# leaks 48 bytes of its own (a calloc inside libcriterion.so.3, no frame of ours), every
# time; with one job nothing leaks, nor do the other suites with two.
set -f   # the filters are Criterion's patterns, not the shell's
part=0
for run in "test_compiler --jobs 2" "test_runtime --jobs 2 --filter !(device/*)" "test_runtime --jobs 1 --filter device/*"; do
  part=$((part + 1)) suite=${run%% *}
  log=$san/$suite.$part.log
  # shellcheck disable=SC2086
  "$san/$suite" ${run#* } >"$log" 2>&1 || { tail -40 "$log"; exit 1; }
  if grep -qE "ERROR: (Address|Leak)Sanitizer|runtime error:" "$log"; then
    grep -E -A12 "ERROR: (Address|Leak)Sanitizer|runtime error:" "$log" | head -60
    echo "sanitize: $run has sanitizer reports" >&2
    exit 1
  fi
  echo "$run: $(tail -n 1 "$log")"
done
set +f

# The trainers at -O2: at -O1 the register tiles of the direct convolutions stay arrays on
# the stack, every access checked, and conv_ae's eval alone took 4 minutes.
# The runtime once, as a library the trainers (C and emulated CUDA) link.
rm -rf "$san/rt" && mkdir -p "$san/rt"
O2FLAGS=$(echo "$FLAGS" | sed 's/-O1/-O2/')
for f in $runtime; do echo "$f"; done |
  xargs -P 2 -I{} sh -c 'o=$1/rt/$(echo "$2" | tr / _).o; '"$CC $O2FLAGS"' -Iruntime -c -o "$o" "$2"' _ "$san" {}
ar rcs "$san/libaert.a" "$san"/rt/*.o
# One emulated CUDA trainer (runtime/cuda_emu.h): model.cu as host C++, its device and the
# emulator's fibers under both sanitizers (the fiber switches are announced to ASan); built
# beside the C trainers, two compilers at a time.
"$san/aec" build --target cuda --no-compile --batch 8 --out "$san/dense_cu" specs/dense_ae.ae >/dev/null
(
  $CC $O2FLAGS -DAEC_NO_MAIN -Iruntime -I"$san/dense_cu" -c -o "$san/dense_cu/model_cpu.o" "$san/dense_cu/model.c"
  ${CXX:-g++} -std=gnu++20 -O1 -g -fopenmp -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer \
    -Wall -Wextra -Werror -Wno-unused-parameter -Iruntime -I"$san/dense_cu" -o "$san/dense_ae-cuda-emu" \
    -x c++ "$san/dense_cu/model.cu" -x none "$san/dense_cu/model_cpu.o" "$san/libaert.a" $libs
) &
pcu=$!
for model in conv_ae vae unet_landcover_small; do
  $CC $O2FLAGS -Iruntime -Igenerated/$model -o "$san/$model" generated/$model/model.c "$san/libaert.a" $libs
done
wait $pcu
out="$san/runs"
rm -rf "$out"
"$san/conv_ae" train --epochs 1 --limit 1400 --out "$out/conv" --quiet
"$san/conv_ae" eval --out "$out/conv" >/dev/null
"$san/vae" train --epochs 1 --limit 3000 --out "$out/vae" --quiet
"$san/vae" train --epochs 2 --limit 3000 --out "$out/vae" --resume --quiet
"$san/vae" encode --out "$out/vae" >/dev/null
# land cover: synthetic tiles written, read by 2 data threads, predicted whole
"$san/unet_landcover_small" train --epochs 1 --limit 64 --data "$out/tiles" --out "$out/lc" --quiet > /dev/null
"$san/unet_landcover_small" predict --data "$out/tiles" --out "$out/lc" > /dev/null
# the emulated CUDA trainer: two short epochs in two runs (a checkpoint written and resumed), an interpolation decoded
"$san/dense_ae-cuda-emu" train --epochs 1 --limit 64 --out "$out/cu" --quiet --threads 2
"$san/dense_ae-cuda-emu" train --epochs 2 --limit 64 --out "$out/cu" --resume --quiet --threads 2
"$san/dense_ae-cuda-emu" interpolate --out "$out/cu" >"$out/cu.log" 2>&1 || { cat "$out/cu.log"; exit 1; }
"$san/aec" summary specs/unet_landcover.ae >/dev/null
"$san/aec" build --no-compile --out "$san/gen" specs/unet_landcover.ae >/dev/null
echo "sanitize: suites, trainers (the emulated CUDA one too) and compiler clean under ASan and UBSan"
