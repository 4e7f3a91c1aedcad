// Data from memory: parallel (user, item[, weight]) arrays into Interactions or straight into a click
// matrix, without a file or a hand-made CSR.
import test from 'ava';

import { clicksFromArrays, interactionsFromArrays, preparePaperProtocol, train, VaecfInputError } from '../src/index';

test('clicksFromArrays: one row per user in order of first appearance, repeats merged, ids kept', (t) => {
  const { matrix, userIds, itemIds } = clicksFromArrays(['ann', 'bob', 'ann', 'ann', 7, '7'], ['x', 'y', 'y', 'x', 'x', 'z']);
  t.deepEqual(userIds, ['ann', 'bob', 7]);
  t.deepEqual(itemIds, ['x', 'y', 'z']);
  t.deepEqual(Array.from(matrix.indptr), [0, 2, 3, 5]);
  t.deepEqual(Array.from(matrix.indices), [0, 1, 1, 0, 2]);
  t.is(matrix.values, undefined);
  // Weights: summed over repeats; entries with a weight <= 0 left out.
  const w = clicksFromArrays(['a', 'a', 'a', 'b'], [1, 1, 2, 3], [2, 0.5, -1, 4]);
  t.deepEqual(Array.from(w.matrix.indices), [0, 2]);
  t.deepEqual(Array.from(w.matrix.values as Float32Array), [2.5, 4]);
  t.deepEqual(w.itemIds, [1, 2, 3]);
});

test('bad arrays are refused with the field and the position', (t) => {
  t.throws(() => clicksFromArrays(['a', 'b'], ['x']), { instanceOf: VaecfInputError, message: /items: expected 2 values/ });
  t.throws(() => clicksFromArrays(['a', ''], ['x', 'y']), { message: /users\[1\]: expected a non-empty string or a number/ });
  t.throws(() => clicksFromArrays(['a'], [NaN]), { message: /items\[0\]: expected a string or a finite number, got NaN/ });
  t.throws(() => clicksFromArrays(['a', 'b'], ['x', 'y'], [1, 0]), { message: /user "b" has a weight <= 0/ });
  t.throws(() => interactionsFromArrays({ users: [1], items: [2], ratings: [Infinity] }), { message: /ratings\[0\]: expected a finite number/ });
});

test('arrays go through the paper protocol like a file, and a model trains and recommends by id', async (t) => {
  const users: number[] = [];
  const items: string[] = [];
  const ratings: number[] = [];
  let s = 5;
  const rand = (): number => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return s / 4294967296;
  };
  for (let u = 0; u < 300; u++) {
    const group = u % 2;
    for (let i = 0; i < 12; i++) {
      users.push(u);
      items.push(`item-${group * 20 + Math.floor(rand() * 20)}`);
      ratings.push(rand() < 0.8 ? 5 : 2);
    }
  }
  const data = preparePaperProtocol(interactionsFromArrays({ users, items, ratings }), { heldOutUsers: 30 });
  t.is(data.counts.inputRows, users.length);
  t.true(data.dropped!['rows with a rating at or below 3.5 (not clicks)'] > 0);
  // The same values declared as play counts: every count > 0 is a click.
  const asCounts = preparePaperProtocol(interactionsFromArrays({ users, items, ratings, valueKind: 'count' }), { heldOutUsers: 30 });
  t.is(asCounts.protocol.threshold, 0);
  t.is(asCounts.dropped!['rows with a count at or below 0 (not clicks)'], 0);
  t.throws(() => interactionsFromArrays({ users, items, ratings, valueKind: 'plays' as 'count' }), { message: /valueKind: expected 'rating' or 'count', got "plays"/ });
  const { matrix, itemIds } = clicksFromArrays(users, items);
  const model = await train({ train: matrix, itemIds }, { epochs: 10, batchSize: 50, seed: 1, architecture: { pDims: [8, 32], threads: 1 } });
  const [rec] = await model.recommend([['item-0', 'item-1', 'item-2']], { k: 5 });
  t.is(rec.items.length, 5);
  t.true(rec.items.every((id) => typeof id === 'string' && id.startsWith('item-')));
  model.dispose();
});
