#!/usr/bin/env bash
# Set up a fresh Debian/Ubuntu machine for vaecf: the system packages the native build needs, then the
# npm packages (which builds the native engine and compiles the TypeScript). Offline-safe: only the
# Debian and npm registries are used.
set -euo pipefail
cd "$(dirname "$0")/.."

# patchelf: the prebuild's bundled libraries get the run path $ORIGIN (scripts/bundle-libs.js).
bash scripts/apt-install.sh cmake g++ libopenblas-dev liblapacke-dev libdnnl-dev libhwy-dev patchelf
# onnxruntime-node (a dev dependency for the ONNX export test) ships its CPU binaries; skip its optional
# CUDA download, which needs the internet.
export ONNXRUNTIME_NODE_INSTALL=skip
npm ci --no-audit --no-fund
