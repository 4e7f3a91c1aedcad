// `npm run bench`: (1) quality: the paper's protocol on the data present, ours beside the published
// numbers; (2) speed at ML-20M shape: seconds per epoch (bf16 and fp32), scoring throughput and peak RSS
// of vaecf, side by side in the same run with PyTorch on the CPU running the reference formulation (when
// python3 with torch is available) and with the matrix-product bound measured on this machine. Prints
// ratios and writes JSON (bench/results/bench-latest.json unless --json).
//
// usage: npm run bench -- [--data FILE|DIR] [--epochs N] [--skip-quality] [--skip-speed] [--torch-batches N]
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { generateClicks, ML20M_SHAPE } from '../src/index';
import { loadNative } from '../src/native';
import { cpuDescription, findPython, harness, option as opt, ROOT, writeCsr } from './native-tools';
import { runQuality, type QualityResult } from './quality';

const argv = process.argv.slice(2);
const flag = (name: string): boolean => argv.includes(`--${name}`);
const log = (s: string): void => void process.stdout.write(`${s}\n`);

function defaultQualityData(): string {
  const candidates = [opt('data'), path.join(ROOT, 'datasets', 'ml-20m', 'ratings.csv')];
  for (const c of candidates) if (c && fs.existsSync(c)) return c;
  return 'ml-1m';
}

async function speed(threads: number): Promise<Record<string, unknown>> {
  const epochScript = path.join(__dirname, 'epoch-speed.js');
  const run = (precision: string): Record<string, unknown> => {
    const out = path.join(os.tmpdir(), `vaecf-epoch-${precision}-${process.pid}.json`);
    log(`vaecf, ${precision}: one epoch at ML-20M shape ...`);
    const r = spawnSync(process.execPath, [epochScript, `--${precision}`, '--threads', String(threads), '--json', out], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`epoch-speed failed: ${r.stderr}`);
    const result = JSON.parse(fs.readFileSync(out, 'utf8'));
    fs.rmSync(out);
    return result;
  };
  // bf16 only where this processor runs it natively (elsewhere 'auto' is fp32: one run, not two).
  const { bf16Available, bf16Description } = loadNative();
  const bf16 = bf16Available ? run('bf16') : null;
  if (!bf16) log(`vaecf, bf16: skipped (${bf16Description})`);
  const fp32 = run('fp32');

  // The matrix-product bound: an epoch's FLOPs over the GEMM rates measured here (the best of three: the
  // rate least disturbed by the machine's neighbours, the tightest bound).
  const gemmRuns = [0, 1, 2].map(() => spawnSync(harness(), ['gemm', '--threads', String(threads)], { encoding: 'utf8' }).stdout);
  const rate = (key: string): number => Math.max(...gemmRuns.map((out) => Number(new RegExp(`${key} ([\\d.]+)`).exec(out)?.[1] ?? NaN)));
  const fp32Rate = rate('fp32_rate');
  const bf16Rate = bf16 ? rate('bf16_rate') : null;
  const I = ML20M_SHAPE.items;
  const users = ML20M_SHAPE.users;
  // forward + two backward products per dense layer, 2 FLOPs per multiply-add; the sparse first layer is left out
  const flopsPerUser = 6 * (600 * I + 600 * 400 + 200 * 600);
  const epochFlops = flopsPerUser * users;
  const outputLayerFlops = 6 * 600 * I * users;
  const bound = {
    epochTflop: epochFlops / 1e12, fp32GflopPerS: fp32Rate, bf16GflopPerS: bf16Rate, fp32Seconds: epochFlops / (fp32Rate * 1e9),
    bf16Seconds: bf16Rate ? outputLayerFlops / (bf16Rate * 1e9) + (epochFlops - outputLayerFlops) / (fp32Rate * 1e9) : null,
  };

  let torch: Record<string, unknown> | null = null;
  const python = findPython();
  if (python) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vaecf-torch-'));
    writeCsr(dir, generateClicks({ ...ML20M_SHAPE, seed: 20 }));
    const batches = opt('torch-batches') ?? '10';
    log(`PyTorch (${python}), reference formulation: ${batches} batches ...`);
    const r = spawnSync(python, [path.join(ROOT, 'bench', 'torch_epoch.py'), dir, '--batches', batches, '--threads', String(threads)], { encoding: 'utf8' });
    fs.rmSync(dir, { recursive: true, force: true });
    if (r.status === 0) torch = JSON.parse(r.stdout.trim().split('\n').pop() as string);
    else log(`PyTorch run failed: ${r.stderr.slice(-500)}`);
  } else {
    log('PyTorch: no python3 with torch found (pip install torch==2.13.0, or set VAECF_PYTHON); skipped');
  }
  const oursFp32 = (fp32.secondsPerEpoch as number[])[0];
  const oursBf16 = bf16 ? (bf16.secondsPerEpoch as number[])[0] : null;
  const cpu = cpuDescription();
  const lines = [
    `speed at ML-20M shape (${users} users x ${I} items, ${(fp32.shape as { clicks: number }).clicks} clicks, I-600-200-600-I, batch 500, ${threads} threads)`,
    `  CPU ${cpu.model}, ${cpu.cores} cores, flags ${cpu.flags.join(' ')}; SIMD kernels ${cpu.simdTarget}; bf16: ${cpu.bf16}; fp32 products: ${cpu.fp32Gemm}`,
    oursBf16 !== null ? `  vaecf bf16 (${bf16?.precision}): ${oursBf16.toFixed(1)} s/epoch` : `  vaecf bf16: not run (${bf16Description})`,
    `  vaecf fp32 (${fp32.precision}): ${oursFp32.toFixed(1)} s/epoch`,
    `  matrix-product bound: ${bound.epochTflop.toFixed(1)} TFLOP/epoch; fp32 ${fp32Rate.toFixed(0)} GFLOP/s -> ${bound.fp32Seconds.toFixed(1)} s` +
      (bound.bf16Seconds !== null && bf16Rate !== null ? `; bf16 output layer ${bf16Rate.toFixed(0)} GFLOP/s -> ${bound.bf16Seconds.toFixed(1)} s` : ''),
    `  ratio to the bound: fp32 ${(oursFp32 / bound.fp32Seconds).toFixed(2)}x` +
      (oursBf16 !== null && bound.bf16Seconds !== null ? `, bf16 ${(oursBf16 / bound.bf16Seconds).toFixed(2)}x` : ''),
  ];
  if (torch) {
    const t = torch.seconds_per_epoch_extrapolated as number;
    lines.push(`  PyTorch ${torch.torch} (dense batch, nn.Linear, log_softmax * x): ${t.toFixed(1)} s/epoch (from ${torch.batches_timed} timed batches)`);
    lines.push(`  speed-up over PyTorch: fp32 ${(t / oursFp32).toFixed(2)}x` + (oursBf16 !== null ? `, bf16 ${(t / oursBf16).toFixed(2)}x` : ''));
  }
  const main = bf16 ?? fp32;
  const sc = main.scoring as { users: number; seconds: number; usersPerSecond: number };
  lines.push(`  scoring ${sc.users} users, top-100 (${main.precision}): ${sc.seconds.toFixed(2)} s (${sc.usersPerSecond.toFixed(0)} users/s)`);
  lines.push(`  peak RSS of a training process: ${bf16 ? `bf16 ${(bf16.peakRssMiB as number).toFixed(0)} MiB, ` : ''}fp32 ${(fp32.peakRssMiB as number).toFixed(0)} MiB`);
  return { cpu, bf16, fp32, bound, torch, table: lines.join('\n') };
}

async function main(): Promise<void> {
  const threads = Number(opt('threads') ?? os.availableParallelism());
  const result: Record<string, unknown> = { date: new Date().toISOString(), machine: { ...cpuDescription(), memoryGiB: os.totalmem() / 2 ** 30 } };
  let quality: QualityResult | null = null;
  if (!flag('skip-quality')) {
    quality = await runQuality({
      dataset: defaultQualityData(),
      models: (opt('models') ?? 'popularity,ease,vae,dae').split(','),
      epochs: Number(opt('epochs') ?? 200),
      precision: 'auto',
      threads,
      log,
    });
    result.quality = quality;
  }
  let speedResult: Record<string, unknown> | null = null;
  if (!flag('skip-speed')) {
    speedResult = await speed(threads);
    result.speed = speedResult;
  }
  log('');
  if (quality) log(quality.table);
  if (speedResult) log(`\n${speedResult.table}`);
  const out = opt('json') ?? path.join(ROOT, 'bench', 'results', 'bench-latest.json');
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, JSON.stringify(result, null, 2));
  log(`\nresults: ${out}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
