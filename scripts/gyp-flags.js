#!/usr/bin/env node
// Flags for binding.gyp (node-gyp, and prebuildify through it), found by Node instead of shell probes so
// the file reads the same on every platform. usage: node scripts/gyp-flags.js libraries|defines|onednn-libraries
//   libraries   OpenBLAS: its static archive (Debian's openblas-pthread) when there is one, so a prebuilt
//               binary carries its BLAS (its symbols kept private: --exclude-libs); else -lopenblas
//   defines     VAECF_HAVE_ONEDNN when oneDNN's headers are installed
//   onednn-libraries  -ldnnl when they are
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const triplets = { x64: 'x86_64-linux-gnu', arm64: 'aarch64-linux-gnu' };
const arch = process.env.npm_config_arch || process.arch;
const triplet = triplets[arch];

function staticOpenBlas() {
  if (process.platform !== 'linux' || !triplet || process.env.VAECF_DYNAMIC_BLAS === '1') return null;
  const archive = path.join('/usr/lib', triplet, 'openblas-pthread', 'libopenblas.a');
  return fs.existsSync(archive) ? archive : null;
}

function oneDnn() {
  return ['/usr/include', '/usr/local/include'].some((d) => fs.existsSync(path.join(d, 'oneapi', 'dnnl', 'dnnl.hpp')));
}

const what = process.argv[2];
if (what === 'libraries') {
  const archive = staticOpenBlas();
  console.log(archive ? `${archive} -Wl,--exclude-libs,ALL -lpthread` : '-lopenblas');
} else if (what === 'defines') {
  console.log(oneDnn() ? 'VAECF_HAVE_ONEDNN' : '');
} else if (what === 'onednn-libraries') {
  console.log(oneDnn() ? '-ldnnl' : '');
} else {
  console.error('usage: node scripts/gyp-flags.js libraries|defines|onednn-libraries');
  process.exit(2);
}
