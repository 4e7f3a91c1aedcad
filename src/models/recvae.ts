// RecVAE (Shenbin, Alekseev, Tutubalina, Malykh, Nikolenko, WSDM 2020): a densely connected encoder with
// LayerNorm and swish, a composite prior that includes the previous epoch's posterior, a per-user KL
// weight gamma * |x_u|, and alternating encoder / decoder training. The constructor only stores options;
// fit() (the shared training loop, in its alternating mode) learns the state.

import { VaecfInputError } from '../data/csr';
import { readModelFileAsync } from '../io/model-file';
import { checkThreads, resolveDevice, type NativeModelConfig, type NativeRecVaeConfig } from '../native';
import { type EngineOptions, type Precision, resolvePrecision, runnablePrecision, VaeFamilyModel } from './mult-vae';

export interface RecVaeOptions extends EngineOptions {
  /** units of each encoder layer (default 600) */
  hidden?: number;
  /** latent dimensions (default 200) */
  latent?: number;
  /** densely connected encoder layers (default 5) */
  layers?: number;
  /** dropout on the encoder input in the encoder epochs (default 0.5) */
  dropout?: number;
  /** LayerNorm epsilon (default 0.1, as the authors' code) */
  layerNormEps?: number;
  /** prior mixture weights: N(0, I), the previous posterior, the wide N(0, e^wideLogVar I) (default [3/20, 3/4, 1/10]) */
  mixtureWeights?: [number, number, number];
  /** log-variance of the wide component (default 10) */
  wideLogVar?: number;
}

function positiveInteger(field: string, v: unknown): number {
  if (!Number.isSafeInteger(v) || (v as number) < 1) throw new VaecfInputError(`${field}: expected a positive integer, got ${JSON.stringify(v)}`);
  return v as number;
}

function checkRecVae(c: Partial<NativeRecVaeConfig>, where: string): NativeRecVaeConfig {
  const field = (name: string): string => `${where}${name}`;
  const items = positiveInteger(field('items'), c.items);
  const hidden = positiveInteger(field('hidden'), c.hidden);
  const latent = positiveInteger(field('latent'), c.latent);
  const layers = positiveInteger(field('layers'), c.layers);
  const { layerNormEps, inputDropout, mixtureWeights, wideLogVar } = c;
  if (typeof layerNormEps !== 'number' || !(layerNormEps > 0)) throw new VaecfInputError(`${field('layerNormEps')}: expected a positive number, got ${JSON.stringify(layerNormEps)}`);
  if (typeof inputDropout !== 'number' || !(inputDropout >= 0 && inputDropout < 1))
    throw new VaecfInputError(`${field('dropout')}: expected a probability in [0, 1), got ${JSON.stringify(inputDropout)}`);
  if (!Array.isArray(mixtureWeights) || mixtureWeights.length !== 3 || !mixtureWeights.every((w) => typeof w === 'number' && w > 0) ||
      Math.abs(mixtureWeights[0] + mixtureWeights[1] + mixtureWeights[2] - 1) > 1e-6)
    throw new VaecfInputError(`${field('mixtureWeights')}: expected three positive weights that sum to 1, got ${JSON.stringify(mixtureWeights)}`);
  if (typeof wideLogVar !== 'number' || !Number.isFinite(wideLogVar)) throw new VaecfInputError(`${field('wideLogVar')}: expected a finite number, got ${JSON.stringify(wideLogVar)}`);
  return { items, hidden, latent, layers, layerNormEps, inputDropout, mixtureWeights: [...mixtureWeights] as [number, number, number], wideLogVar };
}

/**
 * RecVAE's precision: on the CPU 'bf16' runs the matrix products of the decoder and of the encoder's
 * dense layers in bf16 (fp32 master weights and accumulation; LayerNorm, the sparse first layer and the
 * prior's encoder pass stay fp32) where the processor has native bf16, and 'auto' chooses it there, as
 * for Mult-VAE; the CUDA engine runs RecVAE in fp32.
 */
export function resolveRecVaePrecision(wanted: Precision | undefined, device: 'cpu' | 'cuda' = 'cpu'): { precision: 'fp32' | 'bf16'; note: string } {
  if (device === 'cuda') {
    if (wanted === undefined || wanted === 'auto' || wanted === 'fp32') return { precision: 'fp32', note: 'fp32 (RecVAE on CUDA)' };
    throw new VaecfInputError(`precision: RecVAE's CUDA engine runs in fp32 in this version ('fp32' or 'auto'), got ${JSON.stringify(wanted)}`);
  }
  if (wanted === 'tf32') throw new VaecfInputError("precision 'tf32' is a CUDA precision, and RecVAE's CUDA engine runs in fp32; on the CPU use 'fp32', 'bf16' or 'auto'");
  const r = resolvePrecision(wanted, 'cpu');
  return { precision: r.precision === 'bf16' ? 'bf16' : 'fp32', note: r.note.replace('bf16 output layer', 'bf16 products') };
}

/** RecVAE (600-unit encoder of 5 densely connected layers, latent 200, as the paper by default). */
export class RecVAE extends VaeFamilyModel<RecVaeOptions> {
  readonly kind = 'recvae' as const;

  architecture(nItems: number): NativeModelConfig {
    const o = this.options;
    const { device } = resolveDevice(o.device);
    const { precision } = resolveRecVaePrecision(o.precision, device);
    const recvae = checkRecVae(
      {
        items: nItems, hidden: o.hidden ?? 600, latent: o.latent ?? 200, layers: o.layers ?? 5, layerNormEps: o.layerNormEps ?? 0.1,
        inputDropout: o.dropout ?? 0.5, mixtureWeights: o.mixtureWeights ?? [3 / 20, 3 / 4, 1 / 10], wideLogVar: o.wideLogVar ?? 10,
      },
      '',
    );
    return this.nativeConfig(recvae, checkThreads(o.threads), device, precision);
  }

  private nativeConfig(recvae: NativeRecVaeConfig, threads: number, device: 'cpu' | 'cuda', precision: 'fp32' | 'bf16'): NativeModelConfig {
    return {
      encoderDims: [recvae.items, recvae.hidden, recvae.latent], decoderDims: [recvae.latent, recvae.items], variational: true,
      encoderDropout: [recvae.inputDropout, 0], decoderDropout: [0], threads, precision, device, recvae,
    };
  }

  protected describeArchitecture(config: NativeModelConfig): Record<string, unknown> {
    return { recvae: config.recvae, encoderDims: config.encoderDims, decoderDims: config.decoderDims, variational: true };
  }

  protected storedConfig(file: string, arch: Record<string, unknown>, nItems: number, threads: number, device: 'cpu' | 'cuda'): NativeModelConfig {
    const stored = arch.recvae as Partial<NativeRecVaeConfig> | undefined;
    if (!stored || typeof stored !== 'object') throw new VaecfInputError(`${file}: no RecVAE architecture in the metadata (a damaged or hand-edited model file?)`);
    const recvae = checkRecVae(stored, `${file}: architecture.recvae.`);
    if (recvae.items !== nItems) throw new VaecfInputError(`${file}: the architecture has ${recvae.items} items but nItems is ${nItems}`);
    // Without a precision option: the one it was saved with where it runs here (as for Mult-VAE).
    const wanted = this.options.precision ?? runnablePrecision(arch.precision, device, resolveRecVaePrecision);
    return this.nativeConfig(recvae, threads, device, resolveRecVaePrecision(wanted, device).precision);
  }

  /** Load a saved RecVAE. */
  static async load(file: string, options: RecVaeOptions = {}): Promise<RecVAE> {
    const m = new RecVAE(options);
    await m.restoreFromFile(file, options.threads, await readModelFileAsync(file));
    return m;
  }
}
