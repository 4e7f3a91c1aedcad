// Reading and preparing a 20M-row ratings.csv of ML-20M's shape (138,493 users, 26,744 movies,
// 20,000,263 ratings with ML-20M's rating mix), the paper's protocol with 10,000 held-out users:
// seconds and peak RSS, measured in a child process so that generating the file does not count.
// usage: node dist/bench/prepare-speed.js [--rows N] [--keep]
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';

import { preparePaperProtocol, readInteractions } from '../src/index';
import { AliasTable, SplitMix32 } from '../src/data/random';

const USERS = 138_493;
const MOVIES = 26_744;

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

function generate(file: string, rows: number): void {
  const rng = new SplitMix32(20);
  const movieWeights = Array.from({ length: MOVIES }, (_, i) => Math.pow(i + 1, -1.1));
  const movies = new AliasTable(movieWeights);
  // ML-20M's rating distribution (0.5 .. 5 in steps of 0.5), roughly.
  const ratingValues = ['0.5', '1.0', '1.5', '2.0', '2.5', '3.0', '3.5', '4.0', '4.5', '5.0'];
  const ratings = new AliasTable([1.2, 3.4, 1.4, 7.2, 4.4, 21.4, 10.5, 27.8, 7.6, 14.5]);
  // Activity: heavy-tailed, every user >= 20 ratings as in ML-20M; users in ascending id order.
  const activity = Float64Array.from({ length: USERS }, () => Math.exp(1.2 * rng.normal()));
  const total = activity.reduce((a, b) => a + b, 0);
  const fd = fs.openSync(file, 'w');
  fs.writeSync(fd, 'userId,movieId,rating,timestamp\n');
  let written = 0;
  let buf: string[] = [];
  for (let u = 0; u < USERS && written < rows; u++) {
    const n = u === USERS - 1 ? rows - written : Math.min(rows - written, 20 + Math.round(((rows - 20 * USERS) * activity[u]) / total));
    const seen = new Set<number>();
    for (let k = 0; k < n; k++) {
      let m = movies.sample(rng);
      while (seen.has(m)) m = rng.below(MOVIES);
      seen.add(m);
      buf.push(`${u + 1},${m + 1},${ratingValues[ratings.sample(rng)]},${1_100_000_000 + rng.below(300_000_000)}`);
    }
    written += n;
    if (buf.length > 200_000) {
      fs.writeSync(fd, buf.join('\n') + '\n');
      buf = [];
    }
  }
  if (buf.length) fs.writeSync(fd, buf.join('\n') + '\n');
  fs.closeSync(fd);
}

async function child(file: string): Promise<void> {
  const t = performance.now();
  const x = await readInteractions(file);
  const tRead = performance.now();
  const d = preparePaperProtocol(x, { heldOutUsers: 10_000 });
  const tPrep = performance.now();
  process.stdout.write(JSON.stringify({
    rows: x.length, readSeconds: (tRead - t) / 1000, prepareSeconds: (tPrep - tRead) / 1000, totalSeconds: (tPrep - t) / 1000,
    peakRssMiB: process.resourceUsage().maxRSS / 1024, counts: d.counts,
  }));
}

async function main(): Promise<void> {
  if (process.argv[2] === '--child') return child(process.argv[3]);
  const rows = arg('rows', 20_000_263);
  const file = path.join(os.tmpdir(), `vaecf-ml20m-shape-${rows}.csv`);
  if (!fs.existsSync(file)) {
    const t = performance.now();
    generate(file, rows);
    console.log(`generated ${file} (${(fs.statSync(file).size / 1e6).toFixed(0)} MB) in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  }
  const r = spawnSync(process.execPath, [__filename, '--child', file], { encoding: 'utf8', maxBuffer: 1 << 24 });
  if (r.status !== 0) throw new Error(r.stderr);
  const result = JSON.parse(r.stdout);
  console.log(`read ${result.rows} rows in ${result.readSeconds.toFixed(1)} s, prepared in ${result.prepareSeconds.toFixed(1)} s: ` +
    `${result.totalSeconds.toFixed(1)} s in all (target < 20 s), peak RSS ${result.peakRssMiB.toFixed(0)} MiB (target < 3072)`);
  console.log(JSON.stringify(result.counts));
  if (!process.argv.includes('--keep')) fs.rmSync(file);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
