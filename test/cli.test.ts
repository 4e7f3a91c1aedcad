// The command line end to end: prepare writes a dataset once, evaluate reads it (and a raw file),
// demo trains on the built-in generator; JSON results are written.
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';

import test from 'ava';

import { loadDataset } from '../src/index';
import { sharedFile } from './data-root';
import { tempDir } from './helpers';

const run = promisify(execFile);
const CLI = path.join(__dirname, '..', 'src', 'cli', 'main.js');

test('prepare, then evaluate popularity and EASE on ML-1M', async (t) => {
  const dir = tempDir();
  const out = path.join(dir, 'ml1m');
  const p = await run(process.execPath, [CLI, 'prepare', sharedFile('ml-1m', 'ml1m_pairs_rating_ge4.tsv'), '--out', out, '--held-out', '600']);
  t.regex(p.stdout, /575272 clicks, 6034 users, 3533 items; train 4834 users x 3497 items \(462827 clicks\)/);
  const d = loadDataset(out);
  t.is(d.train.rows, 4834);
  const json = path.join(dir, 'ease.json');
  const e = await run(process.execPath, [CLI, 'evaluate', out, '--model', 'ease', '--lambda', '300', '--json', json]);
  t.regex(e.stdout, /ndcg@100\s+0\.419[56]/);
  const result = JSON.parse(fs.readFileSync(json, 'utf8'));
  t.true(Math.abs(result.metrics['ndcg@100'].mean - 0.4196) < 1e-3);
  const pop = await run(process.execPath, [CLI, 'evaluate', sharedFile('ml-1m', 'ml1m_pairs_rating_ge4.tsv'), '--held-out', '600', '--model', 'popularity']);
  t.regex(pop.stdout, /ndcg@100\s+0\.21(5|6)/);
});

test('demo trains on generated data and saves a model', async (t) => {
  const dir = tempDir();
  const r = await run(process.execPath, [CLI, 'demo', '--epochs', '2', '--out', dir], { maxBuffer: 1 << 24 });
  t.regex(r.stdout, /epoch\s+2 .*ndcg@100/);
  t.regex(r.stdout, /test \(2000 users with targets/);
  t.true(fs.existsSync(path.join(dir, 'model.safetensors')));
  const results = JSON.parse(fs.readFileSync(path.join(dir, 'results.json'), 'utf8'));
  t.true(results.test['mult-vae']['ndcg@100'].mean > results.test.popularity['ndcg@100'].mean);
});

test('bad command lines say what is wrong', async (t) => {
  const e = await t.throwsAsync(run(process.execPath, [CLI, 'evaluate', '/nonexistent/file.csv', '--model', 'ease']));
  t.regex((e as Error & { stderr: string }).stderr, /vaecf: \/nonexistent\/file\.csv: no such file or folder/);
  const f = await t.throwsAsync(run(process.execPath, [CLI, 'frobnicate']));
  t.regex((f as Error & { stderr: string }).stderr, /unknown command "frobnicate"/);
});

test('the progress bar shows elapsed time, rate and time left on a terminal, and nothing elsewhere', async (t) => {
  const { ProgressLine } = await import('../src/index');
  const written: string[] = [];
  let clock = 0;
  const terminal = { isTTY: true, columns: 120, write: (s: string) => written.push(s) } as unknown as NodeJS.WriteStream;
  const bar = new ProgressLine(terminal, () => clock);
  bar.update('epoch 1/3', 0, 100);
  clock = 10_000;
  bar.update('epoch 1/3', 25, 100, 'loss 3.2');
  t.regex(written[written.length - 1], /epoch 1\/3 \[#{7}\.{21}\] 25\/100 10 s, 2\.5\/s, 30 s left loss 3\.2/);
  clock = 40_000;
  bar.update('epoch 1/3', 100, 100);
  t.regex(written[written.length - 1], /100\/100 40 s, 2\.5\/s, done/);
  // A new label starts a new phase.
  clock = 41_000;
  bar.update('epoch 2/3', 0, 100);
  clock = 42_000;
  bar.update('epoch 2/3', 50, 100);
  t.regex(written[written.length - 1], /50\/100 1\.0 s, 50\/s, 1\.0 s left/);
  const plain = { isTTY: false, write: (s: string) => written.push(`plain:${s}`) } as unknown as NodeJS.WriteStream;
  new ProgressLine(plain).update('x', 1, 2);
  t.false(written.some((w) => w.startsWith('plain:')));
});
