// Every example runs as users would run it.
import { execFile, spawn } from 'node:child_process';
import * as path from 'node:path';
import { promisify } from 'node:util';

import test from 'ava';

import { tempDir } from './helpers';

const run = promisify(execFile);
const EXAMPLES = path.join(__dirname, '..', 'examples');
const dir = tempDir();
const modelFile = path.join(dir, 'model.safetensors');

test.serial('train-and-save trains on generated data and saves a model', async (t) => {
  const r = await run(process.execPath, [path.join(EXAMPLES, 'train-and-save.js'), '--epochs', '3', '--out', modelFile]);
  t.regex(r.stdout, /epoch 3: loss/);
  t.regex(r.stdout, /test \{ 'recall@20'/);
  t.regex(r.stdout, /saved /);
});

test.serial('worker-threads answers from several workers', async (t) => {
  const r = await run(process.execPath, [path.join(EXAMPLES, 'worker-threads.js'), modelFile, '2']);
  t.regex(r.stdout, /20 answers from 2 workers/);
});

test.serial('http-app serves recommendations and stops on SIGTERM', async (t) => {
  const child = spawn(process.execPath, [path.join(EXAMPLES, 'http-app.js'), modelFile, '0']);
  let out = '';
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', () => reject(new Error(`exited early: ${out}`)));
  });
  const r = await fetch(`http://127.0.0.1:${port}/recommend`, { method: 'POST', body: JSON.stringify({ items: [0, 1, 2], k: 5 }) });
  t.is(r.status, 200);
  t.is(((await r.json()) as { items: unknown[] }).items.length, 5);
  child.kill('SIGTERM');
  const code = await new Promise((resolve) => child.once('exit', resolve));
  t.is(code, 0);
  t.regex(out, /stopped/);
});
