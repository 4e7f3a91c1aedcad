// The paper's beta study (Liang et al. 2018, Figure 2): anneal beta linearly up to 1 over the whole run,
// record the validation metric against beta, pick the best beta, and retrain annealing up to that cap
// (with the same slope, so beta reaches the cap where the first run had that value).
import * as fs from 'node:fs';
import * as path from 'node:path';

import { describe, loadOrPrepare } from '../data/load';
import { runTrain, TRAIN_DEFAULTS, type TrainConfig, type TrainResults } from './run';

export interface BetaStudyResult {
  metric: string;
  points: Array<{ epoch: number; beta: number; score: number }>;
  bestBeta: number;
  anneal: TrainResults;
  final: TrainResults;
}

export async function runBetaStudy(config: TrainConfig, dir: string, log: (s: string) => void): Promise<BetaStudyResult> {
  fs.mkdirSync(dir, { recursive: true });
  const c: TrainConfig = { ...TRAIN_DEFAULTS, ...config, constantAnneal: false };
  const data = await loadOrPrepare(c.dataset, c, log);
  log(describe(data));
  // beta = updates / total: reaches 1 at the last update of the run.
  const total = Math.ceil(data.train.rows / c.batchSize) * c.nEpochs;
  log(`\nrun 1: beta annealed from 0 to 1 over ${c.nEpochs} epochs (${total} updates)`);
  const anneal = await runTrain({ ...c, annealCap: 1, totalAnnealSteps: total, name: `${c.name ?? 'beta study'}: anneal to 1` }, path.join(dir, 'anneal'), false, log);
  const metric = c.validationMetric ?? 'ndcg@100';
  const points = fs.readFileSync(path.join(dir, 'anneal', 'metrics.jsonl'), 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l))
    .filter((r) => r.validation?.[metric] !== undefined)
    .map((r) => ({ epoch: r.epoch as number, beta: r.beta as number, score: r.validation[metric] as number }));
  const best = points.reduce((b, p) => (p.score > b.score ? p : b), points[0]);
  const bestBeta = Math.max(best.beta, 1e-6);
  log(`\nbest validation ${metric} ${best.score.toFixed(4)} at beta ${bestBeta.toFixed(4)} (epoch ${best.epoch})`);
  log(`run 2: beta annealed to the cap ${bestBeta.toFixed(4)}, then kept`);
  const final = await runTrain({ ...c, annealCap: bestBeta, totalAnnealSteps: total, name: `${c.name ?? 'beta study'}: cap ${bestBeta.toFixed(3)}` }, path.join(dir, 'final'), false, log);
  const result: BetaStudyResult = { metric, points, bestBeta, anneal, final };
  fs.writeFileSync(path.join(dir, 'beta-study.json'), JSON.stringify(result, null, 2));
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...c, study: 'beta' }, null, 2));
  return result;
}
