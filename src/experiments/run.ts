// A training run as `vaecf train` makes it: the options of the reference scripts (RecoTour's main.py), a run directory per run
// (config.json, metrics.jsonl, last.safetensors checkpoint, best.safetensors weights, results.json),
// exact --resume, and Ctrl-C leaving a resumable checkpoint.
import * as fs from 'node:fs';
import * as path from 'node:path';

import { VaecfInputError } from '../data/csr';
import { describe, loadOrPrepare, type DataOptions } from '../data/load';
import { readModelFile } from '../io/model-file';
import { MultDAE, MultVAE, resolvePrecision } from '../models/mult-vae';
import { RecVAE, resolveRecVaePrecision } from '../models/recvae';
import { resolveDevice } from '../native';
import { Popularity } from '../models/popularity';
import { evaluateHeldOut } from '../training/evaluate';
import { validateTrainOptions } from '../training/train';
import type { TrainOptions } from '../training/options';
import { ProgressLine } from '../util/progress';

export interface TrainConfig extends DataOptions {
  dataset: string;
  model: 'vae' | 'dae' | 'recvae';
  /** RecVAE (the authors' run.py options): encoder width (600), latent size (200), gamma (0.005) or a fixed beta,
   * encoder and decoder epochs per epoch (3, 1), joint training instead of alternating */
  hiddenDim?: number;
  latentDim?: number;
  gamma?: number;
  beta?: number;
  nEncEpochs?: number;
  nDecEpochs?: number;
  notAlternating?: boolean;
  /** decoder widths; default: the model's own (Mult-VAE [200, 600], Mult-DAE the paper's [200]) */
  pDims?: number[];
  qDims?: number[];
  dropoutEnc?: number[];
  dropoutDec?: number[];
  weightDecay: number;
  optimizer: 'adam' | 'adamw';
  lr: number;
  lrScheduler: 'none' | 'plateau';
  lrPatience: number;
  batchSize: number;
  nEpochs: number;
  annealCap: number;
  totalAnnealSteps: number | 'epoch-relative';
  constantAnneal: boolean;
  earlyStopPatience?: number;
  earlyStopScoreFn: 'metric' | 'loss';
  evalEvery: number;
  /** a resumable checkpoint (last.safetensors) every N epochs and at the end (default 1) */
  checkpointEvery?: number;
  /** GiB the CPU engine may use for training (TrainOptions.memoryBudget; default 75% of the machine) */
  memoryBudgetGiB?: number;
  seed: number;
  device: 'auto' | 'cpu' | 'cuda';
  threads?: number;
  precision: 'auto' | 'fp32' | 'bf16' | 'tf32';
  /** test metrics (default the paper's) and the validation metric that picks the best epoch */
  metrics?: string[];
  validationMetric?: string;
  /** a label for reports (e.g. the recipe) */
  name?: string;
  /** published numbers to compare with in reports */
  published?: Record<string, number>;
}

export const TRAIN_DEFAULTS: Omit<TrainConfig, 'dataset'> = {
  model: 'vae', weightDecay: 0, optimizer: 'adam', lr: 1e-3, lrScheduler: 'none', lrPatience: 5, batchSize: 500,
  nEpochs: 200, annealCap: 0.2, totalAnnealSteps: 200_000, constantAnneal: false, earlyStopScoreFn: 'metric', evalEvery: 1,
  seed: 98765, device: 'auto', precision: 'auto',
};

/** RecVAE's defaults where they differ (the authors' run.py: 50 epochs, lr 5e-4). */
export const RECVAE_DEFAULTS: Partial<TrainConfig> = { lr: 5e-4, nEpochs: 50 };

function trainOptionsOf(c: TrainConfig): TrainOptions {
  if (c.memoryBudgetGiB !== undefined && !(Number.isFinite(c.memoryBudgetGiB) && c.memoryBudgetGiB > 0))
    throw new VaecfInputError(`memoryBudgetGiB (--memory-budget): expected a positive number of GiB, got ${c.memoryBudgetGiB}`);
  const memory = c.memoryBudgetGiB !== undefined ? { memoryBudget: c.memoryBudgetGiB * 2 ** 30 } : {};
  if (c.model === 'recvae') {
    return {
      ...memory,
      epochs: c.nEpochs, batchSize: c.batchSize, learningRate: c.lr, optimizer: c.optimizer, weightDecay: c.weightDecay, seed: c.seed,
      evaluateEvery: c.evalEvery, metric: c.validationMetric ?? 'ndcg@100',
      ...(c.beta !== undefined ? { beta: { schedule: 'constant' as const, value: c.beta }, gamma: c.gamma ?? 0 } : { gamma: c.gamma ?? 0.005 }),
      encoderEpochs: c.nEncEpochs ?? 3, decoderEpochs: c.nDecEpochs ?? 1, alternating: !c.notAlternating,
      earlyStopping: c.earlyStopPatience ? { patience: c.earlyStopPatience, monitor: c.earlyStopScoreFn } : undefined,
      reduceLearningRateOnPlateau: c.lrScheduler === 'plateau' ? { patience: c.lrPatience } : undefined,
    };
  }
  return {
    ...memory,
    epochs: c.nEpochs,
    batchSize: c.batchSize,
    learningRate: c.lr,
    optimizer: c.optimizer,
    weightDecay: c.weightDecay,
    seed: c.seed,
    evaluateEvery: c.evalEvery,
    metric: c.validationMetric ?? 'ndcg@100',
    beta: c.constantAnneal
      ? { schedule: 'constant', value: c.annealCap }
      : c.totalAnnealSteps === 'epoch-relative'
        ? { schedule: 'epoch-relative', cap: c.annealCap }
        : { schedule: 'linear', cap: c.annealCap, totalSteps: c.totalAnnealSteps },
    earlyStopping: c.earlyStopPatience ? { patience: c.earlyStopPatience, monitor: c.earlyStopScoreFn } : undefined,
    reduceLearningRateOnPlateau: c.lrScheduler === 'plateau' ? { patience: c.lrPatience } : undefined,
  };
}

export interface TrainResults {
  name?: string;
  bestEpoch: number | null | undefined;
  validation: number | null | undefined;
  test: Record<string, { mean: number; stderr: number; users: number }>;
  popularity: Record<string, { mean: number; stderr: number; users: number }>;
  epochs: number | undefined;
  seconds: number;
}

export async function runTrain(config: TrainConfig, runDir: string, resume: boolean, log: (s: string) => void): Promise<TrainResults> {
  const started = Date.now();
  const configFile = path.join(runDir, 'config.json');
  if (resume) {
    if (!fs.existsSync(configFile)) throw new VaecfInputError(`${runDir}: no config.json here: not a vaecf run directory`);
    config = JSON.parse(fs.readFileSync(configFile, 'utf8'));
  } else if (fs.existsSync(path.join(runDir, 'last.safetensors'))) {
    throw new VaecfInputError(`${runDir} already holds a run: continue it with --resume ${runDir}, or choose another --run-dir`);
  }
  // Options are checked before the data is read: a bad one fails at once and leaves no run directory.
  validateTrainOptions({ ...trainOptionsOf(config), checkpointEvery: config.checkpointEvery ?? 1 }, config.model === 'recvae' ? 'recvae' : config.model === 'dae' ? 'mult-dae' : 'mult-vae');
  const data = await loadOrPrepare(config.dataset, config, log);
  // The run directory is made once the data has been read: a bad dataset leaves no half-made run behind.
  if (!resume) {
    fs.mkdirSync(runDir, { recursive: true });
    fs.writeFileSync(configFile, JSON.stringify(config, null, 2));
  }
  log(describe(data));
  // The paper's schedule counts updates: beta = min(cap, step / total). 200,000 steps suit ML-20M; on a
  // small dataset the run can end long before beta reaches its cap. Say so, and how to change it.
  if (config.model === 'vae' && !config.constantAnneal && typeof config.totalAnnealSteps === 'number') {
    const steps = Math.ceil(data.train.rows / config.batchSize) * config.nEpochs;
    const reached = steps / config.totalAnnealSteps;
    if (reached < config.annealCap)
      log(`warning: beta reaches ${reached.toPrecision(2)} by the last epoch, not its cap ${config.annealCap}: the run makes ${steps} updates and ` +
        `--total-anneal-steps ${config.totalAnnealSteps} needs ${Math.ceil(config.annealCap * config.totalAnnealSteps)} to reach the cap. ` +
        `Pass --total-anneal-steps epoch-relative (the cap at 85% of the epochs, as RecoTour) or --total-anneal-steps ${Math.ceil(steps / config.annealCap)}.`);
  }
  const last = path.join(runDir, 'last.safetensors');
  const best = path.join(runDir, 'best.safetensors');
  const metricsFile = path.join(runDir, 'metrics.jsonl');
  const arch = {
    pDims: config.pDims, qDims: config.qDims, encoderDropout: config.dropoutEnc, decoderDropout: config.dropoutDec,
    threads: config.threads, precision: config.precision, device: config.device,
  };
  const model =
    config.model === 'recvae'
      ? new RecVAE({ hidden: config.hiddenDim, latent: config.latentDim, dropout: config.dropoutEnc?.[0], threads: config.threads, precision: config.precision, device: config.device === 'cuda' ? 'cuda' : 'cpu' })
      : config.model === 'dae' ? new MultDAE(arch) : new MultVAE(arch);
  const options = trainOptionsOf(config);
  let startEpoch = 0;
  if (resume) {
    if (!fs.existsSync(last)) throw new VaecfInputError(`${runDir}: no last.safetensors checkpoint to resume from`);
    options.resumeFrom = last;
    startEpoch = ((readModelFile(last).metadata.training as { epoch: number } | null)?.epoch) ?? 0;
    // Keep the metrics of the epochs the checkpoint holds; later lines belong to an interrupted epoch.
    if (fs.existsSync(metricsFile)) {
      const lines = fs.readFileSync(metricsFile, 'utf8').split('\n').filter((l) => l.trim() && JSON.parse(l).epoch <= startEpoch);
      fs.writeFileSync(metricsFile, lines.map((l) => `${l}\n`).join(''));
    }
    log(`resuming ${runDir} after epoch ${startEpoch}`);
  }
  const engine = resolveDevice(config.device);
  log(`engine: ${engine.note}, ${(config.model === 'recvae' ? resolveRecVaePrecision : resolvePrecision)(config.precision, engine.device).note}`);
  const controller = new AbortController();
  const onSigint = (): void => {
    log('\ninterrupted: stopping after the current batch; the last checkpoint stays resumable');
    controller.abort();
  };
  process.once('SIGINT', onSigint);
  const bar = new ProgressLine();
  try {
    await model.fit({ train: data.train, validation: data.validation, itemIds: data.itemIds, protocol: data.protocol }, {
      ...options,
      signal: controller.signal,
      checkpointPath: last,
      checkpointEvery: config.checkpointEvery ?? 1,
      onBatch: (b) => bar.update(`epoch ${b.epoch}/${config.nEpochs}`, b.batch + 1, b.batches, `loss ${b.loss.toFixed(1)}`),
      onEpoch: async (r) => {
        bar.clear();
        fs.appendFileSync(metricsFile, `${JSON.stringify(r)}\n`);
        if (r.best) await model.save(best, { weightsOnly: true });
        const v = r.validation ? ` ${Object.entries(r.validation).map(([k, x]) => `${k} ${x.toFixed(4)}`).join(' ')}${r.best ? ' *' : ''}` : '';
        const weight = config.model === 'recvae' && !(config.beta !== undefined) ? `gamma ${(config.gamma ?? 0.005).toFixed(4)}` : `beta ${r.beta.toFixed(3)}`;
        log(`epoch ${String(r.epoch).padStart(3)}  loss ${r.loss.toFixed(2)}  kl ${r.kl.toFixed(2)}  ${weight}  lr ${r.learningRate.toExponential(1)}${v}  ${r.seconds.toFixed(1)} s`);
      },
    });
  } catch (err) {
    if ((err as Error).name === 'AbortError') log(`resume with: vaecf train --resume ${runDir}`);
    model.dispose();
    throw err;
  } finally {
    process.removeListener('SIGINT', onSigint);
  }
  const metrics = config.metrics ?? ['recall@20', 'recall@50', 'ndcg@100'];
  const test = await evaluateHeldOut(model, data.test, metrics);
  const pop = new Popularity();
  pop.fit({ train: data.train });
  const popular = await evaluateHeldOut(pop, data.test, metrics);
  const state = model.trainingState;
  const results: TrainResults = {
    name: config.name, bestEpoch: state?.bestEpoch, validation: state?.bestScore, test: test.summary, popularity: popular.summary, epochs: state?.epoch,
    seconds: (Date.now() - started) / 1000,
  };
  fs.writeFileSync(path.join(runDir, 'results.json'), JSON.stringify(results, null, 2));
  log(`best epoch ${state?.bestEpoch}; test ${metrics.map((m) => `${m} ${test.summary[m].mean.toFixed(4)} ± ${test.summary[m].stderr.toFixed(4)}`).join(', ')}`);
  log(`run directory: ${runDir} (config.json, metrics.jsonl, last.safetensors, best.safetensors, results.json)`);
  model.dispose();
  return results;
}
