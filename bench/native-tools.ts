// Helpers the benchmarks share: the native harness (built on first use), the PyTorch interpreter, a
// CSR matrix written for bench/torch_epoch.py, and a description of this machine's CPU.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { loadNative } from '../src/native';
import type { CsrMatrix } from '../src/index';

export const ROOT = path.resolve(__dirname, '..', '..');

/** The value after `--name` on the command line, if any. */
export function option(name: string, args: readonly string[] = process.argv.slice(2)): string | undefined {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
}

/** The median of a list of timings. */
export function median(v: readonly number[]): number {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** The C++ harness (build-tests/vaecf_harness), built with CMake when missing. */
export function harness(): string {
  const bin = path.join(ROOT, 'build-tests', 'vaecf_harness');
  if (!fs.existsSync(bin)) {
    for (const args of [['-S', ROOT, '-B', path.join(ROOT, 'build-tests'), '-DVAECF_BUILD_TESTS=ON', '-DCMAKE_BUILD_TYPE=Release'], ['--build', path.join(ROOT, 'build-tests'), '-j2', '--target', 'vaecf_harness']]) {
      const r = spawnSync('cmake', args, { stdio: 'inherit' });
      if (r.status !== 0) throw new Error('building the native harness failed');
    }
  }
  return bin;
}

/** Runs the harness and returns the number printed after `key` (NaN with the output when absent). */
export function harnessNumber(args: string[], key: string): { value: number; stdout: string } {
  const r = spawnSync(harness(), args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`vaecf_harness ${args.join(' ')} failed: ${r.stderr}`);
  const m = new RegExp(`${key} ([\\d.]+)`).exec(r.stdout);
  return { value: m ? Number(m[1]) : NaN, stdout: r.stdout };
}

/** python3 (or VAECF_PYTHON, or .venv) with torch and numpy, else null. */
export function findPython(): string | null {
  for (const candidate of [process.env.VAECF_PYTHON, path.join(ROOT, '.venv', 'bin', 'python'), 'python3']) {
    if (!candidate) continue;
    const r = spawnSync(candidate, ['-c', 'import torch, numpy'], { encoding: 'utf8' });
    if (r.status === 0) return candidate;
  }
  return null;
}

/** Writes m as `${prefix}indptr.i64` and `${prefix}indices.i32` in dir (and shape.txt for the main matrix). */
export function writeCsr(dir: string, m: CsrMatrix, prefix = ''): void {
  if (!prefix) fs.writeFileSync(path.join(dir, 'shape.txt'), `${m.rows} ${m.cols}`);
  fs.writeFileSync(path.join(dir, `${prefix}indptr.i64`), Buffer.from(BigInt64Array.from(m.indptr, (x) => BigInt(x)).buffer));
  const n = Number(m.indptr[m.rows]);
  fs.writeFileSync(path.join(dir, `${prefix}indices.i32`), Buffer.from(m.indices.buffer, m.indices.byteOffset, n * 4));
}

/** The CPU as the benchmarks report it: model, cores, the SIMD flags that matter, and vaecf's choice. */
export function cpuDescription(): { model: string; cores: number; flags: string[]; simdTarget: string; bf16: string; fp32Gemm: string } {
  let flags: string[] = [];
  try {
    const info = fs.readFileSync('/proc/cpuinfo', 'utf8');
    const line = /^(flags|Features)\s*:\s*(.*)$/m.exec(info);
    const wanted = /^(sse4_2|avx|avx2|fma|f16c|avx512f|avx512bw|avx512vl|avx512dq|avx512_bf16|amx_bf16|amx_tile|asimd|sve|sve2|aes|bf16)$/;
    flags = (line?.[2] ?? '').split(/\s+/).filter((f) => wanted.test(f));
  } catch {
    /* not Linux */
  }
  const native = loadNative();
  return { model: os.cpus()[0]?.model ?? 'unknown', cores: os.cpus().length, flags, simdTarget: native.simdTarget, bf16: native.bf16Description,
    fp32Gemm: native.fp32GemmDescription };
}
