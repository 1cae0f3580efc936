#!/bin/sh
# End-to-end checks of generated trainers on real Fashion-MNIST:
#  - the dense and the conv autoencoder bring the validation loss below a stated bound
#    within a few hundred steps;
#  - resuming from a checkpoint equals uninterrupted training, bit for bit, and two conv
#    runs of one seed agree bit for bit;
#  - a checkpoint of another model and a truncated checkpoint are refused, by name;
#  - a diverging run stops at the first non-finite loss and keeps the last good checkpoint;
#  - the threads' wait policy: passive beside busy processes, the user's settings kept.
set -eu
cd "$(dirname "$0")/../.."
out=build/train-test
rm -rf "$out"
mkdir -p "$out"
fail() { echo "FAIL: $*" >&2; exit 1; }

# val loss of the last epoch, from the CSV log (columns: epoch,step,lr,train_loss,...,val_loss,seconds)
val_loss() { tail -n 1 "$1/train.csv" | awk -F, '{print $(NF-1)}'; }
below() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; }

# 1. dense autoencoder: 360 steps of batch 256 (40960 images, 2 epochs)
bin/dense_ae train --epochs 2 --limit 51200 --seed 1 --out "$out/dense" --quiet
v=$(val_loss "$out/dense")
echo "dense_ae: validation BCE $v after 360 steps (bound 0.31)"
below "$v" 0.31 || fail "dense_ae validation BCE $v is not below 0.31"

# 2. conv autoencoder: 200 steps of batch 128
bin/conv_ae train --epochs 1 --limit 28444 --seed 1 --out "$out/conv" --quiet
v=$(val_loss "$out/conv")
echo "conv_ae: validation BCE $v after 200 steps (bound 0.31)"
below "$v" 0.31 || fail "conv_ae validation BCE $v is not below 0.31"
bin/conv_ae eval --out "$out/conv" > "$out/conv/eval.txt"
grep -q "PSNR" "$out/conv/eval.txt" || fail "conv_ae eval printed no PSNR"
[ -s "$out/conv/reconstructions.png" ] || fail "conv_ae eval wrote no reconstructions.png"

# 3. resume equals uninterrupted training, bit for bit
bin/vae train --epochs 2 --limit 5120 --seed 3 --out "$out/straight" --quiet
bin/vae train --epochs 1 --limit 5120 --seed 3 --out "$out/resumed" --quiet
bin/vae train --epochs 2 --limit 5120 --seed 3 --out "$out/resumed" --resume --quiet
cmp "$out/straight/last.ckpt" "$out/resumed/last.ckpt" || fail "resumed vae training differs from uninterrupted training"
echo "vae: 1 epoch + resume = 2 epochs, bit for bit"
# the direct convolutions (every stride, narrow outputs, weight gradients in slices) too
bin/conv_ae train --epochs 1 --limit 2560 --seed 5 --out "$out/conv_a" --quiet
bin/conv_ae train --epochs 1 --limit 2560 --seed 5 --out "$out/conv_b" --quiet
cmp "$out/conv_a/last.ckpt" "$out/conv_b/last.ckpt" || fail "two conv_ae runs of the same seed differ"
echo "conv_ae: two runs of the same seed, bit for bit"

# 4. refusals: another model's checkpoint, a truncated checkpoint
if bin/conv_ae eval --ckpt "$out/dense/last.ckpt" --out "$out/conv" >"$out/wrong.txt" 2>&1; then fail "conv_ae accepted dense_ae's checkpoint"; fi
grep -q "dense_ae" "$out/wrong.txt" || fail "refusing another model's checkpoint does not name it: $(cat "$out/wrong.txt")"
head -c 1000 "$out/dense/last.ckpt" > "$out/truncated.ckpt"
if bin/dense_ae eval --ckpt "$out/truncated.ckpt" --out "$out/dense" >"$out/trunc.txt" 2>&1; then fail "a truncated checkpoint was accepted"; fi
grep -q "truncated.ckpt" "$out/trunc.txt" || fail "refusing a truncated checkpoint does not name the file: $(cat "$out/trunc.txt")"
echo "checkpoints of another model and truncated ones are refused"

# 5. divergence: a huge learning rate makes the loss non-finite; training stops, naming the step
bin/dense_ae train --epochs 1 --limit 5120 --out "$out/nan" --quiet
cp "$out/nan/last.ckpt" "$out/good.ckpt"
if bin/dense_ae train --epochs 3 --limit 5120 --lr 1e6 --resume --out "$out/nan" >"$out/nan.txt" 2>&1; then
  fail "training with lr 1e6 did not stop on a non-finite loss"
fi
grep -qi "step" "$out/nan.txt" || fail "the non-finite loss message names no step: $(cat "$out/nan.txt")"
cmp "$out/good.ckpt" "$out/nan/last.ckpt" || fail "the last good checkpoint was overwritten by a diverging run"
echo "a diverging run stops: $(grep -i "step" "$out/nan.txt" | head -n 1)"
# 6. the wait policy a trainer restarts itself with (read from the running process): beside
# two busy processes its threads sleep at once (no GOMP_SPINCOUNT); a user's GOMP_SPINCOUNT
# or OMP_WAIT_POLICY is kept as it is. (A quiet machine adds GOMP_SPINCOUNT=3000: not
# asserted, a test machine need not be quiet.)
policy() {   # the trainer's OMP_WAIT_POLICY and GOMP_SPINCOUNT, as it runs
  "$@" bin/dense_ae train --epochs 50 --limit 25600 --out "$out/policy" --quiet >/dev/null 2>&1 &
  pid=$!
  sleep 1
  got=$(tr '\0' '\n' < /proc/$pid/environ | grep -E '^(OMP_WAIT_POLICY|GOMP_SPINCOUNT)=' | sort | tr '\n' ' ')
  kill $pid 2>/dev/null; wait $pid 2>/dev/null || true
  echo "$got"
}
sh -c 'while :; do :; done' & b1=$!
sh -c 'while :; do :; done' & b2=$!
busy=$(policy env)
kill $b1 $b2
[ "$busy" = "OMP_WAIT_POLICY=PASSIVE " ] || fail "beside two busy processes the trainer ran with '$busy', not passive alone"
[ "$(policy env GOMP_SPINCOUNT=7)" = "GOMP_SPINCOUNT=7 OMP_WAIT_POLICY=PASSIVE " ] || fail "the user's GOMP_SPINCOUNT was not kept"
[ "$(policy env OMP_WAIT_POLICY=active)" = "OMP_WAIT_POLICY=active " ] || fail "the user's OMP_WAIT_POLICY was not kept"
echo "wait policy: passive beside busy processes; the user's GOMP_SPINCOUNT and OMP_WAIT_POLICY kept"
echo "training checks passed"
