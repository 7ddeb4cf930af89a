/**
 * The web view at the admin address (GET /): one page, its script and styles (plain files under
 * web/ in the package, uPlot's from node_modules/uplot: nothing from the internet), live updates
 * over Server-Sent Events (sse-hub.ts) and the history of a table row for the charts.
 *
 * Data: the view model (src/ui/model.ts), fed by the tap after translate, with the web's limits
 * (rows per client, 15 minutes of history, the last calls with their attempts). The terminal's
 * live view, when it runs too, reads this same model (Bridge.viewModel) instead of its own.
 * The datagram path only adds each call to the model; everything the page gets is
 * built once per UPDATE_EVERY_MS, from a timer, and only while a page is open. The bridge's
 * health is the same snapshot /stats serves, so the page, /stats and the log agree.
 *
 * Safe: every datagram string is attacker-controlled; the page builds its DOM with textContent
 * only, and a Content-Security-Policy without inline script or style keeps anything that slips
 * through from running. No access key, session token or secret is in what is sent: the model
 * keeps none (the tap sees the translation, which has none but csm.access_key, never copied).
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { PACKAGE_ROOT } from '../../package-root.js';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Correlated } from '../../correlate/types.js';
import type { Stats } from '../../stats.js';
import type { Translation } from '../../translate/types.js';
import { HISTORY_SLOT_MS, HISTORY_SLOTS } from '../../ui/history.js';
import { ViewModel, type Row, type ViewLimits } from '../../ui/model.js';
import { SseHub, sseEvent } from './sse-hub.js';

/** One update a second, whatever the call rate: the page redraws at most that often. */
export const UPDATE_EVERY_MS = 1_000;
/** Recent calls kept for the feed and the waterfall (each at most MAX_WATERFALL_ATTEMPTS attempts). */
export const MAX_RECENT_CALLS = 200;
/** New calls sent per update at most (at 10,000 calls/s the feed shows a sample, the table all). */
export const FEED_PER_UPDATE = 50;
/** The web view's model: per-client rows, history and recent calls (200 rows per table, as the terminal's). */
export const WEB_LIMITS: ViewLimits = { maxRows: 200, maxFailed: 50, maxLogs: 5, perClient: true, history: true, maxRecent: MAX_RECENT_CALLS };

/**
 * Headers of everything the web view serves. The CSP allows scripts, styles and fetches from
 * the admin listener itself only: no inline script, no inline style, no other origin.
 */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
};

/** The static files: URL path → file (under web/ of the package, or a package's file) and its type. */
const require = createRequire(import.meta.url);
const WEB_DIR = new URL('web/', PACKAGE_ROOT);
const ASSETS: Readonly<Record<string, { file: () => string | URL; type: string }>> = {
  '/': { file: () => new URL('index.html', WEB_DIR), type: 'text/html; charset=utf-8' },
  '/web/app.js': { file: () => new URL('app.js', WEB_DIR), type: 'text/javascript; charset=utf-8' },
  '/web/app.css': { file: () => new URL('app.css', WEB_DIR), type: 'text/css; charset=utf-8' },
  '/web/uPlot.iife.min.js': { file: () => require.resolve('uplot/dist/uPlot.iife.min.js'), type: 'text/javascript; charset=utf-8' },
  '/web/uPlot.min.css': { file: () => require.resolve('uplot/dist/uPlot.min.css'), type: 'text/css; charset=utf-8' },
};
const EVENTS = '/web/events';
const HISTORY = '/web/history';

/** How the admin server hands requests to extra routes (src/admin/server.ts). */
export interface AdminRoutes {
  /** Listed in the admin's 404 answer. */
  readonly paths: readonly string[];
  /** true when the request was one of these routes (and is answered). Called after the admin's Host and method checks. */
  handle(req: IncomingMessage, res: ServerResponse, path: string, query: URLSearchParams): boolean;
}

export interface WebViewOptions {
  version: string;
  /** A link to a joined call's trace, `{traceId}` replaced (--trace-url-template). */
  traceUrlTemplate?: string;
  /** The bridge's counters, as /stats serves them. */
  snapshot: () => Stats;
  counts: Stats['web'];
  now?: () => number;
}

export class WebView implements AdminRoutes {
  readonly model = new ViewModel(WEB_LIMITS);
  readonly paths = ['/', EVENTS, `${HISTORY}?key=ROW`];
  private readonly hub: SseHub;
  private readonly assets = new Map<string, Buffer>();
  private timer: NodeJS.Timeout | undefined;
  /** The newest recent call already sent. */
  private sentSeq = 0;
  /** Calls joined since the last update (at most MAX_RECENT_CALLS: older ones have left the feed anyway). */
  private joinedSince = new Set<Translation>();
  private readonly now: () => number;

  constructor(private readonly opts: WebViewOptions) {
    this.hub = new SseHub(opts.counts, SECURITY_HEADERS);
    this.now = opts.now ?? Date.now;
  }

  /** Tap after translate: one call (the datagram path: the model's work only). */
  readonly onCall = (c: Correlated, t: Translation): void => {
    this.model.add(c, t, this.now());
  };

  /** A call went into an application's trace (the join's exporter side). */
  readonly onJoined = (t: Translation, traceId: Uint8Array): void => {
    this.model.joined(t, Buffer.from(traceId).toString('hex'));
    if (this.hub.size === 0) return;
    this.joinedSince.add(t);
    if (this.joinedSince.size > MAX_RECENT_CALLS) this.joinedSince.delete(this.joinedSince.values().next().value!);
  };

  start(): void {
    this.timer = setInterval(() => this.tick(), UPDATE_EVERY_MS);
    this.timer.unref();
  }

  close(): void {
    clearInterval(this.timer);
    this.hub.close();
  }

  handle(req: IncomingMessage, res: ServerResponse, path: string, query: URLSearchParams): boolean {
    if (path === EVENTS) {
      if (req.method === 'HEAD') {
        res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', ...SECURITY_HEADERS });
        res.end();
      } else this.hub.add(req, res, () => this.first());
      return true;
    }
    if (path === HISTORY) {
      const key = query.get('key') ?? '';
      const history = key === '' ? this.model.total : (this.model.rows.get(key) ?? this.model.clientRows.get(key))?.history;
      const [code, body] = history ? [200, history.series(this.now())] : [404, { error: 'no such row', key }];
      res.writeHead(code, { 'content-type': 'application/json', 'cache-control': 'no-store', ...SECURITY_HEADERS });
      res.end(JSON.stringify(body));
      return true;
    }
    if (path === '/favicon.ico') {
      // No icon: an empty answer instead of a 404 in the page's console.
      res.writeHead(204, SECURITY_HEADERS);
      res.end();
      return true;
    }
    const asset = ASSETS[path];
    if (asset === undefined) return false;
    this.asset(path, asset.file()).then(
      (body) => {
        res.writeHead(200, { 'content-type': asset.type, 'content-length': body.length, 'cache-control': 'no-cache', ...SECURITY_HEADERS });
        res.end(req.method === 'HEAD' ? undefined : body);
      },
      (e: Error) => {
        res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8', ...SECURITY_HEADERS });
        res.end(`the web view's file ${path} cannot be read: ${e.message}\n`);
      },
    );
    return true;
  }

  /** Once a second: one update to every open page (nothing is built without one). */
  private tick(): void {
    if (this.hub.size === 0) {
      this.sentSeq = this.model.lastSeq;
      this.joinedSince.clear();
      return;
    }
    // Calls already sent that joined since (a call not sent yet goes with its trace id).
    const joined = this.joinedSince.size > 0 ? this.model.joinedAmong(this.joinedSince, this.sentSeq) : [];
    this.joinedSince.clear();
    const fresh = this.model.recentAfter(Math.max(this.sentSeq, this.model.lastSeq - FEED_PER_UPDATE));
    this.sentSeq = this.model.lastSeq;
    this.hub.broadcast(sseEvent('update', { ...this.state(), recent: fresh, joined }));
  }

  /** A new page's first event: the settings, the state, and every recent call. */
  private first(): string {
    return sseEvent('init', {
      version: this.opts.version,
      traceUrlTemplate: this.opts.traceUrlTemplate ?? null,
      slotMs: HISTORY_SLOT_MS,
      slots: HISTORY_SLOTS,
      ...this.state(),
      recent: this.model.recentAfter(0),
      joined: [],
    });
  }

  private state(): { at: number; rows: unknown[]; clientRows: unknown[]; total: unknown; stats: Stats } {
    const now = this.now();
    return {
      at: now,
      rows: [...this.model.rows.values()].map((r) => rowView(r, now)),
      clientRows: [...this.model.clientRows.values()].map((r) => rowView(r, now)),
      total: this.model.total?.currentPoint(now) ?? null,
      stats: this.opts.snapshot(),
    };
  }

  private async asset(path: string, file: string | URL): Promise<Buffer> {
    let body = this.assets.get(path);
    if (body === undefined) {
      body = await readFile(file);
      this.assets.set(path, body);
    }
    return body;
  }
}

/** A table row as the page shows it (latencies in ms). */
function rowView(r: Row, now: number) {
  return {
    key: r.key,
    clientId: r.clientId ?? null,
    name: r.name,
    calls: r.calls,
    rate: r.rate.rate(now),
    p50: r.latency.quantile(0.5) ?? null,
    p99: r.latency.quantile(0.99) ?? null,
    errors: r.errors,
    retries: r.retries,
    throttles: r.throttles,
    lastError: r.lastError ?? null,
    point: r.history?.currentPoint(now) ?? null,
  };
}
