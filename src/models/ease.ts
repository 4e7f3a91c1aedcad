// EASE (Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019), natively: the Gram
// matrix from the sparse rows, its Cholesky inverse through LAPACK, B = -P / diag(P) with a zero diagonal.
// lambda picked on validation users when a grid is given. An up-front memory estimate refuses sizes that
// would not fit, with the numbers.
import * as os from 'node:os';

import { type CsrMatrix, VaecfInputError, validateCsr } from '../data/csr';
import { readModelFileAsync, writeModelFile } from '../io/model-file';
import { checkThreads, loadNative, type NativeEase } from '../native';
import { VERSION } from '../version';
import { candidateMask, indexOfIds, recommendHistories, resolveK } from './histories';
import { ScoringQueue } from './scoring-queue';
import type { ItemId, Recommendation, RecommendOptions, Recommender, TopK, TrainingData } from './types';

export interface EaseOptions {
  /** L2 weight, or a grid to choose from on data.validation by `metric` (default 500) */
  lambda?: number | number[];
  /** 'auto' (float64 when it fits the memory budget, else float32), 'float64' or 'float32' */
  precision?: 'auto' | 'float64' | 'float32';
  threads?: number;
  /** bytes the solve may use (default 75% of the machine's memory) */
  memoryBudget?: number;
  metric?: string;
  onLambda?: (lambda: number, score: number | null) => void;
}

export interface EaseFitReport {
  lambda: number;
  precision: 'float64' | 'float32';
  /** validation score of every lambda tried */
  scores: Array<{ lambda: number; score: number }>;
  seconds: number;
}

const GB = 1024 ** 3;

export class EASE implements Recommender {
  readonly kind = 'ease' as const;
  readonly options: Readonly<EaseOptions>;
  private native: NativeEase | null = null;
  private items = 0;
  private ids: ItemId[] | null = null;
  private lambda: number | null = null;
  private readonly scoringQueue = new ScoringQueue();

  constructor(options: EaseOptions = {}) {
    this.options = Object.freeze({ ...options });
  }

  /** Memory the solve needs for `items` items: the item x item system plus the float32 weights. */
  static memoryNeeded(items: number, precision: 'float64' | 'float32'): number {
    return items * items * ((precision === 'float64' ? 8 : 4) + 4);
  }

  private choosePrecision(items: number): 'float64' | 'float32' {
    const budget = this.options.memoryBudget ?? os.totalmem() * 0.75;
    const wanted = this.options.precision ?? 'auto';
    const fits = (p: 'float64' | 'float32'): boolean => EASE.memoryNeeded(items, p) <= budget;
    if (wanted !== 'auto') {
      if (!fits(wanted))
        throw new VaecfInputError(
          `EASE on ${items} items in ${wanted} needs ${(EASE.memoryNeeded(items, wanted) / GB).toFixed(1)} GiB (the item x item matrix ` +
            `and the weights); the budget is ${(budget / GB).toFixed(1)} GiB. Use precision 'float32', fewer items, or a larger memoryBudget`,
        );
      return wanted;
    }
    if (fits('float64')) return 'float64';
    if (fits('float32')) return 'float32';
    throw new VaecfInputError(
      `EASE on ${items} items needs at least ${(EASE.memoryNeeded(items, 'float32') / GB).toFixed(1)} GiB (float32 item x item matrix ` +
        `and weights); the budget is ${(budget / GB).toFixed(1)} GiB. Filter rare items (minItemClicks) or use a machine with more memory`,
    );
  }

  async fit(data: TrainingData): Promise<EaseFitReport> {
    validateCsr(data.train, 'data.train', { allowEmptyRows: true });
    const started = Date.now();
    const grid = Array.isArray(this.options.lambda) ? this.options.lambda : [this.options.lambda ?? 500];
    if (grid.length === 0 || !grid.every((l) => Number.isFinite(l) && l > 0))
      throw new VaecfInputError(`lambda: expected a positive number or a non-empty list of them, got ${JSON.stringify(this.options.lambda)}`);
    if (grid.length > 1 && !data.validation) throw new VaecfInputError('lambda: a grid needs data.validation to choose from');
    const precision = this.choosePrecision(data.train.cols);
    this.dispose();
    const { NativeEase } = loadNative();
    this.native = new NativeEase(checkThreads(this.options.threads));
    this.items = data.train.cols;
    this.ids = data.itemIds ? [...data.itemIds] : null;
    const metric = this.options.metric ?? 'ndcg@100';
    const scores: Array<{ lambda: number; score: number }> = [];
    let best: { lambda: number; score: number; weights: Float32Array | null } | null = null;
    for (const lambda of grid) {
      await this.native.fit(data.train, lambda, precision === 'float64');
      this.lambda = lambda;
      if (grid.length === 1) {
        this.options.onLambda?.(lambda, null);
        break;
      }
      const { evaluateHeldOut } = await import('../training/evaluate');
      const score = (await evaluateHeldOut(this, data.validation!, [metric])).summary[metric].mean;
      scores.push({ lambda, score });
      this.options.onLambda?.(lambda, score);
      if (!best || score > best.score) best = { lambda, score, weights: lambda === grid[grid.length - 1] ? null : this.native.getWeights() };
    }
    if (best && best.lambda !== this.lambda) {
      this.native.setWeights(this.items, best.weights as Float32Array);
      this.lambda = best.lambda;
    }
    return { lambda: this.lambda as number, precision, scores, seconds: (Date.now() - started) / 1000 };
  }

  get chosenLambda(): number | null {
    return this.lambda;
  }

  private fitted(): NativeEase {
    if (!this.native || this.lambda === null) throw new VaecfInputError('this EASE model is not fitted yet: call fit() or load() first');
    return this.native;
  }

  async recommendRows(matrix: CsrMatrix, options: RecommendOptions = {}): Promise<TopK> {
    const native = this.fitted();
    const k = resolveK(options, this.items);
    validateCsr(matrix, 'recommend input', { allowEmptyRows: true, cols: this.items });
    const ids = this.ids ?? Array.from({ length: this.items }, (_, i) => i);
    const candidates = candidateMask(indexOfIds(ids), this.items, options);
    // Concurrent calls wait for each other (the native model runs one call at a time).
    const out = await this.scoringQueue.run(() => native.recommend(matrix, { k, excludeSeen: options.excludeSeen ?? true, candidates }));
    return { k, ...out };
  }

  async recommend(histories: ReadonlyArray<ReadonlyArray<ItemId>>, options: RecommendOptions = {}): Promise<Recommendation[]> {
    this.fitted();
    const ids = this.ids ?? Array.from({ length: this.items }, (_, i) => i);
    return recommendHistories(ids, indexOfIds(ids), histories, options, (m, o) => this.recommendRows(m, o));
  }

  async save(file: string): Promise<void> {
    const native = this.fitted();
    const w = native.getWeights();
    await writeModelFile(file, { library: { name: 'vaecf', version: VERSION }, model: this.kind, lambda: this.lambda, itemIds: this.ids, nItems: this.items }, [
      { name: 'B', shape: [this.items, this.items], data: w },
    ]);
  }

  static async load(file: string, options: EaseOptions = {}): Promise<EASE> {
    const { metadata, tensors } = await readModelFileAsync(file);
    if (metadata.model !== 'ease') throw new VaecfInputError(`${file}: holds a ${String(metadata.model)} model, not EASE`);
    const e = new EASE(options);
    const { NativeEase } = loadNative();
    e.native = new NativeEase(checkThreads(options.threads));
    e.items = metadata.nItems as number;
    e.ids = (metadata.itemIds as ItemId[] | null) ?? null;
    e.lambda = metadata.lambda as number;
    e.native.setWeights(e.items, tensors.get('B')?.data as Float32Array);
    return e;
  }

  dispose(): void {
    this.native?.dispose();
    this.native = null;
    this.lambda = null;
  }
}
