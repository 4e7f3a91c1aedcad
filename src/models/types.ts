// The small base every model implements (fit, recommend, save), and the data it is trained on.
import type { CsrMatrix } from '../data/csr';

export type ItemId = string | number;

/** Held-out users: their fold-in clicks (model input) and targets (what should be recommended). */
export interface HeldOutData {
  foldIn: CsrMatrix;
  targets: CsrMatrix;
}

export interface TrainingData {
  /** users x items clicks of the training users */
  train: CsrMatrix;
  /** validation users, for model selection (best epoch, early stopping, learning-rate plateau) */
  validation?: HeldOutData;
  /** external id of each item column (default: the column index) */
  itemIds?: ReadonlyArray<ItemId>;
  /** how the data was prepared, stored with the model (free-form JSON) */
  protocol?: Record<string, unknown>;
}

export interface RecommendOptions {
  /** items per user (default 10) */
  k?: number;
  /** leave the user's own items out of the ranking (default true) */
  excludeSeen?: boolean;
  /** users scored per native batch (default 1000) */
  batchSize?: number;
  /** item ids never to recommend (deny list) */
  exclude?: ReadonlyArray<ItemId>;
  /** recommend only among these item ids (allow list) */
  allow?: ReadonlyArray<ItemId>;
}

export interface Recommendation {
  items: ItemId[];
  scores: number[];
  /** ids in the history that the model does not know (ignored for scoring) */
  unknownItems: ItemId[];
}

/** Top-k item indices and scores for the rows of a matrix: [rows x k], best first, -1 / -Infinity padding. */
export interface TopK {
  k: number;
  items: Int32Array;
  scores: Float32Array;
}

export interface Recommender {
  readonly kind: string;
  recommend(histories: ReadonlyArray<ReadonlyArray<ItemId>>, options?: RecommendOptions): Promise<Recommendation[]>;
  recommendRows(matrix: CsrMatrix, options?: RecommendOptions): Promise<TopK>;
  save(file: string): Promise<void>;
  dispose(): void;
}
