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

/** Largest piece hashed between two turns of the event loop (a few milliseconds of SHA-256). */
const DIGEST_CHUNK = 4 << 20;

/** Lets the event loop run (timers, I/O, other requests) between two pieces of long work. */
export const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

// The pieces of the version-2 digest in order: the metadata string, each tensor's description in header
// order, then the bytes (in pieces of at most DIGEST_CHUNK).
function* digestPieces(metaJson: string, entries: Array<[string, TensorEntry]>, bytesOf: (e: TensorEntry) => Uint8Array): Generator<string | Uint8Array> {
  yield `vaecf-model-v2\n${metaJson}\n`;
  for (const [name, e] of entries) yield `${name}\t${e.dtype}\t${e.shape.join(',')}\t${e.data_offsets[0]}\t${e.data_offsets[1]}\n`;
  for (const [, e] of entries) {
    const bytes = bytesOf(e);
    for (let at = 0; at < bytes.length; at += DIGEST_CHUNK) yield bytes.subarray(at, Math.min(bytes.length, at + DIGEST_CHUNK));
  }
}

function fileDigest(metaJson: string, entries: Array<[string, TensorEntry]>, bytesOf: (e: TensorEntry) => Uint8Array): string {
  const hash = createHash('sha256');
  for (const piece of digestPieces(metaJson, entries, bytesOf)) hash.update(piece);
  return hash.digest('hex');
}

/** The same digest, yielding to the event loop between pieces (a 400 MB checkpoint would block ~0.5 s). */
async function fileDigestAsync(metaJson: string, entries: Array<[string, TensorEntry]>, bytesOf: (e: TensorEntry) => Uint8Array): Promise<string> {
  const hash = createHash('sha256');
  let sinceYield = 0;
  for (const piece of digestPieces(metaJson, entries, bytesOf)) {
    hash.update(piece);
    sinceYield += piece.length;
    if (sinceYield >= DIGEST_CHUNK) {
      sinceYield = 0;
      await yieldToEventLoop();
    }
  }
  return hash.digest('hex');
}

/**
 * Write a model file atomically (a temporary file in the same folder, fsync, rename, fsync of the
 * folder). The digest is computed in pieces and the bytes are written by libuv's thread pool, so the
 * event loop stays free while a large checkpoint is written.
 */
export async function writeModelFile(file: string, metadata: object, tensors: NamedTensor[]): Promise<void> {
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
  header.__metadata__ = { vaecf: metaJson, vaecf_sha256: await fileDigestAsync(metaJson, entries, (e) => data.get(e) as Uint8Array) };
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const pad = (8 - (json.length % 8)) % 8; // keep tensors 8-byte aligned
  if (pad) json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));

  const dir = path.dirname(path.resolve(file));
  await fs.promises.mkdir(dir, { recursive: true });
  removeStaleTemps(dir, path.basename(file));
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const handle = await fs.promises.open(tmp, 'w', 0o644);
  try {
    await handle.writev([len, json]);
    for (const [, e] of entries) await handle.write(data.get(e) as Uint8Array);
    await handle.sync();
    await handle.close();
    await fs.promises.rename(tmp, file);
  } catch (err) {
    await handle.close().catch(() => undefined); // already closed
    await fs.promises.rm(tmp, { force: true });
    throw err;
  }
  try {
    const dirHandle = await fs.promises.open(dir, 'r');
    await dirHandle.sync().finally(() => dirHandle.close());
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

/** A parsed safetensors file: its __metadata__ strings and its tensors (F32 as is; F64 and BF16 converted to F32). */
export interface SafetensorsContents {
  metadata: Record<string, string>;
  tensors: Map<string, NamedTensor>;
  /** the checked tensor entries, in header order */
  entries: Array<[string, TensorEntry]>;
  bytes: Buffer;
  dataStart: number;
}

async function readWhole(file: string): Promise<Buffer> {
  try {
    return await fs.promises.readFile(file);
  } catch (err) {
    throw new ModelFileError(file, `cannot read the model file (${(err as Error).message})`);
  }
}

function readWholeSync(file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    throw new ModelFileError(file, `cannot read the model file (${(err as Error).message})`);
  }
}

// F32 and I32 tensors are views of the file's bytes where they are 4-byte aligned (always in vaecf's own
// files, whose header is padded to 8 bytes): no copy of a large model on the event loop.
function parseSafetensors(file: string, buf: Buffer): SafetensorsContents {
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
    const at = buf.byteOffset + dataStart + begin;
    const count = (end - begin) / DTYPE_BYTES[e.dtype];
    let data: TensorData;
    if ((e.dtype === 'F32' || e.dtype === 'I32') && at % 4 === 0) {
      data = e.dtype === 'F32' ? new Float32Array(buf.buffer, at, count) : new Int32Array(buf.buffer, at, count);
    } else {
      const copy = new ArrayBuffer(end - begin);
      new Uint8Array(copy).set(buf.subarray(dataStart + begin, dataStart + end));
      if (e.dtype === 'F32') data = new Float32Array(copy);
      else if (e.dtype === 'I32') data = new Int32Array(copy);
      else if (e.dtype === 'F64') data = Float32Array.from(new Float64Array(copy));
      else {
        const h = new Uint16Array(copy);
        const u = new Uint32Array(h.length);
        for (let i = 0; i < h.length; i++) u[i] = h[i] << 16;
        data = new Float32Array(u.buffer);
      }
    }
    tensors.set(name, { name, shape: e.shape, data });
  }
  const meta = header.__metadata__;
  if (meta !== undefined && (meta === null || typeof meta !== 'object' || Object.values(meta).some((v) => typeof v !== 'string')))
    throw new ModelFileError(file, '__metadata__ is not a map of strings: corrupted');
  return { metadata: (header.__metadata__ as Record<string, string> | undefined) ?? {}, tensors, entries, bytes: buf, dataStart };
}

/** Any safetensors file, read on the calling thread (see readSafetensorsAsync). */
export function readSafetensors(file: string): SafetensorsContents {
  return parseSafetensors(file, readWholeSync(file));
}

/** Any safetensors file, read by libuv's thread pool. */
export async function readSafetensorsAsync(file: string): Promise<SafetensorsContents> {
  return parseSafetensors(file, await readWhole(file));
}

// The vaecf metadata of a parsed file, checked, and the data section's layout; the digest is checked by
// the caller (on the calling thread, or in pieces).
function modelContents(file: string, parsed: SafetensorsContents) {
  const { metadata: raw, tensors, entries, bytes: buf, dataStart } = parsed;
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
  // The entries (in header order, validated by parseSafetensors) must tile the data exactly.
  let expectedEnd = 0;
  for (const [name, e] of entries) {
    if (e.data_offsets[0] !== expectedEnd) throw new ModelFileError(file, `tensor ${name} has inconsistent offsets`);
    expectedEnd = e.data_offsets[1];
  }
  if (dataStart + expectedEnd !== buf.length)
    throw new ModelFileError(file, `unexpected size: ${buf.length} bytes, the header describes ${dataStart + expectedEnd}`);
  const bytesOf = (e: TensorEntry): Uint8Array => buf.subarray(dataStart + e.data_offsets[0], dataStart + e.data_offsets[1]);
  const version1Ok = (): boolean => {
    // Version 1: a digest of the tensor bytes only (small files of early versions).
    const hash = createHash('sha256');
    for (const [, e] of entries) hash.update(bytesOf(e));
    return hash.digest('hex') === metadata.dataSha256;
  };
  return { metadata, tensors, entries, metaRaw, stored: raw.vaecf_sha256, bytesOf, version1Ok };
}

function digestError(file: string, version: number): ModelFileError {
  return new ModelFileError(
    file,
    version >= 2
      ? 'the file does not match its checksum (metadata, ids and weights are covered): it is corrupted or was modified'
      : 'the tensor data does not match its checksum: the file is corrupted or was modified',
  );
}

/** A vaecf model file, read and checked on the calling thread (see readModelFileAsync). */
export function readModelFile(file: string): ModelFile {
  const c = modelContents(file, readSafetensors(file));
  const version = c.metadata.formatVersion as number;
  const ok = version >= 2 ? c.stored === fileDigest(c.metaRaw, c.entries, c.bytesOf) : c.version1Ok();
  if (!ok) throw digestError(file, version);
  return { metadata: c.metadata, tensors: c.tensors };
}

/** A vaecf model file, read by libuv's thread pool and checked in pieces: the event loop stays free. */
export async function readModelFileAsync(file: string): Promise<ModelFile> {
  const c = modelContents(file, await readSafetensorsAsync(file));
  const version = c.metadata.formatVersion as number;
  const ok = version >= 2 ? c.stored === (await fileDigestAsync(c.metaRaw, c.entries, c.bytesOf)) : c.version1Ok();
  if (!ok) throw digestError(file, version);
  return { metadata: c.metadata, tensors: c.tensors };
}
