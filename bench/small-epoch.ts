// An epoch on a small dataset, the way most people start: the paper's protocol on ML-1M (or a file
// given with --data), training plus the validation pass (NDCG@100 of the held-out users) per epoch.
// Side by side in one run: vaecf, the matrix-product bound of the same work at the GEMM rate measured
// here at this shape, and PyTorch running the reference formulation (RecoTour's loop: dense batches,
// validation every epoch) when torch is installed. Where the CPU runs bf16 natively, vaecf also in bf16
// (what precision 'auto' picks there: the item output layer's products in bf16), with its own bound
// (those products at the measured bf16 rate, the rest at the fp32 rate). Prints ratios and writes JSON.
//
// usage: node dist/bench/small-epoch.js [--data ml-1m|FILE] [--epochs N] [--torch-epochs N] [--threads N] [--json OUT]
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { MultVAE, preparePaperProtocol, readInteractions } from '../src/index';
import { loadNative } from '../src/native';
import { cpuDescription, findPython, harnessNumber, median, option as opt, ROOT, writeCsr } from './native-tools';
import { DATASETS } from './quality';

const argv = process.argv.slice(2);

async function main(): Promise<void> {
  const threads = Number(opt('threads') ?? os.availableParallelism());
  const epochs = Number(opt('epochs') ?? 10);
  const torchEpochs = Number(opt('torch-epochs') ?? 4);
  const which = opt('data') ?? 'ml-1m';
  const cpu = cpuDescription();
  console.log(`CPU: ${cpu.model}, ${cpu.cores} cores, flags ${cpu.flags.join(' ')}; vaecf SIMD target ${cpu.simdTarget}; bf16: ${cpu.bf16}; fp32 products: ${cpu.fp32Gemm}`);
  const data = DATASETS[which] ? await DATASETS[which]().load() : preparePaperProtocol(await readInteractions(which), { heldOutUsers: 0.1 });
  const items = data.train.cols, trainUsers = data.train.rows, valUsers = data.validation.foldIn.rows;
  console.log(`${which}: ${trainUsers} training users x ${items} items, ${valUsers} validation users`);

  // vaecf: fp32 (the precision every CPU runs), I-600-200-600-I, batch 500, validation every epoch.
  const train = async (precision: 'fp32' | 'bf16') => {
    const model = new MultVAE({ pDims: [200, 600], threads, precision });
    const seconds: number[] = [];
    let ndcg = NaN;
    await model.fit({ train: data.train, validation: data.validation }, {
      epochs, batchSize: 500, seed: 1, metric: 'ndcg@100',
      onEpoch: (r) => {
        seconds.push(r.seconds);
        ndcg = r.validation?.['ndcg@100'] ?? NaN;
      },
    });
    model.dispose();
    // The first epoch pays one-time costs (allocation, packing); the median of the others is the rate.
    return { seconds, median: median(seconds.slice(1)), ndcg };
  };
  const fp32 = await train('fp32');
  const { seconds, ndcg } = fp32;
  const ours = fp32.median;
  const { bf16Available, bf16Description } = loadNative();
  const bf16 = bf16Available ? await train('bf16') : null;

  // The bound: the dense matrix products of training (forward + two backward per layer) and of the
  // validation forward, at the fp32 GEMM rate measured at this shape; the sparse first layer is left out.
  // The best of three measurements: the rate least disturbed by the machine's neighbours (the tightest bound).
  const rates = [0, 1, 2].map(() => harnessNumber(['gemm', '--items', String(items), '--threads', String(threads)], 'fp32_rate').value);
  const gemm = { value: Math.max(...rates) };
  const denseMacs = 600 * 400 + 200 * 600 + 600 * items;
  const flops = 6 * denseMacs * trainUsers + 2 * denseMacs * valUsers;
  const bound = flops / (gemm.value * 1e9);
  // bf16: the item output layer's products (training; validation scores in fp32) at the bf16 rate.
  const outputFlops = 6 * 600 * items * trainUsers;
  const bf16Rates = bf16 ? [0, 1, 2].map(() => harnessNumber(['gemm', '--items', String(items), '--threads', String(threads)], 'bf16_rate').value) : [];
  const bf16Rate = bf16 ? Math.max(...bf16Rates) : NaN;
  const bf16Bound = bf16 ? outputFlops / (bf16Rate * 1e9) + (flops - outputFlops) / (gemm.value * 1e9) : NaN;

  let torch: Record<string, unknown> | null = null;
  const python = findPython();
  if (torchEpochs < 1) {
    console.log('PyTorch: --torch-epochs 0; skipped');
  } else if (python) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vaecf-small-'));
    const vdir = path.join(dir, 'validation');
    fs.mkdirSync(vdir);
    writeCsr(dir, data.train);
    writeCsr(vdir, data.validation.foldIn);
    writeCsr(vdir, data.validation.targets, 'targets_');
    console.log(`PyTorch (${python}): ${torchEpochs} epochs with validation ...`);
    const r = spawnSync(python, [path.join(ROOT, 'bench', 'torch_epoch.py'), dir, '--epochs', String(torchEpochs), '--validation', vdir, '--threads', String(threads)], { encoding: 'utf8' });
    fs.rmSync(dir, { recursive: true, force: true });
    if (r.status === 0) torch = JSON.parse(r.stdout.trim().split('\n').pop() as string);
    else console.log(`PyTorch run failed: ${r.stderr.slice(-500)}`);
  } else {
    console.log('PyTorch: no python3 with torch found (pip install torch==2.13.0, or set VAECF_PYTHON); skipped');
  }
  const torchSeconds = torch ? median((torch.seconds_per_epoch as number[]).slice(torchEpochs > 1 ? 1 : 0)) : NaN;

  const lines = [
    `${which}, I-600-200-600-I, batch 500, fp32, ${threads} threads, training + validation per epoch (CPU ${cpu.model}; ${cpu.flags.join(' ')}; SIMD ${cpu.simdTarget})`,
    `  vaecf: ${ours.toFixed(3)} s/epoch (median of epochs 2-${epochs}; validation NDCG@100 after ${epochs} epochs ${ndcg.toFixed(4)})`,
    `  matrix-product bound: ${(flops / 1e9).toFixed(1)} GFLOP at ${gemm.value.toFixed(0)} GFLOP/s (fp32 GEMM at this shape) -> ${bound.toFixed(3)} s; vaecf at ${(ours / bound).toFixed(2)}x the bound`,
  ];
  if (bf16) {
    lines.push(`  vaecf bf16 (${bf16Description}): ${bf16.median.toFixed(3)} s/epoch (validation NDCG@100 after ${epochs} epochs ${bf16.ndcg.toFixed(4)}); ` +
      `bound with the output layer at ${bf16Rate.toFixed(0)} GFLOP/s (bf16) -> ${bf16Bound.toFixed(3)} s; vaecf bf16 at ${(bf16.median / bf16Bound).toFixed(2)}x its bound`);
  } else {
    lines.push(`  vaecf bf16: not run (${bf16Description})`);
  }
  if (torch) {
    lines.push(`  PyTorch ${torch.torch} (RecoTour's loop, fp32): ${torchSeconds.toFixed(3)} s/epoch -> vaecf fp32 ${(torchSeconds / ours).toFixed(2)}x faster` +
      (bf16 ? `, vaecf bf16 ${(torchSeconds / bf16.median).toFixed(2)}x` : ''));
  }
  console.log(`\n${lines.join('\n')}`);
  const out = opt('json');
  if (out) {
    fs.mkdirSync(path.dirname(out), { recursive: true });
    fs.writeFileSync(out, `${JSON.stringify({
      date: new Date().toISOString(), command: `node dist/bench/small-epoch.js ${argv.join(' ')}`, machine: { ...cpu, memoryGiB: os.totalmem() / 2 ** 30 },
      dataset: which, shape: { trainUsers, items, validationUsers: valUsers }, threads,
      vaecf: { secondsPerEpoch: seconds, median: ours, validationNdcg100: ndcg }, bound: { gflop: flops / 1e9, fp32GflopPerS: gemm.value, measuredRates: rates, seconds: bound },
      bf16: bf16 ? { secondsPerEpoch: bf16.seconds, median: bf16.median, validationNdcg100: bf16.ndcg, bf16GflopPerS: bf16Rate, measuredRates: bf16Rates, boundSeconds: bf16Bound } : null,
      torch, ratios: { vaecfOverBound: ours / bound, torchOverVaecf: torchSeconds / ours,
        bf16OverBound: bf16 ? bf16.median / bf16Bound : null, torchOverVaecfBf16: bf16 ? torchSeconds / bf16.median : null }, table: lines.join('\n'),
    }, null, 2)}\n`);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
