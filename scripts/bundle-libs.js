#!/usr/bin/env node
// Makes a Linux prebuild self-contained: copies every shared library the addon needs that is not part of
// the C / C++ runtime every Linux system has (oneDNN, OpenMP's libgomp, what they need in turn) next to
// it, under its soname, with the run path $ORIGIN (the addon already has it: binding.gyp), so the loader
// takes them from the package before the system's. OpenBLAS is linked statically (scripts/gyp-flags.js).
// Then reports the newest glibc and libstdc++ symbol versions any of those files needs (readelf -V), and fails when
// they pass the ceilings below (raise them only on purpose: they decide which systems can load vaecf).
// usage: node scripts/bundle-libs.js [prebuilds/linux-x64]   (writes bundle.json there)
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

// What the prebuilt binary may ask of the system, and why these: built on Debian 12 (glibc 2.36, GCC 12),
// the addon and Debian's oneDNN need GLIBC_2.34 (pthread in libc) and GLIBCXX_3.4.29 (GCC 11): Debian
// 12, Ubuntu 22.04, RHEL 9 and newer. Lowering them needs an older build system: the manylinux_2_28 job
// of .github/workflows/platforms.yml sets VAECF_GLIBC_CEILING=2.28 and VAECF_GLIBCXX_CEILING=3.4.25
// (RHEL 8's GCC 8), for Debian 10+, Ubuntu 18.10+, RHEL 8, Amazon Linux 2023.
const CEILING = { GLIBC: process.env.VAECF_GLIBC_CEILING || '2.34', GLIBCXX: process.env.VAECF_GLIBCXX_CEILING || '3.4.29' };
for (const [k, v] of Object.entries(CEILING)) if (!/^\d+(\.\d+)*$/.test(v)) {
  console.error(`bundle-libs: VAECF_${k}_CEILING=${v}: expected a version such as 2.28`);
  process.exit(1);
}
// The C and C++ runtime: never bundled (one copy per process, from the system).
const SYSTEM = /^(linux-vdso|ld-linux[^.]*|libc|libm|libdl|libpthread|librt|libstdc\+\+|libgcc_s)\.so/;

const root = path.join(__dirname, '..');
const dir = path.resolve(process.argv[2] || path.join(root, 'prebuilds', `${process.platform}-${process.arch}`));

function fail(message) {
  console.error(`bundle-libs: ${message}`);
  process.exit(1);
}
function tool(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.error || r.status !== 0) fail(`${cmd} ${args.join(' ')} failed: ${r.error ? r.error.message : r.stderr}`);
  return r.stdout;
}
// The ELF machine of a file ('x86_64', 'aarch64', ...), from its header.
function machine(file) {
  const m = /Machine:\s+(.*)/.exec(tool('readelf', ['-h', file]));
  const text = m ? m[1] : '';
  return /AArch64/.test(text) ? 'aarch64' : /X86-64/.test(text) ? 'x86_64' : text.trim();
}
const HOST = machine(process.execPath);
// Where a foreign architecture's libraries are on a Debian host (multiarch and the cross toolchain).
const FOREIGN = (m) => [`/usr/lib/${m}-linux-gnu`, `/lib/${m}-linux-gnu`, `/usr/${m}-linux-gnu/lib`];

// soname -> resolved path of each library `file` needs: as the loader finds them (ldd) for this machine's
// architecture; from its DT_NEEDED entries and the multiarch folders for another (a cross build).
function dependencies(file) {
  const out = new Map();
  const arch = machine(file);
  if (arch === HOST) {
    for (const line of tool('ldd', [file]).split('\n')) {
      const m = /^\s*(\S+)\s+=>\s+(\S+)\s/.exec(line);
      if (m && m[2] !== 'not') out.set(m[1], m[2]);
      else if (/=> not found/.test(line)) fail(`${file} needs ${line.trim().split(' ')[0]}, which this machine lacks`);
    }
    return out;
  }
  for (const m of tool('readelf', ['-d', file]).matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)) {
    const soname = m[1];
    const found = [path.dirname(file), ...FOREIGN(arch)].map((d) => path.join(d, soname)).find((f) => fs.existsSync(f));
    if (found) out.set(soname, found);
    else if (!SYSTEM.test(soname)) fail(`${file} needs ${soname}, found in none of ${FOREIGN(arch).join(', ')}`);
  }
  return out;
}
// The newest GLIBC_ / GLIBCXX_ version a file needs (its version-needs section; any architecture).
function versions(file) {
  const text = tool('readelf', ['-V', '-W', file]);
  const needs = text.slice(text.indexOf(".gnu.version_r'") >= 0 ? text.indexOf(".gnu.version_r'") : text.length);
  const newest = {};
  for (const kind of ['GLIBC', 'GLIBCXX']) {
    const found = [...needs.matchAll(new RegExp(`Name: ${kind}_([\\d.]+)`, 'g'))].map((m) => m[1]);
    newest[kind] = found.sort(compare).pop() || null;
  }
  return newest;
}
function compare(a, b) {
  const x = a.split('.').map(Number);
  const y = b.split('.').map(Number);
  for (let i = 0; i < Math.max(x.length, y.length); i++) if ((x[i] || 0) !== (y[i] || 0)) return (x[i] || 0) - (y[i] || 0);
  return 0;
}

if (process.platform !== 'linux') {
  console.log(`bundle-libs: nothing to do on ${process.platform}`);
  process.exit(0);
}
const addons = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.node')) : [];
if (addons.length === 0) fail(`no .node file in ${dir}`);
for (const t of ['ldd', 'readelf', 'patchelf']) if (spawnSync('sh', ['-c', `command -v ${t}`]).status !== 0) fail(`${t} is needed (Debian: apt-get install ${t === 'readelf' ? 'binutils' : t === 'ldd' ? 'libc-bin' : t})`);

// Every non-system library reachable from the addons, copied once (breadth first).
const bundled = new Map();
const queue = addons.map((a) => path.join(dir, a));
while (queue.length) {
  const file = queue.shift();
  for (const [soname, resolved] of dependencies(file)) {
    if (SYSTEM.test(soname) || bundled.has(soname)) continue;
    const target = path.join(dir, soname);
    if (path.resolve(resolved) !== path.resolve(target)) fs.copyFileSync(fs.realpathSync(resolved), target);
    fs.chmodSync(target, 0o755);
    tool('patchelf', ['--set-rpath', '$ORIGIN', target]);
    bundled.set(soname, { from: fs.realpathSync(resolved), bytes: fs.statSync(target).size });
    queue.push(target);
  }
}

const report = { ceiling: CEILING, files: {} };
let worst = { GLIBC: '0', GLIBCXX: '0' };
for (const f of [...addons, ...bundled.keys()]) {
  const v = versions(path.join(dir, f));
  report.files[f] = { ...v, ...(bundled.has(f) ? bundled.get(f) : {}) };
  for (const k of ['GLIBC', 'GLIBCXX']) if (v[k] && compare(v[k], worst[k]) > 0) worst = { ...worst, [k]: v[k] };
}
report.needs = worst;
fs.writeFileSync(path.join(dir, 'bundle.json'), `${JSON.stringify(report, null, 2)}\n`);
const size = [...bundled.values()].reduce((s, b) => s + b.bytes, 0);
console.log(`bundle-libs: ${bundled.size} libraries bundled in ${path.relative(root, dir)} (${[...bundled.keys()].join(', ')}; ${(size / 1048576).toFixed(1)} MiB); ` +
  `the newest symbol versions needed: GLIBC_${worst.GLIBC}, GLIBCXX_${worst.GLIBCXX} (ceilings ${CEILING.GLIBC}, ${CEILING.GLIBCXX})`);
for (const k of ['GLIBC', 'GLIBCXX']) {
  if (compare(worst[k], CEILING[k]) > 0) fail(`${k}_${worst[k]} is needed, above the ceiling ${CEILING[k]} (bundle.json says which file): systems that run vaecf today could not load it`);
}
