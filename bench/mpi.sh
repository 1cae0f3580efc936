#!/bin/sh
# make bench-mpi: what data-parallel training adds to a step of each benchmark model (not
# part of make test). Times the one all-reduce of the gradient arena per step
# (bench/allreduce.c) on 2 and 4 ranks of this machine, sets it beside the step time of one
# process from bench/RESULTS.md (make bench), and writes bench/MPI.md with the overhead and
# a model of the scaling over 2-64 nodes on a 25 and a 100 Gb/s network. One machine shows
# correctness (tests/mpi) and this overhead, not scaling.
set -eu
cd "$(dirname "$0")/.."
STEPS=${STEPS:-30}
out=build/bench
mkdir -p "$out"
${MPICC:-mpicc} -O2 -o "$out/allreduce" bench/allreduce.c
sizes=""
for model in dense_ae conv_ae vae unet_landcover; do
  sizes="$sizes $model=$(sed -n 's/.*"param_floats": \([0-9]*\).*/\1/p' "generated/$model/manifest.json")"
done
: > "$out/mpi.jsonl"
for n in 2 4; do
  mpirun --allow-run-as-root --oversubscribe --mca btl self,vader -np $n "$out/allreduce" "$STEPS" $sizes | tee -a "$out/mpi.jsonl"
done
python3 bench/mpi_report.py "$out/mpi.jsonl" bench/RESULTS.md > bench/MPI.md
cat bench/MPI.md
