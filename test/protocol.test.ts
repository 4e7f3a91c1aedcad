// Our preparation of ML-1M equals the reference code's (pandas + numpy) split, part by part, and the
// baselines on it reproduce the reference numbers. The fixture holds only hashes and numbers made by
// bench/reference_split.py, no MovieLens data.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

import test from 'ava';

import { EASE, Popularity, evaluateHeldOut, preparePaperProtocol, readInteractions, type CsrMatrix, type PreparedDataset } from '../src/index';
import { sharedFile } from './data-root';

const reference = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'test', 'fixtures', 'ml1m-reference-split.json'), 'utf8'));

let prepared: Promise<PreparedDataset> | null = null;
function ml1m(): Promise<PreparedDataset> {
  prepared ??= readInteractions(sharedFile('ml-1m', 'ml1m_pairs_rating_ge4.tsv')).then((x) => preparePaperProtocol(x, { heldOutUsers: 600 }));
  return prepared;
}

const sha = (s: string): string => createHash('sha256').update(s, 'utf8').digest('hex');
function pairs(m: CsrMatrix, userIds: ReadonlyArray<string | number>, itemIds: ReadonlyArray<string | number>): string {
  const lines: string[] = [];
  for (let u = 0; u < m.rows; u++)
    for (let k = m.indptr[u]; k < m.indptr[u + 1]; k++) lines.push(`${userIds[u]} ${itemIds[m.indices[k]]}`);
  return lines.join('\n');
}

test('ML-1M: counts after filtering and of the training part match the reference', async (t) => {
  const d = await ml1m();
  t.like(d.counts, reference.counts);
  t.like(d.counts, { clicks: 575_272, users: 6_034, items: 3_533, trainUsers: 4_834, trainItems: 3_497, trainClicks: 462_827 });
});

test('ML-1M: users, item order and every fold-in / target pair are identical to numpy', async (t) => {
  const d = await ml1m();
  // Held-out users as the reference lists them: the permuted order, including users without rows.
  const ours = {
    trainUsers: sha(d.trainUserIds.join('\n')),
    itemIds: sha(d.itemIds.join('\n')),
    train: sha(pairs(d.train, d.trainUserIds, d.itemIds)),
    validationFoldIn: sha(pairs(d.validation.foldIn, d.validation.userIds, d.itemIds)),
    validationTargets: sha(pairs(d.validation.targets, d.validation.userIds, d.itemIds)),
    testFoldIn: sha(pairs(d.test.foldIn, d.test.userIds, d.itemIds)),
    testTargets: sha(pairs(d.test.targets, d.test.userIds, d.itemIds)),
    validationUsers: sha(d.validation.userIds.join('\n')),
    testUsers: sha(d.test.userIds.join('\n')),
  };
  for (const [part, hash] of Object.entries(ours)) t.is(hash, reference.sha256[part], `part ${part} differs from the reference split`);
});

test('ML-1M: popularity reproduces the reference test metrics', async (t) => {
  const d = await ml1m();
  const pop = new Popularity();
  pop.fit({ train: d.train });
  const r = await evaluateHeldOut(pop, d.test, ['recall@20', 'recall@50', 'ndcg@100']);
  for (const m of ['recall@20', 'recall@50', 'ndcg@100']) {
    t.true(Math.abs(r.summary[m].mean - reference.test.popularity[m].mean) < 1e-3, `${m}: ${r.summary[m].mean} vs ${reference.test.popularity[m].mean}`);
  }
  t.true(Math.abs(r.summary['ndcg@100'].mean - 0.2158) < 1e-3);
});

test('ML-1M: EASE (lambda 300) reproduces the reference test metrics', async (t) => {
  const d = await ml1m();
  const ease = new EASE({ lambda: 300, threads: 2 });
  const report = await ease.fit({ train: d.train });
  t.is(report.precision, 'float64');
  const r = await evaluateHeldOut(ease, d.test, ['recall@20', 'recall@50', 'ndcg@100']);
  const expected = { 'recall@20': 0.3586, 'recall@50': 0.4708, 'ndcg@100': 0.4196 };
  for (const [m, v] of Object.entries(expected)) {
    t.true(Math.abs(r.summary[m].mean - v) < 1e-3, `${m}: ${r.summary[m].mean} vs ${v}`);
    t.true(Math.abs(r.summary[m].mean - reference.test['ease-300'][m].mean) < 1e-5, `${m} vs the numpy reference`);
  }
  ease.dispose();
});

test('EASE refuses, with the numbers, a size that will not fit', (t) => {
  const e = new EASE({ memoryBudget: 1e9 });
  return t.throwsAsync(e.fit({ train: { rows: 1, cols: 20_000, indptr: Int32Array.from([0, 1]), indices: Int32Array.from([3]) } }), {
    message: /EASE on 20000 items needs at least 3\.0 GiB .* the budget is 0\.9 GiB/,
  });
});

test('a given split reports what it leaves out: test-only users and their clicks, unrankable test clicks, unevaluated users', async (t) => {
  const { prepareGivenSplit, describe: describeData } = await import('../src/index');
  const { tempDir } = await import('./helpers');
  const dir = tempDir();
  fs.writeFileSync(path.join(dir, 'train.txt'), '0 1 2 3 4 5\n1 1 2\n2 3 4 5 6 7\n4 1 3\n');
  // user 3 has no training row; item 9 never appears in training; users 2 and 4 have no test clicks.
  fs.writeFileSync(path.join(dir, 'test.txt'), '0 9 6\n1 2\n3 1 2 4\n');
  const d = prepareGivenSplit(await readInteractions(path.join(dir, 'train.txt')), await readInteractions(path.join(dir, 'test.txt')), { validationUsers: 0 });
  t.deepEqual(d.dropped, {
    'test users without a training row (not evaluated)': 1,
    'test clicks of those users': 3,
    'test clicks on items never seen in training (unrankable, kept as targets)': 1,
    'validation users with fewer than 5 clicks (not held out)': 0,
    'training users without test clicks (not evaluated)': 2,
  });
  t.is(d.counts.testUsers, 2);
  t.regex(describeData(d), /left out: 1 test users without a training row/);
  t.regex(describeData(d), /left out: 3 test clicks of those users/);
});

test("the paper's protocol reports every row, user and click it leaves out, and the counts add up", async (t) => {
  const { describe: describeData } = await import('../src/index');
  const { tempDir } = await import('./helpers');
  const dir = tempDir();
  // Users 1-5 rate items 1-6 with 5 stars and one item of their own (100 + u); user 1 also rates item 7
  // with 2 stars (not a click); user 6 has two clicks (fewer than 5: left out). Whoever is held out has
  // exactly one click on an item no training user clicked (their own item).
  const lines = ['userId,movieId,rating,timestamp'];
  for (let u = 1; u <= 5; u++) {
    for (let i = 1; i <= 6; i++) lines.push(`${u},${i},5,0`);
    lines.push(`${u},${100 + u},5,0`);
  }
  lines.push('1,7,2,0', '6,1,5,0', '6,2,5,0');
  const file = path.join(dir, 'ratings.csv');
  fs.writeFileSync(file, `${lines.join('\n')}\n`);
  const d = preparePaperProtocol(await readInteractions(file), { heldOutUsers: 1 });
  const dropped = d.dropped as Record<string, number>;
  t.is(dropped['rows with a rating at or below 3.5 (not clicks)'], 1);
  t.is(dropped['users with fewer than 5 clicks'], 1);
  t.is(dropped['rows of those users'], 2);
  t.is(dropped['held-out clicks on items no training user clicked (left out, as the reference does)'], 2);
  t.is(dropped['held-out users with fewer than 5 clicks (all fold-in: not evaluated)'], 0);
  t.is(d.counts.users, 5);
  // Every click is in a matrix or in the report.
  const nnz = (m: CsrMatrix): number => m.indptr[m.rows];
  const kept = nnz(d.train) + nnz(d.validation.foldIn) + nnz(d.validation.targets) + nnz(d.test.foldIn) + nnz(d.test.targets);
  t.is(d.counts.clicks, kept + dropped['held-out clicks on items no training user clicked (left out, as the reference does)'] + dropped['repeated clicks of a user on an item (merged into one)']);
  t.regex(describeData(d), /left out: 1 rows with a rating at or below 3\.5/);
  t.regex(describeData(d), /left out: 2 held-out clicks on items no training user clicked/);
});
