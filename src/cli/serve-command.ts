// `vaecf serve MODEL`: load a saved model and answer HTTP requests until SIGINT / SIGTERM.
import * as fs from 'node:fs';

import { createRecommendServer, listen, loadModel, readModelFileAsync, shutdown, VaecfInputError } from '../index';

export async function runServe(
  file: string,
  o: { port: number; host: string; token?: string; threads?: number; coalesce?: boolean; cors?: boolean | string; logRequests?: boolean },
  log: (s: string) => void,
): Promise<void> {
  if (!fs.existsSync(file)) throw new VaecfInputError(`${file}: no such model file`);
  const model = await loadModel(file, { threads: o.threads });
  const { metadata } = await readModelFileAsync(file);
  const server = createRecommendServer(model, {
    token: o.token,
    coalesce: o.coalesce,
    cors: o.cors,
    logRequests: o.logRequests,
    log,
    metadata: {
      items: model.numItems, architecture: metadata.architecture, hyperparameters: metadata.hyperparameters, protocol: metadata.protocol,
      library: metadata.library, savedAt: metadata.savedAt, precision: model.precision,
    },
  });
  const address = await listen(server, o.port, o.host);
  log(`vaecf: serving ${file} (${model.kind}, ${model.numItems} items) on http://${address.address}:${address.port}${o.token ? ' (bearer token required)' : ''}`);
  await new Promise<void>((resolve) => {
    const stop = (signal: string): void => {
      log(`vaecf: ${signal}: finishing requests in flight, then stopping`);
      void shutdown(server).then(resolve);
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
  model.dispose();
}
