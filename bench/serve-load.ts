// A bounded load test of `createRecommendServer` on loopback: a model of ML-20M size (20,108 items),
// concurrency 16, a fixed number of requests (one user, a 50-item history, top-20 each); throughput,
// p50 / p99 latency, errors. usage: node dist/bench/serve-load.js [--requests N] [--concurrency N]
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';

import { createRecommendServer, generateClicks, listen, loadModel, MultVAE, shutdown } from '../src/index';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

async function main(): Promise<void> {
  const requests = arg('requests', 4000);
  const concurrency = arg('concurrency', 16);
  const items = 20_108;
  const m = new MultVAE({ pDims: [200, 600] });
  await m.fit({ train: generateClicks({ users: 3000, items, meanClicksPerUser: 60, seed: 5 }) }, { epochs: 1 });
  const file = path.join(os.tmpdir(), `vaecf-serve-${process.pid}.safetensors`);
  await m.save(file, { weightsOnly: true });
  m.dispose();
  const model = await loadModel(file);
  const server = createRecommendServer(model);
  const { port } = await listen(server, 0);
  const url = `http://127.0.0.1:${port}/recommend`;
  const latencies: number[] = [];
  let errors = 0;
  let next = 0;
  const started = performance.now();
  const worker = async (): Promise<void> => {
    while (next < requests) {
      const i = next++;
      const body = JSON.stringify({ items: Array.from({ length: 50 }, (_, j) => (i * 131 + j * 397) % items), k: 20 });
      const t = performance.now();
      try {
        const r = await fetch(url, { method: 'POST', body });
        await r.arrayBuffer();
        if (r.status !== 200) errors++;
      } catch {
        errors++;
      }
      latencies.push(performance.now() - t);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const q = (p: number): number => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))];
  const result = { requests, concurrency, seconds, requestsPerSecond: requests / seconds, p50Ms: q(0.5), p99Ms: q(0.99), errors, precision: model.precision };
  console.log(JSON.stringify(result, null, 2));
  await shutdown(server);
  model.dispose();
  fs.rmSync(file);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
