#!/bin/sh
# Data-parallel training under mpirun (docs/cluster.md) with tests/mpi/mpi_seg.ae, a small
# segmentation net with noise, dropout, ignored pixels and automatic class weights, built
# three times: alone (batch 8), and with `aec build --mpi --ranks 2` and `--ranks 4`.
#  1. equivalence: 1 rank of 8, 2 ranks of 4 and 4 ranks of 2 give the same training losses
#     (1e-6 relative, 18 steps), validation accuracy and IoU, and parameters (1e-5, SGD);
#     eval on 2 ranks splits the test grid: the metrics of one process;
#  2. resume with another N: 2 ranks write epoch 1, 4 ranks continue: the same epoch 2;
#     a rank count that changes the global batch says so;
#  3. faults: SIGTERM to one rank (all stop after the same step, rank 0 writes last.ckpt,
#     which resumes); kill -9 of one rank (the job ends within seconds naming the rank;
#     last.ckpt loads); a stopped rank (the --step-timeout watchdog ends the job);
#  4. launch mistakes: srun without an MPI plugin, a trainer built without --mpi.
# Runs on 2 cores with --oversubscribe, a few seconds.
set -eu
cd "$(dirname "$0")/../.."
root=$PWD
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "mpi: FAIL: $*" >&2; exit 1; }
mpirun="mpirun --allow-run-as-root --oversubscribe --mca btl self,vader"
spec=$root/tests/mpi/mpi_seg.ae
compare="python3 $root/tests/mpi/compare.py"
args="--data $T/data --threads 1 --quiet"

make -s mpi >/dev/null
for n in 1 2 4; do
  mkdir -p "$T/r$n"
  flags=""
  [ $n -gt 1 ] && flags="--mpi --ranks $n"
  (cd "$T/r$n" && "$root/bin/aec" build $flags --out gen "$spec" > build.log 2>&1) ||
    { cat "$T/r$n/build.log"; fail "aec build $flags"; }
done
grep -q "each of 4 ranks takes 2 of the global batch of 8" "$T/r4/build.log" || fail "--ranks 4 does not say the split"
seg1=$T/r1/bin/mpi_seg seg2=$T/r2/bin/mpi_seg seg4=$T/r4/bin/mpi_seg
params() { "$seg1" export --out "$1" --ckpt "$1/last.ckpt" --file "$1/p.safetensors" > /dev/null || fail "export $1"; }

# ---- 1. equivalence
"$seg1" train $args --out "$T/o1" > "$T/o1.log" 2>&1 || { cat "$T/o1.log"; fail "one process"; }
$mpirun -np 2 "$seg2" train $args --out "$T/o2" > "$T/o2.log" 2>&1 || { cat "$T/o2.log"; fail "2 ranks"; }
# (4 ranks on a fresh folder: rank 0 writes the synthetic tiles and sends their list)
$mpirun -np 4 "$seg4" train $args --data "$T/data4" --out "$T/o4" > "$T/o4.log" 2>&1 || { cat "$T/o4.log"; fail "4 ranks"; }
[ "$(grep -c "writing 4 synthetic" "$T/o4.log")" = 1 ] || fail "not one rank wrote the synthetic tiles: $(cat "$T/o4.log")"
for n in 2 4; do
  $compare losses "$T/o1/train.csv" "$T/o$n/train.csv" 1e-6 || fail "losses of $n ranks"
  params "$T/o$n"
done
params "$T/o1"
for n in 2 4; do
  $compare params "$T/o1/p.safetensors" "$T/o$n/p.safetensors" 1e-5 || fail "parameters of $n ranks"
done
echo "mpi: 1, 2 and 4 ranks: the same losses, accuracy, IoU and parameters"

# eval of a class-map model: 2 ranks split the test grid and add up the confusion matrix
# (the test loss, a mean of per-batch means added in another order, may differ in the last digits)
"$seg2" eval --data "$T/data" --out "$T/o2" > "$T/eval1.log" 2>&1 || { cat "$T/eval1.log"; fail "eval alone"; }
$mpirun -np 2 "$seg2" eval --data "$T/data" --out "$T/o2" > "$T/eval2.log" 2>&1 || { cat "$T/eval2.log"; fail "eval on 2 ranks"; }
grep -q "mean IoU" "$T/eval2.log" || fail "eval on 2 ranks printed no mean IoU: $(cat "$T/eval2.log")"
grep -Ev "test loss|softmax_xent" "$T/eval1.log" > "$T/eval1.txt"
grep -Ev "test loss|softmax_xent" "$T/eval2.log" > "$T/eval2.txt"
cmp -s "$T/eval1.txt" "$T/eval2.txt" || { diff "$T/eval1.txt" "$T/eval2.txt"; fail "eval on 2 ranks differs from eval alone"; }
echo "mpi: eval on 2 ranks: the accuracy, IoU and confusion matrix of one process"

# ---- 2. resume with another N (the same global batch), and a changed global batch
$mpirun -np 2 "$seg2" train $args --epochs 1 --out "$T/o5" > "$T/o5.log" 2>&1 || { cat "$T/o5.log"; fail "epoch 1 on 2 ranks"; }
$mpirun -np 4 "$seg4" train $args --resume --epochs 2 --out "$T/o5" > "$T/o5b.log" 2>&1 || { cat "$T/o5b.log"; fail "resume on 4 ranks"; }
$compare losses "$T/o1/train.csv" "$T/o5/train.csv" 1e-6 || fail "2 ranks, then 4 ranks"
params "$T/o5"
$compare params "$T/o1/p.safetensors" "$T/o5/p.safetensors" 1e-5 || fail "parameters of 2 ranks, then 4"
$mpirun -np 4 "$seg2" train --data "$T/data" --threads 1 --epochs 3 --resume --out "$T/o5" > "$T/o5c.log" 2>&1 ||
  { cat "$T/o5c.log"; fail "resume with a rank count that doubles the global batch"; }
grep -q "4 ranks x batch 4 = global batch 16 (the spec's is 8: built for 2 ranks; the learning rate stays" \
  "$T/o5c.log" || { cat "$T/o5c.log"; fail "another global batch is not announced"; }
[ "$(tail -n 1 "$T/o5/train.csv" | cut -d, -f1,2)" = "3,22" ] || fail "epoch 3 of global batch 16 is not 4 steps"
echo "mpi: written by 2 ranks, resumed by 4: the same epoch 2; another global batch is announced"

# The rank whose environment says OMPI_COMM_WORLD_RANK=$2 among the children of mpirun $1.
rank_pid() {
  for p in $(pgrep -P "$1"); do
    tr '\0' '\n' < "/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2" && { echo "$p"; return; }
  done
}
# Starts a long run on 2 ranks in the background (mpirun's PID in $job) and waits until its
# first epoch is written.
start_long() {
  name=$1
  shift
  $mpirun -np 2 "$seg2" train $args --epochs 100000 --out "$T/$name" "$@" > "$T/$name.log" 2>&1 &
  job=$!
  for i in $(seq 1 100); do [ -f "$T/$name/last.ckpt" ] && break; sleep 0.1; done
  [ -f "$T/$name/last.ckpt" ] || fail "$name: no epoch written in 10 s: $(cat "$T/$name.log")"
  sleep 0.3
}

# ---- 3. faults: SIGTERM to one rank
start_long term
kill -TERM "$(rank_pid $job 1)"
wait $job && fail "a run stopped by SIGTERM exited 0"
grep -Eq "interrupted at (step|the end of epoch) .*: wrote '$T/term/last.ckpt'" "$T/term.log" || { cat "$T/term.log"; fail "SIGTERM to rank 1 did not make rank 0 write last.ckpt"; }
epoch=$(tail -n 1 "$T/term/train.csv" | cut -d, -f1)
$mpirun -np 4 "$seg4" train $args --resume --epochs $((epoch + 1)) --out "$T/term" > "$T/term2.log" 2>&1 ||
  { cat "$T/term2.log"; fail "resume on 4 ranks after SIGTERM"; }
[ "$(tail -n 1 "$T/term/train.csv" | cut -d, -f1)" = $((epoch + 1)) ] || fail "the resumed run did not finish epoch $((epoch + 1))"
echo "mpi: SIGTERM to rank 1: $(grep -Eo 'interrupted at (step [0-9]* \([^)]*\)|the end of epoch [0-9]*)' "$T/term.log"); resumed on 4 ranks"

# kill -9 of rank 1 mid-epoch: the job ends within seconds, naming the rank
start_long kill
t0=$(date +%s%N)
kill -9 "$(rank_pid $job 1)"
wait $job && fail "a job with a killed rank exited 0"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
[ $ms -lt 10000 ] || fail "the job took $ms ms to end after a rank was killed"
grep -q "rank 1 .*exited on signal 9" "$T/kill.log" || { cat "$T/kill.log"; fail "the message does not name rank 1"; }
"$seg2" eval --data "$T/data" --out "$T/kill" --ckpt "$T/kill/last.ckpt" > "$T/kill-eval.log" 2>&1 ||
  { cat "$T/kill-eval.log"; fail "last.ckpt after kill -9 does not load"; }
echo "mpi: kill -9 of rank 1: the job ended in $ms ms naming rank 1; last.ckpt loads"

# a rank that hangs (stopped): the others' watchdog ends the job
start_long hang --step-timeout 2
kill -STOP "$(rank_pid $job 1)"
t0=$(date +%s%N)
wait $job && fail "a job with a hung rank exited 0"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
grep -q "has not finished in 2 s (--step-timeout)" "$T/hang.log" || { cat "$T/hang.log"; fail "no watchdog message"; }
echo "mpi: a stopped rank: the watchdog ended the job after $ms ms"

# ---- 4. launch mistakes
SLURM_STEP_NUM_TASKS=2 "$seg2" train $args --out "$T/x" > "$T/srun.log" 2>&1 && fail "srun without a plugin trained"
grep -q -- "--mpi=pmix" "$T/srun.log" || fail "srun without a plugin: the message does not name --mpi=pmix: $(cat "$T/srun.log")"
$mpirun -np 2 "$seg1" train $args --out "$T/x" > "$T/plain.log" 2>&1 && fail "a trainer without MPI ran as 2 ranks"
grep -q "built without MPI.*aec build --mpi" "$T/plain.log" || fail "a trainer without MPI under mpirun: $(cat "$T/plain.log")"
"$root/bin/aec" build --ranks 2 "$spec" > "$T/ranks.log" 2>&1 && fail "--ranks without --mpi was accepted"
grep -q "give --mpi too" "$T/ranks.log" || fail "--ranks without --mpi: $(cat "$T/ranks.log")"
"$root/bin/aec" build --mpi --ranks 3 --no-compile --out "$T/g3" "$spec" > "$T/ranks.log" 2>&1 && fail "batch 8 split into 3 ranks"
grep -q "does not split into 3 ranks" "$T/ranks.log" || fail "--ranks 3: $(cat "$T/ranks.log")"
echo "mpi: srun without --mpi=pmix, a trainer without MPI and bad --ranks are refused with their reason"
echo "mpi: ok"
