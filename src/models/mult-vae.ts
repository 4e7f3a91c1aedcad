// Mult-VAE and Mult-DAE (Liang et al. 2018): constructors only store options; fit() learns the state
// (the native engine with its weights, the item ids, the training state).

import { type CsrMatrix, VaecfInputError, checkCsrShape } from '../data/csr';
import { readModelFileAsync, writeModelFile, yieldToEventLoop, type ModelFile, type NamedTensor } from '../io/model-file';
import { checkThreads, loadNative, prepareDevice, resolveDevice, type NativeModel, type NativeModelConfig, type ParameterTensor } from '../native';
import type { TrainOptions, TrainingHistory, TrainingState } from '../training/options';
import { VERSION } from '../version';
import { candidateMask, indexOfIds, recommendHistories, resolveK } from './histories';
import { ScoringQueue } from './scoring-queue';
import type { HeldOutData, ItemId, Recommendation, RecommendOptions, Recommender, TopK, TrainingData } from './types';

/** Where and how the native engine runs: options every neural model takes. */
export interface EngineOptions {
  /** Native threads (default: the machine's available parallelism). */
  threads?: number;
  /** Matrix-product precision (see ArchitectureOptions.precision). */
  precision?: Precision;
  /** 'auto' (default; VAECF_DEVICE overrides): the CUDA engine where the CUDA flavour is installed and finds a GPU, else the CPU engine; 'cpu'; 'cuda': the CUDA flavour on a GPU, or an error */
  device?: 'auto' | 'cpu' | 'cuda';
}

export interface ArchitectureOptions extends EngineOptions {
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
   * on CUDA always bf16). A loaded model without this option keeps the precision it was saved with
   * where this machine runs it (so it answers as it did before saving), else 'auto'.
   */
  precision?: Precision;
  /** 'auto' (default; VAECF_DEVICE overrides): the CUDA engine where the CUDA flavour is installed and finds a GPU, else the CPU engine; 'cpu'; 'cuda': the CUDA flavour on a GPU, or an error */
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
  const { bf16Available, bf16Description, simdTarget, fp32GemmDescription } = loadNative();
  // "AVX-512+BF16 kernels, fp32 products oneDNN 2.6 (AVX-512)": the reason after ';' is in fp32GemmDescription.
  const kernels = `${simdTarget} kernels, fp32 products ${fp32GemmDescription.split(';')[0]}`;
  if (w === 'fp32') return { precision: 'fp32', note: `fp32, ${kernels}` };
  if (bf16Available) return { precision: 'bf16', note: `bf16 output layer (${bf16Description}), ${kernels}` };
  if (w === 'bf16') throw new VaecfInputError(`precision 'bf16' is not available on this machine (${bf16Description}); use 'fp32' or 'auto'`);
  // Concise: "no bf16 instructions on this CPU", not the oneDNN version (the full description is bf16Description).
  const why = /no bf16 instructions/.test(bf16Description) ? 'no bf16 instructions on this CPU' : bf16Description;
  return { precision: 'fp32', note: `fp32, ${kernels} (bf16: ${why})` };
}

export type ModelKind = 'mult-vae' | 'mult-dae' | 'recvae';

/** One layer's tensors in the flat parameter vector, in order: `${name}.weight` then `${name}.bias`. */
export interface LayerShape {
  name: string;
  weight: number[];
  bias: number[];
}

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
}

function checkDims(name: string, dims: unknown): number[] {
  if (!Array.isArray(dims) || dims.length === 0 || !dims.every((d) => Number.isInteger(d) && d > 0))
    throw new VaecfInputError(`${name}: expected a non-empty array of positive integers, got ${JSON.stringify(dims)}`);
  return dims as number[];
}

/**
 * The base of the models that run on the native engine (Mult-VAE, Mult-DAE, RecVAE): the learned state,
 * recommend, evaluate, save and load. A subclass gives its architecture and the names and shapes of its
 * tensors.
 */
export abstract class VaeFamilyModel<O extends EngineOptions = ArchitectureOptions> implements Recommender {
  abstract readonly kind: ModelKind;
  readonly options: Readonly<O>;
  /** @internal */
  protected state: LearnedState | null = null;
  private idIndex: Map<ItemId, number> | null = null;
  private readonly scoringQueue = new ScoringQueue();

  constructor(options?: O) {
    this.options = Object.freeze({ ...(options ?? ({} as O)) });
  }

  /** The native architecture this model builds for `nItems` items. */
  abstract architecture(nItems: number): NativeModelConfig;
  /**
   * The named tensors of the flat parameter vector of `config`, in order, with their offsets. The engine
   * gives them (native/core/engine.cpp, native/cpu/recvae_cpu.cpp): the one source of the layout that
   * model files, the ONNX export and the PyTorch import use.
   */
  parameterTensors(config: NativeModelConfig): ParameterTensor[] {
    return loadNative().parameterLayout(config);
  }

  /** The same grouped by layer: `${name}.weight` then `${name}.bias`. */
  layerShapes(config: NativeModelConfig): LayerShape[] {
    const tensors = this.parameterTensors(config);
    const layers: LayerShape[] = [];
    for (let i = 0; i + 1 < tensors.length; i += 2) {
      const name = tensors[i].name.replace(/\.weight$/, '');
      if (tensors[i].name !== `${name}.weight` || tensors[i + 1].name !== `${name}.bias`)
        throw new Error(`the engine's layout is not weight / bias pairs at ${tensors[i].name}`);
      layers.push({ name, weight: tensors[i].shape, bias: tensors[i + 1].shape });
    }
    return layers;
  }

  /**
   * Bytes the CPU engine allocates to train `config` with batches of `batchSize` on `trainUsers` users,
   * from its buffers (native/cpu/mult_vae_cpu.cpp, recvae_cpu.cpp): weights, gradients and Adam's two
   * moments (16 B per parameter); the bf16 copy of the item layer (bf16); the logits of a batch, at least
   * the 1,000 users of a scoring batch (4 B per item, + 2 B for the bf16 gradient); for RecVAE the prior
   * encoder's weights and its per-user cache (when it fits VAECF_RECVAE_PRIOR_CACHE_MIB, default 1 GiB);
   * with validation, the snapshot of the best weights (4 B per parameter); the hidden layers' activations.
   * Node, the libraries and the data come on top.
   */
  trainingMemory(config: NativeModelConfig, batchSize: number, trainUsers: number, validating = false): { bytes: number; parts: Record<string, number> } {
    const tensors = this.parameterTensors(config);
    const size = (t: ParameterTensor): number => t.shape.reduce((a, b) => a * b, 1);
    const params = tensors.reduce((a, t) => a + size(t), 0);
    const items = config.decoderDims[config.decoderDims.length - 1];
    const bf16 = config.precision === 'bf16';
    const itemLayer = [...tensors].reverse().find((t) => t.name.endsWith('.weight'));
    const rows = Math.max(batchSize, 1000);
    // Counted whole, an upper bound: the input layer's weight gradient goes straight into Adam in training
    // steps and is stored only when the engine evaluates right after such a step (mult_vae_cpu.h).
    const parts: Record<string, number> = {
      'weights, gradients and Adam moments': 16 * params,
      'the logits of a batch': rows * items * (bf16 ? 6 : 4),
    };
    if (bf16 && itemLayer) parts['the bf16 item layer'] = 2 * size(itemLayer);
    if (validating) parts['the best weights'] = 4 * params;
    if (!config.recvae) {
      // Each hidden layer's output, its dropout copy and mask, and the gradient buffers (about 4 floats per unit and row).
      const widths = [...config.encoderDims.slice(1), ...config.decoderDims.slice(1, -1)];
      parts['hidden activations'] = 4 * rows * widths.reduce((a, b) => a + b, 0) * 4;
    } else {
      // Per encoder pass (the model's and the prior's): pre-activation, output and normalised input of each layer.
      const { hidden, layers } = config.recvae;
      parts['hidden activations'] = 2 * rows * hidden * (3 * layers + 2) * 4;
      const encoder = tensors.filter((t) => t.name.startsWith('encoder.')).reduce((a, t) => a + size(t), 0);
      parts["the prior's weights"] = 4 * encoder;
      const env = process.env.VAECF_RECVAE_PRIOR_CACHE_MIB;
      const limit = (env ? Math.max(0, Math.floor(Number(env)) || 0) : 1024) * 2 ** 20;
      const cache = trainUsers * (2 * config.recvae.latent * 4 + 8);
      if (cache - 8 * trainUsers <= limit && limit > 0) parts["the prior's cache"] = cache;
    }
    return { bytes: Object.values(parts).reduce((a, b) => a + b, 0), parts };
  }

  /** Views of the named tensors in a flat parameter vector of `config` (getParameters()'s layout). */
  namedTensors(config: NativeModelConfig, params: Float32Array): Map<string, { shape: number[]; data: Float32Array }> {
    const out = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const t of this.parameterTensors(config))
      out.set(t.name, { shape: t.shape, data: params.subarray(t.offset, t.offset + t.shape.reduce((a, b) => a * b, 1)) });
    return out;
  }
  /** @internal the architecture stored in a model file, checked, as a native config (threads and device given). */
  protected abstract storedConfig(file: string, arch: Record<string, unknown>, nItems: number, threads: number, device: 'cpu' | 'cuda'): NativeModelConfig;
  /** @internal the device and addon a loaded model runs on. */
  protected resolveEngine(): ReturnType<typeof resolveDevice> {
    return resolveDevice(this.options.device);
  }
  /** @internal the architecture written to a model file (JSON). */
  protected abstract describeArchitecture(config: NativeModelConfig): Record<string, unknown>;

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

  /** @internal */
  learned(): LearnedState {
    if (!this.state) throw new VaecfInputError(`this ${this.kind} model is not trained yet: call fit() or load() first`);
    return this.state;
  }

  /** @internal create (or re-create) the native engine for `nItems` items with fresh weights. */
  async createState(nItems: number, seed: number, itemIds: ReadonlyArray<ItemId> | undefined): Promise<LearnedState> {
    this.dispose();
    const config = this.architecture(nItems); // the addon's first load happens here
    const { NativeModel: Ctor } = resolveDevice(config.device).addon;
    await yieldToEventLoop(); // the engine's allocation is the next block of work on this thread
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
    };
    this.idIndex = null;
    return this.state;
  }

  /** Train on `data` (see TrainOptions); resolves with the per-epoch history. */
  async fit(data: TrainingData, options: TrainOptions = {}): Promise<TrainingHistory> {
    await prepareDevice(this.options.device);
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
    checkCsrShape(matrix, 'recommend input', { cols: s.nItems }); // the engine checks the contents
    const candidates = candidateMask(this.itemIndex(), s.nItems, options);
    return { k, excludeSeen: options.excludeSeen ?? true, batchSize: options.batchSize ?? 1000, candidates };
  }

  /** Evaluation-mode scores (logits) of a few users, dense [rows x items]: for inspection and tests. */
  scoreRows(matrix: CsrMatrix): Float32Array {
    const s = this.learned();
    checkCsrShape(matrix, 'scoreRows input', { cols: s.nItems }); // the engine checks the contents
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
    const includeState = !options.weightsOnly && s.training !== null;
    // Copied out of the engine on a worker thread (the event loop stays free), then written in pieces.
    // Queued behind any scoring call in flight (a server may save the model it serves).
    const state = await this.scoringQueue.run(() => s.native.exportState({ optimizer: includeState, snapshot: includeState, auxiliary: includeState }));
    const tensors: NamedTensor[] = [...this.namedTensors(s.config, state.parameters)].map(([name, t]) => ({ name, shape: t.shape, data: t.data }));
    const layerNames = this.layerShapes(s.config).map((l) => l.name);
    if (includeState && state.m && state.v) {
      tensors.push({ name: 'optimizer.m', shape: [state.m.length], data: state.m });
      tensors.push({ name: 'optimizer.v', shape: [state.v.length], data: state.v });
      // The best validation weights, kept in the engine's memory during training.
      if (state.snapshot) tensors.push({ name: 'best.parameters', shape: [state.snapshot.length], data: state.snapshot });
      // State that is not trained but needed to continue training (RecVAE: the prior's encoder).
      if (state.auxiliary) tensors.push({ name: 'prior.parameters', shape: [state.auxiliary.length], data: state.auxiliary });
    }
    const opt = includeState ? { t: state.t ?? 0, groupSteps: state.groupSteps } : null;
    await writeModelFile(file, {
      library: { name: 'vaecf', version: VERSION, node: process.versions.node, backend: s.native.backend },
      model: this.kind,
      architecture: {
        ...this.describeArchitecture(s.config),
        layers: layerNames,
        precision: s.config.precision ?? 'fp32',
        weightLayout: 'W[in x out] row-major: y = x W + b',
      },
      hyperparameters: s.trainOptions,
      protocol: s.protocol,
      itemIds: s.itemIds,
      nItems: s.nItems,
      training: includeState
        ? { ...s.training, optimizerStep: opt?.t ?? 0, ...(opt?.groupSteps ? { optimizerGroupSteps: opt.groupSteps } : {}) }
        : s.training ? { ...s.training, weightsOnly: true } : null,
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
  async restoreFromFile(file: string, threads?: number, contents?: ModelFile): Promise<void> {
    const [{ metadata, tensors }] = await Promise.all([contents ?? readModelFileAsync(file), prepareDevice(this.options.device)]);
    if (metadata.model !== this.kind)
      throw new VaecfInputError(`${file}: holds a ${String(metadata.model)} model, not a ${this.kind}; use loadModel() for either`);
    const arch = metadata.architecture as Record<string, unknown> | undefined;
    const nItems = metadata.nItems as number;
    const bad = (what: string): VaecfInputError => new VaecfInputError(`${file}: ${what} (a damaged or hand-edited model file?)`);
    if (!arch || typeof arch !== 'object') throw bad('no architecture in the metadata');
    if (!Number.isSafeInteger(nItems) || nItems < 1) throw bad(`nItems ${JSON.stringify(nItems)} is not a positive integer`);
    const itemIds = metadata.itemIds;
    if (itemIds !== null && itemIds !== undefined && (!Array.isArray(itemIds) || itemIds.length !== nItems))
      throw bad(`itemIds holds ${Array.isArray(itemIds) ? itemIds.length : 'no list of'} ids, nItems is ${nItems}`);
    const { device, addon } = this.resolveEngine();
    const config = this.storedConfig(file, arch, nItems, checkThreads(threads ?? this.options.threads), device);
    // Every tensor checked against the architecture before the engine allocates anything: a crafted or
    // damaged file must fail here, not by allocating what its numbers ask for.
    const shapes = this.layerShapes(config);
    if (!Array.isArray(arch.layers) || arch.layers.length !== shapes.length || shapes.some((l, i) => (arch.layers as unknown[])[i] !== l.name))
      throw bad(`the layer names ${JSON.stringify(arch.layers)} do not match the architecture's ${shapes.length} layers`);
    const size = (shape: number[]): number => shape.reduce((a, b) => a * b, 1);
    for (const layer of shapes) {
      const w = tensors.get(`${layer.name}.weight`);
      const b = tensors.get(`${layer.name}.bias`);
      if (!w || !b) throw new VaecfInputError(`${file}: tensor ${layer.name}.${w ? 'bias' : 'weight'} is missing`);
      if (w.data.length !== size(layer.weight) || b.data.length !== size(layer.bias))
        throw bad(`layer ${layer.name} holds ${w.data.length} + ${b.data.length} values, the architecture needs ${layer.weight.join(' x ')} + ${layer.bias.join(' x ')}`);
    }
    const { NativeModel: Ctor } = addon;
    this.dispose();
    const native = new Ctor(config);
    const specs = this.parameterTensors(config);
    const parts: Float32Array[] = [];
    for (const spec of specs) {
      const t = tensors.get(spec.name);
      if (!t || !(t.data instanceof Float32Array)) {
        native.dispose();
        throw new VaecfInputError(`${file}: tensor ${spec.name} is missing or not float32`);
      }
      parts.push(t.data);
    }
    const total = parts.reduce((a, p) => a + p.length, 0);
    if (total !== native.numParams) {
      native.dispose();
      throw new VaecfInputError(`${file}: the tensors hold ${total} parameters, the architecture needs ${native.numParams}`);
    }
    // vaecf writes the tensors back to back in layout order: then the parameter vector is one view of
    // the file's bytes; otherwise each tensor is copied to its offset.
    const contiguous = specs.every((spec, i) => spec.offset === (i === 0 ? 0 : specs[i - 1].offset + parts[i - 1].length)) &&
      parts.every((p, i) => i === 0 || (p.buffer === parts[0].buffer && p.byteOffset === parts[i - 1].byteOffset + parts[i - 1].byteLength));
    let params: Float32Array;
    if (contiguous) {
      params = new Float32Array(parts[0].buffer, parts[0].byteOffset, total);
    } else {
      params = new Float32Array(total);
      specs.forEach((spec, i) => params.set(parts[i], spec.offset));
    }
    const training =
      (metadata.training as (TrainingState & { optimizerStep?: number; optimizerGroupSteps?: number[]; weightsOnly?: boolean }) | null) ?? null;
    const withState = training !== null && !training.weightsOnly;
    const m = tensors.get('optimizer.m');
    const v = tensors.get('optimizer.v');
    const prior = tensors.get('prior.parameters');
    const best = tensors.get('best.parameters');
    try {
      // Copied into the engine on a worker thread: the event loop stays free.
      await native.importState({
        parameters: params,
        ...(m && v && training
          ? {
              m: m.data as Float32Array, v: v.data as Float32Array, t: training.optimizerStep ?? 0,
              ...(training.optimizerGroupSteps ? { groupSteps: training.optimizerGroupSteps } : {}),
            }
          : {}),
        ...(prior && withState ? { auxiliary: prior.data as Float32Array } : {}),
        snapshot: best && withState ? (best.data as Float32Array) : null,
      });
    } catch (err) {
      native.dispose();
      throw new VaecfInputError(`${file}: the training state does not fit the model (${err instanceof Error ? err.message : String(err)})`);
    }
    this.state = {
      native,
      config,
      itemIds: (metadata.itemIds as ItemId[] | null) ?? null,
      nItems,
      training: training && !training.weightsOnly ? training : null,
      trainOptions: (metadata.hyperparameters as Record<string, unknown> | null) ?? null,
      protocol: (metadata.protocol as Record<string, unknown> | null) ?? null,
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

/** Mult-VAE and Mult-DAE: an MLP encoder and decoder given by q_dims / p_dims (Liang et al. 2018). */
export abstract class MultFamilyModel extends VaeFamilyModel<ArchitectureOptions> {
  protected abstract get variational(): boolean;
  protected abstract get defaultPDims(): number[];

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

  protected describeArchitecture(config: NativeModelConfig): Record<string, unknown> {
    return {
      encoderDims: config.encoderDims, decoderDims: config.decoderDims, variational: config.variational,
      encoderDropout: config.encoderDropout, decoderDropout: config.decoderDropout,
    };
  }

  protected storedConfig(file: string, arch: Record<string, unknown>, nItems: number, threads: number, device: 'cpu' | 'cuda'): NativeModelConfig {
    const bad = (what: string): VaecfInputError => new VaecfInputError(`${file}: ${what} (a damaged or hand-edited model file?)`);
    const dims = (x: unknown): x is number[] => Array.isArray(x) && x.length >= 2 && x.every((v) => Number.isSafeInteger(v) && v > 0);
    const probabilities = (x: unknown): x is number[] => Array.isArray(x) && x.every((p) => typeof p === 'number' && p >= 0 && p < 1);
    const { encoderDims: e, decoderDims: d } = arch;
    if (!dims(e) || !dims(d)) throw bad('encoderDims / decoderDims are not lists of positive integers');
    if (e[0] !== nItems || d[d.length - 1] !== nItems) throw bad(`the architecture's item dimension does not match nItems ${nItems}`);
    if (!probabilities(arch.encoderDropout) || !probabilities(arch.decoderDropout)) throw bad('encoderDropout / decoderDropout are not lists of probabilities');
    return {
      encoderDims: e, decoderDims: d, variational: Boolean(arch.variational),
      encoderDropout: arch.encoderDropout, decoderDropout: arch.decoderDropout,
      threads, precision: resolvePrecision(this.options.precision ?? runnablePrecision(arch.precision, device), device).precision, device,
    };
  }
}

/**
 * @internal The precision a model was saved with, where this machine and device run it; else 'auto'.
 * A model trained in fp32 and loaded on a machine with native bf16 would otherwise score with bf16
 * weights: measured on ML-1M (bench/bf16-scoring.js), 4% of users then get a different top-20.
 */
export function runnablePrecision(stored: unknown, device: 'cpu' | 'cuda', resolve = resolvePrecision): Precision {
  if (stored !== 'fp32' && stored !== 'bf16' && stored !== 'tf32') return 'auto';
  try {
    resolve(stored, device);
    return stored;
  } catch {
    return 'auto';
  }
}

/** Mult-VAE: Gaussian code with an annealed KL weight (paper default p_dims [200, 600, n_items]). */
export class MultVAE extends MultFamilyModel {
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
export class MultDAE extends MultFamilyModel {
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
