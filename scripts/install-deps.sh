#!/bin/sh
# Installs the Debian packages that aec's build, demo and tests need, when missing.
# As root it runs apt-get; otherwise it prints the exact apt-get line and fails.
# Usage: scripts/install-deps.sh [build|test|demo|torch]   (default: build)
set -eu

build_pkgs="make gcc flex bison libopenblas-dev libtiff-dev zlib1g-dev libpng-dev"
test_pkgs="libcriterion-dev valgrind pkg-config clang g++ libclang-rt-14-dev python3 python3-torch python3-numpy python3-onnx python3-venv gdal-bin python3-gdal chromium openmpi-bin libopenmpi-dev slurm-wlm munge iproute2"
data_pkgs="dataset-fashion-mnist"
torch_pkgs="python3 python3-torch python3-numpy python3-gdal"

case "${1:-build}" in
  build) want="$build_pkgs" ;;
  test)  want="$build_pkgs $test_pkgs $data_pkgs" ;;
  demo)  want="$build_pkgs $data_pkgs" ;;
  torch) want="$build_pkgs $data_pkgs $torch_pkgs" ;;
  *) echo "install-deps.sh: unknown set '$1' (expected build, test, demo or torch)" >&2; exit 2 ;;
esac

missing=""
for p in $want; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "aec needs these Debian packages:$missing" >&2
  echo "run as root:  apt-get update && apt-get install -y --no-install-recommends$missing" >&2
  exit 1
fi
echo "installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends $missing
