#!/usr/bin/env node
// Builds and runs the C++ engine tests (no Node inside): gradients against finite differences in double
// precision, sparse against dense forward, Adam, determinism, validation, and every SIMD target this
// processor runs against a double reference (the binary forces each in turn; the others print as skipped).
'use strict';
const { spawnSync } = require('node:child_process');
const path = require('node:path');

const root = path.join(__dirname, '..');
const build = path.join(root, 'build-tests');
function step(cmd, args) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
step('cmake', ['-S', root, '-B', build, '-DVAECF_BUILD_TESTS=ON', '-DCMAKE_BUILD_TYPE=Release']);
step('cmake', ['--build', build, '-j2']);
step(path.join(build, 'vaecf_core_tests'), []);
