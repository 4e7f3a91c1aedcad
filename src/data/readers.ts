// Streaming readers for the interaction logs people bring: MovieLens (ratings.csv, ratings.dat, u.data),
// Amazon (ratings-only CSV, 5-core review JSON lines), Netflix Prize combined_data_*.txt, Million Song
// Dataset taste-profile triplets, one-line-per-user files (Gowalla, Amazon Beauty) and generic CSV/TSV
// with named columns; gzipped or not. Malformed input fails with file, line and field.
import { isUtf8 } from 'node:buffer';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';

import { VaecfInputError } from './csr';
import { InteractionsBuilder, type Interactions } from './interactions';

export type ReaderFormat =
  | 'movielens-csv'
  | 'movielens-dat'
  | 'movielens-100k'
  | 'amazon-csv'
  | 'amazon-json'
  | 'netflix'
  | 'msd-triplets'
  | 'user-lines'
  | 'delimited';

/** Header names of a delimited file's columns; a column not named is found by its usual names (userId, item, rating, ...). */
export interface DelimitedColumns {
  user?: string;
  item?: string;
  rating?: string;
  timestamp?: string;
}

export interface ReadOptions {
  /** default: detected from the file name and its first line */
  format?: ReaderFormat;
  /** for 'delimited': the separator (default: tab if the header has one, else comma) */
  delimiter?: string;
  /** for 'delimited': header names of the columns (default: guessed from common names) */
  columns?: DelimitedColumns;
  /** called every ~1M rows */
  onProgress?: (rows: number, bytes: number) => void;
}

export class ParseError extends VaecfInputError {
  constructor(file: string, line: number, message: string) {
    super(`${file}:${line}: ${message}`);
    this.name = 'ParseError';
  }
}

const USER_NAMES = ['userid', 'user_id', 'user', 'reviewerid', 'customerid', 'uid'];
const ITEM_NAMES = ['movieid', 'itemid', 'item_id', 'item', 'artistid', 'asin', 'songid', 'song', 'song_id', 'movie_id', 'iid'];
// A value column under one of these names counts events (plays, clicks): every count > 0 is a click.
const COUNT_NAMES = ['weight', 'count', 'play_count', 'playcount', 'plays', 'listen_count', 'listens', 'clicks', 'frequency'];
const RATING_NAMES = ['rating', 'overall', 'score', ...COUNT_NAMES];
const TIME_NAMES = ['timestamp', 'time', 'unixreviewtime', 'date', 'ts'];

/**
 * Guess the format from the file name and its first line; `sample` (the first lines of the file) lets
 * it refuse what it cannot tell apart: a file whose every line holds the same number (three or more)
 * of space-separated numbers is a table of `user item rating` rows as much as one user's items per
 * line, so it asks for the format instead of guessing.
 */
// The fields of one delimited line. Plain lines are split directly (the fast path); a line with a double
// quote is parsed by csv-parse (RFC 4180: quoted fields may hold the delimiter and doubled quotes). A
// quoted field cannot span lines here: that is an error naming the line.
let parseCsvLine: ((line: string, delimiter: string) => string[]) | undefined;
function fieldsOf(file: string, lineNo: number, line: string, delimiter: string): string[] {
  if (!line.includes('"')) return line.split(delimiter);
  if (!parseCsvLine) {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const { parse } = require('csv-parse/sync') as typeof import('csv-parse/sync');
    parseCsvLine = (l, d) => (parse(l, { delimiter: d, relax_column_count: true }) as string[][])[0] ?? [];
  }
  try {
    return parseCsvLine(line, delimiter);
  } catch (e) {
    const why = (e as Error).message.replace(/^Invalid Opening Quote: /, '').replace(/,? at line \d+.*$/s, '');
    throw new ParseError(file, lineNo, `a quoted field is malformed or continues past the end of the line (${why})`);
  }
}

export function detectFormat(file: string, firstLine: string, sample: string[] = []): ReaderFormat {
  const base = path.basename(file).replace(/\.gz$/, '').toLowerCase();
  if (base === 'u.data') return 'movielens-100k';
  if (/^combined_data_\d+\.txt$/.test(base)) return 'netflix';
  if (base.endsWith('.json') || base.endsWith('.jsonl')) return 'amazon-json';
  if (firstLine.includes('::')) return 'movielens-dat';
  if (base.includes('triplets')) return 'msd-triplets';
  if (base === 'ratings.csv' && /^userId,movieId/.test(firstLine)) return 'movielens-csv';
  if (/^[^,\t ]+( [^, \t]+)+$/.test(firstLine.trim()) || /^\d+$/.test(firstLine.trim())) {
    const lines = sample.map((l) => l.trim()).filter((l) => l.length > 0);
    const widths = new Set(lines.map((l) => l.split(/ +/).length));
    const numeric = lines.every((l) => l.split(/ +/).every((f) => DECIMAL.test(f)));
    if (lines.length >= 2 && widths.size === 1 && [...widths][0] >= 3 && numeric)
      throw new VaecfInputError(
        `${file}: every line holds ${[...widths][0]} space-separated numbers: that is a table (user item rating ...) as much as one user's items per line, and the two cannot be told apart; ` +
          "pass format: 'user-lines' if each line is a user followed by their items, else give the table a header (userId itemId rating) and pass format: 'delimited' with delimiter ' '",
      );
    return 'user-lines';
  }
  if (/[A-Za-z]/.test(firstLine) && (firstLine.includes('\t') || firstLine.includes(','))) {
    const cells = firstLine.split(firstLine.includes('\t') ? '\t' : ',').map((c) => c.trim().replace(/^"(.*)"$/, '$1').toLowerCase());
    if (cells.some((c) => USER_NAMES.includes(c))) return 'delimited';
  }
  if (firstLine.split(',').length === 4) return 'amazon-csv';
  throw new VaecfInputError(
    `${file}: cannot tell the format from its name and first line ("${firstLine.slice(0, 80)}"); pass format: one of movielens-csv, movielens-dat, movielens-100k, amazon-csv, amazon-json, netflix, msd-triplets, user-lines, delimited`,
  );
}

// Whether b is valid UTF-8 up to a character cut off at its end (a chunk may end inside one).
function isUtf8Prefix(b: Buffer): boolean {
  for (let cut = 1; cut <= 3 && cut <= b.length; cut++) if (isUtf8(b.subarray(0, b.length - cut))) return true;
  return false;
}

/** The longest line the readers accept, in characters (a longer one is an error, not an endless read). */
export const MAX_LINE_LENGTH = 64 * 1024 * 1024;

/**
 * Calls onLine for every line (without the newline) of a plain or gzipped UTF-8 text file. Linear in
 * the file's size whatever its line lengths: a line spread over many chunks is gathered once. Text is
 * decoded as a stream, so a character split between two chunks stays whole; bytes that are not UTF-8
 * are refused with the file and line (an id read with replacement characters would merge distinct ids).
 */
export async function forEachLine(
  file: string,
  onLine: (line: string, lineNo: number) => void,
  onProgress?: (lines: number, bytes: number) => void,
  maxLineLength: number = MAX_LINE_LENGTH,
): Promise<number> {
  let input: NodeJS.ReadableStream = fs.createReadStream(file, { highWaterMark: 1 << 22 });
  let bytes = 0;
  (input as fs.ReadStream).on('data', (c: Buffer | string) => (bytes += c.length));
  if (file.endsWith('.gz')) input = input.pipe(zlib.createGunzip());
  const decoder = new TextDecoder('utf-8', { fatal: true });
  let pending: string[] = [];
  let pendingLength = 0;
  let lineNo = 0;
  let nextReport = 1 << 20;
  const decode = (chunk?: Buffer): string => {
    try {
      return chunk ? decoder.decode(chunk, { stream: true }) : decoder.decode();
    } catch {
      // The line of the first invalid byte: the chunk's lines that are not UTF-8 on their own (the first
      // may begin with the rest of a character from the previous chunk).
      let bad = lineNo + 1;
      if (chunk) {
        let start = 0;
        for (let line = 0; ; line++) {
          const nl = chunk.indexOf(0x0a, start);
          let segment = chunk.subarray(start, nl < 0 ? chunk.length : nl);
          if (line === 0) while (segment.length && (segment[0] & 0xc0) === 0x80) segment = segment.subarray(1);
          if (!isUtf8(segment) && (nl >= 0 || !isUtf8Prefix(segment))) {
            bad = lineNo + 1 + line;
            break;
          }
          if (nl < 0) break;
          start = nl + 1;
        }
      }
      throw new ParseError(file, bad, 'the bytes are not valid UTF-8 (save the file as UTF-8; ids are compared as text)');
    }
  };
  const tooLong = (): ParseError =>
    new ParseError(file, lineNo + 1, `the line is longer than ${maxLineLength} characters (is this a text file with one record per line?)`);
  const emit = (line: string): void => {
    lineNo++;
    onLine(line.endsWith('\r') ? line.slice(0, -1) : line, lineNo);
  };
  try {
    for await (const chunk of input as AsyncIterable<Buffer>) {
      const text = decode(chunk);
      let start = 0;
      let nl = text.indexOf('\n');
      while (nl >= 0) {
        if (pending.length) {
          if (pendingLength + nl - start > maxLineLength) throw tooLong();
          pending.push(text.slice(start, nl));
          emit(pending.join(''));
          pending = [];
          pendingLength = 0;
        } else {
          if (nl - start > maxLineLength) throw tooLong();
          emit(text.slice(start, nl));
        }
        start = nl + 1;
        nl = text.indexOf('\n', start);
      }
      if (start < text.length) {
        pending.push(text.slice(start));
        pendingLength += text.length - start;
        if (pendingLength > maxLineLength) throw tooLong();
      }
      if (onProgress && lineNo >= nextReport) {
        onProgress(lineNo, bytes);
        nextReport = lineNo + (1 << 20);
      }
    }
    const last = decode();
    if (last) {
      pending.push(last);
      pendingLength += last.length;
    }
  } catch (err) {
    (input as unknown as { destroy?: () => void }).destroy?.();
    if (err instanceof VaecfInputError) throw err;
    throw new VaecfInputError(`${file}: cannot read (${(err as Error).message})`);
  }
  if (pendingLength > 0) emit(pending.join(''));
  onProgress?.(lineNo, bytes);
  return lineNo;
}

// Up to the first 200 lines within the first 64 KiB, for format detection (a line cut at 64 KiB is kept
// only when it is the first).
async function firstLinesOf(file: string): Promise<string[]> {
  let text = '';
  const stream = fs.createReadStream(file, { start: 0, end: 1 << 16 });
  const input = file.endsWith('.gz') ? stream.pipe(zlib.createGunzip()) : stream;
  const decoder = new TextDecoder('utf-8');
  try {
    for await (const chunk of input as AsyncIterable<Buffer>) {
      text += decoder.decode(chunk, { stream: true });
      if (text.length >= 1 << 16) break;
    }
  } catch {
    /* a truncated gzip head still gives its first lines */
  } finally {
    stream.destroy();
  }
  const lines = text.split('\n');
  if (lines.length > 1 && !text.endsWith('\n')) lines.pop(); // cut by the 64 KiB window
  lines.length = Math.min(lines.length, 200);
  return lines.map((l) => l.replace(/\r$/, ''));
}

// A decimal number: digits with an optional sign, fraction and exponent. Number() alone would also take
// "0x10" as 16, "0b1" as 1 and " " as 0.
const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

function num(file: string, lineNo: number, field: string, text: string | undefined): number {
  const t = text?.trim();
  if (t === undefined || t === '') throw new ParseError(file, lineNo, `field "${field}" is missing`);
  const v = DECIMAL.test(t) ? Number(t) : NaN;
  if (!Number.isFinite(v)) throw new ParseError(file, lineNo, `field "${field}": expected a decimal number, got "${t.slice(0, 40)}"`);
  return v;
}

/** Read an interaction log into rows in file order. */
export async function readInteractions(file: string, options: ReadOptions = {}): Promise<Interactions> {
  if (!fs.existsSync(file)) throw new VaecfInputError(`${file}: no such file`);
  const head = await firstLinesOf(file);
  const first = head[0] ?? '';
  const format = options.format ?? detectFormat(file, first, head);
  const b = new InteractionsBuilder();
  const U = b.users;
  const I = b.items;
  let onLine: (line: string, lineNo: number) => void;
  const fixed = (sep: string, hasRating: boolean, hasTime: boolean, fieldNames: string[]): void => {
    b.hasRatings = hasRating;
    b.hasTimestamps = hasTime;
    onLine = (line, lineNo) => {
      if (line.length === 0) return;
      const f = sep === ',' ? fieldsOf(file, lineNo, line, sep) : line.split(sep);
      if (f.length < 2 + Number(hasRating) + Number(hasTime))
        throw new ParseError(file, lineNo, `expected ${fieldNames.join(sep === '\t' ? '<TAB>' : sep)}, got "${line.slice(0, 80)}"`);
      if (f[0] === '' || f[1] === '') throw new ParseError(file, lineNo, `field "${f[0] === '' ? fieldNames[0] : fieldNames[1]}" is empty`);
      b.add(
        U.internText(f[0]),
        I.internText(f[1]),
        hasRating ? num(file, lineNo, fieldNames[2], f[2]) : 1,
        hasTime ? num(file, lineNo, fieldNames[3], f[3]) : 0,
      );
    };
  };
  switch (format) {
    case 'movielens-dat':
      fixed('::', true, true, ['UserID', 'MovieID', 'Rating', 'Timestamp']);
      break;
    case 'movielens-100k':
      fixed('\t', true, true, ['user id', 'item id', 'rating', 'timestamp']);
      break;
    case 'amazon-csv':
      fixed(',', true, true, ['user', 'item', 'rating', 'timestamp']);
      break;
    case 'msd-triplets':
      fixed('\t', true, false, ['user', 'song', 'play count']);
      break;
    case 'movielens-csv':
    case 'delimited': {
      const delimiter = options.delimiter ?? (format === 'movielens-csv' ? ',' : first.includes('\t') ? '\t' : ',');
      const header = fieldsOf(file, 1, first, delimiter).map((h) => h.trim());
      const lower = header.map((h) => h.toLowerCase());
      const find = (wanted: string | undefined, names: string[], what: string, required: boolean): number => {
        if (wanted !== undefined) {
          const i = header.indexOf(wanted);
          if (i < 0) throw new VaecfInputError(`${file}:1: no column "${wanted}" for the ${what} in the header (${header.join(', ')})`);
          return i;
        }
        const i = lower.findIndex((h) => names.includes(h));
        if (i < 0 && required)
          throw new VaecfInputError(`${file}:1: no ${what} column in the header (${header.join(', ')}); name it with columns.${what}`);
        return i;
      };
      const cu = find(options.columns?.user, USER_NAMES, 'user', true);
      const ci = find(options.columns?.item, ITEM_NAMES, 'item', true);
      const cr = find(options.columns?.rating, RATING_NAMES, 'rating', false);
      const ct = find(options.columns?.timestamp, TIME_NAMES, 'timestamp', false);
      b.hasRatings = cr >= 0;
      b.valueKind = cr >= 0 && COUNT_NAMES.includes(lower[cr]) ? 'count' : 'rating';
      b.hasTimestamps = ct >= 0;
      const need = Math.max(cu, ci, cr, ct) + 1;
      onLine = (line, lineNo) => {
        if (lineNo === 1 || line.length === 0) return;
        const f = fieldsOf(file, lineNo, line, delimiter);
        if (f.length < need) throw new ParseError(file, lineNo, `expected ${header.length} fields (${header.join(', ')}), got ${f.length}`);
        if (f[cu] === '') throw new ParseError(file, lineNo, `field "${header[cu]}" is empty`);
        if (f[ci] === '') throw new ParseError(file, lineNo, `field "${header[ci]}" is empty`);
        b.add(
          U.internText(f[cu]),
          I.internText(f[ci]),
          cr >= 0 ? num(file, lineNo, header[cr], f[cr]) : 1,
          ct >= 0 ? timestampOf(file, lineNo, header[ct], f[ct]) : 0,
        );
      };
      break;
    }
    case 'amazon-json':
      b.hasRatings = true;
      b.hasTimestamps = true;
      onLine = (line, lineNo) => {
        if (line.trim().length === 0) return;
        let r: Record<string, unknown>;
        try {
          r = JSON.parse(line);
        } catch {
          throw new ParseError(file, lineNo, 'not a JSON object');
        }
        if (typeof r.reviewerID !== 'string') throw new ParseError(file, lineNo, 'field "reviewerID": expected a string');
        if (typeof r.asin !== 'string') throw new ParseError(file, lineNo, 'field "asin": expected a string');
        const overall = typeof r.overall === 'number' ? r.overall : Number(r.overall);
        if (!Number.isFinite(overall)) throw new ParseError(file, lineNo, 'field "overall": expected a number');
        const t = Number(r.unixReviewTime ?? 0);
        b.add(U.internText(r.reviewerID), I.internText(r.asin), overall, Number.isFinite(t) ? t : 0);
      };
      break;
    case 'netflix': {
      b.hasRatings = true;
      b.hasTimestamps = true;
      let movie = -1;
      onLine = (line, lineNo) => {
        if (line.length === 0) return;
        if (line.endsWith(':')) {
          const id = line.slice(0, -1);
          if (!/^\d+$/.test(id)) throw new ParseError(file, lineNo, `expected "MovieID:", got "${line.slice(0, 40)}"`);
          movie = I.internNumber(Number(id));
          return;
        }
        if (movie < 0) throw new ParseError(file, lineNo, 'a rating line before the first "MovieID:" line');
        const f = line.split(',');
        if (f.length !== 3) throw new ParseError(file, lineNo, `expected CustomerID,Rating,Date, got "${line.slice(0, 80)}"`);
        const date = Date.parse(f[2]);
        if (!Number.isFinite(date)) throw new ParseError(file, lineNo, `field "Date": expected YYYY-MM-DD, got "${f[2]}"`);
        b.add(U.internText(f[0]), movie, num(file, lineNo, 'Rating', f[1]), date / 1000);
      };
      break;
    }
    case 'user-lines':
      b.hasRatings = false;
      b.hasTimestamps = false;
      onLine = (line, lineNo) => {
        const f = line.trim().split(/\s+/);
        if (f.length === 0 || f[0] === '') return;
        const u = U.internText(f[0]);
        for (let k = 1; k < f.length; k++) b.add(u, I.internText(f[k]), 1, 0);
        if (f.length === 1) b.add(u, -1, 1, 0); // a user with no items: kept as a marker, dropped by prepare
        void lineNo;
      };
      break;
    default:
      throw new VaecfInputError(`format: unknown reader format ${JSON.stringify(format)}`);
  }
  await forEachLine(file, (l, n) => onLine(l, n), options.onProgress);
  const result = b.build(file, format);
  if (format === 'user-lines') return dropMarkers(result);
  return result;
}

function timestampOf(file: string, lineNo: number, field: string, text: string | undefined): number {
  if (text !== undefined && /^\d{4}-\d{2}-\d{2}/.test(text)) {
    const t = Date.parse(text);
    if (Number.isFinite(t)) return t / 1000;
  }
  return num(file, lineNo, field, text);
}

function dropMarkers(x: Interactions): Interactions {
  let n = 0;
  for (let k = 0; k < x.length; k++) if (x.itemCodes[k] >= 0) n++;
  if (n === x.length) return x;
  const u = new Int32Array(n);
  const i = new Int32Array(n);
  let at = 0;
  for (let k = 0; k < x.length; k++)
    if (x.itemCodes[k] >= 0) {
      u[at] = x.userCodes[k];
      i[at++] = x.itemCodes[k];
    }
  return { ...x, length: n, userCodes: u, itemCodes: i };
}
