#!/usr/bin/env node
// Runs ava with its TAP reporter, passes the output through, and closes with a plain
// "N passed, N failed, N skipped" line (the counts of ava's own `ok` / `not ok` lines); exits non-zero
// when any run failed.
//
// The files that measure the event loop (ALONE) run first, each on an otherwise idle machine, then every
// other test file (all of dist/test, or the ones named) with ava's usual concurrency: a bound on the event
// loop's worst gap means nothing while other test processes compete for the same two cores.
'use strict';
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const cli = path.join(root, 'node_modules', 'ava', 'entrypoints', 'cli.mjs');
const ALONE = ['dist/test/async.test.js'];

let passed = 0;
let failed = 0;
let skipped = 0;

function runAva(args) {
  return new Promise((resolve) => {
    const ava = spawn(process.execPath, [cli, '--tap', ...args], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
    let rest = '';
    ava.stdout.on('data', (chunk) => {
      process.stdout.write(chunk);
      const text = rest + chunk.toString();
      const lines = text.split('\n');
      rest = lines.pop();
      for (const line of lines) {
        if (/^not ok \d+/.test(line)) failed++;
        else if (/^ok \d+.*# SKIP/i.test(line)) skipped++;
        else if (/^ok \d+/.test(line)) passed++;
      }
    });
    ava.on('exit', (code) => resolve(code ?? 1));
  });
}

(async () => {
  const args = process.argv.slice(2);
  const flags = args.filter((a) => a.startsWith('-'));
  const named = args.filter((a) => !a.startsWith('-')).map((f) => path.relative(root, path.resolve(root, f)));
  const files = named.length ? named : fs.readdirSync(path.join(root, 'dist', 'test')).filter((f) => f.endsWith('.test.js')).map((f) => `dist/test/${f}`);
  // The ALONE files each on their own first (named or not), then the rest together.
  const runs = ALONE.filter((f) => files.includes(f)).map((f) => [...flags, f]);
  const rest = files.filter((f) => !ALONE.includes(f));
  if (rest.length) runs.push([...flags, ...rest]);
  let status = 0;
  for (const run of runs) status = (await runAva(run)) || status;
  console.log(`\n${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
  process.exit(status);
})();
