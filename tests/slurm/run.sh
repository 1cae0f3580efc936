#!/bin/sh
# Data-parallel training under a real Slurm (docs/cluster.md): a single-node cluster started
# here under a temporary folder (tests/slurm/cluster.sh: munged, slurmctld, slurmd as root),
#  1. srun --mpi=pmix -n 2 trains tests/mpi/mpi_seg.ae to the losses of one process;
#  2. srun -n 2 without the plugin stops with a message naming --mpi=pmix;
#  3. an sbatch script (the pattern of docs/cluster.md: resume when last.ckpt exists) is
#     preempted with scancel --signal=TERM: both ranks stop after the same step, rank 0
#     writes last.ckpt; the same script submitted again resumes and finishes;
# then stops the daemons by their PIDs. A few seconds.
set -eu
cd "$(dirname "$0")/../.."
root=$PWD
T=$(mktemp -d)
. tests/slurm/cluster.sh
trap 'cluster_stop; rm -rf "$T"' EXIT
fail() { echo "slurm: FAIL: $*" >&2; exit 1; }
spec=$root/tests/mpi/mpi_seg.ae
args="--data $T/data --threads 1 --quiet"

make -s mpi >/dev/null
mkdir -p "$T/r1" "$T/r2"
(cd "$T/r1" && "$root/bin/aec" build --out gen "$spec" > build.log 2>&1) || fail "aec build"
(cd "$T/r2" && "$root/bin/aec" build --mpi --ranks 2 --out gen "$spec" > build.log 2>&1) || fail "aec build --mpi"
seg1=$T/r1/bin/mpi_seg seg2=$T/r2/bin/mpi_seg
"$seg1" train $args --out "$T/one" > "$T/one.log" 2>&1 || { cat "$T/one.log"; fail "one process"; }

t0=$(date +%s%N)
cluster_start "$T/cluster" || fail "the cluster did not start"
echo "slurm: munged, slurmctld and slurmd up, the node idle, in $(( ($(date +%s%N) - t0) / 1000000 )) ms"

# ---- 1. srun with PMIx
cd "$T"
srun --mpi=pmix -n 2 "$seg2" train $args --out "$T/srun" > "$T/srun.log" 2>&1 || { cat "$T/srun.log"; fail "srun --mpi=pmix -n 2"; }
python3 "$root/tests/mpi/compare.py" losses "$T/one/train.csv" "$T/srun/train.csv" 1e-6 || fail "the losses of srun -n 2"
echo "slurm: srun --mpi=pmix -n 2: the losses of one process"

# ---- 2. srun without an MPI plugin
srun -n 2 "$seg2" train $args --out "$T/noplugin" > "$T/noplugin.log" 2>&1 && fail "srun without --mpi=pmix trained"
grep -q -- "without an MPI plugin.*--mpi=pmix" "$T/noplugin.log" || { cat "$T/noplugin.log"; fail "no message naming --mpi=pmix"; }
echo "slurm: srun -n 2 without a plugin: $(grep -m1 -o 'started by srun.*alone' "$T/noplugin.log")"

# ---- 3. an sbatch job, preempted by SIGTERM, resubmitted
cat > "$T/job.sh" <<EOF
#!/bin/sh
#SBATCH --ntasks=2
#SBATCH --output=$T/job-%j.log
#SBATCH --signal=TERM@60
resume=""
[ -f "$T/batch/last.ckpt" ] && resume=--resume
srun --mpi=pmix "$seg2" train $args --out "$T/batch" --epochs \${EPOCHS:-100000} \$resume
EOF
job=$(sbatch --parsable "$T/job.sh") || fail "sbatch"
for i in $(seq 1 100); do [ -f "$T/batch/last.ckpt" ] && break; sleep 0.1; done
[ -f "$T/batch/last.ckpt" ] || fail "the batch job wrote no epoch in 10 s: $(cat "$T"/job-*.log)"
sleep 0.3
scancel --signal=TERM "$job"
cluster_wait "[ -z \"\$(squeue -h -j $job 2>/dev/null)\" ]" 100 || fail "job $job still runs 10 s after SIGTERM"
grep -Eq "interrupted at (step|the end of epoch) .*: wrote '$T/batch/last.ckpt'" "$T/job-$job.log" ||
  { cat "$T/job-$job.log"; fail "SIGTERM did not make rank 0 write last.ckpt"; }
epoch=$(tail -n 1 "$T/batch/train.csv" | cut -d, -f1)
job2=$(EPOCHS=$((epoch + 1)) sbatch --parsable --wait "$T/job.sh") || { cat "$T"/job-*.log; fail "the resubmitted job failed"; }
[ "$(tail -n 1 "$T/batch/train.csv" | cut -d, -f1)" = $((epoch + 1)) ] || fail "the resubmitted job did not finish epoch $((epoch + 1))"
echo "slurm: sbatch job $job preempted ($(grep -Eo 'interrupted at (step [0-9]* \([^)]*\)|the end of epoch [0-9]*)' "$T/job-$job.log")), job $job2 resumed to epoch $((epoch + 1))"
cd "$root"
echo "slurm: ok"
