// Device selection: 'cpu' always works; 'auto' is the CUDA engine only where the CUDA flavour finds a
// GPU; 'cuda' where no GPU (or no CUDA flavour) is usable is a clear error, and where a GPU answers it
// must agree with the CPU.
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import test from 'ava';

import { cudaFlavourPath, loadNative } from '../src/native';
import { generateClicks, MultVAE, prepareDevice, probeCuda, RecVAE, resolveDevice, resolvePrecision, selectRows } from '../src/index';
import { twoGroups } from './helpers';

test("'auto' is the CUDA engine only where the CUDA flavour finds a GPU, else the CPU engine with the reason; 'cpu' works", async (t) => {
  await prepareDevice('auto');
  const auto = resolveDevice('auto');
  if (!cudaFlavourPath()) {
    t.is(auto.device, 'cpu');
    t.is(auto.note, 'cpu');
  } else {
    const probe = probeCuda();
    t.is(auto.device, probe.ok ? 'cuda' : 'cpu');
    t.is(auto.note, probe.ok ? `cuda (${probe.reason})` : `cpu (the CUDA flavour found no usable GPU: ${probe.reason})`);
  }
  const model = new MultVAE({ pDims: [8, 16], threads: 1, device: 'cpu' });
  await model.fit({ train: twoGroups() }, { epochs: 1 });
  t.true(model.isFitted);
  model.dispose();
});

// Probed once at registration, in a child process: what this machine's CUDA flavour answers.
const cuda = probeCuda();
// Trains a model of each kind on 'cpu' and on 'cuda' (same seed) and gives the largest relative score difference.
async function cpuCudaScoreDifference(make: (device: 'cpu' | 'cuda') => MultVAE | RecVAE, seed: number): Promise<number> {
  const data = generateClicks({ users: 600, items: 300, meanClicksPerUser: 20, seed });
  const scores: Float32Array[] = [];
  for (const device of ['cpu', 'cuda'] as const) {
    const model = make(device);
    await model.fit({ train: data }, { epochs: 2, seed: 3 });
    scores.push(model.scoreRows(selectRows(data, [0, 1, 2, 3])));
    model.dispose();
  }
  let worst = 0;
  for (let i = 0; i < scores[0].length; i++) worst = Math.max(worst, Math.abs(scores[0][i] - scores[1][i]) / Math.max(1, Math.abs(scores[0][i])));
  return worst;
}

if (cuda.ok) {
  test(`device 'cuda' trains and scores like the CPU engine (${cuda.reason})`, async (t) => {
    const worst = await cpuCudaScoreDifference((device) => new MultVAE({ pDims: [16, 64], threads: 1, device, precision: 'fp32' }), 5);
    t.true(worst < 1e-3, `largest score difference after 2 epochs: ${worst}`);
  });
  test(`RecVAE with device 'cuda' trains and scores like the CPU engine (${cuda.reason})`, async (t) => {
    const worst = await cpuCudaScoreDifference((device) => new RecVAE({ hidden: 32, latent: 8, layers: 3, threads: 1, device, precision: 'fp32' }), 6);
    t.true(worst < 1e-3, `largest score difference after 2 epochs: ${worst}`);
  });
} else {
  test("device 'cuda' without a usable GPU is a clear error", async (t) => {
    const gpu = new MultVAE({ pDims: [8, 16], threads: 1, device: 'cuda' });
    const e = await t.throwsAsync(gpu.fit({ train: twoGroups() }, { epochs: 1 }));
    t.regex(e!.message, /device 'cuda' is not usable: .+/);
    t.is((e as Error & { code: string }).code, 'ERR_VAECF_NO_CUDA');
  });
  test("RecVAE with device 'cuda' and no usable GPU is the same clear error", async (t) => {
    const gpu = new RecVAE({ hidden: 8, latent: 4, layers: 2, threads: 1, device: 'cuda' });
    const e = await t.throwsAsync(gpu.fit({ train: twoGroups() }, { epochs: 1 }));
    t.is((e as Error & { code: string }).code, 'ERR_VAECF_NO_CUDA');
  });
  test.skip(`device 'cuda' trains and scores like the CPU engine: skipped, no usable GPU (${cuda.reason})`, () => undefined);
  test.skip(`RecVAE with device 'cuda' trains and scores like the CPU engine: skipped, no usable GPU (${cuda.reason})`, () => undefined);
}

// In a child process (its own caches and VAECF_CUDA_ADDON): a "CUDA flavour" that is not an addon.
test('the CUDA warm-up settles when the flavour cannot load, and leaves the error to the device check', (t) => {
  const native = path.join(__dirname, '..', 'src', 'native.js');
  const script = `
    const n = require(${JSON.stringify(native)});
    const timer = setTimeout(() => { console.log('hung'); process.exit(2); }, 20000);
    n.warmCudaAsync().then(() => {
      clearTimeout(timer);
      let code = 'none';
      try { n.resolveDevice('cuda'); } catch (e) { code = e.code; }
      console.log('settled ' + code);
    }, (e) => console.log('rejected ' + e.message));`;
  const fake = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'vaecf-fake-cuda-')), 'vaecf_cuda.node');
  fs.writeFileSync(fake, 'not a shared library');
  const out = execFileSync(process.execPath, ['-e', script], { encoding: 'utf8', env: { ...process.env, VAECF_CUDA_ADDON: fake } });
  t.is(out.trim(), 'settled ERR_VAECF_NO_CUDA');
});

test("precision: 'tf32' is refused on the CPU with what to use; CUDA resolves 'auto' to bf16", (t) => {
  const e = t.throws(() => resolvePrecision('tf32', 'cpu'));
  t.regex(e!.message, /'tf32' is a CUDA precision .* use 'fp32', 'bf16' or 'auto'/);
  t.is(resolvePrecision('auto', 'cuda').precision, 'bf16');
  t.is(resolvePrecision('tf32', 'cuda').precision, 'tf32');
  t.is(resolvePrecision('fp32', 'cuda').precision, 'fp32');
  const bad = t.throws(() => resolvePrecision('fp16' as never));
  t.regex(bad!.message, /expected 'auto', 'fp32', 'bf16' or 'tf32', got "fp16"/);
});

test('the native layer refuses tf32 for the CPU engine (a clear error, not a crash)', (t) => {
  const { NativeModel } = loadNative();
  const e = t.throws(() => new NativeModel({
    encoderDims: [20, 8, 4], decoderDims: [4, 8, 20], variational: true, encoderDropout: [0.5, 0], decoderDropout: [0, 0],
    threads: 1, precision: 'tf32', device: 'cpu',
  }));
  t.regex(e!.message, /'tf32' is a CUDA precision/);
});

test('VAECF_FP32_GEMM chooses what runs the fp32 products, shows it in the precision note, and a wrong value is named with the fallback', (t) => {
  const probe = (value: string | undefined): { out: string; err: string } => {
    const env = { ...process.env };
    if (value === undefined) delete env.VAECF_FP32_GEMM;
    else env.VAECF_FP32_GEMM = value;
    const script =
      "const n = require('./dist/src/native.js').loadNative(); const i = require('./dist/src/index.js');" +
      "console.log(JSON.stringify({ d: n.fp32GemmDescription, bf16: n.bf16Description, note: i.resolvePrecision('fp32').note }));";
    const r = spawnSync(process.execPath, ['-e', script], { cwd: path.join(__dirname, '..', '..'), env, encoding: 'utf8' });
    return { out: r.stdout.trim(), err: r.stderr };
  };
  const openblas = JSON.parse(probe('openblas').out);
  t.regex(openblas.d, /^(OpenBLAS|Accelerate).*VAECF_FP32_GEMM=openblas/);
  t.true(openblas.note.includes(`fp32 products ${openblas.d.split(';')[0]}`), openblas.note);
  const byDefault = JSON.parse(probe(undefined).out);
  const wrong = probe('mkl');
  t.is(JSON.parse(wrong.out).d, byDefault.d, 'a wrong value falls back to the default choice');
  t.regex(wrong.err, /VAECF_FP32_GEMM=mkl is not 'openblas' or 'onednn'/);
  if (/built without oneDNN/.test(openblas.bf16)) {
    t.log(`skipped the oneDNN half: ${openblas.bf16}`);
    t.regex(JSON.parse(probe('onednn').out).d, /^OpenBLAS|^Accelerate/);
    return;
  }
  t.regex(JSON.parse(probe('onednn').out).d, /^oneDNN \d+\.\d+ .*VAECF_FP32_GEMM=onednn/);
});
