#!/usr/bin/env bash
# Prepares .gpu-node/ here, for bench/gpu_node_check.sh on the GPU machine (which has no Node): this Node
# binary (xz), the CPU addon and the portable CUDA flavour built here, node-gyp-build, and ML-1M's pairs
# file (gzip). With .gpu-debs (scripts/gpu-debs.sh) and dist/ it is all the check needs, about 48 MB.
# Device tool call:  run(command: "OUT=$OUT bash bench/gpu_node_check.sh", carry: [".gpu-debs", ".gpu-node", "dist"], timeout_s: 300)
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .gpu-node
[ -d .gpu-debs ] || bash scripts/gpu-debs.sh
node_bin=$(command -v node)
if [ ! -f .gpu-node/node.xz ] || [ "$node_bin" -nt .gpu-node/node.xz ]; then
  echo "compressing $node_bin ($(node --version))"
  xz -T2 -6 -c "$node_bin" > .gpu-node/node.xz
fi
gzip -9 -c ../shared/data/ml-1m/ml1m_pairs_rating_ge4.tsv > .gpu-node/ml1m_pairs_rating_ge4.tsv.gz
npm run build:ts > /dev/null
[ -f build/Release/vaecf.node ] || npm run build:native > /dev/null
libs=$(bash scripts/cuda-libs.sh)
VAECF_CUDA_LIBS="$libs" node scripts/build-cuda.js --portable > /dev/null
cp build/Release/vaecf.node .gpu-node/vaecf.node
cp build/cuda-portable/vaecf_cuda.node .gpu-node/vaecf_cuda.node
# What dist/src needs at run time on the way to train() (vega is loaded only for plots, cmake-js only for
# source builds): node-gyp-build, yauzl (and pend), csv-parse.
rm -rf .gpu-node/node_modules && mkdir -p .gpu-node/node_modules
for m in node-gyp-build yauzl pend csv-parse; do cp -r node_modules/$m .gpu-node/node_modules/; done
du -sh .gpu-node .gpu-debs dist
echo 'carry: [".gpu-debs", ".gpu-node", "dist"]; command: OUT=$OUT bash bench/gpu_node_check.sh'
