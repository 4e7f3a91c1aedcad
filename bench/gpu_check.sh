#!/usr/bin/env bash
# The GPU check, made for one call of the device tool (a bare NVIDIA machine: nvcc, CMake, python3 with
# torch; no Node, no apt, no network). It builds the engine and the CUDA backend for the card, checks
# every CUDA kernel path against the CPU engine on fresh random inputs (bench results: each check with its
# relative errors and pass / fail), times ML-20M-shaped epochs per precision with per-phase device times,
# runs a full 200-epoch training (FULL_PRECISION, default bf16; stopped after FULL_SECONDS, default 150),
# and times PyTorch CUDA running the reference formulation on the same generated matrix, in the same run.
# The opt-in schedules (CudaOptions adamStream / graphs; compiled-only until this script runs them) are
# checked against the serial one (weights, moments, losses over two epochs in fp32 and bf16) and timed as
# extra speed rows ("bf16 + Adam stream", "bf16 + CUDA graphs", both; fp32 with both).
#
# Prepare here (once):  bash scripts/gpu-debs.sh        # OpenBLAS + oneDNN .debs into .gpu-debs/ (19 MB)
# Device tool call:     run(command: "VAECF_COMMIT=<sha> bash bench/gpu_check.sh", carry: [".gpu-debs"], timeout_s: 330)
#                       On an H200 (2026-11-30) the whole script took 110-125 s after a start of about 30 s:
#                       build 22 s, checks about 15 s, per-phase times and epochs about 15 s, the 200-epoch run
#                       38-46 s, PyTorch 3 x 10-14 s. CHECKS_ONLY=1 stops after the agreement checks.
# What comes back ($OUT): gpu-result.json (everything, for bench/results/gpu-<date>.json), vaecf.txt,
# torch.txt, versions.txt, build.log. Exit code: the harness's (0 all checks passed, 1 a check failed,
# 3 no usable GPU), or 1 when the build fails.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/vaecf-gpu-check}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/console.txt") 2>&1
log() { echo "[gpu-check $(date +%T)] $*"; }

# ---- versions first ----
{
  echo "date: $(date -u +%FT%TZ)"
  echo "commit: ${VAECF_COMMIT:-unknown}"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,clocks.mem,power.limit,temperature.gpu --format=csv 2>&1
  nvidia-smi 2>&1 | grep -m1 "CUDA Version" || true
  NVCC=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
  echo "nvcc: $NVCC"; "$NVCC" --version 2>&1 | tail -2
  cmake --version 2>&1 | head -1
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU')" 2>&1
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2) ($(nproc) cores)"
} | tee "$OUT/versions.txt"
NVCC=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)

# ---- OpenBLAS / oneDNN (the system's, or Debian's carried in .gpu-debs) and cuBLAS: bench/gpu_env.sh
# sets DEPS and EXTRA (CMake flags) and LD_LIBRARY_PATH ----
# shellcheck source=bench/gpu_env.sh
source bench/gpu_env.sh

# ---- build (sm_90: the H100 / H200) ----
log "building"
BUILD=${BUILD:-build-gpu}
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DVAECF_BUILD_TESTS=ON -DVAECF_CUDA=ON -DCMAKE_CUDA_COMPILER="$NVCC" \
  -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCH:-90}" "${EXTRA[@]}" "${DEPS[@]}" > "$OUT/build.log" 2>&1 \
  && cmake --build "$BUILD" -j"$(nproc)" --target vaecf_harness >> "$OUT/build.log" 2>&1 \
  || { tail -40 "$OUT/build.log"; log "BUILD FAILED"; exit 1; }
log "built"

# ---- the engine: agreement checks, per-phase times, epochs, full run ----
mkdir -p /tmp/vaecf-torch
ARGS=(--json "$OUT/vaecf.json" --commit "${VAECF_COMMIT:-unknown}")
if [ -n "${CHECKS_ONLY:-}" ]; then ARGS+=(--checks-only)
else ARGS+=(--write-csr /tmp/vaecf-torch --full-epochs 200 --full-seconds "${FULL_SECONDS:-150}" --full-precision "${FULL_PRECISION:-bf16}"); fi
log "vaecf_harness gpu-check ${ARGS[*]}"
HARNESS=$BUILD/vaecf_harness; [[ $HARNESS == /* ]] || HARNESS=./$HARNESS
"$HARNESS" gpu-check "${ARGS[@]}" 2>&1 | tee "$OUT/vaecf.txt"
status=${PIPESTATUS[0]}
log "harness exit code $status"

# ---- PyTorch CUDA, the reference formulation, on the same matrix ----
: > "$OUT/torch.txt"
if [ -z "${CHECKS_ONLY:-}" ] && [ -f /tmp/vaecf-torch/shape.txt ]; then
  for p in fp32 tf32 bf16; do
    log "PyTorch $p"
    python3 bench/torch_epoch.py /tmp/vaecf-torch --device cuda --batches "${TORCH_BATCHES:-100}" --precision $p 2>&1 | tee -a "$OUT/torch.txt"
  done
fi

# ---- one JSON with everything ----
python3 - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
r = {}
try:
    r = json.load(open(os.path.join(out, "vaecf.json")))
except Exception as e:
    r = {"error": f"no harness report: {e}", "passed": False}
r["versions"] = open(os.path.join(out, "versions.txt")).read().splitlines()
torch = []
for line in open(os.path.join(out, "torch.txt")):
    line = line.strip()
    if line.startswith("{"):
        torch.append(json.loads(line))
r["pytorch"] = torch
json.dump(r, open(os.path.join(out, "gpu-result.json"), "w"), indent=2)
print("\n=== summary ===")
for v in r["versions"][:4]:
    print(v)
for c in r.get("checks", []):
    print(("ok  " if c.get("passed") else "FAIL"), c["check"], c.get("error", ""))
for s in r.get("speed", []):
    print(f"vaecf {s['mode']:<36} {s['epoch_s']:.3f} s/epoch, 200 epochs ~{s['epochs_200_estimate_s']:.1f} s")
if "full_run" in r:
    f = r["full_run"]
    print(f"vaecf full run {f['precision']}: {f['epochs_run']} epochs in {f['seconds']:.1f} s")
for t in torch:
    print(f"torch {t['precision']:<5} {t['seconds_per_epoch_extrapolated']:.3f} s/epoch ({t['seconds_per_batch']*1e3:.2f} ms/batch)")
print("passed:", r.get("passed"))
PY
rm -f "$OUT/vaecf.json"
exit $status
