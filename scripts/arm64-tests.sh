#!/usr/bin/env bash
# The engine on 64-bit ARM: cross-compiles it and its C++ tests for aarch64 (the same sources and
# flags as x86, baseline armv8-a) and runs the tests under qemu-user: as processors with SVE and SVE2
# at three vector lengths (the NEON, SVE and SVE2 kernels are each tested) and as a Cortex-A72 (NEON
# only; the SVE targets print as skipped). Installs what it needs on Debian/Ubuntu: the cross compiler,
# arm64 multiarch OpenBLAS and Highway, qemu-user.
# usage: bash scripts/arm64-tests.sh [--no-install]
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" != "--no-install" ]; then
  bash scripts/apt-install.sh g++-aarch64-linux-gnu libopenblas-dev:arm64 libhwy-dev:arm64 qemu-user
fi

cmake -S . -B build-arm64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake -DVAECF_BUILD_TESTS=ON -DVAECF_CUDA=OFF \
  -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build build-arm64 -j2 --target vaecf_core_tests > /dev/null
file build-arm64/vaecf_core_tests | sed 's/,.*//' || true

# qemu's "max" processor at its default SVE length (512 bits), at 128 bits (Neoverse N2, Graviton 4)
# and at 2048 bits (the architecture's largest), then a Cortex-A72 (NEON only: Graviton 1, Raspberry Pi 4).
# One thread: qemu-user 7.2 (Debian 12) hangs creating a second guest thread on this machine (a plain
# std::thread program hangs too), so OpenMP and OpenBLAS are held to one (OMP_THREAD_LIMIT caps the
# engine's num_threads(2)); the multi-threaded paths are tested natively on x86.
status=0
for cpu in max max,sve-default-vector-length=16 max,sve-default-vector-length=256 cortex-a72; do
  echo "== vaecf_core_tests on aarch64 under qemu-user, -cpu $cpu"
  OMP_THREAD_LIMIT=1 OPENBLAS_NUM_THREADS=1 timeout 600 qemu-aarch64 -cpu "$cpu" -L /usr/aarch64-linux-gnu ./build-arm64/vaecf_core_tests || status=1
done
exit $status
