// Train a Mult-VAE on a click log (a file, or generated data), evaluate it, save it.
// usage: node dist/examples/train-and-save.js [ratings-file] [--epochs N] [--out model.safetensors]
import { generateClicks, interactionsFromCsr, preparePaperProtocol, readInteractions, train } from '../src/index';

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const file = args[0] && !args[0].startsWith('--') ? args[0] : undefined;
  const epochs = Number(args[args.indexOf('--epochs') + 1] ?? 0) || 20;
  const out = args.includes('--out') ? args[args.indexOf('--out') + 1] : 'model.safetensors';

  const rows = file ? await readInteractions(file) : interactionsFromCsr(generateClicks({ users: 5000, items: 2000, meanClicksPerUser: 40, seed: 1 }));
  const data = preparePaperProtocol(rows, { heldOutUsers: file ? 0.1 : 500, threshold: file ? undefined : null });

  const model = await train(
    { train: data.train, validation: data.validation, itemIds: data.itemIds, protocol: data.protocol },
    { epochs, onEpoch: (r) => console.log(`epoch ${r.epoch}: loss ${r.loss.toFixed(2)}, validation ndcg@100 ${r.validation?.['ndcg@100']?.toFixed(4)}`) },
  );
  const { summary } = await model.evaluate(data.test);
  console.log('test', Object.fromEntries(Object.entries(summary).map(([k, v]) => [k, Number(v.mean.toFixed(4))])));
  await model.save(out, { weightsOnly: true });
  console.log(`saved ${out}`);
  model.dispose();
}

main().catch((e) => {
  console.error(e.message);
  process.exit(1);
});
