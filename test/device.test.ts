// Device selection: 'cpu' always works; 'cuda' where no GPU (or no CUDA flavour) is usable is a clear
// error; 'auto' falls back to the CPU engine and says why.
import test from 'ava';

import { MultVAE, resolveDevice } from '../src/index';
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
