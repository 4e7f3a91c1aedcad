// A Mult-VAE trained by the PyTorch reference code (state_dict as safetensors; the fixture and the
// expected scores come from bench/make_torch_fixture.py with local torch) scores the same in vaecf.
import * as fs from 'node:fs';
import * as path from 'node:path';

import test from 'ava';

import { csrFromRows, importTorchStateDict, loadModel } from '../src/index';
import { tempDir } from './helpers';

const FIXTURES = path.join(__dirname, '..', '..', 'test', 'fixtures');

/** The ONNX file's outputs for the users whose clicked item indices are `histories` (dense input). */
async function runOnnx(file: string, histories: number[][], items: number) {
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const ort = require('onnxruntime-node') as typeof import('onnxruntime-node');
  const dense = new Float32Array(histories.length * items);
  histories.forEach((h, u) => h.forEach((i) => (dense[u * items + i] = 1)));
  const session = await ort.InferenceSession.create(file);
  return session.run({ clicks: new ort.Tensor('float32', dense, [histories.length, items]) });
}

/** The largest |a - b| / max(1, |a|). */
function worstRelative(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / Math.max(1, Math.abs(a[i])));
  return worst;
}

test('a PyTorch Mult-VAE state_dict gives the same scores as PyTorch within 1e-5', async (t) => {
  const expected = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'torch-multvae-scores.json'), 'utf8'));
  for (const precision of ['fp32'] as const) {
    const model = await importTorchStateDict(path.join(FIXTURES, 'torch-multvae.safetensors'), { threads: 1, precision });
    t.is(model.kind, 'mult-vae');
    t.is(model.numItems, expected.items);
    const scores = model.scoreRows(csrFromRows(expected.histories, expected.items));
    const worst = worstRelative(expected.scores.flat(), scores);
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

test('a file that is not safetensors is refused as such', async (t) => {
  const e = await t.throwsAsync(importTorchStateDict(path.join(FIXTURES, 'ml1m-reference-split.json')));
  t.regex(e!.message, /not a safetensors model|header length is out of range/);
});

test('a real safetensors file without q_layers / p_layers is refused with the tensors it holds', async (t) => {
  // A valid safetensors file (header, aligned F32 data) whose layers are named otherwise.
  const tensors = [['encoder.0.weight', [4, 3]], ['encoder.0.bias', [4]]] as const;
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const [name, shape] of tensors) {
    const bytes = shape.reduce((a, b) => a * b, 1) * 4;
    header[name] = { dtype: 'F32', shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = Buffer.from(JSON.stringify(header));
  json = Buffer.concat([json, Buffer.alloc((8 - (json.length % 8)) % 8, 0x20)]);
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(json.length));
  const file = path.join(tempDir(), 'other-names.safetensors');
  fs.writeFileSync(file, Buffer.concat([length, json, Buffer.alloc(offset)]));
  const e = await t.throwsAsync(importTorchStateDict(file));
  t.regex(e!.message, /other-names\.safetensors: no q_layers\.N \/ p_layers\.N tensors \(found encoder\.0\.weight, encoder\.0\.bias\)/);
});

test("the ONNX export of a model loaded from disk follows the file's architecture, not constructor defaults", async (t) => {
  const { train, exportOnnx } = await import('../src/index');
  const { twoGroups } = await import('./helpers');
  for (const kind of ['mult-vae', 'mult-dae', 'recvae'] as const) {
    // Not the defaults: qDims of two layers for Mult-*, a narrow three-layer RecVAE.
    const architecture = kind === 'recvae' ? { hidden: 12, latent: 4, layers: 3, threads: 1, precision: 'fp32' as const } : { pDims: [6, 10], qDims: [14, 6], threads: 1, precision: 'fp32' as const };
    const trained = await train({ train: twoGroups() }, { model: kind, epochs: 5, batchSize: 20, seed: 4, architecture });
    const file = path.join(tempDir(), `${kind}.safetensors`);
    await trained.save(file);
    const loaded = await loadModel(file, { threads: 1 }); // no architecture options: all from the file
    const onnx = path.join(tempDir(), `${kind}.onnx`);
    exportOnnx(loaded, onnx, { k: 3 });
    const histories = [[0, 1], [11, 12, 13]];
    const out = await runOnnx(onnx, histories, 20);
    const worst = worstRelative(trained.scoreRows(csrFromRows(histories, 20)), out.scores.data as Float32Array);
    t.true(worst < 1e-5, `${kind}: the loaded model's ONNX scores differ from the trained model's by ${worst}`);
    trained.dispose();
    loaded.dispose();
  }
});

test('the ONNX export gives the same scores and top-k in onnxruntime-node (Mult-VAE, Mult-DAE, RecVAE)', async (t) => {
  const { train, exportOnnx } = await import('../src/index');
  const { twoGroups } = await import('./helpers');
  for (const kind of ['mult-vae', 'mult-dae', 'recvae'] as const) {
    const architecture = kind === 'recvae' ? { hidden: 24, latent: 8, layers: 3, threads: 1, precision: 'fp32' as const } : { pDims: kind === 'mult-vae' ? [8, 32] : [16], threads: 1, precision: 'fp32' as const };
    const model = await train({ train: twoGroups() }, { model: kind, epochs: 10, batchSize: 20, seed: 2, architecture });
    const file = path.join(tempDir(), `${kind}.onnx`);
    exportOnnx(model, file, { k: 5 });
    const histories = [[0, 1, 2], [12, 15], [3]];
    const out = await runOnnx(file, histories, 20);
    const worst = worstRelative(model.scoreRows(csrFromRows(histories, 20)), out.scores.data as Float32Array);
    t.true(worst < 1e-5, `${kind}: largest score difference ${worst}`);
    const top = await model.recommendRows(csrFromRows(histories, 20), { k: 5 });
    t.deepEqual(Array.from(out.top_items.data as BigInt64Array, Number), Array.from(top.items), `${kind}: top-k`);
    model.dispose();
  }
});

test("model files, the ONNX export and the PyTorch import share the engine's parameter layout", async (t) => {
  const { train, readModelFileAsync } = await import('../src/index');
  const { twoGroups } = await import('./helpers');
  for (const kind of ['mult-vae', 'mult-dae', 'recvae'] as const) {
    const architecture = kind === 'recvae' ? { hidden: 12, latent: 4, layers: 2, threads: 1, precision: 'fp32' as const } : { pDims: [6, 10], threads: 1, precision: 'fp32' as const };
    const model = await train({ train: twoGroups() }, { model: kind, epochs: 1, batchSize: 40, seed: 1, architecture });
    const config = model.learned().config;
    const layout = model.parameterTensors(config);
    // Back to back, in order, covering every parameter once.
    let end = 0;
    for (const spec of layout) {
      t.is(spec.offset, end, `${kind}: ${spec.name} starts where the previous tensor ends`);
      end += spec.shape.reduce((a, b) => a * b, 1);
    }
    const params = model.getParameters();
    t.is(end, params.length, `${kind}: the layout covers the parameter vector`);
    // A saved file holds exactly these tensors, with these shapes and values.
    const file = path.join(tempDir(), `${kind}.safetensors`);
    await model.save(file, { weightsOnly: true });
    const { tensors } = await readModelFileAsync(file);
    t.deepEqual([...tensors.keys()], layout.map((s) => s.name), `${kind}: tensor names in the file`);
    for (const spec of layout) {
      const saved = tensors.get(spec.name)!;
      t.deepEqual(saved.shape, spec.shape);
      t.deepEqual(Array.from(saved.data), Array.from(params.subarray(spec.offset, spec.offset + saved.data.length)), `${kind}: ${spec.name} values`);
    }
    model.dispose();
  }
});

test("a loaded model keeps the precision it was saved with where this machine runs it, else 'auto'", async (t) => {
  const { MultVAE, resolvePrecision } = await import('../src/index');
  const { readModelFileAsync, writeModelFile } = await import('../src/io/model-file');
  const { bf16Available } = await import('../src/native').then((n) => n.loadNative());
  const dir = tempDir();
  const items = 12;
  const train = csrFromRows([[0, 1, 2], [2, 3, 4], [5, 6, 7], [8, 9, 10, 11], [1, 4, 7]], items);
  const m = new MultVAE({ pDims: [4, 8], threads: 1, precision: 'fp32' });
  await m.fit({ train }, { epochs: 1, seed: 3 });
  const file = path.join(dir, 'fp32.safetensors');
  await m.save(file);
  const before = await m.recommendRows(csrFromRows([[0, 1]], items), { k: 5 });
  m.dispose();
  // Saved in fp32: loaded in fp32 even where 'auto' would be bf16, with the same answers.
  const loaded = await loadModel(file, { threads: 1 });
  t.is((loaded as InstanceType<typeof MultVAE>).precision, 'fp32');
  t.deepEqual(Array.from((await loaded.recommendRows(csrFromRows([[0, 1]], items), { k: 5 })).items), Array.from(before.items));
  loaded.dispose();
  // Saved as bf16 (as on a machine with AMX): bf16 here if this machine runs it, else what 'auto' gives.
  // Saved as tf32 (a CUDA precision): on the CPU engine, 'auto'. An explicit option still wins.
  const contents = await readModelFileAsync(file);
  for (const stored of ['bf16', 'tf32'] as const) {
    const other = path.join(dir, `${stored}.safetensors`);
    const metadata = { ...contents.metadata, architecture: { ...(contents.metadata.architecture as object), precision: stored } };
    await writeModelFile(other, metadata, Array.from(contents.tensors.values()));
    const l = (await loadModel(other, { threads: 1, device: 'cpu' })) as InstanceType<typeof MultVAE>;
    t.is(l.precision, stored === 'bf16' && bf16Available ? 'bf16' : resolvePrecision('auto').precision, `saved as ${stored}`);
    l.dispose();
    const explicit = (await loadModel(other, { threads: 1, device: 'cpu', precision: 'fp32' })) as InstanceType<typeof MultVAE>;
    t.is(explicit.precision, 'fp32');
    explicit.dispose();
  }
});
