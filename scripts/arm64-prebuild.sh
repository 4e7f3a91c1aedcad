#!/usr/bin/env bash
# The linux-arm64 platform package, cross-built here: prebuildify with the aarch64 cross compiler
# (OpenBLAS's arm64 archive linked in, scripts/gyp-flags.js), its libraries bundled and its glibc /
# libstdc++ needs checked (scripts/bundle-libs.js), then @vaecf/linux-arm64-gnu made
# (scripts/platform-package.js). Node itself cannot run under qemu-user on this machine (it spins before
# its first thread, qemu 7.2 and 10.0), so the addon is checked as far as a program can without Node:
# native/tests/dlopen_check.c loads it under qemu-user, with the system's arm64 libraries out of reach,
# which proves every library it needs resolves (bundled, or the C / C++ runtime).
# Needs what scripts/arm64-tests.sh installs. usage: bash scripts/arm64-prebuild.sh [--no-install]
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" != "--no-install" ]; then
  bash scripts/apt-install.sh g++-aarch64-linux-gnu libopenblas-dev:arm64 libhwy-dev:arm64 qemu-user patchelf
fi
out=prebuilds/linux-arm64
rm -rf "$out"
# node-gyp needs only the headers of a Node release (N-API: the same for every architecture).
nodedir=$(node -p "require('node:path').resolve(process.execPath, '..', '..')")
[ -f "$nodedir/include/node/node_api.h" ] || { echo "arm64-prebuild: no Node headers in $nodedir/include/node"; exit 1; }
gypbin=$(dirname "$(node -p "require.resolve('npm/package.json', { paths: [require('node:path').dirname(process.execPath) + '/../lib/node_modules'] })")")/bin/node-gyp-bin
staging=$(mktemp -d)
cp -r package.json binding.gyp native scripts "$staging"/
ln -s "$PWD/node_modules" "$staging/node_modules"
PATH="$gypbin:$PATH" CC=aarch64-linux-gnu-gcc CXX=aarch64-linux-gnu-g++ LINK=aarch64-linux-gnu-g++ AR=aarch64-linux-gnu-ar \
  VAECF_TARGET_ARCH=arm64 npm_config_nodedir="$nodedir" PREBUILD_STRIP_BIN=aarch64-linux-gnu-strip \
  node node_modules/prebuildify/bin.js --napi --strip --tag-libc --arch arm64 --cwd "$staging" --out "$PWD" > /tmp/vaecf-arm64-prebuild.log 2>&1 \
  || { tail -30 /tmp/vaecf-arm64-prebuild.log; exit 1; }
rm -rf "$staging"
addon=$(ls "$out"/*.node)
echo "arm64-prebuild: $(file -b "$addon" | cut -d, -f1-2)"
node scripts/bundle-libs.js "$out"
# Load it under qemu-user with only the cross toolchain's C / C++ runtime in reach (-L /usr/aarch64-linux-gnu;
# the multiarch folder /usr/lib/aarch64-linux-gnu, where the system's arm64 OpenBLAS and libgomp are, is not).
# The addon binds every symbol at load (-z now), so each N-API function it uses gets a stub here.
readelf --dyn-syms -W "$addon" | awk '$7 == "UND" && $8 ~ /^napi_/ { sub(/@.*/, "", $8); print "void " $8 "(void) {}" }' | sort -u \
  | grep -v '^void napi_module_register(' > /tmp/vaecf-napi-stubs.c
echo "arm64-prebuild: $(wc -l < /tmp/vaecf-napi-stubs.c) N-API functions stubbed for the load check"
aarch64-linux-gnu-gcc -O1 -rdynamic -o /tmp/vaecf-dlopen-check native/tests/dlopen_check.c /tmp/vaecf-napi-stubs.c -ldl
# One thread: OpenBLAS starts its thread server when it loads, and qemu-user here hangs creating a guest thread.
timeout 120 qemu-aarch64 -L /usr/aarch64-linux-gnu -E OPENBLAS_NUM_THREADS=1 -E OMP_THREAD_LIMIT=1 /tmp/vaecf-dlopen-check "$addon"
node scripts/platform-package.js "$out"
