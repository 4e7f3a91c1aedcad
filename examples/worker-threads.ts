// Scoring in several worker threads: each worker loads the same model file and answers requests
// from the main thread, so the main thread never waits on scoring.
// usage: node dist/examples/worker-threads.js model.safetensors [workers]
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';

import { loadModel, type ItemId } from '../src/index';

interface Job {
  id: number;
  history: ItemId[];
}

async function workerMain(): Promise<void> {
  const model = await loadModel(workerData.file, { threads: 1 });
  parentPort?.on('message', async (job: Job | 'stop') => {
    if (job === 'stop') {
      model.dispose();
      parentPort?.close();
      return;
    }
    const [rec] = await model.recommend([job.history], { k: 5 });
    parentPort?.postMessage({ id: job.id, items: rec.items });
  });
}

async function main(): Promise<void> {
  const [file, n = '2'] = process.argv.slice(2);
  if (!file) throw new Error('usage: worker-threads MODEL_FILE [WORKERS]');
  const probe = await loadModel(file, { threads: 1 });
  const ids = probe.itemIds;
  probe.dispose();
  const workers = Array.from({ length: Number(n) }, () => new Worker(__filename, { workerData: { file } }));
  const pending = new Map<number, (items: ItemId[]) => void>();
  for (const w of workers) w.on('message', (m: { id: number; items: ItemId[] }) => pending.get(m.id)?.(m.items));
  const ask = (id: number, history: ItemId[]): Promise<ItemId[]> =>
    new Promise((resolve) => {
      pending.set(id, resolve);
      workers[id % workers.length].postMessage({ id, history });
    });
  const answers = await Promise.all(Array.from({ length: 20 }, (_, u) => ask(u, [ids[u % ids.length], ids[(u * 7) % ids.length]])));
  answers.slice(0, 3).forEach((a, u) => console.log(`user ${u}: ${a.join(', ')}`));
  console.log(`${answers.length} answers from ${workers.length} workers`);
  for (const w of workers) w.postMessage('stop');
}

if (isMainThread) {
  main().catch((e) => {
    console.error(e.message);
    process.exit(1);
  });
} else {
  void workerMain();
}
