// An HTTP JSON service around a trained model (node:http, no framework):
//   POST /recommend  {"items": [...ids], "k"?: 10, "exclude"?: [...ids], "allow"?: [...ids]}
//                    or {"histories": [[...ids], ...], "k"?, ...} for several users at once
//   GET  /health     liveness and what is loaded
//   GET  /model      the model's metadata
// Unknown item ids are reported in the answer, not fatal; malformed bodies get 400 with the reason;
// body size, history length and k are bounded; an optional bearer token; graceful shutdown.
// Concurrent single-user requests are scored together (micro-batching, batcher.ts).
// createRecommendHandler gives the same service as a (req, res) handler to mount in node:http, Express
// (app.use('/vaecf', handler)) or Fastify (reply.hijack(); handler(request.raw, reply.raw)).
import * as crypto from 'node:crypto';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

import type { ItemId, RecommendOptions, Recommendation } from '../models/types';
import { RecommendBatcher } from './batcher';

export interface ServableModel {
  readonly kind: string;
  recommend(histories: ReadonlyArray<ReadonlyArray<ItemId>>, options?: RecommendOptions): Promise<Recommendation[]>;
}

export interface ServeOptions {
  /** required `Authorization: Bearer <token>` when set */
  token?: string;
  maxBodyBytes?: number;
  maxK?: number;
  maxHistory?: number;
  maxUsersPerRequest?: number;
  /**
   * score single-user requests that wait together in one call (default true; see batcher.ts);
   * false scores every request on its own (still one call at a time)
   */
  coalesce?: boolean;
  /** the most users scored in one coalesced call (default 64) */
  maxCoalescedUsers?: number;
  /** what GET /model answers */
  metadata?: Record<string, unknown>;
  /** ms a client has to send the request headers (default 10 s; Node's own default is 60 s) */
  headersTimeoutMs?: number;
  /** ms a client has to send the whole request (default 30 s; Node's own is 300 s) */
  requestTimeoutMs?: number;
  /** ms an idle keep-alive connection stays open (default 5 s) */
  keepAliveTimeoutMs?: number;
  /**
   * Cross-origin requests from browsers: true answers any origin (`Access-Control-Allow-Origin: *`),
   * a string answers that origin only; preflight OPTIONS requests get 204. Default: off.
   */
  cors?: boolean | string;
  /** one JSON line per request through `log`: time, method, path, status, milliseconds, users (default false) */
  logRequests?: boolean;
  log?: (line: string) => void;
}

/** The service as a (req, res) handler; `stats` are what GET /health reports. */
export interface RecommendHandler {
  (req: http.IncomingMessage, res: http.ServerResponse): void;
  readonly stats: { requests: number; abortedRequests: number };
}

class HttpError extends Error {
  constructor(readonly status: number, message: string, readonly headers: Record<string, string> = {}) {
    super(message);
  }
}

// 405 with the methods the route takes (RFC 9110: a 405 carries Allow).
const wrongMethod = (allow: string, message: string): HttpError => new HttpError(405, message, { Allow: allow });

// The client went away before its request arrived whole: nothing to answer, counted (not logged: an
// unauthenticated client could otherwise fill the log).
class ClientGone extends Error {}

function isId(x: unknown): x is ItemId {
  return (typeof x === 'string' && x.length > 0 && x.length <= 256) || (typeof x === 'number' && Number.isFinite(x));
}

function idList(value: unknown, field: string, max: number): ItemId[] {
  if (!Array.isArray(value)) throw new HttpError(400, `"${field}" must be an array of item ids (strings or numbers)`);
  if (value.length > max) throw new HttpError(400, `"${field}" has ${value.length} ids; at most ${max} are accepted`);
  const bad = value.findIndex((v) => !isId(v));
  if (bad >= 0) throw new HttpError(400, `"${field}[${bad}]" must be a string or a number`);
  return value as ItemId[];
}

/** The service as a (req, res) handler for node:http, Express or Fastify (see the file's comment). */
export function createRecommendHandler(model: ServableModel, options: ServeOptions = {}): RecommendHandler {
  const maxBody = options.maxBodyBytes ?? 1 << 20;
  const maxK = options.maxK ?? 1000;
  const maxHistory = options.maxHistory ?? 10_000;
  const maxUsers = options.maxUsersPerRequest ?? 1000;
  const started = Date.now();
  // Every scoring call goes through one queue: the model runs one call at a time.
  const batcher = new RecommendBatcher(model, options.coalesce !== false, options.maxCoalescedUsers ?? 64);

  const readBody = (req: http.IncomingMessage): Promise<string> =>
    new Promise((resolve, reject) => {
      const declared = Number(req.headers['content-length'] ?? 0);
      if (declared > maxBody) return reject(new HttpError(413, `the body is larger than ${maxBody} bytes`));
      const chunks: Buffer[] = [];
      let size = 0;
      req.on('data', (c: Buffer) => {
        size += c.length;
        if (size > maxBody) {
          reject(new HttpError(413, `the body is larger than ${maxBody} bytes`));
          req.destroy();
        } else chunks.push(c);
      });
      req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      req.on('error', () => reject(new ClientGone()));
      req.on('aborted', () => reject(new ClientGone()));
    });

  const expectedAuth = options.token ? crypto.createHash('sha256').update(`Bearer ${options.token}`).digest() : null;
  const cors = options.cors === true ? '*' : typeof options.cors === 'string' ? options.cors : null;
  const handle = async (req: http.IncomingMessage): Promise<[number, unknown, number]> => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    // A browser's preflight carries no credentials: answered before the token check.
    if (cors && req.method === 'OPTIONS') return [204, null, 0];
    if (expectedAuth) {
      // Constant-time comparison (of SHA-256 digests, so the lengths match too): no timing oracle on the token.
      const given = crypto.createHash('sha256').update(req.headers.authorization ?? '').digest();
      if (!crypto.timingSafeEqual(given, expectedAuth)) throw new HttpError(401, 'missing or wrong bearer token');
    }
    if (url.pathname === '/health') {
      if (req.method !== 'GET') throw wrongMethod('GET', 'use GET /health');
      return [200, {
        status: 'ok', model: model.kind, uptimeSeconds: (Date.now() - started) / 1000, requests: stats.requests, abortedRequests: stats.abortedRequests,
        scoring: { ...batcher.stats },
      }, 0];
    }
    if (url.pathname === '/model') {
      if (req.method !== 'GET') throw wrongMethod('GET', 'use GET /model');
      return [200, { kind: model.kind, ...(options.metadata ?? {}) }, 0];
    }
    if (url.pathname === '/recommend') {
      if (req.method !== 'POST') throw wrongMethod('POST', 'use POST /recommend with a JSON body');
      const text = await readBody(req);
      let body: Record<string, unknown>;
      try {
        body = JSON.parse(text);
      } catch {
        throw new HttpError(400, 'the body is not valid JSON');
      }
      if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new HttpError(400, 'the body must be a JSON object');
      const k = body.k ?? 10;
      if (!Number.isInteger(k) || (k as number) < 1 || (k as number) > maxK) throw new HttpError(400, `"k" must be an integer from 1 to ${maxK}`);
      const exclude = body.exclude === undefined ? undefined : idList(body.exclude, 'exclude', maxHistory);
      const allow = body.allow === undefined ? undefined : idList(body.allow, 'allow', 1_000_000);
      let histories: ItemId[][];
      const single = body.items !== undefined;
      if (single) histories = [idList(body.items, 'items', maxHistory)];
      else if (Array.isArray(body.histories)) {
        if (body.histories.length > maxUsers) throw new HttpError(400, `"histories" has ${body.histories.length} users; at most ${maxUsers}`);
        histories = body.histories.map((h, i) => idList(h, `histories[${i}]`, maxHistory));
      } else throw new HttpError(400, 'give "items" (one user\'s item ids) or "histories" (several users)');
      const recs = await batcher.recommend(histories, { k: k as number, exclude, allow });
      stats.requests++;
      return [200, single ? recs[0] : { results: recs }, histories.length];
    }
    throw new HttpError(404, `no route ${req.method} ${url.pathname}; try POST /recommend, GET /health, GET /model`);
  };

  const stats = { requests: 0, abortedRequests: 0 };
  const corsHeaders: Record<string, string> = cors
    ? { 'Access-Control-Allow-Origin': cors, 'Access-Control-Allow-Methods': 'GET, POST, OPTIONS', 'Access-Control-Allow-Headers': 'Authorization, Content-Type', ...(cors === '*' ? {} : { Vary: 'Origin' }) }
    : {};
  const handler = ((req: http.IncomingMessage, res: http.ServerResponse): void => {
    const t0 = process.hrtime.bigint();
    const logLine = (status: number, users: number): void => {
      if (!options.logRequests) return;
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      options.log?.(JSON.stringify({ time: new Date().toISOString(), method: req.method, path: (req.url ?? '/').split('?')[0], status, ms: Number(ms.toFixed(2)), users }));
    };
    handle(req).then(
      ([status, body, users]) => {
        send(res, status, body, corsHeaders);
        logLine(status, users);
      },
      (err: Error) => {
        if (err instanceof ClientGone) {
          stats.abortedRequests++;
          res.destroy();
          return;
        }
        const status = err instanceof HttpError ? err.status : 500;
        if (status === 500) options.log?.(`error: ${err.message}`);
        send(res, status, { error: err instanceof HttpError ? err.message : 'internal error' }, { ...corsHeaders, ...(err instanceof HttpError ? err.headers : {}) });
        logLine(status, 0);
      },
    );
  }) as RecommendHandler;
  Object.defineProperty(handler, 'stats', { get: () => ({ ...stats }) });
  return handler;
}

/**
 * An http.Server around createRecommendHandler, with tight timeouts for slow clients. Listen with
 * listen(); stop with shutdown().
 */
export function createRecommendServer(model: ServableModel, options: ServeOptions = {}): http.Server {
  const handler = createRecommendHandler(model, options);
  // Node checks the header and request timeouts every connectionsCheckingInterval (30 s by default).
  const server = http.createServer({ connectionsCheckingInterval: 1000 }, handler);
  // Slow clients (slow-loris) hold a socket for seconds, not Node's minutes.
  server.headersTimeout = options.headersTimeoutMs ?? 10_000;
  server.requestTimeout = options.requestTimeoutMs ?? 30_000;
  server.keepAliveTimeout = options.keepAliveTimeoutMs ?? 5000;
  return server;
}

function send(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent) return;
  if (status === 204) {
    res.writeHead(204, headers);
    res.end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** Listen and resolve with the bound address. */
export function listen(server: http.Server, port: number, host = '127.0.0.1'): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server.address() as AddressInfo));
  });
}

/** Stop accepting connections, let requests in flight finish, close idle keep-alive sockets. */
export function shutdown(server: http.Server, graceMs = 10_000): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      server.closeAllConnections?.();
      resolve();
    }, graceMs);
    server.close(() => {
      clearTimeout(timer);
      resolve();
    });
    server.closeIdleConnections?.();
  });
}
