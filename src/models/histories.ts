// Recommendations for item-id histories, shared by every model: ids to column indices (unknown ids
// reported, repeats dropped), one CSR row per user, the model's top-k, column indices back to ids.
import { VaecfInputError, type CsrMatrix } from '../data/csr';
import type { ItemId, Recommendation, RecommendOptions, TopK } from './types';

/** An item id as given, or the same id as a number / as text (JSON clients often send "296" for 296). */
export function lookupId(index: Map<ItemId, number>, id: ItemId): number | undefined {
  const direct = index.get(id);
  if (direct !== undefined) return direct;
  if (typeof id === 'string' && /^(0|-?[1-9][0-9]{0,14})$/.test(id)) return index.get(Number(id));
  if (typeof id === 'number') return index.get(String(id));
  return undefined;
}

export function indexOfIds(ids: ReadonlyArray<ItemId>): Map<ItemId, number> {
  return new Map(ids.map((id, i) => [id, i]));
}

export async function recommendHistories(
  ids: ReadonlyArray<ItemId>,
  index: Map<ItemId, number>,
  histories: ReadonlyArray<ReadonlyArray<ItemId>>,
  options: RecommendOptions,
  recommendRows: (matrix: CsrMatrix, options: RecommendOptions) => Promise<TopK>,
): Promise<Recommendation[]> {
  if (!Array.isArray(histories)) throw new VaecfInputError('recommend: expected an array of item-id arrays, one per user');
  const rows: number[][] = [];
  const unknown: ItemId[][] = [];
  histories.forEach((h, u) => {
    if (!Array.isArray(h)) throw new VaecfInputError(`recommend: history ${u} is not an array of item ids`);
    const known = new Set<number>();
    const missing: ItemId[] = [];
    for (const id of h) {
      const i = lookupId(index, id);
      if (i === undefined) missing.push(id);
      else known.add(i);
    }
    rows.push([...known]);
    unknown.push(missing);
  });
  const indptr = new Int32Array(rows.length + 1);
  rows.forEach((r, u) => (indptr[u + 1] = indptr[u] + r.length));
  const top = await recommendRows({ rows: rows.length, cols: ids.length, indptr, indices: Int32Array.from(rows.flat()) }, options);
  return rows.map((_, u) => {
    const items: ItemId[] = [];
    const scores: number[] = [];
    for (let r = 0; r < top.k && top.items[u * top.k + r] >= 0; r++) {
      items.push(ids[top.items[u * top.k + r]]);
      scores.push(top.scores[u * top.k + r]);
    }
    return { items, scores, unknownItems: unknown[u] };
  });
}

/** One flag per item (0 = never recommend) from allow / deny lists of item ids; undefined when neither is given. */
/**
 * The number of recommendations per user: options.k (default 10), a positive integer, clamped to the
 * number of items (a larger k cannot return more and would only allocate more).
 */
export function resolveK(options: RecommendOptions, nItems: number): number {
  const k = options.k ?? 10;
  if (!Number.isInteger(k) || k < 1) throw new VaecfInputError(`k: expected a positive integer, got ${k}`);
  return Math.max(1, Math.min(k, nItems));
}

export function candidateMask(index: Map<ItemId, number>, nItems: number, options: RecommendOptions): Uint8Array | undefined {
  if (!options.allow && !options.exclude) return undefined;
  const mask = new Uint8Array(nItems).fill(options.allow ? 0 : 1);
  for (const id of options.allow ?? []) {
    const i = lookupId(index, id);
    if (i !== undefined) mask[i] = 1;
  }
  for (const id of options.exclude ?? []) {
    const i = lookupId(index, id);
    if (i !== undefined) mask[i] = 0;
  }
  return mask;
}
