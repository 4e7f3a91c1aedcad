// `vaecf demo`: the main job end to end, offline: data (a file, or the built-in generator), the paper's
// preparation, training with validation, test metrics beside popularity, a saved model.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';

import {
  Popularity, evaluateHeldOut, resolveDevice, resolvePrecision, resolveRecVaePrecision, generateClicks, interactionsFromCsr, loadModel, nnz, preparePaperProtocol, train,
  type MetricReport, type PreparedDataset,
} from '../index';
import { loadOrPrepare, type DataOptions } from './data-options';
import { ProgressLine } from '../index';

export interface DemoOptions extends DataOptions {
  data?: string;
  model: 'mult-vae' | 'mult-dae' | 'recvae';
  epochs?: number;
  threads?: number;
  out: string;
}

const METRICS = ['recall@20', 'recall@50', 'ndcg@100'];

function fmt(r: MetricReport, m: string): string {
  const s = r.summary[m];
  return `${s.mean.toFixed(4)} ± ${s.stderr.toFixed(4)}`;
}

export async function runDemo(o: DemoOptions): Promise<void> {
  const log = (s: string): void => void process.stdout.write(`${s}\n`);
  const bar = new ProgressLine();
  let t: number;
  let data: PreparedDataset;
  if (o.data) {
    data = await loadOrPrepare(o.data, o, log);
  } else {
    log('no --data given: generating realistic click data (20,000 users x 5,000 items, Zipf popularity, latent tastes)');
    const m = generateClicks({ users: 20_000, items: 5_000, meanClicksPerUser: 50, genres: 30, seed: o.seed ?? 1 });
    data = preparePaperProtocol(interactionsFromCsr(m, 'generator'), { threshold: null, heldOutUsers: o.heldOut ?? 2_000 });
  }
  const c = data.counts;
  log(`${c.clicks} clicks, ${c.users} users, ${c.items} items; train ${c.trainUsers} users x ${c.trainItems} items (${c.trainClicks} clicks), ` +
    `${c.validationUsers} validation and ${c.testUsers} test users`);

  const recvae = o.model === 'recvae';
  const epochs = o.epochs ?? (recvae ? (o.data ? 50 : 10) : o.data ? 200 : 30);
  log(`\nengine: ${resolveDevice(undefined).note}, ${(recvae ? resolveRecVaePrecision : resolvePrecision)(undefined, resolveDevice(undefined).device).note}, ${o.threads ?? os.availableParallelism()} threads`);
  if (recvae)
    log(`training recvae [5 dense layers of 600, latent 200, composite prior, KL weight 0.005 * |x_u|], ${epochs} epochs ` +
      `(3 encoder + 1 decoder passes each), batch 500, Adam lr 5e-4, validation NDCG@100 every epoch`);
  else
    log(`training ${o.model} [I-600-200-600-I${o.model === 'mult-dae' ? '' : ', beta annealed to 0.2 over 85% of the epochs'}], ` +
      `${epochs} epochs, batch 500, Adam lr 1e-3, validation NDCG@100 every epoch`);
  const controller = new AbortController();
  const onSigint = (): void => {
    log('\ninterrupted: stopping after the current batch');
    controller.abort();
  };
  process.once('SIGINT', onSigint);
  fs.mkdirSync(o.out, { recursive: true });
  t = performance.now();
  const model = await train(
    { train: data.train, validation: data.validation, itemIds: data.itemIds, protocol: data.protocol },
    {
      model: o.model,
      architecture: recvae ? { threads: o.threads } : { pDims: [200, 600], threads: o.threads },
      epochs,
      seed: o.seed ?? 98765,
      ...(recvae ? {} : { beta: { schedule: 'epoch-relative' as const, cap: 0.2 } }),
      signal: controller.signal,
      checkpointPath: path.join(o.out, 'checkpoint.safetensors'),
      checkpointEvery: 10,
      onBatch: (b) => bar.update(`epoch ${b.epoch}/${epochs}`, b.batch + 1, b.batches, `loss ${b.loss.toFixed(1)}`),
      onEpoch: (r) => {
        bar.clear();
        const v = r.validation ? ` ndcg@100 ${r.validation['ndcg@100'].toFixed(4)}${r.best ? ' *' : ''}` : '';
        const weight = recvae ? '' : `  beta ${r.beta.toFixed(3)}`;
        log(`epoch ${String(r.epoch).padStart(3)}  loss ${r.loss.toFixed(2)}  nll ${r.nll.toFixed(2)}  kl ${r.kl.toFixed(2)}${weight}${v}  ${r.seconds.toFixed(1)} s`);
      },
    },
  );
  process.removeListener('SIGINT', onSigint);
  const seconds = (performance.now() - t) / 1000;
  const state = model.trainingState;
  log(`trained in ${seconds.toFixed(1)} s; best validation ndcg@100 ${state?.bestScore?.toFixed(4)} at epoch ${state?.bestEpoch}`);

  const ours = await evaluateHeldOut(model, data.test, METRICS);
  const pop = new Popularity();
  pop.fit({ train: data.train });
  const popular = await evaluateHeldOut(pop, data.test, METRICS);
  log(`\ntest (${ours.users.length} users with targets; mean ± standard error)`);
  log(`${'model'.padEnd(12)}${METRICS.map((m) => m.padStart(20)).join('')}`);
  log(`${o.model.padEnd(12)}${METRICS.map((m) => fmt(ours, m).padStart(20)).join('')}`);
  log(`${'popularity'.padEnd(12)}${METRICS.map((m) => fmt(popular, m).padStart(20)).join('')}`);

  const file = path.join(o.out, 'model.safetensors');
  await model.save(file, { weightsOnly: true });
  const loaded = await loadModel(file);
  const history = data.test.foldIn;
  const u = 0;
  const items = Array.from(history.indices.subarray(history.indptr[u], history.indptr[u + 1]), (i) => data.itemIds[i]);
  const [rec] = await loaded.recommend([items], { k: 10 });
  log(`\nsaved ${file} (${(fs.statSync(file).size / 1e6).toFixed(1)} MB); reloaded, it recommends for test user ${data.test.userIds[u]} ` +
    `(${items.length} items in the history): ${rec.items.join(', ')}`);
  fs.writeFileSync(path.join(o.out, 'results.json'), JSON.stringify({
    data: o.data ?? 'generator', counts: data.counts, protocol: data.protocol, model: o.model, epochs, seconds,
    bestEpoch: state?.bestEpoch, validation: state?.bestScore, test: { [o.model]: ours.summary, popularity: popular.summary },
    clicksTrain: nnz(data.train),
  }, null, 2));
  log(`results: ${path.join(o.out, 'results.json')}`);
  model.dispose();
  loaded.dispose();
}
