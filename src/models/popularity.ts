// The popularity baseline: every user gets the most-clicked training items they have not seen.
import * as fs from 'node:fs';

import { type CsrMatrix, VaecfInputError, validateCsr } from '../data/csr';
import { readModelFileAsync, writeModelFile } from '../io/model-file';
import { VERSION } from '../version';
import { candidateMask, indexOfIds, recommendHistories, resolveK } from './histories';
import type { ItemId, Recommendation, RecommendOptions, Recommender, TopK, TrainingData } from './types';

export class Popularity implements Recommender {
  readonly kind = 'popularity' as const;
  private counts: Float32Array | null = null;
  private order: Int32Array | null = null;
  private ids: ItemId[] | null = null;

  fit(data: TrainingData): void {
    validateCsr(data.train, 'data.train', { allowEmptyRows: true });
    const counts = new Float32Array(data.train.cols);
    const n = data.train.indptr[data.train.rows];
    for (let k = 0; k < n; k++) counts[data.train.indices[k]] += 1;
    this.setCounts(counts, data.itemIds ? [...data.itemIds] : null);
  }

  private setCounts(counts: Float32Array, ids: ItemId[] | null): void {
    this.counts = counts;
    // Most popular first; ties by the smaller item index.
    this.order = Int32Array.from(counts.keys()).sort((a, b) => counts[b] - counts[a] || a - b);
    this.ids = ids;
  }

  private fitted(): { counts: Float32Array; order: Int32Array } {
    if (!this.counts || !this.order) throw new VaecfInputError('this popularity model is not fitted yet: call fit() first');
    return { counts: this.counts, order: this.order };
  }

  async recommendRows(matrix: CsrMatrix, options: RecommendOptions = {}): Promise<TopK> {
    const { counts, order } = this.fitted();
    const k = resolveK(options, counts.length);
    validateCsr(matrix, 'recommend input', { allowEmptyRows: true, cols: counts.length });
    const exclude = options.excludeSeen ?? true;
    const ids = this.ids ?? Array.from({ length: counts.length }, (_, i) => i);
    const allowed = candidateMask(indexOfIds(ids), counts.length, options);
    const items = new Int32Array(matrix.rows * k).fill(-1);
    const scores = new Float32Array(matrix.rows * k).fill(-Infinity);
    const mark = new Int32Array(counts.length).fill(-1);
    for (let u = 0; u < matrix.rows; u++) {
      if (exclude) for (let j = matrix.indptr[u]; j < matrix.indptr[u + 1]; j++) mark[matrix.indices[j]] = u;
      let r = 0;
      for (let p = 0; p < order.length && r < k; p++) {
        const it = order[p];
        if (mark[it] === u || (allowed && !allowed[it])) continue;
        items[u * k + r] = it;
        scores[u * k + r] = counts[it];
        r++;
      }
    }
    return { k, items, scores };
  }

  async recommend(histories: ReadonlyArray<ReadonlyArray<ItemId>>, options: RecommendOptions = {}): Promise<Recommendation[]> {
    const { counts } = this.fitted();
    const ids = this.ids ?? Array.from({ length: counts.length }, (_, i) => i);
    return recommendHistories(ids, indexOfIds(ids), histories, options, (m, o) => this.recommendRows(m, o));
  }

  async save(file: string): Promise<void> {
    const { counts } = this.fitted();
    await writeModelFile(file, { library: { name: 'vaecf', version: VERSION }, model: this.kind, itemIds: this.ids, nItems: counts.length }, [
      { name: 'counts', shape: [counts.length], data: counts },
    ]);
  }

  static async load(file: string): Promise<Popularity> {
    if (!fs.existsSync(file)) throw new VaecfInputError(`${file}: no such file`);
    const { metadata, tensors } = await readModelFileAsync(file);
    if (metadata.model !== 'popularity') throw new VaecfInputError(`${file}: holds a ${String(metadata.model)} model, not popularity`);
    const p = new Popularity();
    p.setCounts(tensors.get('counts')?.data as Float32Array, (metadata.itemIds as ItemId[] | null) ?? null);
    return p;
  }

  dispose(): void {
    this.counts = null;
    this.order = null;
  }
}
