#!/usr/bin/env node
// Builds the CUDA flavour of the addon (build/cuda/vaecf_cuda.node) beside the CPU one: needs nvcc,
// and cuBLAS (from the toolkit, or from the Python wheel via scripts/cuda-libs.sh).
// With --portable: build/cuda-portable/vaecf_cuda.node, the binary of the CUDA package (scripts/pack-check.js).
'use strict';
const { execFileSync, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const nvcc = process.env.CUDACXX || '/usr/local/cuda/bin/nvcc';
if (!fs.existsSync(nvcc)) {
  console.error(`vaecf: no nvcc at ${nvcc} (set CUDACXX): the CUDA flavour needs the CUDA toolkit`);
  process.exit(1);
}
const libs = process.env.VAECF_CUDA_LIBS || execFileSync('bash', [path.join(root, 'scripts', 'cuda-libs.sh')], { encoding: 'utf8' }).trim();
const arch = process.env.VAECF_CUDA_ARCHITECTURES || '80;90';
// --portable: the binary for the CUDA package (static CUDA runtime, no build-machine library paths).
const portable = process.argv.includes('--portable');
const outDir = portable ? 'build-cuda-portable' : 'build-cuda-addon';
const cmakeJs = require.resolve('cmake-js/bin/cmake-js', { paths: [root] });
const r = spawnSync(process.execPath, [cmakeJs, 'compile', '--out', outDir, '--CDVAECF_CUDA=ON', `--CDVAECF_CUDA_LIBS=${libs}`,
  `--CDVAECF_CUDA_PORTABLE=${portable ? 'ON' : 'OFF'}`, `--CDCMAKE_CUDA_COMPILER=${nvcc}`, `--CDCMAKE_CUDA_ARCHITECTURES=${arch}`],
  { cwd: root, stdio: 'inherit' });
if (r.status !== 0) process.exit(r.status ?? 1);
// Kept out of build/Release, where node-gyp-build looks for the CPU flavour.
const dest = path.join(root, 'build', portable ? 'cuda-portable' : 'cuda');
fs.mkdirSync(dest, { recursive: true });
fs.copyFileSync(path.join(root, outDir, 'cuda', 'vaecf_cuda.node'), path.join(dest, 'vaecf_cuda.node'));
console.log(`vaecf: built ${path.relative(root, path.join(dest, 'vaecf_cuda.node'))}`);
