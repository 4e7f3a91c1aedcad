#!/usr/bin/env node
// The packages as users get them: builds the CPU prebuild (prebuildify, N-API) and, when nvcc is
// there, the portable CUDA flavour; packs `vaecf` (npm pack) and the CUDA package
// (@vaecf/cuda-<platform>-<arch>, vaecf_cuda.node alone); installs the tarballs into a fresh folder
// with no compiler, CMake or make on PATH; then, in that folder, trains a small model, recommends,
// saves and loads it, and asks for device 'auto' (CUDA where the CUDA package finds a GPU, else the CPU
// engine, saying why when the CUDA package is there) and probes the CUDA package (its answer printed). Exit code 0 when all of it works.
// usage: node scripts/pack-check.js [--out DIR] [--no-cuda] [--keep] [--json FILE (the measurements: sizes, import time, bundle)]
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.join(__dirname, '..');
const args = process.argv.slice(2);
const outIndex = args.indexOf('--out');
const out = path.resolve(outIndex >= 0 ? args[outIndex + 1] : path.join(root, 'dist-packages'));
const withCuda = !args.includes('--no-cuda');
const keep = args.includes('--keep');
const jsonIndex = args.indexOf('--json');
const jsonOut = jsonIndex >= 0 ? path.resolve(args[jsonIndex + 1]) : null;
// What pack-check measured, for --json (a bench/results file names the machine).
const measured = { machine: { node: process.version, platform: `${process.platform}-${process.arch}` } };
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
const platformTag = `${process.platform}-${process.arch}`;

function step(title) {
  console.log(`\npack-check: ${title}`);
}

function run(cmd, cmdArgs, options = {}) {
  const r = spawnSync(cmd, cmdArgs, { stdio: 'inherit', cwd: root, ...options });
  if (r.status !== 0) {
    console.error(`pack-check: FAILED: ${cmd} ${cmdArgs.join(' ')} (exit ${r.status}${r.signal ? `, ${r.signal}` : ''})`);
    process.exit(1);
  }
  return r;
}

function npmCli() {
  const candidates = [
    process.env.npm_execpath,
    path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js'),
  ];
  const found = candidates.find((p) => p && p.endsWith('.js') && fs.existsSync(p));
  if (!found) throw new Error('pack-check: cannot find npm-cli.js next to node');
  return found;
}

fs.rmSync(out, { recursive: true, force: true });
fs.mkdirSync(out, { recursive: true });

// 1. The CPU prebuild inside the package (node-gyp through prebuildify, the sources of binding.gyp).
step(`prebuilding the CPU engine (prebuilds/${platformTag})`);
const prebuildify = require.resolve('prebuildify/bin.js', { paths: [root] });
// prebuildify runs `node-gyp` from PATH: npm's own copy, as `npm run` would put it there.
const nodeGypBin = path.join(path.dirname(npmCli()), 'node-gyp-bin');
const buildEnv = { ...process.env, PATH: `${nodeGypBin}${path.delimiter}${process.env.PATH}` };
// An N-API build needs only the headers of a Node release: the running Node's own when they are
// installed (offline), else node-gyp downloads them.
const localHeaders = path.join(path.dirname(process.execPath), '..', 'include', 'node', 'node_api.h');
if (!buildEnv.npm_config_nodedir && fs.existsSync(localHeaders)) buildEnv.npm_config_nodedir = path.resolve(path.dirname(localHeaders), '..', '..');
// Built in a staging copy of the sources: node-gyp's `rebuild` empties build/, where the local
// cmake-js build (and build/cuda) live.
const staging = fs.mkdtempSync(path.join(os.tmpdir(), 'vaecf-prebuild-'));
for (const f of ['package.json', 'binding.gyp', 'native', 'scripts']) fs.cpSync(path.join(root, f), path.join(staging, f), { recursive: true });
fs.symlinkSync(path.join(root, 'node_modules'), path.join(staging, 'node_modules'));
run(process.execPath, [prebuildify, '--napi', '--strip', '--tag-libc', '--cwd', staging, '--out', root], { env: buildEnv });
fs.rmSync(staging, { recursive: true, force: true });
const prebuilt = fs.readdirSync(path.join(root, 'prebuilds', platformTag)).filter((f) => f.endsWith('.node'));
if (prebuilt.length === 0) throw new Error(`pack-check: no .node file in prebuilds/${platformTag}`);
// Self-contained: oneDNN and OpenMP beside the addon ($ORIGIN), OpenBLAS inside it; the glibc / libstdc++
// versions it needs checked against their ceilings.
run(process.execPath, [path.join(root, 'scripts', 'bundle-libs.js'), path.join(root, 'prebuilds', platformTag)]);
// The platform package (@vaecf/linux-x64-gnu): the engine and its libraries, installed by npm as vaecf's
// optional dependency on this platform only.
step('the platform package');
const platformPackages = [];
for (const { name, dir } of require('./platform-package').platformPackage(path.join(root, 'prebuilds', platformTag), path.join(out, 'platform'))) {
  const p = spawnSync(process.execPath, [npmCli(), 'pack', '--json', '--pack-destination', out], { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  if (p.status !== 0) throw new Error(`pack-check: npm pack of ${name} failed`);
  const info = JSON.parse(p.stdout.slice(p.stdout.indexOf('[')))[0];
  platformPackages.push({ name, tarball: path.join(out, info.filename), mebibytes: Number((info.size / 2 ** 20).toFixed(1)) });
  console.log(`${info.filename}: ${info.files.length} files, ${(info.size / 2 ** 20).toFixed(1)} MiB`);
}

// 2. npm pack, as it would be published: the package's files with package.json naming the platform
// packages in optionalDependencies at its own version. (The repository's package.json does not name
// them: `npm ci` fails on an optional dependency that is not on the registry; scripts/platform-package.js
// --main-manifest writes the published manifest.)
step('npm pack');
const mainStage = fs.mkdtempSync(path.join(os.tmpdir(), 'vaecf-main-'));
for (const f of [...pkg.files, 'README.md']) if (fs.existsSync(path.join(root, f))) fs.cpSync(path.join(root, f), path.join(mainStage, f), { recursive: true });
fs.writeFileSync(path.join(mainStage, 'package.json'), `${JSON.stringify(require('./platform-package').mainManifest(pkg, platformPackages.map((p) => p.name)), null, 2)}\n`);
const packed = spawnSync(process.execPath, [npmCli(), 'pack', '--json', '--ignore-scripts', '--pack-destination', out], { cwd: mainStage, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
if (packed.status !== 0) throw new Error('pack-check: npm pack failed');
const packInfo = JSON.parse(packed.stdout.slice(packed.stdout.indexOf('[')))[0];
const tarball = path.join(out, packInfo.filename);
const files = packInfo.files.map((f) => f.path);
for (const needed of ['dist/src/index.js', 'dist/src/cli/main.js', 'scripts/install.js', 'binding.gyp', 'CMakeLists.txt']) {
  if (!files.includes(needed)) throw new Error(`pack-check: ${needed} is missing from ${packInfo.filename}`);
}
for (const f of files) {
  if (/^(test|bench|build|node_modules|prebuilds|\.ci)\//.test(f) || f.startsWith('dist/test/')) throw new Error(`pack-check: ${f} should not be in the package`);
}
console.log(`${packInfo.filename}: ${files.length} files, ${(packInfo.size / 2 ** 20).toFixed(1)} MiB`);
measured.tarball = { file: packInfo.filename, files: files.length, mebibytes: Number((packInfo.size / 2 ** 20).toFixed(1)) };
measured.platformPackages = platformPackages.map(({ name, mebibytes }) => ({ name, mebibytes }));

// 3. The CUDA package: the portable flavour (static CUDA runtime; cuBLAS from the system).
let cudaTarball = null;
const nvcc = process.env.CUDACXX || '/usr/local/cuda/bin/nvcc';
if (withCuda && fs.existsSync(nvcc)) {
  step('building the portable CUDA flavour and its package');
  run(process.execPath, [path.join(root, 'scripts', 'build-cuda.js'), '--portable']);
  const dir = path.join(out, 'cuda-package');
  fs.mkdirSync(dir, { recursive: true });
  fs.copyFileSync(path.join(root, 'build', 'cuda-portable', 'vaecf_cuda.node'), path.join(dir, 'vaecf_cuda.node'));
  const name = `@vaecf/cuda-${platformTag}`;
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({
    name, version: pkg.version, description: `The CUDA flavour of vaecf's native engine for ${platformTag}`, license: pkg.license,
    os: [process.platform], cpu: [process.arch], files: ['vaecf_cuda.node', 'README.md'],
    peerDependencies: { vaecf: pkg.version },
  }, null, 2));
  fs.writeFileSync(path.join(dir, 'README.md'), `# ${name}\n\nThe CUDA flavour of vaecf's native engine (cuBLAS and its own kernels; compute capability 8.0 and 9.0).\n` +
    'Install it beside `vaecf`: `device: \'auto\'` then trains on the GPU where it finds one (`\'cuda\'` or VAECF_DEVICE=cuda\n' +
    'insists on it). It needs an NVIDIA driver for CUDA 13 and the\n' +
    'cuBLAS 13 libraries from the CUDA toolkit (found in /usr/local/cuda/lib64, beside this file, or on LD_LIBRARY_PATH).\n');
  const p = spawnSync(process.execPath, [npmCli(), 'pack', '--json', '--pack-destination', out], { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  if (p.status !== 0) throw new Error('pack-check: npm pack of the CUDA package failed');
  cudaTarball = path.join(out, JSON.parse(p.stdout.slice(p.stdout.indexOf('[')))[0].filename);
  console.log(path.basename(cudaTarball));
} else {
  step(withCuda ? `no nvcc at ${nvcc}: the CUDA package is not built` : 'the CUDA package is skipped (--no-cuda)');
}

// 4. A fresh folder, and a PATH with node and a shell only: no compiler can be used by the install.
step('installing the tarball(s) into a fresh folder with no compiler on PATH');
const fresh = fs.mkdtempSync(path.join(os.tmpdir(), 'vaecf-pack-check-'));
const bin = path.join(fresh, '.bin-only-node');
fs.mkdirSync(bin);
fs.symlinkSync(process.execPath, path.join(bin, 'node'));
for (const tool of ['sh', 'bash']) {
  const where = ['/bin', '/usr/bin'].map((d) => path.join(d, tool)).find((p) => fs.existsSync(p));
  if (where) fs.symlinkSync(where, path.join(bin, tool));
}
const app = path.join(fresh, 'app');
fs.mkdirSync(app);
fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'pack-check-app', version: '1.0.0', private: true }, null, 2));
const env = { ...process.env, PATH: bin, CC: '/nonexistent/cc', CXX: '/nonexistent/c++' };
delete env.npm_config_prefix;
for (const tool of ['cc', 'gcc', 'g++', 'c++', 'cmake', 'make']) {
  if (spawnSync('sh', ['-c', `command -v ${tool}`], { env }).status === 0) throw new Error(`pack-check: ${tool} is still on PATH`);
}
run(process.execPath, [npmCli(), 'install', '--no-audit', '--no-fund', '--prefer-offline', tarball, ...platformPackages.map((p) => p.tarball), ...(cudaTarball ? [cudaTarball] : [])], { cwd: app, env });

// 5. Use it.
step('using the installed package');
const script = `
const vaecf = require('vaecf');
const path = require('node:path');
(async () => {
  const train = vaecf.generateClicks({ users: 400, items: 300, meanClicksPerUser: 20, seed: 1 });
  const model = new vaecf.MultVAE({ pDims: [16, 64], threads: 2 });
  await model.fit({ train }, { epochs: 2, seed: 1 });
  const [rec] = await model.recommend([[1, 2, 3]], { k: 5 });
  if (rec.items.length !== 5) throw new Error('expected 5 recommendations');
  const file = path.join(process.cwd(), 'model.safetensors');
  await model.save(file);
  const loaded = await vaecf.loadModel(file);
  const [again] = await loaded.recommend([[1, 2, 3]], { k: 5 });
  if (JSON.stringify(again.items) !== JSON.stringify(rec.items)) throw new Error('the loaded model recommends differently');
  const addon = require.resolve('vaecf/package.json');
  const native = require(path.join(path.dirname(addon), 'dist', 'src', 'native.js'));
  const auto = native.resolveDevice('auto');
  const cuda = await native.probeCudaAsync();
  console.log(JSON.stringify({ recommended: rec.items, engine: model.precision, cudaFlavour: native.cudaFlavourPath(), auto: { device: auto.device, note: auto.note }, cudaProbe: cuda }));
  for (const m of [model, loaded]) m.dispose();
})().catch((e) => { console.error(e); process.exit(1); });
`;
const used = spawnSync(process.execPath, ['-e', script], { cwd: app, env, encoding: 'utf8' });
process.stderr.write(used.stderr);
if (used.status !== 0) {
  console.error('pack-check: FAILED: the installed package does not work');
  process.exit(1);
}
const report = JSON.parse(used.stdout.trim().split('\n').pop());
console.log(JSON.stringify(report, null, 2));
const loadedFrom = spawnSync(process.execPath, ['-e', "const n = require(require('node:path').join(require('node:path').dirname(require.resolve('vaecf/package.json')), 'dist', 'src', 'native.js')); n.loadNative(); console.log(n.nativeAddonPath())"], { cwd: app, env, encoding: 'utf8' }).stdout.trim();
if (platformPackages.length && !loadedFrom.includes(path.join('node_modules', ...platformPackages[0].name.split('/')))) {
  console.error(`pack-check: FAILED: the installed package does not load the platform package's binary (it loaded ${loadedFrom || 'nothing'})`);
  process.exit(1);
}
if (cudaTarball && !(report.cudaFlavour || '').includes(path.join('node_modules', '@vaecf', `cuda-${platformTag}`))) {
  console.error('pack-check: FAILED: the loader does not find the installed CUDA package');
  process.exit(1);
}
// Self-contained: with the system's copies of the bundled libraries and of OpenBLAS made unreadable (a
// private mount namespace binds /dev/null over each), the installed package still trains and recommends.
// Needs a mount namespace (root, or unprivileged user namespaces): where there is none it says skipped.
const bundleReport = platformPackages.length ? path.join(app, 'node_modules', ...platformPackages[0].name.split('/'), 'bundle.json') : '';
if (process.platform === 'linux' && bundleReport && fs.existsSync(bundleReport)) {
  const bundledFrom = Object.values(JSON.parse(fs.readFileSync(bundleReport, 'utf8')).files).map((f) => f.from).filter(Boolean);
  const blas = spawnSync('sh', ['-c', 'ldconfig -p | grep -E "libopenblas|libblas|libgfortran" | sed "s/.*=> //"'], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
  const hide = [...new Set([...bundledFrom, ...blas].filter((f) => fs.existsSync(f)).map((f) => fs.realpathSync(f)))];
  // Absolute paths: the app's PATH holds node and a shell only.
  const which = (t) => spawnSync('sh', ['-c', `command -v ${t}`], { encoding: 'utf8' }).stdout.trim();
  const unshare = which('unshare') || 'unshare';
  const mount = which('mount') || 'mount';
  const mounts = hide.map((f) => `${mount} --bind /dev/null '${f}'`).join(' && ');
  const probe = spawnSync(unshare, ['-m', 'sh', '-c', `${mount} --make-rprivate / && true`], { encoding: 'utf8' });
  if (probe.status !== 0) {
    console.log(`skipped: the install without the system's BLAS / oneDNN / libgomp (no mount namespace here: ${(probe.stderr || String(probe.error)).trim()})`);
  } else {
    const hidden = spawnSync(unshare, ['-m', 'sh', '-c', `${mount} --make-rprivate / && ${mounts} && exec "$0" -e "$1"`, process.execPath, script], { cwd: app, env, encoding: 'utf8' });
    if (hidden.status !== 0) {
      console.error(`pack-check: FAILED: with the system's ${hide.map((f) => path.basename(f)).join(', ')} hidden, the installed package does not work\n${hidden.stderr || hidden.error}`);
      process.exit(1);
    }
    console.log(`with the system's ${hide.map((f) => path.basename(f)).join(', ')} hidden, the installed package trains and recommends: ok`);
    measured.withSystemLibrariesHidden = { hidden: hide, trainsAndRecommends: true };
  }
}
// A lean install: the optional peers (plots: vega, vega-lite; source builds: cmake-js, node-addon-api) are
// not installed, and the rest is counted. The import time is measured (printed, not a pass / fail bound:
// timings belong in benchmarks) in fresh processes, the median of five.
const modules = path.join(app, 'node_modules');
const notWanted = ['vega', 'vega-lite', 'cmake-js', 'node-addon-api'].filter((m) => fs.existsSync(path.join(modules, m)));
if (notWanted.length) {
  console.error(`pack-check: FAILED: optional peers were installed with vaecf: ${notWanted.join(', ')}`);
  process.exit(1);
}
const packages = [];
for (const entry of fs.readdirSync(modules)) {
  if (entry.startsWith('.')) continue;
  if (entry.startsWith('@')) for (const scoped of fs.readdirSync(path.join(modules, entry))) packages.push(`${entry}/${scoped}`);
  else packages.push(entry);
}
const bytes = Number(spawnSync('du', ['-sb', modules], { encoding: 'utf8' }).stdout.split('\t')[0]);
const imports = [];
for (let i = 0; i < 5; i++) {
  const r = spawnSync(process.execPath, ['-e', "const t = process.hrtime.bigint(); require('vaecf'); console.log(Number(process.hrtime.bigint() - t) / 1e6)"], { cwd: app, env, encoding: 'utf8' });
  imports.push(Number(r.stdout.trim()));
}
imports.sort((a, b) => a - b);
measured.installed = { packages, mebibytes: Number((bytes / 1048576).toFixed(1)), requireMilliseconds: imports.map((x) => Number(x.toFixed(1))) };
if (fs.existsSync(bundleReport)) measured.bundle = JSON.parse(fs.readFileSync(bundleReport, 'utf8'));
console.log(`installed: ${packages.length} packages, ${(bytes / 1048576).toFixed(1)} MiB (${packages.join(', ')}); require('vaecf') median ${imports[2].toFixed(1)} ms of 5 (${imports.map((x) => x.toFixed(1)).join(', ')})`);
// A source build asked for without the optional build packages: a few lines that say what to install, not a build log.
const forced = spawnSync(process.execPath, [path.join(modules, 'vaecf', 'scripts', 'install.js')], { cwd: path.join(modules, 'vaecf'), env: { ...env, VAECF_BUILD_FROM_SOURCE: '1' }, encoding: 'utf8' });
const said = `${forced.stdout}${forced.stderr}`;
if (forced.status !== 1 || !/npm install cmake-js node-addon-api, then npm rebuild vaecf/.test(said) || said.trim().split('\n').length > 6) {
  console.error(`pack-check: FAILED: a source build without cmake-js / node-addon-api should end with a short advice (exit 1), got exit ${forced.status}:\n${said}`);
  process.exit(1);
}
console.log('a source build without the optional build packages ends with a short advice: ok');
// Without the platform package (npm install --omit=optional, or a platform with none): the install
// finishes with the advice, require('vaecf') works, and the first engine call names the package to get.
const bare = path.join(fresh, 'bare');
fs.mkdirSync(bare);
fs.writeFileSync(path.join(bare, 'package.json'), JSON.stringify({ name: 'pack-check-bare', version: '1.0.0', private: true }));
const bareInstall = spawnSync(process.execPath, [npmCli(), 'install', '--no-audit', '--no-fund', '--prefer-offline', '--omit=optional', '--foreground-scripts', tarball], { cwd: bare, env, encoding: 'utf8' });
const bareRun = spawnSync(process.execPath, ['-e', "const v = require('vaecf'); new v.MultVAE({ pDims: [4, 8] }).fit({ train: v.generateClicks({ users: 20, items: 10, meanClicksPerUser: 3, seed: 1 }) }, { epochs: 1 }).then(() => console.log('trained?'), (e) => console.log(e.message))"], { cwd: bare, env, encoding: 'utf8' });
const wantName = platformPackages.length ? platformPackages[0].name : '@vaecf/';
if (bareInstall.status !== 0 || !`${bareInstall.stdout}${bareInstall.stderr}`.includes(wantName) || !bareRun.stdout.includes(`it comes in the package ${wantName}`)) {
  console.error(`pack-check: FAILED: without the platform package the install and the first call should name ${wantName}\n${bareInstall.stdout}${bareInstall.stderr}\n${bareRun.stdout}${bareRun.stderr}`);
  process.exit(1);
}
console.log(`without the platform package: the install finishes and says to get ${wantName}; so does the first engine call: ok`);
// ESM through the exports map, and a strict TypeScript consumer (module node16) type-checked against
// the installed declarations.
fs.writeFileSync(path.join(app, 'esm.mjs'), `
import vaecf, { generateClicks, MultVAE, loadModel } from 'vaecf';
const train = generateClicks({ users: 200, items: 150, meanClicksPerUser: 15, seed: 2 });
const model = new MultVAE({ pDims: [8, 32], threads: 1 });
await model.fit({ train }, { epochs: 1, seed: 2 });
const [rec] = await model.recommend([[1, 2, 3]], { k: 3 });
if (rec.items.length !== 3 || vaecf.MultVAE !== MultVAE || typeof loadModel !== 'function') throw new Error('the ESM entry answers differently');
model.dispose();
console.log('esm ok');
`);
const esm = spawnSync(process.execPath, ['esm.mjs'], { cwd: app, env, encoding: 'utf8' });
if (esm.status !== 0 || !/esm ok/.test(esm.stdout)) {
  console.error(`pack-check: FAILED: import ... from 'vaecf' (ESM) does not work\n${esm.stderr}`);
  process.exit(1);
}
fs.writeFileSync(path.join(app, 'check.ts'), `
import { train, loadModel, clicksFromArrays, type TrainOptions, type Recommendation } from 'vaecf';
export async function run(): Promise<Recommendation[]> {
  const { matrix, itemIds } = clicksFromArrays(['a', 'a', 'b'], ['x', 'y', 'x']);
  const options: TrainOptions = { epochs: 1 };
  const model = await train({ train: matrix, itemIds }, { ...options, architecture: { pDims: [4, 8] } });
  await model.save('m.safetensors');
  const again = await loadModel('m.safetensors');
  return again.recommend([['x']], { k: 1 });
}
`);
const tsc = spawnSync(process.execPath, [path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '--strict', '--noEmit', '--module', 'node16', '--moduleResolution', 'node16',
  '--target', 'es2022', '--typeRoots', path.join(root, 'node_modules', '@types'), '--types', 'node', 'check.ts'], { cwd: app, env, encoding: 'utf8' });
if (tsc.status !== 0) {
  console.error(`pack-check: FAILED: a strict TypeScript consumer does not type-check against the installed declarations\n${tsc.stdout}${tsc.stderr}`);
  process.exit(1);
}
console.log("ESM import and a strict TypeScript consumer (module node16): ok");
// The examples ship with the package and run from it.
const example = spawnSync(process.execPath, [path.join(app, 'node_modules', 'vaecf', 'dist', 'examples', 'train-and-save.js'), '--epochs', '1', '--out', 'example.safetensors'], { cwd: app, env, encoding: 'utf8' });
if (example.status !== 0 || !fs.existsSync(path.join(app, 'example.safetensors'))) {
  console.error(`pack-check: FAILED: the shipped example does not run from the installed package\n${example.stderr}`);
  process.exit(1);
}
console.log('the shipped example (dist/examples/train-and-save.js) runs from the installed package: ok');
// 'auto': the CUDA engine exactly when the installed CUDA package's probe found a GPU; otherwise the CPU
// engine, and with the CUDA package installed the note says why it was not used.
const autoWanted = cudaTarball && report.cudaProbe.ok ? 'cuda' : 'cpu';
if (report.auto.device !== autoWanted || (cudaTarball && autoWanted === 'cpu' && !report.auto.note.includes(report.cudaProbe.reason))) {
  console.error(`pack-check: FAILED: device 'auto' chose ${report.auto.device} (${report.auto.note}); expected ${autoWanted}` +
    (autoWanted === 'cpu' && cudaTarball ? ' with the CUDA probe\'s reason' : ''));
  process.exit(1);
}
if (cudaTarball && !report.cudaProbe.reason) {
  console.error('pack-check: FAILED: the CUDA package was probed without an answer');
  process.exit(1);
}
if (jsonOut) {
  // The CPU as the benchmarks name it (model, SIMD flags, the engine's target): bench/native-tools.
  measured.machine = { ...require(path.join(root, 'dist', 'bench', 'native-tools.js')).cpuDescription(), ...measured.machine };
}
if (jsonOut) fs.writeFileSync(jsonOut, `${JSON.stringify(measured, null, 2)}\n`);
if (!keep) fs.rmSync(fresh, { recursive: true, force: true });
console.log(`\npack-check: ok (${[tarball, ...platformPackages.map((p) => p.tarball)].map((t) => path.relative(root, t)).join(', ')}${cudaTarball ? `, ${path.relative(root, cudaTarball)}` : ''}; installed without a compiler${keep ? ` in ${app}` : ''})`);
