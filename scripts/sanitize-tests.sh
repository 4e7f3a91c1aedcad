#!/usr/bin/env bash
# The C++ engine tests under AddressSanitizer and UndefinedBehaviorSanitizer (any report fails the run):
# every SIMD target this processor runs, the gradient checks, the trainer, the input validation.
# usage: bash scripts/sanitize-tests.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build-sanitize -DVAECF_BUILD_TESTS=ON -DVAECF_CUDA=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" > /dev/null
cmake --build build-sanitize -j2 --target vaecf_core_tests > /dev/null
# Leak checking off: libgomp and OpenBLAS keep their thread pools to the end of the process by design.
ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ./build-sanitize/vaecf_core_tests
