// The model file: safetensors (8-byte little-endian header length, a JSON header, raw little-endian
// tensors), so Python's `safetensors` reads our weights too. Our own metadata (architecture,
// hyperparameters, item ids, versions, training state) is one JSON string under
// __metadata__.vaecf, with a SHA-256 of the tensor bytes so a truncated or tampered file is caught.
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
const FORMAT_VERSION = 1;

export function writeModelFile(file: string, metadata: object, tensors: NamedTensor[]): void {
  const header: Record<string, unknown> = {};
  let offset = 0;
  const hash = createHash('sha256');
  for (const t of tensors) {
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length) throw new Error(`tensor ${t.name}: shape ${t.shape} does not match ${t.data.length} values`);
    const bytes = t.data.byteLength;
    header[t.name] = { dtype: DTYPE[t.data.constructor.name], shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
    hash.update(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  }
  const meta = { format: FORMAT, formatVersion: FORMAT_VERSION, dataSha256: hash.digest('hex'), ...metadata };
  header.__metadata__ = { vaecf: JSON.stringify(meta) };
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

/** Any safetensors file: its __metadata__ strings and its tensors (F32 as is; F64 and BF16 converted to F32). */
export function readSafetensors(file: string): { metadata: Record<string, string>; tensors: Map<string, NamedTensor>; bytes: Buffer; dataStart: number } {
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
  const dataStart = 8 + headerLen;
  const tensors = new Map<string, NamedTensor>();
  const entries = Object.entries(header).filter(([n]) => n !== '__metadata__') as Array<[string, { dtype: string; shape: number[]; data_offsets: [number, number] }]>;
  for (const [name, e] of entries) {
    const [begin, end] = e.data_offsets;
    if (!(end >= begin) || dataStart + end > buf.length)
      throw new ModelFileError(file, `truncated: tensor ${name} needs ${dataStart + end} bytes, the file has ${buf.length}`);
    const bytes = buf.subarray(dataStart + begin, dataStart + end);
    const copy = new ArrayBuffer(bytes.length);
    new Uint8Array(copy).set(bytes);
    let data: TensorData;
    if (e.dtype === 'F32') data = new Float32Array(copy);
    else if (e.dtype === 'I32') data = new Int32Array(copy);
    else if (e.dtype === 'F64') data = Float32Array.from(new Float64Array(copy));
    else if (e.dtype === 'BF16') {
      const h = new Uint16Array(copy);
      const u = new Uint32Array(h.length);
      for (let i = 0; i < h.length; i++) u[i] = h[i] << 16;
      data = new Float32Array(u.buffer);
    } else throw new ModelFileError(file, `tensor ${name} has unsupported dtype ${e.dtype} (F32, F64, BF16, I32 are read)`);
    tensors.set(name, { name, shape: e.shape, data });
  }
  return { metadata: (header.__metadata__ as Record<string, string> | undefined) ?? {}, tensors, bytes: buf, dataStart };
}

export function readModelFile(file: string): ModelFile {
  const { metadata: raw, tensors, bytes: buf, dataStart } = readSafetensors(file);
  const metaRaw = raw.vaecf;
  if (typeof metaRaw !== 'string') throw new ModelFileError(file, 'no vaecf metadata: this safetensors file was not written by vaecf (a PyTorch state_dict? see importTorchStateDict)');
  const metadata = JSON.parse(metaRaw) as Record<string, unknown>;
  if (metadata.format !== FORMAT) throw new ModelFileError(file, `unknown format ${String(metadata.format)}`);
  if (typeof metadata.formatVersion !== 'number' || metadata.formatVersion > FORMAT_VERSION)
    throw new ModelFileError(file, `format version ${String(metadata.formatVersion)} is newer than this vaecf reads (${FORMAT_VERSION}); upgrade vaecf`);
  const headerLen = dataStart - 8;
  void headerLen;
  let expectedEnd = 0;
  const hash = createHash('sha256');
  const header = JSON.parse(buf.subarray(8, dataStart).toString('utf8')) as Record<string, { data_offsets: [number, number] }>;
  for (const [name, e] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const [begin, end] = e.data_offsets;
    if (begin !== expectedEnd || end < begin) throw new ModelFileError(file, `tensor ${name} has inconsistent offsets`);
    expectedEnd = end;
    hash.update(buf.subarray(dataStart + begin, dataStart + end));
  }
  if (dataStart + expectedEnd !== buf.length)
    throw new ModelFileError(file, `unexpected size: ${buf.length} bytes, the header describes ${dataStart + expectedEnd}`);
  if (hash.digest('hex') !== metadata.dataSha256)
    throw new ModelFileError(file, 'the tensor data does not match its checksum: the file is corrupted or was modified');
  return { metadata, tensors };
}
