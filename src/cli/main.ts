#!/usr/bin/env node
// The vaecf command line. Thin: parse options, call the public API, print.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';

import { DATA_FLAGS, dataOptionsFrom, numberFlag } from './data-options';
import { runDemo } from './demo';
import { runEvaluate } from './evaluate-command';
import { runFetch } from './fetch-command';
import { runPrepare } from './prepare-command';
import { runServe } from './serve-command';
import { VERSION } from '../version';
import { RECIPES, recipeConfig, runBetaStudy, runSweep, runTrain, TRAIN_DEFAULTS, RECVAE_DEFAULTS, writeReport, type SweepSpec, type TrainConfig } from '../index';

const HELP = `vaecf: Mult-VAE / Mult-DAE (Liang et al. 2018) and RecVAE (Shenbin et al. 2020) collaborative filtering with a native engine

usage:
  vaecf demo [--data FILE|DIR] [--model vae|dae|recvae] [--epochs N] [--threads N] [--out DIR] [data options]
      The main job end to end: prepare the data with the paper's protocol (no --data: a built-in
      generator of realistic clicks), train with validation, print the test metrics beside popularity,
      save the model in DIR (default vaecf-demo).
  vaecf train --dataset FILE|DIR [data options] [--model vae|dae] [--p-dims N,N (default: vae 200,600; dae 200)] [--q-dims ...] [--dropout-enc 0.5,0]
             [--dropout-dec 0,0] [--weight-decay X] [--optimizer adam|adamw] [--lr X] [--lr-scheduler none|plateau]
             [--lr-patience N] [--batch-size N] [--n-epochs N] [--anneal-cap X] [--total-anneal-steps N|epoch-relative]
             [--constant-anneal] [--early-stop-patience N] [--early-stop-score-fn metric|loss] [--eval-every N] [--checkpoint-every 1] [--memory-budget GIB]
             [--seed N] [--device auto|cpu|cuda] [--threads N] [--precision auto|fp32|bf16|tf32] [--config FILE.json] [--run-dir DIR]
  vaecf train --model recvae --dataset FILE|DIR [data options] [--hidden-dim 600] [--latent-dim 200] [--gamma 0.005 | --beta X]
             [--n-enc-epochs 3] [--n-dec-epochs 1] [--not-alternating] [--dropout-enc 0.5] [--lr 5e-4] [--n-epochs 50]
             [--batch-size 500] [training options above]
      RecVAE with the authors' run.py options and defaults (CPU engine, fp32).
  vaecf train --resume RUN_DIR
      Train with the reference scripts' options; RUN_DIR gets config.json, metrics.jsonl, last.safetensors
      (a checkpoint every --checkpoint-every epochs and at the end: Ctrl-C leaves it resumable),
      best.safetensors (the best validation weights, weights only) and results.json.
  vaecf beta-study --dataset FILE|DIR [training options] [--run-dir DIR]
      The paper's Figure 2: anneal beta to 1, pick the beta with the best validation metric, retrain with it.
  vaecf sweep SPEC.json [--dir DIR]
      {"base": {training options}, "grid": {"lr": [0.001, 0.005], ...}} or "random": {"samples": N,
      "space": {"lr": {"min": 1e-4, "max": 1e-2, "log": true}}}; resumable; writes all_results.csv.
  vaecf report RUN_DIR | STUDY_DIR | SWEEP_DIR
      report.html with plots (loss, KL, beta, validation per epoch; the beta study; the sweep table;
      ours beside popularity and published numbers) and the plots as SVG files.
  vaecf reproduce ml-20m|amazon-movies-tv|ml-1m|gowalla [--data PATH] [training options]
      Run a reference experiment and print ours beside the published numbers.
  vaecf fetch DATASET [--dir DIR]
      Download an official archive (ml-100k, ml-1m, ml-10m, ml-20m, ml-25m, ml-latest-small,
      amazon-movies-tv-2014, amazon-movies-tv-2018), check its checksum, resume, extract.
  vaecf prepare FILE --out DIR [data options]
      Read a log (MovieLens, Amazon, Netflix, MSD, one-line-per-user, CSV/TSV with named columns) and write
      the prepared dataset (binary CSR + manifest) once.
  vaecf evaluate FILE|DIR --model popularity|ease|MODEL_FILE [--lambda L[,L...]] [--split test|validation]
                 [--metrics recall@20,recall@50,ndcg@100] [--json OUT] [data options]
  vaecf serve MODEL_FILE [--port 8080] [--host 127.0.0.1] [--token-file FILE | --token T] [--threads N] [--no-coalesce] [--cors ORIGIN|*] [--log-requests]
      Answer HTTP requests with a saved model: POST /recommend {"items": [...], "k": 10}, GET /health,
      GET /model (the token also from VAECF_TOKEN; a file or the variable keeps it out of ps).

  vaecf COMMAND --help   that command's options;   vaecf --version

data options (for raw files): --format NAME, --held-out N (users per held-out set; default 10% up to
  10,000), --threshold X|none (keep rating > X; default 3.5 for a rating column, 0 for a count column: weight, count, plays, ...), --min-user-clicks N
  (5), --min-item-clicks N (0), --seed N (98765), --test FILE (a given train/test split: FILE is train;
  --validation-users N|fraction carves validation out of train), --user-col / --item-col / --rating-col / --time-col NAME
  (the header names of a CSV/TSV's columns), --delimiter C|tab
`;

const TRAIN_FLAGS = {
  ...DATA_FLAGS,
  dataset: { type: 'string' }, model: { type: 'string' }, 'p-dims': { type: 'string' }, 'q-dims': { type: 'string' },
  'dropout-enc': { type: 'string' }, 'dropout-dec': { type: 'string' }, 'weight-decay': { type: 'string' }, optimizer: { type: 'string' },
  lr: { type: 'string' }, 'lr-scheduler': { type: 'string' }, 'lr-patience': { type: 'string' }, 'batch-size': { type: 'string' },
  'n-epochs': { type: 'string' }, 'anneal-cap': { type: 'string' }, 'total-anneal-steps': { type: 'string' },
  'constant-anneal': { type: 'boolean' }, 'early-stop-patience': { type: 'string' }, 'early-stop-score-fn': { type: 'string' },
  'eval-every': { type: 'string' }, 'checkpoint-every': { type: 'string' }, 'memory-budget': { type: 'string' }, device: { type: 'string' }, threads: { type: 'string' }, precision: { type: 'string' },
  config: { type: 'string' }, 'run-dir': { type: 'string' }, resume: { type: 'string' },
  'hidden-dim': { type: 'string' }, 'latent-dim': { type: 'string' }, gamma: { type: 'string' }, beta: { type: 'string' },
  'n-enc-epochs': { type: 'string' }, 'n-dec-epochs': { type: 'string' }, 'not-alternating': { type: 'boolean' },
} as const;

/** Training options from the command line over a --config file over the defaults. */
function trainConfigFrom(values: Record<string, string | boolean | undefined>, withDefaults = true): TrainConfig {
  const fromFile = typeof values.config === 'string' ? JSON.parse(fs.readFileSync(values.config, 'utf8')) : {};
  const list = (name: string): number[] | undefined => {
    const v = values[name];
    if (typeof v !== 'string') return undefined;
    const xs = v.split(',').map(Number);
    if (!xs.every(Number.isFinite)) throw new Error(`--${name}: expected numbers separated by commas, got "${v}"`);
    return xs;
  };
  const num = (name: string): number | undefined => numberFlag(name, values[name]);
  const str = (name: string): string | undefined => (typeof values[name] === 'string' ? (values[name] as string) : undefined);
  const cli: Partial<TrainConfig> = {
    ...dataOptionsFrom(values),
    dataset: str('dataset'), model: str('model') as TrainConfig['model'] | undefined, pDims: list('p-dims'), qDims: list('q-dims'),
    dropoutEnc: list('dropout-enc'), dropoutDec: list('dropout-dec'), weightDecay: num('weight-decay'),
    optimizer: str('optimizer') as TrainConfig['optimizer'] | undefined, lr: num('lr'),
    lrScheduler: str('lr-scheduler') as TrainConfig['lrScheduler'] | undefined, lrPatience: num('lr-patience'),
    batchSize: num('batch-size'), nEpochs: num('n-epochs'), annealCap: num('anneal-cap'),
    totalAnnealSteps: values['total-anneal-steps'] === 'epoch-relative' ? 'epoch-relative' : num('total-anneal-steps'),
    constantAnneal: values['constant-anneal'] as boolean | undefined, earlyStopPatience: num('early-stop-patience'),
    earlyStopScoreFn: str('early-stop-score-fn') as TrainConfig['earlyStopScoreFn'] | undefined, evalEvery: num('eval-every'),
    checkpointEvery: num('checkpoint-every'), memoryBudgetGiB: num('memory-budget'),
    device: str('device') as TrainConfig['device'] | undefined, threads: num('threads'),
    precision: str('precision') as TrainConfig['precision'] | undefined,
    hiddenDim: num('hidden-dim'), latentDim: num('latent-dim'), gamma: num('gamma'), beta: num('beta'),
    nEncEpochs: num('n-enc-epochs'), nDecEpochs: num('n-dec-epochs'), notAlternating: values['not-alternating'] as boolean | undefined,
  };
  const defined = Object.fromEntries(Object.entries(cli).filter(([, v]) => v !== undefined));
  if (!withDefaults) return { ...fromFile, ...defined } as TrainConfig;
  const modelName = (defined.model ?? fromFile.model ?? TRAIN_DEFAULTS.model) as string;
  const config = { ...TRAIN_DEFAULTS, ...(modelName === 'recvae' ? RECVAE_DEFAULTS : {}), ...fromFile, ...defined } as TrainConfig;
  if (!config.dataset) throw new Error('--dataset FILE|DIR is required (or --resume RUN_DIR)');
  if (!['vae', 'dae', 'recvae'].includes(config.model)) throw new Error(`--model: expected vae, dae or recvae, got "${config.model}"`);
  const recvaeOnly = ['hiddenDim', 'latentDim', 'gamma', 'beta', 'nEncEpochs', 'nDecEpochs', 'notAlternating'] as const;
  if (config.model !== 'recvae')
    for (const key of recvaeOnly) if (config[key] !== undefined) throw new Error(`${key}: a RecVAE option (--model recvae)`);
  return config;
}

/** The part of HELP about one command (every usage line of it), with the data options where it takes them. */
function commandHelp(command: string): string | null {
  const lines = HELP.split('\n');
  const out: string[] = [];
  let inside = false;
  for (const line of lines) {
    if (/^ {2}vaecf /.test(line)) inside = line.startsWith(`  vaecf ${command} `) || line === `  vaecf ${command}`;
    else if (!/^ {3,}/.test(line)) inside = false;
    if (inside) out.push(line);
  }
  if (!out.length) return null;
  const dataOptions = HELP.slice(HELP.indexOf('\ndata options (for raw files)') + 1);
  return `usage:\n${out.join('\n')}\n${out.some((l) => l.includes('[data options]')) ? `\n${dataOptions}` : ''}`;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  const log = (s: string): void => void process.stdout.write(`${s}\n`);
  if (command === '--version' || command === '-v' || command === 'version') {
    log(`vaecf ${VERSION} (node ${process.version})`);
    return 0;
  }
  // `vaecf COMMAND --help`: that command's usage, before any option is parsed or data is read.
  if (command && (rest.includes('--help') || rest.includes('-h'))) {
    const help = commandHelp(command);
    if (help) {
      process.stdout.write(help);
      return 0;
    }
  }
  switch (command) {
    case 'demo': {
      const { values } = parseArgs({
        args: rest,
        options: {
          ...DATA_FLAGS,
          data: { type: 'string' },
          model: { type: 'string', default: 'vae' },
          epochs: { type: 'string' },
          threads: { type: 'string' },
          out: { type: 'string', default: 'vaecf-demo' },
        },
      });
      await runDemo({
        ...dataOptionsFrom(values),
        data: values.data,
        model: values.model === 'dae' ? 'mult-dae' : values.model === 'recvae' ? 'recvae' : values.model === 'vae' ? 'mult-vae' : (() => { throw new Error(`--model: expected vae, dae or recvae, got "${String(values.model)}"`); })(),
        epochs: numberFlag('epochs', values.epochs),
        threads: numberFlag('threads', values.threads),
        out: values.out as string,
      });
      return 0;
    }
    case 'prepare': {
      const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: { ...DATA_FLAGS, out: { type: 'string' } } });
      if (positionals.length !== 1 || !values.out) throw new Error('usage: vaecf prepare FILE --out DIR [data options]');
      await runPrepare(positionals[0], values.out, dataOptionsFrom(values), log);
      return 0;
    }
    case 'evaluate': {
      const { values, positionals } = parseArgs({
        args: rest,
        allowPositionals: true,
        options: {
          ...DATA_FLAGS,
          model: { type: 'string' },
          lambda: { type: 'string' },
          split: { type: 'string', default: 'test' },
          metrics: { type: 'string', default: 'recall@20,recall@50,ndcg@100' },
          json: { type: 'string' },
          threads: { type: 'string' },
        },
      });
      if (positionals.length !== 1 || !values.model) throw new Error('usage: vaecf evaluate FILE|DIR --model popularity|ease|MODEL_FILE');
      if (values.split !== 'test' && values.split !== 'validation') throw new Error(`--split: expected test or validation, got "${values.split}"`);
      await runEvaluate(positionals[0], {
        ...dataOptionsFrom(values),
        model: values.model,
        lambda: values.lambda,
        split: values.split,
        metrics: (values.metrics as string).split(','),
        json: values.json,
        threads: numberFlag('threads', values.threads),
      }, log);
      return 0;
    }
    case 'train': {
      const { values } = parseArgs({ args: rest, options: TRAIN_FLAGS });
      if (values.resume) {
        await runTrain({ ...TRAIN_DEFAULTS, dataset: '' }, values.resume as string, true, log);
        const report = await writeReport(values.resume as string);
        log(`report: ${report.html}${report.plotsSkipped ? ` (no plots: ${report.plotsSkipped}; Vega-Lite specs written beside it)` : ''}`);
        return 0;
      }
      const config = trainConfigFrom(values);
      const runDir = (values['run-dir'] as string | undefined) ?? path.join('runs', new Date().toISOString().replace(/[:.]/g, '-'));
      await runTrain(config, runDir, false, log);
      const report = await writeReport(runDir);
      log(`report: ${report.html}${report.plotsSkipped ? ` (no plots: ${report.plotsSkipped}; Vega-Lite specs written beside it)` : ''}`);
      return 0;
    }
    case 'beta-study': {
      const { values } = parseArgs({ args: rest, options: TRAIN_FLAGS });
      const config = trainConfigFrom(values);
      const dir = (values['run-dir'] as string | undefined) ?? path.join('runs', `beta-study-${new Date().toISOString().replace(/[:.]/g, '-')}`);
      const r = await runBetaStudy(config, dir, log);
      const report = await writeReport(dir);
      log(`best beta ${r.bestBeta.toFixed(4)}; retrained test ${Object.entries(r.final.test).map(([k, v]) => `${k} ${v.mean.toFixed(4)}`).join(', ')}`);
      log(`report: ${report.html}${report.plotsSkipped ? ` (no plots: ${report.plotsSkipped}; Vega-Lite specs written beside it)` : ''}`);
      return 0;
    }
    case 'sweep': {
      const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: { dir: { type: 'string' } } });
      if (positionals.length !== 1) throw new Error('usage: vaecf sweep SPEC.json [--dir DIR]');
      const spec = JSON.parse(fs.readFileSync(positionals[0], 'utf8')) as SweepSpec;
      const dir = (values.dir as string | undefined) ?? path.join('runs', path.basename(positionals[0], '.json'));
      const csv = await runSweep(spec, dir, log);
      const report = await writeReport(dir);
      log(`\n${fs.readFileSync(csv, 'utf8')}results: ${csv}\nreport: ${report.html}`);
      return 0;
    }
    case 'report': {
      if (rest.length !== 1) throw new Error('usage: vaecf report RUN_OR_SWEEP_DIR');
      const report = await writeReport(rest[0]);
      log(`report: ${report.html}\nplots: ${report.svgs.join(', ')}`);
      return 0;
    }
    case 'reproduce': {
      const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: { ...TRAIN_FLAGS, data: { type: 'string' } } });
      if (positionals.length !== 1) throw new Error(`usage: vaecf reproduce RECIPE [--data PATH] [--n-epochs N]; recipes: ${Object.keys(RECIPES).join(', ')}`);
      const name = positionals[0];
      const overrides = Object.fromEntries(Object.entries(trainConfigFrom({ ...values, dataset: 'x' }, false)).filter(([k, v]) => v !== undefined && k !== 'dataset'));
      const config = recipeConfig(name, overrides, values.data as string | undefined);
      log(`recipe ${name}: ${RECIPES[name].description}`);
      const dir = (values['run-dir'] as string | undefined) ?? path.join('runs', `${name}-${new Date().toISOString().replace(/[:.]/g, '-')}`);
      const r = await runTrain(config, dir, false, log);
      log(`\n${'metric'.padEnd(22)}${'vaecf'.padStart(20)}${'published'.padStart(12)}`);
      for (const [k, v] of Object.entries(r.test))
        log(`${k.padEnd(22)}${`${v.mean.toFixed(4)} ± ${v.stderr.toFixed(4)}`.padStart(20)}${(config.published[k]?.toFixed(4) ?? '').padStart(12)}`);
      log(`published: ${RECIPES[name].source}`);
      const report = await writeReport(dir);
      log(`report: ${report.html}${report.plotsSkipped ? ` (no plots: ${report.plotsSkipped}; Vega-Lite specs written beside it)` : ''}`);
      return 0;
    }
    case 'serve': {
      const { values, positionals } = parseArgs({
        args: rest,
        allowPositionals: true,
        options: {
          port: { type: 'string', default: '8080' }, host: { type: 'string', default: '127.0.0.1' }, token: { type: 'string' }, 'token-file': { type: 'string' },
          threads: { type: 'string' }, 'no-coalesce': { type: 'boolean', default: false },
          cors: { type: 'string' }, 'log-requests': { type: 'boolean', default: false },
        },
      });
      if (positionals.length !== 1) throw new Error('usage: vaecf serve MODEL_FILE [--port 8080] [--host 127.0.0.1] [--token-file FILE | --token T] [--threads N] [--no-coalesce] [--cors ORIGIN|*] [--log-requests]');
      // The token from a file (first line) or VAECF_TOKEN keeps it out of `ps`; --token is for quick local use.
      const tokenFile = values['token-file'] as string | undefined;
      let fileToken: string | undefined;
      if (tokenFile) {
        try {
          fileToken = fs.readFileSync(tokenFile, 'utf8').split(/\r?\n/)[0].trim();
        } catch (e) {
          throw new Error(`--token-file ${tokenFile}: ${(e as Error).message}`);
        }
        if (!fileToken) throw new Error(`--token-file ${tokenFile}: the first line is empty (expected the bearer token)`);
      }
      await runServe(positionals[0], {
        port: numberFlag('port', values.port) ?? 8080,
        host: values.host as string,
        token: fileToken ?? (values.token as string | undefined) ?? process.env.VAECF_TOKEN,
        threads: numberFlag('threads', values.threads),
        coalesce: !values['no-coalesce'],
        cors: values.cors === undefined ? undefined : values.cors === '*' ? true : (values.cors as string),
        logRequests: values['log-requests'] as boolean,
      }, log);
      return 0;
    }
    case 'fetch': {
      const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: { dir: { type: 'string', default: 'datasets' } } });
      if (positionals.length !== 1) throw new Error('usage: vaecf fetch DATASET [--dir DIR]');
      await runFetch(positionals[0], values.dir as string, log);
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
