// The HTTP service: answers, unknown ids reported, malformed bodies refused with the reason, bounds,
// the bearer token, graceful shutdown.
import test from 'ava';

import { createRecommendServer, listen, shutdown, train, type MultVAE } from '../src/index';
import { twoGroups } from './helpers';

let model: MultVAE;
const ids = Array.from({ length: 20 }, (_, i) => `item${i}`);

test.before(async () => {
  model = (await train({ train: twoGroups(), itemIds: ids }, { epochs: 40, batchSize: 20, learningRate: 0.01, seed: 3, architecture: { pDims: [8, 32], threads: 1 } })) as MultVAE;
});
test.after.always(() => model.dispose());

async function withServer(options: Parameters<typeof createRecommendServer>[1], f: (url: string) => Promise<void>): Promise<void> {
  const server = createRecommendServer(model, options);
  const address = await listen(server, 0);
  try {
    await f(`http://127.0.0.1:${address.port}`);
  } finally {
    await shutdown(server, 2000);
  }
}

const post = (url: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(url, { method: 'POST', body: typeof body === 'string' ? body : JSON.stringify(body), headers: { 'Content-Type': 'application/json', ...headers } });

test('recommends, reports unknown ids, honours exclude and allow', async (t) => {
  await withServer({ metadata: { items: 20 } }, async (url) => {
    const r = await post(`${url}/recommend`, { items: ['item0', 'item1', 'nope'], k: 3 });
    t.is(r.status, 200);
    const body = (await r.json()) as { items: string[]; scores: number[]; unknownItems: string[] };
    t.is(body.items.length, 3);
    t.true(body.items.every((id) => Number(id.slice(4)) < 10));
    t.deepEqual(body.unknownItems, ['nope']);
    const ex = (await (await post(`${url}/recommend`, { items: ['item0'], k: 3, exclude: body.items })).json()) as { items: string[] };
    t.false(ex.items.some((id) => body.items.includes(id)));
    const al = (await (await post(`${url}/recommend`, { items: ['item0'], k: 5, allow: ['item15', 'item16'] })).json()) as { items: string[] };
    t.deepEqual([...al.items].sort(), ['item15', 'item16']);
    const many = (await (await post(`${url}/recommend`, { histories: [['item0'], ['item12']], k: 2 })).json()) as { results: unknown[] };
    t.is(many.results.length, 2);
    const health = (await (await fetch(`${url}/health`)).json()) as { status: string };
    t.is(health.status, 'ok');
    const meta = (await (await fetch(`${url}/model`)).json()) as { kind: string; items: number };
    t.like(meta, { kind: 'mult-vae', items: 20 });
  });
});

test('concurrent requests are micro-batched and answered as if alone; a large request beside them is queued, not refused', async (t) => {
  // Answers scored one by one (no server), the reference.
  const histories = Array.from({ length: 24 }, (_, u) => [`item${u % 20}`, `item${(u * 7 + 3) % 20}`]);
  const alone = await Promise.all(histories.map(async (h) => (await model.recommend([h], { k: 4 }))[0]));
  await withServer({}, async (url) => {
    const singles = histories.map((h) => post(`${url}/recommend`, { items: h, k: 4 }).then((r) => r.json()));
    // Twelve users in one request: the thread-pool path, running while single requests wait.
    const batch = post(`${url}/recommend`, { histories: histories.slice(0, 12), k: 4 }).then((r) => r.json());
    const [answers, many] = await Promise.all([Promise.all(singles), batch]);
    t.deepEqual((answers as Array<{ items: string[] }>).map((a) => a.items), alone.map((a) => a.items));
    t.deepEqual((many as { results: Array<{ items: string[] }> }).results.map((a) => a.items), alone.slice(0, 12).map((a) => a.items));
    const health = (await (await fetch(`${url}/health`)).json()) as { scoring: { calls: number; users: number; largestGroup: number } };
    t.is(health.scoring.users, 24 + 12);
    t.true(health.scoring.calls < 25, `${health.scoring.calls} calls for 25 requests`);
    t.true(health.scoring.largestGroup > 1);
  });
  await withServer({ coalesce: false }, async (url) => {
    const answers = await Promise.all(histories.map((h) => post(`${url}/recommend`, { items: h, k: 4 }).then((r) => r.json())));
    t.deepEqual((answers as Array<{ items: string[] }>).map((a) => a.items), alone.map((a) => a.items));
    const health = (await (await fetch(`${url}/health`)).json()) as { scoring: { calls: number } };
    t.is(health.scoring.calls, 24);
  });
});

test('malformed requests get 400 with the reason; bounds and routes are enforced', async (t) => {
  await withServer({ maxBodyBytes: 2000, maxK: 50 }, async (url) => {
    const cases: Array<[unknown, number, RegExp]> = [
      ['{not json', 400, /not valid JSON/],
      [[1, 2], 400, /must be a JSON object/],
      [{ k: 3 }, 400, /give "items"/],
      [{ items: 'item0' }, 400, /"items" must be an array/],
      [{ items: ['item0', { x: 1 }] }, 400, /"items\[1\]" must be a string or a number/],
      [{ items: ['item0'], k: 0 }, 400, /"k" must be an integer from 1 to 50/],
      [{ items: ['item0'], k: 51 }, 400, /"k" must be an integer from 1 to 50/],
      [{ items: Array.from({ length: 500 }, (_, i) => `item${i}`) }, 413, /larger than 2000 bytes/],
    ];
    for (const [body, status, message] of cases) {
      const r = await post(`${url}/recommend`, body);
      t.is(r.status, status, JSON.stringify(body).slice(0, 40));
      t.regex(((await r.json()) as { error: string }).error, message);
    }
    t.is((await fetch(`${url}/recommend`)).status, 405);
    t.is((await fetch(`${url}/nowhere`)).status, 404);
  });
});

test('a bearer token is required when configured', async (t) => {
  await withServer({ token: 's3cret' }, async (url) => {
    t.is((await post(`${url}/recommend`, { items: ['item0'] })).status, 401);
    t.is((await post(`${url}/recommend`, { items: ['item0'] }, { Authorization: 'Bearer wrong' })).status, 401);
    t.is((await post(`${url}/recommend`, { items: ['item0'] }, { Authorization: 'Bearer s3cret' })).status, 200);
  });
});

test('a bounded load on loopback: concurrency 16, no errors, every answer right', async (t) => {
  await withServer({}, async (url) => {
    const expected = ((await (await post(`${url}/recommend`, { items: ['item3', 'item4'], k: 5 })).json()) as { items: string[] }).items;
    let errors = 0;
    let wrong = 0;
    const worker = async (): Promise<void> => {
      for (let i = 0; i < 25; i++) {
        const r = await post(`${url}/recommend`, { items: ['item3', 'item4'], k: 5 });
        if (r.status !== 200) errors++;
        else if (JSON.stringify(((await r.json()) as { items: string[] }).items) !== JSON.stringify(expected)) wrong++;
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));
    t.is(errors, 0);
    t.is(wrong, 0);
  });
});

test('a slow client is cut off after the header timeout, and an aborted upload is counted, not logged', async (t) => {
  const net = await import('node:net');
  const logged: string[] = [];
  await withServer({ headersTimeoutMs: 500, requestTimeoutMs: 1000, log: (l) => logged.push(l) }, async (url) => {
    const port = Number(new URL(url).port);
    // Slow-loris: half a request line, then nothing. The server must close the socket within seconds.
    const closedAfter = await new Promise<number>((resolve) => {
      const t0 = Date.now();
      const socket = net.connect(port, '127.0.0.1', () => socket.write('POST /recommend HTTP/1.1\r\nHost: x\r\n'));
      socket.resume(); // read what the server sends (its 408), or the end of the stream never comes
      socket.on('close', () => resolve(Date.now() - t0));
      socket.on('error', () => undefined);
      socket.setTimeout(10_000, () => socket.destroy());
    });
    t.true(closedAfter < 5000, `the slow socket stayed open ${closedAfter} ms`);
    // An upload that stops half-way: the client resets the connection.
    await new Promise<void>((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => {
        socket.write('POST /recommend HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"items": [');
        setTimeout(() => {
          socket.destroy();
          resolve();
        }, 100);
      });
      socket.on('error', () => undefined);
    });
    await new Promise((r) => setTimeout(r, 200));
    const health = (await (await fetch(`${url}/health`)).json()) as { abortedRequests: number };
    t.is(health.abortedRequests, 1);
  });
  t.deepEqual(logged, [], 'nothing logged for a client that went away');
});

test('a RecVAE is served the same way (its answers equal recommend())', async (t) => {
  const rec = await train({ train: twoGroups(), itemIds: ids }, {
    model: 'recvae', epochs: 8, batchSize: 20, learningRate: 0.01, seed: 3, architecture: { hidden: 16, latent: 4, layers: 2, threads: 1 },
  });
  const server = createRecommendServer(rec, {});
  const address = await listen(server, 0);
  try {
    const r = await post(`http://127.0.0.1:${address.port}/recommend`, { items: ['item0', 'item1'], k: 4 });
    t.is(r.status, 200);
    const body = (await r.json()) as { items: string[] };
    const [direct] = await rec.recommend([['item0', 'item1']], { k: 4 });
    t.deepEqual(body.items, direct.items);
    const meta = (await (await fetch(`http://127.0.0.1:${address.port}/model`)).json()) as { kind: string };
    t.is(meta.kind, 'recvae');
  } finally {
    await shutdown(server, 2000);
    rec.dispose();
  }
});

test('the handler mounts in a plain node:http server: a 405 names the allowed method, CORS when asked, one JSON log line per request', async (t) => {
  const http = await import('node:http');
  const { createRecommendHandler } = await import('../src/index');
  const lines: string[] = [];
  const handler = createRecommendHandler(model, { cors: 'https://shop.example', logRequests: true, log: (l) => lines.push(l) });
  // Mounted under a route of the host application, as Express's app.use would.
  const server = http.createServer((req, res) => {
    if (req.url?.startsWith('/api/')) {
      req.url = req.url.slice('/api'.length);
      handler(req, res);
    } else {
      res.writeHead(200).end('the host app');
    }
  });
  const address = await listen(server, 0);
  const url = `http://127.0.0.1:${address.port}`;
  try {
    t.is(await (await fetch(`${url}/other`)).text(), 'the host app');
    const ok = await post(`${url}/api/recommend`, { items: ['item0', 'item1'], k: 3 }, { Origin: 'https://shop.example' });
    t.is(ok.status, 200);
    t.is(ok.headers.get('access-control-allow-origin'), 'https://shop.example');
    t.is(((await ok.json()) as { items: string[] }).items.length, 3);
    const wrong = await fetch(`${url}/api/recommend`);
    t.is(wrong.status, 405);
    t.is(wrong.headers.get('allow'), 'POST');
    t.is((await fetch(`${url}/api/health`, { method: 'DELETE' })).headers.get('allow'), 'GET');
    const preflight = await fetch(`${url}/api/recommend`, { method: 'OPTIONS', headers: { Origin: 'https://shop.example', 'Access-Control-Request-Method': 'POST' } });
    t.is(preflight.status, 204);
    t.regex(preflight.headers.get('access-control-allow-headers') ?? '', /Authorization/);
    t.is(handler.stats.requests, 1);
    const logged = lines.map((l) => JSON.parse(l) as { method: string; path: string; status: number; ms: number; users: number });
    t.deepEqual(logged.map((l) => [l.method, l.path, l.status, l.users]), [
      ['POST', '/recommend', 200, 1], ['GET', '/recommend', 405, 0], ['DELETE', '/health', 405, 0], ['OPTIONS', '/recommend', 204, 0],
    ]);
    t.true(logged.every((l) => typeof l.ms === 'number' && l.ms >= 0));
  } finally {
    await shutdown(server, 2000);
  }
  // Without the cors option no CORS header is sent.
  await withServer({}, async (plain) => {
    const r = await post(`${plain}/recommend`, { items: ['item0'], k: 2 }, { Origin: 'https://elsewhere.example' });
    t.is(r.headers.get('access-control-allow-origin'), null);
  });
});
