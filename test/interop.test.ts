// A Mult-VAE trained by the PyTorch reference code (state_dict as safetensors; the fixture and the
// expected scores come from bench/make_torch_fixture.py with local torch) scores the same in vaecf.
import * as fs from 'node:fs';
import * as path from 'node:path';

import test from 'ava';

import { csrFromRows, importTorchStateDict, loadModel } from '../src/index';
import { tempDir } from './helpers';

const FIXTURES = path.join(__dirname, '..', '..', 'test', 'fixtures');

test('a PyTorch Mult-VAE state_dict gives the same scores as PyTorch within 1e-5', async (t) => {
  const expected = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'torch-multvae-scores.json'), 'utf8'));
  for (const precision of ['fp32'] as const) {
    const model = await importTorchStateDict(path.join(FIXTURES, 'torch-multvae.safetensors'), { threads: 1, precision });
    t.is(model.kind, 'mult-vae');
    t.is(model.numItems, expected.items);
    const scores = model.scoreRows(csrFromRows(expected.histories, expected.items));
    let worst = 0;
    expected.scores.flat().forEach((v: number, i: number) => (worst = Math.max(worst, Math.abs(v - scores[i]) / Math.max(1, Math.abs(v)))));
    t.true(worst < 1e-5, `largest difference ${worst}`);
    // And it round-trips through vaecf's own format.
    const file = path.join(tempDir(), 'imported.safetensors');
    await model.save(file);
    const again = await loadModel(file, { threads: 1, precision });
    t.deepEqual(again.scoreRows(csrFromRows(expected.histories, expected.items)), scores);
    model.dispose();
    again.dispose();
  }
});

test('a file without q_layers / p_layers is refused with what was found', async (t) => {
  const e = await t.throwsAsync(importTorchStateDict(path.join(FIXTURES, 'ml1m-reference-split.json')));
  t.regex(e!.message, /not a safetensors model|header length is out of range/);
});
