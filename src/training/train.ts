// The training loop: epochs of native updates, beta annealing, validation with the best weights kept,
// early stopping, reduce-on-plateau, checkpoints after each epoch and exact resume.
import { createHash } from 'node:crypto';
import * as os from 'node:os';
import { performance } from 'node:perf_hooks';

import { type CsrMatrix, VaecfInputError, checkCsrShape, validateCsr } from '../data/csr';
import { yieldToEventLoop } from '../io/model-file';
import { parseMetric } from '../metrics/ranking';
import { MultDAE, MultVAE, type ArchitectureOptions, type VaeFamilyModel } from '../models/mult-vae';
import { RecVAE, type RecVaeOptions } from '../models/recvae';
import type { NativeEpochOptions, NativeEpochStats, NativeModel } from '../native';
import type { TrainingData } from '../models/types';
import { evaluateHeldOut } from './evaluate';
import type { TrainOptions, TrainingHistory, TrainingState, EpochReport } from './options';

type Resolved = Required<
  Pick<TrainOptions, 'epochs' | 'batchSize' | 'learningRate' | 'optimizer' | 'weightDecay' | 'l2' | 'seed' | 'evaluateEvery' | 'metric' | 'checkpointEvery'>
> & {
  beta: { kind: 'linear' | 'constant'; cap: number; totalSteps: number; value: number; described: TrainOptions['beta'] };
  earlyStopping: TrainOptions['earlyStopping'] | null;
  plateau: Required<NonNullable<TrainOptions['reduceLearningRateOnPlateau']>> | null;
  /** RecVAE's alternating schedule (null for Mult-VAE / Mult-DAE) */
  recvae: { gamma: number; encoderEpochs: number; decoderEpochs: number; alternating: boolean } | null;
};

const TRAJECTORY_KEYS = ['batchSize', 'learningRate', 'optimizer', 'weightDecay', 'l2', 'beta', 'seed', 'evaluateEvery', 'metric', 'earlyStopping', 'plateau', 'recvae'] as const;

function expect(cond: boolean, field: string, expected: string, got: unknown): void {
  if (!cond) throw new VaecfInputError(`${field}: expected ${expected}, got ${JSON.stringify(got)}`);
}

function resolveOptions(o: TrainOptions, model: Pick<VaeFamilyModel<object>, 'kind'>, trainRows: number): Resolved {
  const known = new Set([
    'epochs', 'batchSize', 'learningRate', 'optimizer', 'weightDecay', 'l2', 'beta', 'seed', 'evaluateEvery', 'metric',
    'earlyStopping', 'reduceLearningRateOnPlateau', 'restoreBestWeights', 'signal', 'onEpoch', 'onBatch',
    'checkpointPath', 'checkpointEvery', 'resumeFrom', 'model', 'architecture', 'gamma', 'encoderEpochs', 'decoderEpochs', 'alternating',
    'memoryBudget',
  ]);
  for (const key of Object.keys(o)) if (!known.has(key)) throw new VaecfInputError(`unknown training option "${key}"`);
  const isRecVae = model.kind === 'recvae';
  if (!isRecVae)
    for (const key of ['gamma', 'encoderEpochs', 'decoderEpochs', 'alternating'] as const)
      if (o[key] !== undefined) throw new VaecfInputError(`${key}: a RecVAE option (model 'recvae'); this model is a ${model.kind}`);
  // RecVAE's defaults are the authors' (50 epochs, Adam lr 5e-4); Mult-VAE's the paper's (200 epochs, lr 1e-3).
  const epochs = o.epochs ?? (isRecVae ? 50 : 200);
  const batchSize = o.batchSize ?? 500;
  const learningRate = o.learningRate ?? (isRecVae ? 5e-4 : 1e-3);
  const optimizer = o.optimizer ?? 'adam';
  const weightDecay = o.weightDecay ?? 0;
  const l2 = o.l2 ?? (model.kind === 'mult-dae' ? 0.01 / batchSize : 0);
  const seed = o.seed ?? 98765;
  const evaluateEvery = o.evaluateEvery ?? 1;
  const metric = o.metric ?? 'ndcg@100';
  const checkpointEvery = o.checkpointEvery ?? 1;
  expect(Number.isInteger(epochs) && epochs >= 1, 'epochs', 'a positive integer', epochs);
  expect(Number.isInteger(batchSize) && batchSize >= 1, 'batchSize', 'a positive integer', batchSize);
  expect(Number.isFinite(learningRate) && learningRate > 0, 'learningRate', 'a positive number', learningRate);
  expect(optimizer === 'adam' || optimizer === 'adamw', 'optimizer', "'adam' or 'adamw'", optimizer);
  expect(Number.isFinite(weightDecay) && weightDecay >= 0, 'weightDecay', 'a number >= 0', weightDecay);
  expect(Number.isFinite(l2) && l2 >= 0, 'l2', 'a number >= 0', l2);
  expect(Number.isInteger(seed) && seed >= 0 && seed <= Number.MAX_SAFE_INTEGER, 'seed', 'a non-negative integer', seed);
  expect(Number.isInteger(evaluateEvery) && evaluateEvery >= 1, 'evaluateEvery', 'a positive integer', evaluateEvery);
  expect(Number.isInteger(checkpointEvery) && checkpointEvery >= 1, 'checkpointEvery', 'a positive integer', checkpointEvery);
  parseMetric(metric);

  const b = o.beta ?? { schedule: 'linear' };
  let beta: Resolved['beta'];
  const stepsPerEpoch = Math.ceil(trainRows / batchSize);
  if (b.schedule === 'linear') {
    const cap = b.cap ?? 0.2;
    const totalSteps = b.totalSteps ?? 200_000;
    expect(Number.isFinite(cap) && cap >= 0, 'beta.cap', 'a number >= 0', cap);
    expect(Number.isFinite(totalSteps) && totalSteps > 0, 'beta.totalSteps', 'a positive number', totalSteps);
    beta = { kind: 'linear', cap, totalSteps, value: 0, described: { schedule: 'linear', cap, totalSteps } };
  } else if (b.schedule === 'constant') {
    expect(Number.isFinite(b.value) && b.value >= 0, 'beta.value', 'a number >= 0', b.value);
    beta = { kind: 'constant', cap: b.value, totalSteps: 1, value: b.value, described: { schedule: 'constant', value: b.value } };
  } else if (b.schedule === 'epoch-relative') {
    const cap = b.cap ?? 0.2;
    const fraction = b.fraction ?? 0.85;
    expect(Number.isFinite(cap) && cap > 0, 'beta.cap', 'a positive number', cap);
    expect(fraction > 0 && fraction <= 1, 'beta.fraction', 'a number in (0, 1]', fraction);
    // RecoTour: total_anneal_steps = steps_per_epoch * (epochs - int(0.15 * epochs)) / cap
    const annealEpochs = epochs - Math.floor((1 - fraction) * epochs);
    const totalSteps = (stepsPerEpoch * annealEpochs) / cap;
    beta = { kind: 'linear', cap, totalSteps, value: 0, described: { schedule: 'epoch-relative', cap, fraction } };
  } else {
    throw new VaecfInputError(`beta.schedule: expected 'linear', 'constant' or 'epoch-relative', got ${JSON.stringify((b as { schedule: unknown }).schedule)}`);
  }
  let earlyStopping: Resolved['earlyStopping'] = null;
  if (o.earlyStopping) {
    const e = o.earlyStopping;
    expect(Number.isInteger(e.patience) && e.patience >= 1, 'earlyStopping.patience', 'a positive integer', e.patience);
    expect(e.monitor === undefined || e.monitor === 'metric' || e.monitor === 'loss', 'earlyStopping.monitor', "'metric' or 'loss'", e.monitor);
    earlyStopping = { patience: e.patience, monitor: e.monitor ?? 'metric', minDelta: e.minDelta ?? 0 };
  }
  let plateau: Resolved['plateau'] = null;
  if (o.reduceLearningRateOnPlateau) {
    const p = o.reduceLearningRateOnPlateau;
    plateau = { factor: p.factor ?? 0.5, patience: p.patience ?? 5, minLearningRate: p.minLearningRate ?? 1e-6, threshold: p.threshold ?? 1e-4 };
    expect(plateau.factor > 0 && plateau.factor < 1, 'reduceLearningRateOnPlateau.factor', 'a number in (0, 1)', plateau.factor);
    expect(Number.isInteger(plateau.patience) && plateau.patience >= 0, 'reduceLearningRateOnPlateau.patience', 'an integer >= 0', plateau.patience);
  }
  let recvae: Resolved['recvae'] = null;
  if (isRecVae) {
    // gamma * |x_u| unless a beta is given instead (the authors: gamma wins when both are set; here that is an error).
    if (o.gamma !== undefined && o.beta !== undefined && o.gamma > 0)
      throw new VaecfInputError('gamma and beta: RecVAE weighs the KL term by gamma * |x_u| or by a fixed beta; give one of them');
    const gamma = o.gamma ?? (o.beta !== undefined ? 0 : 0.005);
    const encoderEpochs = o.encoderEpochs ?? 3;
    const decoderEpochs = o.decoderEpochs ?? 1;
    const alternating = o.alternating ?? true;
    expect(Number.isFinite(gamma) && gamma >= 0, 'gamma', 'a number >= 0', gamma);
    expect(Number.isInteger(encoderEpochs) && encoderEpochs >= 1, 'encoderEpochs', 'a positive integer', encoderEpochs);
    expect(Number.isInteger(decoderEpochs) && decoderEpochs >= 1, 'decoderEpochs', 'a positive integer', decoderEpochs);
    expect(typeof alternating === 'boolean', 'alternating', 'true or false', alternating);
    recvae = { gamma, encoderEpochs, decoderEpochs, alternating };
  }
  return { epochs, batchSize, learningRate, optimizer, weightDecay, l2, seed, evaluateEvery, metric, checkpointEvery, beta, earlyStopping, plateau, recvae };
}

/**
 * Checks training options for a model kind before any data is read (the same checks fit() makes), so
 * that a command line with a bad option fails at once, leaving nothing behind.
 */
export function validateTrainOptions(options: TrainOptions, kind: VaeFamilyModel<object>['kind']): void {
  resolveOptions(options, { kind }, 1);
}

const GIB = 2 ** 30;

/**
 * Refuses a CPU training run whose engine buffers (VaeFamilyModel.trainingMemory) exceed the budget
 * (default 75% of the machine's memory): the system would otherwise kill the process part-way through,
 * since the engine's large buffers are reserved at once and filled as they are first used.
 */
function checkTrainingMemory(model: VaeFamilyModel<object>, config: ReturnType<VaeFamilyModel<object>['architecture']>, batchSize: number,
  trainUsers: number, validating: boolean, memoryBudget: number | undefined): void {
  if (memoryBudget !== undefined && !(Number.isFinite(memoryBudget) && memoryBudget > 0))
    throw new VaecfInputError(`memoryBudget: expected a positive number of bytes, got ${memoryBudget}`);
  if (config.device === 'cuda') return; // the CUDA engine's buffers are on the GPU, whose allocator reports its own errors
  const budget = memoryBudget ?? os.totalmem() * 0.75;
  const need = model.trainingMemory(config, batchSize, trainUsers, validating);
  if (need.bytes <= budget) return;
  const items = config.decoderDims[config.decoderDims.length - 1];
  const size = (b: number): string => (b >= GIB ? `${(b / GIB).toFixed(1)} GiB` : `${Math.ceil(b / 2 ** 20)} MiB`);
  const parts = Object.entries(need.parts).map(([what, b]) => `${what} ${size(b)}`).join(', ');
  throw new VaecfInputError(
    `training this ${model.kind} on ${items} items (batch ${batchSize}, ${config.precision ?? 'fp32'}) needs about ${size(need.bytes)} ` +
      `(${parts}), more than the budget of ${size(budget)}` + (memoryBudget === undefined ? ` (75% of this machine's ${size(os.totalmem())})` : '') +
      `. Filter rare items (minItemClicks, --min-item-clicks), use smaller layers (pDims / hidden), a smaller batch, or pass memoryBudget (bytes; --memory-budget GIB on the command line) if the machine has the memory free`,
  );
}

/**
 * A short fingerprint of the training matrix, so that a resume on other data is refused: SHA-256 of the
 * shape, indptr, indices and values, hashed in pieces with the event loop running between them (ML-20M's
 * 80 MB would otherwise hold it for ~0.1 s).
 */
export async function fingerprint(m: CsrMatrix): Promise<string> {
  const h = createHash('sha256');
  h.update(`${m.rows}x${m.cols}:${m.indptr[m.rows]}|`);
  const PIECE = 8 << 20;
  for (const a of [m.indptr, m.indices, m.values]) {
    if (!a) continue;
    const bytes = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
    for (let at = 0; at < bytes.length; at += PIECE) {
      h.update(bytes.subarray(at, Math.min(bytes.length, at + PIECE)));
      if (bytes.length > PIECE) await yieldToEventLoop();
    }
  }
  return h.digest('hex').slice(0, 32);
}

/** Generation ids of training matrices (one per fit(); NativeEpochOptions.dataGeneration). */
let lastGeneration = 0;

function abortError(): Error {
  const e = new Error('training was aborted') as Error & { code: string };
  e.name = 'AbortError';
  e.code = 'ABORT_ERR';
  return e;
}

function serializable(r: Resolved): Record<string, unknown> {
  return {
    epochs: r.epochs, batchSize: r.batchSize, learningRate: r.learningRate, optimizer: r.optimizer, weightDecay: r.weightDecay,
    l2: r.l2, beta: r.beta.described, seed: r.seed, evaluateEvery: r.evaluateEvery, metric: r.metric,
    earlyStopping: r.earlyStopping, plateau: r.plateau, ...(r.recvae ? { recvae: r.recvae } : {}),
  };
}

/**
 * The native epochs of one training epoch. Mult-VAE / Mult-DAE: one epoch on every parameter. RecVAE
 * (the authors' run.py): encoderEpochs epochs of the encoder (input dropout), the prior's encoder
 * refreshed, then decoderEpochs epochs of the decoder (no dropout); or one joint epoch when not
 * alternating. The reported loss is that of the encoder (or joint) epochs, whose loss includes the KL
 * term. Sub-epoch j of epoch e shuffles with epoch id e * (encoderEpochs + decoderEpochs) + j.
 */
async function runEpoch(
  native: NativeModel, train: CsrMatrix, base: NativeEpochOptions, o: Resolved, epoch: number,
  onBatch: ((b: Parameters<NonNullable<Parameters<NativeModel['trainEpoch']>[2]>>[0]) => void) | undefined,
): Promise<NativeEpochStats> {
  const r = o.recvae;
  if (!r) return native.trainEpoch(train, base, onBatch);
  const plan: Array<'encoder' | 'decoder' | 'joint' | 'prior'> = r.alternating
    ? [...new Array<'encoder'>(r.encoderEpochs).fill('encoder'), 'prior', ...new Array<'decoder'>(r.decoderEpochs).fill('decoder')]
    : ['joint'];
  const perEpoch = r.alternating ? r.encoderEpochs + r.decoderEpochs : 1;
  let step = base.step;
  let annealCount = base.annealCount;
  let sub = 0;
  const reported: NativeEpochStats[] = [];
  let last: NativeEpochStats | null = null;
  for (const phase of plan) {
    if (phase === 'prior') {
      native.updatePrior();
      continue;
    }
    const stats = await native.trainEpoch(
      train,
      { ...base, epoch: epoch * perEpoch + sub, step, annealCount, phase, gamma: r.gamma },
      onBatch,
    );
    sub++;
    step = stats.step;
    annealCount = stats.annealCount;
    if (phase !== 'decoder') reported.push(stats);
    last = stats;
  }
  const mean = (key: 'loss' | 'nll' | 'kl'): number => reported.reduce((a, s) => a + s[key], 0) / reported.length;
  return { loss: mean('loss'), nll: mean('nll'), kl: mean('kl'), beta: reported[reported.length - 1].beta, batches: (last as NativeEpochStats).batches * perEpoch, step, annealCount };
}

export async function runTraining(model: VaeFamilyModel<object>, data: TrainingData, options: TrainOptions): Promise<TrainingHistory> {
  if (!data || typeof data !== 'object') throw new VaecfInputError('data: expected {train, validation?, itemIds?}');
  // The training matrix's shape is checked here and its contents once by the engine, off the event loop,
  // at the first epoch (the same messages as validateCsr); the matrix must not change during fit().
  checkCsrShape(data.train, 'data.train');
  const generation = ++lastGeneration;
  if (data.validation) {
    validateCsr(data.validation.foldIn, 'data.validation.foldIn', { allowEmptyRows: true, cols: data.train.cols });
    validateCsr(data.validation.targets, 'data.validation.targets', { allowEmptyRows: true, cols: data.train.cols });
    if (data.validation.foldIn.rows !== data.validation.targets.rows)
      throw new VaecfInputError('data.validation: foldIn and targets must have the same number of users');
  }
  const o = resolveOptions(options, model, data.train.rows);
  const print = await fingerprint(data.train);
  let state: TrainingState;
  if (options.resumeFrom) {
    await model.restoreFromFile(options.resumeFrom);
    const s = model.learned();
    if (!s.training) throw new VaecfInputError(`${options.resumeFrom}: holds no training state (saved with weightsOnly?)`);
    if (s.training.dataFingerprint !== print)
      throw new VaecfInputError(`${options.resumeFrom}: the checkpoint was trained on other data (fingerprint differs); resume with the same training matrix`);
    const saved = s.trainOptions ?? {};
    const now = serializable(o);
    const differing = TRAJECTORY_KEYS.filter((k) => JSON.stringify(saved[k]) !== JSON.stringify(now[k]));
    if (differing.length)
      throw new VaecfInputError(`${options.resumeFrom}: options differ from the checkpoint's (${differing.join(', ')}); resume with the same options`);
    if (s.nItems !== data.train.cols) throw new VaecfInputError(`${options.resumeFrom}: the checkpoint has ${s.nItems} items, the data ${data.train.cols}`);
    checkTrainingMemory(model, s.config, o.batchSize, data.train.rows, !!data.validation, options.memoryBudget);
    state = s.training;
    // A finished run can be extended with more epochs.
    if (state.stopped === 'completed' && o.epochs > state.epoch) state.stopped = null;
  } else {
    checkTrainingMemory(model, model.architecture(data.train.cols), o.batchSize, data.train.rows, !!data.validation, options.memoryBudget);
    await model.createState(data.train.cols, o.seed, data.itemIds);
    state = {
      epoch: 0, step: 0, annealCount: 0, seed: o.seed, learningRate: o.learningRate, bestScore: null, bestEpoch: null,
      badEvaluations: 0, plateauBest: null, plateauBad: 0, stopped: null, dataFingerprint: print, history: [],
    };
  }
  const s = model.learned();
  s.training = state;
  s.trainOptions = serializable(o);
  if (data.protocol) s.protocol = data.protocol;
  if (data.itemIds && !options.resumeFrom) s.itemIds = [...data.itemIds];
  const native = s.native;
  const started = performance.now();
  const lossBest = { value: Infinity };
  for (const h of state.history) lossBest.value = Math.min(lossBest.value, h.loss);
  const validation = data.validation;

  while (state.epoch < o.epochs && state.stopped === null) {
    if (options.signal?.aborted) throw abortError();
    const epoch = state.epoch;
    const t0 = performance.now();
    const onAbort = (): void => native.cancel();
    options.signal?.addEventListener('abort', onAbort);
    let stats;
    try {
      stats = await runEpoch(
        native,
        data.train,
        {
          batchSize: o.batchSize, seed: o.seed, epoch, l2: o.l2, betaKind: o.beta.kind, betaCap: o.beta.cap,
          betaTotalSteps: o.beta.totalSteps, betaValue: o.beta.value, learningRate: state.learningRate,
          weightDecay: o.weightDecay, decoupledWeightDecay: o.optimizer === 'adamw', step: state.step, annealCount: state.annealCount,
          dataGeneration: generation, dataName: 'data.train',
        },
        o,
        epoch,
        // The engine settles an epoch's promise after its last batch event has run.
        options.onBatch ? (b) => options.onBatch?.({ epoch: epoch + 1, ...b }) : undefined,
      );
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
    }
    state.step = stats.step;
    state.annealCount = stats.annealCount;
    state.epoch = epoch + 1;
    const report: EpochReport = {
      epoch: epoch + 1, epochs: o.epochs, loss: stats.loss, nll: stats.nll, kl: stats.kl, beta: stats.beta,
      learningRate: state.learningRate, seconds: 0, best: false,
    };
    let stop = false;
    if (validation && (state.epoch % o.evaluateEvery === 0 || state.epoch === o.epochs)) {
      const result = await evaluateHeldOut(model, validation, [o.metric]);
      const score = result.summary[o.metric].mean;
      report.validation = { [o.metric]: score };
      const minDelta = o.earlyStopping?.monitor === 'metric' ? (o.earlyStopping.minDelta ?? 0) : 0;
      if (state.bestScore === null || score > state.bestScore + minDelta) {
        state.bestScore = score;
        state.bestEpoch = state.epoch;
        state.badEvaluations = 0;
        report.best = true;
        await native.snapshotParameters(); // kept in the engine's memory, not copied through JavaScript
      } else {
        state.badEvaluations += 1;
      }
      if (o.plateau) {
        // ReduceLROnPlateau(mode='max', threshold_mode='rel'): the metric is maximised.
        if (state.plateauBest === null || score > state.plateauBest * (1 + o.plateau.threshold)) {
          state.plateauBest = score;
          state.plateauBad = 0;
        } else if (++state.plateauBad > o.plateau.patience) {
          state.learningRate = Math.max(o.plateau.minLearningRate, state.learningRate * o.plateau.factor);
          state.plateauBad = 0;
        }
      }
      if (o.earlyStopping?.monitor === 'metric' && state.badEvaluations >= o.earlyStopping.patience) stop = true;
    }
    if (o.earlyStopping?.monitor === 'loss') {
      if (stats.loss < lossBest.value - (o.earlyStopping.minDelta ?? 0)) {
        lossBest.value = stats.loss;
        state.badEvaluations = 0;
      } else if (++state.badEvaluations >= o.earlyStopping.patience) stop = true;
    }
    if (stop) state.stopped = 'early-stopping';
    else if (state.epoch === o.epochs) state.stopped = 'completed';
    report.seconds = (performance.now() - t0) / 1000;
    state.history.push(report);
    await options.onEpoch?.(report);
    if (options.checkpointPath && (state.epoch % o.checkpointEvery === 0 || state.stopped !== null)) {
      await model.save(options.checkpointPath);
    }
  }
  if (state.stopped === null) state.stopped = 'completed';
  if (options.restoreBestWeights ?? true) await native.restoreSnapshot();
  return {
    epochs: state.history,
    bestEpoch: state.bestEpoch,
    bestScore: state.bestScore,
    metric: o.metric,
    stoppedEarly: state.stopped === 'early-stopping',
    seconds: (performance.now() - started) / 1000,
  };
}

export interface TrainFunctionOptions extends TrainOptions {
  /** which model (default Mult-VAE) */
  model?: 'mult-vae' | 'mult-dae' | 'vae' | 'dae' | 'recvae';
  /** the model's constructor options (ArchitectureOptions for Mult-VAE / Mult-DAE, RecVaeOptions for RecVAE) */
  architecture?: ArchitectureOptions | RecVaeOptions;
}

/** Train a Mult-VAE (default), Mult-DAE or RecVAE on `data` and return the trained model. */
export async function train(data: TrainingData, options: TrainFunctionOptions = {}): Promise<MultVAE | MultDAE | RecVAE> {
  const kind = options.model ?? 'mult-vae';
  if (!['mult-vae', 'mult-dae', 'vae', 'dae', 'recvae'].includes(kind))
    throw new VaecfInputError(`model: expected 'mult-vae', 'mult-dae' or 'recvae', got ${JSON.stringify(kind)}`);
  const model =
    kind === 'recvae' ? new RecVAE(options.architecture as RecVaeOptions)
    : kind === 'mult-dae' || kind === 'dae' ? new MultDAE(options.architecture as ArchitectureOptions)
    : new MultVAE(options.architecture as ArchitectureOptions);
  const { model: _m, architecture: _a, ...trainOptions } = options;
  try {
    await model.fit(data, trainOptions);
  } catch (err) {
    model.dispose();
    throw err;
  }
  return model;
}
