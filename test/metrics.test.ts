import test from 'ava';

import { csrFromRows, NumpyRandomState, rankingMetrics, summarize } from '../src/index';

test('NDCG@k and both recalls on a hand-computed example', (t) => {
  // user 0: targets {1, 5, 7}, ranking [5, 2, 7, 9]; user 1: targets {3}, ranking [0, 3, 4, 8]; user 2: no targets
  const targets = csrFromRows([[1, 5, 7], [3], []], 10);
  const top = Int32Array.from([5, 2, 7, 9, 0, 3, 4, 8, 1, 2, 3, 4]);
  const r = rankingMetrics(top, 4, targets, ['ndcg@4', 'recall@2', 'recall-lightgcn@2', 'recall@4']);
  t.deepEqual(Array.from(r.users), [0, 1]);
  const d = (rank: number): number => 1 / Math.log2(rank + 1);
  t.true(Math.abs(r.perUser['ndcg@4'][0] - (d(1) + d(3)) / (d(1) + d(2) + d(3))) < 1e-15);
  t.true(Math.abs(r.perUser['ndcg@4'][1] - d(2) / d(1)) < 1e-15);
  t.is(r.perUser['recall@2'][0], 1 / 2); // 1 hit in top 2, min(2, 3) = 2
  t.is(r.perUser['recall-lightgcn@2'][0], 1 / 3); // hits / number of targets
  t.is(r.perUser['recall@2'][1], 1); // min(2, 1) = 1
  t.is(r.perUser['recall@4'][0], 2 / 3);
  t.is(r.summary['recall@2'].users, 2);
});

test('standard error is the population std over sqrt(n)', (t) => {
  const s = summarize(Float64Array.from([1, 2, 3, 4]));
  t.is(s.mean, 2.5);
  t.true(Math.abs(s.stderr - Math.sqrt(1.25) / 2) < 1e-15);
});

test('bad metric names are refused with the expected forms', (t) => {
  const e = t.throws(() => rankingMetrics(new Int32Array(4), 4, csrFromRows([[1]], 5), ['ndcg100']));
  t.regex(e!.message, /expected ndcg@K, recall@K or recall-lightgcn@K/);
});

// Expected values printed by numpy 2.4 (np.random.seed; permutation; choice; randint).
test("numpy's legacy stream: permutation and choice match numpy", (t) => {
  const r = new NumpyRandomState(98765);
  t.deepEqual(Array.from(r.permutation(12)), [11, 9, 2, 7, 8, 4, 1, 10, 6, 0, 3, 5]);
  const c = new NumpyRandomState(5);
  t.deepEqual(Array.from(c.choiceWithoutReplacement(20, 4)), [2, 5, 17, 19]);
  t.deepEqual(Array.from(c.choiceWithoutReplacement(7, 1)), [6]);
  const big = new NumpyRandomState(123456);
  t.deepEqual(Array.from(big.permutation(100000).subarray(0, 5)), [65946, 68716, 75823, 57450, 1628]);
});

test('MT19937 matches the reference output for seed 5489', (t) => {
  t.is(new NumpyRandomState(5489).nextUint32(), 3499211612);
});
