// The model file: safetensors (8-byte little-endian header length, a JSON header, raw little-endian
// tensors), so Python's `safetensors` reads our weights too. Our own metadata (architecture,
// hyperparameters, item ids, versions, training state) is one JSON string under
// __metadata__.vaecf. __metadata__.vaecf_sha256 is a SHA-256 over that metadata string, every tensor's
// name, dtype, shape and offsets, and the tensor bytes (format version 2): a truncated or tampered file,
// ids and hyperparameters included, is caught. Version 1 files (a digest of the tensor bytes only) are
// still read.
// Writes are atomic: a temporary file in the same folder, fsync, rename, fsync of the folder.
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { removeStaleTemps } from './stale-temps';

export class ModelFileError extends Error {
  readonly code = 'ERR_VAECF_MODEL_FILE';
  constructor(file: string, message: string) {
    super(`${file}: ${message}`);
    this.name = 'ModelFileError';
  }
}

export type TensorData = Float32Array | Int32Array;

export interface NamedTensor {
  name: string;
  shape: number[];
  data: TensorData;
}

const DTYPE: Record<string, string> = { Float32Array: 'F32', Int32Array: 'I32' };
const FORMAT = 'vaecf-model';
const FORMAT_VERSION = 2;
const DTYPE_BYTES: Record<string, number> = { F32: 4, I32: 4, F64: 8, BF16: 2 };

export interface TensorEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

// The version-2 digest: the metadata string, each tensor's description in header order, then the bytes.
function fileDigest(metaJson: string, entries: Array<[string, TensorEntry]>, bytesOf: (e: TensorEntry) => Uint8Array): string {
  const hash = createHash('sha256');
  hash.update(`vaecf-model-v2\n${metaJson}\n`);
  for (const [name, e] of entries) hash.update(`${name}\t${e.dtype}\t${e.shape.join(',')}\t${e.data_offsets[0]}\t${e.data_offsets[1]}\n`);
  for (const [, e] of entries) hash.update(bytesOf(e));
  return hash.digest('hex');
}

export function writeModelFile(file: string, metadata: object, tensors: NamedTensor[]): void {
  const header: Record<string, unknown> = {};
  const entries: Array<[string, TensorEntry]> = [];
  const data = new Map<TensorEntry, Uint8Array>();
  let offset = 0;
  for (const t of tensors) {
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length) throw new Error(`tensor ${t.name}: shape ${t.shape} does not match ${t.data.length} values`);
    const bytes = t.data.byteLength;
    const entry: TensorEntry = { dtype: DTYPE[t.data.constructor.name], shape: t.shape, data_offsets: [offset, offset + bytes] };
    header[t.name] = entry;
    entries.push([t.name, entry]);
    data.set(entry, new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    offset += bytes;
  }
  const metaJson = JSON.stringify({ format: FORMAT, formatVersion: FORMAT_VERSION, ...metadata });
  header.__metadata__ = { vaecf: metaJson, vaecf_sha256: fileDigest(metaJson, entries, (e) => data.get(e) as Uint8Array) };
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const pad = (8 - (json.length % 8)) % 8; // keep tensors 8-byte aligned
  if (pad) json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));

  const dir = path.dirname(path.resolve(file));
  fs.mkdirSync(dir, { recursive: true });
  removeStaleTemps(dir, path.basename(file));
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const fd = fs.openSync(tmp, 'w', 0o644);
  try {
    fs.writeSync(fd, len);
    fs.writeSync(fd, json);
    for (const t of tensors) fs.writeSync(fd, new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fs.renameSync(tmp, file);
  } catch (err) {
    try {
      fs.closeSync(fd);
    } catch {
      /* already closed */
    }
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  try {
    const dfd = fs.openSync(dir, 'r');
    fs.fsyncSync(dfd);
    fs.closeSync(dfd);
  } catch {
    /* some file systems cannot fsync a directory */
  }
}

export interface ModelFile {
  metadata: Record<string, unknown>;
  tensors: Map<string, NamedTensor>;
}

// The tensor entries of a safetensors header, every field checked against the file before anything is
// allocated: a known dtype, a shape of non-negative integers whose size matches the byte range, and a
// byte range inside the file's data.
function tensorEntries(file: string, header: Record<string, unknown>, dataBytes: number): Array<[string, TensorEntry]> {
  const out: Array<[string, TensorEntry]> = [];
  for (const [name, raw] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const e = raw as Partial<TensorEntry> | null;
    const bad = (what: string): ModelFileError => new ModelFileError(file, `tensor ${JSON.stringify(name)}: ${what} (corrupted?)`);
    if (e === null || typeof e !== 'object') throw bad('not an object');
    const size = typeof e.dtype === 'string' ? DTYPE_BYTES[e.dtype] : undefined;
    if (!size) throw bad(`unsupported dtype ${JSON.stringify(e.dtype)} (F32, F64, BF16, I32 are read)`);
    if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw bad(`bad shape ${JSON.stringify(e.shape)}`);
    const o = e.data_offsets;
    if (!Array.isArray(o) || o.length !== 2 || !o.every((x) => Number.isSafeInteger(x) && x >= 0) || o[1] < o[0])
      throw bad(`bad data_offsets ${JSON.stringify(o)}`);
    if (o[1] > dataBytes) throw new ModelFileError(file, `truncated: tensor ${name} needs ${o[1]} bytes of data, the file has ${dataBytes}`);
    const count = e.shape.reduce((a, b) => a * b, 1);
    if (count * size !== o[1] - o[0]) throw bad(`shape ${JSON.stringify(e.shape)} of ${e.dtype} needs ${count * size} bytes, its range holds ${o[1] - o[0]}`);
    out.push([name, e as TensorEntry]);
  }
  return out;
}

/** Any safetensors file: its __metadata__ strings and its tensors (F32 as is; F64 and BF16 converted to F32). */
export function readSafetensors(file: string): {
  metadata: Record<string, string>;
  tensors: Map<string, NamedTensor>;
  /** the checked tensor entries, in header order */
  entries: Array<[string, TensorEntry]>;
  bytes: Buffer;
  dataStart: number;
} {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (err) {
    throw new ModelFileError(file, `cannot read the model file (${(err as Error).message})`);
  }
  if (buf.length < 8) throw new ModelFileError(file, 'the file is too short to be a safetensors model (truncated?)');
  const headerLen = Number(buf.readBigUInt64LE(0));
  if (headerLen <= 0 || 8 + headerLen > buf.length)
    throw new ModelFileError(file, 'the header length is out of range: not a safetensors model, or truncated');
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(buf.subarray(8, 8 + headerLen).toString('utf8'));
  } catch {
    throw new ModelFileError(file, 'the header is not valid JSON: not a safetensors model, or corrupted');
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header))
    throw new ModelFileError(file, 'the header is not a JSON object: not a safetensors model, or corrupted');
  const dataStart = 8 + headerLen;
  const tensors = new Map<string, NamedTensor>();
  const entries = tensorEntries(file, header, buf.length - dataStart);
  for (const [name, e] of entries) {
    const [begin, end] = e.data_offsets;
    const bytes = buf.subarray(dataStart + begin, dataStart + end);
    const copy = new ArrayBuffer(bytes.length);
    new Uint8Array(copy).set(bytes);
    let data: TensorData;
    if (e.dtype === 'F32') data = new Float32Array(copy);
    else if (e.dtype === 'I32') data = new Int32Array(copy);
    else if (e.dtype === 'F64') data = Float32Array.from(new Float64Array(copy));
    else {
      const h = new Uint16Array(copy);
      const u = new Uint32Array(h.length);
      for (let i = 0; i < h.length; i++) u[i] = h[i] << 16;
      data = new Float32Array(u.buffer);
    }
    tensors.set(name, { name, shape: e.shape, data });
  }
  const meta = header.__metadata__;
  if (meta !== undefined && (meta === null || typeof meta !== 'object' || Object.values(meta).some((v) => typeof v !== 'string')))
    throw new ModelFileError(file, '__metadata__ is not a map of strings: corrupted');
  return { metadata: (header.__metadata__ as Record<string, string> | undefined) ?? {}, tensors, entries, bytes: buf, dataStart };
}

export function readModelFile(file: string): ModelFile {
  const { metadata: raw, tensors, entries, bytes: buf, dataStart } = readSafetensors(file);
  const metaRaw = raw.vaecf;
  if (typeof metaRaw !== 'string') throw new ModelFileError(file, 'no vaecf metadata: this safetensors file was not written by vaecf (a PyTorch state_dict? see importTorchStateDict)');
  let metadata: Record<string, unknown>;
  try {
    metadata = JSON.parse(metaRaw) as Record<string, unknown>;
  } catch {
    throw new ModelFileError(file, 'the vaecf metadata is not valid JSON: the file is corrupted or was modified');
  }
  if (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata))
    throw new ModelFileError(file, 'the vaecf metadata is not a JSON object: the file is corrupted or was modified');
  if (metadata.format !== FORMAT) throw new ModelFileError(file, `unknown format ${String(metadata.format)}`);
  if (typeof metadata.formatVersion !== 'number' || metadata.formatVersion > FORMAT_VERSION)
    throw new ModelFileError(file, `format version ${String(metadata.formatVersion)} is newer than this vaecf reads (${FORMAT_VERSION}); upgrade vaecf`);
  // The entries (in header order, validated by readSafetensors) must tile the data exactly.
  let expectedEnd = 0;
  for (const [name, e] of entries) {
    if (e.data_offsets[0] !== expectedEnd) throw new ModelFileError(file, `tensor ${name} has inconsistent offsets`);
    expectedEnd = e.data_offsets[1];
  }
  if (dataStart + expectedEnd !== buf.length)
    throw new ModelFileError(file, `unexpected size: ${buf.length} bytes, the header describes ${dataStart + expectedEnd}`);
  const bytesOf = (e: TensorEntry): Uint8Array => buf.subarray(dataStart + e.data_offsets[0], dataStart + e.data_offsets[1]);
  if (metadata.formatVersion >= 2) {
    if (raw.vaecf_sha256 !== fileDigest(metaRaw, entries, bytesOf))
      throw new ModelFileError(file, 'the file does not match its checksum (metadata, ids and weights are covered): it is corrupted or was modified');
  } else {
    // Version 1: a digest of the tensor bytes only.
    const hash = createHash('sha256');
    for (const [, e] of entries) hash.update(bytesOf(e));
    if (hash.digest('hex') !== metadata.dataSha256)
      throw new ModelFileError(file, 'the tensor data does not match its checksum: the file is corrupted or was modified');
  }
  return { metadata, tensors };
}
