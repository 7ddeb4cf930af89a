/**
 * The export spool (src/export/spool.ts) on its own, and behind the spooling
 * span exporter with the real OTLP HTTP delegate against the strict test sink.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ValueType } from '@opentelemetry/api';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { AggregationTemporality, DataPointType, type ResourceMetrics } from '@opentelemetry/sdk-metrics';
import { httpOutcome, type HttpAttempt } from '../../src/export/otlp-sender.js';
import { partialSuccessOf } from '../../src/export/partial-success.js';
import { ANSWERING_MS, DiskStorage, GZIP_WHEN_FULLER, GZIP_WHEN_WAITING, Spool, type DropReason, type Encoding, type SendResult, type SpoolEvents } from '../../src/export/spool.js';
import { resolveOtelEnv } from '../../src/config/otel-env.js';
import { SpoolingMetricExporter, SpoolingSpanExporter } from '../../src/export/spooling-exporter.js';
import { prepareResource, TraceBatch } from '../../src/export/trace-batch.js';
import type { SpanRecord } from '../../src/translate/types.js';
import { createLogger } from '../../src/log.js';
import { newStats } from '../../src/stats.js';
import { startOtlpGrpcSink } from '../helpers/otlp-grpc-sink.js';
import { startOtlpSink, type OtlpSink } from '../helpers/otlp-sink.js';
import { mountTmpfs, tmpfsUnavailable } from '../helpers/tmpfs.js';

/** Records every event the spool reports. */
function recorder() {
  const r = {
    queuedItems: 0,
    queuedBytes: 0,
    onDiskItems: 0,
    onDiskBytes: 0,
    delivered: [] as number[],
    rejected: [] as { items: number; error: string }[],
    dropped: [] as { items: number; reason: DropReason }[],
    retries: 0,
    recovered: [] as { items: number; bytes: number; batches: number }[],
    diskErrors: [] as string[],
  };
  const events: SpoolEvents = {
    queued: (n, b) => {
      r.queuedItems += n;
      r.queuedBytes += b;
    },
    onDisk: (n, b) => {
      r.onDiskItems += n;
      r.onDiskBytes += b;
    },
    delivered: (n) => r.delivered.push(n),
    rejected: (items, error) => r.rejected.push({ items, error }),
    dropped: (items, reason) => r.dropped.push({ items, reason }),
    retrying: () => r.retries++,
    recovered: (items, bytes, batches) => r.recovered.push({ items, bytes, batches }),
    diskError: (op, e) => r.diskErrors.push(`${op}: ${e}`),
  };
  return { r, events };
}

/**
 * A sender the test answers by hand: every call waits until the test resolves it.
 * `sent` lists the item counts in the order they were sent (items identify batches here).
 */
function manualSender() {
  const pending: { items: number; body: Uint8Array; encoding: Encoding; answer: (r: SendResult) => void }[] = [];
  const sent: number[] = [];
  const send = (body: Uint8Array, encoding: Encoding, items: number) =>
    new Promise<SendResult>((answer) => {
      sent.push(items);
      pending.push({ items, body, encoding, answer });
    });
  const next = async (): Promise<(typeof pending)[number]> => {
    for (let i = 0; i < 500 && pending.length === 0; i++) await new Promise((r) => setTimeout(r, 2));
    const p = pending.shift();
    if (!p) throw new Error('the spool sent nothing');
    return p;
  };
  return { send, sent, pending, next };
}

const body = (size: number, fill = 1) => new Uint8Array(size).fill(fill);
const until = async (cond: () => boolean, what: string) => {
  for (let i = 0; i < 1000; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`timed out waiting for ${what}`);
};

let dirs: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'csm-spool-'));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs = [];
});

describe('Spool (memory)', () => {
  it('sends oldest first, one at a time, and retries a transient failure of the same batch', async () => {
    const s = manualSender();
    const { r, events } = recorder();
    const spool = new Spool({ maxBytes: 10_000, send: s.send, events, initialBackoffMs: 1, maxBackoffMs: 2 });
    spool.push(body(100), 1, 'protobuf');
    spool.push(body(100), 2, 'protobuf');
    spool.push(body(100), 3, 'protobuf');
    const first = await s.next();
    expect(first.items).toBe(1);
    expect(s.pending).toHaveLength(0); // one request in flight, never more
    first.answer({ ok: false, kind: 'transient', error: 'ECONNREFUSED' });
    const again = await s.next();
    expect(again.items).toBe(1); // the same batch, not the next one
    again.answer({ ok: true });
    (await s.next()).answer({ ok: true });
    (await s.next()).answer({ ok: true });
    await until(() => r.delivered.length === 3, 'delivery');
    expect(r.delivered).toEqual([1, 2, 3]);
    expect(s.sent).toEqual([1, 1, 2, 3]);
    expect(r.retries).toBe(1);
    expect([spool.queuedItems, spool.queuedBytes, r.queuedItems, r.queuedBytes]).toEqual([0, 0, 0, 0]);
    spool.close();
  });

  it('when full drops the oldest batches (never the one in flight) and counts every dropped item', async () => {
    const s = manualSender();
    const { r, events } = recorder();
    const spool = new Spool({ maxBytes: 3_500, send: s.send, events, initialBackoffMs: 1, maxBackoffMs: 2, gzipWhenWaiting: Infinity });
    for (let i = 1; i <= 10; i++) spool.push(body(1_000), i, 'protobuf');
    // Batch 1 went out at once and stays in flight (it still counts against the bound); 2..8 were dropped to make room.
    expect(r.dropped).toEqual([2, 3, 4, 5, 6, 7, 8].map((items) => ({ items, reason: 'spool_full' })));
    expect(spool.queuedBatches).toBe(3); // in flight (1) + the newest two
    expect(spool.queuedItems).toBe(1 + 9 + 10);
    expect(spool.queuedBytes).toBeLessThanOrEqual(3_500);
    const pushed = 55;
    const dropped = r.dropped.reduce((a, d) => a + d.items, 0);
    expect(spool.queuedItems + dropped).toBe(pushed); // nothing unaccounted for

    // A batch bigger than the whole bound is dropped on arrival.
    spool.push(body(4_000), 100, 'protobuf');
    expect(r.dropped.at(-1)).toEqual({ items: 100, reason: 'spool_full' });

    for (let i = 0; i < 3; i++) (await s.next()).answer({ ok: true });
    await until(() => r.delivered.length === 3, 'delivery');
    expect(r.delivered).toEqual([1, 9, 10]);
    spool.close();
  });

  it('drops a batch the endpoint refuses (4xx) at once, and one it keeps failing with 500 after a few tries', async () => {
    const s = manualSender();
    const { r, events } = recorder();
    const spool = new Spool({ maxBytes: 10_000, send: s.send, events, initialBackoffMs: 1, maxBackoffMs: 2, maxServerErrorAttempts: 3 });
    spool.push(body(10), 1, 'protobuf');
    spool.push(body(10), 2, 'protobuf');
    spool.push(body(10), 3, 'protobuf');
    (await s.next()).answer({ ok: false, kind: 'rejected', error: 'HTTP 400: bad' });
    for (let i = 0; i < 3; i++) (await s.next()).answer({ ok: false, kind: 'server_error', error: 'HTTP 500' });
    (await s.next()).answer({ ok: true });
    await until(() => r.delivered.length === 1, 'delivery');
    expect(s.sent).toEqual([1, 2, 2, 2, 3]);
    expect(r.rejected.map((x) => x.items)).toEqual([1, 2]);
    expect(r.delivered).toEqual([3]);
    spool.close();
  });

  it('drain() resolves false at its deadline while the endpoint is down, true once it is empty', async () => {
    let up = false;
    const { r, events } = recorder();
    const spool = new Spool({
      maxBytes: 10_000,
      events,
      send: async () => (up ? { ok: true } : { ok: false, kind: 'transient', error: 'down' }),
      initialBackoffMs: 1,
      maxBackoffMs: 5,
    });
    spool.push(body(10), 4, 'json');
    expect(await spool.drain(Date.now() + 50)).toBe(false);
    expect(spool.queuedItems).toBe(4);
    up = true;
    expect(await spool.drain(Date.now() + 5_000)).toBe(true);
    expect(r.delivered).toEqual([4]);
    spool.close();
  });
});

describe('Spool (disk)', () => {
  it('writes each batch as a file, keeps them across a restart, sends them oldest first, deletes what was delivered', async () => {
    const dir = tempDir();
    const down = async (): Promise<SendResult> => ({ ok: false, kind: 'transient', error: 'ECONNREFUSED' });
    const a = recorder();
    const first = new Spool({ maxBytes: 100_000, storage: new DiskStorage(dir), send: down, events: a.events, initialBackoffMs: 1, maxBackoffMs: 5, gzipWhenWaiting: Infinity });
    first.push(body(300, 7), 3, 'protobuf');
    first.push(body(200, 8), 2, 'json');
    const files = readdirSync(dir).filter((f) => !f.startsWith('.'));
    expect(files).toEqual(['000000000001-3.pb', '000000000002-2.json']);
    expect(readFileSync(join(dir, files[0]!))).toEqual(Buffer.from(body(300, 7)));
    expect(readdirSync(dir)).toContain('.lock');
    expect(await first.drain(Date.now() + 30)).toBe(false);
    first.close();
    expect(readdirSync(dir)).not.toContain('.lock');
    // A crash mid-write leaves a .tmp file: never acknowledged, removed at the next start.
    writeFileSync(join(dir, '000000000003-9.pb.tmp'), 'half');

    const got: { items: number; encoding: Encoding; bytes: Buffer }[] = [];
    const b = recorder();
    const second = new Spool({
      maxBytes: 100_000,
      storage: new DiskStorage(dir),
      events: b.events,
      send: async (bytes, encoding, items) => {
        got.push({ items, encoding, bytes: Buffer.from(bytes) });
        return { ok: true };
      },
    });
    expect(b.r.recovered).toEqual([{ items: 5, bytes: 500, batches: 2 }]);
    await until(() => b.r.delivered.length === 2, 'replay');
    expect(got.map((g) => [g.items, g.encoding, g.bytes.length, g.bytes[0]])).toEqual([
      [3, 'protobuf', 300, 7],
      [2, 'json', 200, 8],
    ]);
    expect(readdirSync(dir).filter((f) => f !== '.lock')).toEqual([]);
    // New batches continue the sequence (names stay ordered after a restart).
    second.push(body(10), 1, 'protobuf');
    await until(() => b.r.delivered.length === 3, 'delivery');
    second.close();
  });

  it('a smaller bound at the next start drops the oldest files, counted', async () => {
    const dir = tempDir();
    const down = async (): Promise<SendResult> => ({ ok: false, kind: 'transient', error: 'down' });
    const first = new Spool({ maxBytes: 100_000, storage: new DiskStorage(dir), send: down, events: recorder().events, initialBackoffMs: 1, maxBackoffMs: 5, gzipWhenWaiting: Infinity });
    for (let i = 1; i <= 5; i++) first.push(body(1_000), i, 'protobuf');
    first.close();
    const b = recorder();
    const second = new Spool({ maxBytes: 2_500, storage: new DiskStorage(dir), send: down, events: b.events, initialBackoffMs: 1, maxBackoffMs: 5 });
    expect(b.r.dropped).toEqual([1, 2, 3].map((items) => ({ items, reason: 'spool_full' })));
    expect(second.queuedItems).toBe(4 + 5);
    expect(readdirSync(dir).filter((f) => f.endsWith('.pb'))).toEqual(['000000000004-4.pb', '000000000005-5.pb']);
    second.close();
  });

  it('stores batches that arrive behind an endpoint that delivers nothing gzipped, on disk, and sends the original bytes', async () => {
    const dir = tempDir();
    const down = async (): Promise<SendResult> => ({ ok: false, kind: 'transient', error: 'down' });
    // Repetitive, like OTLP bodies of similar spans.
    const original = (n: number) => Buffer.from(`{"name":"S3.ListBuckets","attrs":{"rpc.system":"aws-api","n":${n}}}`.repeat(200));
    const rec = recorder();
    const first = new Spool({ maxBytes: 1_000_000, storage: new DiskStorage(dir), send: down, events: rec.events, initialBackoffMs: 50, maxBackoffMs: 50 });
    first.push(original(1), 1, 'json');
    await until(() => rec.r.retries >= 1, 'the endpoint failed');
    const n = GZIP_WHEN_WAITING + 2;
    for (let i = 2; i <= n; i++) first.push(original(i), i, 'json');
    const files = readdirSync(dir).filter((f) => !f.startsWith('.'));
    // The first GZIP_WHEN_WAITING batches are stored as is; the rest arrived behind a backlog of an endpoint that delivered nothing.
    const name = (i: number) => `${String(i).padStart(12, '0')}-${i}.json${i > GZIP_WHEN_WAITING ? '.gz' : ''}`;
    expect(files).toEqual(Array.from({ length: n }, (_, i) => name(i + 1)));
    expect(first.queuedBytes).toBeLessThan(GZIP_WHEN_WAITING * original(1).length + (2 * original(1).length) / 10);
    first.close();

    const got: Buffer[] = [];
    const second = new Spool({ maxBytes: 1_000_000, storage: new DiskStorage(dir), events: recorder().events, send: async (b) => (got.push(Buffer.from(b)), { ok: true }) });
    await until(() => got.length === n, 'replay');
    expect(got).toEqual(Array.from({ length: n }, (_, i) => original(i + 1)));
    second.close();
  });

  it('an endpoint that answers, slowly: batches wait as they are until a quarter of the bound, or until it has delivered nothing for a while', async () => {
    const original = (n: number) => Buffer.from(`{"name":"S3.ListBuckets","attrs":{"rpc.system":"aws-api","n":${n}}}`.repeat(200));
    const size = original(10).length;
    const s = manualSender();
    let clock = 1_000_000;
    const maxBytes = 40 * size;
    const mem = new Spool({ maxBytes, send: s.send, events: recorder().events, initialBackoffMs: 1, maxBackoffMs: 2, now: () => clock });
    mem.push(original(9), 9, 'json');
    (await s.next()).answer({ ok: true });
    await until(() => mem.queuedBatches === 0, 'the first delivery');
    // It delivered a second ago: a backlog of 9 batches, none compressed (no CPU spent while the endpoint keeps up).
    clock += 1_000;
    for (let i = 10; i < 19; i++) mem.push(original(i), i, 'json');
    expect(mem.queuedBytes).toBe(9 * size);
    // Past a quarter of the bound every new batch is stored compressed.
    const raw = Math.ceil((maxBytes * GZIP_WHEN_FULLER) / size);
    for (let i = 19; i < 25; i++) mem.push(original(i), i, 'json');
    const compressed = mem.queuedBytes - raw * size;
    expect(compressed).toBeGreaterThan(0);
    expect(compressed).toBeLessThan((24 - 9 - raw) * size * 0.2);
    for (let i = 10; i < 25; i++) {
      const sent = await s.next();
      expect(Buffer.from(sent.body)).toEqual(original(i));
      sent.answer({ ok: true });
    }
    await until(() => mem.queuedBatches === 0, 'memory delivery');
    // Nothing delivered for ANSWERING_MS: behind GZIP_WHEN_WAITING batches, compressed again.
    clock += ANSWERING_MS;
    for (let i = 30; i < 30 + GZIP_WHEN_WAITING + 2; i++) mem.push(original(i), i, 'json');
    expect(mem.queuedBytes).toBeLessThan(GZIP_WHEN_WAITING * size + 2 * size * 0.2);
    for (let i = 30; i < 30 + GZIP_WHEN_WAITING + 2; i++) {
      const sent = await s.next();
      expect(Buffer.from(sent.body)).toEqual(original(i));
      sent.answer({ ok: true });
    }
    await until(() => mem.queuedBatches === 0, 'the rest delivered');
    mem.close();
  });

  it('refuses a directory another live process spools into', () => {
    const dir = tempDir();
    writeFileSync(join(dir, '.lock'), String(process.ppid));
    expect(() => new Spool({ maxBytes: 1_000, storage: new DiskStorage(dir), send: async () => ({ ok: true }), events: recorder().events })).toThrow(/in use by process/);
    // A lock left by a dead process (SIGKILL) is taken over.
    writeFileSync(join(dir, '.lock'), '999999999');
    const s = new Spool({ maxBytes: 1_000, storage: new DiskStorage(dir), send: async () => ({ ok: true }), events: recorder().events });
    expect(readlinkSync(join(dir, '.lock'))).toBe(String(process.pid));
    s.close();
    expect(existsSync(join(dir, '.lock'))).toBe(false);
  });
});

describe.skipIf(tmpfsUnavailable !== undefined)(`Spool on a full disk (a 64 KiB tmpfs)${tmpfsUnavailable ? `: skipped, ${tmpfsUnavailable}` : ''}`, () => {
  const down = async (): Promise<SendResult> => ({ ok: false, kind: 'transient', error: 'ECONNREFUSED' });
  const files = (dir: string) => readdirSync(dir).filter((f) => /^\d{12}-\d+\.pb$/.test(f));
  const itemsIn = (names: string[]) => names.reduce((n, f) => n + Number(f.split('-')[1]!.split('.')[0]), 0);

  it('a batch the disk refuses stays in memory and goes to disk as space frees; all delivered in order, none lost', async () => {
    const fs = mountTmpfs(64);
    try {
      const s = manualSender();
      const { r, events } = recorder();
      const spool = new Spool({ maxBytes: 10_000_000, storage: new DiskStorage(fs.dir), send: s.send, events, initialBackoffMs: 1, maxBackoffMs: 2, gzipWhenWaiting: Infinity });
      for (let i = 1; i <= 20; i++) spool.push(body(8_000, i), i, 'protobuf');
      const c = spool.content();
      expect(r.diskErrors.length).toBeGreaterThan(0);
      expect(r.diskErrors.every((e) => /^write: .*ENOSPC/.test(e))).toBe(true);
      expect(c.onDisk.batches).toBeGreaterThan(0);
      expect(c.inMemory.batches).toBeGreaterThan(0);
      expect(c.onDisk.batches + c.inMemory.batches).toBe(20);
      // What the spool says is on disk is what is on disk.
      expect([files(fs.dir).length, itemsIn(files(fs.dir)), r.onDiskItems]).toEqual([c.onDisk.batches, c.onDisk.items, c.onDisk.items]);
      expect(spool.heldInMemoryBytes).toBe(c.inMemory.bytes);
      // The endpoint comes back: each delivery frees a file, and a held batch takes its place.
      for (let i = 1; i <= 20; i++) {
        const sent = await s.next();
        expect(sent.items).toBe(i);
        expect(sent.body[0]).toBe(i);
        sent.answer({ ok: true });
        await until(() => r.delivered.length === i, `delivery ${i}`);
        if (i === 5) expect(spool.content().onDisk.batches).toBeGreaterThan(c.onDisk.batches - 5); // refilled from memory
      }
      expect(r.delivered).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
      expect([r.dropped, spool.heldInMemoryBytes, files(fs.dir), r.onDiskItems]).toEqual([[], 0, [], 0]);
      spool.close();
    } finally {
      fs.unmount();
    }
  });

  it('at close: exactly what is on disk is kept for the next start, the rest is counted as lost', async () => {
    const fs = mountTmpfs(64);
    try {
      const { r, events } = recorder();
      const first = new Spool({ maxBytes: 10_000_000, storage: new DiskStorage(fs.dir), send: down, events, initialBackoffMs: 1, maxBackoffMs: 5, gzipWhenWaiting: Infinity });
      for (let i = 1; i <= 20; i++) first.push(body(8_000, i), i, 'protobuf');
      await first.drain(Date.now() + 20);
      const left = first.close();
      const lost = r.dropped.filter((d) => d.reason === 'shutdown').reduce((n, d) => n + d.items, 0);
      expect(left.inMemory.items).toBe(0);
      expect(left.onDisk.items + lost).toBe(210); // 1 + 2 + ... + 20: every item is either on disk or counted lost
      expect(lost).toBeGreaterThan(0);
      expect(itemsIn(files(fs.dir))).toBe(left.onDisk.items);

      const b = recorder();
      const second = new Spool({ maxBytes: 10_000_000, storage: new DiskStorage(fs.dir), send: down, events: b.events, initialBackoffMs: 1, maxBackoffMs: 5 });
      expect(b.r.recovered).toEqual([{ items: left.onDisk.items, bytes: left.onDisk.bytes, batches: left.onDisk.batches }]);
      second.close();
    } finally {
      fs.unmount();
    }
  });

  it('the memory bound holds for what the disk refused: the oldest held batches are dropped as disk_full, counted', () => {
    const fs = mountTmpfs(64);
    try {
      const { r, events } = recorder();
      const spool = new Spool({ maxBytes: 10_000_000, maxMemoryBytes: 20_000, storage: new DiskStorage(fs.dir), send: down, events, initialBackoffMs: 1_000, gzipWhenWaiting: Infinity });
      for (let i = 1; i <= 20; i++) spool.push(body(8_000, i), i, 'protobuf');
      expect(spool.heldInMemoryBytes).toBeLessThanOrEqual(20_000);
      const dropped = r.dropped.filter((d) => d.reason === 'disk_full');
      expect(dropped.length).toBeGreaterThan(0);
      const c = spool.content();
      expect(c.onDisk.items + c.inMemory.items + dropped.reduce((n, d) => n + d.items, 0)).toBe(210);
      spool.close();
    } finally {
      fs.unmount();
    }
  });
});

describe('Spool (memory): the memory bound', () => {
  it('a memory spool is bounded by the smaller of maxBytes and maxMemoryBytes; what is left at close is counted lost', () => {
    const { r, events } = recorder();
    const spool = new Spool({ maxBytes: 100_000, maxMemoryBytes: 3_000, send: async () => ({ ok: false, kind: 'transient', error: 'down' }), events, initialBackoffMs: 1_000, gzipWhenWaiting: Infinity });
    for (let i = 1; i <= 10; i++) spool.push(body(1_000), i, 'protobuf');
    expect(spool.heldInMemoryBytes).toBeLessThanOrEqual(3_000 + 1_000); // + the batch in flight
    expect(r.dropped.some((d) => d.reason === 'spool_full')).toBe(true);
    const before = spool.queuedItems;
    spool.close();
    spool.abandon();
    const lost = r.dropped.filter((d) => d.reason === 'shutdown').reduce((n, d) => n + d.items, 0);
    expect(lost).toBe(before);
    expect(spool.queuedItems).toBe(0);
  });
});

describe('httpOutcome: what one POST means to the spool', () => {
  it('HTTP refusals are final, a 5xx is a server error, "try later" and no answer are transient, any 2xx is delivered', () => {
    const answer = (status: number, extra: Partial<HttpAttempt & { kind: 'answer' }> = {}): HttpAttempt => ({ kind: 'answer', status, statusMessage: '', retryAfter: undefined, body: undefined, ...extra });
    const outcome = (a: HttpAttempt) => httpOutcome(a, 3_000, () => undefined);
    expect(outcome(answer(200))).toEqual({ ok: true });
    expect(outcome(answer(400, { body: Buffer.from('bad  request\nbody') }))).toEqual({ ok: false, kind: 'rejected', error: 'HTTP 400: bad request body' });
    expect(outcome(answer(413))).toMatchObject({ ok: false, kind: 'rejected' });
    expect(outcome(answer(500))).toMatchObject({ ok: false, kind: 'server_error' });
    for (const status of [408, 429, 502, 503, 504]) expect(outcome(answer(status))).toMatchObject({ ok: false, kind: 'transient' });
    expect(outcome({ kind: 'error', error: Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }), timedOut: false })).toMatchObject({ ok: false, kind: 'transient' });
    expect(outcome({ kind: 'error', error: new Error('no answer'), timedOut: true })).toEqual({ ok: false, kind: 'transient', error: 'no answer within the export timeout (3000 ms; OTEL_EXPORTER_OTLP_TIMEOUT)' });
    // A 2xx whose body could not be read is delivered all the same, said so.
    for (const unread of ['too_large', 'timeout', 'cut'] as const) expect(outcome(answer(200, { unread }))).toMatchObject({ ok: true, unread: expect.stringMatching(/^HTTP 200 \(delivered\)/) });
  });
});

describe('SpoolingSpanExporter with the real OTLP HTTP delegate', () => {
  let sink: OtlpSink;
  beforeEach(async () => {
    sink = await startOtlpSink();
  });
  afterEach(async () => {
    await sink.close();
  });
  // The delegate's own retries end within this timeout; the spool then takes over.
  const target = (encoding: Encoding) =>
    resolveOtelEnv({ OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: '300' }, { otlpEndpoint: sink.url, otlpProtocol: encoding === 'json' ? 'http/json' : 'http/protobuf' }).traces;

  for (const encoding of ['protobuf', 'json'] as const) {
    it(`${encoding}: acknowledges at once during a 503 outage, then delivers every span in order, counted`, async () => {
      const stats = newStats(0);
      const lines: string[] = [];
      const log = createLogger('warn', (l) => lines.push(l));
      const exporter = new SpoolingSpanExporter(
        { target: target(encoding), maxBytes: 1_000_000, initialBackoffMs: 20, maxBackoffMs: 50 },
        stats,
        log,
      );
      sink.setStatus(503);
      const batch = new TraceBatch({ encoding, scope: { name: 't', version: '1' }, attributeValueLengthLimit: 1024 });
      const resource = prepareResource({ 'service.name': 'spool-test' });
      // Every push is taken at once, while the endpoint is down.
      for (let i = 0; i < 20; i++) {
        batch.add(resource, spanRecord(`op-${i}`));
        exporter.push(batch.take()!, 1);
      }
      expect(stats.spool.queuedSpans + stats.spans.exported).toBe(20);
      await until(() => stats.spool.retries >= 2, 'retries against 503');
      expect(sink.spans).toHaveLength(0);
      expect(stats.spool.queuedSpans).toBeGreaterThan(0);
      expect(stats.spans.exported + stats.spool.queuedSpans).toBe(20);
      expect(stats.lastExportError.traces?.message).toBeTruthy();

      sink.setStatus(200);
      await sink.waitFor(() => sink.spans.length === 20, 10_000);
      expect(sink.spans.map((s) => s.name)).toEqual(Array.from({ length: 20 }, (_, i) => `op-${i}`));
      expect(sink.errors).toEqual([]);
      expect(sink.requests.every((q) => q.encoding === encoding)).toBe(true);
      // The sink stores a request before the exporter has read its answer.
      await until(() => stats.spans.exported === 20, 'the last acknowledgement counted');
      expect([stats.spool.queuedSpans, stats.spool.queuedBytes, stats.spans.failed, stats.spans.dropped]).toEqual([0, 0, 0, 0]);
      expect(lines.some((l) => l.includes('OTLP endpoint unavailable; spans wait in the spool'))).toBe(true);
      await exporter.close();
    });
  }

  it('a batch the endpoint refuses with 400 is counted as failed, not retried for ever', async () => {
    const stats = newStats(0);
    const exporter = new SpoolingSpanExporter(
      { target: target('protobuf'), maxBytes: 1_000_000, initialBackoffMs: 20, maxBackoffMs: 50 },
      stats,
      createLogger('error', () => {}),
    );
    sink.setStatus(400);
    const batch = new TraceBatch({ encoding: 'protobuf', scope: { name: 't', version: '1' }, attributeValueLengthLimit: 1024 });
    batch.add(prepareResource({ 'service.name': 'spool-test' }), spanRecord('refused'));
    exporter.push(batch.take()!, 1);
    await until(() => stats.spans.failed === 1, 'the refusal');
    expect(sink.requests.filter((q) => q.status === 400)).toHaveLength(1);
    expect([stats.spans.exported, stats.spool.queuedSpans, stats.spool.retries]).toEqual([0, 0, 0]);
    await exporter.close();
  });
});

describe('partial success: the endpoint accepts a request but rejects some of it', () => {
  const spans = (encoding: Encoding, n: number): Uint8Array => {
    const batch = new TraceBatch({ encoding, scope: { name: 't', version: '1' }, attributeValueLengthLimit: 1024 });
    const resource = prepareResource({ 'service.name': 'partial-test' });
    for (let i = 0; i < n; i++) batch.add(resource, spanRecord(`op-${i}`));
    return batch.take()!;
  };
  const answer = { rejected: 2, message: 'span limit exceeded for tenant' };

  for (const protocol of ['http/protobuf', 'http/json', 'grpc'] as const) {
    it(`${protocol}: the rejected spans count as failed (not retried), the rest as exported, the message is the last export error`, async () => {
      const encoding: Encoding = protocol === 'http/json' ? 'json' : 'protobuf';
      const http = protocol === 'grpc' ? undefined : await startOtlpSink({ partial: ({ index }) => (index === 0 ? answer : undefined) });
      const grpc = protocol === 'grpc' ? await startOtlpGrpcSink() : undefined;
      let calls = 0;
      grpc?.setStatus(() => (calls++ === 0 ? { code: 0, partial: answer } : { code: 0 }));
      const endpoint = http?.url ?? `http://${grpc!.address}`;
      const stats = newStats(0);
      const lines: string[] = [];
      const exporter = new SpoolingSpanExporter(
        { target: resolveOtelEnv({}, { otlpEndpoint: endpoint, otlpProtocol: protocol }).traces, maxBytes: 1_000_000, initialBackoffMs: 20, maxBackoffMs: 50 },
        stats,
        createLogger('warn', (l) => lines.push(l)),
      );
      exporter.push(spans(encoding, 5), 5);
      exporter.push(spans(encoding, 3), 3);
      await until(() => stats.spans.exported + stats.spans.failed === 8, 'both answers counted');
      expect([stats.spans.exported, stats.spans.failed, stats.spool.retries]).toEqual([6, 2, 0]);
      expect(stats.lastExportError.traces?.message).toBe('partial success: 2 spans rejected: span limit exceeded for tenant');
      expect(lines.some((l) => l.includes('rejected part of an export'))).toBe(true);
      // What the endpoint kept: the first request less its last two, and the second.
      const names = (http?.spans ?? grpc!.spans).map((x) => x.name);
      expect(names).toEqual(['op-0', 'op-1', 'op-2', 'op-0', 'op-1', 'op-2']);
      await exporter.close();
      await http?.close();
      await grpc?.close();
    });
  }

  it('metrics: the export succeeded, the rejected data points are counted apart', async () => {
    const sink = await startOtlpSink({ partial: () => ({ rejected: 7, message: 'cardinality limit' }) });
    const stats = newStats(0);
    const exporter = new SpoolingMetricExporter(
      { target: resolveOtelEnv({}, { otlpEndpoint: sink.url, otlpProtocol: 'http/protobuf' }).metrics, maxBytes: 1_000_000 },
      stats,
      createLogger('error', () => {}),
    );
    await new Promise<void>((resolve) => exporter.export(gauge(10), () => resolve()));
    await until(() => stats.metricExports.succeeded === 1, 'the answer counted');
    expect([stats.metricExports.failed, stats.metricPoints.rejected]).toEqual([0, 7]);
    expect(stats.lastExportError.metrics?.message).toBe('partial success: 7 data points rejected: cardinality limit');
    await exporter.close();
    await sink.close();
  });

  // An endpoint's count is clamped to what the request carried: a negative int64 (1.8e19 when read unsigned) or more than was sent.
  for (const protocol of ['http/protobuf', 'http/json', 'grpc'] as const) {
    it(`${protocol}: a negative or too large rejected count from the endpoint counts 0 or what was sent, never more`, async () => {
      const encoding: Encoding = protocol === 'http/json' ? 'json' : 'protobuf';
      const answers = [
        { rejected: -1, message: 'negative' },
        { rejected: 1e15, message: 'too many' },
        { rejected: -1, message: 'negative' },
        { rejected: 1e15, message: 'too many' },
      ];
      const answerFor = (index: number) => answers[index];
      const http = protocol === 'grpc' ? undefined : await startOtlpSink({ partial: ({ index }) => answerFor(index) });
      const grpc = protocol === 'grpc' ? await startOtlpGrpcSink() : undefined;
      let calls = 0;
      grpc?.setStatus(() => ({ code: 0, partial: answerFor(calls++)! }));
      const endpoint = http?.url ?? `http://${grpc!.address}`;
      const stats = newStats(0);
      const lines: string[] = [];
      const log = createLogger('warn', (l) => lines.push(l));
      const target = resolveOtelEnv({}, { otlpEndpoint: endpoint, otlpProtocol: protocol });
      const spanExporter = new SpoolingSpanExporter({ target: target.traces, maxBytes: 1_000_000, initialBackoffMs: 20, maxBackoffMs: 50 }, stats, log);
      spanExporter.push(spans(encoding, 5), 5);
      spanExporter.push(spans(encoding, 3), 3);
      await until(() => stats.spans.exported + stats.spans.failed === 8, 'both span answers counted');
      // -1: nothing rejected (the sink kept all 5); 10^15 of 3: the 3 sent.
      expect([stats.spans.exported, stats.spans.failed]).toEqual([5, 3]);
      await spanExporter.close();
      const metricExporter = new SpoolingMetricExporter({ target: target.metrics, maxBytes: 1_000_000, initialBackoffMs: 20, maxBackoffMs: 50 }, stats, log);
      for (const points of [4, 6]) await new Promise<void>((resolve) => metricExporter.export(gauge(points), () => resolve()));
      await until(() => stats.metricExports.succeeded === 2, 'both metric answers counted');
      expect(stats.metricPoints.rejected).toBe(6);
      expect(lines.join('\n')).not.toMatch(/e\+1|1844674407/);
      await metricExporter.close();
      await http?.close();
      await grpc?.close();
    });
  }

  it('a response that says nothing, or cannot be read, is a plain success', () => {
    const none = { body: new Uint8Array(0), items: 0 };
    expect(partialSuccessOf('traces', 'protobuf', new Uint8Array(0), none)).toBeUndefined();
    expect(partialSuccessOf('traces', 'json', Buffer.from('{}'), none)).toBeUndefined();
    expect(partialSuccessOf('traces', 'json', Buffer.from('<html>proxy</html>'), none)).toBeUndefined();
    expect(partialSuccessOf('traces', 'protobuf', Buffer.from([0x0a, 0x05, 0x08]), none)).toBeUndefined();
    const fivePoints = { body: Buffer.from(JSON.stringify({ resourceMetrics: [{ scopeMetrics: [{ metrics: [{ sum: { dataPoints: [{}, {}, {}] } }, { gauge: { dataPoints: [{}, {}] } }] }] }] })), items: 1 };
    expect(partialSuccessOf('metrics', 'json', Buffer.from('{"partialSuccess":{"rejectedDataPoints":"4","errorMessage":"x"}}'), fivePoints)).toEqual({ rejected: 4, message: 'x' });
    expect(partialSuccessOf('metrics', 'json', Buffer.from('{"partialSuccess":{"rejectedDataPoints":"18446744073709551615","errorMessage":"x"}}'), fivePoints)).toEqual({ rejected: 5, message: 'x' });
    expect(partialSuccessOf('traces', 'json', Buffer.from('{"partialSuccess":{"rejectedSpans":"-3","errorMessage":"x"}}'), { body: new Uint8Array(0), items: 2 })).toEqual({ rejected: 0, message: 'x' });
    // A warning with nothing rejected.
    expect(partialSuccessOf('traces', 'json', Buffer.from('{"partialSuccess":{"errorMessage":"slow down"}}'), none)).toEqual({ rejected: 0, message: 'slow down' });
  });
});

/** One metric collection: a gauge with `points` data points. */
function gauge(points: number): ResourceMetrics {
  return {
    resource: resourceFromAttributes({ 'service.name': 'partial-test' }),
    scopeMetrics: [
      {
        scope: { name: 't' },
        metrics: [
          {
            descriptor: { name: 'g', description: '', unit: '1', valueType: ValueType.INT },
            aggregationTemporality: AggregationTemporality.CUMULATIVE,
            dataPointType: DataPointType.GAUGE,
            dataPoints: Array.from({ length: points }, (_, i) => ({ startTime: [1, 0] as [number, number], endTime: [2, 0] as [number, number], attributes: { i }, value: i })),
          },
        ],
      },
    ],
  };
}

function spanRecord(name: string): SpanRecord {
  const now = Date.now();
  return { name, kind: 'client', startMs: now, endMs: now + 1, attributes: {}, status: { code: 'unset' }, events: [], children: [] };
}
