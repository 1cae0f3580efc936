#!/bin/sh
# Steering a run, end to end on a small dense autoencoder and a Fashion-MNIST subset:
#  - schedules move per optimizer step (cosine over one epoch decays), after a warm-up;
#  - --resume --epochs N recomputes the schedule as a run of N epochs would have it;
#  - accumulate k at batch b trains like batch k*b (same examples, same mean gradient), and
#    Ctrl-C stops only after a whole accumulated step, so --resume is exact, bit for bit;
#  - clip limits the update; Nesterov trains and differs from plain momentum;
#  - plateau cuts the rate and `stop` ends the run after the epochs the spec allows.
# Needs bin/aec and build/libaert.a (make all).
set -eu
cd "$(dirname "$0")/../.."
out=build/steer
rm -rf "$out"
mkdir -p "$out"
fail() { echo "FAIL: $*" >&2; exit 1; }
export OMP_NUM_THREADS=1

# build NAME: the trainer $out/NAME/tiny of the spec $out/NAME/tiny.ae
build() {
  bin/aec build --no-compile --out "$out/$1/src" "$out/$1/tiny.ae" >/dev/null
  ${CC:-cc} -O2 -fopenmp -std=gnu11 -Iruntime -I"$out/$1/src" -o "$out/$1/tiny" "$out/$1/src/model.c" \
    build/libaert.a -lopenblas -ltiff -lpng -lz -lpthread -lm
}
# model NAME LINES...: a tiny dense autoencoder with these lines added, built
model() {
  name=$1
  shift
  mkdir -p "$out/$name"
  {
    printf 'model tiny {\n  input x: f32[784]\n  batch 32\n'
    printf '  y = dense(x, 16) |> relu |> dense(784) |> sigmoid\n  loss bce(y, x)\n'
    for line in "$@"; do printf '  %s\n' "$line"; done
    printf '}\n'
  } > "$out/$name/tiny.ae"
  build "$name"
}
# column COL DIR: the column of train.csv, one value per epoch
column() { awk -F, -v c="$1" 'NR > 1 { print $c }' "$2/train.csv"; }
near() { awk -v a="$1" -v b="$2" -v r="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= r * (b < 0 ? -b : b)) }'; }
args="--limit 1280 --seed 2 --quiet"   # 1152 training examples: 36 batches of 32 an epoch

# 1. cosine over a one-epoch run decays at every step: the lr of its last step (35 of 36)
model cosine "epochs 1" "optimizer adam(lr = 0.01, schedule = cosine(min_lr = 0))"
"$out/cosine/tiny" train $args --out "$out/cosine/run"
lr=$(column 3 "$out/cosine/run")
want=$(awk 'BEGIN { print 0.01 * 0.5 * (1 + cos(3.14159265358979 * 35 / 36)) }')
near "$lr" "$want" 1e-5 || fail "cosine over one epoch: the last step's lr is $lr, not $want"
echo "cosine over one epoch of 36 steps: last step's lr $lr (per step; per epoch it stayed 0.01)"

# 2. warm-up: 100 steps rise linearly to lr; then the schedule (constant) holds
model warmup "epochs 4" "optimizer adam(lr = 0.01)" "warmup 100"
"$out/warmup/tiny" train $args --out "$out/warmup/run"
set -- $(column 3 "$out/warmup/run")
near "$1" 0.0036 1e-6 && near "$2" 0.0072 1e-6 && near "$3" 0.01 1e-6 && near "$4" 0.01 1e-6 ||
  fail "warmup 100: epoch-end rates $*, not 0.0036 0.0072 0.01 0.01"
echo "warmup 100 steps: epoch-end rates $*"

# 3. --resume --epochs 3 after a 1-epoch run: epochs 2 and 3 get the 3-epoch run's rates
model resume "epochs 3" "optimizer sgd(lr = 0.1, schedule = cosine)" "warmup epochs = 1"
"$out/resume/tiny" train $args --out "$out/resume/straight"
"$out/resume/tiny" train $args --epochs 1 --out "$out/resume/longer"
"$out/resume/tiny" train $args --epochs 3 --resume --out "$out/resume/longer"
a=$(column 3 "$out/resume/straight" | tail -n 2 | tr '\n' ' ')
b=$(column 3 "$out/resume/longer" | tail -n 2 | tr '\n' ' ')
[ "$a" = "$b" ] || fail "the schedule after --resume --epochs 3 ($b) is not the 3-epoch run's ($a)"
echo "--resume --epochs 3 after 1 epoch: rates $b as in a 3-epoch run"

# 4. accumulate 2 at batch 32 = batch 64: the same examples, the mean of the same gradients
model acc2 "epochs 2" "optimizer sgd(lr = 0.5)" "accumulate 2"
mkdir -p "$out/big"
sed 's/batch 32/batch 64/; /accumulate/d' "$out/acc2/tiny.ae" > "$out/big/tiny.ae"
build big
bin/aec check "$out/acc2/tiny.ae" | grep -q "effective batch 64 = batch 32 x accumulate 2" ||
  fail "aec check does not show the effective batch: $(bin/aec check "$out/acc2/tiny.ae")"
"$out/acc2/tiny" train --limit 1280 --seed 2 --out "$out/acc2/run" > "$out/acc2/banner.txt"
grep -q "effective batch 64 (batch 32 x accumulate 2)" "$out/acc2/banner.txt" ||
  fail "the trainer's banner does not show the effective batch: $(head -n 2 "$out/acc2/banner.txt")"
"$out/big/tiny" train $args --out "$out/big/run"
va=$(column 6 "$out/acc2/run" | tail -n 1)
vb=$(column 6 "$out/big/run" | tail -n 1)
near "$va" "$vb" 1e-4 || fail "accumulate 2 x batch 32 reaches val loss $va, batch 64 $vb"
echo "accumulate 2 x batch 32: val loss $va; batch 64: $vb"
# resuming with other steering settings asks for --force and says what changed
model sgd "epochs 1" "optimizer sgd(lr = 0.5, momentum = 0.9)"
if "$out/sgd/tiny" train $args --epochs 3 --resume --out "$out/acc2/run" 2>"$out/acc2/changed.txt"; then
  fail "resuming without accumulate 2 did not ask for --force"
fi
grep -q "accumulate 2 -> 1" "$out/acc2/changed.txt" && grep -q -- "--force" "$out/acc2/changed.txt" ||
  fail "the refused resume does not say what changed: $(cat "$out/acc2/changed.txt")"
echo "resume with accumulate 2 -> 1: $(grep -o "([^)]*accumulate[^)]*)" "$out/acc2/changed.txt")"

# 5. Ctrl-C with accumulate 4 stops after a whole optimizer step; --resume is exact
model acc4 "epochs 3" "optimizer adam(lr = 0.003, schedule = cosine)" "accumulate 4"
full="--seed 2 --quiet"   # all 60000 images: 1687 batches an epoch, a few seconds a run
"$out/acc4/tiny" train $full --out "$out/acc4/straight"
for moment in 0.7 2.2; do
  rm -rf "$out/acc4/int"
  "$out/acc4/tiny" train $full --out "$out/acc4/int" > "$out/acc4/int.txt" 2>&1 &
  pid=$!
  sleep $moment
  kill -INT $pid
  status=0
  wait $pid || status=$?
  [ $status -eq 130 ] || fail "Ctrl-C at ${moment}s: exit $status, not 130 (the run is too short for this machine?)"
  # the batch within its epoch (groups of 4 start at each epoch's first batch); none at an epoch's end
  batch=$(grep -o "batch [0-9]* of" "$out/acc4/int.txt" | grep -o "[0-9][0-9]*" || echo 0)
  [ $((batch % 4)) -eq 0 ] ||
    fail "Ctrl-C stopped after batch $batch of an epoch, inside an accumulated step of 4: $(cat "$out/acc4/int.txt")"
  "$out/acc4/tiny" train $full --resume --out "$out/acc4/int" ||
    fail "--resume after Ctrl-C with accumulate 4 failed"
  cmp -s "$out/acc4/straight/last.ckpt" "$out/acc4/int/last.ckpt" ||
    fail "Ctrl-C at ${moment}s + --resume differs from an uninterrupted run: $(cat "$out/acc4/int.txt")"
  echo "accumulate 4: Ctrl-C at ${moment}s: $(grep -o "interrupted at [^:]*" "$out/acc4/int.txt"); resumed to the same parameters, bit for bit"
done

# 6. clip: a tiny global norm holds plain SGD back; Nesterov trains, and not as plain momentum does
model clip "epochs 1" "optimizer sgd(lr = 0.5, momentum = 0.9)" "clip 0.001"
model nesterov "epochs 1" "optimizer sgd(lr = 0.5, momentum = 0.9, nesterov = true)"
for m in sgd clip nesterov; do "$out/$m/tiny" train $args --out "$out/$m/run"; done
vs=$(column 6 "$out/sgd/run"); vc=$(column 6 "$out/clip/run"); vn=$(column 6 "$out/nesterov/run")
awk -v s="$vs" -v c="$vc" 'BEGIN { exit !(c > s + 0.05) }' ||
  fail "clip 0.001 did not hold training back: val loss $vc, unclipped $vs"
awk -v s="$vs" -v n="$vn" 'BEGIN { exit !(n < 0.6 && n != s) }' ||
  fail "Nesterov: val loss $vn (plain momentum $vs)"
echo "one epoch of sgd: val loss $vs; clipped to norm 0.001: $vc; Nesterov: $vn"

# 7. plateau and stop: at lr 1e-12 nothing improves after epoch 1, so plateau(patience = 1)
#    cuts the rate after epochs 3 and 5 and stop patience = 5 ends the run after epoch 6
model plateau "epochs 20" "optimizer adam(lr = 1e-12, schedule = plateau(factor = 0.5, patience = 1))" \
  "stop patience = 5"
"$out/plateau/tiny" train --limit 1280 --seed 2 --out "$out/plateau/run" > "$out/plateau/log.txt"
rates=$(column 3 "$out/plateau/run" | tr '\n' ' ')
[ "$rates" = "9.99999996e-13 9.99999996e-13 9.99999996e-13 4.99999998e-13 4.99999998e-13 2.49999999e-13 " ] ||
  fail "plateau(factor = 0.5, patience = 1) and stop patience = 5 gave the rates $rates"
grep -q "early stopping: no improvement for 5 epochs" "$out/plateau/log.txt" || fail "no early-stopping message"
"$out/plateau/tiny" train --limit 1280 --seed 2 --patience 2 --out "$out/plateau/cli" --quiet
[ "$(column 1 "$out/plateau/cli" | tail -n 1)" = 3 ] || fail "--patience 2 did not override the spec's stop patience"
echo "plateau: rates $rates; stop patience = 5 stopped after epoch 6; --patience 2 after epoch 3"

# 8. stop min_delta: progress smaller than min_delta is no progress
model delta "epochs 20" "optimizer adam(lr = 1e-3)" "stop patience = 2, min_delta = 1"
"$out/delta/tiny" train $args --out "$out/delta/run"
[ "$(column 1 "$out/delta/run" | tail -n 1)" = 3 ] ||
  fail "stop patience = 2, min_delta = 1 did not stop after epoch 3: $(column 6 "$out/delta/run" | tr '\n' ' ')"
echo "stop patience = 2, min_delta = 1: stopped after epoch 3"
echo "steering tests passed"
