// Training and scoring run off the main thread: the event loop stays free, progress arrives per batch,
// an AbortSignal cancels, a busy model refuses a second call while training instead of racing, and
// concurrent scoring calls queue.
import test from 'ava';

import { generateClicks, MultVAE, selectRows } from '../src/index';

const data = generateClicks({ users: 4000, items: 4000, meanClicksPerUser: 50, seed: 9 });

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

test('an AbortSignal cancels training within a batch', async (t) => {
  const model = new MultVAE({ threads: 1 });
  const controller = new AbortController();
  const started = Date.now();
  const run = model.fit({ train: data }, { epochs: 50, signal: controller.signal, onBatch: (b) => b.batch === 1 && controller.abort() });
  const e = await t.throwsAsync(run);
  t.is(e!.name, 'AbortError');
  t.true(Date.now() - started < 10_000);
  // The model is usable again after a cancel.
  const top = await model.recommendRows(data, { k: 3 });
  t.is(top.items.length, data.rows * 3);
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
