// Mult-VAE and Mult-DAE (Liang et al. 2018): constructors only store options; fit() learns the state
// (the native engine with its weights, the item ids, the training state).

import { type CsrMatrix, VaecfInputError, validateCsr } from '../data/csr';
import { readModelFile, writeModelFile, type ModelFile, type NamedTensor } from '../io/model-file';
import { checkThreads, loadNative, resolveDevice, type NativeModel, type NativeModelConfig } from '../native';
import type { TrainOptions, TrainingHistory, TrainingState } from '../training/options';
import { VERSION } from '../version';
import { candidateMask, indexOfIds, recommendHistories, resolveK } from './histories';
import { ScoringQueue } from './scoring-queue';
import type { HeldOutData, ItemId, Recommendation, RecommendOptions, Recommender, TopK, TrainingData } from './types';

export interface ArchitectureOptions {
  /**
   * Decoder sizes without the item layer: [latent, hidden...]; the paper's Mult-VAE uses [200, 600]
   * (p_dims = [200, 600, n_items]); Mult-DAE defaults to [200] (I-200-I). RecoTour's DAE: [200, 600].
   */
  pDims?: number[];
  /** Encoder sizes without the item layer: [hidden..., latent]; default: pDims reversed. */
  qDims?: number[];
  /** Dropout on the encoder input (default 0.5, i.e. keep probability 0.5). */
  dropout?: number;
  /** Full per-layer lists (RecoTour's dropout_enc / dropout_dec); override `dropout`. */
  encoderDropout?: number[];
  decoderDropout?: number[];
  /** Native threads (default: the machine's available parallelism). */
  threads?: number;
  /**
   * Matrix products: 'bf16' for the item output layer (fp32 master weights and accumulation; on the
   * CPU AMX or AVX512-BF16 through oneDNN, on CUDA tensor cores), 'fp32', 'tf32' (CUDA only: every
   * dense product on TF32 tensor cores), or 'auto' (default: bf16 where the hardware runs it natively;
   * on CUDA always bf16).
   */
  precision?: Precision;
  /** 'auto' (default; VAECF_DEVICE overrides): CUDA when its flavour is built and a GPU answers, else the CPU engine */
  device?: 'auto' | 'cpu' | 'cuda';
}

export type Precision = 'auto' | 'fp32' | 'bf16' | 'tf32';

/** What precision 'auto' gives on this machine (or on a CUDA device), and why. */
export function resolvePrecision(wanted: Precision | undefined, device: 'cpu' | 'cuda' = 'cpu'): { precision: 'fp32' | 'bf16' | 'tf32'; note: string } {
  const w = wanted ?? 'auto';
  if (w !== 'auto' && w !== 'fp32' && w !== 'bf16' && w !== 'tf32') {
    throw new VaecfInputError(`precision: expected 'auto', 'fp32', 'bf16' or 'tf32', got ${JSON.stringify(w)}`);
  }
  if (device === 'cuda') {
    if (w === 'fp32') return { precision: 'fp32', note: 'fp32' };
    if (w === 'tf32') return { precision: 'tf32', note: 'TF32 tensor cores for every dense product' };
    return { precision: 'bf16', note: 'bf16 output layer on tensor cores (fp32 master weights)' };
  }
  if (w === 'tf32') throw new VaecfInputError("precision 'tf32' is a CUDA precision (TF32 tensor cores); on the CPU use 'fp32', 'bf16' or 'auto'");
  const { bf16Available, bf16Description, simdTarget } = loadNative();
  const kernels = `${simdTarget} kernels`;
  if (w === 'fp32') return { precision: 'fp32', note: `fp32, ${kernels}` };
  if (bf16Available) return { precision: 'bf16', note: `bf16 output layer (${bf16Description}), ${kernels}` };
  if (w === 'bf16') throw new VaecfInputError(`precision 'bf16' is not available on this machine (${bf16Description}); use 'fp32' or 'auto'`);
  return { precision: 'fp32', note: `fp32, ${kernels} (bf16: ${bf16Description})` };
}

export type ModelKind = 'mult-vae' | 'mult-dae';

/** Requests of at most this many users are scored on the calling thread (see recommendRows). */
export const SYNC_MAX_USERS = 4;

/** @internal what training needs of a model */
export interface LearnedState {
  native: NativeModel;
  config: NativeModelConfig;
  itemIds: ItemId[] | null;
  nItems: number;
  training: TrainingState | null;
  trainOptions: Record<string, unknown> | null;
  protocol: Record<string, unknown> | null;
  /** best validation weights kept during training (checkpoints carry them) */
  bestParameters: Float32Array | null;
}

function checkDims(name: string, dims: unknown): number[] {
  if (!Array.isArray(dims) || dims.length === 0 || !dims.every((d) => Number.isInteger(d) && d > 0))
    throw new VaecfInputError(`${name}: expected a non-empty array of positive integers, got ${JSON.stringify(dims)}`);
  return dims as number[];
}

export abstract class VaeFamilyModel implements Recommender {
  abstract readonly kind: ModelKind;
  readonly options: Readonly<ArchitectureOptions>;
  protected state: LearnedState | null = null;
  private idIndex: Map<ItemId, number> | null = null;
  private readonly scoringQueue = new ScoringQueue();

  constructor(options: ArchitectureOptions = {}) {
    this.options = Object.freeze({ ...options });
  }

  protected abstract get variational(): boolean;
  protected abstract get defaultPDims(): number[];

  get isFitted(): boolean {
    return this.state !== null;
  }

  /** Number of items the model ranks. */
  get numItems(): number {
    return this.learned().nItems;
  }

  /** Item ids in column order. */
  get itemIds(): ItemId[] {
    const s = this.learned();
    return s.itemIds ?? Array.from({ length: s.nItems }, (_, i) => i);
  }

  /** The engine's precision: 'fp32', 'bf16' (item output layer) or 'tf32' (CUDA). */
  get precision(): 'fp32' | 'bf16' | 'tf32' {
    return this.learned().config.precision ?? 'fp32';
  }

  /** Training state after fit or load (epoch, step, annealing counter, history). */
  get trainingState(): TrainingState | null {
    return this.state?.training ?? null;
  }

  /** The native architecture this model builds for `nItems` items. */
  architecture(nItems: number): NativeModelConfig {
    const o = this.options;
    const pDims = checkDims('pDims', o.pDims ?? this.defaultPDims);
    const qDims = checkDims('qDims', o.qDims ?? [...pDims].reverse());
    if (qDims[qDims.length - 1] !== pDims[0])
      throw new VaecfInputError(`qDims must end with the latent size pDims[0] = ${pDims[0]}, got ${JSON.stringify(qDims)}`);
    const encoderDims = [nItems, ...qDims];
    const decoderDims = [...pDims, nItems];
    const dropout = o.dropout ?? 0.5;
    const encoderDropout = o.encoderDropout ?? [dropout, ...new Array(qDims.length - 1).fill(0)];
    const decoderDropout = o.decoderDropout ?? new Array(pDims.length).fill(0);
    for (const [name, list, n] of [
      ['encoderDropout', encoderDropout, encoderDims.length - 1],
      ['decoderDropout', decoderDropout, decoderDims.length - 1],
    ] as const) {
      if (!Array.isArray(list) || list.length !== n || !list.every((p) => typeof p === 'number' && p >= 0 && p < 1))
        throw new VaecfInputError(`${name}: expected ${n} probabilities in [0, 1) (one per layer), got ${JSON.stringify(list)}`);
    }
    const threads = checkThreads(o.threads);
    const { device } = resolveDevice(o.device);
    const { precision } = resolvePrecision(o.precision, device);
    return { encoderDims, decoderDims, variational: this.variational, encoderDropout, decoderDropout, threads, precision, device };
  }

  /** @internal */
  learned(): LearnedState {
    if (!this.state) throw new VaecfInputError(`this ${this.kind} model is not trained yet: call fit() or load() first`);
    return this.state;
  }

  /** @internal create (or re-create) the native engine for `nItems` items with fresh weights. */
  async createState(nItems: number, seed: number, itemIds: ReadonlyArray<ItemId> | undefined): Promise<LearnedState> {
    this.dispose();
    const config = this.architecture(nItems);
    const { NativeModel: Ctor } = resolveDevice(config.device).addon;
    const native = new Ctor(config);
    await native.initialize(seed);
    if (itemIds && itemIds.length !== nItems)
      throw new VaecfInputError(`itemIds: expected ${nItems} ids (one per item column), got ${itemIds.length}`);
    this.state = {
      native,
      config,
      itemIds: itemIds ? [...itemIds] : null,
      nItems,
      training: null,
      trainOptions: null,
      protocol: null,
      bestParameters: null,
    };
    this.idIndex = null;
    return this.state;
  }

  /** Train on `data` (see TrainOptions); resolves with the per-epoch history. */
  async fit(data: TrainingData, options: TrainOptions = {}): Promise<TrainingHistory> {
    const { runTraining } = await import('../training/train');
    return runTraining(this, data, options);
  }

  /** Top-k items for brand-new users given their histories of item ids (fold-in). */
  async recommend(histories: ReadonlyArray<ReadonlyArray<ItemId>>, options: RecommendOptions = {}): Promise<Recommendation[]> {
    this.learned();
    return recommendHistories(this.itemIds, this.itemIndex(), histories, options, (m, o) => this.recommendRows(m, o));
  }

  /** Top-k item indices for the rows of a click matrix (users x the model's items). */
  async recommendRows(matrix: CsrMatrix, options: RecommendOptions = {}): Promise<TopK> {
    const s = this.learned();
    const native = this.nativeOptions(matrix, options);
    // Measured (bench/embed-latency.js): for a few users the thread-pool round trip costs more than it
    // frees the event loop, so small requests run on the calling thread.
    const small = matrix.rows <= SYNC_MAX_USERS;
    // Concurrent calls wait for each other (the native model runs one call at a time).
    const out = small && this.scoringQueue.idle
      ? s.native.recommendSync(matrix, native)
      : await this.scoringQueue.run(() => (small ? s.native.recommendSync(matrix, native) : s.native.recommend(matrix, native)));
    return { k: native.k, ...out };
  }

  /** recommendRows on the calling thread: for one or a few users in a latency-bound server. */
  recommendRowsSync(matrix: CsrMatrix, options: RecommendOptions = {}): TopK {
    const native = this.nativeOptions(matrix, options);
    return { k: native.k, ...this.learned().native.recommendSync(matrix, native) };
  }

  private nativeOptions(matrix: CsrMatrix, options: RecommendOptions) {
    const s = this.learned();
    const k = resolveK(options, s.nItems);
    validateCsr(matrix, 'recommend input', { allowEmptyRows: true, cols: s.nItems });
    const candidates = candidateMask(this.itemIndex(), s.nItems, options);
    return { k, excludeSeen: options.excludeSeen ?? true, batchSize: options.batchSize ?? 1000, candidates };
  }

  /** Evaluation-mode scores (logits) of a few users, dense [rows x items]: for inspection and tests. */
  scoreRows(matrix: CsrMatrix): Float32Array {
    const s = this.learned();
    validateCsr(matrix, 'scoreRows input', { allowEmptyRows: true, cols: s.nItems });
    return s.native.scores(matrix, 0, matrix.rows);
  }

  /** Ranking metrics on held-out users (fold-in items excluded from the ranking). */
  async evaluate(data: HeldOutData, metrics: readonly string[] = ['recall@20', 'recall@50', 'ndcg@100']) {
    const { evaluateHeldOut } = await import('../training/evaluate');
    return evaluateHeldOut(this, data, metrics);
  }

  /** Flat copy of the weights (per layer W [in x out] then b, encoder first). */
  getParameters(): Float32Array {
    return this.learned().native.getParameters();
  }

  /**
   * Save weights and JSON metadata (architecture, hyperparameters, item ids, protocol, versions) and,
   * unless `weightsOnly`, the training state (optimizer moments, counters, best weights) so that
   * training can resume exactly. The write is atomic.
   */
  async save(file: string, options: { weightsOnly?: boolean } = {}): Promise<void> {
    const s = this.learned();
    const params = s.native.getParameters();
    const tensors: NamedTensor[] = [];
    const { encoderDims, decoderDims } = s.config;
    let offset = 0;
    const layerNames: string[] = [];
    const nEnc = encoderDims.length - 1;
    for (let k = 0; k < nEnc + decoderDims.length - 1; k++) {
      const isEnc = k < nEnc;
      const inDim = isEnc ? encoderDims[k] : decoderDims[k - nEnc];
      const outDim = isEnc ? encoderDims[k + 1] * (k === nEnc - 1 && s.config.variational ? 2 : 1) : decoderDims[k - nEnc + 1];
      const name = isEnc ? `encoder.${k}` : `decoder.${k - nEnc}`;
      layerNames.push(name);
      tensors.push({ name: `${name}.weight`, shape: [inDim, outDim], data: params.subarray(offset, offset + inDim * outDim) });
      offset += inDim * outDim;
      tensors.push({ name: `${name}.bias`, shape: [outDim], data: params.subarray(offset, offset + outDim) });
      offset += outDim;
    }
    const includeState = !options.weightsOnly && s.training !== null;
    const opt = includeState ? s.native.getOptimizerState() : null;
    if (opt) {
      tensors.push({ name: 'optimizer.m', shape: [opt.m.length], data: opt.m });
      tensors.push({ name: 'optimizer.v', shape: [opt.v.length], data: opt.v });
      if (s.bestParameters) tensors.push({ name: 'best.parameters', shape: [s.bestParameters.length], data: s.bestParameters });
    }
    writeModelFile(file, {
      library: { name: 'vaecf', version: VERSION, node: process.versions.node, backend: s.native.backend },
      model: this.kind,
      architecture: {
        encoderDims: s.config.encoderDims,
        decoderDims: s.config.decoderDims,
        variational: s.config.variational,
        encoderDropout: s.config.encoderDropout,
        decoderDropout: s.config.decoderDropout,
        layers: layerNames,
        precision: s.config.precision ?? 'fp32',
        weightLayout: 'W[in x out] row-major: y = x W + b',
      },
      hyperparameters: s.trainOptions,
      protocol: s.protocol,
      itemIds: s.itemIds,
      nItems: s.nItems,
      training: includeState ? { ...s.training, optimizerStep: opt?.t ?? 0 } : s.training ? { ...s.training, weightsOnly: true } : null,
      savedAt: new Date().toISOString(),
    }, tensors);
  }

  /** Release the native memory now (a disposed model can be fitted or loaded again). */
  dispose(): void {
    if (this.state) {
      this.state.native.dispose();
      this.state = null;
    }
  }

  /** @internal replace the learned state from a model file's contents. */
  async restoreFromFile(file: string, threads?: number, contents: ModelFile = readModelFile(file)): Promise<void> {
    const { metadata, tensors } = contents;
    if (metadata.model !== this.kind)
      throw new VaecfInputError(`${file}: holds a ${String(metadata.model)} model, not a ${this.kind}; use loadModel() for either`);
    const arch = metadata.architecture as NativeModelConfig & { layers: string[] };
    const nItems = metadata.nItems as number;
    checkStoredArchitecture(file, arch, nItems, metadata.itemIds, tensors);
    const { device, addon } = resolveDevice(this.options.device);
    const { NativeModel: Ctor } = addon;
    this.dispose();
    const config: NativeModelConfig = {
      encoderDims: arch.encoderDims,
      decoderDims: arch.decoderDims,
      variational: arch.variational,
      encoderDropout: arch.encoderDropout,
      decoderDropout: arch.decoderDropout,
      threads: checkThreads(threads ?? this.options.threads),
      precision: resolvePrecision(this.options.precision, device).precision,
      device,
    };
    const native = new Ctor(config);
    const params = new Float32Array(native.numParams);
    let offset = 0;
    for (const name of arch.layers) {
      for (const part of ['weight', 'bias']) {
        const t = tensors.get(`${name}.${part}`);
        if (!t || !(t.data instanceof Float32Array)) {
          native.dispose();
          throw new VaecfInputError(`${file}: tensor ${name}.${part} is missing`);
        }
        params.set(t.data, offset);
        offset += t.data.length;
      }
    }
    if (offset !== params.length) {
      native.dispose();
      throw new VaecfInputError(`${file}: the tensors hold ${offset} parameters, the architecture needs ${params.length}`);
    }
    native.setParameters(params);
    const training = (metadata.training as (TrainingState & { optimizerStep?: number; weightsOnly?: boolean }) | null) ?? null;
    const m = tensors.get('optimizer.m');
    const v = tensors.get('optimizer.v');
    if (m && v && training) native.setOptimizerState({ m: m.data as Float32Array, v: v.data as Float32Array, t: training.optimizerStep ?? 0 });
    const best = tensors.get('best.parameters');
    this.state = {
      native,
      config,
      itemIds: (metadata.itemIds as ItemId[] | null) ?? null,
      nItems,
      training: training && !training.weightsOnly ? training : null,
      trainOptions: (metadata.hyperparameters as Record<string, unknown> | null) ?? null,
      protocol: (metadata.protocol as Record<string, unknown> | null) ?? null,
      bestParameters: best ? (best.data as Float32Array) : null,
    };
    this.idIndex = null;
  }

  private itemIndex(): Map<ItemId, number> {
    if (!this.idIndex) {
      const ids = this.itemIds;
      this.idIndex = indexOfIds(ids);
    }
    return this.idIndex;
  }
}

/** Mult-VAE: Gaussian code with an annealed KL weight (paper default p_dims [200, 600, n_items]). */
// A model file's architecture checked against its own tensors before the engine allocates anything:
// a crafted or damaged file must fail here, not by allocating what its numbers ask for.
function checkStoredArchitecture(
  file: string, arch: (NativeModelConfig & { layers: string[] }) | undefined, nItems: unknown, itemIds: unknown, tensors: ModelFile['tensors'],
): void {
  const bad = (what: string): VaecfInputError => new VaecfInputError(`${file}: ${what} (a damaged or hand-edited model file?)`);
  const dims = (d: unknown): d is number[] => Array.isArray(d) && d.length >= 2 && d.every((x) => Number.isSafeInteger(x) && x > 0);
  if (!arch || typeof arch !== 'object') throw bad('no architecture in the metadata');
  if (!Number.isSafeInteger(nItems) || (nItems as number) < 1) throw bad(`nItems ${JSON.stringify(nItems)} is not a positive integer`);
  if (!dims(arch.encoderDims) || !dims(arch.decoderDims)) throw bad('encoderDims / decoderDims are not lists of positive integers');
  const { encoderDims: e, decoderDims: d } = arch;
  if (e[0] !== nItems || d[d.length - 1] !== nItems) throw bad(`the architecture's item dimension does not match nItems ${nItems}`);
  if (itemIds !== null && itemIds !== undefined && (!Array.isArray(itemIds) || itemIds.length !== nItems))
    throw bad(`itemIds holds ${Array.isArray(itemIds) ? itemIds.length : 'no list of'} ids, nItems is ${nItems}`);
  if (!Array.isArray(arch.layers)) throw bad('no layer names');
  // The layers' shapes: encoder pairs, then decoder pairs (the latent layer of a VAE outputs 2 x latent).
  const shapes: Array<[number, number]> = [];
  for (let i = 0; i + 1 < e.length; i++) shapes.push([e[i], i + 2 === e.length && arch.variational ? 2 * e[i + 1] : e[i + 1]]);
  for (let i = 0; i + 1 < d.length; i++) shapes.push([d[i], d[i + 1]]);
  if (arch.layers.length !== shapes.length) throw bad(`${arch.layers.length} layer names for ${shapes.length} layers`);
  arch.layers.forEach((name, k) => {
    const [fanIn, fanOut] = shapes[k];
    const w = tensors.get(`${name}.weight`);
    const b = tensors.get(`${name}.bias`);
    if (!w || !b) throw new VaecfInputError(`${file}: tensor ${name}.${w ? 'bias' : 'weight'} is missing`);
    if (w.data.length !== fanIn * fanOut || b.data.length !== fanOut)
      throw bad(`layer ${name} holds ${w.data.length} + ${b.data.length} values, the architecture needs ${fanIn} x ${fanOut} + ${fanOut}`);
  });
}

export class MultVAE extends VaeFamilyModel {
  readonly kind = 'mult-vae' as const;
  protected get variational(): boolean {
    return true;
  }
  protected get defaultPDims(): number[] {
    return [200, 600];
  }
  /** Load a saved Mult-VAE. */
  static async load(file: string, options: ArchitectureOptions = {}): Promise<MultVAE> {
    const m = new MultVAE(options);
    await m.restoreFromFile(file, options.threads);
    return m;
  }
}

/** Mult-DAE: deterministic code, tanh on every hidden layer, no KL (paper default I-200-I). */
export class MultDAE extends VaeFamilyModel {
  readonly kind = 'mult-dae' as const;
  protected get variational(): boolean {
    return false;
  }
  protected get defaultPDims(): number[] {
    return [200];
  }
  static async load(file: string, options: ArchitectureOptions = {}): Promise<MultDAE> {
    const m = new MultDAE(options);
    await m.restoreFromFile(file, options.threads);
    return m;
  }
}

/** Load a saved model of either kind. */
export async function loadModel(file: string, options: ArchitectureOptions = {}): Promise<MultVAE | MultDAE> {
  const contents = readModelFile(file);
  const m = contents.metadata.model === 'mult-dae' ? new MultDAE(options) : new MultVAE(options);
  await m.restoreFromFile(file, options.threads, contents);
  return m;
}
