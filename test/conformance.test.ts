// One conformance suite for every model and backend: a tiny known answer, fold-in of unseen users,
// save/load round trip, same seed same numbers, interrupted-and-resumed equals uninterrupted.
import * as path from 'node:path';

import test, { type ImplementationFn } from 'ava';

import { MultDAE, MultVAE, RecVAE, loadModel, selectRows, train, type VaeFamilyModel } from '../src/index';
import { BACKENDS, MODELS, smallSplit, tempDir, twoGroups } from './helpers';

for (const backend of BACKENDS) {
  for (const { name, kind } of MODELS) {
    const { precision, device } = backend;
    const make = (): VaeFamilyModel<object> =>
      kind === 'mult-vae' ? new MultVAE({ pDims: [8, 32], threads: 2, precision, device })
      : kind === 'mult-dae' ? new MultDAE({ pDims: [16], threads: 2, precision, device })
      : new RecVAE({ hidden: 32, latent: 8, layers: 3, threads: 2, precision, device });
    const small = kind === 'recvae' ? { hidden: 64, latent: 32, precision, device } : { pDims: kind === 'mult-vae' ? [32, 64] : [64], precision, device };
    // A backend that cannot run here is declared skipped, with the reason in its title.
    const declare = (title: string, body: ImplementationFn<[]>): void => {
      if (backend.skip) test.skip(`${title} (skipped: ${backend.skip})`, body);
      else test(title, body);
    };

    declare(`${name} (${backend.name}): learns a tiny known answer`, async (t) => {
      const data = twoGroups();
      const model = make();
      await model.fit({ train: data, itemIds: Array.from({ length: 20 }, (_, i) => `item${i}`) }, {
        epochs: 60, batchSize: 20, learningRate: 0.01, beta: { schedule: 'constant', value: 0.05 }, seed: 1,
      });
      const [a, b] = await model.recommend([['item0', 'item1', 'item2'], ['item12', 'item15']], { k: 5 });
      t.true(a.items.every((id) => Number(String(id).slice(4)) < 10), `group A got ${a.items}`);
      t.true(b.items.every((id) => Number(String(id).slice(4)) >= 10), `group B got ${b.items}`);
      t.false(a.items.includes('item0'), 'seen items are excluded');
      t.deepEqual([...a.scores].sort((x, y) => y - x), a.scores, 'best first');
      model.dispose();
    });

    declare(`${name} (${backend.name}): fold-in of unseen users ranks their held-out items far above chance`, async (t) => {
      const split = smallSplit();
      const model = await train({ train: split.train, validation: split.validation }, {
        model: kind, architecture: { ...small, threads: 2 }, epochs: 12, batchSize: 100, seed: 7,
        beta: { schedule: 'linear', cap: 0.2, totalSteps: 300 },
      });
      const report = await model.evaluate(split.test, ['recall@50', 'ndcg@100']);
      const chance = 50 / split.train.cols; // expected recall@50 of a random ranking
      const recall = report.summary['recall@50'].mean;
      t.log(`test recall@50 ${recall.toFixed(3)} vs chance ${chance.toFixed(3)}, ndcg@100 ${report.summary['ndcg@100'].mean.toFixed(3)}`);
      t.true(recall > 8 * chance);
      // The same through item-id histories of brand-new users.
      const u = report.users[0];
      const history = Array.from(split.test.foldIn.indices.subarray(split.test.foldIn.indptr[u], split.test.foldIn.indptr[u + 1]));
      const [rec] = await model.recommend([history], { k: 100 });
      const top = await model.recommendRows(split.test.foldIn, { k: 100 });
      t.deepEqual(rec.items, Array.from(top.items.subarray(u * 100, u * 100 + 100)));
      model.dispose();
    });

    declare(`${name} (${backend.name}): scoring a few users at a time (the low-latency kernel) agrees with batch scoring`, async (t) => {
      // 1,500 items: 23 full panels of 64 columns and a ragged last one.
      const split = smallSplit(6, 1000, 1500);
      const model = await train({ train: split.train }, { model: kind, architecture: { ...small, threads: 2 }, epochs: 2, batchSize: 100, seed: 3 });
      const users = split.test.foldIn;
      const rows = Math.min(users.rows, 24);
      const batch = model.scoreRows(selectRows(users, Array.from({ length: rows }, (_, u) => u)));
      let worst = 0;
      for (let first = 0; first < rows; first += 3) {
        const few = model.scoreRows(selectRows(users, [first, first + 1, first + 2]));
        for (let i = 0; i < few.length; i++) {
          const ref = batch[first * users.cols + i];
          worst = Math.max(worst, Math.abs(few[i] - ref) / (1 + Math.abs(ref)));
        }
      }
      t.log(`largest difference ${worst.toExponential(2)}`);
      t.true(worst < 1e-5, `few-rows scores differ from batch scores by ${worst}`);
      const one = model.recommendRowsSync(selectRows(users, [5]), { k: 20 });
      const all = await model.recommendRows(users, { k: 20 });
      t.deepEqual(Array.from(one.items), Array.from(all.items.subarray(5 * 20, 6 * 20)));
      model.dispose();
    });

    declare(`${name} (${backend.name}): save and load give identical scores`, async (t) => {
      const data = twoGroups();
      const model = make();
      await model.fit({ train: data, protocol: { name: 'two-groups' } }, { epochs: 3, batchSize: 16, seed: 2 });
      const file = path.join(tempDir(), 'model.safetensors');
      await model.save(file);
      const loaded = await loadModel(file, { threads: 2, precision });
      t.is(loaded.kind, kind);
      t.deepEqual(loaded.scoreRows(data), model.scoreRows(data));
      t.deepEqual(loaded.getParameters(), model.getParameters());
      t.is(loaded.trainingState?.epoch, 3);
      const weightsFile = path.join(tempDir(), 'weights.safetensors');
      await model.save(weightsFile, { weightsOnly: true });
      const w = await loadModel(weightsFile, { precision });
      t.deepEqual(w.scoreRows(data), model.scoreRows(data));
      t.is(w.trainingState, null);
      for (const m of [model, loaded, w]) m.dispose();
    });

    declare(`${name} (${backend.name}): the same seed gives the same numbers`, async (t) => {
      const data = twoGroups();
      const run = async (seed: number): Promise<{ p: Float32Array; losses: number[] }> => {
        const m = make();
        const h = await m.fit({ train: data }, { epochs: 3, batchSize: 16, seed });
        const p = m.getParameters();
        m.dispose();
        return { p, losses: h.epochs.map((e) => e.loss) };
      };
      const a = await run(11);
      const b = await run(11);
      const c = await run(12);
      t.deepEqual(a.p, b.p);
      t.deepEqual(a.losses, b.losses);
      t.notDeepEqual(a.p, c.p);
    });

    declare(`${name} (${backend.name}): a run interrupted and resumed equals an uninterrupted one`, async (t) => {
      const split = smallSplit(5, 800, 400);
      const data = { train: split.train, validation: split.validation };
      const options = {
        epochs: 5, batchSize: 64, seed: 4, beta: { schedule: 'epoch-relative' as const, cap: 0.3 },
        reduceLearningRateOnPlateau: { patience: 0, factor: 0.5 }, earlyStopping: { patience: 10 },
      };
      const straight = make();
      const h1 = await straight.fit(data, options);

      const dir = tempDir();
      const checkpoint = path.join(dir, 'run.ckpt');
      const controller = new AbortController();
      const first = make();
      const err = await t.throwsAsync(
        first.fit(data, { ...options, checkpointPath: checkpoint, signal: controller.signal, onEpoch: (r) => r.epoch === 2 && controller.abort() }),
      );
      t.is(err?.name, 'AbortError');
      first.dispose();

      const resumed = make();
      const h2 = await resumed.fit(data, { ...options, resumeFrom: checkpoint });
      t.is(resumed.trainingState?.epoch, 5);
      t.deepEqual(resumed.getParameters(), straight.getParameters());
      t.deepEqual(h2.epochs.map((e) => [e.loss, e.beta, e.learningRate, e.validation]), h1.epochs.map((e) => [e.loss, e.beta, e.learningRate, e.validation]));
      t.is(resumed.trainingState?.annealCount, straight.trainingState?.annealCount);
      straight.dispose();
      resumed.dispose();
    });
  }
}
