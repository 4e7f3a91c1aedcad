#!/usr/bin/env bash
# The GPU check, for one call of the device tool (no Node, no network there; see .library/device):
# builds the engine and the CUDA backend for the card, checks every CUDA kernel path against the CPU
# engine on fresh random inputs, times ML-20M-shaped epochs, and times PyTorch CUDA running the
# reference formulation on the same card (fp32, TF32, bf16 autocast), with a full 200-epoch run of
# vaecf (FULL_PRECISION, default bf16; stopped after FULL_SECONDS, default 150, to fit one device call).
# Prints a table; logs go to $OUT when set.
#
# Needs on the device: nvcc, CMake, python3 with torch (its nvidia-cublas / nvidia-cusparse packages
# give the headers and libraries), and OpenBLAS (+ oneDNN for the bf16 reference) for the CPU engine.
# Where they are missing, carry Debian's packages: `bash scripts/gpu-debs.sh` here makes .gpu-debs/
# (pass carry: [".gpu-debs"]; about 19 MB).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/vaecf-gpu-check}
mkdir -p "$OUT"
log() { echo "[gpu-check] $*"; }

# OpenBLAS / oneDNN: the system's, or Debian's carried in .gpu-debs (scripts/gpu-debs.sh), unpacked into a
# private folder (unpacking into / can break the image) and named to CMake explicitly.
DEPS=()
if [ -d .gpu-debs ] && ! ldconfig -p | grep -q libopenblas; then
  R=/tmp/vaecf-debs
  mkdir -p "$R"
  for d in .gpu-debs/*.deb; do dpkg -x "$d" "$R"; done
  L=$R/usr/lib/x86_64-linux-gnu
  DEPS=(-DOPENBLAS_LIB="$L/openblas-pthread/libopenblas.so" -DCBLAS_INCLUDE="$R/usr/include/x86_64-linux-gnu/openblas-pthread"
        -DDNNL_LIB="$L/libdnnl.so" -DDNNL_INCLUDE="$R/usr/include")
  export LD_LIBRARY_PATH="$L/openblas-pthread:$L${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  log "OpenBLAS and oneDNN from .gpu-debs (unpacked in $R)"
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"

# cuBLAS / cuSPARSE: the toolkit's, or the nvidia-* Python packages beside torch.
LIBS=$(python3 - <<'PY'
import importlib, os
for mod in ("nvidia.cu13", "nvidia.cublas", "nvidia.cu12"):
    try:
        m = importlib.import_module(mod)
        print(os.path.dirname(m.__file__) if m.__file__ else list(m.__path__)[0]); break
    except Exception:
        pass
PY
)
log "cuBLAS/cuSPARSE from: ${LIBS:-the CUDA toolkit}"
EXTRA=()
if [ -n "$LIBS" ]; then
  mkdir -p /tmp/vaecf-cuda-libs/include /tmp/vaecf-cuda-libs/lib
  for sub in "$LIBS" "$LIBS"/../cusparse "$LIBS"/../cublas "$LIBS"/../nvjitlink; do
    [ -d "$sub/include" ] && cp -rn "$sub"/include/* /tmp/vaecf-cuda-libs/include/ 2>/dev/null
    [ -d "$sub/lib" ] && cp -n "$sub"/lib/*.so* /tmp/vaecf-cuda-libs/lib/ 2>/dev/null
  done
  for lib in /tmp/vaecf-cuda-libs/lib/lib*.so.*; do base="${lib%%.so.*}.so"; [ -e "$base" ] || ln -s "$(basename "$lib")" "$base"; done
  EXTRA=(-DVAECF_CUDA_LIBS=/tmp/vaecf-cuda-libs)
fi
log "building (sm_90)"
cmake -S . -B build-gpu -DVAECF_BUILD_TESTS=ON -DVAECF_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 "${EXTRA[@]}" "${DEPS[@]}" > "$OUT/cmake.log" 2>&1 \
  && cmake --build build-gpu -j16 >> "$OUT/cmake.log" 2>&1 || { tail -40 "$OUT/cmake.log"; exit 1; }

log "kernels against the CPU engine, then ML-20M-shaped epochs (fp32, tf32, bf16, streamed) and a full run"
FULL_PRECISION=${FULL_PRECISION:-bf16}
./build-gpu/vaecf_harness gpu-check --full-epochs 200 --full-seconds "${FULL_SECONDS:-150}" --full-precision "$FULL_PRECISION" 2>&1 | tee "$OUT/vaecf.txt"
status=${PIPESTATUS[0]}

log "PyTorch CUDA, reference formulation, same shape"
python3 - <<'PY' > /tmp/vaecf-shape.txt
import numpy as np, os
rng = np.random.default_rng(1)
users, items = 116677, 20108
w = 1.0 / np.arange(1, items + 1); w /= w.sum()
n = np.minimum(items // 2, 5 + rng.exponential(68.0, users).astype(int))
indptr = np.concatenate([[0], np.cumsum(n)]).astype(np.int64)
idx = np.concatenate([rng.choice(items, k, replace=False, p=w) for k in n]).astype(np.int32)
os.makedirs("/tmp/vaecf-torch", exist_ok=True)
indptr.tofile("/tmp/vaecf-torch/indptr.i64"); idx.tofile("/tmp/vaecf-torch/indices.i32")
open("/tmp/vaecf-torch/shape.txt", "w").write(f"{users} {items}")
PY
for p in fp32 tf32 bf16; do
  python3 bench/torch_epoch.py /tmp/vaecf-torch --device cuda --batches 100 --precision $p 2>&1 | tee -a "$OUT/torch.txt"
done
echo
echo "=== summary ==="
cat "$OUT/gpu.txt"
grep -E "Mult-|ML-20M|epochs|full run|checks" "$OUT/vaecf.txt"
cat "$OUT/torch.txt"
exit $status
