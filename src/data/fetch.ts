// Downloads of the official dataset archives: pinned checksums, resume of an interrupted download
// (HTTP Range on DIR/FILE.part), progress, and extraction of zip archives. Offline it fails with a
// message that says how to place the file by hand.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as path from 'node:path';

import * as yauzl from 'yauzl';

import { VaecfInputError } from './csr';

export interface DatasetSource {
  url: string;
  /** file name in the download folder */
  file: string;
  /** pinned checksum of the archive ('md5:...' as GroupLens publishes, or 'sha256:...'); null: recorded on first download */
  checksum: string | null;
  extract: 'zip' | 'none';
  /** the file to read after extraction, relative to the download folder */
  data: string;
  description: string;
}

// GroupLens publishes an .md5 file beside each archive; these are those values.
export const DATASETS: Record<string, DatasetSource> = {
  'ml-100k': { url: 'https://files.grouplens.org/datasets/movielens/ml-100k.zip', file: 'ml-100k.zip', checksum: 'md5:0e33842e24a9c977be4e0107933c0723', extract: 'zip', data: 'ml-100k/u.data', description: 'MovieLens 100K' },
  'ml-1m': { url: 'https://files.grouplens.org/datasets/movielens/ml-1m.zip', file: 'ml-1m.zip', checksum: 'md5:c4d9eecfca2ab87c1945afe126590906', extract: 'zip', data: 'ml-1m/ratings.dat', description: 'MovieLens 1M' },
  'ml-10m': { url: 'https://files.grouplens.org/datasets/movielens/ml-10m.zip', file: 'ml-10m.zip', checksum: 'md5:ce571fd55effeba0271552578f2648bd', extract: 'zip', data: 'ml-10M100K/ratings.dat', description: 'MovieLens 10M' },
  'ml-20m': { url: 'https://files.grouplens.org/datasets/movielens/ml-20m.zip', file: 'ml-20m.zip', checksum: 'md5:cd245b17a1ae2cc31bb14903e1204af3', extract: 'zip', data: 'ml-20m/ratings.csv', description: 'MovieLens 20M (the paper)' },
  'ml-25m': { url: 'https://files.grouplens.org/datasets/movielens/ml-25m.zip', file: 'ml-25m.zip', checksum: 'md5:6b51fb2759a8657d3bfcbfc42b592ada', extract: 'zip', data: 'ml-25m/ratings.csv', description: 'MovieLens 25M' },
  'ml-latest-small': { url: 'https://files.grouplens.org/datasets/movielens/ml-latest-small.zip', file: 'ml-latest-small.zip', checksum: null, extract: 'zip', data: 'ml-latest-small/ratings.csv', description: 'MovieLens latest-small (changes with each release: checksum recorded on first download)' },
  'amazon-movies-tv-2014': { url: 'http://snap.stanford.edu/data/amazon/productGraph/categoryFiles/reviews_Movies_and_TV_5.json.gz', file: 'reviews_Movies_and_TV_5.json.gz', checksum: null, extract: 'none', data: 'reviews_Movies_and_TV_5.json.gz', description: 'Amazon Movies & TV 5-core reviews, 2014 (RecoTour)' },
  'amazon-movies-tv-2018': { url: 'https://jmcauley.ucsd.edu/data/amazon_v2/categoryFilesSmall/Movies_and_TV_5.json.gz', file: 'Movies_and_TV_5.json.gz', checksum: null, extract: 'none', data: 'Movies_and_TV_5.json.gz', description: 'Amazon Movies & TV 5-core reviews, 2018' },
};

export interface FetchOptions {
  /** override or extend the list of datasets (tests point it at a local server) */
  sources?: Record<string, DatasetSource>;
  onProgress?: (received: number, total: number | null) => void;
  log?: (s: string) => void;
  /** the most bytes an archive may extract to, in all (default 32 GiB) */
  maxExtractedBytes?: number;
  /** the largest ratio of an entry's extracted to compressed size (default 200; text compresses ~5-10x) */
  maxCompressionRatio?: number;
}

export interface FetchResult {
  archive: string;
  data: string;
  downloaded: boolean;
  resumedFrom: number;
}

function hashFile(file: string, algorithm: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash(algorithm);
    fs.createReadStream(file)
      .on('data', (c) => h.update(c))
      .on('error', reject)
      .on('end', () => resolve(h.digest('hex')));
  });
}

/** GET with an optional byte offset; follows redirects. */
function request(url: string, offset: number, redirects = 5): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    const lib = url.startsWith('https:') ? https : http;
    const req = lib.get(url, { headers: offset > 0 ? { Range: `bytes=${offset}-` } : {} }, (res) => {
      const status = res.statusCode ?? 0;
      if (status >= 300 && status < 400 && res.headers.location && redirects > 0) {
        res.resume();
        resolve(request(new URL(res.headers.location, url).toString(), offset, redirects - 1));
        return;
      }
      resolve(res);
    });
    req.on('error', reject);
    req.setTimeout(60_000, () => req.destroy(new Error('no data for 60 s')));
  });
}

async function download(src: DatasetSource, target: string, o: FetchOptions): Promise<number> {
  const part = `${target}.part`;
  const have = fs.existsSync(part) ? fs.statSync(part).size : 0;
  let res: http.IncomingMessage;
  try {
    res = await request(src.url, have);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new VaecfInputError(
      `cannot download ${src.url} (${e.code ?? e.message}): offline? Place ${src.file} in ${path.dirname(target)} by hand and run the command again`,
    );
  }
  const status = res.statusCode ?? 0;
  let resumedFrom = 0;
  let flags = 'w';
  if (status === 206 && have > 0) {
    resumedFrom = have;
    flags = 'a';
  } else if (status === 416 && have > 0) {
    res.resume();
    return have; // the part file is already complete
  } else if (status !== 200) {
    res.resume();
    throw new VaecfInputError(`cannot download ${src.url}: the server answered HTTP ${status}`);
  }
  const length = Number(res.headers['content-length'] ?? NaN);
  const total = Number.isFinite(length) ? length + resumedFrom : null;
  let received = resumedFrom;
  const out = fs.createWriteStream(part, { flags });
  await new Promise<void>((resolve, reject) => {
    res.on('data', (c: Buffer) => {
      received += c.length;
      o.onProgress?.(received, total);
    });
    res.on('error', reject);
    res.on('aborted', () => reject(new Error('the connection was closed')));
    out.on('error', reject);
    out.on('finish', () => resolve());
    res.pipe(out);
  }).catch(async (err: Error) => {
    // Keep every byte that arrived: flush the part file, then report (the next run resumes from its size).
    res.unpipe(out);
    await new Promise<void>((resolve) => {
      out.once('close', () => resolve());
      out.end();
    });
    throw new VaecfInputError(`the download of ${src.url} was interrupted at ${received} bytes (${err.message}); run the command again to resume`);
  });
  if (total !== null && received < total)
    throw new VaecfInputError(`the download of ${src.url} stopped at ${received} of ${total} bytes; run the command again to resume`);
  return resumedFrom;
}

// Checks the archive against its pinned checksum, or the one recorded at its first download. Returns
// what to record when there was none: the caller records it only once the archive has extracted
// cleanly (a corrupt archive must never become the trusted reference).
async function verify(src: DatasetSource, file: string, dir: string): Promise<{ record: string; sha: string } | null> {
  const record = path.join(dir, 'checksums.json');
  const recorded: Record<string, string> = fs.existsSync(record) ? JSON.parse(fs.readFileSync(record, 'utf8')) : {};
  const expected = src.checksum ?? recorded[src.file] ?? null;
  if (expected === null) return { record, sha: await hashFile(file, 'sha256') };
  const [algorithm, value] = expected.split(':');
  const actual = await hashFile(file, algorithm);
  if (actual !== value) {
    fs.renameSync(file, `${file}.bad`);
    throw new VaecfInputError(`${file}: ${algorithm} ${actual} does not match the pinned ${value}; the download is corrupt (kept as ${file}.bad); run the command again`);
  }
  return null;
}

function recordChecksum(src: DatasetSource, pending: { record: string; sha: string }, log: (s: string) => void): void {
  const recorded: Record<string, string> = fs.existsSync(pending.record) ? JSON.parse(fs.readFileSync(pending.record, 'utf8')) : {};
  recorded[src.file] = `sha256:${pending.sha}`;
  fs.writeFileSync(pending.record, JSON.stringify(recorded, null, 2));
  log(`note: ${src.file} has no pinned checksum; recorded sha256 ${pending.sha} in ${pending.record} for later downloads`);
}

// Extracts every entry, refusing unsafe paths and archives that would extract to more than the limits
// allow (checked on the sizes the archive declares, before writing; yauzl checks that each entry's
// actual size matches its declaration). Any error of the archive or of an entry's data rejects with a
// VaecfInputError naming the archive and entry; nothing is left half-written.
function unzip(archive: string, dir: string, limits: { maxBytes: number; maxRatio: number }): Promise<void> {
  return new Promise((resolve, reject) => {
    yauzl.open(archive, { lazyEntries: true, validateEntrySizes: true }, (err, zip) => {
      if (err || !zip) return reject(new VaecfInputError(`${archive}: not a readable zip archive (${err?.message})`));
      let settled = false;
      let extracted = 0;
      const fail = (message: string): void => {
        if (settled) return;
        settled = true;
        zip.close();
        reject(new VaecfInputError(`${archive}: ${message}`));
      };
      zip.on('error', (e: Error) => fail(`the archive is corrupt (${e.message})`));
      zip.on('end', () => {
        if (!settled) {
          settled = true;
          resolve();
        }
      });
      zip.on('entry', (entry: yauzl.Entry) => {
        if (settled) return;
        const target = path.resolve(dir, entry.fileName);
        if (!target.startsWith(path.resolve(dir) + path.sep)) return fail(`unsafe path ${entry.fileName}`);
        if (entry.fileName.endsWith('/')) {
          fs.mkdirSync(target, { recursive: true });
          zip.readEntry();
          return;
        }
        extracted += entry.uncompressedSize;
        if (extracted > limits.maxBytes)
          return fail(`extracting it would write more than ${limits.maxBytes} bytes (maxExtractedBytes); is it the right file?`);
        if (entry.uncompressedSize > (1 << 20) && entry.uncompressedSize > limits.maxRatio * Math.max(1, entry.compressedSize))
          return fail(`${entry.fileName} would extract ${entry.uncompressedSize} bytes from ${entry.compressedSize} (more than ${limits.maxRatio}:1, maxCompressionRatio): refused as a likely zip bomb`);
        fs.mkdirSync(path.dirname(target), { recursive: true });
        zip.openReadStream(entry, (e, stream) => {
          if (e || !stream) return fail(`cannot read ${entry.fileName} (${e?.message})`);
          const tmp = `${target}.tmp`;
          const out = fs.createWriteStream(tmp);
          const abandon = (why: string): void => {
            stream.unpipe(out);
            out.destroy();
            fs.rmSync(tmp, { force: true });
            fail(why);
          };
          // An entry whose data is corrupt or shorter / longer than declared errors on its own stream.
          stream.on('error', (se: Error) => abandon(`${entry.fileName} is corrupt (${se.message})`));
          out.on('error', (oe: Error) => abandon(`cannot write ${tmp} (${oe.message})`));
          out.on('finish', () => {
            if (settled) return;
            fs.renameSync(tmp, target);
            zip.readEntry();
          });
          stream.pipe(out);
        });
      });
      zip.readEntry();
    });
  });
}

/** Download (or resume), verify and extract a dataset into `dir`; returns the file to read. */
export async function fetchDataset(name: string, dir: string, o: FetchOptions = {}): Promise<FetchResult> {
  const sources = { ...DATASETS, ...o.sources };
  const src = sources[name];
  if (!src) throw new VaecfInputError(`unknown dataset "${name}"; known: ${Object.keys(sources).join(', ')}`);
  const log = o.log ?? (() => undefined);
  fs.mkdirSync(dir, { recursive: true });
  const archive = path.join(dir, src.file);
  const data = path.join(dir, src.data);
  if (fs.existsSync(data) && fs.existsSync(archive)) return { archive, data, downloaded: false, resumedFrom: 0 };
  let downloaded = false;
  let resumedFrom = 0;
  let pendingChecksum: { record: string; sha: string } | null = null;
  if (!fs.existsSync(archive)) {
    log(`downloading ${src.url}`);
    resumedFrom = await download(src, archive, o);
    if (resumedFrom > 0) log(`resumed from byte ${resumedFrom}`);
    pendingChecksum = await verify(src, `${archive}.part`, dir);
    fs.renameSync(`${archive}.part`, archive);
    downloaded = true;
  } else {
    pendingChecksum = await verify(src, archive, dir);
  }
  if (src.extract === 'zip') {
    log(`extracting ${src.file}`);
    try {
      await unzip(archive, dir, { maxBytes: o.maxExtractedBytes ?? 32 * 2 ** 30, maxRatio: o.maxCompressionRatio ?? 200 });
    } catch (err) {
      // Set the archive aside so that the next run downloads it again rather than trusting it.
      fs.renameSync(archive, `${archive}.bad`);
      throw new VaecfInputError(`${(err as Error).message}; kept as ${archive}.bad, run the command again to download it anew`);
    }
  }
  if (pendingChecksum) recordChecksum(src, pendingChecksum, log);
  if (!fs.existsSync(data)) throw new VaecfInputError(`${archive}: the archive does not contain ${src.data}`);
  return { archive, data, downloaded, resumedFrom };
}
