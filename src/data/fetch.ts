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

async function verify(src: DatasetSource, file: string, dir: string, log: (s: string) => void): Promise<void> {
  const record = path.join(dir, 'checksums.json');
  const recorded: Record<string, string> = fs.existsSync(record) ? JSON.parse(fs.readFileSync(record, 'utf8')) : {};
  const expected = src.checksum ?? recorded[src.file] ?? null;
  if (expected === null) {
    const sha = await hashFile(file, 'sha256');
    recorded[src.file] = `sha256:${sha}`;
    fs.writeFileSync(record, JSON.stringify(recorded, null, 2));
    log(`note: ${src.file} has no pinned checksum; recorded sha256 ${sha} in ${record} for later downloads`);
    return;
  }
  const [algorithm, value] = expected.split(':');
  const actual = await hashFile(file, algorithm);
  if (actual !== value) {
    fs.renameSync(file, `${file}.bad`);
    throw new VaecfInputError(`${file}: ${algorithm} ${actual} does not match the pinned ${value}; the download is corrupt (kept as ${file}.bad); run the command again`);
  }
}

function unzip(archive: string, dir: string): Promise<void> {
  return new Promise((resolve, reject) => {
    yauzl.open(archive, { lazyEntries: true }, (err, zip) => {
      if (err || !zip) return reject(new VaecfInputError(`${archive}: not a readable zip archive (${err?.message})`));
      zip.on('error', reject);
      zip.on('end', () => resolve());
      zip.on('entry', (entry: yauzl.Entry) => {
        const target = path.resolve(dir, entry.fileName);
        if (!target.startsWith(path.resolve(dir) + path.sep)) return reject(new VaecfInputError(`${archive}: unsafe path ${entry.fileName}`));
        if (entry.fileName.endsWith('/')) {
          fs.mkdirSync(target, { recursive: true });
          zip.readEntry();
          return;
        }
        fs.mkdirSync(path.dirname(target), { recursive: true });
        zip.openReadStream(entry, (e, stream) => {
          if (e || !stream) return reject(e);
          const tmp = `${target}.tmp`;
          stream.pipe(fs.createWriteStream(tmp)).on('finish', () => {
            fs.renameSync(tmp, target);
            zip.readEntry();
          }).on('error', reject);
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
  if (!fs.existsSync(archive)) {
    log(`downloading ${src.url}`);
    resumedFrom = await download(src, archive, o);
    if (resumedFrom > 0) log(`resumed from byte ${resumedFrom}`);
    await verify(src, `${archive}.part`, dir, log);
    fs.renameSync(`${archive}.part`, archive);
    downloaded = true;
  } else {
    await verify(src, archive, dir, log);
  }
  if (src.extract === 'zip') {
    log(`extracting ${src.file}`);
    await unzip(archive, dir);
  }
  if (!fs.existsSync(data)) throw new VaecfInputError(`${archive}: the archive does not contain ${src.data}`);
  return { archive, data, downloaded, resumedFrom };
}
