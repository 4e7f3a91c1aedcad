// Device selection: 'cpu' always works; 'auto' is the CPU engine while CUDA is opt-in; 'cuda' where no
// GPU (or no CUDA flavour) is usable is a clear error, and where a GPU answers it must agree with the CPU.
import test from 'ava';

import { cudaFlavourPath, loadNative } from '../src/native';
import { CUDA_OPT_IN_NOTE, generateClicks, MultVAE, probeCuda, resolveDevice, resolvePrecision, selectRows } from '../src/index';
import { twoGroups } from './helpers';

test("'auto' is the CPU engine until CUDA has run through Node, and says how to opt in; 'cpu' works", async (t) => {
  const auto = resolveDevice('auto');
  t.is(auto.device, 'cpu');
  if (cudaFlavourPath()) t.is(auto.note, `cpu (${CUDA_OPT_IN_NOTE})`);
  else t.is(auto.note, 'cpu');
  const model = new MultVAE({ pDims: [8, 16], threads: 1, device: 'cpu' });
  await model.fit({ train: twoGroups() }, { epochs: 1 });
  t.true(model.isFitted);
  model.dispose();
});

// Probed once at registration, in a child process: what this machine's CUDA flavour answers.
const cuda = probeCuda();
if (cuda.ok) {
  test(`device 'cuda' trains and scores like the CPU engine (${cuda.reason})`, async (t) => {
    const data = generateClicks({ users: 600, items: 300, meanClicksPerUser: 20, seed: 5 });
    const scores: Float32Array[] = [];
    for (const device of ['cpu', 'cuda'] as const) {
      const model = new MultVAE({ pDims: [16, 64], threads: 1, device, precision: 'fp32' });
      await model.fit({ train: data }, { epochs: 2, seed: 3 });
      scores.push(model.scoreRows(selectRows(data, [0, 1, 2, 3])));
      model.dispose();
    }
    let worst = 0;
    for (let i = 0; i < scores[0].length; i++) worst = Math.max(worst, Math.abs(scores[0][i] - scores[1][i]) / Math.max(1, Math.abs(scores[0][i])));
    t.true(worst < 1e-3, `largest score difference after 2 epochs: ${worst}`);
  });
} else {
  test("device 'cuda' without a usable GPU is a clear error", async (t) => {
    const gpu = new MultVAE({ pDims: [8, 16], threads: 1, device: 'cuda' });
    const e = await t.throwsAsync(gpu.fit({ train: twoGroups() }, { epochs: 1 }));
    t.regex(e!.message, /device 'cuda' is not usable: .+/);
    t.is((e as Error & { code: string }).code, 'ERR_VAECF_NO_CUDA');
  });
  test.skip(`device 'cuda' trains and scores like the CPU engine: skipped, no usable GPU (${cuda.reason})`, () => undefined);
}

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
