// Several worker threads load the same model file and score concurrently; every answer equals the
// main thread's.
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';

import test from 'ava';

import { loadModel, train } from '../src/index';
import { tempDir, twoGroups } from './helpers';

test('worker threads each load the same model and score concurrently, with the same answers', async (t) => {
  const data = twoGroups();
  const model = await train({ train: data }, { epochs: 5, batchSize: 20, seed: 4, architecture: { pDims: [8, 32], threads: 1, precision: 'fp32' } });
  const file = path.join(tempDir(), 'model.safetensors');
  await model.save(file, { weightsOnly: true });
  const histories = Array.from({ length: 50 }, (_, u) => [u % 20, (u * 7) % 20, (u * 13) % 20]);
  const main = await loadModel(file, { threads: 1, precision: 'fp32' });
  const expected = await main.recommend(histories, { k: 5 });
  const index = path.join(__dirname, '..', 'src', 'index.js');
  const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    const { loadModel } = require(${JSON.stringify(index)});
    (async () => {
      const m = await loadModel(workerData.file, { threads: 1, precision: 'fp32' });
      const out = [];
      for (let round = 0; round < 5; round++) out.push(await m.recommend(workerData.histories, { k: 5 }));
      m.dispose();
      parentPort.postMessage(out);
    })().catch((e) => parentPort.postMessage({ error: e.message }));`;
  const results = await Promise.all(
    Array.from({ length: 4 }, () =>
      new Promise<unknown>((resolve, reject) => {
        const w = new Worker(code, { eval: true, workerData: { file, histories } });
        w.once('message', resolve);
        w.once('error', reject);
      })),
  );
  for (const r of results) {
    t.false(typeof r === 'object' && r !== null && 'error' in r, JSON.stringify(r));
    for (const round of r as unknown[]) t.deepEqual(round, expected);
  }
  model.dispose();
  main.dispose();
});
