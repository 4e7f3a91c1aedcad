// Experiments: a resumable sweep with its results table, the beta study, a recipe, and the HTML report
// opened in headless Chromium with its plots rendered.
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';

import test from 'ava';

import { expandSweep, runBetaStudy, runSweep, TRAIN_DEFAULTS, writeReport } from '../src/index';
import { sharedFile } from './data-root';
import { tempDir } from './helpers';

const run = promisify(execFile);
const CLI = path.join(__dirname, '..', 'src', 'cli', 'main.js');
const quiet = (): void => undefined;
const small = () => ({
  ...TRAIN_DEFAULTS, dataset: sharedFile('ml-latest-small', 'ratings.csv'), heldOut: 50, nEpochs: 3, batchSize: 50, pDims: [16, 32],
  totalAnnealSteps: 'epoch-relative' as const, threads: 1,
});

test('a grid expands to every combination; a random space to its samples, within bounds', (t) => {
  t.deepEqual(expandSweep({ base: { dataset: 'x' }, grid: { lr: [1, 2], batchSize: [10, 20] } }), [
    { lr: 1, batchSize: 10 }, { lr: 1, batchSize: 20 }, { lr: 2, batchSize: 10 }, { lr: 2, batchSize: 20 },
  ]);
  const r = expandSweep({ base: { dataset: 'x' }, random: { samples: 20, seed: 3, space: { lr: { min: 1e-4, max: 1e-2, log: true }, model: ['vae', 'dae'] } } });
  t.is(r.length, 20);
  t.true(r.every((c) => (c.lr as number) >= 1e-4 && (c.lr as number) <= 1e-2 && ['vae', 'dae'].includes(c.model as string)));
});

test('a sweep writes one row per run and skips finished runs when run again', async (t) => {
  const dir = tempDir();
  const spec = { base: small(), grid: { lr: [0.001, 0.005] } };
  const csv = await runSweep(spec, dir, quiet);
  const rows = fs.readFileSync(csv, 'utf8').trim().split('\n');
  t.is(rows.length, 3);
  t.regex(rows[0], /^run,lr,best_epoch,validation,test_recall@20,test_recall@50,test_ndcg@100,seconds$/);
  const logs: string[] = [];
  await runSweep(spec, dir, (s) => logs.push(s));
  t.is(logs.filter((l) => /done before, skipped/.test(l)).length, 2);
  const report = await writeReport(dir);
  t.true(fs.readFileSync(report.html, 'utf8').includes('Sweep (2 runs)'));
});

test('the beta study records validation against beta and retrains with the best', async (t) => {
  const dir = tempDir();
  const r = await runBetaStudy({ ...small(), nEpochs: 4 }, dir, quiet);
  t.is(r.points.length, 4);
  t.true(r.points.every((p, i) => i === 0 || p.beta > r.points[i - 1].beta), 'beta increases');
  // beta is computed before each update: the last update of the run sees (total - 1) / total
  t.true(r.points[3].beta > 0.95 && r.points[3].beta < 1, 'beta nearly 1 at the end');
  t.is(r.bestBeta, r.points.reduce((b, p) => (p.score > b.score ? p : b)).beta);
  t.true(fs.existsSync(path.join(dir, 'final', 'results.json')));
  const report = await writeReport(dir);
  t.true(report.svgs.some((s) => s.endsWith('beta-study.svg')));
});

test('reproduce runs a recipe and prints ours beside the published numbers', async (t) => {
  const dir = tempDir();
  const out = await run(process.execPath, [CLI, 'reproduce', 'ml-1m', '--data', sharedFile('ml-1m', 'ml1m_pairs_rating_ge4.tsv'), '--n-epochs', '2', '--threads', '1', '--run-dir', dir], { maxBuffer: 1 << 24 });
  t.regex(out.stdout, /ndcg@100\s+0\.\d{4} ± 0\.\d{4}\s+0\.4000/);
  t.regex(out.stdout, /published: a plain reimplementation/);
  const e = await t.throwsAsync(run(process.execPath, [CLI, 'reproduce', 'ml-20m', '--n-epochs', '1'], { cwd: tempDir() }));
  t.regex((e as Error & { stderr: string }).stderr, /no data found .* npx vaecf fetch ml-20m/);
});

// Without Chromium the check is reported as skipped, never as passed; in CI (where .ci/run installs it)
// a missing Chromium is a failure.
const chromium = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => fs.existsSync(p));
const REPORT_TITLE = 'the HTML report renders its plots in headless Chromium';
if (!chromium && process.env.CI) test(REPORT_TITLE, (t) => t.fail("Chromium is missing: .ci/run installs Debian's chromium"));
else if (!chromium) test.skip(`${REPORT_TITLE}: skipped, Chromium is not installed (apt-get install chromium; CI runs it)`, () => undefined);
else test(REPORT_TITLE, async (t) => {
  const dir = tempDir();
  await run(process.execPath, [CLI, 'train', '--dataset', sharedFile('ml-latest-small', 'ratings.csv'), '--held-out', '50', '--n-epochs', '3',
    '--batch-size', '50', '--p-dims', '16,32', '--threads', '1', '--run-dir', dir]);
  const report = path.join(dir, 'report.html');
  t.true(fs.existsSync(report));
  const flags = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', `--user-data-dir=${fs.mkdtempSync(path.join(os.tmpdir(), 'chromium-'))}`];
  const dom = (await run(chromium as string, [...flags, '--dump-dom', `file://${report}`], { maxBuffer: 1 << 26 })).stdout;
  const figures = dom.split('<figure').slice(1);
  t.is(figures.length, 2, 'the curves and the comparison');
  for (const f of figures) {
    t.regex(f, /<svg[^>]*width="\d+"/);
    t.true((f.match(/<path[^>]* d="M/g) ?? []).length >= 3, 'marks drawn');
  }
  const png = path.join(dir, 'report.png');
  await run(chromium as string, [...flags, '--window-size=1200,1400', `--screenshot=${png}`, `file://${report}`]);
  t.true(fs.statSync(png).size > 20_000, 'a screenshot with content');
});

test('importing vaecf does not load the plotting packages (they load with the first plot)', async (t) => {
  const { execFileSync } = await import('node:child_process');
  const index = require.resolve('../src/index');
  const loaded = execFileSync(process.execPath, ['-e', `require(${JSON.stringify(index)}); console.log(JSON.stringify(Object.keys(require.cache).filter((f) => /node_modules[\\\\/]vega/.test(f)).length))`], { encoding: 'utf8' });
  t.is(Number(loaded.trim()), 0);
});

// vega and vega-lite are optional peers: a process where they cannot be loaded (a --require hook makes
// them missing) still trains, and its report keeps each plot's Vega-Lite spec and says what to install.
test('without the optional plotting packages a run still reports: Vega-Lite specs and what to install', async (t) => {
  const dir = tempDir();
  const hook = path.join(dir, 'no-vega.js');
  fs.writeFileSync(hook, `const M = require('node:module');
const load = M._load;
M._load = function (request, ...rest) {
  if (request === 'vega' || request === 'vega-lite') {
    const e = new Error("Cannot find module '" + request + "'");
    e.code = 'MODULE_NOT_FOUND';
    throw e;
  }
  return load.call(this, request, ...rest);
};
`);
  const runDir = path.join(dir, 'run');
  const out = await run(process.execPath, ['--require', hook, CLI, 'train', '--dataset', sharedFile('ml-latest-small', 'ratings.csv'), '--held-out', '50',
    '--n-epochs', '1', '--batch-size', '50', '--p-dims', '16,32', '--threads', '1', '--run-dir', runDir], { maxBuffer: 1 << 24 });
  t.regex(out.stdout + out.stderr, /no plots: plots need the optional packages vega and vega-lite \(npm install vega@5 vega-lite@5\)/);
  const files = fs.readdirSync(runDir);
  t.true(files.some((f) => f.endsWith('.vl.json')), `files: ${files.join(', ')}`);
  t.false(files.some((f) => f.endsWith('.svg')));
  const spec = JSON.parse(fs.readFileSync(path.join(runDir, files.find((f) => f.endsWith('.vl.json')) as string), 'utf8')) as { $schema: string };
  t.regex(spec.$schema, /vega-lite\/v5/);
  t.regex(fs.readFileSync(path.join(runDir, 'report.html'), 'utf8'), /Not drawn: plots need the optional packages vega and vega-lite/);
});
