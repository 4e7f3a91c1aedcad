#!/usr/bin/env node
// The kill -9 campaign (issue 17), seeded and bounded:
//  1. `vaecf train` killed with SIGKILL at random moments (checkpoint writes included), then
//     `vaecf train --resume` until it completes: the final weights and test metrics must equal an
//     uninterrupted run's, bit for bit.
//  2. A process that saves a model over the same file again and again, killed with SIGKILL at random
//     moments: the file must always load (the old or the new contents, never a mixture), and the next
//     save must remove the dead writer's temporary file.
// Prints a table (tried / handled cleanly / failed badly) and writes it as JSON with --json OUT.
// usage: node scripts/kill-campaign.js [--train-kills 12] [--save-kills 30] [--seed 1] [--json OUT]
'use strict';
const { spawn, spawnSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.join(__dirname, '..');
const cli = path.join(root, 'dist', 'src', 'cli', 'main.js');
const vaecf = require(path.join(root, 'dist', 'src', 'index.js'));
const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
};
const trainKills = Number(arg('train-kills', 12));
const saveKills = Number(arg('save-kills', 30));
let state = Number(arg('seed', 1)) >>> 0;
const random = () => {
  state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
  return state / 4294967296;
};
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'vaecf-kill-'));
const dataset = path.join(root, '..', 'shared', 'data', 'ml-latest-small', 'ratings.csv');
const trainArgs = (dir) => ['train', '--dataset', dataset, '--held-out', '50', '--n-epochs', '20', '--batch-size', '50',
  '--p-dims', '32,64', '--total-anneal-steps', 'epoch-relative', '--threads', '1', '--run-dir', dir];

function runToEnd(args) {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
  return { status: r.status, stderr: r.stderr };
}

// Starts `args`, kills it with SIGKILL after `ms` (if still running); resolves with whether it was killed.
function killAfter(args, ms) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), ms);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ killed: signal === 'SIGKILL', code, stderr });
    });
  });
}

const digestOf = (file) => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
const weightsOf = async (file) => {
  const { tensors } = await vaecf.readModelFileAsync(file);
  const h = crypto.createHash('sha256');
  for (const [name, t] of tensors) if (!name.startsWith('optimizer.')) h.update(name).update(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  return h.digest('hex');
};
const tempsIn = (dir) => fs.readdirSync(dir).filter((f) => f.endsWith('.tmp'));

async function trainCampaign() {
  const straight = path.join(work, 'straight');
  const r = runToEnd(trainArgs(straight));
  if (r.status !== 0) throw new Error(`the uninterrupted run failed: ${r.stderr}`);
  const expected = { weights: await weightsOf(path.join(straight, 'last.safetensors')), test: JSON.parse(fs.readFileSync(path.join(straight, 'results.json'), 'utf8')).test };
  const t0 = Date.now();
  runToEnd(trainArgs(path.join(work, 'timing')));
  const runMs = Date.now() - t0;
  const result = { tried: 0, handled: 0, failed: 0, killsLanded: 0, failures: [] };
  for (let run = 0; result.tried < trainKills; run++) {
    const dir = path.join(work, `run${run}`);
    let started = false;
    let killsInRun = 0;
    // Kill this run 1-3 times at random moments, then let it finish.
    for (let k = 0; k < 1 + Math.floor(random() * 3) && result.tried < trainKills; k++) {
      const args = started && fs.existsSync(path.join(dir, 'last.safetensors')) ? ['train', '--resume', dir] : trainArgs(dir);
      if (!started || !fs.existsSync(path.join(dir, 'last.safetensors'))) fs.rmSync(dir, { recursive: true, force: true });
      started = true;
      const outcome = await killAfter(args, random() * runMs);
      result.tried++;
      if (outcome.killed) {
        result.killsLanded++;
        killsInRun++;
      } else if (outcome.code !== 0) {
        result.failed++;
        result.failures.push(`run ${run}: exit ${outcome.code}: ${outcome.stderr.trim().split('\n').pop()}`);
      }
    }
    const fin = fs.existsSync(path.join(dir, 'last.safetensors')) ? runToEnd(['train', '--resume', dir]) : (fs.rmSync(dir, { recursive: true, force: true }), runToEnd(trainArgs(dir)));
    const same = fin.status === 0 && (await weightsOf(path.join(dir, 'last.safetensors'))) === expected.weights &&
      JSON.stringify(JSON.parse(fs.readFileSync(path.join(dir, 'results.json'), 'utf8')).test) === JSON.stringify(expected.test);
    if (same) result.handled += killsInRun;
    else {
      result.failed += Math.max(1, killsInRun);
      result.failures.push(`run ${run}: the resumed run differs from the uninterrupted one (${fin.stderr.trim().split('\n').pop() ?? ''})`);
    }
    result.runs = run + 1;
  }
  return result;
}

async function saveCampaign() {
  const dir = path.join(work, 'save');
  fs.mkdirSync(dir);
  const target = path.join(dir, 'model.safetensors');
  // A writer that trains once, then saves checkpoints with alternating contents forever.
  const writer = `
    const v = require(${JSON.stringify(path.join(root, 'dist', 'src', 'index.js'))});
    (async () => {
      const train = v.generateClicks({ users: 600, items: 8000, meanClicksPerUser: 30, seed: 2 });
      const m = new v.MultVAE({ pDims: [64, 600], threads: 1 });
      await m.fit({ train }, { epochs: 1 });
      for (let i = 0; ; i++) {
        process.stdout.write('saving\\n');
        await m.save(${JSON.stringify(target)});
        process.stdout.write('saved\\n');
        if (i % 2 === 0) await m.fit({ train }, { epochs: 1 });
      }
    })();`;
  const result = { tried: 0, handled: 0, failed: 0, failures: [], contents: new Set(), duringSave: 0 };
  for (let k = 0; k < saveKills; k++) {
    await new Promise((resolve) => {
      const child = spawn(process.execPath, ['-e', writer], { stdio: ['ignore', 'pipe', 'inherit'] });
      let saves = 0;
      let last = '';
      const wanted = 1 + Math.floor(random() * 3);
      child.stdout.on('data', (d) => {
        for (const line of String(d).split('\n').filter(Boolean)) {
          last = line;
          if (line !== 'saved' || ++saves !== wanted) continue;
          // A random moment after the wanted number of completed saves: in training or in the next save.
          setTimeout(() => {
            if (last === 'saving') result.duringSave++;
            child.kill('SIGKILL');
          }, random() * 1500);
        }
      });
      child.on('exit', resolve);
    });
    result.tried++;
    try {
      const loaded = await vaecf.loadModel(target, { threads: 1 }); // checksum, shapes, training state
      result.contents.add(digestOf(target));
      // The next save (by this live process) removes the dead writer's temporary files.
      const before = tempsIn(dir).length;
      await loaded.save(target);
      loaded.dispose();
      const after = tempsIn(dir).length;
      if (after !== 0) throw new Error(`${after} temporary files left after the next save (${before} before it)`);
      result.handled++;
    } catch (e) {
      result.failed++;
      result.failures.push(`kill ${k}: ${e.message}`);
    }
  }
  result.distinctContents = result.contents.size;
  result.fileBytes = fs.statSync(target).size;
  delete result.contents;
  return result;
}

(async () => {
  if (!fs.existsSync(dataset)) throw new Error(`${dataset} is missing (../shared/data beside the checkout)`);
  const started = Date.now();
  const train = await trainCampaign();
  const save = await saveCampaign();
  const rows = [
    { case: `kill -9 during vaecf train (${train.runs} runs, 1-3 kills each), then --resume to the end`, tried: train.killsLanded, handled: train.handled, failed: train.failed, failures: train.failures },
    { case: `kill -9 while saving a ${(save.fileBytes / 1e6).toFixed(0)} MB checkpoint over the same file (${save.duringSave} kills inside save(); ${save.distinctContents} distinct file contents seen)`, tried: save.tried, handled: save.handled, failed: save.failed, failures: save.failures },
  ];
  for (const r of rows) console.log(`${r.case}: tried ${r.tried}, handled cleanly ${r.handled}, failed badly ${r.failed}${r.failures.length ? `\n  ${r.failures.join('\n  ')}` : ''}`);
  const out = arg('json');
  const cpu = (fs.readFileSync('/proc/cpuinfo', 'utf8').match(/model name\s*:\s*(.*)/) || [])[1];
  if (out) fs.writeFileSync(out, `${JSON.stringify({ campaign: 'kill -9', date: new Date().toISOString(), machine: { cpu, cores: os.cpus().length }, node: process.version, seconds: (Date.now() - started) / 1000, command: `node scripts/kill-campaign.js ${process.argv.slice(2).join(' ')}`.trim(), rows }, null, 2)}\n`);
  fs.rmSync(work, { recursive: true, force: true });
  process.exit(rows.some((r) => r.failed > 0) ? 1 : 0);
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
