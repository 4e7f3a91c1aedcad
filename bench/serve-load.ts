// A bounded load test of `createRecommendServer` on loopback: a model of ML-20M size (20,108 items)
// served from a child process (as a real service runs), a fixed number of requests at a fixed
// concurrency (one user, a 50-item history, top-20 each); throughput, p50 / p99 latency, errors,
// with micro-batching of concurrent requests on and off, side by side in one run.
// usage: node dist/bench/serve-load.js [--requests N] [--concurrency N] [--json OUT]
import { fork } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';

import { createRecommendServer, generateClicks, listen, loadModel, MultVAE, shutdown } from '../src/index';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

// Child role: load the model, serve it, report the port, stop on 'stop'.
async function serve(file: string, coalesce: boolean): Promise<void> {
  const model = await loadModel(file);
  const server = createRecommendServer(model, { coalesce });
  const { port } = await listen(server, 0);
  process.send?.({ port, precision: model.precision });
  process.on('message', async (m) => {
    if (m !== 'stop') return;
    await shutdown(server);
    model.dispose();
    process.exit(0);
  });
}

interface LoadResult {
  coalesce: boolean;
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  meanUsersPerCall: number;
}

async function load(file: string, coalesce: boolean, requests: number, concurrency: number, items: number): Promise<LoadResult> {
  const child = fork(__filename, ['--serve', file, '--coalesce', String(coalesce)], { stdio: 'inherit' });
  const { port } = await new Promise<{ port: number }>((resolve, reject) => {
    child.once('message', (m) => resolve(m as { port: number }));
    child.once('exit', (code) => reject(new Error(`the server process exited with ${code}`)));
  });
  const url = `http://127.0.0.1:${port}`;
  const latencies: number[] = [];
  let errors = 0;
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < requests) {
      const i = next++;
      const body = JSON.stringify({ items: Array.from({ length: 50 }, (_, j) => (i * 131 + j * 397) % items), k: 20 });
      const t = performance.now();
      try {
        const r = await fetch(`${url}/recommend`, { method: 'POST', body });
        await r.arrayBuffer();
        if (r.status !== 200) errors++;
      } catch {
        errors++;
      }
      latencies.push(performance.now() - t);
    }
  };
  // Warm-up, then the timed run.
  next = requests - Math.min(200, requests);
  await Promise.all(Array.from({ length: concurrency }, worker));
  latencies.length = 0;
  errors = 0;
  next = 0;
  const started = performance.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  const seconds = (performance.now() - started) / 1000;
  const health = (await (await fetch(`${url}/health`)).json()) as { scoring: { calls: number; users: number } };
  child.send('stop');
  await new Promise((resolve) => child.once('exit', resolve));
  latencies.sort((a, b) => a - b);
  const q = (p: number): number => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))];
  return {
    coalesce, requestsPerSecond: requests / seconds, p50Ms: q(0.5), p99Ms: q(0.99), errors,
    meanUsersPerCall: health.scoring.users / health.scoring.calls,
  };
}

async function main(): Promise<void> {
  const served = arg('serve');
  if (served) return serve(served, arg('coalesce') !== 'false');
  const requests = Number(arg('requests') ?? 4000);
  const concurrency = Number(arg('concurrency') ?? 16);
  const items = 20_108;
  const m = new MultVAE({ pDims: [200, 600] });
  await m.fit({ train: generateClicks({ users: 3000, items, meanClicksPerUser: 60, seed: 5 }) }, { epochs: 1 });
  const file = path.join(os.tmpdir(), `vaecf-serve-${process.pid}.safetensors`);
  await m.save(file, { weightsOnly: true });
  m.dispose();
  const alone = await load(file, false, requests, concurrency, items);
  const together = await load(file, true, requests, concurrency, items);
  fs.rmSync(file);
  const result = {
    requests, concurrency, items, cpus: os.availableParallelism(),
    runs: [alone, together],
    throughputRatio: together.requestsPerSecond / alone.requestsPerSecond,
  };
  console.log(JSON.stringify(result, null, 2));
  const out = arg('json');
  if (out) fs.writeFileSync(out, JSON.stringify(result, null, 2));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
