/**
 * The web view's live updates: Server-Sent Events to at most MAX_VIEWERS pages. SSE rather than
 * a WebSocket: one-way is all the page needs, it is plain HTTP on the admin listener (same
 * listener policy, no upgrade handling), and the browser's EventSource reconnects by itself
 * after the bridge restarts (the `retry:` line sets how soon).
 *
 * Updates are written from a timer (web-view.ts, once a second), never from the datagram path.
 * A viewer that does not read them is not waited for: when earlier updates still wait in the
 * process (the kernel's socket buffers are full too) and the next would take it past
 * VIEWER_MAX_BUFFERED_BYTES, its connection is closed and counted (web.slowViewersDropped). An
 * update is always written to a viewer with nothing waiting, however large (the model's bounds
 * bound it), so memory per viewer stays under the bound plus one update.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { WebCounts } from '../../stats.js';

/** Pages connected at once; more are answered 503 (web.viewersRefused). */
export const MAX_VIEWERS = 8;
/** Update bytes that may wait for one viewer (a few updates) before it is dropped as slow. */
export const VIEWER_MAX_BUFFERED_BYTES = 2 * 1024 * 1024;
/** How soon a page reconnects after the connection is lost (the bridge restarted). */
export const SSE_RETRY_MS = 1_000;

export class SseHub {
  private readonly viewers = new Set<ServerResponse>();

  constructor(
    private readonly counts: WebCounts,
    /** Extra headers on the event stream (the page's security headers). */
    private readonly headers: Record<string, string>,
  ) {}

  get size(): number {
    return this.viewers.size;
  }

  /** A page asks for the updates: accepted (with `first` as its first event) or refused when full. */
  add(req: IncomingMessage, res: ServerResponse, first: () => string): void {
    if (this.viewers.size >= MAX_VIEWERS) {
      this.counts.viewersRefused++;
      res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8', 'retry-after': '10', ...this.headers });
      res.end(`at most ${MAX_VIEWERS} pages at once\n`);
      return;
    }
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-accel-buffering': 'no',
      ...this.headers,
    });
    this.viewers.add(res);
    this.counts.viewers = this.viewers.size;
    const gone = () => {
      if (this.viewers.delete(res)) this.counts.viewers = this.viewers.size;
    };
    req.socket.on('close', gone);
    res.on('close', gone);
    // No Nagle delay: an update should leave whole, at once.
    req.socket.setNoDelay(true);
    this.write(res, Buffer.from(`retry: ${SSE_RETRY_MS}\n\n${first()}`));
  }

  /** One event to every viewer; slow viewers are dropped instead of buffered. */
  broadcast(event: string): void {
    // Encoded once for every viewer.
    const bytes = Buffer.from(event);
    for (const res of this.viewers) this.write(res, bytes);
  }

  /** Ends every stream (the bridge stops). */
  close(): void {
    for (const res of this.viewers) res.destroy();
    this.viewers.clear();
    this.counts.viewers = 0;
  }

  private write(res: ServerResponse, event: Buffer): void {
    const bytes = event.length;
    if (res.writableLength > 0 && res.writableLength + bytes > VIEWER_MAX_BUFFERED_BYTES) {
      this.counts.slowViewersDropped++;
      this.viewers.delete(res);
      this.counts.viewers = this.viewers.size;
      res.destroy();
      return;
    }
    res.write(event);
    this.counts.updatesSent++;
    this.counts.bytesSent += bytes;
  }
}

/** One SSE event: `data` is JSON on one line (JSON.stringify never writes a raw newline). */
export function sseEvent(name: string, data: unknown): string {
  return `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`;
}
