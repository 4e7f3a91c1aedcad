// The event loop while vaecf works at ML-20M's model size (20,108 items, I-600-200-600-I, 24.3M
// parameters; a checkpoint with the Adam moments and the best weights is 390 MB): the worst time a 1 ms
// timer waited during each call of the API. The first call includes the addon's first load.
// usage: node dist/bench/event-loop.js [--users 3000] [--threads N] [--json OUT]
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { generateClicks, loadModel, MultVAE, strongGeneralizationSplit } from '../src/index';
import { worstEventLoopGap } from '../src/util/event-loop';
import { cpuDescription, option } from './native-tools';

async function main(): Promise<void> {
  const users = Number(option('users') ?? 3000);
  const threads = Number(option('threads') ?? os.availableParallelism());
  const items = 20_108;
  const split = strongGeneralizationSplit(generateClicks({ users, items, meanClicksPerUser: 60, seed: 5 }), { heldOutUsers: Math.round(users / 10) });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vaecf-event-loop-'));
  const file = path.join(dir, 'model.safetensors');
  const checkpoint = path.join(dir, 'checkpoint.safetensors');
  const rows: Array<{ call: string; worstMs: number; seconds: number }> = [];
  const measure = async (call: string, work: () => Promise<unknown>): Promise<void> => {
    const t0 = Date.now();
    const { worst } = await worstEventLoopGap(work);
    rows.push({ call, worstMs: Number(worst.toFixed(1)), seconds: (Date.now() - t0) / 1000 });
    console.log(`${call.padEnd(58)} worst gap ${worst.toFixed(1).padStart(6)} ms  (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  };
  const model = new MultVAE({ pDims: [200, 600], threads, precision: 'fp32' });
  await measure('fit: first load, 1 epoch, validation, best snapshot', () => model.fit(split, { epochs: 1 }));
  await measure(`save: checkpoint (${'moments and best weights'})`, () => model.save(checkpoint));
  await measure('save: weights only', () => model.save(file, { weightsOnly: true }));
  let loaded: Awaited<ReturnType<typeof loadModel>> | undefined;
  await measure('loadModel: checkpoint', async () => {
    loaded = await loadModel(checkpoint, { threads });
  });
  loaded?.dispose();
  await measure('loadModel: weights only', async () => {
    loaded = await loadModel(file, { threads });
  });
  await measure(`recommendRows: ${split.test.foldIn.rows} users, top-100`, () => (loaded as MultVAE).recommendRows(split.test.foldIn, { k: 100 }));
  await measure('fit: resume from the checkpoint for 1 more epoch', async () => {
    const again = new MultVAE({ pDims: [200, 600], threads, precision: 'fp32' });
    await again.fit(split, { epochs: 2, resumeFrom: checkpoint });
    again.dispose();
  });
  const bytes = fs.statSync(checkpoint).size;
  model.dispose();
  loaded?.dispose();
  fs.rmSync(dir, { recursive: true, force: true });
  const machine = cpuDescription();
  const out = option('json');
  const result = {
    benchmark: 'event-loop', date: new Date().toISOString(), node: process.version, threads,
    machine: { cpu: machine.model, cores: machine.cores, flags: machine.flags, simdTarget: machine.simdTarget },
    shape: { items, users, layers: 'I-600-200-600-I', checkpointBytes: bytes },
    command: `node dist/bench/event-loop.js ${process.argv.slice(2).join(' ')}`.trim(),
    rows,
  };
  console.log(`machine: ${machine.model}, ${machine.cores} cores, SIMD ${machine.simdTarget}; checkpoint ${(bytes / 1e6).toFixed(0)} MB`);
  if (out) fs.writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
