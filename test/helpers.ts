// Shared fixtures for the ava tests.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { csrFromRows, generateClicks, resolvePrecision, strongGeneralizationSplit, type CsrMatrix, type PreparedDataset } from '../src/index';

export function tempDir(prefix = 'vaecf-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** Two disjoint taste groups: users of group A click only items 0..9, group B only 10..19. */
export function twoGroups(usersPerGroup = 60, seed = 1): CsrMatrix {
  const rows: number[][] = [];
  let s = seed;
  const rand = (): number => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return s / 4294967296;
  };
  for (let u = 0; u < 2 * usersPerGroup; u++) {
    const base = u % 2 === 0 ? 0 : 10;
    const row: number[] = [];
    for (let i = 0; i < 10; i++) if (rand() < 0.5) row.push(base + i);
    if (row.length === 0) row.push(base);
    rows.push(row);
  }
  return csrFromRows(rows, 20);
}

/** A small realistic dataset split by the paper's protocol. */
export function smallSplit(seed = 3, users = 3000, items = 1500): PreparedDataset {
  const m = generateClicks({ users, items, meanClicksPerUser: 40, seed });
  return strongGeneralizationSplit(m, { heldOutUsers: 300 });
}

export const MODELS = [
  { name: 'Mult-VAE', kind: 'mult-vae' as const },
  { name: 'Mult-DAE', kind: 'mult-dae' as const },
  { name: 'RecVAE', kind: 'recvae' as const },
];

/**
 * Every backend and precision the conformance suite runs against, named by what was requested and what it
 * resolved to, so titles are unique on every machine. 'auto' that resolves to fp32 (no bf16 on this
 * processor) would repeat the fp32 backend: it carries `skip` with the reason and its tests are reported
 * as skipped, never as passed.
 */
export const BACKENDS = (['fp32', 'auto'] as const).map((precision) => {
  const resolved = resolvePrecision(precision);
  const skip = precision === 'auto' && resolved.precision === 'fp32' ? `'auto' resolves to fp32 here, ${resolved.note}` : undefined;
  return { name: precision === 'auto' ? `cpu auto=${resolved.precision}` : 'cpu fp32', precision, skip, device: 'cpu' as const };
});

/** A seeded integer stream for the fuzz tests: random(n) in [0, n), the same sequence for the same seed. */
export function seededRandom(seed: number): (n: number) => number {
  let state = seed;
  return (n) => {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    return state % n;
  };
}
