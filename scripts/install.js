#!/usr/bin/env node
// npm's install hook for vaecf (we own it so npm never runs an implicit `node-gyp rebuild`):
// 1. a native engine that already loads (prebuilds/<platform>-<arch>/ or build/Release) is used as is;
// 2. otherwise, when the optional packages for a source build are installed (node-addon-api, and cmake-js
//    or npm's node-gyp), the engine is built from source (CMake, a C++17 compiler, OpenBLAS, Highway);
// 3. without them, a short message says what did not load and how to build (the install still succeeds).
'use strict';
const { spawnSync } = require('node:child_process');
const path = require('node:path');

const root = path.join(__dirname, '..');
const fromSource = process.env.npm_config_build_from_source === 'true' || process.env.VAECF_BUILD_FROM_SOURCE === '1';

// Why the native engine does not load (null: it loads), found as vaecf finds it (src/native.ts: a local
// build, the platform package @vaecf/<platform>-<arch>-<libc>, prebuilds/); node-gyp-build alone in a
// checkout whose TypeScript is not compiled yet.
function loadError() {
  let native;
  try {
    native = require(path.join(root, 'dist', 'src', 'native.js'));
  } catch {
    try {
      require('node-gyp-build')(root);
      return null;
    } catch (e) {
      return e;
    }
  }
  try {
    native.loadNative();
    return null;
  } catch (e) {
    return e;
  }
}

// The same advice the engine gives when it does not load (dist/src/native.js), or a short fallback.
function advice(err) {
  const reason = err instanceof Error ? err.message : String(err);
  if (reason.startsWith('vaecf: the native engine could not be loaded')) return reason;  // loadNative's own advice
  try {
    return require(path.join(root, 'dist', 'src', 'native.js')).nativeLoadAdvice(reason);
  } catch {
    return `vaecf: the native engine could not be loaded (${reason}). To build it from source: npm install cmake-js node-addon-api, ` +
      'then npm rebuild vaecf (needs CMake, a C++17 compiler, OpenBLAS and Highway).';
  }
}

function installed(name) {
  try {
    require.resolve(`${name}/package.json`, { paths: [root] });
    return true;
  } catch {
    return false;
  }
}

const failure = fromSource ? new Error('a build from source was asked for') : loadError();
if (!failure) {
  console.log('vaecf: using the prebuilt native engine');
  process.exit(0);
}
// Building needs the optional packages node-addon-api (the headers) and cmake-js (or npm's node-gyp). Without
// them, say so in a few lines instead of a build log, and let the install finish: require('vaecf') works
// and the first call that needs the engine gives the same advice.
if (!installed('node-addon-api')) {
  console.warn(`\n${advice(failure)}\n`);
  process.exit(fromSource ? 1 : 0);
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
  '\nvaecf: could not build the native engine. It needs CMake >= 3.19, a C++17 compiler, OpenBLAS and Highway:\n' +
    '  Debian/Ubuntu: sudo apt-get install cmake g++ libopenblas-dev libhwy-dev\n' +
    'then run `npm rebuild vaecf`. Set VAECF_BUILD_FROM_SOURCE=1 to force a source build.\n',
);
process.exit(1);
