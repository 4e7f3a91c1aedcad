#!/usr/bin/env bash
# Debian's OpenBLAS and OpenMP runtime as .deb files in .gpu-debs/, to carry to a device machine that
# lacks them (bench/gpu_check.sh unpacks them there).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .gpu-debs && cd .gpu-debs
apt-get download libopenblas-dev libopenblas-pthread-dev libopenblas0-pthread libopenblas0 libgomp1 libgfortran5 >/dev/null
ls -la
