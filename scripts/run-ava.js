#!/usr/bin/env node
// Runs ava with its TAP reporter, passes the output through, and closes with a plain
// "N passed, N failed, N skipped" line (the counts of ava's own `ok` / `not ok` lines); exits non-zero
// when any run failed.
//
// With no file arguments, the files that measure the event loop (ALONE) run first, each on an otherwise
// idle machine, then every other test file with ava's usual concurrency: a 50 ms bound on the event
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
  const runs = [];
  if (args.some((a) => !a.startsWith('-'))) {
    runs.push(args);
  } else {
    const all = fs.readdirSync(path.join(root, 'dist', 'test')).filter((f) => f.endsWith('.test.js')).map((f) => `dist/test/${f}`);
    for (const file of ALONE.filter((f) => all.includes(f))) runs.push([...args, file]);
    runs.push([...args, ...all.filter((f) => !ALONE.includes(f))]);
  }
  let status = 0;
  for (const run of runs) status = (await runAva(run)) || status;
  console.log(`\n${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
  process.exit(status);
})();
