#!/usr/bin/env bash
# The CUDA engine through Node on the bare GPU machine (issue 14's Node check): Node, the addons and
# ML-1M come in .gpu-node (scripts/gpu-node.sh), OpenBLAS / oneDNN in .gpu-debs, the compiled TypeScript
# in dist. Runs dist/bench/gpu-node-check.js: Mult-VAE on ML-1M with device 'cpu' and 'cuda', test
# NDCG@100 within 0.005. What comes back ($OUT): gpu-node-result.json, console.txt. Exit code: the
# check's (0 passed, 1 failed, 3 no usable GPU). REHEARSE=1 EPOCHS=2 runs the CPU half where no GPU answers.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/vaecf-gpu-node}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/console.txt") 2>&1
log() { echo "[gpu-node $(date +%T)] $*"; }
NVCC=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
# shellcheck source=bench/gpu_env.sh
source bench/gpu_env.sh
NODE=/tmp/vaecf-node/node
mkdir -p /tmp/vaecf-node
if command -v xz > /dev/null; then xz -dc .gpu-node/node.xz > "$NODE"
else python3 -c "import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], 'wb'))" .gpu-node/node.xz "$NODE"; fi
chmod +x "$NODE"
log "node $("$NODE" --version)"
# The CPU addon where node-gyp-build looks for it; the CUDA flavour by its variable.
mkdir -p build/Release && cp .gpu-node/vaecf.node build/Release/vaecf.node
mkdir -p node_modules
for m in .gpu-node/node_modules/*; do [ -d "node_modules/$(basename "$m")" ] || cp -r "$m" node_modules/; done
export VAECF_CUDA_ADDON=$PWD/.gpu-node/vaecf_cuda.node
"$NODE" dist/bench/gpu-node-check.js --data .gpu-node/ml1m_pairs_rating_ge4.tsv.gz --model "${MODEL:-mult-vae}" --epochs "${EPOCHS:-200}" --json "$OUT/gpu-node-result${MODEL:+-$MODEL}.json" ${REHEARSE:+--rehearse}
status=$?
log "exit code $status"
exit $status
