// Seconds per training epoch at ML-20M shape (116,677 users x 20,108 items x 8.54M clicks, the paper's
// preprocessing), [I-600-200-600-I], batch 500, on this machine; plus scoring throughput and peak RSS.
// usage: node dist/bench/epoch-speed.js [--epochs N] [--threads N] [--users N] [--json out.json]
import * as fs from 'node:fs';
import * as os from 'node:os';
import { performance } from 'node:perf_hooks';

import { generateClicks, ML20M_SHAPE, MultVAE, nnz, resolvePrecision, selectRows } from '../src/index';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

async function main(): Promise<void> {
  const epochs = arg('epochs', 1);
  const threads = arg('threads', os.availableParallelism());
  const users = arg('users', ML20M_SHAPE.users);
  const jsonIndex = process.argv.indexOf('--json');
  let t = performance.now();
  const train = generateClicks({ ...ML20M_SHAPE, users, seed: 20 });
  console.log(`data: ${train.rows} users x ${train.cols} items, ${nnz(train)} clicks (generated in ${((performance.now() - t) / 1000).toFixed(1)} s)`);
  const precision = (process.argv.includes('--fp32') ? 'fp32' : process.argv.includes('--bf16') ? 'auto' : 'auto') as 'fp32' | 'bf16' | 'auto';
  console.log(`precision: ${resolvePrecision(precision).note}, threads ${threads}`);
  const model = new MultVAE({ pDims: [200, 600], threads, precision });
  const perEpoch: number[] = [];
  t = performance.now();
  await model.fit({ train }, {
    epochs, batchSize: 500, seed: 1,
    onBatch: (b) => {
      if (b.batch % 50 === 0) process.stdout.write(`  epoch ${b.epoch} batch ${b.batch}/${b.batches} loss ${b.loss.toFixed(1)}\n`);
    },
    onEpoch: (r) => {
      perEpoch.push(r.seconds);
      console.log(`epoch ${r.epoch}: ${r.seconds.toFixed(1)} s, loss ${r.loss.toFixed(2)}`);
    },
  });
  const scoreUsers = selectRows(train, Array.from({ length: Math.min(10_000, train.rows) }, (_, i) => i));
  t = performance.now();
  await model.recommendRows(scoreUsers, { k: 100 });
  const scoreSeconds = (performance.now() - t) / 1000;
  const peakRssMiB = process.resourceUsage().maxRSS / 1024;
  const result = {
    machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, threads },
    precision: resolvePrecision(precision).note,
    shape: { users: train.rows, items: train.cols, clicks: nnz(train), dims: 'I-600-200-600-I', batchSize: 500 },
    secondsPerEpoch: perEpoch,
    scoring: { users: scoreUsers.rows, k: 100, seconds: scoreSeconds, usersPerSecond: scoreUsers.rows / scoreSeconds },
    peakRssMiB,
  };
  console.log(`scoring ${scoreUsers.rows} users, top-100: ${scoreSeconds.toFixed(2)} s (${(scoreUsers.rows / scoreSeconds).toFixed(0)} users/s)`);
  console.log(`peak RSS ${peakRssMiB.toFixed(0)} MiB`);
  if (jsonIndex >= 0) fs.writeFileSync(process.argv[jsonIndex + 1], JSON.stringify(result, null, 2));
  model.dispose();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
