#!/usr/bin/env node
// The platform package of the prebuilt engine, in sharp's style: `@vaecf/<platform>-<arch>[-<libc>]`
// (linux-x64-gnu here) holds vaecf.node and the libraries it needs beside it (scripts/bundle-libs.js),
// with `os`, `cpu` and `libc` set so that npm installs it only where it runs. vaecf names it in
// optionalDependencies (same version) and its loader looks for it (src/native.ts platformPackage).
// usage: node scripts/platform-package.js [PREBUILD_DIR (prebuilds/<platform>-<arch>)] [--out DIR]
//        prints the folder made (DIR/<name without scope>), ready for npm pack / npm publish;
//        node scripts/platform-package.js --main-manifest OUT.json NAME...: vaecf's package.json to publish.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');

function platformPackage(prebuildDir, outDir) {
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
  const [platform, arch] = path.basename(prebuildDir).split('-');
  const addons = fs.readdirSync(prebuildDir).filter((f) => f.endsWith('.node') && !f.startsWith('vaecf_cuda'));
  // prebuildify's names: vaecf.glibc.node / vaecf.musl.node on Linux (--tag-libc), vaecf.node elsewhere.
  const libcOf = (f) => (/\.musl\./.test(f) ? 'musl' : /\.glibc\./.test(f) ? 'gnu' : '');
  const made = [];
  for (const addon of addons) {
    const libc = platform === 'linux' ? libcOf(addon) || 'gnu' : '';
    const name = `@vaecf/${platform}-${arch}${libc ? `-${libc}` : ''}`;
    const dir = path.join(outDir, name.split('/')[1]);
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true });
    const files = ['vaecf.node'];
    fs.copyFileSync(path.join(prebuildDir, addon), path.join(dir, 'vaecf.node'));
    // The bundled libraries (every file but addons) and bundle.json.
    for (const f of fs.readdirSync(prebuildDir)) {
      if (f.endsWith('.node')) continue;
      fs.copyFileSync(path.join(prebuildDir, f), path.join(dir, f));
      files.push(f);
    }
    const manifest = {
      name, version: pkg.version, description: `vaecf's prebuilt native engine for ${platform}-${arch}${libc ? ` (${libc === 'gnu' ? 'glibc' : libc})` : ''}`,
      license: pkg.license, os: [platform], cpu: [arch], ...(libc ? { libc: [libc === 'gnu' ? 'glibc' : 'musl'] } : {}),
      files: [...files, 'README.md'],
    };
    fs.writeFileSync(path.join(dir, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
    const needs = fs.existsSync(path.join(dir, 'bundle.json')) ? JSON.parse(fs.readFileSync(path.join(dir, 'bundle.json'), 'utf8')).needs : null;
    fs.writeFileSync(path.join(dir, 'README.md'), `# ${name}\n\nThe prebuilt native engine of [vaecf](https://www.npmjs.com/package/vaecf) for ${platform}-${arch}. ` +
      'npm installs it with vaecf (an optional dependency) on this platform only; nothing to do by hand.\n' +
      (needs ? `\nIt carries its BLAS, oneDNN and OpenMP, and needs glibc >= ${needs.GLIBC} and libstdc++ with GLIBCXX_${needs.GLIBCXX}.\n` : ''));
    made.push({ name, dir });
  }
  return made;
}

// vaecf's package.json as published: the platform packages in optionalDependencies at its own version
// (npm installs the one whose os / cpu / libc match). Not in the repository's package.json, where
// `npm ci` would fail while they are not on the registry.
function mainManifest(pkg, names) {
  const optionalDependencies = { ...(pkg.optionalDependencies || {}) };
  for (const n of names) optionalDependencies[n] = pkg.version;
  return { ...pkg, optionalDependencies };
}

module.exports = { platformPackage, mainManifest };

if (require.main === module) {
  const args = process.argv.slice(2);
  if (args[0] === '--main-manifest') {
    const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
    fs.writeFileSync(args[1], `${JSON.stringify(mainManifest(pkg, args.slice(2)), null, 2)}\n`);
    process.exit(0);
  }
  const outIndex = args.indexOf('--out');
  const out = path.resolve(outIndex >= 0 ? args[outIndex + 1] : path.join(root, 'dist-packages', 'platform'));
  const positional = args.filter((a, i) => !a.startsWith('--') && (outIndex < 0 || i !== outIndex + 1));
  const prebuildDir = path.resolve(positional[0] || path.join(root, 'prebuilds', `${process.platform}-${process.arch}`));
  for (const { name, dir } of platformPackage(prebuildDir, out)) console.log(`${name}: ${dir}`);
}
