/**
 * Admin HTTP listener: GET /healthz (200 while running, 503 once stopping),
 * GET /stats (the counters as JSON) and GET /policy[?client=ID] (the IAM
 * policies per application). Read-only, loopback by default.
 *
 * Every local process can connect, and so can a web page in the developer's browser (DNS
 * rebinding even lets it read the answers). So no request may stop, hang or bloat the bridge:
 * - the request target is split by hand, never thrown on (`new URL` threw on `GET //`, uncaught);
 * - a route that throws or rejects answers 500, is counted and logged, and never escapes;
 * - connections are capped: at the cap a new one replaces the oldest that is not being answered
 *   (a slow or half-sent request), so a pile of them cannot hold every slot, nor every descriptor;
 * - headers, requests and idle sockets time out (slowloris);
 * - without --allow-remote-http only loopback Host names are answered (421): a rebound name is not.
 * Each of these applies before routing, so to every route.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from '../log.js';
import type { PolicyService } from '../policy/policy-service.js';
import type { Stats } from '../stats.js';
import { parseHostPort } from '../net/address.js';
import { isLoopbackHostHeader } from '../receive/source-filter.js';
import type { AdminRoutes } from './web/web-view.js';

/** Connections held at once; at the cap a new one replaces the oldest one not being answered. */
export const ADMIN_MAX_CONNECTIONS = 32;
/** A client has this long to send its request headers, and this long for the whole request. */
export const ADMIN_HEADERS_TIMEOUT_MS = 5_000;
export const ADMIN_REQUEST_TIMEOUT_MS = 10_000;
/** A connection with no bytes either way for this long is closed (unless its answer is being built). */
export const ADMIN_IDLE_TIMEOUT_MS = 10_000;
/** How long a kept-alive connection waits for its next request. */
const ADMIN_KEEP_ALIVE_TIMEOUT_MS = 5_000;
/** How often node checks the two request timeouts above (its default, 30 s, would let them run 35 s). */
const ADMIN_TIMEOUT_CHECK_EVERY_MS = 1_000;
/** Request headers larger than this are answered 431 (the requests here are one line and a Host). */
const ADMIN_MAX_HEADER_BYTES = 8 * 1024;

/** What the admin listener refused or failed, in /stats as `admin`. */
export interface AdminStats {
  /** Requests answered 421: their Host was not a loopback name (DNS rebinding), without --allow-remote-http. */
  rejectedHosts: number;
  /** Connections closed at the cap to make room for a new one (the oldest not being answered). */
  evictedConnections: number;
  /** New connections closed at the cap because every held one was being answered. */
  refusedConnections: number;
  /** Connections the kernel could not hand over (EMFILE: out of file descriptors); the oldest idle one is closed. */
  acceptErrors: number;
  /** Connections closed because headers, the request or the connection took too long (slowloris). */
  timedOut: number;
  /** Requests node could not parse (answered 400, or 431 for oversized headers). */
  badRequests: number;
  /** Requests whose route threw (a bug): answered 500 and logged. */
  errors: number;
}

/** What a route answers: a value to serialize, or JSON already serialized (GET /policy's, built in slices). */
type Answer = { code: number; body: unknown } | { code: number; json: Buffer };
type Route = (query: URLSearchParams) => Answer | Promise<Answer>;

/** `/path?query` split without throwing: anything else (`//`, `*`, absolute forms) is a path no route has. */
export function splitTarget(target: string): { path: string; query: URLSearchParams } {
  const q = target.indexOf('?');
  return q < 0 ? { path: target, query: new URLSearchParams() } : { path: target.slice(0, q), query: new URLSearchParams(target.slice(q + 1)) };
}

export class AdminServer {
  private server: Server | undefined;
  private stopping = false;
  /** Open connections, oldest first; true while a request on it is being answered. */
  private readonly connections = new Map<Socket, boolean>();
  private readonly routes: ReadonlyMap<string, Route>;

  constructor(
    private readonly opts: { listen: string; allowRemoteHttp: boolean },
    snapshot: () => Stats,
    private readonly counters: AdminStats,
    private readonly log: Logger,
    policy?: PolicyService,
    /** Routes that answer for themselves (the web view's page, files and event stream: src/admin/web/). */
    private readonly extra?: AdminRoutes,
  ) {
    const routes = new Map<string, Route>([
      ['/healthz', () => ({ code: this.stopping ? 503 : 200, body: { status: this.stopping ? 'stopping' : 'ok' } })],
      ['/stats', () => ({ code: 200, body: snapshot() })],
    ]);
    if (policy)
      routes.set('/policy', async (query) => {
        const client = query.get('client');
        if (client === null) return { code: 200, json: await policy.allJson() };
        const r = await policy.one(client);
        return r ? { code: 200, body: r.policy } : { code: 404, body: { error: `no client ${JSON.stringify(client)} observed`, clients: policy.labels() } };
      });
    this.routes = routes;
  }

  async start(): Promise<void> {
    const { host, port } = parseHostPort(this.opts.listen);
    const server = createServer(
      { maxHeaderSize: ADMIN_MAX_HEADER_BYTES, headersTimeout: ADMIN_HEADERS_TIMEOUT_MS, requestTimeout: ADMIN_REQUEST_TIMEOUT_MS, connectionsCheckingInterval: ADMIN_TIMEOUT_CHECK_EVERY_MS },
      (req, res) => this.onRequest(req, res),
    );
    server.keepAliveTimeout = ADMIN_KEEP_ALIVE_TIMEOUT_MS;
    server.timeout = ADMIN_IDLE_TIMEOUT_MS;
    server.on('connection', (socket: Socket) => this.onConnection(socket));
    server.on('timeout', (socket: Socket) => {
      // Idle while its answer is being built (a large /policy) is not the client's doing.
      if (this.connections.get(socket) === true) return;
      this.counters.timedOut++;
      socket.destroy();
    });
    server.on('clientError', (e: NodeJS.ErrnoException, socket: Socket) => this.onClientError(e, socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e: NodeJS.ErrnoException) =>
        reject(new Error(`cannot start the admin listener on ${this.opts.listen}: ${e.message}${e.code === 'EADDRINUSE' ? ' (pick another --admin, or --admin off)' : ''}`)),
      );
      server.listen(port, host, () => resolve());
    });
    server.removeAllListeners('error');
    // Once listening, the only errors are failed accepts (EMFILE): an unheard 'error' would end the process.
    server.on('error', (e: NodeJS.ErrnoException) => {
      this.counters.acceptErrors++;
      this.log.warnLimited('admin-accept', 'the admin listener could not accept a connection', { error: e.message });
      // Out of descriptors: the oldest connection not being answered gives its own back.
      this.evictOldestIdle();
    });
    this.server = server;
  }

  private onConnection(socket: Socket): void {
    if (this.connections.size >= ADMIN_MAX_CONNECTIONS && !this.evictOldestIdle()) {
      this.counters.refusedConnections++;
      socket.destroy();
      return;
    }
    this.connections.set(socket, false);
    socket.once('close', () => this.connections.delete(socket));
  }

  /** Closes the oldest connection that is not being answered; false when there is none. */
  private evictOldestIdle(): boolean {
    for (const [socket, answering] of this.connections) {
      if (answering) continue;
      this.connections.delete(socket);
      socket.destroy();
      this.counters.evictedConnections++;
      return true;
    }
    return false;
  }

  private onClientError(e: NodeJS.ErrnoException, socket: Socket): void {
    // A client that went away mid-request is not an error of its request.
    if (e.code === 'ECONNRESET' || e.code === 'EPIPE') return void socket.destroy();
    const status =
      e.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : e.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : '400 Bad Request';
    if (status.startsWith('408')) this.counters.timedOut++;
    else this.counters.badRequests++;
    if (socket.writable) socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    socket.destroy();
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const socket = req.socket;
    if (this.connections.has(socket)) this.connections.set(socket, true);
    res.once('close', () => {
      if (this.connections.has(socket)) this.connections.set(socket, false);
    });
    const send = (a: Answer) => {
      const text = 'json' in a ? a.json : `${JSON.stringify(a.body, null, 2)}`;
      res.writeHead(a.code, { 'content-type': 'application/json', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(text) + 1 });
      res.write(text);
      res.end('\n');
    };
    const fail = (e: unknown) => {
      const error = String((e as Error)?.message ?? e).slice(0, 300);
      this.counters.errors++;
      this.log.warnLimited('admin-request', 'an admin request failed (a bug): answered 500', { path: req.url?.slice(0, 200), error });
      if (res.headersSent) res.destroy();
      else send({ code: 500, body: { error: `the request failed: ${error}` } });
    };
    try {
      const answer = this.answer(req, res);
      if (answer === undefined) return;
      if (answer instanceof Promise) answer.then(send).catch(fail).catch(() => res.destroy());
      else send(answer);
    } catch (e) {
      try {
        fail(e);
      } catch {
        res.destroy();
      }
    }
  }

  /** The answer to send, or undefined when an extra route answered itself. */
  private answer(req: IncomingMessage, res: ServerResponse): Answer | Promise<Answer> | undefined {
    const host = req.headers.host;
    if (!this.opts.allowRemoteHttp && !isLoopbackHostHeader(host)) {
      this.counters.rejectedHosts++;
      return {
        code: 421,
        body: {
          error: `Host ${JSON.stringify(host!.slice(0, 200))} is not a loopback name: the admin listener answers localhost, 127.0.0.0/8 and [::1] only (a web page could otherwise reach it through DNS rebinding); --allow-remote-http lifts this`,
        },
      };
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') return { code: 405, body: { error: 'only GET' } };
    const { path, query } = splitTarget(req.url ?? '/');
    const route = this.routes.get(path);
    if (route) return route(query);
    if (this.extra?.handle(req, res, path, query)) return undefined;
    return { code: 404, body: { error: 'not found', paths: [...this.routes.keys(), ...(this.routes.has('/policy') ? ['/policy?client=ID'] : []), ...(this.extra?.paths ?? [])] } };
  }

  address(): string | undefined {
    const a = this.server?.address();
    if (!a || typeof a === 'string') return undefined;
    return a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
  }

  markStopping(): void {
    this.stopping = true;
  }

  async close(): Promise<void> {
    const s = this.server;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}
