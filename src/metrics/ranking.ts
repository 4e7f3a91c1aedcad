// Ranking metrics from top-k lists (never a users x items score matrix), per user, then mean and
// standard error (population std / sqrt(users)), as in the paper's notebook. Users without targets are
// left out.
//   ndcg@k            sum_{r<=k} hit_r / log2(r + 1)  /  sum_{r<=min(n,k)} 1 / log2(r + 1)
//   recall@k          hits in top k / min(k, n)       (Liang et al. 2018)
//   recall-lightgcn@k hits in top k / n               (NGCF / LightGCN, e.g. the Gowalla leaderboard)
import type { CsrMatrix } from '../data/csr';
import { VaecfInputError } from '../data/csr';

export type MetricName = `ndcg@${number}` | `recall@${number}` | `recall-lightgcn@${number}`;

export interface MetricSummary {
  mean: number;
  stderr: number;
  users: number;
}

export interface MetricReport {
  /** per metric, one value per evaluated user (users with at least one target), in row order */
  perUser: Record<string, Float64Array>;
  /** row index of each evaluated user */
  users: Int32Array;
  summary: Record<string, MetricSummary>;
}

interface ParsedMetric {
  name: string;
  kind: 'ndcg' | 'recall' | 'recall-lightgcn';
  k: number;
}

export function parseMetric(name: string): ParsedMetric {
  const m = /^(ndcg|recall|recall-lightgcn)@([1-9][0-9]*)$/.exec(name);
  if (!m) throw new VaecfInputError(`metric "${name}": expected ndcg@K, recall@K or recall-lightgcn@K`);
  return { name, kind: m[1] as ParsedMetric['kind'], k: Number(m[2]) };
}

/** The largest cutoff among the metrics: how many items to rank per user. */
export function maxCutoff(metrics: readonly string[]): number {
  return Math.max(...metrics.map((m) => parseMetric(m).k));
}

const discount = (() => {
  const d = new Float64Array(10_001);
  for (let r = 1; r < d.length; r++) d[r] = 1 / Math.log2(r + 1);
  return d;
})();

/**
 * @param top    [users x stride] item indices, best first, -1 for padding
 * @param stride items per user in `top` (>= every metric's k)
 * @param targets held-out items per user (same rows as `top`)
 */
export function rankingMetrics(top: Int32Array, stride: number, targets: CsrMatrix, metrics: readonly string[]): MetricReport {
  const parsed = metrics.map(parseMetric);
  for (const p of parsed)
    if (p.k > stride) throw new VaecfInputError(`metric ${p.name} needs the top ${p.k} items, only ${stride} ranked`);
  if (top.length !== targets.rows * stride)
    throw new VaecfInputError(`rankingMetrics: expected ${targets.rows} x ${stride} ranked items, got ${top.length}`);
  const users: number[] = [];
  for (let u = 0; u < targets.rows; u++) if (targets.indptr[u + 1] > targets.indptr[u]) users.push(u);
  const perUser: Record<string, Float64Array> = {};
  for (const p of parsed) perUser[p.name] = new Float64Array(users.length);
  const isTarget = new Int32Array(targets.cols).fill(-1);
  for (let j = 0; j < users.length; j++) {
    const u = users[j];
    const b = targets.indptr[u];
    const n = targets.indptr[u + 1] - b;
    for (let t = 0; t < n; t++) isTarget[targets.indices[b + t]] = u;
    for (const p of parsed) {
      let hits = 0;
      let dcg = 0;
      for (let r = 0; r < p.k; r++) {
        const item = top[u * stride + r];
        if (item >= 0 && isTarget[item] === u) {
          hits++;
          dcg += discount[r + 1];
        }
      }
      let value: number;
      if (p.kind === 'ndcg') {
        let idcg = 0;
        for (let r = 1; r <= Math.min(n, p.k); r++) idcg += discount[r];
        value = dcg / idcg;
      } else if (p.kind === 'recall') {
        value = hits / Math.min(p.k, n);
      } else {
        value = hits / n;
      }
      perUser[p.name][j] = value;
    }
  }
  const summary: Record<string, MetricSummary> = {};
  for (const p of parsed) summary[p.name] = summarize(perUser[p.name]);
  return { perUser, users: Int32Array.from(users), summary };
}

export function summarize(values: Float64Array): MetricSummary {
  const n = values.length;
  if (n === 0) return { mean: NaN, stderr: NaN, users: 0 };
  let sum = 0;
  for (const v of values) sum += v;
  const mean = sum / n;
  let sq = 0;
  for (const v of values) sq += (v - mean) * (v - mean);
  return { mean, stderr: Math.sqrt(sq / n) / Math.sqrt(n), users: n };
}
