#!/usr/bin/env bash
# cuBLAS headers and libraries for building the CUDA backend on a machine whose CUDA toolkit lacks
# them (here they come only as a Python wheel): downloads the wheel with pip (from the local index), unpacks include/ and lib/ into .cuda-libs/ and adds the unversioned .so links.
# Prints the folder to pass as -DVAECF_CUDA_LIBS=...
set -euo pipefail
cd "$(dirname "$0")/.."
out=.cuda-libs
if [ ! -f "$out/ready" ]; then
  rm -rf "$out" && mkdir -p "$out/wheels"
  python3 -m pip download --no-deps -q -d "$out/wheels" nvidia-cublas > "$out/pip.log" 2>&1 \
    || { cat "$out/pip.log" >&2; exit 1; }
  python3 - "$out" <<'PY'
import sys, zipfile, glob
out = sys.argv[1]
for w in glob.glob(out + "/wheels/*.whl"):
    z = zipfile.ZipFile(w)
    z.extractall(out, [n for n in z.namelist() if "/include/" in n or "/lib/" in n])
PY
  for lib in "$out"/nvidia/cu*/lib/lib*.so.*; do
    base="${lib%%.so.*}.so"
    [ -e "$base" ] || ln -s "$(basename "$lib")" "$base"
  done
  rm -rf "$out/wheels"
  touch "$out/ready"
fi
ls -d "$PWD/$out"/nvidia/cu*
