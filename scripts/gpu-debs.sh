#!/usr/bin/env bash
# Debian's OpenBLAS, oneDNN (with the runtime libraries they need) and Highway's headers as .deb files in .gpu-debs/
# (about 19 MB), to carry to a device machine that lacks them: bench/gpu_check.sh unpacks them into a
# private folder there (never into /) and points the build at it.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .gpu-debs && cd .gpu-debs
apt-get download libopenblas-dev libopenblas-pthread-dev libopenblas0-pthread libopenblas0 libgfortran5 libquadmath0 \
  libdnnl2 libdnnl-dev ocl-icd-libopencl1 libhwy-dev 2>/dev/null
ls -la
