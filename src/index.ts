// The public API of vaecf.
export { type CsrMatrix, csrFromRows, selectRows, rowItems, nnz, validateCsr, VaecfInputError } from './data/csr';
export { generateClicks, ML20M_SHAPE, type GeneratorOptions } from './data/generator';
export { strongGeneralizationSplit, type StrongSplitOptions } from './data/split';
export { saveDataset, loadDataset, isDatasetDir, type DatasetManifest } from './data/dataset-file';
export { preparePaperProtocol, prepareGivenSplit, type GivenSplitOptions, mergeDuplicates, interactionsFromCsr, type PreparedDataset, type ProtocolOptions, type HeldOutUsers } from './data/prepare';
export { readInteractions, detectFormat, ParseError, type ReaderFormat, type ReadOptions, type DelimitedColumns } from './data/readers';
export type { Interactions } from './data/interactions';
export { interactionsFromArrays, clicksFromArrays, type InteractionArrays } from './data/from-arrays';
export { fetchDataset, DATASETS, type DatasetSource, type FetchOptions, type FetchResult } from './data/fetch';
export { NumpyRandomState } from './data/numpy-random';
export { rankingMetrics, summarize, parseMetric, type MetricReport, type MetricSummary, type MetricName } from './metrics/ranking';
export {
  MultVAE, MultDAE, MultFamilyModel, VaeFamilyModel, resolvePrecision, type ArchitectureOptions, type EngineOptions, type LayerShape, type ModelKind, type Precision,
} from './models/mult-vae';
export { RecVAE, resolveRecVaePrecision, type RecVaeOptions } from './models/recvae';
export { loadModel } from './models/load-model';
export { Popularity } from './models/popularity';
export { EASE, type EaseOptions, type EaseFitReport } from './models/ease';
export type { ItemId, Recommender, Recommendation, RecommendOptions, TopK, TrainingData, HeldOutData } from './models/types';
export { train, type TrainFunctionOptions } from './training/train';
export { evaluateHeldOut } from './training/evaluate';
export type {
  TrainOptions, TrainingHistory, TrainingState, EpochReport, BatchReport, BetaOptions, EarlyStoppingOptions, PlateauOptions,
} from './training/options';
export { ModelFileError, readModelFile, readModelFileAsync, readSafetensors, readSafetensorsAsync } from './io/model-file';
export { importTorchStateDict, type TorchImportOptions } from './io/torch-import';
export { exportOnnx, type OnnxExportOptions } from './io/onnx-export';
export { createRecommendHandler, createRecommendServer, listen, shutdown, type RecommendHandler, type ServeOptions, type ServableModel } from './serve/server';
export { loadOrPrepare, describe, type DataOptions } from './data/load';
export { runTrain, TRAIN_DEFAULTS, RECVAE_DEFAULTS, type TrainConfig, type TrainResults } from './experiments/run';
export { ProgressLine } from './util/progress';
export { writeReport, type ReportResult } from './experiments/report';
export { runBetaStudy, type BetaStudyResult } from './experiments/beta-study';
export { runSweep, expandSweep, type SweepSpec } from './experiments/sweep';
export { RECIPES, recipeConfig, type Recipe } from './experiments/recipes';
export { resolveDevice, prepareDevice, probeCuda, probeCudaAsync, type CudaProbe } from './native';
export { VERSION } from './version';
