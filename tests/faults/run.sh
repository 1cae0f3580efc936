#!/bin/bash
# Fault tests of a generated trainer (dense_ae on a Fashion-MNIST subset):
#  1. kill -9 at random moments while training writes a checkpoint every epoch, many
#     times: the last complete checkpoint always loads and --resume continues;
#  2. a file-size limit (a full disk; the trainer itself ignores SIGXFSZ) while writing a
#     checkpoint: a clear error naming the file, a failing exit status (not death by the
#     signal), no temporary file left, and the previous checkpoint intact;
#  3. an output folder that cannot be written, and data files that are missing or
#     unreadable: clear errors naming the path.
set -u
cd "$(dirname "$0")/../.."
out=build/faults
rm -rf "$out"
mkdir -p "$out"
fail() { echo "FAIL: $*" >&2; exit 1; }
trainer=bin/dense_ae
args="--limit 2560 --quiet"

# 1. kill -9 during training, 12 times at pseudo-random moments (fixed seed: repeatable)
RANDOM=7
kills=0
for i in $(seq 1 12); do
  resume=""
  [ -f "$out/kill/last.ckpt" ] && resume=--resume
  $trainer train --epochs 400 $args --out "$out/kill" $resume >/dev/null 2>&1 &
  pid=$!
  sleep "0.$((RANDOM % 9 + 1))$((RANDOM % 10))"
  kill -9 $pid 2>/dev/null && kills=$((kills + 1))
  wait $pid 2>/dev/null
  if [ -f "$out/kill/last.ckpt" ]; then
    $trainer eval --ckpt "$out/kill/last.ckpt" --out "$out/kill" >/dev/null 2>"$out/kill.err" ||
      fail "after kill -9 number $i, last.ckpt does not load: $(cat "$out/kill.err")"
  fi
done
[ -f "$out/kill/last.ckpt" ] || fail "no checkpoint was ever completed between the kills"
epoch=$(tail -n 1 "$out/kill/train.csv" | cut -d, -f1)
$trainer train --epochs $((epoch + 1)) $args --out "$out/kill" --resume >/dev/null 2>"$out/kill.err" ||
  fail "--resume after the kills failed: $(cat "$out/kill.err")"
echo "kill -9: $kills kills while training; every last.ckpt loaded; resumed from epoch $epoch"

# 2. full disk: checkpoints of dense_ae are 5 MiB; allow files of 4 MiB at most
$trainer train --epochs 1 $args --out "$out/full" >/dev/null 2>&1 || fail "a plain run failed"
cp "$out/full/last.ckpt" "$out/good.ckpt"
( ulimit -f 4096; exec $trainer train --epochs 2 $args --out "$out/full" --resume ) >"$out/full.txt" 2>&1
status=$?
[ $status -eq 1 ] || fail "past the file-size limit training exited with $status, not 1: $(cat "$out/full.txt")"
! ls "$out/full/" | grep -q "tmp" || fail "a temporary file was left: $(ls "$out/full")"
grep -q "\.ckpt" "$out/full.txt" || fail "the full-disk error does not name the checkpoint: $(cat "$out/full.txt")"
cmp -s "$out/good.ckpt" "$out/full/last.ckpt" || fail "the previous checkpoint was damaged by the failed write"
echo "full disk: $(grep -m1 "aec:" "$out/full.txt")"

# 3. unwritable output, missing and unreadable data
mkdir -p "$out/ro" && chmod 555 "$out/ro"
if [ "$(id -u)" -ne 0 ]; then
  $trainer train --epochs 1 $args --out "$out/ro/run" >"$out/ro.txt" 2>&1 && fail "training wrote into a read-only folder"
  grep -q "$out/ro" "$out/ro.txt" || fail "the read-only error does not name the folder"
fi
$trainer train --epochs 1 $args --data "$out/nowhere" --out "$out/nodata" >"$out/nodata.txt" 2>&1 &&
  fail "training started without its data"
grep -q "$out/nowhere" "$out/nodata.txt" || fail "the missing-data error does not name the path: $(cat "$out/nodata.txt")"
mkdir -p "$out/baddata"
head -c 5000 /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz > "$out/baddata/train-images-idx3-ubyte.gz"
$trainer train --epochs 1 $args --data "$out/baddata" --out "$out/bad" >"$out/bad.txt" 2>&1 &&
  fail "training started on a truncated data file"
grep -q "train-images-idx3-ubyte.gz" "$out/bad.txt" || fail "the truncated-data error does not name the file: $(cat "$out/bad.txt")"
echo "bad data: $(grep -m1 "aec:" "$out/bad.txt")"

# data that vanishes during a run: IDX data is read whole before the first step, so
# training finishes; the evaluation afterwards names the file that is gone
mkdir -p "$out/vanish"
cp /usr/share/datasets/fashion-mnist/*.gz "$out/vanish/"
$trainer train --epochs 20 $args --data "$out/vanish" --out "$out/van" >/dev/null 2>&1 &
pid=$!
for _ in $(seq 1 300); do [ -f "$out/van/last.ckpt" ] && break; sleep 0.1; done   # after the first epoch
rm -f "$out/vanish/"*.gz
wait $pid || fail "training failed after its data files were deleted during the run"
$trainer eval --data "$out/vanish" --out "$out/van" >"$out/van.txt" 2>&1 && fail "eval ran without its test file"
grep -q "t10k-images-idx3-ubyte.gz" "$out/van.txt" || fail "the vanished-file error does not name it: $(cat "$out/van.txt")"
echo "vanished data: training finished from memory; then $(grep -m1 "aec:" "$out/van.txt")"
# 4. Ctrl-C: training stops after the current step, writes last.ckpt, exits 130, and
#    --resume continues mid-epoch to exactly the parameters of an uninterrupted run
vargs="--epochs 2 --limit 40000 --quiet"
bin/vae train $vargs --out "$out/straight" >/dev/null 2>&1 || fail "a plain vae run failed"
for moment in 0.4 1.5 2.7; do   # early, mid-epoch, near the end of an epoch
  rm -rf "$out/int"
  bin/vae train $vargs --out "$out/int" >"$out/int.txt" 2>&1 &
  pid=$!
  sleep $moment
  kill -INT $pid
  wait $pid
  status=$?
  [ $status -eq 130 ] || [ $status -eq 0 ] || fail "an interrupted run exited with $status: $(cat "$out/int.txt")"
  [ $status -eq 0 ] || grep -q "interrupted at" "$out/int.txt" || fail "no interruption message: $(cat "$out/int.txt")"
  bin/vae train $vargs --out "$out/int" --resume >/dev/null 2>&1 || fail "--resume after Ctrl-C failed"
  cmp -s "$out/straight/last.ckpt" "$out/int/last.ckpt" ||
    fail "Ctrl-C at ${moment}s + --resume differs from an uninterrupted run: $(grep interrupted "$out/int.txt")"
  echo "Ctrl-C at ${moment}s: $(grep -o "interrupted at [^:]*" "$out/int.txt" || echo "the run had finished"); resumed to the same parameters, bit for bit"
done
# 5. SIGTERM (Slurm's preemption, systemd's stop) as Ctrl-C: the step finishes, last.ckpt is
#    written, the exit status is 143, and --resume continues to the same parameters
rm -rf "$out/term"
bin/vae train $vargs --out "$out/term" >"$out/term.txt" 2>&1 &
pid=$!
sleep 1.5
kill -TERM $pid
wait $pid
status=$?
[ $status -eq 143 ] || fail "a run stopped by SIGTERM exited with $status, not 143: $(cat "$out/term.txt")"
grep -q "interrupted at" "$out/term.txt" || fail "no interruption message after SIGTERM: $(cat "$out/term.txt")"
bin/vae train $vargs --out "$out/term" --resume >/dev/null 2>&1 || fail "--resume after SIGTERM failed"
cmp -s "$out/straight/last.ckpt" "$out/term/last.ckpt" || fail "SIGTERM + --resume differs from an uninterrupted run"
echo "SIGTERM: $(grep -o "interrupted at [^:]*" "$out/term.txt"), exit 143; resumed to the same parameters, bit for bit"

# 6. two trainers on one output folder: the second refuses at once, naming the first's PID
rm -rf "$out/lock"
bin/vae train $vargs --out "$out/lock" >/dev/null 2>&1 &
pid=$!
for _ in $(seq 1 100); do [ -s "$out/lock/.lock" ] && break; sleep 0.05; done
bin/vae train $vargs --out "$out/lock" >"$out/lock.txt" 2>&1 && fail "a second trainer ran on the same output folder"
grep -q "PID $pid" "$out/lock.txt" || fail "the second trainer's refusal does not name the first's PID $pid: $(cat "$out/lock.txt")"
kill -INT $pid; wait $pid
bin/vae train --epochs 1 --limit 2000 --quiet --out "$out/lock" >/dev/null 2>&1 || fail "the lock outlived its trainer"
echo "one output folder, two trainers: $(grep -m1 "aec:" "$out/lock.txt")"
echo "fault tests passed"
