// The paper's preparation (Liang et al. 2018; dawenl/vae_cf), exactly: binarise (rating > threshold),
// filter_triplets(min_uc, min_sc), users sorted by id then permuted with numpy's stream (seed 98765),
// train / validation / test users, the item vocabulary of the training rows in order of first
// appearance, and the 80/20 fold-in / target split of held-out users (numpy seeded once per call).
// Rows of every matrix are ordered by the reference's uid (position in the permuted user list).
import { type CsrMatrix, VaecfInputError } from './csr';
import type { Interactions } from './interactions';
import { NumpyRandomState } from './numpy-random';

export interface ProtocolOptions {
  /**
   * keep rows with rating > threshold; null keeps every row. Default: 3.5 (MovieLens) for a rating
   * column, 0 for a count column (Interactions.valueKind 'count': plays, clicks, weight), none without one
   */
  threshold?: number | null;
  /** users with fewer rows are dropped (5) */
  minUserClicks?: number;
  /** items with fewer rows are dropped first (0: none) */
  minItemClicks?: number;
  /** users per held-out set: a count (>= 1) or a fraction of all users (< 1) */
  heldOutUsers: number;
  /** numpy seed for the user permutation and the fold-in / target split (98765) */
  seed?: number;
  /** fraction of a held-out user's rows that become targets (0.2) */
  targetFraction?: number;
  /** held-out users with fewer rows keep them all as fold-in (5) */
  minClicksForTargets?: number;
}

export interface HeldOutUsers {
  foldIn: CsrMatrix;
  targets: CsrMatrix;
  /** external id of each row's user */
  userIds: Array<string | number>;
}

export interface PreparedDataset {
  train: CsrMatrix;
  validation: HeldOutUsers;
  test: HeldOutUsers;
  /** external id of each item column (training vocabulary, first-appearance order) */
  itemIds: Array<string | number>;
  /** external id of each training row's user */
  trainUserIds: Array<string | number>;
  protocol: Required<Omit<ProtocolOptions, 'threshold'>> & { threshold: number | null; name: string };
  counts: {
    inputRows: number;
    clicks: number;
    users: number;
    items: number;
    trainUsers: number;
    trainItems: number;
    trainClicks: number;
    validationUsers: number;
    testUsers: number;
  };
  /**
   * What preparation left out or cannot evaluate, by reason, with counts (absent reasons are 0): nothing
   * is dropped silently. Given splits report users and clicks of the test file without a training
   * row, test clicks on items never seen in training, validation users too short to hold items out,
   * and training users without test clicks.
   */
  dropped?: Record<string, number>;
}

function compareIds(a: string | number, b: string | number): number {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  const sa = String(a);
  const sb = String(b);
  return sa < sb ? -1 : sa > sb ? 1 : 0;
}

export function preparePaperProtocol(x: Interactions, options: ProtocolOptions): PreparedDataset {
  const seed = options.seed ?? 98765;
  const minUc = options.minUserClicks ?? 5;
  const minSc = options.minItemClicks ?? 0;
  const fraction = options.targetFraction ?? 0.2;
  const minForTargets = options.minClicksForTargets ?? 5;
  const countColumn = x.valueKind === 'count';
  const threshold = options.threshold === undefined ? (x.ratings ? (countColumn ? 0 : 3.5) : null) : options.threshold;
  if (threshold !== null && !x.ratings)
    throw new VaecfInputError(`threshold: ${x.source.file} has no rating column to compare with ${threshold}; pass threshold: null`);
  const nUsersAll = x.userIds.length;
  const nItemsAll = x.itemIds.length;

  // What each step leaves out, counted for the report (PreparedDataset.dropped).
  let belowThreshold = 0;
  let rareItemRows = 0;
  let shortUserRows = 0;
  let markerRows = 0;
  // 1. Binarise. A row with item code -1 marks a user with no items (one-line-per-user input): no click.
  const keep = new Uint8Array(x.length);
  for (let k = 0; k < x.length; k++) {
    if (x.itemCodes[k] < 0) {
      markerRows++;
      continue;
    }
    keep[k] = threshold === null || (x.ratings as Float64Array)[k] > threshold ? 1 : 0;
    if (!keep[k]) belowThreshold++;
  }
  // 2. filter_triplets: items with >= min_sc rows, then users with >= min_uc rows.
  if (minSc > 0) {
    const itemCount = new Int32Array(nItemsAll);
    for (let k = 0; k < x.length; k++) if (keep[k]) itemCount[x.itemCodes[k]]++;
    for (let k = 0; k < x.length; k++)
      if (keep[k] && itemCount[x.itemCodes[k]] < minSc) {
        keep[k] = 0;
        rareItemRows++;
      }
  }
  const userCount = new Int32Array(nUsersAll);
  for (let k = 0; k < x.length; k++) if (keep[k]) userCount[x.userCodes[k]]++;
  const usersWithRows = userCount.reduce((a, c) => a + (c > 0 ? 1 : 0), 0);
  for (let k = 0; k < x.length; k++)
    if (keep[k] && userCount[x.userCodes[k]] < minUc) {
      keep[k] = 0;
      shortUserRows++;
    }
  let clicks = 0;
  const itemSeen = new Uint8Array(nItemsAll);
  let items = 0;
  for (let k = 0; k < x.length; k++)
    if (keep[k]) {
      clicks++;
      if (!itemSeen[x.itemCodes[k]]) {
        itemSeen[x.itemCodes[k]] = 1;
        items++;
      }
    }

  // 3. unique_uid: remaining users sorted by id, then permuted.
  const users: number[] = [];
  for (let u = 0; u < nUsersAll; u++) if (userCount[u] >= minUc && userCount[u] > 0) users.push(u);
  const usersWithoutRows = nUsersAll - usersWithRows;
  const shortUsers = usersWithRows - users.length;
  users.sort((a, b) => compareIds(x.userIds[a], x.userIds[b]));
  const n = users.length;
  const heldOut = options.heldOutUsers < 1 ? Math.floor(options.heldOutUsers * n) : options.heldOutUsers;
  if (!Number.isInteger(heldOut) || heldOut < 1)
    throw new VaecfInputError(`heldOutUsers: expected a count >= 1 or a fraction in (0, 1), got ${options.heldOutUsers}`);
  if (2 * heldOut >= n)
    throw new VaecfInputError(`heldOutUsers: ${heldOut} validation and ${heldOut} test users leave no training users out of ${n}`);
  const perm = new NumpyRandomState(seed).permutation(n);
  const uid = new Int32Array(nUsersAll).fill(-1); // user code -> position in the permuted list
  const permuted = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    permuted[i] = users[perm[i]];
    uid[permuted[i]] = i;
  }
  const nTrain = n - 2 * heldOut;

  // Rows grouped by user in file order (stable counting sort on the user code).
  const start = new Int32Array(nUsersAll + 1);
  for (let k = 0; k < x.length; k++) if (keep[k]) start[x.userCodes[k] + 1]++;
  for (let u = 0; u < nUsersAll; u++) start[u + 1] += start[u];
  const fill = start.slice(0, nUsersAll);
  const byUser = new Int32Array(clicks);
  for (let k = 0; k < x.length; k++) if (keep[k]) byUser[fill[x.userCodes[k]]++] = k;

  // 5. Item vocabulary: items of the training users' rows in order of first appearance in the file.
  const sid = new Int32Array(nItemsAll).fill(-1);
  const itemIds: Array<string | number> = [];
  let trainClicks = 0;
  for (let k = 0; k < x.length; k++) {
    if (!keep[k] || uid[x.userCodes[k]] >= nTrain) continue;
    trainClicks++;
    const c = x.itemCodes[k];
    if (sid[c] < 0) {
      sid[c] = itemIds.length;
      itemIds.push(x.itemIds[c]);
    }
  }
  const cols = itemIds.length;

  const rowsOf = (u: number, out: number[]): void => {
    for (let j = start[u]; j < start[u + 1]; j++) {
      const c = sid[x.itemCodes[byUser[j]]];
      if (c >= 0) out.push(c);
    }
  };
  // Training matrix, rows in uid order.
  const trainPtr = new Int32Array(nTrain + 1);
  const trainIdx: number[] = [];
  for (let i = 0; i < nTrain; i++) {
    rowsOf(permuted[i], trainIdx);
    trainPtr[i + 1] = trainIdx.length;
  }
  const train = mergeDuplicates({ rows: nTrain, cols, indptr: trainPtr, indices: Int32Array.from(trainIdx) });

  // 7. split_train_test_proportion for the validation users, then the test users. The reference keeps
  // only held-out clicks on items of the training vocabulary; those and the users left without any row
  // are counted.
  const heldOutReport = { unseenItemClicks: 0, usersWithoutKnownItems: 0, usersWithoutTargets: 0 };
  const split = (from: number, to: number): HeldOutUsers => {
    const rng = new NumpyRandomState(seed);
    const byId = Array.from({ length: to - from }, (_, i) => permuted[from + i]).sort((a, b) => compareIds(x.userIds[a], x.userIds[b]));
    const fold = new Map<number, number[]>();
    const targ = new Map<number, number[]>();
    for (const u of byId) {
      const row: number[] = [];
      rowsOf(u, row);
      heldOutReport.unseenItemClicks += start[u + 1] - start[u] - row.length;
      if (row.length === 0) {
        heldOutReport.usersWithoutKnownItems++;
        continue; // no rows in the vocabulary: absent from the reference's tables
      }
      const f: number[] = [];
      const t: number[] = [];
      if (row.length >= minForTargets) {
        const chosen = new Uint8Array(row.length);
        for (const j of rng.choiceWithoutReplacement(row.length, Math.floor(fraction * row.length))) chosen[j] = 1;
        row.forEach((c, j) => (chosen[j] ? t : f).push(c));
      } else {
        f.push(...row);
        heldOutReport.usersWithoutTargets++;
      }
      fold.set(u, f);
      targ.set(u, t);
    }
    // Rows in uid order (load_tr_te_data), users without rows left out.
    const order = Array.from({ length: to - from }, (_, i) => permuted[from + i]).filter((u) => fold.has(u));
    const build = (m: Map<number, number[]>): CsrMatrix => {
      const indptr = new Int32Array(order.length + 1);
      const idx: number[] = [];
      order.forEach((u, i) => {
        idx.push(...(m.get(u) as number[]));
        indptr[i + 1] = idx.length;
      });
      return mergeDuplicates({ rows: order.length, cols, indptr, indices: Int32Array.from(idx) });
    };
    return { foldIn: build(fold), targets: build(targ), userIds: order.map((u) => x.userIds[u]) };
  };
  const validation = split(nTrain, nTrain + heldOut);
  const test = split(nTrain + heldOut, n);
  return {
    train,
    validation,
    test,
    itemIds,
    trainUserIds: Array.from(permuted.subarray(0, nTrain), (u) => x.userIds[u]),
    protocol: {
      name: 'liang2018-strong-generalization', threshold, minUserClicks: minUc, minItemClicks: minSc, heldOutUsers: heldOut, seed,
      targetFraction: fraction, minClicksForTargets: minForTargets,
    },
    counts: {
      inputRows: x.length, clicks, users: n, items, trainUsers: nTrain, trainItems: cols, trainClicks,
      validationUsers: validation.foldIn.rows, testUsers: test.foldIn.rows,
    },
    dropped: {
      ...(threshold === null ? {} : { [`rows with a ${countColumn ? 'count' : 'rating'} at or below ${threshold} (not clicks)`]: belowThreshold }),
      ...(minSc > 0 ? { [`rows of items with fewer than ${minSc} rows`]: rareItemRows } : {}),
      [`users with fewer than ${minUc} clicks`]: shortUsers,
      'rows of those users': shortUserRows,
      'users with no click left after the threshold and the item filter': usersWithoutRows,
      'lines of users with no item (one-line-per-user input)': markerRows,
      'repeated clicks of a user on an item (merged into one)': clicks - train.indptr[nTrain] - heldOutClicks(validation) - heldOutClicks(test) - heldOutReport.unseenItemClicks,
      'held-out clicks on items no training user clicked (left out, as the reference does)': heldOutReport.unseenItemClicks,
      'held-out users with no click on a training item (left out)': heldOutReport.usersWithoutKnownItems,
      [`held-out users with fewer than ${minForTargets} clicks (all fold-in: not evaluated)`]: heldOutReport.usersWithoutTargets,
    },
  };
}

function heldOutClicks(h: HeldOutUsers): number {
  return h.foldIn.indptr[h.foldIn.rows] + h.targets.indptr[h.targets.rows];
}

/**
 * Repeated (user, item) pairs become one entry whose value is the count, as scipy's csr_matrix sums
 * duplicates in the reference; a matrix without repeats stays binary (no values array).
 */
export function mergeDuplicates(m: CsrMatrix): CsrMatrix {
  const seen = new Int32Array(m.cols).fill(-1);
  let dup = false;
  for (let r = 0; r < m.rows && !dup; r++)
    for (let k = m.indptr[r]; k < m.indptr[r + 1]; k++) {
      if (seen[m.indices[k]] === r) {
        dup = true;
        break;
      }
      seen[m.indices[k]] = r;
    }
  if (!dup) return m;
  const pos = new Int32Array(m.cols).fill(-1);
  const indptr = new Int32Array(m.rows + 1);
  const idx: number[] = [];
  const val: number[] = [];
  for (let r = 0; r < m.rows; r++) {
    const rowStart = idx.length;
    for (let k = m.indptr[r]; k < m.indptr[r + 1]; k++) {
      const c = m.indices[k];
      const v = m.values ? m.values[k] : 1;
      if (pos[c] >= rowStart) val[pos[c]] += v;
      else {
        pos[c] = idx.length;
        idx.push(c);
        val.push(v);
      }
    }
    indptr[r + 1] = idx.length;
  }
  return { rows: m.rows, cols: m.cols, indptr, indices: Int32Array.from(idx), values: Float32Array.from(val) };
}

/** Rows of a CSR matrix as interactions in row-major order (row index = user id, column = item id). */
export function interactionsFromCsr(m: CsrMatrix, name = 'matrix'): Interactions {
  const n = m.indptr[m.rows];
  const userCodes = new Int32Array(n);
  for (let r = 0; r < m.rows; r++) userCodes.fill(r, m.indptr[r], m.indptr[r + 1]);
  return {
    length: n,
    userCodes,
    itemCodes: m.indices.slice(0, n),
    ratings: null,
    timestamps: null,
    userIds: Array.from({ length: m.rows }, (_, i) => i),
    itemIds: Array.from({ length: m.cols }, (_, i) => i),
    source: { file: name, format: 'csr' },
  };
}

export interface GivenSplitOptions {
  /** training users whose clicks lend validation targets: a count or a fraction (default 0.1) */
  validationUsers?: number;
  /** numpy seed for picking validation users and their targets (98765) */
  seed?: number;
  /** fraction of a validation user's training clicks that become validation targets (0.2) */
  targetFraction?: number;
}

/**
 * A dataset with a fixed train / test split per user (e.g. the Gowalla files of NGCF / LightGCN): every
 * user's training clicks are the fold-in for their test clicks. A validation set is carved out of train so
 * that no one tunes on test: for some users, a fraction of their training clicks becomes validation
 * targets and leaves the training matrix. Items: those of train then test, in order of first appearance.
 */
export function prepareGivenSplit(train: Interactions, test: Interactions, options: GivenSplitOptions = {}): PreparedDataset {
  const seed = options.seed ?? 98765;
  const fraction = options.targetFraction ?? 0.2;
  // One id space for users and items across both files.
  const userIndex = new Map<string | number, number>();
  const userIds: Array<string | number> = [];
  const itemIndex = new Map<string | number, number>();
  const itemIds: Array<string | number> = [];
  const rowsOf = (x: Interactions): Map<number, number[]> => {
    const rows = new Map<number, number[]>();
    for (let k = 0; k < x.length; k++) {
      const uid = x.userIds[x.userCodes[k]];
      let u = userIndex.get(uid);
      if (u === undefined) {
        u = userIds.length;
        userIndex.set(uid, u);
        userIds.push(uid);
      }
      const iid = x.itemIds[x.itemCodes[k]];
      let i = itemIndex.get(iid);
      if (i === undefined) {
        i = itemIds.length;
        itemIndex.set(iid, i);
        itemIds.push(iid);
      }
      let r = rows.get(u);
      if (!r) rows.set(u, (r = []));
      r.push(i);
    }
    return rows;
  };
  const trainRows = rowsOf(train);
  const testRows = rowsOf(test);
  const users = [...trainRows.keys()].sort((a, b) => a - b);
  const nVal = options.validationUsers === undefined ? Math.floor(0.1 * users.length)
    : options.validationUsers < 1 ? Math.floor(options.validationUsers * users.length) : options.validationUsers;
  if (!Number.isInteger(nVal) || nVal < 0 || nVal >= users.length)
    throw new VaecfInputError(`validationUsers: expected a count below ${users.length} or a fraction, got ${options.validationUsers}`);
  const rng = new NumpyRandomState(seed);
  const perm = rng.permutation(users.length);
  const valUsers = Array.from(perm.subarray(0, nVal), (p) => users[p]).sort((a, b) => a - b);
  const cols = itemIds.length;
  const heldBack = new Map<number, number[]>();
  const trainKept = new Map<number, number[]>(trainRows);
  for (const u of valUsers) {
    const row = trainRows.get(u) as number[];
    if (row.length < 5) continue;
    const chosen = new Uint8Array(row.length);
    for (const j of rng.choiceWithoutReplacement(row.length, Math.floor(fraction * row.length))) chosen[j] = 1;
    heldBack.set(u, row.filter((_, j) => chosen[j]));
    trainKept.set(u, row.filter((_, j) => !chosen[j]));
  }
  const csr = (order: number[], rows: Map<number, number[]>): CsrMatrix => {
    const indptr = new Int32Array(order.length + 1);
    const idx: number[] = [];
    order.forEach((u, r) => {
      idx.push(...(rows.get(u) ?? []));
      indptr[r + 1] = idx.length;
    });
    return mergeDuplicates({ rows: order.length, cols, indptr, indices: Int32Array.from(idx) });
  };
  const valOrder = valUsers.filter((u) => heldBack.has(u));
  const testOrder = users.filter((u) => (testRows.get(u)?.length ?? 0) > 0);
  // Everything the split cannot use or evaluate, counted.
  const inTraining = new Set<number>();
  for (const r of trainRows.values()) for (const i of r) inTraining.add(i);
  let testOnlyUsers = 0;
  let testOnlyUserClicks = 0;
  let unseenItemClicks = 0;
  for (const [u, r] of testRows) {
    if (!trainRows.has(u)) {
      testOnlyUsers++;
      testOnlyUserClicks += r.length;
    } else for (const i of r) if (!inTraining.has(i)) unseenItemClicks++;
  }
  const dropped: Record<string, number> = {
    'test users without a training row (not evaluated)': testOnlyUsers,
    'test clicks of those users': testOnlyUserClicks,
    'test clicks on items never seen in training (unrankable, kept as targets)': unseenItemClicks,
    'validation users with fewer than 5 clicks (not held out)': valUsers.length - valOrder.length,
    'training users without test clicks (not evaluated)': users.length - testOrder.length,
  };
  const trainMatrix = csr(users, trainKept);
  let trainClicks = 0;
  for (const r of trainKept.values()) trainClicks += r.length;
  let clicks = trainClicks;
  for (const r of heldBack.values()) clicks += r.length;
  for (const r of testRows.values()) clicks += r.length;
  return {
    train: trainMatrix,
    validation: { foldIn: csr(valOrder, trainKept), targets: csr(valOrder, heldBack), userIds: valOrder.map((u) => userIds[u]) },
    test: { foldIn: csr(testOrder, trainRows), targets: csr(testOrder, testRows), userIds: testOrder.map((u) => userIds[u]) },
    itemIds,
    trainUserIds: users.map((u) => userIds[u]),
    protocol: {
      name: 'given-split', threshold: null, minUserClicks: 0, minItemClicks: 0, heldOutUsers: valOrder.length, seed,
      targetFraction: fraction, minClicksForTargets: 5,
    },
    counts: {
      inputRows: train.length + test.length, clicks, users: userIds.length, items: cols, trainUsers: users.length, trainItems: cols,
      trainClicks, validationUsers: valOrder.length, testUsers: testOrder.length,
    },
    dropped,
  };
}
