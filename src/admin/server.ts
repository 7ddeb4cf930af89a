import { createServer, type Server } from 'node:http';
import type { Stats } from '../stats.js';
import { parseHostPort } from '../net/address.js';

/**
 * Admin HTTP listener: GET /healthz (200 while running, 503 once stopping)
 * and GET /stats (the counters as JSON). Read-only, loopback by default.
 */
export class AdminServer {
  private server: Server | undefined;
  private stopping = false;

  constructor(
    private readonly listen: string,
    private readonly snapshot: () => Stats,
  ) {}

  async start(): Promise<void> {
    const { host, port } = parseHostPort(this.listen);
    const server = createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      const send = (code: number, body: unknown) => {
        res.writeHead(code, { 'content-type': 'application/json', 'cache-control': 'no-store' });
        res.end(`${JSON.stringify(body, null, 2)}\n`);
      };
      if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, { error: 'only GET' });
      if (path === '/healthz') return send(this.stopping ? 503 : 200, { status: this.stopping ? 'stopping' : 'ok' });
      if (path === '/stats') return send(200, this.snapshot());
      return send(404, { error: 'not found', paths: ['/healthz', '/stats'] });
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
