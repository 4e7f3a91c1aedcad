// Options and state of a training run.
import type { NativeBatchStats } from '../native';

/** beta = min(cap, updates / totalSteps): the paper's annealing (cap 0.2, 200,000 steps). */
export interface LinearBeta {
  schedule: 'linear';
  cap?: number;
  totalSteps?: number;
}
/** A fixed beta (RecoTour's constant_anneal; beta = 1 is the plain ELBO). */
export interface ConstantBeta {
  schedule: 'constant';
  value: number;
}
/** RecoTour: beta reaches `cap` after `fraction` (0.85) of the epochs, linearly in updates. */
export interface EpochRelativeBeta {
  schedule: 'epoch-relative';
  cap?: number;
  fraction?: number;
}
export type BetaOptions = LinearBeta | ConstantBeta | EpochRelativeBeta;

export interface EarlyStoppingOptions {
  /** epochs (counted in evaluations) without improvement before stopping */
  patience: number;
  /** what to watch: the validation metric (maximised) or the training loss (minimised) */
  monitor?: 'metric' | 'loss';
  /** smallest change counted as an improvement (default 0) */
  minDelta?: number;
}

/** Like PyTorch's ReduceLROnPlateau, always in the direction of the watched metric (maximise NDCG). */
export interface PlateauOptions {
  factor?: number;
  patience?: number;
  minLearningRate?: number;
  /** relative improvement needed (PyTorch's threshold, mode 'rel'), default 1e-4 */
  threshold?: number;
}

export interface EpochReport {
  epoch: number;
  epochs: number;
  loss: number;
  nll: number;
  kl: number;
  beta: number;
  learningRate: number;
  seconds: number;
  /** validation metrics of this epoch, when validated */
  validation?: Record<string, number>;
  /** whether this epoch gave the best validation score so far */
  best: boolean;
}

/** Progress after one update: the engine's batch numbers and the epoch they belong to. */
export interface BatchReport extends NativeBatchStats {
  epoch: number;
}

export interface TrainOptions {
  epochs?: number;
  batchSize?: number;
  learningRate?: number;
  /** 'adam' (weight decay coupled as L2 in the gradient, as torch.optim.Adam) or 'adamw' (decoupled) */
  optimizer?: 'adam' | 'adamw';
  weightDecay?: number;
  /** lam * sum of squared weights added to the loss (paper; Mult-DAE default 0.01 / batchSize, Mult-VAE 0) */
  l2?: number;
  beta?: BetaOptions;
  seed?: number;
  /** validate every N epochs (default 1) */
  evaluateEvery?: number;
  /** validation metric that selects the best weights (default ndcg@100) */
  metric?: string;
  earlyStopping?: EarlyStoppingOptions;
  reduceLearningRateOnPlateau?: PlateauOptions;
  /** restore the best validation weights at the end (default true when validating) */
  restoreBestWeights?: boolean;
  signal?: AbortSignal;
  /** after each epoch; when it returns a promise (to save the best weights, say), training waits for it */
  onEpoch?: (report: EpochReport) => unknown;
  onBatch?: (report: BatchReport) => void;
  /** write a resumable checkpoint to this file after every `checkpointEvery` epochs */
  checkpointPath?: string;
  checkpointEvery?: number;
  /** continue the run saved in this checkpoint (same data and options) */
  resumeFrom?: string;
  /**
   * Bytes the CPU engine may allocate for training (default 75% of the machine's memory, as EASE): a
   * model whose weights, Adam moments and batch buffers need more is refused before anything is
   * allocated, with what to change, instead of being killed by the system when it runs out of memory.
   */
  memoryBudget?: number;
  /**
   * RecVAE only: each user's KL weight is gamma * (the user's clicks) (default 0.005, the authors'
   * default); 0 uses `beta` instead (give a constant beta).
   */
  gamma?: number;
  /** RecVAE only: encoder epochs per epoch (default 3; the authors' n_enc_epochs) */
  encoderEpochs?: number;
  /** RecVAE only: decoder epochs per epoch (default 1; n_dec_epochs) */
  decoderEpochs?: number;
  /** RecVAE only: alternate encoder and decoder epochs (default true); false trains both at once with dropout */
  alternating?: boolean;
}

export interface TrainingState {
  /** epochs completed */
  epoch: number;
  /** updates completed (the noise counter) */
  step: number;
  /** the paper's update_count for beta annealing */
  annealCount: number;
  seed: number;
  learningRate: number;
  bestScore: number | null;
  bestEpoch: number | null;
  /** evaluations without improvement (early stopping) */
  badEvaluations: number;
  /** plateau scheduler state */
  plateauBest: number | null;
  plateauBad: number;
  stopped: 'completed' | 'early-stopping' | null;
  /** fingerprint of the training matrix, checked on resume */
  dataFingerprint: string;
  history: EpochReport[];
}

export interface TrainingHistory {
  epochs: EpochReport[];
  bestEpoch: number | null;
  bestScore: number | null;
  metric: string;
  stoppedEarly: boolean;
  seconds: number;
}
