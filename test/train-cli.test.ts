// `vaecf train`: a run directory with config, per-epoch metrics, checkpoints and results; Ctrl-C leaves
// a resumable checkpoint and --resume ends where an uninterrupted run ends.
import { execFile, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';

import test from 'ava';

import { sharedFile } from './data-root';
import { tempDir } from './helpers';

const run = promisify(execFile);
const CLI = path.join(__dirname, '..', 'src', 'cli', 'main.js');
const args = (runDir: string): string[] => [
  CLI, 'train', '--dataset', sharedFile('ml-latest-small', 'ratings.csv'), '--held-out', '50', '--n-epochs', '4', '--batch-size', '50',
  '--p-dims', '32,64', '--total-anneal-steps', 'epoch-relative', '--lr-scheduler', 'plateau', '--threads', '1', '--run-dir', runDir,
];

test('an interrupted run resumed with --resume ends where an uninterrupted run ends', async (t) => {
  const dir = tempDir();
  const straight = path.join(dir, 'straight');
  const r = await run(process.execPath, args(straight), { maxBuffer: 1 << 24 });
  t.regex(r.stdout, /epoch\s+4 /);
  for (const f of ['config.json', 'metrics.jsonl', 'last.safetensors', 'best.safetensors', 'results.json']) t.true(fs.existsSync(path.join(straight, f)), f);
  const lines = fs.readFileSync(path.join(straight, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  t.deepEqual(lines.map((l) => l.epoch), [1, 2, 3, 4]);

  // Interrupt after the second epoch's line, then resume.
  const broken = path.join(dir, 'broken');
  const child = spawn(process.execPath, args(broken));
  let out = '';
  child.stdout.on('data', (c: Buffer) => {
    out += c.toString();
    if (/epoch\s+2 /.test(out) && !child.killed) child.kill('SIGINT');
  });
  const code = await new Promise((resolve) => child.once('exit', resolve));
  t.is(code, 130);
  t.regex(out, /resume with: vaecf train --resume/);
  const resumed = await run(process.execPath, [CLI, 'train', '--resume', broken], { maxBuffer: 1 << 24 });
  t.regex(resumed.stdout, /resuming .* after epoch [23]/);
  t.regex(resumed.stdout, /report: .*report\.html/);
  t.true(fs.existsSync(path.join(broken, 'report.html')), 'a resumed run writes its report too');
  const a = JSON.parse(fs.readFileSync(path.join(straight, 'results.json'), 'utf8'));
  const b = JSON.parse(fs.readFileSync(path.join(broken, 'results.json'), 'utf8'));
  t.deepEqual(b.test, a.test);
  const relines = fs.readFileSync(path.join(broken, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  t.deepEqual(relines.map((l) => l.epoch), [1, 2, 3, 4]);
  t.deepEqual(relines.map((l) => l.loss), lines.map((l) => l.loss));
});

test('train refuses to overwrite a run and names what is missing', async (t) => {
  const e = await t.throwsAsync(run(process.execPath, [CLI, 'train', '--n-epochs', '2']));
  t.regex((e as Error & { stderr: string }).stderr, /--dataset FILE\|DIR is required/);
  const f = await t.throwsAsync(run(process.execPath, [CLI, 'train', '--resume', tempDir()]));
  t.regex((f as Error & { stderr: string }).stderr, /no config\.json here/);
  // A dataset that cannot be read leaves no half-made run directory behind.
  const runDir = path.join(tempDir(), 'never');
  const g = await t.throwsAsync(run(process.execPath, [CLI, 'train', '--dataset', path.join(tempDir(), 'missing.csv'), '--run-dir', runDir]));
  t.regex((g as Error & { stderr: string }).stderr, /missing\.csv/);
  t.false(fs.existsSync(runDir), 'the run directory was made before the data was read');
});

test('--model dae without --p-dims gets the same default as MultDAE: the paper\'s I-200-I', async (t) => {
  const dir = path.join(tempDir(), 'dae');
  await run(process.execPath, [
    CLI, 'train', '--dataset', sharedFile('ml-latest-small', 'ratings.csv'), '--held-out', '50', '--n-epochs', '1', '--batch-size', '100',
    '--model', 'dae', '--threads', '1', '--run-dir', dir,
  ], { maxBuffer: 1 << 24 });
  const { readModelFile } = await import('../src/io/model-file');
  const arch = readModelFile(path.join(dir, 'last.safetensors')).metadata.architecture as { encoderDims: number[]; decoderDims: number[] };
  t.is(arch.encoderDims.length, 2);
  t.is(arch.encoderDims[1], 200);
  t.deepEqual(arch.decoderDims.slice(0, -1), [200]);
});

test('--model recvae trains with the authors\' options, resumes exactly, and refuses RecVAE options for other models', async (t) => {
  const dir = tempDir();
  const recvaeArgs = (runDir: string): string[] => [
    CLI, 'train', '--model', 'recvae', '--dataset', sharedFile('ml-latest-small', 'ratings.csv'), '--held-out', '50', '--n-epochs', '3',
    '--batch-size', '100', '--hidden-dim', '32', '--latent-dim', '16', '--gamma', '0.01', '--n-enc-epochs', '2', '--lr', '0.005', '--threads', '1',
    '--run-dir', runDir,
  ];
  const straight = path.join(dir, 'straight');
  const r = await run(process.execPath, recvaeArgs(straight), { maxBuffer: 1 << 24 });
  t.regex(r.stdout, /epoch\s+3 .*gamma 0\.0100/);
  const config = JSON.parse(fs.readFileSync(path.join(straight, 'config.json'), 'utf8'));
  t.like(config, { model: 'recvae', lr: 0.005, hiddenDim: 32, latentDim: 16, gamma: 0.01, nEncEpochs: 2, nEpochs: 3 });
  const saved = JSON.parse(fs.readFileSync(path.join(straight, 'results.json'), 'utf8'));
  // 5,697 items: a random ranking has NDCG@100 near 0.01; three epochs of RecVAE reach about 0.1.
  t.true(saved.test['ndcg@100'].mean > 0.05, `test ndcg@100 ${saved.test['ndcg@100'].mean}`);
  // Interrupt after the first epoch, resume: the same test metrics.
  const broken = path.join(dir, 'broken');
  const child = spawn(process.execPath, recvaeArgs(broken));
  let out = '';
  child.stdout.on('data', (c: Buffer) => {
    out += c.toString();
    if (/epoch\s+1 /.test(out) && !child.killed) child.kill('SIGINT');
  });
  t.is(await new Promise((resolve) => child.once('exit', resolve)), 130);
  await run(process.execPath, [CLI, 'train', '--resume', broken], { maxBuffer: 1 << 24 });
  t.deepEqual(JSON.parse(fs.readFileSync(path.join(broken, 'results.json'), 'utf8')).test, saved.test);
  const e = await t.throwsAsync(run(process.execPath, [CLI, 'train', '--dataset', 'x', '--gamma', '0.1', '--run-dir', path.join(dir, 'vae')]));
  t.regex((e as Error & { stderr: string }).stderr, /gamma: a RecVAE option/);
});

test('vaecf --help lists every command the CLI dispatches', async (t) => {
  const source = fs.readFileSync(path.join(__dirname, '..', '..', 'src', 'cli', 'main.ts'), 'utf8');
  const commands = [...source.matchAll(/^ {4}case '([a-z][a-z-]*)':/gm)].map((m) => m[1]).filter((c) => c !== 'help');
  t.true(commands.includes('serve') && commands.length >= 10, `commands found: ${commands.join(', ')}`);
  const { stdout } = await run(process.execPath, [CLI, '--help']);
  for (const c of commands) t.regex(stdout, new RegExp(`^  vaecf ${c}\\b`, 'm'), `vaecf ${c} is missing from --help`);
});

test("vaecf --version prints the version; vaecf COMMAND --help prints that command's usage without reading data", async (t) => {
  const { VERSION } = await import('../src/version');
  t.is((await run(process.execPath, [CLI, '--version'])).stdout.trim(), `vaecf ${VERSION} (node ${process.version})`);
  const train = (await run(process.execPath, [CLI, 'train', '--dataset', '/no/such/file', '--help'])).stdout;
  t.regex(train, /^usage:\n {2}vaecf train --dataset/);
  t.regex(train, /vaecf train --model recvae/);
  t.regex(train, /data options \(for raw files\)/);
  t.notRegex(train, /vaecf serve/);
  const serve = (await run(process.execPath, [CLI, 'serve', '-h'])).stdout;
  t.regex(serve, /--cors ORIGIN\|\*/);
  t.notRegex(serve, /data options/);
});

test("vaecf train warns when beta cannot reach its cap within the run, and says what to pass", async (t) => {
  const base = ['train', '--dataset', sharedFile('ml-latest-small', 'ratings.csv'), '--held-out', '50', '--n-epochs', '1', '--batch-size', '100',
    '--p-dims', '8,16', '--threads', '1'];
  const paper = (await run(process.execPath, [CLI, ...base, '--run-dir', path.join(tempDir(), 'paper')])).stdout;
  // 503 training users in batches of 100: 6 updates, far from the 40,000 that 200,000 steps x cap 0.2 need.
  t.regex(paper, /warning: beta reaches 0\.000030 by the last epoch, not its cap 0\.2: the run makes 6 updates and --total-anneal-steps 200000 needs 40000/);
  t.regex(paper, /--total-anneal-steps epoch-relative .* or --total-anneal-steps 30\b/);
  const relative = (await run(process.execPath, [CLI, ...base, '--total-anneal-steps', 'epoch-relative', '--run-dir', path.join(tempDir(), 'rel')])).stdout;
  t.notRegex(relative, /warning: beta/);
});

test('--checkpoint-every N is kept in config.json and given to training; the last checkpoint holds the last epoch; a bad N names the option', async (t) => {
  const dir = path.join(tempDir(), 'every2');
  const base = ['train', '--dataset', sharedFile('ml-latest-small', 'ratings.csv'), '--held-out', '50', '--n-epochs', '3', '--batch-size', '100',
    '--p-dims', '8,16', '--total-anneal-steps', 'epoch-relative', '--threads', '1'];
  await run(process.execPath, [CLI, ...base, '--checkpoint-every', '2', '--run-dir', dir]);
  t.is(JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')).checkpointEvery, 2);
  const { readModelFile } = await import('../src/io/model-file');
  t.is((readModelFile(path.join(dir, 'last.safetensors')).metadata.training as { epoch: number }).epoch, 3);
  const bad = path.join(tempDir(), 'bad');
  const e = await t.throwsAsync(run(process.execPath, [CLI, ...base, '--checkpoint-every', '0', '--run-dir', bad]));
  t.regex((e as Error & { stderr: string }).stderr, /checkpointEvery: expected a positive integer, got 0/);
  t.notRegex((e as Error & { stdout: string }).stdout, /read \d+ rows/, 'the option is checked before the data is read');
  t.false(fs.existsSync(bad), 'no run directory is left behind');
});

test('--memory-budget GIB reaches training: a model over it is refused with the sizes and the option', async (t) => {
  const e = await t.throwsAsync(run(process.execPath, [...args(path.join(tempDir(), 'run')).filter((a, i, all) => a !== '--p-dims' && all[i - 1] !== '--p-dims'),
    '--memory-budget', '0.01']));
  t.regex((e as Error & { stderr: string }).stderr, /training this mult-vae on \d+ items .* more than the budget of 11 MiB\. .*--memory-budget GIB on the command line/);
  const f = await t.throwsAsync(run(process.execPath, [...args(path.join(tempDir(), 'run')), '--memory-budget=-2']));
  t.regex((f as Error & { stderr: string }).stderr, /memoryBudgetGiB \(--memory-budget\): expected a positive number of GiB, got -2/);
});
