#!/usr/bin/env node
// The vaecf command line. Thin: parse options, call the public API, print.
import { parseArgs } from 'node:util';

import { runDemo } from './demo';

const HELP = `vaecf: Mult-VAE / Mult-DAE collaborative filtering (Liang et al. 2018) with a native engine

usage:
  vaecf demo [--data FILE] [--model vae|dae] [--epochs N] [--held-out N] [--threads N] [--out DIR]
      Prepare the data with the paper's protocol (FILE: MovieLens, Amazon, Netflix, MSD, one-line-per-user
      or a CSV/TSV with user and item columns; without --data, a built-in generator of realistic clicks),
      train with validation, and print the test metrics beside popularity. Saves the model to DIR.
  vaecf help
`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'demo': {
      const { values } = parseArgs({
        args: rest,
        options: {
          data: { type: 'string' },
          model: { type: 'string', default: 'vae' },
          epochs: { type: 'string' },
          'held-out': { type: 'string' },
          threads: { type: 'string' },
          out: { type: 'string', default: 'vaecf-demo' },
          seed: { type: 'string' },
          format: { type: 'string' },
        },
      });
      await runDemo({
        data: values.data,
        model: values.model === 'dae' ? 'mult-dae' : 'mult-vae',
        epochs: values.epochs ? Number(values.epochs) : undefined,
        heldOut: values['held-out'] ? Number(values['held-out']) : undefined,
        threads: values.threads ? Number(values.threads) : undefined,
        seed: values.seed ? Number(values.seed) : undefined,
        out: values.out as string,
        format: values.format,
      });
      return 0;
    }
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(HELP);
      return command === undefined ? 1 : 0;
    default:
      process.stderr.write(`vaecf: unknown command "${command}"\n\n${HELP}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: Error & { code?: string }) => {
    process.stderr.write(`vaecf: ${err.message}\n`);
    if (process.env.VAECF_DEBUG) process.stderr.write(`${err.stack}\n`);
    process.exitCode = err.name === 'AbortError' ? 130 : 1;
  },
);
