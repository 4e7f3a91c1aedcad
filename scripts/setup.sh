#!/usr/bin/env bash
# Set up a fresh Debian/Ubuntu machine for vaecf: the system packages the native build needs, then the
# npm packages (which builds the native engine and compiles the TypeScript). Offline-safe: only the
# Debian and npm registries are used.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for pkg in cmake g++ libopenblas-dev liblapacke-dev libdnnl-dev libhwy-dev; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${need[@]}"
fi
# onnxruntime-node (a dev dependency for the ONNX export test) ships its CPU binaries; skip its optional
# CUDA download, which needs the internet.
export ONNXRUNTIME_NODE_INSTALL=skip
npm ci --no-audit --no-fund
