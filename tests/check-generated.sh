#!/bin/sh
# Fails when generated/ is stale: regenerates every spec into build/ and compares: the C
# target's files and the CUDA target's model.cu (with its launch table in manifest.json).
# After a change to the compiler, `make generated` updates generated/ for the commit.
set -eu
cd "$(dirname "$0")/.."
rm -rf build/gen-check
mkdir -p build/gen-check
stale=0
for spec in specs/*.ae; do
  name=$(basename "$spec" .ae)
  bin/aec build --target cuda --no-compile --out "build/gen-check/$name" "$spec" >/dev/null
  if ! diff -r "generated/$name" "build/gen-check/$name" >/dev/null 2>&1; then
    echo "generated/$name is stale or missing (run 'make generated' and commit)" >&2
    stale=1
  fi
done
for dir in generated/*/; do
  name=$(basename "$dir")
  [ -f "specs/$name.ae" ] || { echo "generated/$name has no spec specs/$name.ae" >&2; stale=1; }
done
[ $stale -eq 0 ] && echo "generated/: up to date for $(ls specs/*.ae | wc -l) specs"
exit $stale
