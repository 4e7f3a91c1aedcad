// Data from memory: parallel arrays of (user, item[, rating, timestamp]) as a database query or an event
// stream gives them, turned into what the readers give (Interactions, for the paper's protocol or a
// given split) or straight into a click matrix for train() / fit().
import { type CsrMatrix, VaecfInputError } from './csr';
import { IdInterner, type Interactions } from './interactions';
import type { ItemId } from '../models/types';

export interface InteractionArrays {
  /** user id of each interaction (strings or numbers; "5" and 5 are the same id) */
  users: ArrayLike<ItemId>;
  /** item id of each interaction */
  items: ArrayLike<ItemId>;
  /** rating, play count or weight of each interaction (optional) */
  ratings?: ArrayLike<number>;
  /** what `ratings` holds: 'rating' (default; the protocol keeps rating > 3.5) or 'count' (every count > 0 is a click) */
  valueKind?: 'rating' | 'count';
  /** time of each interaction (optional; any increasing number) */
  timestamps?: ArrayLike<number>;
}

function intern(ids: IdInterner, id: ItemId, field: string, k: number): number {
  if (typeof id === 'number') {
    if (!Number.isFinite(id)) throw new VaecfInputError(`${field}[${k}]: expected a string or a finite number, got ${id}`);
    return ids.internNumber(id);
  }
  if (typeof id === 'string' && id.length > 0) return ids.internText(id);
  throw new VaecfInputError(`${field}[${k}]: expected a non-empty string or a number, got ${JSON.stringify(id)}`);
}

/** Interactions from parallel arrays (ids interned in order of first appearance), as a reader gives them. */
export function interactionsFromArrays(data: InteractionArrays, name = 'memory'): Interactions {
  const n = data.users?.length;
  if (!Number.isInteger(n)) throw new VaecfInputError('users: expected an array of user ids');
  for (const field of ['items', 'ratings', 'timestamps'] as const) {
    const a = data[field];
    if (a !== undefined && a.length !== n) throw new VaecfInputError(`${field}: expected ${n} values (one per entry of users), got ${a.length}`);
  }
  if (!data.items) throw new VaecfInputError('items: expected an array of item ids');
  if (data.valueKind !== undefined && data.valueKind !== 'rating' && data.valueKind !== 'count')
    throw new VaecfInputError(`valueKind: expected 'rating' or 'count', got ${JSON.stringify(data.valueKind)}`);
  const users = new IdInterner();
  const items = new IdInterner();
  const userCodes = new Int32Array(n);
  const itemCodes = new Int32Array(n);
  for (let k = 0; k < n; k++) {
    userCodes[k] = intern(users, data.users[k], 'users', k);
    itemCodes[k] = intern(items, data.items[k], 'items', k);
  }
  const numbers = (field: 'ratings' | 'timestamps'): Float64Array | null => {
    const a = data[field];
    if (!a) return null;
    const out = Float64Array.from(a);
    const bad = out.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) throw new VaecfInputError(`${field}[${bad}]: expected a finite number, got ${a[bad]}`);
    return out;
  };
  return {
    length: n, userCodes, itemCodes, ratings: numbers('ratings'), timestamps: numbers('timestamps'),
    ...(data.ratings ? { valueKind: data.valueKind ?? 'rating' } : {}),
    userIds: users.ids, itemIds: items.ids, source: { file: name, format: 'arrays' },
  };
}

/**
 * A click matrix (users x items, one row per user in order of first appearance) from parallel arrays,
 * with the ids of its rows and columns: `train({ train: matrix, itemIds })` trains on it. A repeated
 * (user, item) pair is one click; with `weights` the click's value is the sum of its weights (entries
 * with a weight <= 0 are left out).
 */
export function clicksFromArrays(
  users: ArrayLike<ItemId>, items: ArrayLike<ItemId>, weights?: ArrayLike<number>,
): { matrix: CsrMatrix; userIds: ItemId[]; itemIds: ItemId[] } {
  const x = interactionsFromArrays({ users, items, ...(weights ? { ratings: weights } : {}) });
  const rows = x.userIds.length;
  // Counting sort by user (file order within a user), then duplicates merged per row.
  const start = new Int32Array(rows + 1);
  for (let k = 0; k < x.length; k++) if (!x.ratings || x.ratings[k] > 0) start[x.userCodes[k] + 1]++;
  for (let r = 0; r < rows; r++) start[r + 1] += start[r];
  const fill = start.slice(0, rows);
  const order = new Int32Array(start[rows]);
  for (let k = 0; k < x.length; k++) if (!x.ratings || x.ratings[k] > 0) order[fill[x.userCodes[k]]++] = k;
  const indptr = new Int32Array(rows + 1);
  const indices: number[] = [];
  const values: number[] = [];
  const slot = new Int32Array(x.itemIds.length).fill(-1);
  for (let r = 0; r < rows; r++) {
    const first = indices.length;
    for (let j = start[r]; j < start[r + 1]; j++) {
      const k = order[j];
      const c = x.itemCodes[k];
      if (slot[c] >= first) {
        if (x.ratings) values[slot[c]] += x.ratings[k];
        continue;
      }
      slot[c] = indices.length;
      indices.push(c);
      if (x.ratings) values.push(x.ratings[k]);
    }
    indptr[r + 1] = indices.length;
  }
  const empty = indptr.findIndex((p, r) => r > 0 && p === indptr[r - 1]);
  if (empty > 0) throw new VaecfInputError(`weights: every interaction of user ${JSON.stringify(x.userIds[empty - 1])} has a weight <= 0; leave such users out`);
  const matrix: CsrMatrix = {
    rows, cols: x.itemIds.length, indptr, indices: Int32Array.from(indices), ...(x.ratings ? { values: Float32Array.from(values) } : {}),
  };
  return { matrix, userIds: x.userIds, itemIds: x.itemIds };
}
