// A generator of realistic implicit-feedback data: a Zipf-like item popularity curve, log-normal user
// activity, and users whose tastes concentrate on a few latent "genres", so that a model has structure
// to learn and popularity is a fair but beatable baseline.
import { type CsrMatrix, VaecfInputError } from './csr';
import { AliasTable, SplitMix32 } from './random';

export interface GeneratorOptions {
  users: number;
  items: number;
  /** mean clicks per user (ML-20M's training users: 73.2) */
  meanClicksPerUser: number;
  /** number of latent taste groups */
  genres?: number;
  /** popularity exponent: weight of the item of popularity rank r is r^-zipf */
  zipf?: number;
  /** probability that a click follows the user's tastes rather than global popularity */
  affinity?: number;
  /** minimum clicks per user (the paper keeps users with >= 5) */
  minClicks?: number;
  seed?: number;
}

/** The shape of ML-20M after the paper's preprocessing (training users only). */
export const ML20M_SHAPE: GeneratorOptions = { users: 116_677, items: 20_108, meanClicksPerUser: 73.18, genres: 40 };

export function generateClicks(options: GeneratorOptions): CsrMatrix {
  const { users, items, meanClicksPerUser } = options;
  const genres = options.genres ?? 20;
  const zipf = options.zipf ?? 0.9;
  const affinity = options.affinity ?? 0.85;
  const minClicks = options.minClicks ?? 5;
  for (const [name, v] of Object.entries({ users, items, meanClicksPerUser, genres })) {
    if (!(Number.isFinite(v) && v > 0)) throw new VaecfInputError(`generateClicks: ${name} must be positive, got ${v}`);
  }
  if (meanClicksPerUser > items / 2)
    throw new VaecfInputError(`generateClicks: meanClicksPerUser (${meanClicksPerUser}) must be at most half the items (${items})`);
  const rng = new SplitMix32(options.seed ?? 1);

  // Item popularity: a random permutation of Zipf weights; items split into genres at random.
  const rank = Int32Array.from({ length: items }, (_, i) => i);
  for (let i = items - 1; i > 0; i--) {
    const j = rng.below(i + 1);
    [rank[i], rank[j]] = [rank[j], rank[i]];
  }
  const weight = Float64Array.from(rank, (r) => Math.pow(r + 1, -zipf));
  const global = new AliasTable(weight);
  const members: number[][] = Array.from({ length: genres }, () => []);
  for (let i = 0; i < items; i++) members[rng.below(genres)].push(i);
  const genreTables = members.map((m) => (m.length ? new AliasTable(m.map((i) => weight[i])) : null));

  // Activity: log-normal with sigma 1, scaled to the requested mean, clipped to [minClicks, items / 2].
  const sigma = 1.0;
  const mu = Math.log(Math.max(meanClicksPerUser - minClicks, 1)) - (sigma * sigma) / 2;
  const indptr = new Int32Array(users + 1);
  const chunks: Int32Array[] = [];
  let total = 0;
  const mark = new Int32Array(items).fill(-1);
  for (let u = 0; u < users; u++) {
    const n = Math.min(Math.floor(items / 2), minClicks + Math.round(Math.exp(mu + sigma * rng.normal())));
    // Tastes: 1 to 3 genres with random weights.
    const nTastes = 1 + rng.below(3);
    const tastes: number[] = [];
    const tasteWeight: number[] = [];
    for (let t = 0; t < nTastes; t++) {
      tastes.push(rng.below(genres));
      tasteWeight.push(0.2 + rng.next());
    }
    const tasteSum = tasteWeight.reduce((a, b) => a + b, 0);
    const pickTaste = (x: number): number => {
      for (let t = 0; t < nTastes; t++) {
        x -= tasteWeight[t];
        if (x <= 0) return tastes[t];
      }
      return tastes[nTastes - 1];
    };
    const row = new Int32Array(n);
    let have = 0;
    let attempts = 0;
    while (have < n && attempts < 50 * n) {
      attempts++;
      const g = rng.next() < affinity ? pickTaste(rng.next() * tasteSum) : -1;
      const table = g >= 0 ? genreTables[g] : null;
      const item = table ? members[g][table.sample(rng)] : global.sample(rng);
      if (mark[item] === u) continue;
      mark[item] = u;
      row[have++] = item;
    }
    chunks.push(have === n ? row : row.slice(0, have));
    total += have;
    indptr[u + 1] = total;
  }
  const indices = new Int32Array(total);
  let at = 0;
  for (const c of chunks) {
    indices.set(c, at);
    at += c.length;
  }
  return { rows: users, cols: items, indptr, indices };
}
