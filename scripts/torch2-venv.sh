#!/bin/sh
# Makes build/torch2, a Python virtual environment with PyTorch 2.x from PyPI (pinned below),
# the second column of `make bench`: a newer PyTorch with oneDNN and torch.compile beside
# Debian's python3-torch 1.13, which stays the reference of the tests and CI. It sees Debian's
# packages (numpy); PyPI's x86-64 wheel brings CUDA libraries too (about 7 GB in all) though
# the bench runs it on the CPU. Prints the venv's python on success; fails saying so when PyPI
# cannot be reached.
set -eu
cd "$(dirname "$0")/.."
venv=build/torch2
version=${TORCH2_VERSION:-2.9.1}
if [ -x "$venv/bin/python3" ] && "$venv/bin/python3" -c "import torch; assert torch.__version__.startswith('$version')" 2>/dev/null; then
  echo "$venv/bin/python3"
  exit 0
fi
/usr/bin/python3 -m venv --system-site-packages "$venv" >&2 ||
  { echo "torch2-venv.sh: cannot make $venv (Debian's python3-venv is needed)" >&2; exit 1; }
if ! "$venv/bin/python3" -m pip install --quiet --disable-pip-version-check "torch==$version" >&2; then
  echo "torch2-venv.sh: cannot install torch==$version from PyPI into $venv: is PyPI reachable from this machine?" >&2
  exit 1
fi
"$venv/bin/python3" -c "import torch" >&2 || { echo "torch2-venv.sh: torch $version installed in $venv but does not import" >&2; exit 1; }
echo "$venv/bin/python3"
