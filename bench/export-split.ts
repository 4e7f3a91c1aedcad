// Writes a dataset prepared by vaecf (the paper's protocol) as CSR files a Python script can read:
// OUT/train (indptr.i64, indices.i32, shape.txt) and OUT/validation, OUT/test (the fold-in clicks as
// indptr.i64 / indices.i32, the held-out clicks as targets_indptr.i64 / targets_indices.i32).
// usage: node dist/bench/export-split.js --out DIR [--data FILE] [--held-out N]   (default: ML-1M, 600)
import * as fs from 'node:fs';
import * as path from 'node:path';

import { preparePaperProtocol, readInteractions } from '../src/index';
import { option, ROOT, writeCsr } from './native-tools';

async function main(): Promise<void> {
  const out = option('out');
  if (!out) throw new Error('usage: node dist/bench/export-split.js --out DIR [--data FILE] [--held-out N]');
  const file = option('data') ?? path.join(ROOT, '..', 'shared', 'data', 'ml-1m', 'ml1m_pairs_rating_ge4.tsv');
  const d = preparePaperProtocol(await readInteractions(file), { heldOutUsers: Number(option('held-out') ?? 600) });
  for (const [name, part] of [['train', null], ['validation', d.validation], ['test', d.test]] as const) {
    const dir = path.join(out, name);
    fs.mkdirSync(dir, { recursive: true });
    if (!part) {
      writeCsr(dir, d.train);
      continue;
    }
    writeCsr(dir, part.foldIn);
    writeCsr(dir, part.targets, 'targets_');
  }
  console.log(`${file}: train ${d.train.rows} x ${d.train.cols}, ${d.validation.foldIn.rows} validation and ${d.test.foldIn.rows} test users -> ${out}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
