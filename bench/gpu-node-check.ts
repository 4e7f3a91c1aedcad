// The CUDA engine through Node (issue 14): Mult-VAE trained through the TypeScript API with device 'cpu'
// and with device 'cuda' on the paper's ML-1M split, same seed and schedule; the test NDCG@100 of the two
// must agree within 0.005. Also reported: what 'auto' chooses and why, the CUDA probe's answer, seconds
// per epoch on each engine, and the event loop's worst gap during the device preparation and the fit. Runs on the GPU machine
// through bench/gpu_node_check.sh (Node carried there); here it stops at the probe with exit code 3.
// usage: node dist/bench/gpu-node-check.js --data ML1M_PAIRS_FILE[.gz] [--model mult-vae|recvae] [--epochs 200] [--json OUT] [--rehearse]
import * as fs from 'node:fs';
import * as os from 'node:os';
import { performance } from 'node:perf_hooks';

import { evaluateHeldOut, MultVAE, preparePaperProtocol, probeCudaAsync, readInteractions, RecVAE, resolveDevice } from '../src/index';
import { prepareDevice } from '../src/native';
import { worstEventLoopGap } from '../src/util/event-loop';
import { option } from './native-tools';

async function main(): Promise<number> {
  const file = option('data');
  if (!file) throw new Error('usage: node dist/bench/gpu-node-check.js --data ml1m_pairs_rating_ge4.tsv[.gz] [--epochs 200] [--json OUT]');
  const epochs = Number(option('epochs') ?? 200);
  // mult-vae (default): the paper's I-600-200-600-I, beta annealed to 0.2; recvae: the authors' defaults, fp32.
  const modelName = option('model') ?? 'mult-vae';
  if (modelName !== 'mult-vae' && modelName !== 'recvae') throw new Error(`--model: expected mult-vae or recvae, got ${modelName}`);
  const out = option('json');
  const report: Record<string, unknown> = { check: `${modelName === 'recvae' ? 'RecVAE' : 'Mult-VAE'} through Node: cuda against cpu on ML-1M`, model: modelName, node: process.version, cpu: os.cpus()[0]?.model, cores: os.cpus().length, epochs };
  const save = (): void => {
    if (out) fs.writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);
  };
  const auto = resolveDevice('auto');
  const probe = await probeCudaAsync();
  Object.assign(report, { auto: { device: auto.device, note: auto.note }, cudaProbe: probe });
  console.log(`auto: ${auto.note}\ncuda probe: ${probe.ok ? 'ok' : 'not usable'}: ${probe.reason}`);
  save();
  // --rehearse: where no GPU answers, still run the CPU half (the data path, the carried Node and addon).
  const rehearse = process.argv.includes('--rehearse');
  if (!probe.ok && !rehearse) {
    report.passed = false;
    report.error = `no usable GPU: ${probe.reason}`;
    save();
    return 3;
  }
  const data = preparePaperProtocol(await readInteractions(file), { heldOutUsers: 600 });
  const results: Record<string, unknown> = {};
  for (const device of probe.ok ? (['cpu', 'cuda'] as const) : (['cpu'] as const)) {
    const model = modelName === 'recvae' ? new RecVAE({ device, precision: 'fp32' }) : new MultVAE({ pDims: [200, 600], precision: 'fp32', device });
    let seconds = 0;
    // The device's preparation (the CUDA probe, the flavour's load, the warm-up) apart from the fit, so
    // that a long gap says which part held the event loop.
    const started = performance.now();
    const prepared = await worstEventLoopGap(() => prepareDevice(device));
    const prepare = { seconds: (performance.now() - started) / 1000, worstEventLoopGapMs: Number(prepared.worst.toFixed(1)) };
    // The first engine (its construction on this thread, its initialisation on a worker), apart from
    // the fit, which makes its own engine again.
    const created = await worstEventLoopGap(() => model.createState(data.train.cols, 98765, undefined));
    const firstEngine = { worstEventLoopGapMs: Number(created.worst.toFixed(1)) };
    const { worst } = await worstEventLoopGap(async () => {
      const schedule = modelName === 'recvae' ? {} : { beta: { schedule: 'epoch-relative' as const, cap: 0.2 } };
      const h = await model.fit({ train: data.train, validation: data.validation }, { epochs, seed: 98765, ...schedule });
      seconds = h.seconds;
    });
    const test = await evaluateHeldOut(model, data.test, ['recall@20', 'recall@50', 'ndcg@100']);
    results[device] = {
      backend: model.learned().native.backend, secondsPerEpoch: seconds / epochs, prepare, firstEngine, worstEventLoopGapMs: Number(worst.toFixed(1)),
      bestEpoch: model.trainingState?.bestEpoch, test: test.summary,
    };
    console.log(`${device}: ndcg@100 ${test.summary['ndcg@100'].mean.toFixed(4)}, ${(seconds / epochs).toFixed(3)} s/epoch, worst event-loop gap ${worst.toFixed(1)} ms in fit() (device preparation: ${prepare.seconds.toFixed(2)} s, worst gap ${prepare.worstEventLoopGapMs} ms; first engine: worst gap ${firstEngine.worstEventLoopGapMs} ms)`);
    report.results = results;
    save();
    model.dispose();
  }
  if (!probe.ok) {
    report.passed = false;
    report.error = `rehearsal: the CPU half ran; no usable GPU: ${probe.reason}`;
    save();
    return 3;
  }
  const ndcg = (d: string): number => ((results[d] as { test: Record<string, { mean: number }> }).test['ndcg@100'].mean);
  report.ndcgDifference = Math.abs(ndcg('cuda') - ndcg('cpu'));
  report.passed = (report.ndcgDifference as number) <= 0.005;
  save();
  console.log(`|ndcg@100 cuda - cpu| = ${(report.ndcgDifference as number).toFixed(4)}: ${report.passed ? 'passed' : 'FAILED'} (<= 0.005)`);
  return report.passed ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
