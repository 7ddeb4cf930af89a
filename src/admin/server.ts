import { createServer, type Server } from 'node:http';
import type { PolicyService } from '../policy/policy-service.js';
import type { Stats } from '../stats.js';
import { parseHostPort } from '../net/address.js';
import type { AdminRoutes } from './web/web-view.js';

/**
 * Admin HTTP listener: GET /healthz (200 while running, 503 once stopping),
 * GET /stats (the counters as JSON) and GET /policy[?client=ID] (the IAM
 * policies per application). Read-only, loopback by default.
 */
export class AdminServer {
  private server: Server | undefined;
  private stopping = false;

  constructor(
    private readonly listen: string,
    private readonly snapshot: () => Stats,
    private readonly policy?: PolicyService,
    /** More GET routes (the web view, src/admin/web/). */
    private readonly routes?: AdminRoutes,
  ) {}

  async start(): Promise<void> {
    const { host, port } = parseHostPort(this.listen);
    const server = createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://admin');
      const path = url.pathname;
      const send = (code: number, body: unknown) => {
        res.writeHead(code, { 'content-type': 'application/json', 'cache-control': 'no-store' });
        res.end(`${JSON.stringify(body, null, 2)}\n`);
      };
      if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, { error: 'only GET' });
      if (path === '/healthz') return send(this.stopping ? 503 : 200, { status: this.stopping ? 'stopping' : 'ok' });
      if (path === '/stats') return send(200, this.snapshot());
      if (path === '/policy' && this.policy) {
        const policy = this.policy;
        const client = url.searchParams.get('client');
        const answer =
          client === null
            ? policy.all().then((all) => [200, all] as const)
            : policy.one(client).then((r) =>
                r ? ([200, r.policy] as const) : ([404, { error: `no client ${JSON.stringify(client)} observed`, clients: policy.labels() }] as const),
              );
        answer.then(
          ([code, body]) => send(code, body),
          (e: Error) => send(500, { error: `could not build the policy: ${e.message}` }),
        );
        return;
      }
      if (this.routes?.handle(req, res, url)) return;
      return send(404, { error: 'not found', paths: ['/healthz', '/stats', ...(this.policy ? ['/policy', '/policy?client=ID'] : []), ...(this.routes?.paths ?? [])] });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e: NodeJS.ErrnoException) =>
        reject(new Error(`cannot start the admin listener on ${this.listen}: ${e.message}${e.code === 'EADDRINUSE' ? ' (pick another --admin, or --admin off)' : ''}`)),
      );
      server.listen(port, host, () => resolve());
    });
    this.server = server;
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
