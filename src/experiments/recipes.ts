// Recipes for the reference experiments: data, protocol and options as the paper or RecoTour ran them,
// and the published numbers to compare with. `vaecf reproduce RECIPE` runs one.
import * as fs from 'node:fs';
import * as path from 'node:path';

import { VaecfInputError } from '../data/csr';
import { TRAIN_DEFAULTS, type TrainConfig } from './run';

export interface Recipe {
  description: string;
  /** where the data is looked for (relative to the working directory), first found wins */
  data: string[];
  /** for a given split: the test file beside the training file */
  test?: string[];
  fetchHint: string;
  config: Partial<TrainConfig>;
  published: Record<string, number>;
  source: string;
}

const shared = (...p: string[]): string[] => [path.join('..', 'shared', 'data', ...p), path.join('shared', 'data', ...p)];

export const RECIPES: Record<string, Recipe> = {
  'ml-20m': {
    description: 'MovieLens-20M, the paper: ratings > 3.5, users with >= 5, 10,000 + 10,000 held-out users, Mult-VAE [I-600-200-600-I], beta annealed to 0.2 over 200,000 updates, 200 epochs',
    data: ['datasets/ml-20m/ratings.csv', 'ml-20m/ratings.csv'],
    fetchHint: 'npx vaecf fetch ml-20m --dir datasets',
    config: { model: 'vae', heldOut: 10_000, pDims: [200, 600], nEpochs: 200, annealCap: 0.2, totalAnnealSteps: 200_000, batchSize: 500, lr: 1e-3 },
    published: { 'recall@20': 0.395, 'recall@50': 0.537, 'ndcg@100': 0.426 },
    source: 'Liang et al. 2018, Table 4',
  },
  'amazon-movies-tv': {
    description: 'Amazon Movies & TV 5-core (RecoTour): every review a click, users with >= 5, 10% held-out users twice, Mult-VAE [300, 900], beta annealed to 0.7 over 85% of the epochs',
    data: ['datasets/reviews_Movies_and_TV_5.json.gz', 'reviews_Movies_and_TV_5.json.gz'],
    fetchHint: 'npx vaecf fetch amazon-movies-tv-2014 --dir datasets',
    config: { model: 'vae', threshold: 'none', heldOut: 0.1, pDims: [300, 900], nEpochs: 200, annealCap: 0.7, totalAnnealSteps: 'epoch-relative', lr: 1e-3 },
    published: { 'recall@20': 0.137, 'recall@50': 0.204, 'ndcg@100': 0.101 },
    source: 'RecoTour, PyTorch Mult-VAE, best of its 58 runs',
  },
  'ml-1m': {
    description: 'MovieLens-1M pairs (rating >= 4), the paper protocol with 600 + 600 held-out users, Mult-VAE [I-600-200-600-I], beta annealed to 0.2 over 85% of the epochs',
    data: shared('ml-1m', 'ml1m_pairs_rating_ge4.tsv'),
    fetchHint: 'the file ships in ../shared/data/ml-1m',
    config: { model: 'vae', heldOut: 600, pDims: [200, 600], nEpochs: 200, annealCap: 0.2, totalAnnealSteps: 'epoch-relative' },
    published: { 'ndcg@100': 0.4 },
    source: 'a plain reimplementation on the same protocol: NDCG@100 0.397 to 0.404 (shared/data README)',
  },
  gowalla: {
    description: 'Gowalla (the LightGCN split), validation carved from train, LightGCN metrics (Recall@20 = hits / targets, NDCG@20)',
    data: shared('gowalla', 'train.txt'),
    test: shared('gowalla', 'test.txt'),
    fetchHint: 'the files ship in ../shared/data/gowalla',
    config: { model: 'vae', pDims: [200, 600], nEpochs: 100, annealCap: 0.2, totalAnnealSteps: 'epoch-relative', metrics: ['recall-lightgcn@20', 'ndcg@20'], validationMetric: 'ndcg@20' },
    published: { 'recall-lightgcn@20': 0.1641, 'ndcg@20': 0.1335 },
    source: 'BARS leaderboard (Mult-VAE)',
  },
};

/** The training configuration of a recipe, with the data found on this machine (or a given path). */
export function recipeConfig(name: string, overrides: Partial<TrainConfig> = {}, dataPath?: string): TrainConfig & { published: Record<string, number> } {
  const r = RECIPES[name];
  if (!r) throw new VaecfInputError(`unknown recipe "${name}"; known: ${Object.keys(RECIPES).join(', ')}`);
  const data = dataPath ?? r.data.find((p) => fs.existsSync(p));
  if (!data) throw new VaecfInputError(`recipe ${name}: no data found (looked for ${r.data.join(', ')}); get it with: ${r.fetchHint}, or pass --data PATH`);
  const test = r.test ? (dataPath ? path.join(path.dirname(dataPath), path.basename(r.test[0])) : r.test.find((p) => fs.existsSync(p))) : undefined;
  return { ...TRAIN_DEFAULTS, ...r.config, ...overrides, dataset: data, test, name, published: r.published } as TrainConfig & { published: Record<string, number> };
}
