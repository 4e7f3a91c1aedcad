// Training and scoring run off the main thread: the event loop stays free, progress arrives per batch,
// an AbortSignal cancels, a busy model refuses a second call while training instead of racing, and
// concurrent scoring calls queue.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import test from 'ava';

import { generateClicks, loadModel, MultVAE, selectRows, strongGeneralizationSplit } from '../src/index';
import { worstEventLoopGap } from '../src/util/event-loop';

const data = generateClicks({ users: 4000, items: 4000, meanClicksPerUser: 50, seed: 9 });

// The bound: measured 7-19 ms per phase on the 2-core AMD EPYC (AVX2) over four runs of this file alone
// (scripts/run-ava.js runs it alone); 50 ms was the target. A phase that copies, hashes or allocates a
// model on the event loop again takes 25-90 ms here.
const BOUND_MS = 35;

// Serial, so that it runs first in this file's process: the addon's first load is inside the measurement.
test.serial(`the event loop is never held more than ${BOUND_MS} ms: first load, fit with validation and checkpoints, save, load, recommend`, async (t) => {
  const nativeLoaded = (): boolean => Object.keys(require.cache).some((k) => k.endsWith('.node'));
  t.false(nativeLoaded(), 'the addon must not be loaded before the measurement starts');
  // A model of 12.4M parameters (50 MB; a checkpoint with moments and best weights is 200 MB).
  const split = strongGeneralizationSplit(generateClicks({ users: 1400, items: 10_000, meanClicksPerUser: 40, seed: 4 }), { heldOutUsers: 200 });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vaecf-async-')); // not helpers.ts: it loads the addon
  const file = path.join(dir, 'model.safetensors');
  const phases: Record<string, number> = {};
  const measure = async (name: string, work: () => Promise<void>): Promise<void> => {
    phases[name] = (await worstEventLoopGap(work)).worst;
  };
  const model = new MultVAE({ threads: 1 });
  await measure('fit (first load, 2 epochs, validation, checkpoints)', async () => {
    await model.fit(split, { epochs: 2, checkpointPath: path.join(dir, 'checkpoint.safetensors') });
  });
  t.true(nativeLoaded());
  await measure('save', () => model.save(file));
  let loaded: Awaited<ReturnType<typeof loadModel>> | undefined;
  await measure('load', async () => {
    loaded = await loadModel(file, { threads: 1 });
  });
  await measure('recommend (200 users)', async () => {
    await (loaded as MultVAE).recommendRows(split.test.foldIn, { k: 100 });
  });
  t.log(Object.entries(phases).map(([k, v]) => `${k}: worst gap ${v.toFixed(1)} ms`).join('\n'));
  for (const [name, worst] of Object.entries(phases)) t.true(worst <= BOUND_MS, `${name}: the event loop was held for ${worst.toFixed(1)} ms`);
  t.deepEqual(Array.from((loaded as MultVAE).getParameters().subarray(0, 100)), Array.from(model.getParameters().subarray(0, 100)));
  model.dispose();
  loaded?.dispose();
});

test('the event loop stays free during training, and progress arrives per batch', async (t) => {
  const model = new MultVAE({ threads: 1 });
  let last = Date.now();
  let worstGap = 0;
  let ticks = 0;
  const timer = setInterval(() => {
    const now = Date.now();
    worstGap = Math.max(worstGap, now - last);
    last = now;
    ticks++;
  }, 5);
  const batches: number[] = [];
  let ticksAtFirstBatch = -1;
  const history = await model.fit({ train: data }, {
    epochs: 2, batchSize: 500,
    onBatch: (b) => {
      batches.push(b.batch);
      if (ticksAtFirstBatch < 0) ticksAtFirstBatch = ticks;
    },
  });
  clearInterval(timer);
  const seconds = history.seconds;
  // Timing depends on what else runs on the machine, so the assertions are about interleaving: timers
  // keep firing while epochs are in flight, and batch events arrive before an epoch's promise settles.
  t.log(`${ticks} timer ticks in ${seconds.toFixed(2)} s of training, worst gap ${worstGap} ms`);
  t.true(seconds > 0.3, 'training should take long enough to observe');
  t.true(ticks - ticksAtFirstBatch >= 10, `only ${ticks - ticksAtFirstBatch} timer ticks while training`);
  t.deepEqual(batches, [0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7]);
  model.dispose();
});

test('an AbortSignal cancels training within a batch: at most one batch event after abort()', async (t) => {
  // Batches of ~0.1 s (I-600-200-600-I over 4,000 items, one thread): a cancel that waited for the end of
  // the epoch would deliver six more events.
  const model = new MultVAE({ threads: 1 });
  const controller = new AbortController();
  const started = Date.now();
  let afterAbort = 0;
  const run = model.fit({ train: data }, {
    epochs: 50,
    signal: controller.signal,
    onBatch: (b) => {
      if (controller.signal.aborted) afterAbort++;
      else if (b.batch === 1) controller.abort();
    },
  });
  const e = await t.throwsAsync(run);
  t.is(e!.name, 'AbortError');
  t.true(afterAbort <= 1, `${afterAbort} batch events arrived after abort()`);
  t.true(Date.now() - started < 10_000);
  // The model is usable again after a cancel.
  const top = await model.recommendRows(data, { k: 3 });
  t.is(top.items.length, data.rows * 3);
  model.dispose();
});

test('every batch event of an epoch arrives before the epoch settles', async (t) => {
  const model = new MultVAE({ pDims: [16, 64], threads: 1 });
  const seen: number[] = [];
  const settledAfter: number[] = [];
  await model.fit({ train: data }, {
    epochs: 3, batchSize: 250,
    onBatch: (b) => seen.push(b.batch),
    onEpoch: () => settledAfter.push(seen.length),
  });
  t.deepEqual(settledAfter, [16, 32, 48]);
  model.dispose();
});

test('a second call while training is refused, not raced', async (t) => {
  const model = new MultVAE({ threads: 1 });
  let second: Promise<unknown> | null = null;
  // Ask for scores from inside a batch event: the epoch is certainly in flight then.
  await model.fit({ train: data }, {
    epochs: 1,
    onBatch: (b) => {
      if (b.batch === 0) second = model.recommendRows(data, { k: 3 });
    },
  });
  t.truthy(second);
  const e = await t.throwsAsync(second as unknown as Promise<unknown>);
  t.regex(e!.message, /busy/);
  t.is((e as Error & { code: string }).code, 'ERR_VAECF_BUSY');
  model.dispose();
});

test('concurrent scoring calls on one model wait their turn and all answer right', async (t) => {
  const model = new MultVAE({ pDims: [16, 64], threads: 2 });
  await model.fit({ train: data }, { epochs: 1, seed: 1 });
  const big = selectRows(data, Array.from({ length: 2000 }, (_, u) => u));
  const small = [0, 1, 2].map((u) => selectRows(data, [u]));
  const expected = [await model.recommendRows(big, { k: 5 }), ...small.map((m) => model.recommendRowsSync(m, { k: 5 }))];
  // A large call (thread pool) with small ones issued while it runs: none is refused.
  const first = model.recommendRows(big, { k: 5 });
  await new Promise((resolve) => setImmediate(resolve)); // the large call is in the thread pool now
  const all = await Promise.all([first, ...small.map((m) => model.recommendRows(m, { k: 5 }))]);
  t.deepEqual(all.map((r) => Array.from(r.items)), expected.map((r) => Array.from(r.items)));
  model.dispose();
});
