#!/usr/bin/env bash
# The engine on 64-bit ARM: cross-compiles it and its C++ tests for aarch64 (the same sources and
# flags as x86, baseline armv8-a) and runs the tests under qemu-user twice: as a processor with SVE and
# SVE2 (qemu's "max": the NEON, SVE and SVE2 kernels are each tested) and as a Cortex-A72 (NEON only;
# the SVE targets print as skipped). Installs what it needs on Debian/Ubuntu: the cross compiler,
# arm64 multiarch OpenBLAS and Highway, qemu-user.
# usage: bash scripts/arm64-tests.sh [--no-install]
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" != "--no-install" ]; then
  need=()
  for pkg in g++-aarch64-linux-gnu libopenblas-dev:arm64 libhwy-dev:arm64 qemu-user; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
  done
  if [ ${#need[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    export DEBIAN_FRONTEND=noninteractive
    dpkg --print-foreign-architectures | grep -qx arm64 || $SUDO dpkg --add-architecture arm64
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq "${need[@]}" > /dev/null
  fi
fi

cmake -S . -B build-arm64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake -DVAECF_BUILD_TESTS=ON -DVAECF_CUDA=OFF \
  -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build build-arm64 -j2 --target vaecf_core_tests > /dev/null
file build-arm64/vaecf_core_tests | sed 's/,.*//' || true

status=0
for cpu in max cortex-a72; do
  echo "== vaecf_core_tests on aarch64 under qemu-user, -cpu $cpu"
  # One OpenBLAS thread: emulated threads only slow the run down.
  OPENBLAS_NUM_THREADS=1 qemu-aarch64 -cpu "$cpu" -L /usr/aarch64-linux-gnu ./build-arm64/vaecf_core_tests || status=1
done
exit $status
