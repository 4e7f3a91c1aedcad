// RecVAE's options: what is refused with which message, and what the defaults are.
import test from 'ava';

import { MultVAE, RECVAE_DEFAULTS, RecVAE, TRAIN_DEFAULTS, resolveRecVaePrecision, train } from '../src/index';
import { loadNative } from '../src/native';
import { twoGroups } from './helpers';

test("RecVAE refuses tf32, bf16 on CUDA or where the CPU lacks it, and bad sizes, naming the option; 'auto' is bf16 where the CPU has it", (t) => {
  t.throws(() => new RecVAE({ precision: 'tf32', device: 'cpu' }).architecture(10), { message: /precision 'tf32' is a CUDA precision/ });
  t.throws(() => resolveRecVaePrecision('bf16', 'cuda'), { message: /RecVAE's CUDA engine runs in fp32/ });
  t.is(resolveRecVaePrecision('auto', 'cuda').precision, 'fp32');
  const { bf16Available } = loadNative();
  if (bf16Available) t.is(new RecVAE({ precision: 'bf16', device: 'cpu' }).architecture(10).precision, 'bf16');
  else t.throws(() => new RecVAE({ precision: 'bf16', device: 'cpu' }).architecture(10), { message: /precision 'bf16' is not available on this machine/ });
  t.is(new RecVAE({ device: 'cpu' }).architecture(10).precision, bf16Available ? 'bf16' : 'fp32');
  t.is(new RecVAE({ precision: 'fp32', device: 'cpu' }).architecture(10).precision, 'fp32');
  t.throws(() => new RecVAE({ hidden: 0 }).architecture(10), { message: /hidden: expected a positive integer/ });
  t.throws(() => new RecVAE({ mixtureWeights: [0.5, 0.5, 0.5] }).architecture(10), { message: /mixtureWeights: expected three positive weights that sum to 1/ });
  t.throws(() => new RecVAE({ dropout: 1 }).architecture(10), { message: /dropout: expected a probability/ });
  t.like(RECVAE_DEFAULTS, { lr: 5e-4, nEpochs: 50 }, "the CLI's RecVAE defaults are the authors'");
  t.is(TRAIN_DEFAULTS.batchSize, 500);
  const a = new RecVAE().architecture(10);
  t.deepEqual(a.recvae, { items: 10, hidden: 600, latent: 200, layers: 5, layerNormEps: 0.1, inputDropout: 0.5, mixtureWeights: [3 / 20, 3 / 4, 1 / 10], wideLogVar: 10 });
});

test('RecVAE training options: gamma or beta, and RecVAE options refused for Mult-VAE', async (t) => {
  const data = { train: twoGroups() };
  await t.throwsAsync(train(data, { model: 'recvae', gamma: 0.01, beta: { schedule: 'constant', value: 0.2 }, epochs: 1 }), { message: /give one of them/ });
  await t.throwsAsync(new MultVAE({ pDims: [4, 8] }).fit(data, { gamma: 0.01, epochs: 1 }), { message: /gamma: a RecVAE option/ });
  await t.throwsAsync(train(data, { model: 'recvae', encoderEpochs: 0, epochs: 1 }), { message: /encoderEpochs: expected a positive integer/ });
  const m = await train(data, { model: 'recvae', architecture: { hidden: 16, latent: 4, layers: 2, threads: 1 }, epochs: 2, batchSize: 16 });
  t.is(m.kind, 'recvae');
  t.is(m.trainingState?.epoch, 2);
  // Defaults: 3 encoder passes and 1 decoder pass per epoch, each a pass over the users in batches.
  const batches: number[] = [];
  const m2 = new RecVAE({ hidden: 16, latent: 4, layers: 2, threads: 1 });
  await m2.fit(data, { epochs: 1, batchSize: 16, onBatch: (b) => batches.push(b.batch) });
  const perPass = Math.ceil(data.train.rows / 16);
  t.is(batches.length, 4 * perPass);
  m.dispose();
  m2.dispose();
});
