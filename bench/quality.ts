// Quality against the published numbers: prepares a dataset with its protocol, trains / fits the models,
// and prints ours beside the reference (mean ± standard error), with training time; writes JSON.
// usage: node dist/bench/quality.js --dataset ml-1m|gowalla|FILE [--models vae,dae,ease,popularity,recvae]
//          [--epochs N (Mult-VAE / DAE)] [--recvae-epochs N (50)] [--seeds S1,S2,... (neural models; default 98765)] [--held-out N] [--json OUT] [--threads N] [--check: fail outside the quality bands]
import * as fs from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';

import {
  EASE, MultDAE, MultVAE, Popularity, RecVAE, evaluateHeldOut, prepareGivenSplit, preparePaperProtocol, readInteractions,
  type PreparedDataset, type Recommender,
} from '../src/index';
import { loadNative } from '../src/native';
import { cpuDescription } from './native-tools';

const SHARED = process.env.VAECF_SHARED_DATA ?? path.resolve(__dirname, '..', '..', '..', 'shared', 'data');

export interface DatasetSpec {
  name: string;
  metrics: string[];
  load(): Promise<PreparedDataset>;
  easeLambda: number | number[];
  /** published or reference numbers per model, metric -> value */
  reference: Record<string, Record<string, number | string>>;
  /**
   * Bands `--check` enforces (model label -> metric -> [min, max]), for the default epochs, in either
   * precision (bf16 must train as well as fp32: npm run test:slow checks both where bf16 runs).
   */
  bands?: Record<string, { metric: string; min: number; max?: number }>;
}

function argv(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

export interface QualityOptions {
  dataset: string;
  models: string[];
  epochs: number;
  /** RecVAE's epochs (default 50, the authors'; each is 3 encoder and 1 decoder pass) */
  recvaeEpochs?: number;
  /** seeds of the neural models (default [98765]); with several, each seed gets a row and the mean over seeds one more */
  seeds?: number[];
  threads?: number;
  precision: 'auto' | 'fp32' | 'bf16';
  heldOut?: number;
  log: (s: string) => void;
}

export interface QualityRow {
  model: string;
  seconds: number;
  summary: Record<string, { mean: number; stderr: number }>;
  detail?: unknown;
}

export interface QualityResult {
  dataset: string;
  name: string;
  counts: unknown;
  metrics: string[];
  rows: QualityRow[];
  reference: Record<string, Record<string, number | string>>;
  /** the bands checked (see DatasetSpec.bands) */
  checks: Array<{ model: string; metric: string; value: number; min: number; max: number | null; ok: boolean }>;
  table: string;
}

export const DATASETS: Record<string, () => DatasetSpec> = {
  'ml-1m': () => ({
    name: 'ML-1M (ratings >= 4, paper protocol, 600 + 600 held-out users, seed 98765)',
    metrics: ['recall@20', 'recall@50', 'ndcg@100'],
    load: async () => preparePaperProtocol(await readInteractions(path.join(SHARED, 'ml-1m', 'ml1m_pairs_rating_ge4.tsv')), { heldOutUsers: 600 }),
    easeLambda: 300,
    reference: {
      popularity: { 'ndcg@100': 0.216, source: 'numpy reference, same split' },
      'ease-300': { 'recall@20': 0.3586, 'recall@50': 0.4708, 'ndcg@100': 0.4196, source: 'numpy reference, same split' },
      vae: { 'ndcg@100': '0.397 to 0.404', source: 'plain reimplementation, same protocol (shared/data README)' },
      'dae-600': { 'ndcg@100': 0.411, source: 'plain reimplementation, I-600-200-600-I (shared/data README)' },
    },
    bands: {
      popularity: { metric: 'ndcg@100', min: 0.2153, max: 0.2163 },
      'ease-300': { metric: 'ndcg@100', min: 0.4191, max: 0.4201 },
      vae: { metric: 'ndcg@100', min: 0.395 },
      dae: { metric: 'ndcg@100', min: 0.42 },
      recvae: { metric: 'ndcg@100', min: 0.41 },
    },
  }),
  gowalla: () => ({
    name: 'Gowalla (LightGCN split; validation carved from train; LightGCN metrics)',
    metrics: ['recall-lightgcn@20', 'ndcg@20'],
    load: async () => prepareGivenSplit(
      await readInteractions(path.join(SHARED, 'gowalla', 'train.txt')),
      await readInteractions(path.join(SHARED, 'gowalla', 'test.txt')),
    ),
    easeLambda: 80,
    reference: {
      'ease-80': { 'recall-lightgcn@20': 0.1765, 'ndcg@20': 0.1467, source: 'BARS leaderboard' },
      vae: { 'recall-lightgcn@20': 0.1641, 'ndcg@20': 0.1335, source: 'BARS leaderboard' },
    },
    bands: { 'ease-80': { metric: 'recall-lightgcn@20', min: 0.1755, max: 0.1775 } },
  }),
};

export async function runQuality(o: QualityOptions): Promise<QualityResult> {
  const which = o.dataset;
  const console = { log: o.log };
  const spec = DATASETS[which]?.() ?? {
    name: which,
    metrics: ['recall@20', 'recall@50', 'ndcg@100'],
    load: async () => preparePaperProtocol(await readInteractions(which), { heldOutUsers: o.heldOut ?? 10_000 }),
    easeLambda: [100, 300, 1000],
    reference: {
      vae: { 'recall@20': 0.395, 'recall@50': 0.537, 'ndcg@100': 0.426, source: 'Liang et al. 2018, ML-20M' },
      dae: { 'recall@20': 0.387, 'recall@50': 0.524, 'ndcg@100': 0.419, source: 'Liang et al. 2018, ML-20M' },
      ease: { 'recall@20': 0.391, 'recall@50': 0.521, 'ndcg@100': 0.42, source: 'Steck 2019, ML-20M' },
    },
  };
  const { models, threads, precision, epochs } = o;
  const t0 = performance.now();
  const data = await spec.load();
  console.log(`${spec.name}: ${JSON.stringify(data.counts)} (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
  const rows: QualityRow[] = [];
  const seeds = o.seeds ?? [98765];
  const neural = (name: string): boolean => name === 'recvae' || name.startsWith('vae') || name.startsWith('dae');
  const runs = models.flatMap((name) => (neural(name) ? seeds.map((seed) => ({ name, seed })) : [{ name, seed: 98765 }]));
  for (const { name, seed } of runs) {
    const t = performance.now();
    let model: Recommender;
    let label = neural(name) && seeds.length > 1 ? `${name} seed ${seed}` : name;
    let detail: unknown;
    if (name === 'popularity') {
      const p = new Popularity();
      p.fit({ train: data.train });
      model = p;
    } else if (name === 'ease') {
      const e = new EASE({ lambda: spec.easeLambda, threads, onLambda: (l, s) => console.log(`  ease lambda ${l}${s === null ? '' : ` validation ${s.toFixed(4)}`}`) });
      detail = await e.fit({ train: data.train, validation: data.validation });
      label = `ease-${e.chosenLambda}`;
      model = e;
    } else if (name === 'recvae') {
      // The authors' defaults (600 x 5 dense encoder, latent 200, gamma 0.005, lr 5e-4, batch 500, 3 + 1 passes);
      // --precision as for the other models (bf16: the decoder's products).
      const m = new RecVAE({ threads, precision });
      const recvaeEpochs = o.recvaeEpochs ?? 50;
      const h = await m.fit({ train: data.train, validation: data.validation }, {
        epochs: recvaeEpochs, seed, metric: spec.metrics[spec.metrics.length - 1],
        onEpoch: (r) => r.epoch % 10 === 0 && console.log(`  recvae epoch ${r.epoch}: loss ${r.loss.toFixed(2)} validation ${JSON.stringify(r.validation)}`),
      });
      detail = { precision: m.precision, bestEpoch: h.bestEpoch, bestValidation: h.bestScore, secondsPerEpoch: h.seconds / h.epochs.length };
      model = m;
    } else {
      const dae = name.startsWith('dae');
      const pDims = name === 'dae' ? [200] : [200, 600];
      const m = dae ? new MultDAE({ pDims, threads, precision }) : new MultVAE({ pDims, threads, precision });
      const h = await m.fit({ train: data.train, validation: data.validation }, {
        epochs, seed, metric: spec.metrics[spec.metrics.length - 1], beta: { schedule: 'epoch-relative', cap: 0.2 },
        onEpoch: (r) => r.epoch % 20 === 0 && console.log(`  ${name} epoch ${r.epoch}: loss ${r.loss.toFixed(2)} validation ${JSON.stringify(r.validation)}`),
      });
      detail = { precision: m.precision, bestEpoch: h.bestEpoch, bestValidation: h.bestScore, secondsPerEpoch: h.seconds / h.epochs.length };
      model = m;
    }
    const report = await evaluateHeldOut(model, data.test, spec.metrics);
    const seconds = (performance.now() - t) / 1000;
    rows.push({ model: label, seconds, summary: report.summary, detail });
    console.log(`${label}: ${spec.metrics.map((m) => `${m} ${report.summary[m].mean.toFixed(4)} ± ${report.summary[m].stderr.toFixed(4)}`).join(', ')} (${seconds.toFixed(1)} s)`);
    model.dispose();
  }
  // Several seeds: the mean over seeds with its standard error (std over seeds / sqrt(seeds)).
  if (seeds.length > 1)
    for (const name of models.filter(neural)) {
      const mine = rows.filter((r) => r.model.startsWith(`${name} seed `));
      const summary: QualityRow['summary'] = {};
      for (const m of spec.metrics) {
        const xs = mine.map((r) => r.summary[m].mean);
        const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
        const sd = Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1));
        summary[m] = { mean, stderr: sd / Math.sqrt(xs.length) };
      }
      rows.push({ model: name, seconds: mine.reduce((a, r) => a + r.seconds, 0), summary, detail: { seeds, over: 'seeds (stderr = std / sqrt(seeds))' } });
    }
  const lines = [`${spec.name}, test set`, `${'model'.padEnd(14)}${spec.metrics.map((m) => m.padStart(22)).join('')}${'seconds'.padStart(10)}   reference`];
  for (const r of rows) {
    const ref = spec.reference[r.model] ?? spec.reference[r.model.replace(/-\d+$/, '')];
    const refText = ref ? spec.metrics.filter((m) => ref[m] !== undefined).map((m) => `${m} ${ref[m]}`).join(', ') + ` (${ref.source})` : '';
    lines.push(`${r.model.padEnd(14)}${spec.metrics.map((m) => `${r.summary[m].mean.toFixed(4)} ± ${r.summary[m].stderr.toFixed(4)}`.padStart(22)).join('')}${r.seconds.toFixed(1).padStart(10)}   ${refText}`);
  }
  // The bands (`--check`): each model that has one and ran, against its test metric.
  const checks: QualityResult['checks'] = [];
  for (const r of rows) {
    const band = spec.bands?.[r.model];
    if (!band) continue;
    const value = r.summary[band.metric]?.mean;
    const ok = value !== undefined && value >= band.min && (band.max === undefined || value <= band.max);
    checks.push({ model: r.model, metric: band.metric, value: value ?? NaN, min: band.min, max: band.max ?? null, ok });
    lines.push(`check ${ok ? 'PASS' : 'FAIL'}: ${r.model} ${band.metric} ${value?.toFixed(4)} in [${band.min}, ${band.max ?? 'inf'}]`);
  }
  return { dataset: which, name: spec.name, counts: data.counts, metrics: spec.metrics, rows, reference: spec.reference, checks, table: lines.join('\n') };
}

if (require.main === module) (async () => {
  const cpu = cpuDescription();
  const precision = (argv('precision') ?? 'auto') as 'auto' | 'fp32' | 'bf16';
  console.log(`CPU ${cpu.model}, ${cpu.cores} cores, flags ${cpu.flags.join(' ')}; SIMD kernels ${cpu.simdTarget}; bf16: ${cpu.bf16}; fp32 products: ${cpu.fp32Gemm}`);
  if (precision === 'bf16' && !loadNative().bf16Available) {
    // `npm run test:slow` asks for a bf16 run too: on a CPU without native bf16 it is not an error.
    console.log(`--precision bf16: skipped, this CPU has no native bf16 (${cpu.bf16})`);
    return;
  }
  await runQuality({
    dataset: argv('dataset') ?? 'ml-1m',
    models: (argv('models') ?? 'popularity,ease,vae,dae').split(','),
    epochs: Number(argv('epochs') ?? 200),
    recvaeEpochs: argv('recvae-epochs') ? Number(argv('recvae-epochs')) : undefined,
    seeds: argv('seeds') ? (argv('seeds') as string).split(',').map(Number) : undefined,
    threads: argv('threads') ? Number(argv('threads')) : undefined,
    precision,
    heldOut: argv('held-out') ? Number(argv('held-out')) : undefined,
    log: (s) => console.log(s),
  }).then(
    (r) => {
      console.log(`\n${r.table}`);
      const out = argv('json');
      if (out) fs.writeFileSync(out, JSON.stringify({ machine: cpu, command: `node dist/bench/quality.js ${process.argv.slice(2).join(' ')}`, ...r }, null, 2));
      // --check: a model outside its band fails the run (npm run test:slow).
      if (process.argv.includes('--check') && r.checks.some((c) => !c.ok)) {
        console.error(`quality check failed: ${r.checks.filter((c) => !c.ok).map((c) => `${c.model} ${c.metric} ${c.value.toFixed(4)}`).join(', ')}`);
        process.exitCode = 1;
      }
    },
    (e) => {
      console.error(e);
      process.exit(1);
    },
  );
})();
