#!/usr/bin/env node
// Flags for binding.gyp (node-gyp, and prebuildify through it), found by Node instead of shell probes so
// the file reads the same on every platform. usage: node scripts/gyp-flags.js libraries|defines|includes
//   libraries   Linux: OpenBLAS's static archive (Debian's openblas-pthread) when there is one, so a
//               prebuilt binary carries its BLAS (its symbols kept private: --exclude-libs), else
//               -lopenblas; and -ldnnl where oneDNN is installed for this architecture. macOS: the
//               Accelerate framework. Windows: openblas.lib from VAECF_OPENBLAS_DIR (vcpkg's or a release).
//   defines     VAECF_HAVE_ONEDNN where oneDNN is installed; VAECF_USE_ACCELERATE on macOS
//   includes    the folders of cblas.h and Highway's headers outside the compiler's default paths
// (macOS and Windows: written for those builds, not yet run on them; see .github/workflows/platforms.yml.)
// Libraries built from source instead of Debian's (the manylinux_2_28 prebuild in that workflow):
//   VAECF_OPENBLAS_STATIC  an OpenBLAS static archive (with LAPACK) to link instead of Debian's
//   VAECF_ONEDNN_DIR       a oneDNN 2.x install prefix (include/, lib/ or lib64/) instead of Debian's
//   VAECF_INCLUDE_DIRS     more header folders (Highway's, for one), separated by the platform's path delimiter
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const triplets = { x64: 'x86_64-linux-gnu', arm64: 'aarch64-linux-gnu' };
// The target architecture: VAECF_TARGET_ARCH for a cross build (scripts/arm64-prebuild.sh), else this Node's.
const arch = process.env.VAECF_TARGET_ARCH || process.env.npm_config_arch || process.arch;
const triplet = triplets[arch];

function staticOpenBlas() {
  if (process.platform !== 'linux' || !triplet || process.env.VAECF_DYNAMIC_BLAS === '1') return null;
  if (process.env.VAECF_OPENBLAS_STATIC) {
    if (!fs.existsSync(process.env.VAECF_OPENBLAS_STATIC)) fail(`VAECF_OPENBLAS_STATIC names ${process.env.VAECF_OPENBLAS_STATIC}, which does not exist`);
    return process.env.VAECF_OPENBLAS_STATIC;
  }
  const archive = path.join('/usr/lib', triplet, 'openblas-pthread', 'libopenblas.a');
  return fs.existsSync(archive) ? archive : null;
}

function fail(message) {
  console.error(`gyp-flags: ${message}`);
  process.exit(1);
}

// oneDNN from VAECF_ONEDNN_DIR: { include, lib } folders, or null when the variable is not set.
function oneDnnPrefix() {
  const dir = process.env.VAECF_ONEDNN_DIR;
  if (!dir) return null;
  const include = path.join(dir, 'include');
  const lib = ['lib64', 'lib'].map((l) => path.join(dir, l)).find((l) => fs.existsSync(path.join(l, 'libdnnl.so')));
  if (!fs.existsSync(path.join(include, 'oneapi', 'dnnl', 'dnnl.hpp')) || !lib)
    fail(`VAECF_ONEDNN_DIR=${dir} has no include/oneapi/dnnl/dnnl.hpp and lib/libdnnl.so (or lib64/)`);
  return { include, lib };
}

function oneDnn() {
  if (process.platform !== 'linux' || !triplet) return false;
  if (oneDnnPrefix()) return true;
  const headers = ['/usr/include', '/usr/local/include'].some((d) => fs.existsSync(path.join(d, 'oneapi', 'dnnl', 'dnnl.hpp')));
  return headers && fs.existsSync(path.join('/usr/lib', triplet, 'libdnnl.so'));
}

// Homebrew's and vcpkg's prefixes, where Highway (and on Windows OpenBLAS) are installed.
function prefixes() {
  const out = [];
  if (process.env.VAECF_OPENBLAS_DIR) out.push(process.env.VAECF_OPENBLAS_DIR);
  if (process.env.VCPKG_INSTALLED_DIR) out.push(path.join(process.env.VCPKG_INSTALLED_DIR, arch === 'arm64' ? 'arm64-windows' : 'x64-windows'));
  if (process.platform === 'darwin') out.push('/opt/homebrew', '/usr/local');
  return out.filter((p) => fs.existsSync(p));
}

const what = process.argv[2];
const words = [];
if (what === 'libraries') {
  if (process.platform === 'darwin') words.push('-framework Accelerate');
  else if (process.platform === 'win32') {
    const lib = prefixes().map((p) => path.join(p, 'lib', 'openblas.lib')).find((f) => fs.existsSync(f));
    words.push(lib || 'openblas.lib');
  } else {
    const archive = staticOpenBlas();
    words.push(archive ? `${archive} -Wl,--exclude-libs,ALL -lpthread` : '-lopenblas');
    const prefix = oneDnnPrefix();
    if (prefix) words.push(`-L${prefix.lib}`);
    if (oneDnn()) words.push('-ldnnl');
  }
} else if (what === 'defines') {
  if (oneDnn()) words.push('VAECF_HAVE_ONEDNN');
  if (process.platform === 'darwin') words.push('VAECF_USE_ACCELERATE');
} else if (what === 'includes') {
  if (process.platform === 'linux' && triplet) words.push(path.join('/usr/include', triplet));
  const prefix = oneDnnPrefix();
  if (prefix) words.push(prefix.include);
  for (const d of (process.env.VAECF_INCLUDE_DIRS || '').split(path.delimiter).filter(Boolean)) words.push(d);
  for (const p of prefixes()) words.push(path.join(p, 'include'), path.join(p, 'include', 'openblas'));
} else {
  console.error('usage: node scripts/gyp-flags.js libraries|defines|includes');
  process.exit(2);
}
// gyp splits on whitespace: paths with spaces are not supported here.
console.log(words.join(' '));
