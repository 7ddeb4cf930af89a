/**
 * The web view's parts that are not the browser's: the model's per-client rows, history and
 * recent calls (bounded whatever the input), and the live updates' viewer cap on a real loopback
 * HTTP server. The page itself is tested in a real browser (test/e2e/web-view.e2e.test.ts).
 */
import { createServer, get, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { MAX_VIEWERS, SseHub, sseEvent, VIEWER_MAX_BUFFERED_BYTES } from '../../src/admin/web/sse-hub.js';
import { MAX_RECENT_CALLS, WebView, WEB_LIMITS } from '../../src/admin/web/web-view.js';
import { DEFAULT_CONFIG } from '../../src/config/schema.js';
import type { Correlated } from '../../src/correlate/types.js';
import { createLogger } from '../../src/log.js';
import { Pipeline, pipelineOptions } from '../../src/pipeline.js';
import { newStats } from '../../src/stats.js';
import type { Translation } from '../../src/translate/types.js';
import { HISTORY_SLOT_MS, HISTORY_SLOTS, RowHistory, type Totals } from '../../src/ui/history.js';
import { LatencySketch } from '../../src/ui/sketch.js';
import { MAX_TEXT, MAX_WATERFALL_ATTEMPTS, OTHER_ROW, ViewModel } from '../../src/ui/model.js';

const SOURCE = { address: '127.0.0.1', port: 40000 };

/** Calls as raw datagrams through the bridge's Pipeline into `model` (at model time `now`); returns the translations. */
function feed(model: ViewModel, calls: { clientId: string; api: string; attempts: number[]; message?: string; requestId?: string; start?: number }[], now: number): Translation[] {
  const out: Translation[] = [];
  const sink = { write: (c: Correlated, t: Translation) => (out.push(t), model.add(c, t, now)) };
  const p = new Pipeline(pipelineOptions(DEFAULT_CONFIG, ''), sink, newStats(0), createLogger('error', () => {}));
  let ts = 1_000_000;
  for (const c of calls) {
    const start = c.start ?? (ts += 10_000);
    const base = { Version: 1, ClientId: c.clientId, Service: 'S3', Api: c.api, Region: 'us-east-1', UserAgent: 'aws-cli/1.32.0 botocore/1.34.0' };
    let at = start;
    c.attempts.forEach((status, i) => {
      const failed = status >= 400;
      const d = { ...base, Type: 'ApiCallAttempt', Timestamp: at, AttemptLatency: 10, HttpStatusCode: status, XAmzRequestId: c.requestId ?? `R${ts}-${i}`, ...(failed ? { AwsException: 'SlowDown', AwsExceptionMessage: c.message ?? 'slow' } : {}) };
      p.ingest(Buffer.from(JSON.stringify(d)), SOURCE, at + 10);
      at += 30;
    });
    const last = c.attempts.at(-1)!;
    const call = { ...base, Type: 'ApiCall', Timestamp: start, AttemptCount: c.attempts.length, Latency: at - start, FinalHttpStatusCode: last, ...(last >= 400 ? { FinalAwsException: 'SlowDown', FinalAwsExceptionMessage: c.message ?? 'slow' } : {}) };
    p.ingest(Buffer.from(JSON.stringify(call)), SOURCE, at);
  }
  p.flush();
  return out;
}

describe('row history (the charts)', () => {
  /** A row's running totals, as the table keeps them; `count` is what the model does per call, after advancing the history. */
  const rowOf = () => {
    const totals: Totals = { calls: 0, errors: 0, retries: 0, throttles: 0, latency: new LatencySketch() };
    const h = new RowHistory(() => totals);
    const count = (at: number, latency: number, error: boolean, retries: number, throttles: number) => {
      h.advance(at);
      totals.calls++;
      if (error) totals.errors++;
      totals.retries += retries;
      totals.throttles += throttles;
      totals.latency.add(latency);
    };
    return { h, count };
  };

  it('one point per slot: rates per second and latency percentiles; empty slots have no latency', () => {
    const { h, count } = rowOf();
    const t0 = 100 * HISTORY_SLOT_MS;
    for (let i = 0; i < 10; i++) count(t0 + i, 20, i < 2, 1, 0);
    count(t0 + 2 * HISTORY_SLOT_MS, 40, false, 0, 3);
    const s = h.series(t0 + 2 * HISTORY_SLOT_MS + 2_000);
    expect(s.t).toEqual([100, 101, 102].map((k) => (k * HISTORY_SLOT_MS) / 1000));
    expect(s.callsPerSec[0]).toBeCloseTo(10 / (HISTORY_SLOT_MS / 1000));
    expect(s.errorsPerSec[0]).toBeCloseTo(2 / (HISTORY_SLOT_MS / 1000));
    expect(s.retriesPerSec[0]).toBeCloseTo(10 / (HISTORY_SLOT_MS / 1000));
    expect(s.p50[0]).toBeCloseTo(20, 0);
    expect([s.callsPerSec[1], s.p50[1]]).toEqual([0, null]);
    // The slot being filled: over the 2 s it has covered, its own latencies only.
    expect(s.callsPerSec[2]).toBeCloseTo(0.5);
    expect(s.throttlesPerSec[2]).toBeCloseTo(1.5);
    expect(s.p50[2]).toBeCloseTo(40, 0);
  });

  it('holds 15 minutes at most, whatever time passes', () => {
    const { h, count } = rowOf();
    for (let i = 0; i < 3 * HISTORY_SLOTS; i++) count(i * HISTORY_SLOT_MS, i, false, 0, 0);
    const now = 3 * HISTORY_SLOTS * HISTORY_SLOT_MS;
    const s = h.series(now);
    expect(s.t).toHaveLength(HISTORY_SLOTS);
    expect(s.t[0]).toBe(((3 * HISTORY_SLOTS - HISTORY_SLOTS + 1) * HISTORY_SLOT_MS) / 1000);
    // One call per slot, each slot's latency its own call's (not the running total's).
    const own = [3 * HISTORY_SLOTS - 2, 3 * HISTORY_SLOTS - 1];
    s.p50.slice(-3, -1).forEach((v, k) => expect(Math.abs(v! / own[k]! - 1)).toBeLessThan(0.05));
    // An hour idle: every point is empty.
    const later = h.series(now + 3_600_000);
    expect(later.t).toHaveLength(HISTORY_SLOTS);
    expect(later.callsPerSec.every((v) => v === 0)).toBe(true);
  });
});

describe('the model with the web view\'s limits', () => {
  it('keeps a recent call with its attempts (times, statuses, request ids) and, once joined, its trace id', () => {
    const m = new ViewModel(WEB_LIMITS);
    const [t] = feed(m, [{ clientId: 'app', api: 'ListBuckets', attempts: [503, 503, 200] }], 5);
    expect(m.lastSeq).toBe(1);
    const r = m.recentAfter(0)[0]!;
    expect(r).toMatchObject({ clientId: 'app', name: 'S3.ListBuckets', attemptCount: 3, error: false, status: 200 });
    expect(r.attempts.map((a) => a.status)).toEqual([503, 503, 200]);
    expect(r.attempts.map((a) => a.errorType)).toEqual(['SlowDown', 'SlowDown', undefined]);
    expect(r.attempts.map((a) => a.requestId)).toEqual(['R1010000-0', 'R1010000-1', 'R1010000-2']);
    for (let i = 1; i < 3; i++) expect(r.attempts[i]!.startMs).toBeGreaterThan(r.attempts[i - 1]!.endMs);
    expect(r.traceId).toBeUndefined();
    m.joined(t!, 'ab'.repeat(16));
    expect(m.recentAfter(0)[0]!.traceId).toBe('ab'.repeat(16));
    expect(m.joinedAmong(new Set([t!]), 1)).toEqual([[1, 'ab'.repeat(16)]]);
    expect(m.joinedAmong(new Set(), 1)).toEqual([]);
    expect(m.clientRows.get('app\u0000S3.ListBuckets')).toMatchObject({ clientId: 'app', calls: 1, retries: 2, throttles: 2 });
    expect(m.recentAfter(1)).toEqual([]);
    // An attempt the correlator placed with csm.match.ambiguous (a concurrent twin was about as probable) says so.
    expect(r.attempts.map((a) => a.ambiguous)).toEqual([false, false, false]);
    t!.span.children[1]!.attributes['csm.match.ambiguous'] = true;
    expect(m.recentAfter(0)[0]!.attempts.map((a) => a.ambiguous)).toEqual([false, true, false]);
  });

  it('recent calls: a burst of MAX_RECENT_CALLS is kept whole, a sustained rate at most MAX_RECENT_CALLS a second; the table counts every call', () => {
    const m = new ViewModel(WEB_LIMITS);
    const calls = (n: number) => Array.from({ length: n }, () => ({ clientId: 'app', api: 'GetObject', attempts: [200] }));
    feed(m, calls(MAX_RECENT_CALLS + 300), 10_000);
    expect(m.lastSeq).toBe(MAX_RECENT_CALLS);
    // 100 ms later: a tenth of a second's worth more
    feed(m, calls(300), 10_100);
    expect(m.lastSeq).toBe(MAX_RECENT_CALLS + MAX_RECENT_CALLS / 10);
    // a second later the bucket is full again, never fuller
    feed(m, calls(3 * MAX_RECENT_CALLS), 12_100);
    expect(m.lastSeq).toBe(2 * MAX_RECENT_CALLS + MAX_RECENT_CALLS / 10);
    expect(m.rows.get('S3.GetObject')!.calls).toBe(MAX_RECENT_CALLS + 600 + 3 * MAX_RECENT_CALLS);
    // the newest admitted are what a page gets
    expect(m.recentAfter(m.lastSeq - 1).map((r) => r.seq)).toEqual([m.lastSeq]);
  });

  it('bounded: recent calls, attempts per call, rows per client, and the length of every datagram string', () => {
    const m = new ViewModel(WEB_LIMITS);
    const long = 'x'.repeat(5_000);
    const calls = Array.from({ length: MAX_RECENT_CALLS + 50 }, (_, i) => ({ clientId: `${'c'.repeat(250)}${i}`, api: `Op${i}`, attempts: [500], message: long, requestId: long }));
    // a burst of MAX_RECENT_CALLS, then the rest a second later (the ring admits that many a second)
    feed(m, calls.slice(0, MAX_RECENT_CALLS), 5);
    feed(m, calls.slice(MAX_RECENT_CALLS), 1_005);
    const recent = m.recentAfter(0);
    expect(recent).toHaveLength(MAX_RECENT_CALLS);
    expect(recent[0]!.seq).toBe(51);
    expect(recent.at(-1)!.seq).toBe(MAX_RECENT_CALLS + 50);
    expect(m.recentAfter(MAX_RECENT_CALLS + 48).map((r) => r.seq)).toEqual([MAX_RECENT_CALLS + 49, MAX_RECENT_CALLS + 50]);
    expect(m.clientRows.size).toBe(WEB_LIMITS.maxRows);
    expect(m.clientRows.has(OTHER_ROW)).toBe(true);
    for (const r of recent) {
      expect(r.clientId.length).toBeLessThanOrEqual(MAX_TEXT + 1);
      expect(r.message!.length).toBeLessThanOrEqual(MAX_TEXT + 1);
      expect(r.attempts[0]!.message!.length).toBeLessThanOrEqual(MAX_TEXT + 1);
      // Request ids are any length a datagram holds: 200 calls of 30 attempts must not keep megabytes.
      expect(r.attempts[0]!.requestId).toBe(`${'x'.repeat(MAX_TEXT)}…`);
    }
    for (const row of m.clientRows.values()) expect(row.lastError!.text.length).toBeLessThanOrEqual(MAX_TEXT + 1);
    const many = new ViewModel(WEB_LIMITS);
    feed(many, [{ clientId: 'app', api: 'GetObject', attempts: Array.from({ length: MAX_WATERFALL_ATTEMPTS + 5 }, () => 503) }], 5);
    expect(many.recentAfter(0)[0]!.attempts).toHaveLength(MAX_WATERFALL_ATTEMPTS);
    expect(many.recentAfter(0)[0]!.attemptsCut).toBe(5);
  });

  it('the terminal view\'s model keeps none of it', () => {
    const m = new ViewModel();
    feed(m, [{ clientId: 'app', api: 'ListBuckets', attempts: [200] }], 5);
    expect([m.recentAfter(0).length, m.clientRows.size, m.total, m.rows.get('S3.ListBuckets')!.history]).toEqual([0, 0, undefined, undefined]);
  });
});

describe('live updates on a real loopback server', () => {
  let server: Server | undefined;
  const open: IncomingMessage[] = [];
  afterEach(async () => {
    for (const r of open) r.destroy();
    open.length = 0;
    server?.closeAllConnections();
    await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  });

  it(`at most ${MAX_VIEWERS} viewers; the next is refused (503) and counted`, async () => {
    const stats = newStats(0);
    const web = new WebView({ version: 'test', snapshot: () => stats, counts: stats.web });
    server = createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://x');
      if (!web.handle(req, res, url.pathname, url.searchParams)) res.writeHead(404).end();
    });
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const connectViewer = () =>
      new Promise<{ status: number; first: string }>((resolve, reject) => {
        get({ host: '127.0.0.1', port, path: '/web/events' }, (res) => {
          open.push(res);
          let first = '';
          res.on('data', (d: Buffer) => {
            first += d.toString();
            if (first.includes('\n\n', first.indexOf('event:'))) resolve({ status: res.statusCode!, first });
          });
          res.on('end', () => resolve({ status: res.statusCode!, first }));
        }).on('error', reject);
      });
    for (let i = 0; i < MAX_VIEWERS; i++) {
      const v = await connectViewer();
      expect(v.status).toBe(200);
      expect(v.first).toMatch(/^retry: \d+\n\nevent: init\ndata: \{/);
    }
    expect(stats.web.viewers).toBe(MAX_VIEWERS);
    expect((await connectViewer()).status).toBe(503);
    expect(stats.web).toMatchObject({ viewers: MAX_VIEWERS, viewersRefused: 1 });
    // A viewer that leaves frees its place.
    open.shift()!.destroy();
    for (let i = 0; i < 100 && stats.web.viewers === MAX_VIEWERS; i++) await new Promise((r) => setTimeout(r, 10));
    expect(stats.web.viewers).toBe(MAX_VIEWERS - 1);
    expect((await connectViewer()).status).toBe(200);
    web.close();
    expect(stats.web.viewers).toBe(0);
  });

  it('an update larger than the per-viewer bound still reaches a viewer that reads: only updates piling up drop one', async () => {
    const stats = newStats(0);
    const hub = new SseHub(stats.web, {});
    server = createServer((req, res) => hub.add(req, res, () => sseEvent('init', {})));
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const big = sseEvent('update', { pad: 'x'.repeat(VIEWER_MAX_BUFFERED_BYTES + 100_000) });
    const received = await new Promise<number>((resolve, reject) => {
      get({ host: '127.0.0.1', port, path: '/web/events' }, (res) => {
        open.push(res);
        let n = 0;
        let sent = false;
        res.on('data', (d: Buffer) => {
          n += d.length;
          if (!sent) {
            sent = true;
            hub.broadcast(big);
          }
          if (n >= big.length) resolve(n);
        });
        res.on('close', () => resolve(n));
      }).on('error', reject);
    });
    expect(received).toBeGreaterThan(big.length);
    expect(stats.web).toMatchObject({ viewers: 1, slowViewersDropped: 0, updatesSent: 2 });
    hub.close();
  });
});
