// `fetch` against a local HTTP server serving fixture archives (never the internet): checksum, resume
// after an interrupted download, extraction, and a clear message when the server cannot be reached.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';

import test from 'ava';
import * as yazl from 'yazl';

import { fetchDataset, type DatasetSource } from '../src/index';
import { seededRandom, tempDir } from './helpers';

function makeZip(files: Record<string, string>): Promise<Buffer> {
  return new Promise((resolve) => {
    const zip = new yazl.ZipFile();
    for (const [name, text] of Object.entries(files)) zip.addBuffer(Buffer.from(text), name, { compress: false });
    zip.end();
    const chunks: Buffer[] = [];
    zip.outputStream.on('data', (c: Buffer) => chunks.push(c)).on('end', () => resolve(Buffer.concat(chunks)));
  });
}

async function serve(archive: Buffer, options: { cutFirstAt?: number } = {}): Promise<{ url: string; close: () => void; requests: string[] }> {
  const requests: string[] = [];
  let first = true;
  const server = http.createServer((req, res) => {
    const range = req.headers.range;
    requests.push(range ?? 'full');
    if (range) {
      const start = Number(/bytes=(\d+)-/.exec(range)?.[1] ?? 0);
      res.writeHead(206, { 'Content-Length': archive.length - start, 'Content-Range': `bytes ${start}-${archive.length - 1}/${archive.length}` });
      res.end(archive.subarray(start));
      return;
    }
    res.writeHead(200, { 'Content-Length': archive.length });
    if (first && options.cutFirstAt) {
      first = false;
      res.write(archive.subarray(0, options.cutFirstAt), () => res.destroy());
      return;
    }
    res.end(archive);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return { url: `http://127.0.0.1:${port}/ml-tiny.zip`, close: () => server.close(), requests };
}

const ratings = 'userId,movieId,rating,timestamp\n' + Array.from({ length: 3000 }, (_, i) => `${i % 50},${i % 97},4.0,${1000 + i}`).join('\n') + '\n';

test('downloads, verifies the pinned checksum and extracts', async (t) => {
  const archive = await makeZip({ 'ml-tiny/ratings.csv': ratings, 'ml-tiny/README.txt': 'fixture' });
  const server = await serve(archive);
  const source: DatasetSource = {
    url: server.url, file: 'ml-tiny.zip', checksum: `md5:${createHash('md5').update(archive).digest('hex')}`, extract: 'zip', data: 'ml-tiny/ratings.csv', description: 'fixture',
  };
  const dir = tempDir();
  const progress: number[] = [];
  const r = await fetchDataset('ml-tiny', dir, { sources: { 'ml-tiny': source }, onProgress: (got) => progress.push(got) });
  server.close();
  t.true(r.downloaded);
  t.is(fs.readFileSync(r.data, 'utf8'), ratings);
  t.is(progress[progress.length - 1], archive.length);
  // Already there: no second download.
  const again = await fetchDataset('ml-tiny', dir, { sources: { 'ml-tiny': source } });
  t.false(again.downloaded);
});

test('an interrupted download resumes where it stopped', async (t) => {
  const archive = await makeZip({ 'ml-tiny/ratings.csv': ratings });
  const server = await serve(archive, { cutFirstAt: 20_000 });
  const source: DatasetSource = {
    url: server.url, file: 'ml-tiny.zip', checksum: `sha256:${createHash('sha256').update(archive).digest('hex')}`, extract: 'zip', data: 'ml-tiny/ratings.csv', description: 'fixture',
  };
  const dir = tempDir();
  const e = await t.throwsAsync(fetchDataset('ml-tiny', dir, { sources: { 'ml-tiny': source } }));
  t.regex(e!.message, /interrupted|stopped at/);
  t.true(fs.statSync(path.join(dir, 'ml-tiny.zip.part')).size > 0);
  const r = await fetchDataset('ml-tiny', dir, { sources: { 'ml-tiny': source } });
  server.close();
  t.true(r.resumedFrom > 0, `resumedFrom ${r.resumedFrom}, requests ${JSON.stringify(server.requests)}`);
  t.deepEqual(server.requests, ['full', `bytes=${r.resumedFrom}-`]);
  t.is(fs.readFileSync(r.data, 'utf8'), ratings);
});

test('a corrupt download fails its checksum and is set aside', async (t) => {
  const archive = await makeZip({ 'ml-tiny/ratings.csv': ratings });
  const server = await serve(archive);
  const source: DatasetSource = { url: server.url, file: 'ml-tiny.zip', checksum: 'md5:00000000000000000000000000000000', extract: 'zip', data: 'ml-tiny/ratings.csv', description: 'fixture' };
  const dir = tempDir();
  const e = await t.throwsAsync(fetchDataset('ml-tiny', dir, { sources: { 'ml-tiny': source } }));
  server.close();
  t.regex(e!.message, /does not match the pinned 0000/);
  t.true(fs.existsSync(path.join(dir, 'ml-tiny.zip.part.bad')));
});

test('offline, it says so and how to place the file by hand', async (t) => {
  const source: DatasetSource = { url: 'http://127.0.0.1:9/ml-tiny.zip', file: 'ml-tiny.zip', checksum: null, extract: 'zip', data: 'ml-tiny/ratings.csv', description: 'fixture' };
  const e = await t.throwsAsync(fetchDataset('ml-tiny', tempDir(), { sources: { 'ml-tiny': source } }));
  t.regex(e!.message, /cannot download http:\/\/127\.0\.0\.1:9\/ml-tiny\.zip \(ECONNREFUSED\): offline\? Place ml-tiny\.zip in .* by hand/);
  const e2 = await t.throwsAsync(fetchDataset('ml-2b', tempDir()));
  t.regex(e2!.message, /unknown dataset "ml-2b"; known: ml-100k, ml-1m/);
});

function makeDeflatedZip(files: Record<string, Buffer>): Promise<Buffer> {
  return new Promise((resolve) => {
    const zip = new yazl.ZipFile();
    for (const [name, data] of Object.entries(files)) zip.addBuffer(data, name, { compress: true });
    zip.end();
    const chunks: Buffer[] = [];
    zip.outputStream.on('data', (c: Buffer) => chunks.push(c)).on('end', () => resolve(Buffer.concat(chunks)));
  });
}

test('a zip whose data is corrupt or whose sizes lie is a clear fetch error: no crash, no trusted checksum, set aside', async (t) => {
  const name = 'ml-tiny/ratings.csv';
  const good = await makeDeflatedZip({ [name]: Buffer.from(ratings.repeat(20)) });
  // (1) corrupt compressed data: 400 bytes in the middle of the deflate stream overwritten.
  const corrupt = Buffer.from(good);
  corrupt.fill(0xff, 30 + name.length + 200, 30 + name.length + 600);
  // (2) an understated size: the entry's uncompressed size (local header offset 22, central directory
  // offset 24) written as 100 bytes.
  const understated = Buffer.from(good);
  understated.writeUInt32LE(100, 22);
  const cd = understated.lastIndexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]));
  understated.writeUInt32LE(100, cd + 24);
  for (const [what, archive] of [['corrupt data', corrupt], ['understated size', understated]] as const) {
    const server = await serve(archive);
    const source: DatasetSource = { url: server.url, file: 'ml-tiny.zip', checksum: null, extract: 'zip', data: name, description: 'fixture' };
    const dir = tempDir();
    const e = await t.throwsAsync(fetchDataset('ml-tiny', dir, { sources: { 'ml-tiny': source } }));
    server.close();
    t.regex(e!.message, /ml-tiny\.zip: .*(corrupt|bytes|size)/i, what);
    t.regex(e!.message, /kept as .*ml-tiny\.zip\.bad, run the command again/, what);
    t.false(fs.existsSync(path.join(dir, 'checksums.json')), `${what}: no checksum recorded for a bad archive`);
    t.false(fs.existsSync(path.join(dir, name)), `${what}: nothing extracted`);
    t.false(fs.existsSync(path.join(dir, `${name}.tmp`)), `${what}: no temporary file left`);
  }
});

test('a zip bomb is refused before it is extracted', async (t) => {
  // 64 MiB of zeros deflate to ~64 KiB (1000:1).
  const bomb = await makeDeflatedZip({ 'ml-tiny/ratings.csv': Buffer.alloc(64 * 2 ** 20) });
  t.true(bomb.length < 2 ** 20);
  const server = await serve(bomb);
  const source: DatasetSource = { url: server.url, file: 'ml-tiny.zip', checksum: null, extract: 'zip', data: 'ml-tiny/ratings.csv', description: 'fixture' };
  const dir = tempDir();
  const e = await t.throwsAsync(fetchDataset('ml-tiny', dir, { sources: { 'ml-tiny': source } }));
  server.close();
  t.regex(e!.message, /would extract 67108864 bytes from \d+ \(more than 200:1, maxCompressionRatio\): refused as a likely zip bomb/);
  t.false(fs.existsSync(path.join(dir, 'ml-tiny/ratings.csv')));
  // A total limit too: the same archive with the ratio allowed but 1 MiB in all.
  const server2 = await serve(bomb);
  const e2 = await t.throwsAsync(fetchDataset('ml-tiny', tempDir(), { sources: { 'ml-tiny': { ...source, url: server2.url } }, maxCompressionRatio: 1e9, maxExtractedBytes: 2 ** 20 }));
  server2.close();
  t.regex(e2!.message, /more than 1048576 bytes \(maxExtractedBytes\)/);
});

test('seeded fuzz: 100 damaged zip archives each extract or fail with a coded fetch error, never a crash', async (t) => {
  const good = await makeDeflatedZip({ 'ml-tiny/ratings.csv': Buffer.from(ratings), 'ml-tiny/README.txt': Buffer.from('fixture\n') });
  let current = good;
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { 'Content-Length': current.length });
    res.end(current);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/ml-tiny.zip`;
  const random = seededRandom(4242);
  let failedBadly = 0;
  for (let i = 0; i < 100; i++) {
    const b = Buffer.from(good);
    for (let e = 0; e < 1 + random(3); e++) b[random(b.length)] ^= 1 << random(8);
    current = i % 10 === 9 ? b.subarray(0, random(b.length)) : b;
    const source: DatasetSource = { url, file: 'ml-tiny.zip', checksum: null, extract: 'zip', data: 'ml-tiny/ratings.csv', description: 'fuzz' };
    try {
      await fetchDataset('ml-tiny', tempDir(), { sources: { 'ml-tiny': source } });
    } catch (err) {
      const e = err as Error & { code?: string };
      if (!/^ERR_VAECF_/.test(e.code ?? '') || !e.message.includes('ml-tiny.zip')) {
        failedBadly++;
        t.log(`case ${i}: ${e.name} ${e.code} ${e.message.slice(0, 200)}`);
      }
    }
  }
  server.close();
  t.is(failedBadly, 0);
});
