#!/usr/bin/env node
// npm's install hook for vaecf (we own it so npm never runs an implicit `node-gyp rebuild`):
// 1. a native engine that already loads (prebuilds/<platform>-<arch>/ or build/Release) is used as is;
// 2. otherwise the engine is built from source with cmake-js (CMake, a C++17 compiler, OpenBLAS);
// 3. if cmake-js cannot run, node-gyp builds the same sources from binding.gyp.
'use strict';
const { spawnSync } = require('node:child_process');
const path = require('node:path');

const root = path.join(__dirname, '..');
const fromSource = process.env.npm_config_build_from_source === 'true' || process.env.VAECF_BUILD_FROM_SOURCE === '1';

function loads() {
  try {
    require('node-gyp-build')(root);
    return true;
  } catch {
    return false;
  }
}

if (!fromSource && loads()) {
  console.log('vaecf: using the prebuilt native engine');
  process.exit(0);
}

function run(args) {
  return spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit', env: process.env }).status === 0;
}

let cmakeJs = null;
try {
  cmakeJs = require.resolve('cmake-js/bin/cmake-js', { paths: [root] });
} catch {
  /* not installed */
}
console.log('vaecf: building the native engine from source');
if (cmakeJs && run([cmakeJs, 'compile', '--out', 'build'])) process.exit(0);

let nodeGyp = null;
try {
  nodeGyp = require.resolve('node-gyp/bin/node-gyp.js', { paths: [root, path.dirname(process.execPath)] });
} catch {
  /* npm ships node-gyp */
  const guess = path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
  nodeGyp = require('node:fs').existsSync(guess) ? guess : null;
}
if (nodeGyp && run([nodeGyp, 'rebuild'])) process.exit(0);

console.error(
  '\nvaecf: could not build the native engine. It needs CMake >= 3.19, a C++17 compiler and OpenBLAS:\n' +
    '  Debian/Ubuntu: sudo apt-get install cmake g++ libopenblas-dev\n' +
    'then run `npm rebuild vaecf`. Set VAECF_BUILD_FROM_SOURCE=1 to force a source build.\n',
);
process.exit(1);
