// Sweeps over a declared grid or a random space of training options. Resumable: a run with results.json
// is skipped, a run with a checkpoint is resumed. Writes all_results.csv, one row per run (the varied
// options, best epoch, validation and test metrics, seconds), like the reference's all_results.csv.
import * as fs from 'node:fs';
import * as path from 'node:path';

import { VaecfInputError } from '../data/csr';
import { SplitMix32 } from '../data/random';
import { runTrain, TRAIN_DEFAULTS, type TrainConfig, type TrainResults } from './run';

export interface SweepSpec {
  /** options shared by every run (dataset included) */
  base: Partial<TrainConfig> & { dataset: string };
  /** every combination of these values */
  grid?: Record<string, unknown[]>;
  /** or `samples` draws from these ranges ({min, max, log?}, integers when both bounds are) or lists */
  random?: { samples: number; seed?: number; space: Record<string, unknown[] | { min: number; max: number; log?: boolean }> };
}

export function expandSweep(spec: SweepSpec): Array<Record<string, unknown>> {
  if (spec.grid && spec.random) throw new VaecfInputError('sweep: give either "grid" or "random", not both');
  if (spec.grid) {
    let combos: Array<Record<string, unknown>> = [{}];
    for (const [key, values] of Object.entries(spec.grid)) {
      if (!Array.isArray(values) || values.length === 0) throw new VaecfInputError(`sweep grid "${key}": expected a non-empty list`);
      combos = combos.flatMap((c) => values.map((v) => ({ ...c, [key]: v })));
    }
    return combos;
  }
  if (spec.random) {
    const rng = new SplitMix32(spec.random.seed ?? 1);
    return Array.from({ length: spec.random.samples }, () => {
      const c: Record<string, unknown> = {};
      for (const [key, dom] of Object.entries(spec.random!.space)) {
        if (Array.isArray(dom)) c[key] = dom[rng.below(dom.length)];
        else {
          const u = rng.next();
          const v = dom.log ? Math.exp(Math.log(dom.min) + u * (Math.log(dom.max) - Math.log(dom.min))) : dom.min + u * (dom.max - dom.min);
          c[key] = Number.isInteger(dom.min) && Number.isInteger(dom.max) && !dom.log ? Math.round(v) : Number(v.toPrecision(4));
        }
      }
      return c;
    });
  }
  throw new VaecfInputError('sweep: give a "grid" or a "random" space');
}

export async function runSweep(spec: SweepSpec, dir: string, log: (s: string) => void): Promise<string> {
  const runs = expandSweep(spec);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'sweep.json'), JSON.stringify(spec, null, 2));
  const varied = [...new Set(runs.flatMap((r) => Object.keys(r)))];
  const rows: string[][] = [];
  for (let i = 0; i < runs.length; i++) {
    const name = `run-${String(i).padStart(3, '0')}`;
    const runDir = path.join(dir, name);
    const config = { ...TRAIN_DEFAULTS, ...spec.base, ...runs[i], name } as TrainConfig;
    let results: TrainResults;
    const done = path.join(runDir, 'results.json');
    if (fs.existsSync(done)) {
      log(`${name}: done before, skipped`);
      results = JSON.parse(fs.readFileSync(done, 'utf8'));
    } else {
      const resume = fs.existsSync(path.join(runDir, 'last.safetensors'));
      log(`\n${name} (${i + 1}/${runs.length}): ${JSON.stringify(runs[i])}${resume ? ' (resuming)' : ''}`);
      results = await runTrain(config, runDir, resume, log);
    }
    const metrics = Object.keys(results.test);
    if (rows.length === 0) rows.push(['run', ...varied, 'best_epoch', 'validation', ...metrics.map((m) => `test_${m}`), 'seconds']);
    rows.push([
      name, ...varied.map((k) => JSON.stringify(runs[i][k] ?? '').replace(/,/g, ';')), String(results.bestEpoch ?? ''),
      results.validation?.toFixed(5) ?? '', ...metrics.map((m) => results.test[m].mean.toFixed(5)), results.seconds.toFixed(1),
    ]);
    fs.writeFileSync(path.join(dir, 'all_results.csv'), rows.map((r) => r.join(',')).join('\n') + '\n');
  }
  return path.join(dir, 'all_results.csv');
}
