// Embedding a trained model: latency of one user (a 50-item history over 20,108 items, top-20) through
// the synchronous and the asynchronous path, batch throughput, and the memory of a loaded model of
// ML-20M size (after garbage collection; the peak while loading too). Side by side, the stream bound: the
// time to read the scoring weights once on this machine with the same threads (vaecf_harness stream), and
// the one-user p50 as a ratio to it. usage: node dist/bench/embed-latency.js [--precision auto|fp32] [--json OUT]
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';

import { csrFromRows, generateClicks, loadModel, MultVAE, type CsrMatrix } from '../src/index';
import { cpuDescription, harnessNumber } from './native-tools';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

async function main(): Promise<void> {
  const items = 20_108;
  const precision = (arg('precision') ?? 'auto') as 'auto' | 'fp32';
  const threads = Number(arg('threads') ?? os.availableParallelism());
  // A model of ML-20M size; weights from one short epoch on generated data (latency does not depend on them).
  const train = generateClicks({ users: 3000, items, meanClicksPerUser: 60, seed: 5 });
  const m = new MultVAE({ pDims: [200, 600], threads, precision });
  await m.fit({ train }, { epochs: 1 });
  const file = path.join(os.tmpdir(), `vaecf-embed-${process.pid}.safetensors`);
  await m.save(file, { weightsOnly: true });
  m.dispose();
  // Memory: resident set after a full garbage collection, before and after loading (the file's bytes and
  // the parsed arrays are garbage once the weights are in the engine), and after the first one-user
  // call (which packs the output layer for the low-latency kernel).
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  const settledRss = async (): Promise<number> => {
    gc();
    await new Promise((r) => setTimeout(r, 50));
    gc();
    return process.memoryUsage().rss;
  };
  const rssBefore = await settledRss();
  const model = await loadModel(file, { threads, precision });
  const rssJustLoaded = process.memoryUsage().rss;
  const loadedMiB = ((await settledRss()) - rssBefore) / 2 ** 20;
  model.recommendRowsSync(csrFromRows([[1, 2, 3]], items), { k: 20 });
  const scoringMiB = ((await settledRss()) - rssBefore) / 2 ** 20;
  const histories: CsrMatrix[] = Array.from({ length: 200 }, (_, u) =>
    csrFromRows([Array.from({ length: 50 }, (_, j) => (u * 131 + j * 397) % items)], items));
  const time = async (f: (h: CsrMatrix) => unknown, n: number): Promise<number[]> => {
    for (let i = 0; i < 20; i++) await f(histories[i % histories.length]);
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      const t = performance.now();
      await f(histories[i % histories.length]);
      out.push(performance.now() - t);
    }
    return out.sort((a, b) => a - b);
  };
  // The one-user path and the stream bound measured in alternating rounds (the machine's memory bandwidth
  // drifts when it is shared): each round's p50 over its own stream time, the median of those ratios.
  const itemLayerBytes = 600 * items * (model.precision === 'bf16' ? 2 : 4);
  const streamBytes = itemLayerBytes + 4 * (600 * 400 + 200 * 600);
  const roundRatios: number[] = [];
  const streams: number[] = [];
  let sync: number[] = [];
  for (let round = 0; round < 5; round++) {
    const times = await time((h) => model.recommendRowsSync(h, { k: 20 }), 100);
    const stream = harnessNumber(['stream', '--bytes', String(streamBytes), '--threads', String(threads), '--reps', '100'], 'stream_ms_p50').value;
    streams.push(stream);
    roundRatios.push(percentile(times, 0.5) / stream);
    sync = [...sync, ...times];
  }
  sync.sort((a, b) => a - b);
  const asyncTimes = await time((h) => model.recommendRows({ ...h }, { k: 20, batchSize: 1000 }).then(() => undefined), 500);
  // Force the asynchronous path for one user, for the comparison.
  const viaPool = await time((h) => (model as unknown as { learned(): { native: { recommend: (c: CsrMatrix, o: object) => Promise<unknown> } } }).learned().native.recommend(h, { k: 20, excludeSeen: true }), 500);
  // Batch throughput: 10,000 users of 50 items.
  const batch = csrFromRows(Array.from({ length: 10_000 }, (_, u) => Array.from({ length: 50 }, (_, j) => (u * 7919 + j * 104729) % items)), items);
  const t = performance.now();
  await model.recommendRows(batch, { k: 20 });
  const usersPerSecond = batch.rows / ((performance.now() - t) / 1000);
  // The weights one user's scoring reads: the decoder's dense layers and the encoder's 600 x 400 one (the
  // first layer reads only the history's rows), the item layer in the precision it is scored in.
  const syncP50 = percentile(sync, 0.5);
  const stream = [...streams].sort((a, b) => a - b)[2];
  const ratio = [...roundRatios].sort((a, b) => a - b)[2];
  const cpu = cpuDescription();
  console.log(`CPU ${cpu.model}, flags ${cpu.flags.join(' ')}; SIMD kernels ${cpu.simdTarget}; ${model.precision}, ${threads} threads`);
  console.log(`one user: p50 ${syncP50.toFixed(3)} ms, p99 ${percentile(sync, 0.99).toFixed(3)} ms; streaming the ${(streamBytes / 2 ** 20).toFixed(1)} MiB of scoring weights once: ${stream.toFixed(3)} ms (median of 5 rounds) -> p50 at ${ratio.toFixed(2)}x the stream bound (median of the rounds' ratios: ${roundRatios.map((r) => r.toFixed(2)).join(', ')})`);
  const result = {
    machine: cpu,
    precision: model.precision, threads, items,
    streamBound: { bytes: streamBytes, msP50PerRound: streams, oneUserP50OverStreamPerRound: roundRatios, oneUserP50OverStream: ratio },
    oneUserSyncMs: { p50: percentile(sync, 0.5), p99: percentile(sync, 0.99) },
    oneUserAsyncThreadPoolMs: { p50: percentile(viaPool, 0.5), p99: percentile(viaPool, 0.99) },
    oneUserRecommendRowsMs: { p50: percentile(asyncTimes, 0.5), p99: percentile(asyncTimes, 0.99) },
    batchUsersPerSecond: usersPerSecond,
    loadedModelMiB: loadedMiB,
    loadedModelAfterFirstCallMiB: scoringMiB,
    loadingPeakMiB: (rssJustLoaded - rssBefore) / 2 ** 20,
    modelFileMiB: fs.statSync(file).size / 2 ** 20,
  };
  console.log(JSON.stringify(result, null, 2));
  const out = arg('json');
  if (out) fs.writeFileSync(out, JSON.stringify(result, null, 2));
  fs.rmSync(file);
  model.dispose();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
