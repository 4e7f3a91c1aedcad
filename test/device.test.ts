// Device selection: 'cpu' always works; 'cuda' where no GPU (or no CUDA flavour) is usable is a clear
// error; 'auto' falls back to the CPU engine and says why.
import test from 'ava';

import { loadNative } from '../src/native';
import { MultVAE, resolveDevice, resolvePrecision } from '../src/index';
import { twoGroups } from './helpers';

test('auto falls back to the CPU engine with the reason; cpu works; cuda without a GPU is a clear error', async (t) => {
  const auto = resolveDevice('auto');
  if (auto.device === 'cuda') {
    t.log(`a GPU answered here: ${auto.note}`);
    t.pass();
    return;
  }
  t.regex(auto.note, /^cpu \(no CUDA: .+\)$/);
  const model = new MultVAE({ pDims: [8, 16], threads: 1, device: 'cpu' });
  await model.fit({ train: twoGroups() }, { epochs: 1 });
  t.true(model.isFitted);
  model.dispose();
  const gpu = new MultVAE({ pDims: [8, 16], threads: 1, device: 'cuda' });
  const e = await t.throwsAsync(gpu.fit({ train: twoGroups() }, { epochs: 1 }));
  t.regex(e!.message, /device 'cuda' is not usable: .+/);
  t.is((e as Error & { code: string }).code, 'ERR_VAECF_NO_CUDA');
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
