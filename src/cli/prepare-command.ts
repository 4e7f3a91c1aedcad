// `vaecf prepare FILE --out DIR`: the paper's protocol (or a given split with --test), written once.
import { performance } from 'node:perf_hooks';

import { saveDataset } from '../index';
import { describe, loadOrPrepare, type DataOptions } from './data-options';

export async function runPrepare(source: string, out: string, o: DataOptions, log: (s: string) => void): Promise<void> {
  const t = performance.now();
  const d = await loadOrPrepare(source, o, log);
  log(describe(d));
  saveDataset(out, d, { file: source, test: o.test ?? null });
  log(`wrote ${out}/ (data.bin, manifest.json) in ${((performance.now() - t) / 1000).toFixed(1)} s`);
}
