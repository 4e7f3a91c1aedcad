// A prepared dataset on disk, written once: DIR/data.bin (the CSR arrays, little-endian int32 / float32,
// back to back) and DIR/manifest.json (protocol, seed, counts, id maps, where every array lies in
// data.bin, and checksums). The folder is written under a temporary name and renamed, so a reader never
// sees half a dataset; loading checks sizes and the SHA-256 of data.bin.
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { type CsrMatrix, VaecfInputError } from './csr';
import type { HeldOutUsers, PreparedDataset } from './prepare';
import { removeStaleTemps } from '../io/stale-temps';

const FORMAT = 'vaecf-dataset';
const VERSION = 1;

interface Section {
  name: string;
  dtype: 'i32' | 'f32';
  offset: number;
  length: number;
}

export interface DatasetManifest {
  format: string;
  formatVersion: number;
  createdAt: string;
  source?: unknown;
  protocol: PreparedDataset['protocol'] | Record<string, unknown>;
  counts: PreparedDataset['counts'] | Record<string, number>;
  dataSha256: string;
  dataBytes: number;
  sections: Section[];
  matrices: Record<string, { rows: number; cols: number; hasValues: boolean }>;
  itemIds: Array<string | number>;
  trainUserIds: Array<string | number>;
  validationUserIds: Array<string | number>;
  testUserIds: Array<string | number>;
}

const MATRICES = ['train', 'validation.foldIn', 'validation.targets', 'test.foldIn', 'test.targets'] as const;

function matrixOf(d: PreparedDataset, name: (typeof MATRICES)[number]): CsrMatrix {
  switch (name) {
    case 'train':
      return d.train;
    case 'validation.foldIn':
      return d.validation.foldIn;
    case 'validation.targets':
      return d.validation.targets;
    case 'test.foldIn':
      return d.test.foldIn;
    case 'test.targets':
      return d.test.targets;
  }
}

export function saveDataset(dir: string, d: PreparedDataset, source?: unknown): void {
  const parent = path.dirname(path.resolve(dir));
  fs.mkdirSync(parent, { recursive: true });
  removeStaleTemps(parent, path.basename(dir));
  const tmp = path.join(parent, `.${path.basename(dir)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  fs.mkdirSync(tmp);
  try {
    const sections: Section[] = [];
    const chunks: Uint8Array[] = [];
    let offset = 0;
    const add = (name: string, a: Int32Array | Float32Array): void => {
      sections.push({ name, dtype: a instanceof Int32Array ? 'i32' : 'f32', offset, length: a.length });
      chunks.push(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
      offset += a.byteLength;
    };
    const matrices: DatasetManifest['matrices'] = {};
    for (const name of MATRICES) {
      const m = matrixOf(d, name);
      matrices[name] = { rows: m.rows, cols: m.cols, hasValues: m.values !== undefined };
      add(`${name}.indptr`, m.indptr);
      add(`${name}.indices`, m.indices.subarray(0, m.indptr[m.rows]));
      if (m.values) add(`${name}.values`, m.values.subarray(0, m.indptr[m.rows]));
    }
    const hash = createHash('sha256');
    const fd = fs.openSync(path.join(tmp, 'data.bin'), 'w');
    for (const c of chunks) {
      hash.update(c);
      fs.writeSync(fd, c);
    }
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    const manifest: DatasetManifest = {
      format: FORMAT, formatVersion: VERSION, createdAt: new Date().toISOString(), source, protocol: d.protocol, counts: d.counts,
      dataSha256: hash.digest('hex'), dataBytes: offset, sections, matrices, itemIds: d.itemIds, trainUserIds: d.trainUserIds,
      validationUserIds: d.validation.userIds, testUserIds: d.test.userIds,
    };
    fs.writeFileSync(path.join(tmp, 'manifest.json'), JSON.stringify(manifest));
    const mfd = fs.openSync(path.join(tmp, 'manifest.json'), 'r');
    fs.fsyncSync(mfd);
    fs.closeSync(mfd);
    if (fs.existsSync(dir)) {
      const old = `${tmp}.old`;
      fs.renameSync(dir, old);
      fs.renameSync(tmp, dir);
      fs.rmSync(old, { recursive: true, force: true });
    } else {
      fs.renameSync(tmp, dir);
    }
  } catch (err) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
}

export function isDatasetDir(dir: string): boolean {
  return fs.existsSync(path.join(dir, 'manifest.json')) && fs.existsSync(path.join(dir, 'data.bin'));
}

export function loadDataset(dir: string, options: { verify?: boolean } = {}): PreparedDataset & { manifest: DatasetManifest } {
  const manifestFile = path.join(dir, 'manifest.json');
  let manifest: DatasetManifest;
  try {
    manifest = JSON.parse(fs.readFileSync(manifestFile, 'utf8'));
  } catch (err) {
    throw new VaecfInputError(`${manifestFile}: cannot read the dataset manifest (${(err as Error).message}); prepare the dataset again`);
  }
  if (manifest.format !== FORMAT) throw new VaecfInputError(`${manifestFile}: not a vaecf dataset`);
  if (manifest.formatVersion > VERSION) throw new VaecfInputError(`${manifestFile}: format version ${manifest.formatVersion} is newer than this vaecf reads; upgrade vaecf`);
  const dataFile = path.join(dir, 'data.bin');
  let buf: Buffer;
  try {
    buf = fs.readFileSync(dataFile);
  } catch (err) {
    throw new VaecfInputError(`${dataFile}: cannot read (${(err as Error).message})`);
  }
  if (buf.length !== manifest.dataBytes)
    throw new VaecfInputError(`${dataFile}: ${buf.length} bytes, the manifest says ${manifest.dataBytes} (truncated?); prepare the dataset again`);
  if ((options.verify ?? true) && createHash('sha256').update(buf).digest('hex') !== manifest.dataSha256)
    throw new VaecfInputError(`${dataFile}: the data does not match its checksum; prepare the dataset again`);
  const arrays = new Map<string, Int32Array | Float32Array>();
  const aligned = new ArrayBuffer(buf.length);
  new Uint8Array(aligned).set(buf);
  for (const s of manifest.sections) {
    arrays.set(s.name, s.dtype === 'i32' ? new Int32Array(aligned, s.offset, s.length) : new Float32Array(aligned, s.offset, s.length));
  }
  const matrix = (name: string): CsrMatrix => {
    const m = manifest.matrices[name];
    return {
      rows: m.rows,
      cols: m.cols,
      indptr: arrays.get(`${name}.indptr`) as Int32Array,
      indices: arrays.get(`${name}.indices`) as Int32Array,
      values: m.hasValues ? (arrays.get(`${name}.values`) as Float32Array) : undefined,
    };
  };
  const heldOut = (prefix: string, userIds: Array<string | number>): HeldOutUsers => ({
    foldIn: matrix(`${prefix}.foldIn`),
    targets: matrix(`${prefix}.targets`),
    userIds,
  });
  return {
    manifest,
    train: matrix('train'),
    validation: heldOut('validation', manifest.validationUserIds),
    test: heldOut('test', manifest.testUserIds),
    itemIds: manifest.itemIds,
    trainUserIds: manifest.trainUserIds,
    protocol: manifest.protocol as PreparedDataset['protocol'],
    counts: manifest.counts as PreparedDataset['counts'],
  };
}
