#!/usr/bin/env node
// The HTTP campaign (issue 17), seeded and bounded, against `vaecf serve` in a child process:
//  1. malformed requests (fixed cases and seeded mutations of a valid body): a 4xx with a reason, never a
//     5xx, never a crash;
//  2. concurrent valid requests: every answer equals the answer to the same request sent alone (the same
//     items, scores equal to float rounding: 1e-5 relative);
//  3. slow sockets (headers never finished) held open while valid requests are answered; the server
//     closes them after its header timeout;
//  4. aborted uploads (a body cut off by the client): counted in /health, the server keeps answering;
//  5. after all of it: the process is alive, the answers are unchanged, no file outside the API is served.
// usage: node scripts/http-campaign.js [--malformed 200] [--concurrent 600] [--slow 300] [--aborted 2000] [--seed 1] [--json OUT]
'use strict';
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const root = path.join(__dirname, '..');
const vaecf = require(path.join(root, 'dist', 'src', 'index.js'));
const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
};
const counts = { malformed: Number(arg('malformed', 200)), concurrent: Number(arg('concurrent', 600)), slow: Number(arg('slow', 300)), aborted: Number(arg('aborted', 2000)) };
let state = Number(arg('seed', 1)) >>> 0;
const random = () => {
  state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
  return state / 4294967296;
};
const TOKEN = 'campaign-token-7f3a';

function request(port, { method = 'POST', path: p = '/recommend', body, headers = {}, auth = true }) {
  return new Promise((resolve) => {
    const data = body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(body);
    const req = http.request({ host: '127.0.0.1', port, method, path: p, headers: { ...(auth ? { authorization: `Bearer ${TOKEN}` } : {}), ...(data ? { 'content-type': 'application/json', 'content-length': data.length } : {}), ...headers } }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode, text }));
    });
    req.on('error', (e) => resolve({ status: 0, text: e.code || e.message }));
    if (data) req.write(data);
    req.end();
  });
}

// The same answer: the same items in the same order, scores equal to float rounding (a request scored in
// a micro-batch goes through the batched matrix product instead of the one-user kernel).
function sameAnswer(a, b) {
  if (a.status !== 200 || b.status !== 200) return false;
  const x = JSON.parse(a.text);
  const y = JSON.parse(b.text);
  return JSON.stringify(x.items) === JSON.stringify(y.items) && x.scores.length === y.scores.length &&
    x.scores.every((v, i) => Math.abs(v - y.scores[i]) <= 1e-5 * Math.max(1, Math.abs(y.scores[i])));
}

function mutate(valid) {
  const b = Buffer.from(valid);
  const kind = Math.floor(random() * 4);
  if (kind === 0) for (let n = 1 + Math.floor(random() * 4); n > 0; n--) b[Math.floor(random() * b.length)] = Math.floor(random() * 256);
  if (kind === 1) return b.subarray(0, Math.floor(random() * b.length));
  if (kind === 2) return Buffer.concat([b, Buffer.from(JSON.stringify({ k: random() < 0.5 ? -1 : 1e9, items: [random() < 0.5 ? null : {}] }))]);
  if (kind === 3) return Buffer.from(JSON.stringify({ items: Array.from({ length: Math.floor(random() * 50) }, () => (random() < 0.3 ? 'x'.repeat(Math.floor(random() * 5000)) : Math.floor(random() * 1e6))), k: Math.floor(random() * 2000) - 100 }));
  return b;
}

(async () => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'vaecf-http-'));
  const started = Date.now();
  // A small trained model.
  const train = vaecf.generateClicks({ users: 800, items: 1500, meanClicksPerUser: 25, seed: 3 });
  const model = new vaecf.MultVAE({ pDims: [32, 128], threads: 1 });
  await model.fit({ train }, { epochs: 3 });
  const file = path.join(work, 'model.safetensors');
  await model.save(file, { weightsOnly: true });
  model.dispose();
  fs.writeFileSync(path.join(work, 'token'), TOKEN);
  const server = spawn(process.execPath, [path.join(root, 'dist', 'src', 'cli', 'main.js'), 'serve', file, '--port', '0', '--token-file', path.join(work, 'token'), '--threads', '1'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let serverLog = '';
  server.stderr.on('data', (d) => (serverLog += d));
  const port = await new Promise((resolve, reject) => {
    server.stdout.on('data', (d) => {
      serverLog += d;
      const m = /http:\/\/[^:]+:(\d+)/.exec(serverLog);
      if (m) resolve(Number(m[1]));
    });
    server.on('exit', (code) => reject(new Error(`the server exited (${code}): ${serverLog}`)));
  });
  const rows = [];
  const row = (name, tried, good, notes = []) => {
    rows.push({ case: name, tried, handled: good, failed: tried - good, notes: notes.slice(0, 5) });
    console.log(`${name}: tried ${tried}, handled cleanly ${good}, failed badly ${tried - good}${notes.length ? `\n  ${notes.slice(0, 5).join('\n  ')}` : ''}`);
  };
  const bodies = [[1, 2, 3], [10, 20], [5], [7, 8, 9, 10, 11]].map((items) => JSON.stringify({ items, k: 10 }));
  const reference = await Promise.all(bodies.map((b) => request(port, { body: b })));
  if (reference.some((r) => r.status !== 200)) throw new Error(`the server does not answer valid requests: ${JSON.stringify(reference)}`);

  // 1. Malformed requests.
  const fixed = [
    { body: '' }, { body: '{' }, { body: 'null' }, { body: '[]' }, { body: '{"items": "1"}' }, { body: '{"items": [1], "k": "ten"}' },
    { body: '{"items": [1], "k": 0}' }, { body: '{"items": [1], "k": 1e99}' }, { body: '{"histories": [[1], 2]}' }, { body: '{"items": [1], "exclude": 5}' },
    { body: bodies[0], auth: false }, { body: bodies[0], headers: { authorization: 'Bearer wrong' } }, { method: 'GET' }, { method: 'DELETE', path: '/health' },
    { method: 'GET', path: '/../../etc/passwd' }, { method: 'GET', path: '/%2e%2e/%2e%2e/etc/passwd' }, { method: 'GET', path: '/model.safetensors' },
    { body: 'x'.repeat(2 << 20) }, { body: JSON.stringify({ items: Array.from({ length: 100000 }, (_, i) => i) }) }, { body: bodies[0], headers: { 'content-type': 'text/plain' } },
  ];
  const cases = [...fixed];
  while (cases.length < counts.malformed) cases.push({ body: mutate(bodies[Math.floor(random() * bodies.length)]) });
  let good = 0;
  const notes = [];
  for (const c of cases) {
    const r = await request(port, c);
    // A mutation can stay valid JSON with valid ids: then 200 is right. Never a 5xx or a dropped connection.
    if (r.status >= 200 && r.status < 500 && (r.status === 200 || /"error"/.test(r.text))) good++;
    else notes.push(`${r.status} ${String(c.body ?? c.path).slice(0, 60)}: ${r.text.slice(0, 80)}`);
  }
  row('malformed requests (fixed and mutated)', cases.length, good, notes);

  // 2. Concurrent valid requests.
  const wanted = Array.from({ length: counts.concurrent }, (_, i) => i % bodies.length);
  const answers = await Promise.all(wanted.map((i) => request(port, { body: bodies[i] })));
  const wrong = answers.map((r, j) => [r, j]).filter(([r, j]) => !sameAnswer(r, reference[wanted[j]]));
  row(`${counts.concurrent} concurrent requests`, answers.length, answers.length - wrong.length,
    wrong.map(([r, j]) => `${r.status} ${r.text.slice(0, 160)} (alone: ${reference[wanted[j]].text.slice(0, 160)})`));

  // 3. Slow sockets: headers started, never finished; valid requests meanwhile; closed by the server.
  const sockets = await Promise.all(Array.from({ length: counts.slow }, () => new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => {
      s.write('POST /recommend HTTP/1.1\r\nHost: x\r\n');
      resolve(s);
    });
    s.closedAt = null;
    s.on('close', () => (s.closedAt = Date.now()));
    s.on('error', () => undefined);
  })));
  const slowStart = Date.now();
  const during = await Promise.all(bodies.map((b) => request(port, { body: b })));
  const drip = setInterval(() => sockets.forEach((s) => !s.destroyed && s.write('X-Drip: 1\r\n')), 1000);
  while (Date.now() - slowStart < 20_000 && sockets.some((s) => s.closedAt === null)) await new Promise((r) => setTimeout(r, 250));
  clearInterval(drip);
  const closed = sockets.filter((s) => s.closedAt !== null);
  const okDuring = during.every((r, j) => sameAnswer(r, reference[j]));
  row(`${counts.slow} slow sockets (headers never finished, a header line a second)`, sockets.length, okDuring ? closed.length : 0,
    [`closed by the server within ${((Math.max(...closed.map((s) => s.closedAt), slowStart) - slowStart) / 1000).toFixed(1)} s; valid requests meanwhile ${okDuring ? 'answered right' : 'FAILED'}`]);
  sockets.forEach((s) => s.destroy());

  // 4. Aborted uploads.
  const before = JSON.parse((await request(port, { method: 'GET', path: '/health' })).text);
  for (let i = 0; i < counts.aborted; i += 50) {
    await Promise.all(Array.from({ length: Math.min(50, counts.aborted - i) }, () => new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.write(`POST /recommend HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"items": [1, 2`);
        setTimeout(() => {
          s.destroy();
          resolve();
        }, 5);
      });
      s.on('error', () => resolve());
    })));
  }
  await new Promise((r) => setTimeout(r, 500));
  const after = JSON.parse((await request(port, { method: 'GET', path: '/health' })).text);
  const counted = after.abortedRequests - before.abortedRequests;
  row(`${counts.aborted} aborted uploads`, counts.aborted, counted === counts.aborted ? counts.aborted : counted, [`/health counted ${counted}`]);

  // 5. After everything.
  const final = await Promise.all(bodies.map((b) => request(port, { body: b })));
  const alive = server.exitCode === null;
  const same = final.every((r, j) => sameAnswer(r, reference[j]));
  const logLines = serverLog.split('\n').filter(Boolean).length;
  row('afterwards: alive, same answers', 1, alive && same ? 1 : 0, [`server log lines over the campaign: ${logLines}`]);
  server.kill('SIGTERM');
  await new Promise((r) => server.on('exit', r));
  fs.rmSync(work, { recursive: true, force: true });
  const out = arg('json');
  const cpu = (fs.readFileSync('/proc/cpuinfo', 'utf8').match(/model name\s*:\s*(.*)/) || [])[1];
  if (out) fs.writeFileSync(out, `${JSON.stringify({ campaign: 'http', date: new Date().toISOString(), machine: { cpu, cores: os.cpus().length }, node: process.version, seconds: (Date.now() - started) / 1000, command: `node scripts/http-campaign.js ${process.argv.slice(2).join(' ')}`.trim(), rows }, null, 2)}\n`);
  process.exit(rows.some((r) => r.failed > 0) ? 1 : 0);
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
