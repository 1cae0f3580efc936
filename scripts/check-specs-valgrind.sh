#!/bin/sh
# Runs the front end under valgrind on every example spec, every broken spec and a few
# hostile inputs generated here; fails on any memory error or definite leak.
# Usage: scripts/check-specs-valgrind.sh   (from anywhere; bin/aec must be built)
set -u
cd "$(dirname "$0")/.."
[ -x bin/aec ] || { echo "check-specs-valgrind: bin/aec is not built (make bin/aec)" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "check-specs-valgrind: valgrind is not installed" >&2; exit 2; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/aec-vg-XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
start=$(date +%s)
runs=0 failed=0

# vg LABEL CMD...: one valgrind run; the exit status of aec itself is not judged here.
vg() {
  label=$1; shift
  runs=$((runs + 1))
  if valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
       --log-file="$tmp/vg.log" "$@" >/dev/null 2>&1; [ $? -eq 99 ]; then
    echo "FAIL  $label"; sed 's/^/      /' "$tmp/vg.log"; failed=$((failed + 1))
  else
    echo "ok    $label"
  fi
}

# Hostile inputs: empty, comments only, binary garbage, deep nesting, a long line.
: > "$tmp/empty.ae"
printf '# only a comment\n' > "$tmp/comments.ae"
LC_ALL=C awk 'BEGIN { srand(7); for (i = 0; i < 65536; i++) printf "%c", int(rand() * 256) }' > "$tmp/garbage.ae"
awk 'BEGIN { printf "model m {\n  input x: f32[784]\n  batch 8\n  h = ";
             for (i = 0; i < 20000; i++) printf "("; printf "x";
             for (i = 0; i < 20000; i++) printf ")"; printf "\n}\n" }' > "$tmp/parens.ae"
awk 'BEGIN { printf "model m {\n  input x: f32[784]\n  batch 8\n  h = x";
             for (i = 0; i < 5000; i++) printf " |> relu"; printf " |> nosuch\n}\n" }' > "$tmp/long_line.ae"
awk 'BEGIN { printf "model m {\n  input x: f32[784]\n  batch 8\n  block b0(in) = relu(in)\n";
             for (i = 1; i < 1000; i++) printf "  block b%d(in) = b%d(in)\n", i, i - 1;
             printf "  h = b999(x)\n  loss bce(h, x)\n}\n" }' > "$tmp/chain.ae"
printf 'import enc from "self.ae"\nmodel m {\n  input x: f32[4]\n  batch 1\n  h = enc(x)\n}\n' > "$tmp/self.ae"

for spec in specs/*.ae; do
  vg "check $spec" bin/aec check "$spec"
  vg "summary $spec" bin/aec summary "$spec"
done
# Broken specs, several to one valgrind run.
set -- tests/specs/broken/*.ae
while [ $# -gt 0 ]; do
  batch="" n=0
  while [ $# -gt 0 ] && [ $n -lt 15 ]; do batch="$batch $1"; shift; n=$((n + 1)); done
  # shellcheck disable=SC2086
  vg "check$batch" bin/aec check $batch
done
vg "check (hostile inputs)" bin/aec check "$tmp"/*.ae "$tmp" "$tmp/missing.ae"
vg "summary (binary garbage)" bin/aec summary "$tmp/garbage.ae"

echo "check-specs-valgrind: $runs valgrind runs, $failed failed, $(( $(date +%s) - start )) s"
[ "$failed" -eq 0 ]
