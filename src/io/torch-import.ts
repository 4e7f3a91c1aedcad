// Import a Mult-VAE / Mult-DAE trained with the PyTorch reference code (vae-cf-pytorch, RecoTour): its
// state_dict saved as safetensors, with nn.Linear layers named q_layers.N (encoder) and p_layers.N
// (decoder), weights [out, in]. The result scores like the PyTorch model (evaluation mode) and can be
// saved in vaecf's format.
import { VaecfInputError } from '../data/csr';
import { MultDAE, MultVAE, type ArchitectureOptions } from '../models/mult-vae';
import type { ItemId } from '../models/types';
import { readSafetensorsAsync, type NamedTensor } from './model-file';

export interface TorchImportOptions extends ArchitectureOptions {
  /** external id of each item column (default: the column index) */
  itemIds?: ReadonlyArray<ItemId>;
  /** 'auto' (default): a VAE when the last encoder layer outputs twice the decoder's input */
  kind?: 'auto' | 'mult-vae' | 'mult-dae';
}

export async function importTorchStateDict(file: string, options: TorchImportOptions = {}): Promise<MultVAE | MultDAE> {
  const { tensors } = await readSafetensorsAsync(file);
  const layers = (side: 'q' | 'p'): Array<{ weight: NamedTensor; bias: NamedTensor }> => {
    const found = new Map<number, { weight?: NamedTensor; bias?: NamedTensor }>();
    for (const [name, t] of tensors) {
      const m = new RegExp(`(?:^|\\.)${side}_layers\\.(\\d+)\\.(weight|bias)$`).exec(name);
      if (!m) continue;
      const entry = found.get(Number(m[1])) ?? {};
      entry[m[2] as 'weight' | 'bias'] = t;
      found.set(Number(m[1]), entry);
    }
    return [...found.entries()].sort((a, b) => a[0] - b[0]).map(([i, e]) => {
      if (!e.weight || !e.bias) throw new VaecfInputError(`${file}: ${side}_layers.${i} needs both a weight and a bias`);
      if (e.weight.shape.length !== 2 || e.bias.shape.length !== 1 || e.bias.shape[0] !== e.weight.shape[0])
        throw new VaecfInputError(`${file}: ${side}_layers.${i} has shapes ${JSON.stringify(e.weight.shape)} / ${JSON.stringify(e.bias.shape)}, expected [out, in] / [out]`);
      return { weight: e.weight, bias: e.bias };
    });
  };
  const q = layers('q');
  const p = layers('p');
  if (q.length === 0 || p.length === 0)
    throw new VaecfInputError(`${file}: no q_layers.N / p_layers.N tensors (found ${[...tensors.keys()].slice(0, 8).join(', ')})`);
  const out = (l: { weight: NamedTensor }): number => l.weight.shape[0];
  const inp = (l: { weight: NamedTensor }): number => l.weight.shape[1];
  const nItems = inp(q[0]);
  const latent = inp(p[0]);
  const lastQ = out(q[q.length - 1]);
  const variational = options.kind === 'mult-vae' ? true : options.kind === 'mult-dae' ? false : lastQ === 2 * latent;
  if (lastQ !== (variational ? 2 * latent : latent))
    throw new VaecfInputError(`${file}: the last encoder layer outputs ${lastQ} values, the decoder takes ${latent}: not a ${variational ? 'Mult-VAE' : 'Mult-DAE'}`);
  if (out(p[p.length - 1]) !== nItems) throw new VaecfInputError(`${file}: the decoder outputs ${out(p[p.length - 1])} items, the encoder takes ${nItems}`);
  const qDims = q.map((l, i) => (i === q.length - 1 ? latent : out(l)));
  const pDims = [latent, ...p.slice(0, -1).map(out)];
  const arch: ArchitectureOptions = { ...options, pDims, qDims };
  const model = variational ? new MultVAE(arch) : new MultDAE(arch);
  const state = await model.createState(nItems, 0, options.itemIds);
  const flat = new Float32Array(state.native.numParams);
  // Placed by the engine's own layout: q_layers.K -> encoder.K, p_layers.K -> decoder.K.
  const ours = model.namedTensors(state.config, flat);
  let imported = 0;
  const layerPairs: Array<[string, { weight: NamedTensor; bias: NamedTensor }]> = [
    ...q.map((l, k): [string, typeof l] => [`encoder.${k}`, l]),
    ...p.map((l, k): [string, typeof l] => [`decoder.${k}`, l]),
  ];
  for (const [name, l] of layerPairs) {
    const weight = ours.get(`${name}.weight`);
    const bias = ours.get(`${name}.bias`);
    const [o, i] = l.weight.shape;
    if (!weight || !bias || weight.shape[0] !== i || weight.shape[1] !== o)
      throw new VaecfInputError(`${file}: ${name} does not fit the architecture built from the file (${weight ? weight.shape.join(' x ') : 'no such layer'} vs [${i} x ${o}])`);
    const w = l.weight.data as Float32Array;
    // torch [out, in] -> ours [in, out]
    for (let r = 0; r < i; r++) for (let c = 0; c < o; c++) weight.data[r * o + c] = w[c * i + r];
    bias.data.set(l.bias.data as Float32Array);
    imported += i * o + o;
  }
  if (imported !== flat.length) throw new VaecfInputError(`${file}: ${imported} parameters imported, the architecture has ${flat.length}`);
  state.native.setParameters(flat);
  state.protocol = { importedFrom: file, format: 'pytorch state_dict (q_layers / p_layers)' };
  return model;
}
