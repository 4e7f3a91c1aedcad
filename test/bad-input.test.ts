// Bad input gets a clear error naming the field, row or file and what was expected; never a crash,
// never a half-written file.
import * as fs from 'node:fs';
import * as path from 'node:path';

import test from 'ava';

import { csrFromRows, loadModel, MultVAE, train, type CsrMatrix } from '../src/index';
import { loadNative, nativeLoadAdvice } from '../src/native';
import { seededRandom, tempDir, twoGroups } from './helpers';

// A Mult-VAE of one epoch on twoGroups(), I-4-8-I: the model the file and option tests poke at.
const tinyModel = (data: CsrMatrix, itemIds?: string[]) =>
  train({ train: data, itemIds }, { epochs: 1, batchSize: 50, architecture: { pDims: [4, 8] } });

// A tiny model saved to a fresh folder (and released): the folder, the file and its bytes.
async function savedTinyModel(itemIds?: (cols: number) => string[]): Promise<{ dir: string; file: string; bytes: Buffer }> {
  const data = twoGroups();
  const model = await tinyModel(data, itemIds?.(data.cols));
  const dir = tempDir();
  const file = path.join(dir, 'm.safetensors');
  await model.save(file);
  model.dispose();
  return { dir, file, bytes: fs.readFileSync(file) };
}

test('non-finite click values are refused with the row', async (t) => {
  const m = csrFromRows([[0, 1], [2]], 3);
  const bad: CsrMatrix = { ...m, values: Float32Array.from([1, Number.NaN, 1]) };
  const e = await t.throwsAsync(train({ train: bad }, { epochs: 1 }));
  t.regex(e!.message, /data\.train: row 0 has click value NaN, expected a finite positive number/);
});

test('item ids out of range are refused with the row and the range', async (t) => {
  const m = csrFromRows([[0, 1], [7]], 3);
  const e = await t.throwsAsync(train({ train: m }, { epochs: 1 }));
  t.regex(e!.message, /row 1 has item index 7, expected 0 <= index < 3/);
});

test('empty training rows are refused', async (t) => {
  const m = csrFromRows([[0, 1], []], 3);
  const e = await t.throwsAsync(train({ train: m }, { epochs: 1 }));
  t.regex(e!.message, /row 1 has no items/);
});

test('wrong shapes are refused', async (t) => {
  const m = csrFromRows([[0, 1], [2]], 3);
  const e1 = await t.throwsAsync(train({ train: { ...m, indptr: m.indptr.subarray(0, 2) } }, { epochs: 1 }));
  t.regex(e1!.message, /indptr: expected length rows \+ 1 = 3, got 2/);
  const e2 = await t.throwsAsync(train({ train: { ...m, indices: Array.from(m.indices) as unknown as Int32Array } }, { epochs: 1 }));
  t.regex(e2!.message, /indices: expected an Int32Array/);
  const data = twoGroups();
  const model = await tinyModel(data);
  const e3 = await t.throwsAsync(model.recommendRows(csrFromRows([[1]], 21)));
  t.regex(e3!.message, /expected 20 item columns/);
  const e4 = await t.throwsAsync(train({ train: data, validation: { foldIn: csrFromRows([[1]], 20), targets: csrFromRows([[2], [3]], 20) } }, { epochs: 1 }));
  t.regex(e4!.message, /foldIn and targets must have the same number of users/);
  model.dispose();
});

test('bad options name the option and what was expected', async (t) => {
  const data = twoGroups();
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ epochs: 0 }, /epochs: expected a positive integer, got 0/],
    [{ learningRate: -1 }, /learningRate: expected a positive number/],
    [{ optimizer: 'sgd' }, /optimizer: expected 'adam' or 'adamw'/],
    [{ beta: { schedule: 'cosine' } }, /beta\.schedule: expected 'linear', 'constant' or 'epoch-relative'/],
    [{ metric: 'auc' }, /metric "auc": expected ndcg@K/],
    [{ epochz: 3 }, /unknown training option "epochz"/],
    [{ architecture: { pDims: [4, -2] } }, /pDims: expected a non-empty array of positive integers/],
    [{ architecture: { pDims: [4, 8], encoderDropout: [0.5] } }, /encoderDropout: expected 2 probabilities/],
    [{ model: 'rbm' }, /model: expected 'mult-vae', 'mult-dae' or 'recvae'/],
  ];
  for (const [options, message] of cases) {
    const e = await t.throwsAsync(train({ train: data }, options));
    t.regex(e!.message, message);
  }
});

test('the native layer turns its own errors into exceptions with a code', async (t) => {
  const { NativeModel } = loadNative();
  t.throws(() => new NativeModel({ encoderDims: [5, 3], decoderDims: [3, 6], variational: true, encoderDropout: [0.5], decoderDropout: [0], threads: 1 }), {
    message: /n_items/,
  });
  const native = new NativeModel({ encoderDims: [5, 3], decoderDims: [3, 5], variational: true, encoderDropout: [0.5], decoderDropout: [0], threads: 1 });
  await native.initialize(1);
  // Bypass the TypeScript checks: the engine validates again.
  const bad = { rows: 1, cols: 5, indptr: Int32Array.from([0, 1]), indices: Int32Array.from([9]) };
  const e = await t.throwsAsync(native.recommend(bad, { k: 2, excludeSeen: true }));
  t.is((e as Error & { code: string }).code, 'ERR_VAECF_INVALID_ARGUMENT');
  t.regex(e!.message, /item index 9/);
  t.throws(() => native.setParameters(new Float32Array(3)), { message: /expected \d+ values, got 3/ });
  native.dispose();
  t.throws(() => native.getParameters(), { message: /disposed/ });
});

test('a truncated or tampered model file gives a clear error', async (t) => {
  const data = twoGroups();
  const model = await tinyModel(data);
  const dir = tempDir();
  const file = path.join(dir, 'm.safetensors');
  await model.save(file);
  const bytes = fs.readFileSync(file);
  fs.writeFileSync(path.join(dir, 'cut.safetensors'), bytes.subarray(0, bytes.length - 100));
  const e1 = await t.throwsAsync(loadModel(path.join(dir, 'cut.safetensors')));
  t.regex(e1!.message, /cut\.safetensors: truncated/);
  const tampered = Buffer.from(bytes);
  tampered[tampered.length - 5] ^= 0xff;
  fs.writeFileSync(path.join(dir, 'bad.safetensors'), tampered);
  const e2 = await t.throwsAsync(loadModel(path.join(dir, 'bad.safetensors')));
  t.regex(e2!.message, /does not match its checksum/);
  fs.writeFileSync(path.join(dir, 'junk.safetensors'), 'hello');
  const e3 = await t.throwsAsync(loadModel(path.join(dir, 'junk.safetensors')));
  t.regex(e3!.message, /junk\.safetensors: /);
  const e4 = await t.throwsAsync(loadModel(path.join(dir, 'missing.safetensors')));
  t.regex(e4!.message, /cannot read the model file/);
  model.dispose();
});

test('a failed save leaves nothing half-written and keeps the old file', async (t) => {
  const data = twoGroups();
  const model = await tinyModel(data);
  const dir = tempDir();
  const file = path.join(dir, 'm.safetensors');
  await model.save(file);
  const before = fs.readFileSync(file);
  // The target path is a directory: the rename fails after the temporary file was written.
  const blocked = path.join(dir, 'blocked');
  fs.mkdirSync(blocked);
  fs.writeFileSync(path.join(blocked, 'x'), '');
  await t.throwsAsync(model.save(blocked));
  t.deepEqual(fs.readdirSync(dir).sort(), ['blocked', 'm.safetensors']);
  t.deepEqual(fs.readFileSync(file), before);
  model.dispose();
});

test('an untrained model says so', async (t) => {
  const m = new MultVAE();
  const e = await t.throwsAsync(m.recommend([[1]]));
  t.regex(e!.message, /not trained yet: call fit\(\) or load\(\) first/);
});

test('a threads value far beyond the machine is refused with the limit, before OpenMP could abort the process', async (t) => {
  const data = twoGroups();
  for (const threads of [100_000, 0, 1.5]) {
    const e = await t.throwsAsync(new MultVAE({ threads, pDims: [4, 8] }).fit({ train: data }, { epochs: 1 }));
    t.regex(e!.message, /threads: expected an integer from 1 to \d+ \(this machine has \d+ hardware threads\)/, String(threads));
  }
  const e = await t.throwsAsync(train({ train: data }, { epochs: 1, architecture: { threads: 100_000 } }));
  t.regex(e!.message, /threads: expected an integer from 1 to/);
  const { EASE } = await import('../src/index');
  await t.throwsAsync(async () => new EASE({ lambda: 10, threads: 100_000 }).fit({ train: data }), { message: /threads: expected an integer from 1 to/ });
});

test('k beyond the number of items is clamped to it, not allocated', async (t) => {
  const data = twoGroups();
  const model = await tinyModel(data);
  const top = await model.recommendRows(csrFromRows([[1]], data.cols), { k: 100_000_000, excludeSeen: false });
  t.is(top.k, data.cols);
  t.is(top.items.length, data.cols);
  const { Popularity } = await import('../src/index');
  const pop = new Popularity();
  pop.fit({ train: data });
  const p = await pop.recommendRows(csrFromRows([[1]], data.cols), { k: 100_000_000 });
  t.is(p.k, data.cols);
  await t.throwsAsync(pop.recommendRows(csrFromRows([[1]], data.cols), { k: 0 }), { message: /k: expected a positive integer, got 0/ });
});

test("a killed writer's temporary file is removed by the next save of the same name; a live writer's is kept", async (t) => {
  const dir = tempDir();
  const file = path.join(dir, 'model.safetensors');
  // A process that has exited: its pid no longer runs.
  const { spawnSync } = await import('node:child_process');
  const deadPid = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout;
  const stale = path.join(dir, `.model.safetensors.${deadPid}.0123abcd.tmp`);
  const live = path.join(dir, `.model.safetensors.${process.ppid}.89abcdef.tmp`);
  const other = path.join(dir, `.other.safetensors.${deadPid}.0123abcd.tmp`);
  for (const f of [stale, live, other]) fs.writeFileSync(f, Buffer.alloc(1024));
  const model = await tinyModel(twoGroups());
  await model.save(file);
  t.false(fs.existsSync(stale), 'the dead writer\'s temporary file is gone');
  t.true(fs.existsSync(live), 'a live process\'s temporary file stays');
  t.true(fs.existsSync(other), 'another name\'s temporary file stays');
  t.true(fs.existsSync(file));
});

test('the model file checksum covers the metadata: swapped item ids or a flipped header byte never load silently', async (t) => {
  const { dir, bytes } = await savedTinyModel((cols) => Array.from({ length: cols }, (_, i) => `item-${100 + i}`));
  const headerLen = Number(bytes.readBigUInt64LE(0));
  const header = bytes.subarray(8, 8 + headerLen).toString('utf8');
  // Every item id replaced by the first (the same number of bytes: the offsets stay valid).
  const ids = /\\"itemIds\\":\[([^\]]*)\]/.exec(header);
  t.truthy(ids, 'the header lists the item ids');
  const first = ids![1].split(',')[0];
  const same = ids![1].split(',').map((id) => first.padEnd(id.length, ' ')).join(',');
  const swapped = Buffer.from(bytes);
  swapped.write(header.replace(ids![1], same), 8, 'utf8');
  fs.writeFileSync(path.join(dir, 'ids.safetensors'), swapped);
  const e = await t.throwsAsync(loadModel(path.join(dir, 'ids.safetensors')));
  t.regex(e!.message, /ids\.safetensors: the file does not match its checksum \(metadata, ids and weights are covered\)/);
});

test('seeded fuzz: 300 header bit flips, 100 truncations and 100 data bit flips of a model file each fail with a coded error naming the file', async (t) => {
  const { dir, bytes } = await savedTinyModel();
  const headerEnd = 8 + Number(bytes.readBigUInt64LE(0));
  const random = seededRandom(12345);
  const cases: Array<[string, Buffer]> = [];
  for (let i = 0; i < 300; i++) {
    const b = Buffer.from(bytes);
    b[random(headerEnd)] ^= 1 << random(8);
    cases.push([`header flip ${i}`, b]);
  }
  for (let i = 0; i < 100; i++) cases.push([`truncated ${i}`, bytes.subarray(0, random(bytes.length))]);
  for (let i = 0; i < 100; i++) {
    const b = Buffer.from(bytes);
    b[headerEnd + random(bytes.length - headerEnd)] ^= 1 << random(8);
    cases.push([`data flip ${i}`, b]);
  }
  const target = path.join(dir, 'fuzzed.safetensors');
  let failedBadly = 0;
  for (const [what, b] of cases) {
    fs.writeFileSync(target, b);
    try {
      const m = await loadModel(target);
      m.dispose();
      failedBadly++;
      t.log(`${what}: loaded`);
    } catch (err) {
      const e = err as Error & { code?: string };
      if (!e.message.includes(target) || !/^ERR_VAECF_/.test(e.code ?? '')) {
        failedBadly++;
        t.log(`${what}: ${e.name} ${e.code} ${e.message}`);
      }
    }
  }
  t.is(failedBadly, 0, `${failedBadly} of ${cases.length} damaged files loaded or failed without a coded error naming the file`);
});

test('a native engine that does not load: the advice names the missing library and its package, or the old glibc, and how to build', (t) => {
  const missing = nativeLoadAdvice('libopenblas.so.0: cannot open shared object file: No such file or directory');
  t.regex(missing, /The shared library libopenblas\.so\.0 is missing \(Debian \/ Ubuntu package libopenblas0: apt-get install libopenblas0\)/);
  t.regex(missing, /npm install cmake-js node-addon-api, then npm rebuild vaecf/);
  const old = nativeLoadAdvice("/lib/x86_64-linux-gnu/libc.so.6: version `GLIBC_2.34' not found (required by vaecf.node)");
  t.regex(old, /This system's glibc is older than the prebuilt binary needs \(GLIBC_2\.34\)/);
  const cxx = nativeLoadAdvice("/lib/x86_64-linux-gnu/libstdc++.so.6: version `GLIBCXX_3.4.30' not found");
  t.regex(cxx, /libstdc\+\+ is older than the prebuilt binary needs \(GLIBCXX_3\.4\.30\)/);
  t.regex(nativeLoadAdvice('No native build was found for platform=freebsd arch=x64'), /No prebuilt binary for .* it comes in the package @vaecf\//);
});

test('a model too large for the memory budget is refused before anything is allocated, with the sizes and what to change', async (t) => {
  // 20 million items: Mult-VAE's two item layers alone need 24e9 parameters (about 360 GiB with Adam): beyond
  // 75% of any machine this runs on. Nothing proportional to the items is allocated before the refusal.
  const few = csrFromRows([[0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [1, 3, 5, 7, 9]], 20_000_000);
  const e = await t.throwsAsync(train({ train: few }, { epochs: 1 }), { instanceOf: Error });
  t.regex(e!.message, /training this mult-vae on 20000000 items \(batch 500, (fp32|bf16)\) needs about \d+\.\d GiB \(weights, gradients and Adam moments \d+\.\d GiB/);
  t.regex(e!.message, /more than the budget of (\d+\.\d GiB|\d+ MiB) \(75% of this machine's/);
  t.regex(e!.message, /minItemClicks/);
  // An explicit budget: a 20,000-item model (24M parameters, ~0.4 GiB) against 100 MB; RecVAE too.
  const data = csrFromRows(Array.from({ length: 40 }, (_, u) => [u % 7, (u * 3) % 11, 12 + (u % 5)]), 20_000);
  for (const model of ['vae', 'recvae'] as const) {
    const r = await t.throwsAsync(train({ train: data }, { model, epochs: 1, memoryBudget: 100e6 }));
    t.regex(r!.message, new RegExp(`training this ${model === 'vae' ? 'mult-vae' : 'recvae'} on 20000 items .* more than the budget of 96 MiB\\. Filter rare items`));
  }
  await t.throwsAsync(train({ train: data }, { epochs: 1, memoryBudget: -1 }), { message: /memoryBudget: expected a positive number of bytes, got -1/ });
});

test("the training memory estimate is at least 0.95x and at most 1.25x the memory a training run adds to the process (Mult-VAE and RecVAE, fp32 and the machine's bf16)", async (t) => {
  // In a child process of its own (ava runs this file's tests side by side in one process), after a small
  // warm-up run has loaded the libraries: the resident memory one more run adds against the estimate.
  const { execFileSync } = await import('node:child_process');
  const script = `
    const { MultVAE, RecVAE, generateClicks } = require(${JSON.stringify(path.join(__dirname, '..', 'src', 'index.js'))});
    (async () => {
      const [kind, precision] = process.argv.slice(1);
      const make = () => kind === 'recvae' ? new RecVAE({ threads: 2, precision }) : new MultVAE({ threads: 2, precision });
      const small = generateClicks({ users: 600, items: 200, meanClicksPerUser: 20, seed: 3 });
      const w = make();
      await w.fit({ train: small, validation: { foldIn: small, targets: small } }, { epochs: 1, batchSize: 500 });
      w.dispose();
      const train = generateClicks({ users: 1000, items: 20000, meanClicksPerUser: 50, seed: 3 });
      const val = generateClicks({ users: 1000, items: 20000, meanClicksPerUser: 50, seed: 4 });
      const before = process.memoryUsage().rss;
      const m = make();
      await m.fit({ train, validation: { foldIn: val, targets: val } }, { epochs: 1, batchSize: 500 });
      const added = process.memoryUsage().rss - before;
      console.log(JSON.stringify({ added, estimate: m.trainingMemory(m.learned().config, 500, 1000, true).bytes }));
    })();`;
  const precisions = loadNative().bf16Available ? ['fp32', 'bf16'] : ['fp32'];
  for (const kind of ['vae', 'recvae'])
    for (const precision of precisions) {
      const out = JSON.parse(execFileSync(process.execPath, ['-e', script, kind, precision], { encoding: 'utf8' }).trim().split('\n').pop() as string);
      const ratio = out.estimate / out.added;
      t.log(`${kind} ${precision}: added ${(out.added / 2 ** 20).toFixed(0)} MiB, estimate ${(out.estimate / 2 ** 20).toFixed(0)} MiB (${ratio.toFixed(2)}x)`);
      t.true(ratio >= 0.95 && ratio <= 1.25, `${kind} ${precision}: estimate ${out.estimate} vs added ${out.added}`);
    }
});
