// Loads the native addon (a prebuilt binary, or the local build) and says what to do when it cannot.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { VaecfInputError } from './data/csr';

/** A CSR matrix as the addon reads it: rows are users, column indices are item indices. */
export interface NativeCsr {
  readonly rows: number;
  readonly cols: number;
  readonly indptr: Int32Array;
  readonly indices: Int32Array;
  readonly values?: Float32Array;
}

export interface NativeModelConfig {
  encoderDims: number[];
  decoderDims: number[];
  variational: boolean;
  encoderDropout: number[];
  decoderDropout: number[];
  threads: number;
  /** 'bf16': bf16 matrix products (fp32 master weights) for the item output layer */
  precision?: 'fp32' | 'bf16' | 'tf32';
  /** 'cuda' needs the CUDA flavour of the addon */
  device?: 'cpu' | 'cuda';
  /** RecVAE instead of Mult-VAE / Mult-DAE (encoderDims / decoderDims then only summarise the shape) */
  recvae?: NativeRecVaeConfig;
}

/** RecVAE's architecture (Shenbin et al. 2020; native/cpu/recvae_cpu.h). */
export interface NativeRecVaeConfig {
  items: number;
  hidden: number;
  latent: number;
  layers: number;
  layerNormEps: number;
  inputDropout: number;
  mixtureWeights: [number, number, number];
  wideLogVar: number;
}

export interface NativeEpochOptions {
  batchSize: number;
  seed: number;
  epoch: number;
  shuffle?: boolean;
  l2: number;
  betaKind: 'linear' | 'constant';
  betaCap: number;
  betaTotalSteps: number;
  betaValue: number;
  learningRate: number;
  weightDecay: number;
  decoupledWeightDecay: boolean;
  step: number;
  annealCount: number;
  /** RecVAE: which parameters this epoch trains (default 'joint': all) */
  phase?: 'joint' | 'encoder' | 'decoder';
  /** RecVAE: each user's KL weight is gamma * (the user's clicks) when > 0 */
  gamma?: number;
  /**
   * An id for this training matrix whose contents do not change while it is in use (one fit()): the
   * engine validates the contents once per id and the CUDA engine keeps its device copy. 0: unknown.
   */
  dataGeneration?: number;
  /** the matrix's name in error messages (default 'training matrix') */
  dataName?: string;
}

export interface NativeBatchStats {
  batch: number;
  batches: number;
  loss: number;
  nll: number;
  kl: number;
  beta: number;
}

export interface NativeEpochStats {
  loss: number;
  nll: number;
  kl: number;
  beta: number;
  batches: number;
  step: number;
  annealCount: number;
}

export interface NativeRecommendOptions {
  k: number;
  excludeSeen: boolean;
  batchSize?: number;
  /** one flag per item: 0 = never recommend */
  candidates?: Uint8Array;
}

export interface NativeModel {
  readonly numParams: number;
  readonly backend: string;
  initialize(seed: number): Promise<void>;
  trainEpoch(data: NativeCsr, options: NativeEpochOptions, onBatch?: (s: NativeBatchStats) => void): Promise<NativeEpochStats>;
  recommend(data: NativeCsr, options: NativeRecommendOptions): Promise<{ items: Int32Array; scores: Float32Array }>;
  /** The same on the calling thread (small requests). */
  recommendSync(data: NativeCsr, options: NativeRecommendOptions): { items: Int32Array; scores: Float32Array };
  scores(data: NativeCsr, first: number, count: number): Float32Array;
  getParameters(): Float32Array;
  setParameters(p: Float32Array): void;
  /** groupSteps: one Adam step count per parameter group, for models with several (RecVAE: encoder, decoder) */
  getOptimizerState(): { m: Float32Array; v: Float32Array; t: number; groupSteps?: number[] };
  setOptimizerState(s: { m: Float32Array; v: Float32Array; t: number; groupSteps?: number[] }): void;
  /** State saved with the model but not trained (RecVAE: the prior's encoder); empty otherwise. */
  getAuxiliary(): Float32Array;
  setAuxiliary(a: Float32Array): void;
  /** RecVAE: the prior's encoder becomes a copy of the current encoder. */
  updatePrior(): void;
  /** Keep a copy of the parameters in native memory (the best validation weights during training). */
  snapshotParameters(): Promise<void>;
  /** Set the parameters from that copy (on a worker thread); false when there is none. */
  restoreSnapshot(): Promise<boolean>;
  /** Copies of the parameters and, when asked, the optimizer state, the snapshot and the auxiliary state, made on a worker thread. */
  exportState(what: { optimizer?: boolean; snapshot?: boolean; auxiliary?: boolean }): Promise<NativeState>;
  /** The same copied into the engine on a worker thread (snapshot null or absent: none). */
  importState(state: NativeState): Promise<void>;
  setThreads(n: number): void;
  cancel(): void;
  dispose(): void;
}

/** A model's state as exportState gives it and importState takes it. */
export interface NativeState {
  parameters: Float32Array;
  m?: Float32Array;
  v?: Float32Array;
  t?: number;
  groupSteps?: number[];
  snapshot?: Float32Array | null;
  auxiliary?: Float32Array;
}

export interface NativeEase {
  fit(train: NativeCsr, lambda: number, doublePrecision: boolean): Promise<void>;
  recommend(data: NativeCsr, options: NativeRecommendOptions): Promise<{ items: Int32Array; scores: Float32Array }>;
  getWeights(): Float32Array;
  setWeights(items: number, weights: Float32Array): void;
  dispose(): void;
}

/** One named tensor of a model's flat parameter vector (a weight is [in, out]: y = x W + b). */
export interface ParameterTensor {
  name: string;
  shape: number[];
  offset: number;
}

export interface NativeAddon {
  NativeModel: new (config: NativeModelConfig) => NativeModel;
  /** The named tensors of the flat parameter vector `config` describes, in order, without allocating it. */
  parameterLayout(config: NativeModelConfig): ParameterTensor[];
  NativeEase: (new (threads: number) => NativeEase) & { matrixBytes(items: number, doublePrecision: boolean): number };
  hardwareThreads: number;
  abiVersion: number;
  bf16Available: boolean;
  bf16Description: string;
  /** What runs the fp32 matrix products: "OpenBLAS (Haswell kernels)", or "oneDNN 2.6 (AVX-512); <why>" (VAECF_FP32_GEMM overrides). */
  fp32GemmDescription: string;
  /** The SIMD target the CPU kernels run ("AVX2", "AVX-512", "NEON", ...; VAECF_SIMD overrides). */
  simdTarget: string;
  /** Every SIMD target of this build, best first, and whether this processor runs it. */
  simdTargets: { name: string; supported: boolean }[];
  cudaBuilt: boolean;
  cudaDevice?: () => { available: boolean; description: string };
  /** CUDA flavour: make the process's CUDA context and load cuBLAS; "" or why it failed. Blocks its thread. */
  cudaWarmUp?: () => string;
}

let cached: NativeAddon | undefined;

/**
 * A `threads` option checked before it reaches the engine: a positive integer, at most
 * max(64, 4 x the hardware threads). OpenMP (libgomp) aborts the whole process when it cannot create
 * the threads it is asked for, so a value far beyond the machine is refused here with an error.
 */
export function checkThreads(threads: number | undefined, field = 'threads'): number {
  const hardware = Math.max(1, os.availableParallelism());
  const value = threads ?? hardware;
  const limit = Math.max(64, 4 * hardware);
  if (!Number.isInteger(value) || value < 1 || value > limit)
    throw new VaecfInputError(`${field}: expected an integer from 1 to ${limit} (this machine has ${hardware} hardware threads), got ${value}`);
  return value;
}

/** The package root (where package.json, build/ and prebuilds/ live). */
export const packageRoot: string = path.resolve(__dirname, '..', '..');

// The Debian / Ubuntu package of each shared library the engine can need, for the load-failure advice.
const LIBRARY_PACKAGES: Record<string, string> = {
  'libopenblas.so.0': 'libopenblas0', 'libdnnl.so.2': 'libdnnl2', 'libgomp.so.1': 'libgomp1', 'libgfortran.so.5': 'libgfortran5',
  'libstdc++.so.6': 'libstdc++6', 'libhwy.so.1': 'libhwy1',
};

/**
 * What to do when the native engine does not load, from the loader's message: the library that is
 * missing and its package, a glibc / libstdc++ older than the binary needs, musl, or no binary at all;
 * and how to build one from source (scripts/install.js prints the same at install time).
 */
export function nativeLoadAdvice(reason: string): string {
  const build =
    'To build it from source: npm install cmake-js node-addon-api, then npm rebuild vaecf ' +
    '(needs CMake, a C++17 compiler, OpenBLAS and Highway: apt-get install cmake g++ libopenblas-dev libhwy-dev).';
  const musl = libcTag() === 'musl';
  let what: string;
  const missing = /([\w.+-]+\.so(?:\.\d+)*): cannot open shared object file/.exec(reason);
  const version = /(GLIBC(?:XX)?_[\d.]+)' not found/.exec(reason);
  if (musl) {
    what = 'This is a musl system (Alpine): vaecf ships no prebuilt binary for it (the glibc one is never picked there). ' +
      'Build from source (apk add cmake g++ make openblas-dev; Highway headers from libhwy), or use a glibc-based image (Debian, Ubuntu).';
    return `vaecf: the native engine could not be loaded (${reason}). ${what}`;
  } else if (missing) {
    const pkg = LIBRARY_PACKAGES[missing[1]];
    what = `The shared library ${missing[1]} is missing${pkg ? ` (Debian / Ubuntu package ${pkg}: apt-get install ${pkg})` : ''}.`;
  } else if (version) {
    what = `This system's ${version[1].startsWith('GLIBCXX') ? 'libstdc++' : 'glibc'} is older than the prebuilt binary needs (${version[1]}).`;
  } else if (/No native build was found/.test(reason)) {
    what = `No prebuilt binary for ${process.platform}-${process.arch} is installed: it comes in the package ${platformPackage()}, ` +
      'which npm installs with vaecf where it exists (not with --omit=optional or --no-optional).';
  } else {
    what = 'The prebuilt binary did not load.';
  }
  return `vaecf: the native engine could not be loaded (${reason}). ${what} ${build}`;
}

/** The C library of this Linux system ('gnu' or 'musl'); '' elsewhere. */
let libc: '' | 'gnu' | 'musl' | undefined;
function libcTag(): '' | 'gnu' | 'musl' {
  if (libc === undefined) {
    // A process report (about 5 ms): made once, when the engine first loads.
    const header = process.platform === 'linux' ? (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header : undefined;
    libc = process.platform !== 'linux' ? '' : header?.glibcVersionRuntime ? 'gnu' : 'musl';
  }
  return libc;
}

/**
 * The name of the npm package with this platform's prebuilt engine, in sharp's style (an optional dependency of
 * vaecf that npm installs only on its platform): `@vaecf/linux-x64-gnu` and so on. It holds `vaecf.node`
 * with the libraries it needs beside it (scripts/platform-package.js makes it).
 */
export function platformPackage(): string {
  const tag = libcTag();  // asked for only when the engine loads, not at import
  return `@vaecf/${process.platform}-${process.arch}${tag ? `-${tag}` : ''}`;
}

let loadedFrom: string | undefined;

/** The file the native engine was loaded from (after the first loadNative), for diagnostics. */
export function nativeAddonPath(): string | undefined {
  return loadedFrom;
}

// Where the engine is, in this order: a local build (build/Release: npm run build:native, or a build from
// source at install), the platform package, then prebuilds/ in this package (node-gyp-build's layout).
function nativeAddonFile(): string {
  const local = path.join(packageRoot, 'build', 'Release', 'vaecf.node');
  if (fs.existsSync(local)) return local;
  try {
    const file = path.join(path.dirname(require.resolve(`${platformPackage()}/package.json`, { paths: [packageRoot] })), 'vaecf.node');
    if (fs.existsSync(file)) return file;
  } catch {
    // not installed (another platform, or --omit=optional)
  }
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  return (require('node-gyp-build') as { path: (dir: string) => string }).path(packageRoot);
}

export function loadNative(): NativeAddon {
  if (cached) return cached;
  // Idle OpenMP threads sleep instead of spinning: the engine shares the machine with Node's own
  // threads and often with other processes (the user may override this).
  process.env.OMP_WAIT_POLICY ??= 'passive';
  try {
    const file = nativeAddonFile();
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    cached = require(file) as NativeAddon;
    loadedFrom = file;
  } catch (err) {
    throw new Error(nativeLoadAdvice(err instanceof Error ? err.message : String(err)));
  }
  return cached;
}

// ---- the CUDA flavour: a separate binary the loader chooses (node-gyp-build cannot tell flavours apart) ----

/** The npm package that carries the prebuilt CUDA flavour for this platform (installed beside vaecf). */
export const CUDA_PACKAGE = `@vaecf/cuda-${process.platform}-${process.arch}`;

/**
 * Where the CUDA flavour of the addon is, in this order: VAECF_CUDA_ADDON, a local build
 * (npm run build:cuda), the CUDA package (npm install @vaecf/cuda-linux-x64), prebuilds/.
 */
export function cudaFlavourPath(): string | null {
  let fromPackage: string | undefined;
  try {
    fromPackage = path.join(path.dirname(require.resolve(`${CUDA_PACKAGE}/package.json`, { paths: [packageRoot] })), 'vaecf_cuda.node');
  } catch {
    /* not installed */
  }
  const candidates = [
    process.env.VAECF_CUDA_ADDON,
    path.join(packageRoot, 'build', 'cuda', 'vaecf_cuda.node'),
    fromPackage,
    path.join(packageRoot, 'prebuilds', `${process.platform}-${process.arch}`, 'vaecf_cuda.node'),
  ];
  return candidates.find((p): p is string => Boolean(p) && require('node:fs').existsSync(p)) ?? null;
}

/** What the CUDA probe found: whether the CUDA flavour loads and sees a GPU, and what it said. */
export interface CudaProbe {
  ok: boolean;
  reason: string;
}

let cudaProbeResult: CudaProbe | undefined;
let cudaProbeRunning: Promise<CudaProbe> | undefined;

const PROBE_TIMEOUT_MS = 30_000;

function probeCommand(file: string): string {
  return `const a = require(${JSON.stringify(file)}); process.stdout.write(JSON.stringify(a.cudaDevice()));`;
}

// The probe child's answer (exit status, signal, output) as a CudaProbe.
function probeOutcome(status: number | null, signal: string | null, stdout: string, stderr: string): CudaProbe {
  if (status !== 0) {
    // Node prints the stack, then its own version: the reason is the first line that names an error.
    const lines = (stderr || '').split('\n').map((l) => l.trim()).filter(Boolean);
    const errorLine = lines.find((l) => /^(\w*Error|error)\b/.test(l)) ?? lines.find((l) => !/^Node\.js v/.test(l));
    const why = signal ? `the probe was killed by ${signal}` : errorLine ?? `exit code ${status}`;
    return { ok: false, reason: `the CUDA flavour does not load here (${why})` };
  }
  try {
    const d = JSON.parse(stdout) as { available: boolean; description: string };
    return { ok: d.available, reason: d.description };
  } catch {
    return { ok: false, reason: 'the CUDA probe gave no answer' };
  }
}

const NOT_BUILT: CudaProbe = { ok: false, reason: 'the CUDA flavour is not built here (with nvcc and cuBLAS: npm run build:cuda)' };

/**
 * Whether the CUDA flavour loads and sees a GPU, probed once in a child process (a broken CUDA install can
 * crash or hang the process that loads it; the probe has a 30 s limit). The child runs while the event
 * loop goes on; the answer is cached.
 */
export function probeCudaAsync(): Promise<CudaProbe> {
  if (cudaProbeResult) return Promise.resolve(cudaProbeResult);
  if (cudaProbeRunning) return cudaProbeRunning;
  const file = cudaFlavourPath();
  if (!file) return Promise.resolve((cudaProbeResult = NOT_BUILT));
  const { execFile } = require('node:child_process') as typeof import('node:child_process');
  cudaProbeRunning = new Promise<CudaProbe>((resolve) => {
    execFile(process.execPath, ['-e', probeCommand(file)], { encoding: 'utf8', timeout: PROBE_TIMEOUT_MS }, (err, stdout, stderr) => {
      const e = err as (Error & { code?: number | string; signal?: string | null }) | null;
      const status = e ? (typeof e.code === 'number' ? e.code : 1) : 0;
      resolve((cudaProbeResult = probeOutcome(status, e?.signal ?? null, stdout, stderr)));
    });
  });
  return cudaProbeRunning;
}

/**
 * The same answer on the calling thread: the cached one when probeCudaAsync has run (fit() and load()
 * run it first), else the child process is waited for here (up to 30 s: prefer probeCudaAsync).
 */
export function probeCuda(): CudaProbe {
  if (cudaProbeResult) return cudaProbeResult;
  const file = cudaFlavourPath();
  if (!file) return (cudaProbeResult = NOT_BUILT);
  const { spawnSync } = require('node:child_process') as typeof import('node:child_process');
  const r = spawnSync(process.execPath, ['-e', probeCommand(file)], { encoding: 'utf8', timeout: PROBE_TIMEOUT_MS });
  return (cudaProbeResult = probeOutcome(r.status, r.signal, r.stdout, r.stderr));
}

type DeviceChoice = 'auto' | 'cpu' | 'cuda';

function wantedDevice(wanted: DeviceChoice | undefined): DeviceChoice {
  const w = wanted ?? (process.env.VAECF_DEVICE as DeviceChoice | undefined) ?? 'auto';
  if (w !== 'auto' && w !== 'cpu' && w !== 'cuda') throw new Error(`device: expected 'auto', 'cpu' or 'cuda', got ${JSON.stringify(w)}`);
  return w;
}

/**
 * Run the CUDA probe ahead (asynchronously) when `wanted` needs it, so that resolveDevice answers from
 * the cache; then load the CUDA flavour and warm the GPU up off this thread (warmCudaAsync).
 */
export async function prepareDevice(wanted: DeviceChoice | undefined): Promise<void> {
  const w = wantedDevice(wanted);
  if (w === 'cpu' || (w === 'auto' && !cudaFlavourPath())) return;
  const probe = await probeCudaAsync();
  if (probe.ok) await warmCudaAsync();
}

let cudaWarming: Promise<void> | undefined;

/**
 * Loads the CUDA flavour with the event loop running. Its first load maps cuBLAS (hundreds of MB) and
 * its first engine creates the CUDA context and cuBLAS's state: hundreds of ms on the calling thread
 * (354 ms measured through fit() on an H200, bench/results/gpu-node-ml1m-2026-11-30.json). A worker
 * thread loads the addon (the libraries stay mapped for the process) and calls cudaWarmUp (the
 * context is the process's); this thread's require then finds everything loaded, and the worker is
 * ended only after it. Runs once per process, also when this thread has loaded the flavour already
 * (resolveDevice without prepareDevice): the context is then still to be made. Failures are left to
 * the calling thread's own load, which reports them.
 */
export function warmCudaAsync(): Promise<void> {
  const file = cudaFlavourPath();
  if (!file) return Promise.resolve();
  cudaWarming ??= new Promise<void>((resolve) => {
    const { Worker } = require('node:worker_threads') as typeof import('node:worker_threads');
    const source = [
      "const { parentPort, workerData } = require('node:worker_threads');",
      'let why = "";',
      'try { const a = require(workerData); why = a.cudaWarmUp ? a.cudaWarmUp() : ""; } catch (e) { why = String((e && e.message) || e); }',
      'parentPort.on("message", () => {});', // stays up (keeping the addon loaded) until terminated
      'parentPort.postMessage(why);',
    ].join('\n');
    let worker: import('node:worker_threads').Worker;
    try {
      worker = new Worker(source, { eval: true, workerData: file });
    } catch {
      resolve();
      return;
    }
    worker.unref();
    const finish = (): void => {
      try {
        // eslint-disable-next-line @typescript-eslint/no-var-requires
        cudaAddon ??= require(file) as NativeAddon;
      } catch {
        // resolveDevice loads it again and reports the error
      }
      worker.terminate().then(() => resolve(), () => resolve());
    };
    worker.once('message', finish);
    worker.once('error', () => resolve());
    worker.once('exit', () => resolve());
  });
  return cudaWarming;
}

let cudaAddon: NativeAddon | undefined;

/**
 * The addon for a device. 'cuda' needs the CUDA flavour and a GPU (a clear ERR_VAECF_NO_CUDA error
 * otherwise). 'auto' is the CUDA engine where the CUDA flavour is installed and its probe finds a GPU,
 * else the CPU engine, and the note says why: the Node binding's CUDA flavour trained Mult-VAE on an
 * H200 to the CPU engine's NDCG@100 (bench/results/gpu-node-ml1m-2026-11-30.json) after its C++
 * harness's agreement checks passed (bench/results/gpu-*.json). Call prepareDevice first to probe
 * without holding the event loop; uncached, the probe here waits for its child process.
 */
export function resolveDevice(wanted: DeviceChoice | undefined): { device: 'cpu' | 'cuda'; addon: NativeAddon; note: string } {
  const w = wantedDevice(wanted);
  if (w === 'cpu') return { device: 'cpu', addon: loadNative(), note: 'cpu' };
  if (w === 'auto' && !cudaFlavourPath()) return { device: 'cpu', addon: loadNative(), note: 'cpu' };
  const probe = probeCuda();
  if (!probe.ok) {
    if (w === 'auto') return { device: 'cpu', addon: loadNative(), note: `cpu (the CUDA flavour found no usable GPU: ${probe.reason})` };
    const e = new Error(`device 'cuda' is not usable: ${probe.reason}`) as Error & { code: string };
    e.code = 'ERR_VAECF_NO_CUDA';
    throw e;
  }
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  cudaAddon ??= require(cudaFlavourPath() as string) as NativeAddon;
  return { device: 'cuda', addon: cudaAddon, note: `cuda (${probe.reason})` };
}
