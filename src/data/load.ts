// Reading a dataset: a prepared dataset folder as is, or a raw file prepared with the paper's protocol
// (or a given train/test split).
import * as fs from 'node:fs';
import { performance } from 'node:perf_hooks';

import { ProgressLine } from '../util/progress';
import { VaecfInputError } from './csr';
import { isDatasetDir, loadDataset } from './dataset-file';
import { prepareGivenSplit, preparePaperProtocol, type PreparedDataset } from './prepare';
import { readInteractions, type DelimitedColumns, type ReaderFormat } from './readers';

export interface DataOptions {
  format?: string;
  test?: string;
  heldOut?: number;
  validationUsers?: number;
  threshold?: string;
  minUserClicks?: number;
  minItemClicks?: number;
  seed?: number;
  /** the header names of the columns of a delimited file (default: recognised names such as userId, item, rating) */
  columns?: DelimitedColumns;
  /** the delimiter of a delimited file (default: a tab when the header has one, else a comma) */
  delimiter?: string;
}

export async function loadOrPrepare(source: string, o: DataOptions, log: (s: string) => void): Promise<PreparedDataset> {
  if (!fs.existsSync(source)) throw new VaecfInputError(`${source}: no such file or folder`);
  if (isDatasetDir(source)) {
    const t = performance.now();
    const d = loadDataset(source);
    log(`loaded the prepared dataset ${source} in ${(performance.now() - t).toFixed(0)} ms`);
    return d;
  }
  const bar = new ProgressLine();
  const read = async (file: string) => {
    const t = performance.now();
    const x = await readInteractions(file, {
      format: o.format as ReaderFormat | undefined,
      ...(o.columns ? { columns: o.columns } : {}),
      ...(o.delimiter ? { delimiter: o.delimiter } : {}),
      onProgress: (rows, bytes) => bar.update(`reading ${file}`, rows, 0, `lines, ${(bytes / 1e6).toFixed(0)} MB`),
    });
    bar.clear();
    log(`read ${x.length} rows (${x.source.format}) from ${file} in ${((performance.now() - t) / 1000).toFixed(1)} s`);
    return x;
  };
  if (o.test) {
    const train = await read(source);
    const test = await read(o.test);
    return prepareGivenSplit(train, test, { validationUsers: o.validationUsers, seed: o.seed });
  }
  const x = await read(source);
  const threshold = o.threshold === undefined ? undefined : o.threshold === 'none' ? null : Number(o.threshold);
  if (threshold !== undefined && threshold !== null && !Number.isFinite(threshold))
    throw new VaecfInputError(`--threshold: expected a number or "none", got "${o.threshold}"`);
  const users = x.userIds.length;
  return preparePaperProtocol(x, {
    heldOutUsers: o.heldOut ?? Math.min(10_000, Math.max(1, Math.round(0.1 * users))),
    threshold,
    minUserClicks: o.minUserClicks,
    minItemClicks: o.minItemClicks,
    seed: o.seed,
  });
}

export function describe(d: PreparedDataset): string {
  const c = d.counts;
  const dropped = Object.entries(d.dropped ?? {}).filter(([, n]) => n > 0).map(([why, n]) => `\n  left out: ${n} ${why}`).join('');
  return `${c.clicks} clicks, ${c.users} users, ${c.items} items; train ${c.trainUsers} users x ${c.trainItems} items ` +
    `(${c.trainClicks} clicks), ${c.validationUsers} validation and ${c.testUsers} test users (${d.protocol.name})${dropped}`;
}
