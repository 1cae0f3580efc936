#!/bin/sh
# Makes build/venv, a Python virtual environment that sees Debian's packages (python3-torch,
# python3-onnx, python3-numpy) and adds from PyPI onnxruntime (tests/export/run.sh) and
# tensorboard (tests/watch/run.sh reads the trainer's event files back with it).
# Prints the venv's python on success; fails saying so when PyPI cannot be reached.
set -eu
cd "$(dirname "$0")/.."
venv=build/venv
if [ -x "$venv/bin/python3" ] && "$venv/bin/python3" -c "import onnxruntime, tensorboard" 2>/dev/null; then
  echo "$venv/bin/python3"
  exit 0
fi
/usr/bin/python3 -m venv --system-site-packages "$venv" >&2 ||
  { echo "test-venv.sh: cannot make $venv (Debian's python3-venv is needed)" >&2; exit 1; }
if ! "$venv/bin/python3" -m pip install --quiet --disable-pip-version-check onnxruntime tensorboard >&2; then
  echo "test-venv.sh: cannot install onnxruntime and tensorboard from PyPI into $venv: is PyPI reachable from this machine?" >&2
  exit 1
fi
echo "$venv/bin/python3"
