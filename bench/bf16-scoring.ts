// Scoring one user at a time with the item output layer's weights stored in bf16 (fp32 accumulation)
// against fp32 weights: does the top-k stay the same? The issue's bar for offering it on CPUs without
// native bf16: the top-20 of at least 99% of users identical to fp32's. One model is trained in fp32
// on a real dataset (the paper's ML-1M protocol by default), saved, and loaded twice: precision 'fp32'
// and precision 'bf16' (the bf16 weight copy is the round-to-nearest of the fp32 master weights). Every
// held-out test user is then scored alone (the low-latency panel kernel) by both, and the top-k lists
// compared: the same set, the same order, and the test NDCG@100 of each. The SIMD target is this
// processor's best unless VAECF_SIMD names another (for example AVX2: the kernel CPUs without native
// bf16 would run).
//
// usage: node dist/bench/bf16-scoring.js [--data ml-1m|gowalla] [--epochs N (100)] [--k N (20)] [--json OUT]
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { loadModel, MultVAE, selectRows, type CsrMatrix, type Recommender } from '../src/index';
import { loadNative } from '../src/native';
import { rankingMetrics } from '../src/metrics/ranking';
import { cpuDescription, option as opt } from './native-tools';
import { DATASETS } from './quality';

// Each user alone (the few-rows panel kernel), seen items excluded as in evaluation: users x depth.
async function topOneByOne(model: Recommender, rows: CsrMatrix, depth: number): Promise<Int32Array> {
  const out = new Int32Array(rows.rows * depth);
  for (let u = 0; u < rows.rows; u++) out.set((await model.recommendRows(selectRows(rows, [u]), { k: depth, excludeSeen: true })).items, u * depth);
  return out;
}

async function main(): Promise<void> {
  const which = opt('data') ?? 'ml-1m';
  const epochs = Number(opt('epochs') ?? 100);
  const k = Number(opt('k') ?? 20);
  const threads = os.availableParallelism();
  const cpu = cpuDescription();
  const { bf16Available, bf16Description } = loadNative();
  console.log(`CPU: ${cpu.model}, flags ${cpu.flags.join(' ')}; SIMD target ${cpu.simdTarget}${process.env.VAECF_SIMD ? ` (VAECF_SIMD=${process.env.VAECF_SIMD})` : ''}`);
  if (!bf16Available) {
    console.log(`skipped: the engine's bf16 mode needs native bf16 here (${bf16Description}); run this on a machine that has it`);
    return;
  }
  const spec = DATASETS[which]();
  const data = await spec.load();
  const test = data.test;
  console.log(`${spec.name}: ${data.train.rows} training users x ${data.train.cols} items; ${test.foldIn.rows} test users`);

  const model = new MultVAE({ pDims: [200, 600], threads, precision: 'fp32' });
  await model.fit({ train: data.train }, { epochs, batchSize: 500, seed: 98765 });
  const file = path.join(os.tmpdir(), `vaecf-bf16-scoring-${process.pid}.safetensors`);
  await model.save(file, { weightsOnly: true });
  model.dispose();

  const fp32 = await loadModel(file, { precision: 'fp32', threads });
  const bf16 = await loadModel(file, { precision: 'bf16', threads });
  fs.rmSync(file);
  const depth = Math.max(k, 100);
  const a = await topOneByOne(fp32, test.foldIn, depth);
  const b = await topOneByOne(bf16, test.foldIn, depth);
  const users = test.foldIn.rows;
  let sameSet = 0, sameOrder = 0, overlap = 0;
  for (let u = 0; u < users; u++) {
    const topA = a.subarray(u * depth, u * depth + k), topB = b.subarray(u * depth, u * depth + k);
    const setA = new Set(topA);
    const common = Array.from(topB).filter((i) => setA.has(i)).length;
    overlap += common / k;
    if (common === k) sameSet++;
    if (topA.every((v, i) => v === topB[i])) sameOrder++;
  }
  const ndcg = (top: Int32Array): number => rankingMetrics(top, depth, test.targets, ['ndcg@100']).summary['ndcg@100'].mean;
  const result = {
    date: new Date().toISOString(),
    command: `node dist/bench/bf16-scoring.js ${process.argv.slice(2).join(' ')}`.trim(),
    machine: cpu,
    simdOverride: process.env.VAECF_SIMD ?? null,
    dataset: which, epochs, k, users,
    identicalTopKSet: sameSet / users,
    identicalTopKOrder: sameOrder / users,
    meanOverlap: overlap / users,
    testNdcg100OneByOne: { fp32: ndcg(a), bf16: ndcg(b) },
    bar: 'identical top-20 set for >= 99% of users',
  };
  fp32.dispose();
  bf16.dispose();
  console.log(`top-${k} of ${users} users, one at a time: identical set ${(100 * result.identicalTopKSet).toFixed(2)}%, identical order ${(100 * result.identicalTopKOrder).toFixed(2)}%, mean overlap ${(100 * result.meanOverlap).toFixed(2)}%`);
  console.log(`test NDCG@100: fp32 ${result.testNdcg100OneByOne.fp32.toFixed(4)}, bf16 weights ${result.testNdcg100OneByOne.bf16.toFixed(4)} (each user scored alone)`);
  const out = opt('json');
  if (out) fs.writeFileSync(out, `${JSON.stringify(result, null, 1)}\n`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
