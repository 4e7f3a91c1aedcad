// `vaecf evaluate DATA --model popularity|ease|FILE`: test (or validation) metrics with standard errors,
// printed and written as JSON.
import * as fs from 'node:fs';
import { performance } from 'node:perf_hooks';

import { EASE, Popularity, evaluateHeldOut, loadModel, VaecfInputError, type Recommender } from '../index';
import { describe, loadOrPrepare, type DataOptions } from './data-options';

export interface EvaluateOptions extends DataOptions {
  model: string;
  lambda?: string;
  split: 'test' | 'validation';
  metrics: string[];
  json?: string;
  threads?: number;
}

export async function runEvaluate(source: string, o: EvaluateOptions, log: (s: string) => void): Promise<Record<string, unknown>> {
  const d = await loadOrPrepare(source, o, log);
  log(describe(d));
  const t = performance.now();
  let model: Recommender;
  const extra: Record<string, unknown> = {};
  if (o.model === 'popularity') {
    const p = new Popularity();
    p.fit({ train: d.train, itemIds: d.itemIds });
    model = p;
  } else if (o.model === 'ease') {
    const grid = (o.lambda ?? '10,30,100,300,1000,3000').split(',').map(Number);
    if (!grid.every((l) => Number.isFinite(l) && l > 0)) throw new VaecfInputError(`--lambda: expected positive numbers separated by commas, got "${o.lambda}"`);
    const e = new EASE({
      lambda: grid.length === 1 ? grid[0] : grid,
      threads: o.threads,
      onLambda: (lambda, score) => log(`  EASE lambda ${lambda}${score === null ? '' : `: validation ndcg@100 ${score.toFixed(4)}`}`),
    });
    const report = await e.fit({ train: d.train, validation: d.validation, itemIds: d.itemIds });
    extra.ease = report;
    log(`EASE: lambda ${report.lambda} (${report.precision}) in ${report.seconds.toFixed(1)} s`);
    model = e;
  } else {
    if (!fs.existsSync(o.model)) throw new VaecfInputError(`--model: expected popularity, ease or a saved model file, got "${o.model}"`);
    const m = await loadModel(o.model, { threads: o.threads });
    if (m.numItems !== d.train.cols) throw new VaecfInputError(`${o.model}: the model ranks ${m.numItems} items, the dataset has ${d.train.cols}`);
    model = m;
  }
  const report = await evaluateHeldOut(model, o.split === 'test' ? d.test : d.validation, o.metrics);
  const seconds = (performance.now() - t) / 1000;
  log(`\n${o.split} metrics of ${o.model} (${report.users.length} users; mean ± standard error)`);
  for (const [m, s] of Object.entries(report.summary)) log(`  ${m.padEnd(22)} ${s.mean.toFixed(4)} ± ${s.stderr.toFixed(4)}`);
  const result = { data: source, counts: d.counts, protocol: d.protocol, model: o.model, split: o.split, metrics: report.summary, seconds, ...extra };
  if (o.json) {
    fs.writeFileSync(o.json, JSON.stringify(result, null, 2));
    log(`results: ${o.json}`);
  }
  model.dispose();
  return result;
}
