#!/usr/bin/env node
// Runs ava with its TAP reporter, passes the output through, and closes with a plain
// "N passed, N failed" line (the counts of ava's own `ok` / `not ok` lines); exits with ava's status.
'use strict';
const { spawn } = require('node:child_process');
const path = require('node:path');

const cli = path.join(__dirname, '..', 'node_modules', 'ava', 'entrypoints', 'cli.mjs');
const ava = spawn(process.execPath, [cli, '--tap', ...process.argv.slice(2)], {
  cwd: path.join(__dirname, '..'),
  stdio: ['ignore', 'pipe', 'inherit'],
});
let passed = 0;
let failed = 0;
let skipped = 0;
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
ava.on('exit', (code) => {
  console.log(`\n${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
  process.exit(code ?? 1);
});
