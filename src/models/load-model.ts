// Load a saved model of any kind the model file names.
import { VaecfInputError } from '../data/csr';
import { readModelFileAsync } from '../io/model-file';
import { type ArchitectureOptions, MultDAE, MultVAE } from './mult-vae';
import { RecVAE } from './recvae';

/** Load a saved Mult-VAE, Mult-DAE or RecVAE (engine options such as threads apply to any of them). */
export async function loadModel(file: string, options: ArchitectureOptions = {}): Promise<MultVAE | MultDAE | RecVAE> {
  const contents = await readModelFileAsync(file);
  const kind = contents.metadata.model;
  const m = kind === 'mult-dae' ? new MultDAE(options) : kind === 'recvae' ? new RecVAE(options) : kind === 'mult-vae' ? new MultVAE(options) : null;
  if (!m) throw new VaecfInputError(`${file}: holds a model of kind ${JSON.stringify(kind)}, expected 'mult-vae', 'mult-dae' or 'recvae'`);
  await m.restoreFromFile(file, options.threads, contents);
  return m;
}
