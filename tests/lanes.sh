#!/bin/sh
# lanes.sh - runs test scripts in lanes side by side: each argument is one lane, a list of
# commands separated by ';' run one after another (a lane stops at its first failure).
# make test runs so the scripts that mostly keep one core busy: the CUDA target's tests (the
# emulator at OMP_NUM_THREADS=1, the trainers at --threads 1), the PyTorch cross-check, the
# GIS, steering, valgrind, watch and MPI tests; two lanes fill a 2-core machine. Scripts in
# different lanes write to different folders (each its own under build/ or a temporary one).
# Every lane's output is printed when all have ended, lane by lane, with its time; the exit
# status is 1 when any lane failed, and its failing command is named.
#   tests/lanes.sh "tests/a.sh; tests/b.sh" "tests/c.sh quick"
set -u
cd "$(dirname "$0")/.."
dir=build/lanes
rm -rf "$dir"
mkdir -p "$dir"
n=0
for lane in "$@"; do
  n=$((n + 1))
  (
    start=$(date +%s)
    IFS=';'
    for cmd in $lane; do
      unset IFS
      cmd=$(echo "$cmd" | sed 's/^ *//; s/ *$//')
      [ -n "$cmd" ] || continue
      t=$(date +%s)
      echo "== $cmd"
      # shellcheck disable=SC2086
      $cmd || { echo "$cmd" >"$dir/$n.failed"; echo "== $cmd FAILED after $(( $(date +%s) - t )) s"; exit 1; }
      echo "== $cmd: $(( $(date +%s) - t )) s"
    done
    echo "== lane $n: $(( $(date +%s) - start )) s"
  ) >"$dir/$n.log" 2>&1 &
done
wait
failed=0
i=0
while [ $i -lt $n ]; do
  i=$((i + 1))
  cat "$dir/$i.log"
  if [ -f "$dir/$i.failed" ]; then
    failed=1
    echo "tests/lanes.sh: lane $i failed at: $(cat "$dir/$i.failed")" >&2
  fi
done
exit $failed
