// Every reader on a small fixture written in the official format, the real files in ../shared/data,
// and malformed input named by file, line and field.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';

import test from 'ava';

import { readInteractions, type Interactions } from '../src/index';
import { sharedFile } from './data-root';
import { seededRandom, tempDir } from './helpers';

const dir = tempDir('vaecf-readers-');
function write(name: string, text: string): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, name.endsWith('.gz') ? zlib.gzipSync(text) : text);
  return file;
}
function rows(x: Interactions): string[] {
  return Array.from({ length: x.length }, (_, k) => `${x.userIds[x.userCodes[k]]} ${x.itemIds[x.itemCodes[k]]}${x.ratings ? ` ${x.ratings[k]}` : ''}`);
}

const cases: Array<{ name: string; file: string; text: string; format: string; expected: string[] }> = [
  { name: 'MovieLens ratings.csv (ML-20M, ML-25M, ml-latest)', file: 'ratings.csv', format: 'movielens-csv',
    text: 'userId,movieId,rating,timestamp\n1,2,3.5,1112486027\n1,29,3.5,1112484676\n2,3,4.0,974820889\n', expected: ['1 2 3.5', '1 29 3.5', '2 3 4'] },
  { name: 'MovieLens ratings.dat (ML-1M, ML-10M)', file: 'ratings.dat', format: 'movielens-dat',
    text: '1::1193::5::978300760\r\n1::661::3::978302109\r\n2::1357::5::978298709\r\n', expected: ['1 1193 5', '1 661 3', '2 1357 5'] },
  { name: 'MovieLens u.data (ML-100K)', file: 'u.data', format: 'movielens-100k',
    text: '196\t242\t3\t881250949\n186\t302\t3\t891717742\n', expected: ['196 242 3', '186 302 3'] },
  { name: 'Amazon ratings-only CSV', file: 'ratings_Movies_and_TV.csv', format: 'amazon-csv',
    text: 'A3R5OBKS7OM2IR,0000143502,5.0,1358380800\nAH3QC2PC1VTGP,0000143529,2.0,1380672000\n', expected: ['A3R5OBKS7OM2IR 0000143502 5', 'AH3QC2PC1VTGP 0000143529 2'] },
  { name: 'Amazon 2014 5-core reviews (gzipped JSON lines)', file: 'reviews_Movies_and_TV_5.json.gz', format: 'amazon-json',
    text: '{"reviewerID": "ADZPIG9QOCDG5", "asin": "0005019281", "reviewerName": "Alice L. Larson", "helpful": [0, 0], "reviewText": "x", "overall": 4.0, "summary": "s", "unixReviewTime": 1203984000, "reviewTime": "02 26, 2008"}\n{"reviewerID": "A35947ZP82G7JH", "asin": "0005019281", "overall": 3.0, "unixReviewTime": 1388361600}\n',
    expected: ['ADZPIG9QOCDG5 0005019281 4', 'A35947ZP82G7JH 0005019281 3'] },
  { name: 'Amazon 2018 5-core reviews (gzipped JSON lines)', file: 'Movies_and_TV_5.json.gz', format: 'amazon-json',
    text: '{"overall": 5.0, "verified": true, "reviewTime": "11 9, 2012", "reviewerID": "A2M1CU2IRZG0K9", "asin": "0005089549", "style": {"Format:": " VHS Tape"}, "reviewerName": "Terri", "reviewText": "x", "summary": "s", "unixReviewTime": 1352419200}\n',
    expected: ['A2M1CU2IRZG0K9 0005089549 5'] },
  { name: 'Netflix Prize combined_data_1.txt', file: 'combined_data_1.txt', format: 'netflix',
    text: '1:\n1488844,3,2005-09-06\n822109,5,2005-05-13\n2:\n2059652,4,2005-09-05\n', expected: ['1488844 1 3', '822109 1 5', '2059652 2 4'] },
  { name: 'Million Song Dataset taste-profile triplets', file: 'train_triplets.txt', format: 'msd-triplets',
    text: 'b80344d063b5ccb3212f76538f3d9e43d87dca9e\tSOAKIMP12A8C130995\t1\nb80344d063b5ccb3212f76538f3d9e43d87dca9e\tSOAPDEY12A81C210A9\t3\n',
    expected: ['b80344d063b5ccb3212f76538f3d9e43d87dca9e SOAKIMP12A8C130995 1', 'b80344d063b5ccb3212f76538f3d9e43d87dca9e SOAPDEY12A81C210A9 3'] },
  { name: 'one line per user (Gowalla, Amazon Beauty)', file: 'train.txt', format: 'user-lines',
    text: '0 0 1 2\n1 3 4\n', expected: ['0 0', '0 1', '0 2', '1 3', '1 4'] },
  { name: 'generic TSV with named columns', file: 'clicks.tsv', format: 'delimited',
    text: 'user_id\titem_id\tweight\nu1\ti9\t2\nu2\ti9\t1\n', expected: ['u1 i9 2', 'u2 i9 1'] },
];

for (const c of cases) {
  test(`reads ${c.name}`, async (t) => {
    const x = await readInteractions(write(c.file, c.text));
    t.is(x.source.format, c.format);
    t.deepEqual(rows(x), c.expected);
  });
}

test('names the file, line and field of malformed input', async (t) => {
  const bad: Array<[string, string, RegExp]> = [
    ['bad1/ratings.csv', 'userId,movieId,rating,timestamp\n1,2,3.5,11\n1,3,abc,12\n', /ratings\.csv:3: field "rating": expected a decimal number, got "abc"/],
    ['bad2/ratings.dat', '1::1193::5::978300760\n1::661\n', /ratings\.dat:2: expected UserID::MovieID::Rating::Timestamp/],
    ['bad3/reviews_x_5.json', '{"reviewerID": "A", "asin": "B", "overall": 5}\n{"reviewerID": "A", "overall": 5}\n', /reviews_x_5\.json:2: field "asin": expected a string/],
    ['bad4/combined_data_2.txt', '1488844,3,2005-09-06\n', /combined_data_2\.txt:1: a rating line before the first "MovieID:" line/],
    ['bad5/clicks.csv', 'userId,itemId\n7,\n', /clicks\.csv:2: field "itemId" is empty/],
  ];
  for (const [name, text, message] of bad) {
    fs.mkdirSync(path.join(dir, path.dirname(name)), { recursive: true });
    const e = await t.throwsAsync(readInteractions(write(name, text)));
    t.regex(e!.message, message);
  }
  const e = await t.throwsAsync(readInteractions(path.join(dir, 'nope.csv')));
  t.regex(e!.message, /nope\.csv: no such file/);
});

test('reads the real files in ../shared/data', async (t) => {
  const counts: Array<[string[], number, string]> = [
    [['ml-100k', 'u.data'], 100_000, 'movielens-100k'],
    [['ml-latest-small', 'ratings.csv'], 100_836, 'movielens-csv'],
    [['ml-1m', 'ratings_users1-2999_partial.dat.gz'], 487_650, 'movielens-dat'],
    [['lastfm-hetrec2011', 'user_artists.dat'], 92_834, 'delimited'],
    [['amazon-beauty', 'Beauty.txt'], 198_502, 'user-lines'],
    [['gowalla', 'test.txt'], 217_242, 'user-lines'],
  ];
  for (const [parts, n, format] of counts) {
    const x = await readInteractions(sharedFile(...parts));
    t.is(x.length, n, parts.join('/'));
    t.is(x.source.format, format, parts.join('/'));
  }
});

test('a multi-byte character split between two read chunks stays whole (gzip chunks are 16 KiB)', async (t) => {
  // 3,000 users with ids of two-byte characters: chunk boundaries fall inside characters many times.
  const lines = ['userId,itemId,rating'];
  for (let u = 0; u < 3000; u++) lines.push(`usér-${u},ïtem-${u % 97}-é,4`);
  for (const name of ['utf8-split.csv.gz', 'utf8-split.csv']) {
    const x = await readInteractions(write(name, `${lines.join('\n')}\n`), { format: 'delimited' });
    t.is(x.userIds.length, 3000, name);
    t.is(x.itemIds.length, 97, name);
    t.true(x.itemIds.every((id) => /^ïtem-\d+-é$/.test(String(id))), name);
  }
});

test('bytes that are not UTF-8 are refused with the file and line, not merged into one id', async (t) => {
  const file = path.join(dir, 'latin1.csv');
  fs.writeFileSync(file, Buffer.concat([Buffer.from('userId,itemId,rating\nu1,ok,4\nu2,caf'), Buffer.from([0xe9]), Buffer.from(',4\n')]));
  const e = await t.throwsAsync(readInteractions(file, { format: 'delimited' }));
  t.regex(e!.message, /latin1\.csv:3: the bytes are not valid UTF-8/);
});

test('numbers are decimal: 0x10, 0b1 and a blank are refused, not read as 16, 1 and 0', async (t) => {
  for (const [value, what] of [['0x10', /expected a decimal number, got "0x10"/], ['0b1', /expected a decimal number, got "0b1"/], [' ', /is missing/]] as const) {
    const e = await t.throwsAsync(readInteractions(write(`num-${what.source.length}.csv`, `userId,itemId,rating\nu1,i1,4\nu2,i2,${value}\n`), { format: 'delimited' }));
    t.regex(e!.message, /:3: /, value);
    t.regex(e!.message, what, value);
  }
  const ok = await readInteractions(write('num-ok.csv', 'userId,itemId,rating\nu1,i1,4.5\nu2,i2, 1e1\n'), { format: 'delimited' });
  t.deepEqual(Array.from(ok.ratings ?? []), [4.5, 10]);
});

test('a very long line is read in linear time, and one past the limit is an error naming the line', async (t) => {
  const { forEachLine } = await import('../src/data/readers');
  // One 12 MB line inside a small gzip (750 chunks of 16 KiB to gather).
  const long = 'x'.repeat(12 * 1024 * 1024);
  const file = write('long-line.txt.gz', `first\n${long}\nlast\n`);
  const seen: number[] = [];
  await forEachLine(file, (line) => seen.push(line.length));
  t.deepEqual(seen, [5, long.length, 4]);
  const e = await t.throwsAsync(forEachLine(file, () => undefined, undefined, 1024 * 1024));
  t.regex(e!.message, /long-line\.txt\.gz:2: the line is longer than 1048576 characters/);
});

test('a space-separated table of user item rating rows is not taken for one user per line: the reader asks', async (t) => {
  const triples = write('triples.txt', '1 10 5\n1 11 4\n2 10 3\n3 12 5\n');
  const e = await t.throwsAsync(readInteractions(triples));
  t.regex(e!.message, /triples\.txt: every line holds 3 space-separated numbers: .* cannot be told apart; pass format: 'user-lines' .* format: 'delimited'/);
  // Said explicitly, each line is a user and their items.
  const asLines = await readInteractions(triples, { format: 'user-lines' });
  t.is(asLines.length, 8);
  // Lines of different lengths are one user's items per line, as before.
  const gowalla = await readInteractions(write('lines.txt', '0 1 2 3\n1 2\n2 0 1 2 3 4\n'));
  t.is(gowalla.source.format, 'user-lines');
  t.is(gowalla.length, 3 + 1 + 5);
  // The table with a header, read as delimited by spaces.
  const table = await readInteractions(write('table.txt', 'userId itemId rating\n1 10 5\n1 11 4\n2 10 3\n'), { format: 'delimited', delimiter: ' ' });
  t.deepEqual(rows(table), ['1 10 5', '1 11 4', '2 10 3']);
});

test('seeded fuzz: 300 damaged rating files each read or fail with a coded error naming the file', async (t) => {
  const base = Buffer.from('userId,movieId,rating,timestamp\n' + Array.from({ length: 60 }, (_, i) => `${i % 7},${(i * 13) % 29},${1 + (i % 5)}.0,${1000 + i}`).join('\n') + '\n');
  const random = seededRandom(777);
  let failedBadly = 0;
  for (let i = 0; i < 300; i++) {
    let b = Buffer.from(base);
    const edits = 1 + random(4);
    for (let e = 0; e < edits; e++) {
      const at = random(b.length);
      const kind = random(4);
      if (kind === 0) b[at] ^= 1 << random(8); // a bit flip
      else if (kind === 1) b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1 + random(20))]); // bytes lost
      else if (kind === 2) b = Buffer.concat([b.subarray(0, at), Buffer.from([random(256), random(256)]), b.subarray(at)]); // junk
      else b = b.subarray(0, at); // truncated
    }
    const name = `fuzz-${i}.csv${i % 3 === 0 ? '.gz' : ''}`;
    const file = path.join(dir, name);
    fs.writeFileSync(file, name.endsWith('.gz') ? (i % 2 ? zlib.gzipSync(b) : zlib.gzipSync(b).subarray(0, random(200) + 10)) : b);
    try {
      await readInteractions(file, i % 2 ? {} : { format: 'movielens-csv' });
    } catch (err) {
      const e = err as Error & { code?: string };
      if (!/^ERR_VAECF_/.test(e.code ?? '') || !e.message.includes(name)) {
        failedBadly++;
        t.log(`${name}: ${e.name} ${e.code} ${e.message.slice(0, 200)}`);
      }
    }
  }
  t.is(failedBadly, 0);
});

test('quoted CSV fields (delimiters and doubled quotes inside) are read; plain lines keep the fast path; a quote left open names the line', async (t) => {
  const dir = tempDir();
  const file = path.join(dir, 'quoted.csv');
  fs.writeFileSync(file, [
    '"user","item","rating"',
    'u1,plain item,5',
    '"u2","Toy Story, (1995)",4',
    '"u3","The ""Best"" Film",3',
    'u1,"Toy Story, (1995)",2',
  ].join('\n'));
  const x = await readInteractions(file);
  t.is(x.source.format, 'delimited');
  t.deepEqual(x.userIds, ['u1', 'u2', 'u3']);
  t.deepEqual(x.itemIds, ['plain item', 'Toy Story, (1995)', 'The "Best" Film']);
  t.deepEqual(Array.from(x.itemCodes), [0, 1, 2, 1]);
  t.deepEqual(Array.from(x.ratings!), [5, 4, 3, 2]);
  const broken = path.join(dir, 'broken.csv');
  fs.writeFileSync(broken, 'user,item\nu1,"an open quote\nu2,i2\n');
  const e = await t.throwsAsync(readInteractions(broken));
  t.regex(e!.message, /broken\.csv:2: a quoted field is malformed or continues past the end of the line/);
});

test('columns and the delimiter can be named: --user-col / --item-col / --rating-col / --delimiter', async (t) => {
  const dir = tempDir();
  const file = path.join(dir, 'events.txt');
  fs.writeFileSync(file, 'visitor;product;stars;when\n7;a;5;1\n8;b;1;2\n7;b;4;3\n');
  const { loadOrPrepare } = await import('../src/index');
  const e = await t.throwsAsync(loadOrPrepare(file, { format: 'delimited', delimiter: ';' }, () => undefined));
  t.regex(e!.message, /no user column in the header \(visitor, product, stars, when\); name it with columns\.user/);
  const x = await readInteractions(file, { format: 'delimited', delimiter: ';', columns: { user: 'visitor', item: 'product', rating: 'stars' } });
  t.deepEqual(x.userIds, [7, 8]);
  t.deepEqual(Array.from(x.ratings!), [5, 1, 4]);
  // The same through the command line's data options.
  const { execFile } = await import('node:child_process');
  const { promisify } = await import('node:util');
  const cli = path.join(__dirname, '..', 'src', 'cli', 'main.js');
  const more = path.join(dir, 'more-events.txt');
  fs.writeFileSync(more, `visitor;product;stars;when\n${Array.from({ length: 6 }, (_, u) => `${u};a;5;1\n${u};b;4;2\n`).join('')}`);
  const r = await promisify(execFile)(process.execPath, [cli, 'prepare', more, '--out', path.join(dir, 'prepared'), '--format', 'delimited', '--delimiter', ';',
    '--user-col', 'visitor', '--item-col', 'product', '--rating-col', 'stars', '--threshold', 'none', '--min-user-clicks', '1', '--held-out', '1']);
  t.regex(r.stdout, /read 12 rows \(delimited\)/);
  t.regex(r.stdout, /train 4 users x 2 items/);
});

test('a count column (weight, plays, ...) keeps every count > 0 by default, a rating column keeps rating > 3.5; both can be overridden', async (t) => {
  const { preparePaperProtocol } = await import('../src/index');
  // 12 users, 6 items each: counts 1..6 (Last.fm's user_artists.dat names its play counts "weight").
  const lines = (): string => Array.from({ length: 12 }, (_, u) => Array.from({ length: 6 }, (_, i) => `u${u}\ti${i}\t${i + 1}`).join('\n')).join('\n');
  const counts = await readInteractions(write('user_artists.tsv', `userID\tartistID\tweight\n${lines()}\n`));
  t.is(counts.valueKind, 'count');
  const c = preparePaperProtocol(counts, { heldOutUsers: 2, minUserClicks: 1 });
  t.is(c.protocol.threshold, 0);
  t.is(c.counts.clicks, 72, 'every positive count is a click');
  t.is(c.dropped!['rows with a count at or below 0 (not clicks)'], 0);
  const stars = await readInteractions(write('stars.tsv', `user_id\titem_id\trating\n${lines()}\n`));
  t.is(stars.valueKind, 'rating');
  const s = preparePaperProtocol(stars, { heldOutUsers: 2, minUserClicks: 1 });
  t.is(s.protocol.threshold, 3.5);
  t.is(s.counts.clicks, 36, 'ratings 4, 5 and 6 of each user');
  t.is(s.dropped!['rows with a rating at or below 3.5 (not clicks)'], 36);
  t.is(preparePaperProtocol(counts, { heldOutUsers: 2, minUserClicks: 1, threshold: 2 }).counts.clicks, 48, 'an explicit threshold applies to counts too');
});
