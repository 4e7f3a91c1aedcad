// Held-out evaluation: fold-in clicks in, top-k out (fold-in items excluded), metrics from the targets.
import { VaecfInputError, validateCsr } from '../data/csr';
import { maxCutoff, rankingMetrics, type MetricReport } from '../metrics/ranking';
import type { HeldOutData, Recommender } from '../models/types';

export async function evaluateHeldOut(model: Recommender, data: HeldOutData, metrics: readonly string[]): Promise<MetricReport> {
  if (data.foldIn.rows !== data.targets.rows)
    throw new VaecfInputError(`held-out data: foldIn has ${data.foldIn.rows} users but targets has ${data.targets.rows}`);
  validateCsr(data.targets, 'held-out targets', { allowEmptyRows: true, cols: data.foldIn.cols });
  const k = maxCutoff(metrics);
  const top = await model.recommendRows(data.foldIn, { k, excludeSeen: true });
  return rankingMetrics(top.items, k, data.targets, metrics);
}
