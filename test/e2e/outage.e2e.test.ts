/**
 * Collector outages and shutdown, end to end: the built CLI, real captured CSM
 * datagram pairs over UDP, a real OTLP/HTTP endpoint (the strict test sink)
 * behind a TCP proxy that can be absent, hang, or cut connections.
 *
 * Every test asserts: UDP intake kept up during the outage (datagrams.accepted
 * = sent), every call arrives exactly as many times as expected after recovery
 * (counted by a unique request id per call), and whatever did not arrive is
 * counted in /stats.
 */
import { gunzipSync } from 'node:zlib';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startBridge, type BridgeProcess } from '../helpers/bridge-process.js';
import { waitStats, type Stats } from '../helpers/stats.js';
import { readCapture } from '../helpers/captures.js';
import { startOtlpSink, type OtlpSink } from '../helpers/otlp-sink.js';
import { freePort } from '../helpers/tools.js';
import { mountTmpfs, tmpfsUnavailable } from '../helpers/tmpfs.js';

/** A live credential as some SDKs put it in every attempt; it must never be written anywhere. */
const SESSION_TOKEN = 'FwoGZXIvYXdzEOUTAGE//SESSION/TOKEN/MUST/NOT/LEAK+0123456789abcdef';

// One real ApiCallAttempt + ApiCall pair (aws-sdk JS v2, S3.ListBuckets).
const capture = readCapture('js_v2_sequential');
const ATTEMPT = JSON.parse(capture[0]!.raw) as Record<string, unknown>;
const CALL = JSON.parse(capture[1]!.raw) as Record<string, unknown>;
if (ATTEMPT['Type'] !== 'ApiCallAttempt' || CALL['Type'] !== 'ApiCall') throw new Error('capture changed: expected an attempt then its call');

const requestId = (i: number) => `outage-${String(i).padStart(6, '0')}`;

/** Call i: the captured pair with its own request id and times 100 ms apart; the attempt carries a SessionToken. */
function datagrams(i: number): [Buffer, Buffer] {
  const shift = i * 100;
  const attempt = { ...ATTEMPT, XAmznRequestId: requestId(i), Timestamp: (ATTEMPT['Timestamp'] as number) + shift, SessionToken: SESSION_TOKEN };
  const call = { ...CALL, Timestamp: (CALL['Timestamp'] as number) + shift };
  return [Buffer.from(JSON.stringify(attempt)), Buffer.from(JSON.stringify(call))];
}

let udp: UdpSocket;
async function sendCalls(port: number, from: number, count: number): Promise<void> {
  for (let i = from; i < from + count; i++) {
    for (const d of datagrams(i)) await new Promise<void>((res, rej) => udp.send(d, port, '127.0.0.1', (e) => (e ? rej(e) : res())));
    if (i % 100 === 99) await new Promise((r) => setImmediate(r));
  }
}


/** Spans per request id received by the sink. */
function delivered(sink: OtlpSink): Map<string, number> {
  const m = new Map<string, number>();
  for (const s of sink.spans) {
    const id = s.attributes['aws.request_id'];
    if (typeof id === 'string' && id.startsWith('outage-')) m.set(id, (m.get(id) ?? 0) + 1);
  }
  return m;
}

/** Asserts calls [0, n) each arrived exactly once (a call span and its attempt span). */
function expectAllDelivered(sink: OtlpSink, n: number): void {
  const got = delivered(sink);
  const wrong = Array.from({ length: n }, (_, i) => requestId(i)).filter((id) => got.get(id) !== 2);
  expect(wrong, `calls not delivered exactly once: ${wrong.slice(0, 10).join(', ')}`).toEqual([]);
  expect(got.size).toBe(n);
  const names = new Set(sink.spans.filter((s) => s.parentSpanId === '').map((s) => s.name));
  expect([...names].filter((x) => x !== 'S3.ListBuckets')).toEqual([]);
  expect(sink.errors).toEqual([]);
}

type Mode = 'forward' | 'hang' | 'reset';

/**
 * The "collector" as the bridge sees it: a TCP port that is closed (down), forwards to the
 * sink, accepts and never answers (hang), or destroys each connection on its first bytes.
 */
class FaultProxy {
  private server: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  private mode: Mode = 'forward';
  constructor(
    readonly port: number,
    private readonly target: number,
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async up(mode: Mode): Promise<void> {
    this.mode = mode;
    for (const s of this.sockets) s.destroy();
    if (this.server) return;
    const server = net.createServer((c) => this.accept(c));
    await new Promise<void>((res, rej) => {
      server.once('error', rej);
      server.listen(this.port, '127.0.0.1', () => res());
    });
    this.server = server;
  }

  /**
   * Switches mode, as a restarted collector would: open connections are cut (keep-alive sockets
   * do not carry the old mode on) and the port is listened on afresh, so a connection made before
   * the switch but not yet accepted here (this process may be slow to get to it) is refused, not
   * served in the new mode.
   */
  async setMode(mode: Mode): Promise<void> {
    await this.down();
    await this.up(mode);
  }

  async down(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    for (const c of this.sockets) c.destroy();
    if (s) await new Promise<void>((r) => s.close(() => r()));
  }

  private track(s: net.Socket): void {
    this.sockets.add(s);
    s.on('close', () => this.sockets.delete(s));
    s.on('error', () => s.destroy());
  }

  private accept(c: net.Socket): void {
    this.track(c);
    if (this.mode === 'hang') {
      c.resume(); // read everything, answer nothing
      return;
    }
    if (this.mode === 'reset') {
      c.once('data', () => c.destroy());
      return;
    }
    const up = net.connect(this.target, '127.0.0.1');
    this.track(up);
    up.on('close', () => c.destroy());
    c.on('close', () => up.destroy());
    c.pipe(up);
    up.pipe(c);
  }
}

const BASE_ARGS = ['--export-delay-ms', '100', '--export-batch-size', '200', '--metrics-interval-ms', '1000', '--log-level', 'info'];
/**
 * An export's timeout shorter than the exporter's first in-request retry (1 s ±20 %): each export
 * is one POST, so the spool's loop is what is tested. (With 1 s, a retry could go out with a few ms
 * of its timeout left just as the collector came back: delivered, then abandoned at the deadline
 * and sent again by the spool, a duplicate OTLP allows and this file's exactly-once checks do not.)
 */
const ENV = { OTEL_EXPORTER_OTLP_TIMEOUT: '700' };

// Each test: a fresh sink behind a fault proxy, bridges and spool directories cleaned up after it.
let sink: OtlpSink;
let proxy: FaultProxy;
const bridges: BridgeProcess[] = [];
const dirs: string[] = [];
const start = async (args: string[] = []) => {
  const b = await startBridge(['--otlp-endpoint', proxy.url, ...BASE_ARGS, ...args], ENV);
  bridges.push(b);
  return b;
};
beforeAll(async () => {
  udp = createSocket('udp4');
  await new Promise<void>((r) => udp.bind(0, '127.0.0.1', () => r()));
});
afterAll(() => udp.close());
beforeEach(async () => {
  sink = await startOtlpSink();
  proxy = new FaultProxy(await freePort(), Number(new URL(sink.url).port));
});
afterEach(async () => {
  for (const b of bridges.splice(0)) await b.stop('SIGKILL');
  await proxy.down();
  await sink.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('collector outages', () => {

  it('collector down at start (nothing listening), then started: every call arrives once', async () => {
    const b = await start();
    await sendCalls(b.udpPort, 0, 300);
    const during = await waitStats(b, (s) => s.spans.created === 600 && s.spool.queuedSpans === 600 && s.spool.retries > 0, 'spans spooled');
    expect([during.datagrams.received, during.datagrams.accepted]).toEqual([600, 600]);
    expect([during.spans.exported, during.spans.dropped, during.spans.failed]).toEqual([0, 0, 0]);
    expect(during.spool.queuedBytes).toBeGreaterThan(0);
    // The log line travels through a pipe: give it a moment (bounded).
    for (let i = 0; i < 100 && !b.logs.some((l) => l['msg'] === 'OTLP endpoint unavailable; spans wait in the spool'); i++) await new Promise((r) => setTimeout(r, 50));
    expect(b.logs.some((l) => l['msg'] === 'OTLP endpoint unavailable; spans wait in the spool')).toBe(true);

    await proxy.up('forward');
    await sink.waitFor(() => delivered(sink).size === 300, 30_000);
    expectAllDelivered(sink, 300);
    const after = await waitStats(b, (s) => s.spans.exported === 600, 'exported counted');
    // (spool.queuedBytes also counts metric exports, which keep coming every second.)
    expect([after.spool.queuedSpans, after.spans.dropped, after.spans.failed, after.spool.droppedSpans]).toEqual([0, 0, 0, 0]);
    // Metrics kept during the outage arrive too.
    await sink.waitFor(() => sink.metricPoints.some((p) => p.name === 'rpc.client.call.duration'), 10_000);
    expect(await b.stop()).toBe(0);
  });

  it('answers 503, then 429, then 200: nothing lost, nothing doubled', async () => {
    await proxy.up('forward');
    sink.setStatus(503);
    const b = await start();
    await sendCalls(b.udpPort, 0, 150);
    await waitStats(b, (s) => s.spans.created === 300 && s.spool.retries > 0, 'retries against 503');
    sink.setStatus(429);
    await sendCalls(b.udpPort, 150, 150);
    const during = await waitStats(b, (s) => s.spans.created === 600 && s.spool.queuedSpans === 600, 'second half spooled');
    expect(during.datagrams.accepted).toBe(600);
    await sink.waitFor(() => sink.requests.some((r) => r.status === 429), 20_000);
    expect(sink.requests.some((r) => r.status === 503)).toBe(true);
    expect(sink.spans).toHaveLength(0);

    sink.setStatus(200);
    await sink.waitFor(() => delivered(sink).size === 300, 30_000);
    expectAllDelivered(sink, 300);
    const after = await waitStats(b, (s) => s.spans.exported === 600 && s.spool.queuedSpans === 0, 'all exported');
    expect([after.spans.dropped, after.spans.failed]).toEqual([0, 0]);
    expect(await b.stop()).toBe(0);
  });

  it.each([
    ['accepts and never answers', 'hang', 'timeouts'],
    ['cuts every connection (socket.destroy)', 'reset', 'resets'],
  ] as const)('a collector that %s, then recovers', async (_what, mode, waitingFor) => {
    await proxy.up(mode);
    const b = await start();
    await sendCalls(b.udpPort, 0, 200);
    const during = await waitStats(b, (s) => s.spans.created === 400 && s.spool.retries > 0, waitingFor);
    expect(during.datagrams.accepted).toBe(400);
    expect(during.spans.exported).toBe(0);
    await proxy.setMode('forward');
    await sink.waitFor(() => delivered(sink).size === 200, 30_000);
    expectAllDelivered(sink, 200);
    const after = await waitStats(b, (s) => s.spans.exported === 400 && s.spool.queuedSpans === 0, 'all exported');
    expect([after.spans.dropped, after.spans.failed]).toEqual([0, 0]);
    expect(await b.stop()).toBe(0);
  });

  it('a spool too small for the outage drops the oldest batches and counts every dropped span', async () => {
    // 65536 bytes: 57344 for traces, a few batches of 40 spans.
    const b = await start(['--spool-max-bytes', '65536', '--export-batch-size', '40']);
    await sendCalls(b.udpPort, 0, 1000);
    const during = await waitStats(b, (s) => s.spans.created === 2000 && s.spool.queuedSpans + s.spool.droppedSpans === 2000, 'spooled or dropped');
    expect([during.datagrams.received, during.datagrams.accepted]).toEqual([2000, 2000]); // intake never blocked
    expect(during.spool.droppedSpans).toBeGreaterThan(0);
    expect(during.spool.queuedBytes).toBeLessThanOrEqual(65536);
    expect(during.spans.dropped).toBe(during.spool.droppedSpans);
    expect(b.logs.some((l) => l['msg'] === 'spans dropped from the export spool')).toBe(true);

    await proxy.up('forward');
    const after = await waitStats(b, (s) => s.spool.queuedSpans === 0 && s.spans.exported > 0, 'spool drained', 30_000);
    // Nothing lost silently: every span created was delivered or counted as dropped.
    expect(after.spans.exported + after.spans.dropped + after.spans.failed).toBe(2000);
    await sink.waitFor(() => sink.spans.filter((s) => String(s.attributes['aws.request_id']).startsWith('outage-')).length === after.spans.exported, 10_000);
    const got = delivered(sink);
    // Oldest dropped first: the newest calls are all there; what is missing is older than all of
    // them (the first batch, in flight when the spool filled, may survive before the gap).
    expect(got.get(requestId(999))).toBe(2);
    const incomplete = Array.from({ length: 1000 }, (_, i) => i).filter((i) => got.get(requestId(i)) !== 2);
    expect(incomplete.length).toBeGreaterThan(0);
    const newestMissing = Math.max(...incomplete);
    expect(newestMissing).toBeLessThan(999);
    for (let i = newestMissing + 1; i < 1000; i++) expect(got.get(requestId(i)), `call ${i}`).toBe(2);
    expect(incomplete.length).toBeGreaterThanOrEqual(Math.floor(after.spans.dropped / 2));
    expect(sink.errors).toEqual([]);
    expect(await b.stop()).toBe(0);
  });
});

describe('shutdown during an outage', () => {

  const timedStop = async (b: BridgeProcess) => {
    const t0 = Date.now();
    const code = await b.stop('SIGTERM', 15_000);
    return { code, ms: Date.now() - t0 };
  };

  it('memory spool: SIGTERM exits within shutdownTimeoutMs and says what it could not deliver', async () => {
    const b = await start(['--shutdown-timeout-ms', '2000']);
    await sendCalls(b.udpPort, 0, 100);
    await waitStats(b, (s) => s.spool.queuedSpans === 200, 'spooled');
    const { code, ms } = await timedStop(b);
    expect(code).toBe(0);
    expect(ms).toBeLessThan(2000 + 1500); // the deadline plus process start-up/exit slack
    const lost = b.logs.find((l) => l['msg'] === 'OTLP endpoint unavailable at shutdown: undelivered data is lost (no spoolDir)');
    expect(lost, b.stderr()).toBeDefined();
    const lostCounts = lost!['lost'] as { spans: number; metricExports: number };
    expect(lostCounts.spans).toBe(200);
    expect(lostCounts.metricExports).toBeGreaterThan(0); // the final metric collection at least
    expect(lost!['keptOnDisk']).toEqual({ spans: 0, metricExports: 0, bytes: 0 });
    // ... and counted: the final stats say the same.
    const stopped = b.logs.find((l) => l['msg'] === 'stopped')!['stats'] as Stats;
    expect([stopped.spool.lostSpans, stopped.spans.dropped, stopped.spool.queuedSpans]).toEqual([200, 200, 0]);
    expect(b.stderr()).not.toContain(SESSION_TOKEN);
  });

  it('disk spool: SIGTERM keeps the spool (no SessionToken in it); the next start sends it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'csm-outage-'));
    dirs.push(dir);
    const first = await start(['--shutdown-timeout-ms', '2000', '--spool-dir', dir]);
    await sendCalls(first.udpPort, 0, 150);
    await waitStats(first, (s) => s.spool.queuedSpans === 300, 'spooled');
    const { code, ms } = await timedStop(first);
    expect(code).toBe(0);
    expect(ms).toBeLessThan(2000 + 1500);
    const kept = first.logs.find((l) => l['msg'] === 'OTLP endpoint unavailable at shutdown: undelivered data kept in the spool directory for the next start');
    expect(kept, first.stderr()).toBeDefined();
    expect((kept!['keptOnDisk'] as { spans: number })['spans']).toBe(300);
    expect(kept!['lost']).toEqual({ spans: 0, metricExports: 0 });

    // Batches that waited behind another are stored gzipped (.pb.gz).
    const files = readdirSync(join(dir, 'traces')).filter((f) => /^\d{12}-\d+\.pb(\.gz)?$/.test(f));
    expect(files.length).toBeGreaterThan(0);
    expect(files.reduce((n, f) => n + Number(f.split('-')[1]!.split('.')[0]), 0)).toBe(300);
    expect(readdirSync(join(dir, 'metrics')).some((f) => /\.pb(\.gz)?$/.test(f))).toBe(true);
    // The spool files (uncompressed) hold the spans (request ids are in them) and never the SessionToken.
    const plain = (file: string) => (file.endsWith('.gz') ? gunzipSync(readFileSync(file)) : readFileSync(file));
    const content = Buffer.concat([...files.map((f) => plain(join(dir, 'traces', f)))]);
    expect(content.includes(requestId(149))).toBe(true);
    for (const sub of ['traces', 'metrics']) {
      for (const f of readdirSync(join(dir, sub))) {
        const file = join(dir, sub, f);
        expect(readFileSync(file).includes(SESSION_TOKEN), f).toBe(false);
        if (f.endsWith('.gz')) expect(plain(file).includes(SESSION_TOKEN), f).toBe(false);
      }
    }
    expect(first.stderr()).not.toContain(SESSION_TOKEN);

    await proxy.up('forward');
    const second = await start(['--spool-dir', dir]);
    await sink.waitFor(() => delivered(sink).size === 150, 30_000);
    expectAllDelivered(sink, 150);
    const s = await waitStats(second, (x) => x.spool.queuedSpans === 0 && x.spans.exported === 300, 'replayed');
    expect(s.spool.recoveredSpans).toBe(300);
    expect(s.spans.created).toBe(0); // all of it came from the first run
    expect(readdirSync(join(dir, 'traces')).filter((f) => f !== '.lock')).toEqual([]);
    expect(await second.stop()).toBe(0);
  });

  it('disk spool: after SIGKILL what was spooled is sent at the next start', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'csm-outage-'));
    dirs.push(dir);
    const first = await start(['--spool-dir', dir]);
    await sendCalls(first.udpPort, 0, 100);
    await waitStats(first, (s) => s.spool.queuedSpans === 200, 'spooled');
    expect(await first.stop('SIGKILL')).toBe(null);

    await proxy.up('forward');
    const second = await start(['--spool-dir', dir]);
    await sink.waitFor(() => delivered(sink).size === 100, 30_000);
    expectAllDelivered(sink, 100);
    const s = await waitStats(second, (x) => x.spool.queuedSpans === 0 && x.spans.exported === 200, 'replayed');
    expect(s.spool.recoveredSpans).toBe(200);
    expect(await second.stop()).toBe(0);
  });

  it('a second bridge on the same spool directory refuses to start', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'csm-outage-'));
    dirs.push(dir);
    await start(['--spool-dir', dir]);
    await expect(start(['--spool-dir', dir])).rejects.toThrow(/in use by process/);
  });
});

describe.skipIf(tmpfsUnavailable !== undefined)(`spool directory on a full disk (256 KiB tmpfs)${tmpfsUnavailable ? `: skipped, ${tmpfsUnavailable}` : ''}`, () => {
  it('40,000 spans, collector down, SIGTERM: the log and the stats say exactly what is on disk and count the rest as lost; the next start sends what was kept', async () => {
    const fs = mountTmpfs(256);
    try {
      const first = await start(['--shutdown-timeout-ms', '3000', '--spool-dir', fs.dir]);
      await sendCalls(first.udpPort, 0, 20_000);
      // Under load the kernel may drop a few datagrams: what counts is that every span made is accounted for.
      const during = await waitStats(first, (s) => s.datagrams.received + s.datagrams.kernelDropped >= 40_000 && s.spool.queuedSpans + s.spans.dropped === s.spans.created, 'spooled', 60_000);
      expect(during.spans.created).toBeGreaterThan(20_000); // far more than 256 KiB hold
      expect(during.spool.diskErrors).toBeGreaterThan(0); // the disk filled up
      expect(during.spool.onDiskSpans).toBeGreaterThan(0);
      expect(during.spool.onDiskSpans).toBeLessThan(during.spool.queuedSpans); // the rest waits in memory
      expect(await first.stop('SIGTERM', 20_000)).toBe(0);

      const summary = first.logs.find((l) => String(l['msg']).startsWith('OTLP endpoint unavailable at shutdown'));
      expect(summary, first.stderr()).toBeDefined();
      const kept = (summary!['keptOnDisk'] as { spans: number }).spans;
      const lost = (summary!['lost'] as { spans: number }).spans;
      const onDisk = readdirSync(join(fs.dir, 'traces'))
        .filter((f) => /^\d{12}-\d+\.pb(\.gz)?$/.test(f))
        .reduce((n, f) => n + Number(f.split('-')[1]!.split('.')[0]), 0);
      expect(kept).toBe(onDisk);
      expect(kept).toBeGreaterThan(0);
      const stopped = first.logs.find((l) => l['msg'] === 'stopped')!['stats'] as Stats;
      // lost: the run's (spans.lost, the disk_full drops included); lostAtShutdown: what was still only in memory at exit.
      expect(stopped.spans.lost).toBe(lost);
      expect(stopped.spool.lostSpans).toBe((summary!['lostAtShutdown'] as { spans: number }).spans);
      expect([stopped.spool.onDiskSpans, stopped.spool.queuedSpans]).toEqual([kept, kept]);
      // Every span is accounted for: delivered (none), refused (none), dropped (lost at exit included), or on disk.
      expect(stopped.spans.exported + stopped.spans.failed + stopped.spans.dropped + kept).toBe(stopped.spans.created);
      expect(stopped.spans.dropped).toBeGreaterThanOrEqual(lost);

      await proxy.up('forward');
      const second = await start(['--spool-dir', fs.dir]);
      const s = await waitStats(second, (x) => x.spool.queuedSpans === 0 && x.spans.exported === kept, 'replayed', 30_000);
      expect(s.spool.recoveredSpans).toBe(kept);
      await sink.waitFor(() => sink.spans.length >= kept, 10_000);
      expect(sink.spans.length).toBe(kept);
      expect(sink.errors).toEqual([]);
      expect(await second.stop()).toBe(0);
    } finally {
      for (const b of bridges.splice(0)) await b.stop('SIGKILL');
      fs.unmount();
    }
  }, 120_000);

  it('the spool directory turns read-only before SIGTERM: the stop still exits 0, says what is kept on disk and what is lost, and prints the final stats', async () => {
    const fs = mountTmpfs(1024);
    try {
      const b = await start(['--shutdown-timeout-ms', '3000', '--spool-dir', fs.dir]);
      await sendCalls(b.udpPort, 0, 500);
      await waitStats(b, (s) => s.spool.onDiskSpans === 1000, 'on disk');
      execFileSync('mount', ['-o', 'remount,ro', fs.dir]);
      // What comes now cannot be written: it waits in memory, and is lost at exit.
      await sendCalls(b.udpPort, 500, 500);
      await waitStats(b, (s) => s.spans.created === 2000 && s.spool.queuedSpans === 2000 && s.spool.diskErrors > 0, 'the rest held in memory');
      expect(await b.stop('SIGTERM', 20_000)).toBe(0);
      expect(b.logs.find((l) => l['msg'] === 'error while stopping'), b.stderr()).toBeUndefined();
      const summary = b.logs.find((l) => String(l['msg']).startsWith('OTLP endpoint unavailable at shutdown'));
      expect(summary, b.stderr()).toBeDefined();
      expect((summary!['keptOnDisk'] as { spans: number }).spans).toBe(1000);
      const onDisk = readdirSync(join(fs.dir, 'traces'))
        .filter((f) => /^\d{12}-\d+\.pb(\.gz)?$/.test(f))
        .reduce((n, f) => n + Number(f.split('-')[1]!.split('.')[0]), 0);
      expect(onDisk).toBe(1000);
      // The lock could not be removed: said, not thrown.
      expect(b.logs.some((l) => l['msg'] === 'spool directory error' && /EROFS/.test(String(l['error'])))).toBe(true);
      const stopped = b.logs.find((l) => l['msg'] === 'stopped')?.['stats'] as Stats | undefined;
      expect(stopped, b.stderr()).toBeDefined();
      expect(stopped!.spool.lostSpans).toBe(1000);
      expect(stopped!.spans.exported + stopped!.spans.failed + stopped!.spans.dropped + onDisk).toBe(stopped!.spans.created);
    } finally {
      for (const b of bridges.splice(0)) await b.stop('SIGKILL');
      fs.unmount();
    }
  }, 60_000);
});
