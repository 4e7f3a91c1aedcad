// RecVAE's training passes beside Mult-VAE's epoch at the ML-20M shape (20,108 items, batch 500, about 72
// clicks per user), measured side by side in one run on the same generated clicks: seconds per batch of
// a Mult-VAE step (I-600-200-600-I, fp32), a RecVAE encoder step (5 x 600 dense layers, the composite
// prior's extra encoder pass) and a RecVAE decoder step, median of the rounds. Each round runs RecVAE's
// epoch as the authors do: the prior refreshed, 3 encoder passes (the prior's posterior computed in the
// first, taken from the prior cache in the others), 1 decoder pass; the encoder step is the mean of the
// three. Per epoch: Mult-VAE runs one pass over the users, RecVAE the 3 + 1 passes. Each
// precision is measured with both models in it: fp32, and bf16 (Mult-VAE's item output layer, RecVAE's
// decoder) where the processor runs bf16 natively.
//
// usage: node dist/bench/recvae-speed.js [--users N (10000)] [--rounds N (3)] [--threads N] [--precision fp32|bf16 (both where bf16 runs)] [--json OUT]
import * as fs from 'node:fs';
import * as os from 'node:os';
import { performance } from 'node:perf_hooks';

import { MultVAE, RecVAE, generateClicks, type VaeFamilyModel } from '../src/index';
import { loadNative, type NativeEpochOptions } from '../src/native';
import { cpuDescription, median, option as opt } from './native-tools';

const argv = process.argv.slice(2);

async function main(): Promise<void> {
  const threads = Number(opt('threads') ?? os.availableParallelism());
  const users = Number(opt('users') ?? 10_000);
  const rounds = Number(opt('rounds') ?? 3);
  const items = 20_108;
  const cpu = cpuDescription();
  console.log(`CPU: ${cpu.model}, ${cpu.cores} cores, flags ${cpu.flags.join(' ')}; vaecf SIMD target ${cpu.simdTarget}`);
  const train = generateClicks({ users, items, meanClicksPerUser: 72, seed: 5 });
  const batches = Math.ceil(users / 500);
  console.log(`${users} users x ${items} items, ${train.indptr[users]} clicks, ${batches} batches of 500 per pass, ${threads} threads`);
  const base: NativeEpochOptions = {
    batchSize: 500, seed: 1, epoch: 0, l2: 0, betaKind: 'constant', betaCap: 0.2, betaTotalSteps: 1, betaValue: 0.2,
    learningRate: 1e-3, weightDecay: 0, decoupledWeightDecay: false, step: 0, annealCount: 0,
  };
  const pass = async (m: VaeFamilyModel<object>, extra: Partial<NativeEpochOptions>): Promise<number> => {
    const t = performance.now();
    await m.learned().native.trainEpoch(train, { ...base, ...extra });
    return (performance.now() - t) / 1000 / batches;
  };
  const ml20mBatches = Math.ceil(116_677 / 500);
  const precisions = opt('precision') ? [opt('precision') as 'fp32' | 'bf16'] : loadNative().bf16Available ? ['fp32', 'bf16'] as const : ['fp32'] as const;
  const byPrecision: Record<string, unknown> = {};
  for (const precision of precisions) {
    const vae = new MultVAE({ pDims: [200, 600], threads, precision });
    const rec = new RecVAE({ threads, precision });
    await vae.createState(items, 1, undefined);
    await rec.createState(items, 1, undefined);
    const times = { multVae: [] as number[], encoder: [] as number[], decoder: [] as number[], encoderPasses: [] as number[][] };
    await pass(vae, {});
    await pass(rec, { phase: 'encoder', gamma: 0.005 }); // warm-up (allocations)
    await pass(rec, { phase: 'decoder', gamma: 0.005 });
    for (let r = 0; r < rounds; r++) {
      times.multVae.push(await pass(vae, {}));
      // The authors' epoch: the prior refreshed, three encoder passes (the first computes the prior's
      // posterior of every user, the next two take it from the prior cache), one decoder pass.
      rec.learned().native.updatePrior();
      const enc: number[] = [];
      for (let j = 0; j < 3; j++) enc.push(await pass(rec, { phase: 'encoder', gamma: 0.005 }));
      times.encoderPasses.push(enc);
      times.encoder.push((enc[0] + enc[1] + enc[2]) / 3);
      times.decoder.push(await pass(rec, { phase: 'decoder', gamma: 0.005 }));
      console.log(`${precision} round ${r + 1}: per batch Mult-VAE ${(times.multVae[r] * 1000).toFixed(1)} ms, RecVAE encoder passes ` +
        `${enc.map((x) => (x * 1000).toFixed(1)).join(' / ')} ms, decoder ${(times.decoder[r] * 1000).toFixed(1)} ms`);
    }
    vae.dispose();
    rec.dispose();
    const perBatch = { multVae: median(times.multVae), encoder: median(times.encoder), decoder: median(times.decoder) };
    const epoch = { multVae: perBatch.multVae * ml20mBatches, recvae: (3 * perBatch.encoder + perBatch.decoder) * ml20mBatches };
    const ratios = {
      recvaeEncoderPassOverMultVaeEpoch: perBatch.encoder / perBatch.multVae,
      recvaeDecoderPassOverMultVaeEpoch: perBatch.decoder / perBatch.multVae,
      recvaeEpochOverMultVaeEpoch: epoch.recvae / epoch.multVae,
    };
    byPrecision[precision] = { secondsPerBatch: perBatch, encoderPassesPerRound: times.encoderPasses, ml20mEpochSeconds: epoch, ratios };
    console.log(`${precision}, per batch (median of ${rounds}): Mult-VAE ${(perBatch.multVae * 1000).toFixed(1)} ms; RecVAE encoder (mean of its 3 passes) ${(perBatch.encoder * 1000).toFixed(1)} ms (${ratios.recvaeEncoderPassOverMultVaeEpoch.toFixed(2)}x), decoder ${(perBatch.decoder * 1000).toFixed(1)} ms (${ratios.recvaeDecoderPassOverMultVaeEpoch.toFixed(2)}x)`);
    console.log(`${precision}, ML-20M epoch: Mult-VAE ${epoch.multVae.toFixed(1)} s; RecVAE (3 + 1 passes) ${epoch.recvae.toFixed(1)} s (${ratios.recvaeEpochOverMultVaeEpoch.toFixed(2)}x)`);
  }
  const result = {
    machine: { cpu: cpu.model, cores: cpu.cores, flags: cpu.flags, simdTarget: cpu.simdTarget, bf16: cpu.bf16, threads },
    command: `node dist/bench/recvae-speed.js ${argv.join(' ')}`.trim(),
    shape: { users, items, clicks: train.indptr[users], batchSize: 500, rounds },
    note: 'ML-20M epoch: 233 batches of 500 (116,677 users); RecVAE: 3 encoder passes + 1 decoder pass',
    byPrecision,
  };
  const out = opt('json');
  if (out) fs.writeFileSync(out, JSON.stringify(result, null, 2));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
