// Strong generalisation (Liang et al. 2018, section 4.2), on a click matrix whose rows are users in
// ascending id order and whose row entries are in file order: held-out users, the item vocabulary of the
// training users in order of first appearance, and the 80/20 fold-in / target split of held-out users,
// all drawn from numpy's legacy stream as the reference code does.
import { type CsrMatrix, VaecfInputError } from './csr';
import { NumpyRandomState } from './numpy-random';

export interface HeldOutSet {
  /** clicks used to infer the user's representation (items re-indexed to the training vocabulary) */
  foldIn: CsrMatrix;
  /** clicks to predict; empty rows for users with fewer than 5 kept clicks */
  targets: CsrMatrix;
  /** row index (in the input matrix) of each held-out user */
  users: Int32Array;
}

export interface StrongSplit {
  train: CsrMatrix;
  validation: HeldOutSet;
  test: HeldOutSet;
  /** row index in the input of each training user, in training order */
  trainUsers: Int32Array;
  /** input column of each training item (position = new item index) */
  itemOrder: Int32Array;
}

export interface StrongSplitOptions {
  /** held-out users per set: a count, or a fraction of all users when in (0, 1) */
  heldOutUsers: number;
  seed?: number;
  /** fraction of a held-out user's clicks that become targets (0.2) */
  targetFraction?: number;
}

export function strongGeneralizationSplit(m: CsrMatrix, options: StrongSplitOptions): StrongSplit {
  const seed = options.seed ?? 98765;
  const fraction = options.targetFraction ?? 0.2;
  const n = options.heldOutUsers < 1 ? Math.floor(options.heldOutUsers * m.rows) : options.heldOutUsers;
  if (!Number.isInteger(n) || n <= 0) throw new VaecfInputError(`heldOutUsers: expected a positive count or fraction, got ${options.heldOutUsers}`);
  if (2 * n >= m.rows) throw new VaecfInputError(`heldOutUsers: ${n} validation + ${n} test users leave no training users out of ${m.rows}`);
  const rng = new NumpyRandomState(seed);
  const perm = rng.permutation(m.rows);
  const trainUsers = perm.slice(0, m.rows - 2 * n);
  const validationUsers = perm.slice(m.rows - 2 * n, m.rows - n);
  const testUsers = perm.slice(m.rows - n);

  // Item vocabulary: distinct items of the training users' clicks in order of first appearance (input order).
  const isTrain = new Uint8Array(m.rows);
  for (const u of trainUsers) isTrain[u] = 1;
  const newIndex = new Int32Array(m.cols).fill(-1);
  const itemOrder: number[] = [];
  for (let r = 0; r < m.rows; r++) {
    if (!isTrain[r]) continue;
    for (let k = m.indptr[r]; k < m.indptr[r + 1]; k++) {
      const c = m.indices[k];
      if (newIndex[c] < 0) {
        newIndex[c] = itemOrder.length;
        itemOrder.push(c);
      }
    }
  }
  const cols = itemOrder.length;

  // Training matrix: row i = trainUsers[i] (its position in the permuted list).
  const remap = (rows: ArrayLike<number>): { indptr: Int32Array; indices: Int32Array } => {
    const indptr = new Int32Array(rows.length + 1);
    const out: number[] = [];
    for (let i = 0; i < rows.length; i++) {
      const r = rows[i];
      for (let k = m.indptr[r]; k < m.indptr[r + 1]; k++) {
        const c = newIndex[m.indices[k]];
        if (c >= 0) out.push(c);
      }
      indptr[i + 1] = out.length;
    }
    return { indptr, indices: Int32Array.from(out) };
  };
  const t = remap(trainUsers);
  const train: CsrMatrix = { rows: trainUsers.length, cols, indptr: t.indptr, indices: t.indices };
  return {
    train,
    validation: heldOut(validationUsers),
    test: heldOut(testUsers),
    trainUsers,
    itemOrder: Int32Array.from(itemOrder),
  };

  function heldOut(usersInPermOrder: Int32Array): HeldOutSet {
    // The reference groups by user id (ascending), seeding numpy once at the start of the call.
    const users = Int32Array.from(usersInPermOrder).sort();
    const kept = remap(users);
    const r = new NumpyRandomState(seed);
    const fiPtr = new Int32Array(users.length + 1);
    const tgPtr = new Int32Array(users.length + 1);
    const fi: number[] = [];
    const tg: number[] = [];
    for (let i = 0; i < users.length; i++) {
      const row = kept.indices.subarray(kept.indptr[i], kept.indptr[i + 1]);
      const count = row.length;
      if (count >= 5) {
        const take = Math.floor(fraction * count);
        const chosen = new Uint8Array(count);
        for (const j of r.choiceWithoutReplacement(count, take)) chosen[j] = 1;
        for (let j = 0; j < count; j++) (chosen[j] ? tg : fi).push(row[j]);
      } else {
        for (let j = 0; j < count; j++) fi.push(row[j]);
      }
      fiPtr[i + 1] = fi.length;
      tgPtr[i + 1] = tg.length;
    }
    return {
      foldIn: { rows: users.length, cols, indptr: fiPtr, indices: Int32Array.from(fi) },
      targets: { rows: users.length, cols, indptr: tgPtr, indices: Int32Array.from(tg) },
      users,
    };
  }
}
