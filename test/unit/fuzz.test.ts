/**
 * Bad input, property-based (fast-check): the decoder and the in-process
 * pipeline (decode → Correlator → translate) on random bytes and on real
 * captured datagrams that were truncated, bit-flipped or had fields replaced
 * by wrong types, huge values, deep nesting, `__proto__` keys, far-away
 * timestamps... Every run is seeded by fast-check and replayable from the
 * failure message.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG } from '../../src/config/schema.js';
import { Correlator } from '../../src/correlate/correlator.js';
import type { Correlated } from '../../src/correlate/types.js';
import { decodeDatagram, MAX_LATENCY_MS, MAX_TIMESTAMP_MS } from '../../src/decode/decoder.js';
import type { CsmAttempt, CsmEvent, DecodeResult, RejectReason } from '../../src/decode/types.js';
import { createLogger, MAX_LIMITED_KEYS } from '../../src/log.js';
import { bindPolicyError, isLoopbackHost, parseCidr, SourceFilter } from '../../src/receive/source-filter.js';
import { Pipeline, pipelineOptions } from '../../src/pipeline.js';
import { newStats } from '../../src/stats.js';
import { translate } from '../../src/translate/translate.js';
import type { SpanRecord, Translation } from '../../src/translate/types.js';
import { DEFAULT_DECODER, parseSource, readCapture, scenarios } from '../helpers/captures.js';
import { apiCallAttempt } from '../helpers/events.js';

const REASONS: readonly RejectReason[] = ['oversize', 'malformed_json', 'not_object', 'unknown_type', 'missing_field', 'bad_field'];
/** The stages as users get them. */
const SHIPPED = pipelineOptions(DEFAULT_CONFIG, '');
const TRANSLATE = SHIPPED.translate;
const CORRELATOR = SHIPPED.correlator;
const SRC = { address: '127.0.0.1', port: 40000 };
const NOW = 1_795_462_780_000;
/** 2^64 ns in ms: OTLP times are fixed64 nanoseconds. */
const MAX_OTLP_MS = 18_446_744_073_709;

/** Every real datagram of every capture, as sent. */
const REAL = scenarios().flatMap((s) => readCapture(s).map((l) => l.raw));
const REAL_OBJECTS = REAL.map((r) => JSON.parse(r) as Record<string, unknown>);
const FIELDS = [...new Set(REAL_OBJECTS.flatMap((o) => Object.keys(o)))];

function decode(bytes: Buffer, receivedAt = NOW): DecodeResult {
  return decodeDatagram(bytes, SRC, receivedAt, DEFAULT_DECODER);
}

// ------------------------------------------------------------ generators

const hugeString = fc.integer({ min: 1_000, max: 60_000 }).map((n) => 'Ω\u001b'.repeat(n >> 1));
const YEAR_MS = 365.25 * 24 * 3600 * 1000;
const weirdNumber = fc.oneof(
  fc.double(),
  fc.integer(),
  fc.constantFrom(0, -0, -1, 1e308, -1e308, 5e-324, Number.MAX_SAFE_INTEGER, 2 ** 63, 2 ** 64, 1e21, MAX_TIMESTAMP_MS + 1, MAX_LATENCY_MS + 1),
  fc.integer({ min: -300, max: 300 }).map((years) => Math.round(NOW + years * YEAR_MS)),
);
const nested: fc.Arbitrary<unknown> = fc.integer({ min: 1, max: 3_000 }).map((depth) => {
  let v: unknown = 1;
  for (let i = 0; i < depth; i++) v = i % 2 ? [v] : { a: v };
  return v;
});
const weirdValue: fc.Arbitrary<unknown> = fc.oneof(
  weirdNumber,
  fc.string(),
  fc.string({ unit: 'binary' }),
  hugeString,
  fc.constantFrom('NaN', 'Infinity', '-1', '', ' ', 'ApiCall', 'ApiCallAttempt', '\u001b[2J\u001b[31m', null, true, false, [], {}),
  nested,
  fc.jsonValue({ maxDepth: 3 }),
);
const weirdKey = fc.oneof(fc.constantFrom(...FIELDS), fc.constantFrom('__proto__', 'constructor', 'prototype', 'SessionToken', 'Version', 'Type'), fc.string());

/** A real datagram with 1-4 fields set to odd values (or deleted), serialised with literals JSON.stringify cannot write. */
const mutatedReal = fc
  .record({
    base: fc.constantFrom(...REAL_OBJECTS),
    edits: fc.array(fc.tuple(weirdKey, fc.option(weirdValue, { nil: undefined })), { minLength: 1, maxLength: 4 }),
    literal: fc.constantFrom('', '1e309', '-1e309', 'NaN', '00', '1.0e400'),
  })
  .map(({ base, edits, literal }) => {
    const o: Record<string, unknown> = { ...base };
    let rawKey: string | undefined;
    for (const [k, v] of edits) {
      if (k === '__proto__') rawKey = k; // JSON.stringify cannot write an own __proto__: spliced in below
      else if (v === undefined) delete o[k];
      else o[k] = v;
    }
    let text = JSON.stringify(o);
    if (rawKey) text = `{"__proto__":{"Type":"ApiCall","Service":"S3"},${text.slice(1)}`;
    if (literal) text = text.replace(/"(Latency|AttemptLatency|Timestamp)":[^,}]*/, `"$1":${literal}`);
    return Buffer.from(text, 'utf8');
  });

/** A real datagram truncated, bit-flipped or with bytes overwritten. */
const damagedReal = fc
  .record({
    base: fc.constantFrom(...REAL),
    op: fc.constantFrom('truncate', 'flip', 'overwrite'),
    at: fc.nat(),
    bit: fc.integer({ min: 0, max: 7 }),
    junk: fc.uint8Array({ minLength: 1, maxLength: 16 }),
  })
  .map(({ base, op, at, bit, junk }) => {
    const b = Buffer.from(base, 'utf8');
    const i = at % b.length;
    if (op === 'truncate') return b.subarray(0, i);
    if (op === 'flip') {
      b[i] = b[i]! ^ (1 << bit);
      return b;
    }
    Buffer.from(junk).copy(b, i);
    return b;
  });

const randomBytes = fc.oneof(
  fc.uint8Array({ maxLength: 512 }).map((a) => Buffer.from(a)),
  fc.constantFrom(Buffer.alloc(0), Buffer.alloc(65_507, 0x7b), Buffer.alloc(65_535, 0x20), Buffer.alloc(70_000, 0x41)),
  fc.string({ unit: 'binary', maxLength: 300 }).map((s) => Buffer.from(s, 'utf8')),
  fc.jsonValue({ maxDepth: 4 }).map((v) => Buffer.from(JSON.stringify(v) ?? '', 'utf8')),
);

/** A 64 KiB datagram that is otherwise valid: padded with a huge unknown field. */
const bigValid = fc.record({ base: fc.constantFrom(...REAL_OBJECTS), size: fc.integer({ min: 60_000, max: 65_400 }) }).map(({ base, size }) => {
  const text = JSON.stringify({ ...base, Padding: '' });
  return Buffer.from(text.replace('"Padding":""', `"Padding":"${'p'.repeat(size - text.length)}"`), 'utf8');
});

const anyDatagram = fc.oneof(randomBytes, mutatedReal, damagedReal, bigValid);

// ------------------------------------------------------------ invariants

function checkSpan(s: SpanRecord, path: string): void {
  for (const [k, t] of [['startMs', s.startMs], ['endMs', s.endMs]] as const) {
    if (!Number.isFinite(t) || t < 0 || t > MAX_OTLP_MS) throw new Error(`${path}.${k} = ${t}`);
  }
  if (s.endMs < s.startMs) throw new Error(`${path}: end ${s.endMs} < start ${s.startMs}`);
  for (const e of s.events) if (!(e.timeMs >= s.startMs && e.timeMs <= s.endMs)) throw new Error(`${path}: event at ${e.timeMs}`);
  for (const [k, v] of Object.entries(s.attributes)) {
    if (typeof v === 'number' && Number.isInteger(v) && !Number.isSafeInteger(v)) throw new Error(`${path}.${k}: int ${v} not safe`);
    if (typeof v === 'number' && !Number.isFinite(v)) throw new Error(`${path}.${k}: ${v}`);
  }
  if (s.name.length > 600) throw new Error(`${path}: name of ${s.name.length} chars`);
  s.children.forEach((c, i) => {
    if (c.startMs < s.startMs || c.endMs > s.endMs) throw new Error(`${path}.children[${i}] outside its parent`);
    checkSpan(c, `${path}.children[${i}]`);
  });
}

function checkTranslation(t: Translation): void {
  checkSpan(t.span, t.span.name.slice(0, 40));
  for (const m of t.metrics) if (!Number.isFinite(m.value) || m.value < 0) throw new Error(`${m.instrument} = ${m.value}`);
}

/** Decoded events translate into exportable spans alone (orphan) and under a synthetic call. */
function checkEvent(e: CsmEvent): void {
  if (e.type === 'ApiCallAttempt') {
    checkTranslation(translate({ kind: 'orphan', attempt: e, reason: 'ttl_expired' }, TRANSLATE));
  } else {
    checkTranslation(translate({ kind: 'call', call: e, attempts: [], missingAttempts: e.attemptCount ?? 0 }, TRANSLATE));
  }
}

describe('fuzz: decodeDatagram', () => {
  it('never throws; rejects carry a known reason and a short value-free detail; accepted events translate into valid spans', () => {
    fc.assert(
      fc.property(anyDatagram, (bytes) => {
        const r = decode(bytes);
        // The fast-path validator and the zod reference agree on every input.
        const ref = decodeDatagram(bytes, SRC, NOW, DEFAULT_DECODER, 'zod');
        expect(r.ok ? 'ok' : r.reason).toBe(ref.ok ? 'ok' : ref.reason);
        if (r.ok) checkEvent(r.event);
        else {
          expect(REASONS).toContain(r.reason);
          expect(r.detail.length).toBeLessThan(200);
        }
      }),
      { numRuns: 3_000 },
    );
  });

  it('rejects exactly what it must, by reason', () => {
    const base = { Version: 1, Type: 'ApiCallAttempt', Service: 'S3', Api: 'GetObject', Timestamp: NOW, AttemptLatency: 5 };
    const reason = (o: unknown) => {
      const r = decode(Buffer.from(typeof o === 'string' ? o : JSON.stringify(o)));
      return r.ok ? 'ok' : r.reason;
    };
    expect(reason('')).toBe('malformed_json');
    expect(reason(Buffer.alloc(65_536).toString())).toBe('oversize');
    expect(reason({ ...base, Type: 'ApiCallAttempt\u001b' })).toBe('unknown_type');
    expect(reason({ ...base, Version: 2 })).toBe('bad_field');
    expect(reason({ ...base, Version: '1' })).toBe('bad_field');
    expect(reason(JSON.stringify(base).replace('"AttemptLatency":5', '"AttemptLatency":1e309'))).toBe('bad_field');
    expect(reason({ ...base, AttemptLatency: -1 })).toBe('bad_field');
    expect(reason({ ...base, AttemptLatency: MAX_LATENCY_MS + 1 })).toBe('bad_field');
    expect(reason({ ...base, Timestamp: MAX_TIMESTAMP_MS + 1 })).toBe('bad_field');
    expect(reason({ ...base, Timestamp: NOW + 200 * YEAR_MS })).toBe('ok'); // 2256: far, still exportable
    expect(reason({ ...base, Timestamp: 3 })).toBe('ok'); // 1970: a broken clock, still a valid time
    expect(reason({ ...base, Service: 'S'.repeat(257) })).toBe('bad_field');
    expect(reason({ ...base, ClientId: 'c'.repeat(257) })).toBe('bad_field');
    expect(reason({ ...base, HttpStatusCode: 1e300 })).toBe('bad_field');
    expect(reason({ ...base, Type: 'ApiCall', AttemptCount: 1e300 })).toBe('bad_field');
    // Go v1 stamps the end: an end before its own latency would start before 1970.
    expect(reason({ ...base, UserAgent: 'aws-sdk-go/1.55.0', Timestamp: 10, AttemptLatency: 20 })).toBe('bad_field');
    expect(reason(`{"__proto__":{"Type":"ApiCall"},"Service":"S3","Api":"X","Timestamp":1}`)).toBe('unknown_type');
    expect(reason({ ...base, constructor: { prototype: 1 }, toString: 5 })).toBe('ok');
  });

  it('a 1970 timestamp stays in 1970 and a far-future one stays far: no span is moved or inverted', () => {
    for (const ts of [3, 1_000, NOW, NOW + 200 * YEAR_MS]) {
      const r = decode(Buffer.from(JSON.stringify({ Type: 'ApiCallAttempt', Service: 'S3', Api: 'X', Timestamp: ts, AttemptLatency: 7 })));
      expect(r.ok).toBe(true);
      if (!r.ok || r.event.type !== 'ApiCallAttempt') continue;
      const t = translate({ kind: 'orphan', attempt: r.event, reason: 'ttl_expired' }, TRANSLATE);
      expect([t.span.startMs, t.span.endMs]).toEqual([ts, ts + 7]);
    }
  });
});

// ------------------------------------------------------------ pipeline

interface Run {
  rejected: Record<RejectReason, number>;
  accepted: number;
  out: Correlated[];
}

/** The bridge's Pipeline (decode → correlate → translate) on `stream`, with receive times 1 ms apart. */
function pipeline(stream: { bytes: Buffer; src: { address: string; port: number } }[], correlator = CORRELATOR): Run {
  const out: Correlated[] = [];
  const stats = newStats(NOW);
  const p = new Pipeline(
    { ...SHIPPED, correlator },
    {
      write: (c, t) => {
        checkTranslation(t);
        out.push(c);
      },
    },
    stats,
    createLogger('error', () => {}),
  );
  let t = NOW;
  for (const d of stream) {
    t += 1;
    p.ingest(d.bytes, d.src, t);
    if (t % 100 === 0) p.expire(t);
  }
  p.expire(t + 10_000_000);
  p.flush();
  expect(p.pending.groups).toBe(0);
  expect(stats.internalErrors).toBe(0);
  return { rejected: stats.datagrams.rejected, accepted: stats.datagrams.accepted, out };
}

/** One capture as sent, with its real sources, in capture order. */
function captureStream(scenario: string) {
  return readCapture(scenario).map((l) => ({ bytes: Buffer.from(l.raw, 'utf8'), src: parseSource(l.src) }));
}

/** A stable description of the correlated output: which datagram went where. */
function shape(out: Correlated[]): string[] {
  const id = (e: CsmEvent) => `${e.type}@${e.timestamp}/${e.source.port}/${'xAmznRequestId' in e ? e.xAmznRequestId : ''}`;
  return out.map((c) => (c.kind === 'call' ? `call ${id(c.call)} [${c.attempts.map(id).join(' ')}] -${c.missingAttempts}` : `orphan ${id(c.attempt)} ${c.reason}`)).sort();
}

/** Garbage that is rejected for sure (so the valid stream around it must come out unchanged). */
const rejectedGarbage = fc.oneof(
  randomBytes.filter((b) => !decode(b).ok),
  damagedReal.filter((b) => !decode(b).ok),
  mutatedReal.filter((b) => !decode(b).ok),
);

describe('fuzz: the pipeline decode → correlate → translate', () => {
  it('valid datagrams interleaved with garbage come out exactly as without it; every reject is counted by reason', () => {
    const names = scenarios();
    const clean = new Map(names.map((s) => [s, shape(pipeline(captureStream(s)).out)]));
    fc.assert(
      fc.property(
        fc.constantFrom(...names),
        fc.array(fc.tuple(fc.nat(), rejectedGarbage), { maxLength: 60 }),
        (scenario, garbage) => {
          const stream = captureStream(scenario);
          const valid = stream.length;
          // Insert garbage at random positions (from random sources, including the real ones).
          for (const [at, bytes] of garbage) stream.splice(at % (stream.length + 1), 0, { bytes, src: { address: '127.0.0.1', port: 1 + (at % 65535) } });
          const run = pipeline(stream);
          const rejected = Object.values(run.rejected).reduce((a, b) => a + b, 0);
          expect(rejected).toBe(garbage.length);
          expect(run.accepted).toBe(valid);
          expect(run.accepted + rejected).toBe(stream.length);
          expect(shape(run.out)).toEqual(clean.get(scenario));
        },
      ),
      { numRuns: 60 },
    );
  });

  it('any stream at all: no exception, every datagram accounted once, every accepted event exported once', () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(anyDatagram, fc.constantFrom(...REAL).map((r) => Buffer.from(r))), { maxLength: 200 }), fc.integer({ min: 1, max: 50 }), (datagrams, maxPending) => {
        const run = pipeline(
          datagrams.map((bytes, i) => ({ bytes, src: { address: `10.0.${i % 3}.1`, port: 5000 + (i % 7) } })),
          { ...CORRELATOR, maxPending },
        );
        const rejected = Object.values(run.rejected).reduce((a, b) => a + b, 0);
        expect(run.accepted + rejected).toBe(datagrams.length);
        const exported = run.out.reduce((n, c) => n + (c.kind === 'call' ? 1 + c.attempts.length : 1), 0);
        expect(exported).toBe(run.accepted);
      }),
      { numRuns: 300 },
    );
  });
});

// ------------------------------------------------------------ bounded state

function attempt(i: number, over: Partial<CsmEvent> = {}): CsmEvent {
  return apiCallAttempt({
    clientId: `c${i}`, service: `Svc${i % 97}`, api: `Api${i}`, timestamp: NOW + i, attemptLatency: 3,
    source: { address: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, port: 1000 + (i % 50_000) }, receivedAt: NOW + i,
    ...(over as Partial<CsmAttempt>),
  });
}

describe('correlator state is bounded and freed', () => {
  it('100k distinct keys: never more than maxPending held, groups freed as they empty, every eviction reported', () => {
    let orphans = 0;
    let calls = 0;
    const c = new Correlator({ ...CORRELATOR, maxPending: 5_000 }, (x) => (x.kind === 'orphan' ? orphans++ : calls++));
    for (let i = 0; i < 100_000; i++) {
      // attempts that never get their call, and calls (Ruby: call first) that never get their attempts
      c.add(i % 4 === 0 ? { ...attempt(i), type: 'ApiCall', sdk: 'ruby-v3', attemptCount: 3, latency: 10 } as CsmEvent : attempt(i));
      if (i % 1000 === 0) expect(c.pendingAttempts + c.pendingCalls).toBeLessThanOrEqual(5_000);
    }
    expect(c.pendingGroups).toBeLessThanOrEqual(5_000);
    expect(orphans + calls + c.pendingAttempts + c.pendingCalls).toBe(100_000);
    const shed = c.shedOldest(2_000);
    expect(shed.attempts + shed.calls).toBe(2_000);
    expect(c.pendingAttempts + c.pendingCalls).toBe(3_000);
    c.expire(NOW + 10_000_000);
    expect([c.pendingAttempts, c.pendingCalls, c.pendingGroups]).toEqual([0, 0, 0]);
    expect(orphans + calls).toBe(100_000);
  });

  it('shedOldest sheds oldest first and frees emptied groups', () => {
    const seen: number[] = [];
    const c = new Correlator(CORRELATOR, (x) => seen.push(x.kind === 'orphan' ? x.attempt.receivedAt : x.call.receivedAt));
    for (let i = 0; i < 100; i++) c.add(attempt(i % 10 === 0 ? i : i, { clientId: 'same', service: 'S3', api: 'Get', source: { address: '1.1.1.1', port: 1 } }));
    expect(c.pendingGroups).toBe(1);
    expect(c.shedOldest(30)).toEqual({ attempts: 30, calls: 0 });
    expect(seen).toEqual(Array.from({ length: 30 }, (_, i) => NOW + i));
    c.shedOldest(1_000);
    expect([c.pendingAttempts, c.pendingGroups]).toEqual([0, 0]);
  });

  it('groups are freed on every path: matched, expired, capped, flushed (random streams)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ call: fc.boolean(), key: fc.integer({ min: 0, max: 5 }), dt: fc.integer({ min: 0, max: 50 }), ruby: fc.boolean(), count: fc.integer({ min: 0, max: 3 }) }), { maxLength: 300 }),
        fc.integer({ min: 1, max: 40 }),
        (steps, maxPending) => {
          const c = new Correlator({ ...CORRELATOR, maxPending, attemptHoldMs: 500, callHoldMs: 200 }, () => {});
          let t = NOW;
          for (const s of steps) {
            t += s.dt;
            const base = attempt(s.key, { receivedAt: t, timestamp: t, sdk: s.ruby ? 'ruby-v3' : 'js-v2', source: { address: '1.1.1.1', port: 1 } });
            c.add(s.call ? ({ ...base, type: 'ApiCall', attemptCount: s.count, latency: 20 } as CsmEvent) : base);
            c.expire(t);
            expect(c.pendingGroups).toBeLessThanOrEqual(c.pendingAttempts + c.pendingCalls);
          }
          c.expire(t + 1_000);
          expect([c.pendingAttempts, c.pendingCalls, c.pendingGroups]).toEqual([0, 0, 0]);
        },
      ),
      { numRuns: 300 },
    );
  });
});

// ------------------------------------------------------------ logs

// C0 controls (except none: JSON escapes them all), DEL, C1, line separators, bidi controls.
// eslint-disable-next-line no-control-regex
const RAW_UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/;

describe('logs', () => {
  it('a logged value with any characters comes out as one line, no raw control or terminal escape, same value when parsed', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 200 }), fc.string({ unit: fc.integer({ min: 0, max: 0x2100 }).map((c) => String.fromCharCode(c)), maxLength: 100 }), (a, b) => {
        const lines: string[] = [];
        const log = createLogger('debug', (l) => lines.push(l), 10_000, () => 0);
        log.warn(`m${a}`, { detail: b, [b]: a });
        expect(lines).toHaveLength(1);
        const line = lines[0]!;
        expect(line.endsWith('\n')).toBe(true);
        expect(line.slice(0, -1)).not.toMatch(RAW_UNSAFE);
        const parsed = JSON.parse(line) as Record<string, unknown>;
        expect(parsed['msg']).toBe(`m${a}`);
        expect(parsed['detail']).toBe(b);
      }),
      { numRuns: 500 },
    );
  });

  it('warnLimited forgets the oldest key beyond its cap (bounded), and still rate-limits each key', () => {
    const lines: string[] = [];
    let now = 0;
    const log = createLogger('info', (l) => lines.push(l), 10_000, () => now);
    log.warnLimited('k0', 'x');
    log.warnLimited('k0', 'x');
    expect(lines).toHaveLength(1);
    for (let i = 1; i <= MAX_LIMITED_KEYS; i++) log.warnLimited(`k${i}`, 'x');
    expect(lines).toHaveLength(1 + MAX_LIMITED_KEYS);
    log.warnLimited('k0', 'x'); // forgotten: logs again (at worst one extra line per interval)
    log.warnLimited(`k${MAX_LIMITED_KEYS}`, 'x'); // still remembered: suppressed
    expect(lines).toHaveLength(2 + MAX_LIMITED_KEYS);
    now = 20_000;
    log.warnLimited(`k${MAX_LIMITED_KEYS}`, 'x');
    expect(JSON.parse(lines.at(-1)!)).toMatchObject({ suppressedSinceLast: 1 });
  });
});

// ------------------------------------------------------------ source filter

const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255));
const v4text = (a: readonly number[]) => a.join('.');
const v4int = (a: readonly number[]) => ((a[0]! << 24) | (a[1]! << 16) | (a[2]! << 8) | a[3]!) >>> 0;

describe('source allow-list', () => {
  it('IPv4 CIDR membership matches the bit arithmetic, also for IPv4-mapped IPv6 senders', () => {
    fc.assert(
      fc.property(ipv4, fc.integer({ min: 0, max: 32 }), ipv4, (net, prefix, addr) => {
        const f = new SourceFilter([`${v4text(net)}/${prefix}`]);
        const mask = prefix === 0 ? 0 : (~0 << (32 - prefix)) >>> 0;
        const want = ((v4int(net) & mask) >>> 0) === ((v4int(addr) & mask) >>> 0);
        expect(f.allows(v4text(addr))).toBe(want);
        expect(f.allows(`::ffff:${v4text(addr)}`)).toBe(want);
      }),
      { numRuns: 2_000 },
    );
  });

  it('IPv6 CIDRs, bare addresses, and garbage refused by the parser', () => {
    const f = new SourceFilter(['fd00::/8', '2001:db8::1', '127.0.0.2/32']);
    expect(f.allows('fd12:3456::1')).toBe(true);
    expect(f.allows('fe80::1%eth0')).toBe(false);
    expect(f.allows('2001:db8::1')).toBe(true);
    expect(f.allows('2001:db8::2')).toBe(false);
    expect(f.allows('127.0.0.2')).toBe(true);
    expect(f.allows('127.0.0.1')).toBe(false);
    for (const bad of ['', '10.0.0.0/33', '::/129', '10.0.0/8', 'localhost', '10.0.0.0/-1', '10.0.0.0/8/8', '1.2.3.4/ 8']) expect(parseCidr(bad), bad).toBeUndefined();
    expect(parseCidr('::ffff:10.0.0.0/104')).toEqual({ family: 'ipv4', address: '10.0.0.0', prefix: 8 });
  });

  it('a non-loopback listen address needs --allow-source or --allow-any-source', () => {
    for (const h of ['127.0.0.1', '127.9.9.9', '[::1]', 'localhost', '[::ffff:127.0.0.1]']) expect(isLoopbackHost(h), h).toBe(true);
    for (const h of ['0.0.0.0', '[::]', '10.0.0.5', '[fd00::1]', 'myhost', '128.0.0.1']) expect(isLoopbackHost(h), h).toBe(false);
    expect(bindPolicyError(['127.0.0.1:31000', '[::1]:31000'], [], false)).toBeUndefined();
    expect(bindPolicyError(['0.0.0.0:31000'], [], false)).toMatch(/refusing to listen on non-loopback UDP address 0\.0\.0\.0:31000.*--allow-source.*--allow-any-source/);
    expect(bindPolicyError(['0.0.0.0:31000'], ['10.0.0.0/8'], false)).toBeUndefined();
    expect(bindPolicyError(['[::]:31000'], [], true)).toBeUndefined();
  });
});
