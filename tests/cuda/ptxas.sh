# ptxas.sh - sourced by the CUDA tests: what nvcc -Xptxas -v must say of every kernel.
# ptxas_check WHAT LOG: no kernel of LOG spills registers, needs a local-memory stack frame
# or uses more than 48 KiB of shared memory; otherwise prints why (naming WHAT) and fails.
# Sets ptxas_smem to the largest shared memory of a kernel, in bytes.
ptxas_check() {
  bad=$(grep -E "bytes stack frame|spill" "$2" | grep -vE "^ *0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads" || true)
  [ -z "$bad" ] || { echo "$1: spills or a stack frame: $bad"; return 1; }
  ptxas_smem=$(grep -oE "[0-9]+ bytes smem" "$2" | awk '$1 > m { m = $1 } END { print m + 0 }')
  [ "$ptxas_smem" -le 49152 ] || { echo "$1: a kernel uses $ptxas_smem bytes of shared memory, over 48 KiB"; return 1; }
}
