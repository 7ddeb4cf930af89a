import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Tracer } from '@opentelemetry/api';
import { millisToHrTime } from '@opentelemetry/core';
import { JsonTraceSerializer, ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes, type Resource } from '@opentelemetry/resources';
import { BasicTracerProvider, type IdGenerator, type ReadableSpan, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import fc from 'fast-check';
import type protobuf from 'protobufjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CsmApiCall, CsmAttempt, CsmEvent } from '../../src/decode/types.js';
import { prepareResource, TraceBatch, type PreparedResource, type TraceBatchOptions } from '../../src/export/trace-batch.js';
import { translate, type TranslateOptions } from '../../src/translate/translate.js';
import type { Attributes, SpanRecord } from '../../src/translate/types.js';
import { decodeCapture, readTruth, scenarios } from '../helpers/captures.js';
import { decodeOtlpTraces, loadOtlpProtoRoot, startOtlpSink, type OtlpSink } from '../helpers/otlp-sink.js';

// ---------------------------------------------------------------------------
// Reference: the SDK path otel-exporter.ts took before TraceBatch (startSpan / addEvent /
// setStatus / end with the same ids, then otlp-transformer's serializers).

const SCOPE = { name: 'aws-csm-bridge', version: '0.1.0' };
const LIMIT = 1024;

interface Res {
  sdk: Resource;
  prepared: PreparedResource;
}

function makeRes(attrs: Record<string, unknown>, schemaUrl?: string): Res {
  const sdk = resourceFromAttributes(attrs as Attributes, schemaUrl === undefined ? undefined : { schemaUrl });
  return { sdk, prepared: prepareResource(sdk.attributes, sdk.schemaUrl) };
}

/** Ids of one tree as TraceBatch assigned them. */
interface TreeIds {
  traceId: string;
  rootSpanId: string;
  childSpanIds: string[];
}

class QueueIds implements IdGenerator {
  traceIds: string[] = [];
  spanIds: string[] = [];
  generateTraceId(): string {
    const id = this.traceIds.shift();
    if (id === undefined) throw new Error('no trace id queued');
    return id;
  }
  generateSpanId(): string {
    const id = this.spanIds.shift();
    if (id === undefined) throw new Error('no span id queued');
    return id;
  }
}

const hr = (ms: number) => millisToHrTime(ms);
const kindOf = (s: SpanRecord) => (s.kind === 'internal' ? SpanKind.INTERNAL : SpanKind.CLIENT);

function finish(span: ReturnType<Tracer['startSpan']>, rec: SpanRecord): void {
  for (const e of rec.events) span.addEvent(e.name, e.attributes, hr(e.timeMs));
  if (rec.status.code === 'error') {
    span.setStatus(rec.status.message ? { code: SpanStatusCode.ERROR, message: rec.status.message } : { code: SpanStatusCode.ERROR });
  }
  span.end(hr(rec.endMs));
}

/** What otel-exporter.ts write() did with a call's spans on the SDK path. */
function sdkWrite(tracer: Tracer, rec: SpanRecord): void {
  const root = tracer.startSpan(rec.name, { kind: kindOf(rec), startTime: hr(rec.startMs), attributes: rec.attributes }, ROOT_CONTEXT);
  const parentContext = trace.setSpan(ROOT_CONTEXT, root);
  for (const child of rec.children) {
    const span = tracer.startSpan(child.name, { kind: kindOf(child), startTime: hr(child.startMs), attributes: child.attributes }, parentContext);
    finish(span, child);
  }
  finish(root, rec);
}

function sdkSpans(entries: { res: Res; span: SpanRecord }[], ids: TreeIds[]): ReadableSpan[] {
  const ended: ReadableSpan[] = [];
  const collector: SpanProcessor = {
    onStart: () => {},
    onEnd: (s) => void ended.push(s),
    forceFlush: async () => {},
    shutdown: async () => {},
  };
  const gen = new QueueIds();
  const tracers = new Map<Res, Tracer>();
  entries.forEach(({ res, span }, i) => {
    let tracer = tracers.get(res);
    if (!tracer) {
      const provider = new BasicTracerProvider({
        resource: res.sdk,
        idGenerator: gen,
        spanLimits: { attributeValueLengthLimit: LIMIT },
        spanProcessors: [collector],
      });
      tracer = provider.getTracer(SCOPE.name, SCOPE.version);
      tracers.set(res, tracer);
    }
    const t = ids[i]!;
    gen.traceIds.push(t.traceId);
    gen.spanIds.push(t.rootSpanId, ...t.childSpanIds);
    sdkWrite(tracer, span);
  });
  return ended;
}

// ---------------------------------------------------------------------------
// TraceBatch side

/** Deterministic bytes (xorshift32), so two batches built with the same seed assign the same ids. */
function seededFill(seed: number): (b: Uint8Array) => void {
  let x = seed >>> 0 || 1;
  return (b) => {
    for (let i = 0; i < b.length; i++) {
      x ^= x << 13;
      x >>>= 0;
      x ^= x >>> 17;
      x ^= x << 5;
      x >>>= 0;
      b[i] = x & 0xff;
    }
  };
}

function batch(encoding: 'protobuf' | 'json', extra: Partial<TraceBatchOptions> = {}): TraceBatch {
  return new TraceBatch({ encoding, scope: SCOPE, attributeValueLengthLimit: LIMIT, ...extra });
}

const TRACE_REQUEST = 'opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest';
let requestType: protobuf.Type;

interface DecodedSpan {
  traceId: Uint8Array;
  spanId: Uint8Array;
  parentSpanId: Uint8Array;
}
interface DecodedRequest {
  resourceSpans: { scopeSpans: { spans: DecodedSpan[] }[] }[];
}

function decodeRaw(body: Uint8Array): DecodedRequest {
  return requestType.decode(body) as unknown as DecodedRequest;
}

function toObject(body: Uint8Array): unknown {
  return requestType.toObject(requestType.decode(body), { longs: String, enums: Number, bytes: String, defaults: true, arrays: true });
}

const hexOf = (b: Uint8Array) => Buffer.from(b).toString('hex');

/**
 * Ids per entry, read back from a TraceBatch protobuf body: resources come in
 * first-seen order, each tree as its children then its root.
 */
function idsFromBody(entries: { res: Res; span: SpanRecord }[], body: Uint8Array): TreeIds[] {
  const decoded = decodeRaw(body);
  const order: Res[] = [];
  for (const e of entries) if (!order.includes(e.res)) order.push(e.res);
  expect(decoded.resourceSpans.length).toBe(order.length);
  const out: TreeIds[] = new Array(entries.length);
  order.forEach((res, ri) => {
    const spans = decoded.resourceSpans[ri]!.scopeSpans[0]!.spans;
    let k = 0;
    entries.forEach((e, i) => {
      if (e.res !== res) return;
      const n = e.span.children.length;
      const children = spans.slice(k, k + n);
      const root = spans[k + n]!;
      k += n + 1;
      out[i] = { traceId: hexOf(root.traceId), rootSpanId: hexOf(root.spanId), childSpanIds: children.map((c) => hexOf(c.spanId)) };
    });
    expect(k).toBe(spans.length);
  });
  return out;
}

/** Encodes with TraceBatch (both encodings, same ids) and with the SDK; asserts they agree. */
function assertEquivalent(entries: { res: Res; span: SpanRecord }[], seed = 42): { proto: Uint8Array; json: Uint8Array } {
  const pb = batch('protobuf', { randomFill: seededFill(seed) });
  const js = batch('json', { randomFill: seededFill(seed) });
  let n = 0;
  for (const e of entries) {
    n += pb.add(e.res.prepared, e.span);
    js.add(e.res.prepared, e.span);
  }
  expect(pb.spans).toBe(n);
  expect(js.spans).toBe(n);
  const proto = pb.take()!;
  const json = js.take()!;
  const ids = idsFromBody(entries, proto);
  const spans = sdkSpans(entries, ids);
  expect(spans.length).toBe(n);

  const sdkProto = ProtobufTraceSerializer.serializeRequest(spans)!;
  // Decoded with the .proto definitions (readable diffs), then byte for byte.
  expect(toObject(proto)).toEqual(toObject(sdkProto));
  expect(Buffer.from(proto).equals(Buffer.from(sdkProto))).toBe(true);

  const sdkJson = JsonTraceSerializer.serializeRequest(spans)!;
  expect(JSON.parse(Buffer.from(json).toString('utf8'))).toEqual(JSON.parse(Buffer.from(sdkJson).toString('utf8')));
  expect(Buffer.from(json).toString('utf8')).toBe(Buffer.from(sdkJson).toString('utf8'));
  return { proto, json };
}

// ---------------------------------------------------------------------------
// Inputs

const OPTS: TranslateOptions[] = [
  { attemptSpanKind: 'client', rpcSemconv: 'old', jsInstrumentationKeys: false },
  { attemptSpanKind: 'internal', rpcSemconv: 'dup', jsInstrumentationKeys: true },
];

/** The span trees of every call and orphan attempt of the real captures, by client id. */
function captureTrees(opts: TranslateOptions): { clientId: string; span: SpanRecord }[] {
  const out: { clientId: string; span: SpanRecord }[] = [];
  for (const s of scenarios()) {
    const events = new Map<number, CsmEvent>(decodeCapture(s).map(({ line, event }) => [line, event]));
    for (const tc of readTruth(s)) {
      const attempts = tc.attempt_lines
        .map((l) => events.get(l))
        .filter((e): e is CsmAttempt => e?.type === 'ApiCallAttempt')
        .sort((x, y) => x.timestamp - y.timestamp);
      if (tc.api_call_line === null) {
        for (const a of attempts) {
          const t = translate({ kind: 'orphan', attempt: a, reason: 'ttl_expired' }, opts);
          out.push({ clientId: t.clientId, span: t.span });
        }
        continue;
      }
      const c = events.get(tc.api_call_line) as CsmApiCall | undefined;
      if (c?.type !== 'ApiCall') throw new Error(`${s}:${tc.api_call_line} is not an ApiCall`);
      const t = translate({ kind: 'call', call: c, attempts, missingAttempts: Math.max(0, (c.attemptCount ?? 0) - attempts.length) }, opts);
      out.push({ clientId: t.clientId, span: t.span });
    }
  }
  return out;
}

const BASE_RESOURCE = {
  'service.name': 'placeholder',
  'telemetry.sdk.language': 'nodejs',
  'telemetry.sdk.name': 'opentelemetry',
  'telemetry.sdk.version': '2.12.0',
};

function span(p: Partial<SpanRecord> = {}): SpanRecord {
  return {
    name: 'S3.ListBuckets',
    kind: 'client',
    startMs: 1_763_000_000_123.456,
    endMs: 1_763_000_000_456.789,
    attributes: { 'rpc.system': 'aws-api', 'rpc.service': 'S3', 'http.status_code': 200 },
    status: { code: 'unset' },
    events: [],
    children: [],
    ...p,
  };
}

// fast-check arbitraries
const unit = fc.oneof(
  { weight: 8, arbitrary: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)) },
  { weight: 2, arbitrary: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)) },
  { weight: 1, arbitrary: fc.constantFrom('é', '€', '😀', '\ud800', '\udfff', '\u0000', 'ß', '中') },
);
const str = fc.string({ unit, maxLength: 30 });
const longStr = fc
  .tuple(fc.string({ unit, minLength: 1, maxLength: 8 }), fc.integer({ min: 1000, max: 1100 }))
  .map(([s, n]) => s.repeat(Math.ceil(n / s.length)).slice(0, n));
const num = fc.oneof(
  fc.integer(),
  fc.double(),
  fc.maxSafeInteger(),
  fc.constantFrom(-0, 0, 2 ** 53, 2 ** 53 + 2, 2 ** 63, -(2 ** 63), 2 ** 63 - 1024, 2 ** 64, -(2 ** 64), 1e21, Number.MAX_VALUE, NaN, Infinity, -Infinity, 0.1, -1, -(2 ** 31), 2 ** 32, 2 ** 32 - 1, -(2 ** 32)),
);
const value = fc.oneof({ weight: 4, arbitrary: str }, { weight: 1, arbitrary: longStr }, { weight: 3, arbitrary: num }, { weight: 1, arbitrary: fc.boolean() });
const key = fc.oneof(fc.constantFrom('rpc.service', 'http.status_code', 'aws.request_id', '', '0', '10', 'constructor'), str).filter((k) => k !== '__proto__');
const attrs = fc.dictionary(key, value, { maxKeys: 10, noNullPrototype: true }) as fc.Arbitrary<Attributes>;
const time = fc.oneof(
  { weight: 6, arbitrary: fc.double({ min: 1.6e12, max: 1.9e12, noNaN: true }) },
  { weight: 2, arbitrary: fc.integer({ min: 1_600_000_000_000, max: 1_900_000_000_000 }) },
  { weight: 1, arbitrary: fc.constantFrom(0, -0, -1, -1500.5, 0.0004, 999.9999996, 1e15, 4_294_967_296_000.5, 1e13) },
);
const status = fc.oneof(
  fc.constant<SpanRecord['status']>({ code: 'unset' }),
  fc.constant<SpanRecord['status']>({ code: 'error' }),
  str.map((m): SpanRecord['status'] => ({ code: 'error', message: m })),
);
const event = fc.record({ name: str, timeMs: time, attributes: attrs });
const leaf = fc.record({
  name: fc.oneof(str, longStr),
  kind: fc.constantFrom<'client' | 'internal'>('client', 'internal'),
  startMs: time,
  endMs: time,
  attributes: attrs,
  status,
  events: fc.array(event, { maxLength: 3 }),
  children: fc.constant<SpanRecord[]>([]),
});
const tree = fc.tuple(leaf, fc.array(leaf, { maxLength: 4 })).map(([root, children]): SpanRecord => ({ ...root, children }));
const resourceSpec = fc.record({
  attrs: fc.dictionary(key.filter((k) => k !== ''), fc.oneof(str, fc.integer(), fc.boolean(), fc.double()), { maxKeys: 5, noNullPrototype: true }),
  schemaUrl: fc.option(str, { nil: undefined }),
});

// ---------------------------------------------------------------------------

beforeAll(() => {
  requestType = loadOtlpProtoRoot().lookupType(TRACE_REQUEST);
});

describe('TraceBatch: same bytes as the SDK path', () => {
  it('every call and orphan attempt of the real captures, several resources, both kinds of attempt span', () => {
    for (const opts of OPTS) {
      const trees = captureTrees(opts);
      expect(trees.length).toBeGreaterThan(20);
      const byClient = new Map<string, Res>();
      const entries = trees.map(({ clientId, span }) => {
        let res = byClient.get(clientId);
        if (!res) {
          res = makeRes({ ...BASE_RESOURCE, 'service.name': clientId || 'aws-csm', 'process.pid': 1000 + byClient.size });
          byClient.set(clientId, res);
        }
        return { res, span };
      });
      // More than one resource even if the captures share a client id.
      const extra = makeRes({ ...BASE_RESOURCE, 'service.name': 'other', 'process.command_line': 'aws s3 ls' }, 'https://opentelemetry.io/schemas/1.30.0');
      entries.splice(3, 0, ...entries.slice(0, 5).map((e) => ({ res: extra, span: e.span })));
      assertEquivalent(entries);
    }
  });

  it('edge cases: events, error status with and without message, long strings, non-ASCII, lone surrogates, numbers', () => {
    const res1 = makeRes({ ...BASE_RESOURCE, 'service.name': 'a' });
    const res2 = makeRes({ 'service.name': 'b€😀', 'process.pid': 4242, x: 1.5, y: true }, 'https://example.com/schema');
    const long = 'x'.repeat(LIMIT - 1) + '😀' + 'y'.repeat(500); // truncation splits the surrogate pair
    const spans: SpanRecord[] = [
      span({
        status: { code: 'error', message: 'AccessDenied: nope — ünïcödé \ud800' },
        attributes: {
          s: long,
          exact: 'z'.repeat(LIMIT),
          over: 'z'.repeat(LIMIT + 1),
          nonAscii: 'Grüße 中文 😀',
          lone: 'a\udc00b\ud800',
          int: 42,
          neg: -7,
          negZero: -0,
          big: 2 ** 53 + 2,
          huge: 2 ** 63,
          int64min: -(2 ** 63),
          dbl: 0.25,
          nan: NaN,
          inf: -Infinity,
          yes: true,
          no: false,
          '': 'empty key is dropped',
          '😀key': 'v',
        },
        events: [
          { name: 'csm.retry', timeMs: 1_763_000_000_200.5, attributes: { 'http.status_code': 503, reason: long, 'é': 'ü' } },
          { name: 'ünïcödé \udfff', timeMs: 1_763_000_000_300, attributes: {} },
        ],
        children: [
          span({ name: 'S3.ListBuckets attempt 1', kind: 'internal', status: { code: 'error' }, attributes: { 'aws.attempt': 1, long } }),
          span({ name: 'S3.ListBuckets attempt 2', kind: 'client', events: [{ name: 'e', timeMs: 1, attributes: { a: 1 } }] }),
        ],
      }),
      span({ name: '', attributes: {}, status: { code: 'error', message: '' } }),
      span({ name: 'end before start', startMs: 1_763_000_000_500.25, endMs: 1_763_000_000_100.75 }),
      span({ name: 'same ms', startMs: 1_763_000_000_500.9999, endMs: 1_763_000_000_500.9999 }),
      span({ name: 'negative and tiny times', startMs: -1500.5, endMs: 0.0004 }),
      span({ name: 'far future', startMs: 4_294_967_296_000.5, endMs: 1e15 }),
      span({ name: 'n'.repeat(20_000), children: Array.from({ length: 40 }, (_, i) => span({ name: `child ${i}`, attributes: { i } })) }),
    ];
    const entries = spans.flatMap((s, i) => [
      { res: i % 2 ? res2 : res1, span: s },
      { res: res2, span: s },
    ]);
    assertEquivalent(entries, 7);
  });

  it('the SDK limits: 128 attributes, 128 events (oldest dropped), 128 attributes per event', () => {
    const many = (n: number, p: string) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`${p}${i}`, i % 3 ? `v${i}` : i]));
    const res = makeRes(BASE_RESOURCE);
    const s = span({
      attributes: many(200, 'a'),
      events: Array.from({ length: 150 }, (_, i) => ({ name: `e${i}`, timeMs: 1_763_000_000_000 + i, attributes: many(i === 149 ? 140 : 2, 'k') })),
    });
    assertEquivalent([{ res, span: s }]);
  });

  it('fast-check: generated span trees over several resources', () => {
    fc.assert(
      fc.property(
        fc.array(resourceSpec, { minLength: 1, maxLength: 3 }),
        fc.array(fc.tuple(fc.nat(), tree), { minLength: 1, maxLength: 6 }),
        fc.integer({ min: 1 }),
        (specs, trees, seed) => {
          const resources = specs.map((r) => makeRes(r.attrs, r.schemaUrl));
          const entries = trees.map(([i, t]) => ({ res: resources[i % resources.length]!, span: t }));
          assertEquivalent(entries, seed);
        },
      ),
      { numRuns: 150 },
    );
  });

  it('never throws on non-finite times (the SDK JSON path would)', () => {
    const res = makeRes(BASE_RESOURCE);
    for (const encoding of ['protobuf', 'json'] as const) {
      const b = batch(encoding);
      for (const t of [NaN, Infinity, -Infinity, -1e300, 1e300, Number.MAX_VALUE]) {
        b.add(res.prepared, span({ startMs: t, endMs: t, events: [{ name: 'e', timeMs: t, attributes: {} }], children: [span({ startMs: t })] }));
      }
      const body = b.take()!;
      expect(body.length).toBeGreaterThan(0);
      if (encoding === 'protobuf') expect(() => decodeRaw(body)).not.toThrow();
      else expect(() => JSON.parse(Buffer.from(body).toString('utf8'))).not.toThrow();
    }
  });
});

describe('TraceBatch: accepted by the strict OTLP sink', () => {
  let sink: OtlpSink;
  beforeAll(async () => {
    sink = await startOtlpSink();
  });
  afterAll(async () => {
    await sink.close();
  });

  for (const encoding of ['protobuf', 'json'] as const) {
    it(`${encoding}: real-capture trees POSTed to /v1/traces arrive intact with their parents`, async () => {
      sink.clear();
      const trees = captureTrees(OPTS[1]!);
      const resA = makeRes({ ...BASE_RESOURCE, 'service.name': 'svc-a' });
      const resB = makeRes({ ...BASE_RESOURCE, 'service.name': 'svc-b', 'process.pid': 7 });
      const b = batch(encoding);
      let n = 0;
      trees.forEach((t, i) => (n += b.add(i % 3 ? resA.prepared : resB.prepared, t.span)));
      const body = b.take()!;
      const res = await fetch(`${sink.url}/v1/traces`, {
        method: 'POST',
        headers: { 'content-type': encoding === 'json' ? 'application/json' : 'application/x-protobuf' },
        body,
      });
      expect(res.status).toBe(200);
      expect(sink.errors).toEqual([]);
      expect(sink.spans.length).toBe(n);
      // The same as decoding it in-process.
      expect(decodeOtlpTraces(body, encoding).length).toBe(n);

      const byId = new Map(sink.spans.map((s) => [s.spanId, s]));
      expect(byId.size).toBe(n);
      const roots = sink.spans.filter((s) => s.parentSpanId === '');
      expect(roots.length).toBe(trees.length);
      const childCount = (id: string) => sink.spans.filter((s) => s.parentSpanId === id).length;
      // Twin calls of a storm share name, start and service: each tree takes a root of its own.
      const taken = new Set<string>();
      trees.forEach((t, i) => {
        const service = i % 3 ? 'svc-a' : 'svc-b';
        const [sec, ns] = millisToHrTime(t.span.startMs);
        const start = BigInt(sec) * 1_000_000_000n + BigInt(ns);
        const root = roots.find(
          (r) => !taken.has(r.spanId) && r.name === t.span.name && r.startTimeUnixNano === start && r.resource['service.name'] === service && childCount(r.spanId) === t.span.children.length,
        );
        expect(root, t.span.name).toBeDefined();
        taken.add(root!.spanId);
        expect(root!.kind).toBe(3);
        expect(root!.scope).toEqual(SCOPE);
        expect(root!.flags).toBe(0x101);
        expect(root!.status.code).toBe(t.span.status.code === 'error' ? 2 : 0);
        const children = sink.spans.filter((s) => s.parentSpanId === root!.spanId);
        expect(children.length).toBe(t.span.children.length);
        for (const c of children) {
          expect(c.traceId).toBe(root!.traceId);
          expect(c.kind).toBe(1); // attemptSpanKind 'internal'
          expect(c.resource['service.name']).toBe(service);
        }
      });
    });
  }
});

describe('TraceBatch: ids', () => {
  it('non-zero and unique over 100k spans; children share the root trace id and have the root as parent', () => {
    const res = makeRes(BASE_RESOURCE);
    const b = batch('protobuf');
    const traceIds = new Set<string>();
    const spanIds = new Set<string>();
    let spans = 0;
    const tpl = span({ children: [span(), span(), span(), span()] });
    const problems: string[] = [];
    const isZero = (b: Uint8Array) => b.every((x) => x === 0);
    for (let round = 0; round < 10; round++) {
      for (let i = 0; i < 2000; i++) spans += b.add(res.prepared, tpl);
      for (const rs of decodeRaw(b.take()!).resourceSpans) {
        const list = rs.scopeSpans[0]!.spans;
        for (let k = 0; k < list.length; k += 5) {
          const root = list[k + 4]!;
          if (root.parentSpanId.length !== 0) problems.push('root has a parent');
          if (root.traceId.length !== 16 || isZero(root.traceId)) problems.push('bad trace id');
          const traceId = hexOf(root.traceId);
          const rootId = hexOf(root.spanId);
          traceIds.add(traceId);
          for (const s of list.slice(k, k + 5)) {
            if (s.spanId.length !== 8 || isZero(s.spanId)) problems.push('bad span id');
            spanIds.add(hexOf(s.spanId));
            if (s !== root && (hexOf(s.traceId) !== traceId || hexOf(s.parentSpanId) !== rootId)) problems.push('child not under its root');
          }
        }
      }
    }
    expect(problems).toEqual([]);
    expect(spans).toBe(100_000);
    expect(traceIds.size).toBe(20_000);
    expect(spanIds.size).toBe(100_000);
  });

  it('skips all-zero ids from the random source', () => {
    let calls = 0;
    // Two all-zero fills, then a pool whose first 40 bytes are zero.
    const fill = (buf: Uint8Array) => {
      calls++;
      if (calls <= 2) buf.fill(0);
      else {
        seededFill(calls)(buf);
        buf.fill(0, 0, 40);
      }
    };
    const b = batch('protobuf', { randomFill: fill });
    const res = makeRes(BASE_RESOURCE);
    for (let i = 0; i < 300; i++) b.add(res.prepared, span({ children: [span()] }));
    const list = decodeRaw(b.take()!).resourceSpans[0]!.scopeSpans[0]!.spans;
    expect(list.length).toBe(600);
    for (const s of list) {
      expect(s.traceId.some((x) => x !== 0)).toBe(true);
      expect(s.spanId.some((x) => x !== 0)).toBe(true);
    }
    expect(calls).toBeGreaterThan(3);
  });
});

describe('TraceBatch: take() and counters', () => {
  for (const encoding of ['protobuf', 'json'] as const) {
    it(`${encoding}: spans/bytes count what is held; take() empties; later batches hold only new spans, resources in first-seen order`, () => {
      const a = makeRes({ ...BASE_RESOURCE, 'service.name': 'a' });
      const bRes = makeRes({ ...BASE_RESOURCE, 'service.name': 'b' });
      const b = batch(encoding);
      expect(b.spans).toBe(0);
      expect(b.bytes).toBe(0);
      expect(b.take()).toBeUndefined();

      expect(b.add(a.prepared, span({ children: [span(), span()] }))).toBe(3);
      expect(b.spans).toBe(3);
      const one = b.bytes;
      expect(one).toBeGreaterThan(300);
      expect(b.add(bRes.prepared, span())).toBe(1);
      expect(b.add(a.prepared, span())).toBe(1);
      expect(b.spans).toBe(5);
      expect(b.bytes).toBeGreaterThan(one);
      const held = b.bytes;
      const body = b.take()!;
      // "approximate": within a few bytes of the body per resource
      expect(Math.abs(body.length - held)).toBeLessThan(2 * 16);
      expect(b.spans).toBe(0);
      expect(b.bytes).toBe(0);
      expect(b.take()).toBeUndefined();
      const first = decodeOtlpTraces(body, encoding);
      expect(first.map((s) => s.resource['service.name'])).toEqual(['a', 'a', 'a', 'a', 'b']);

      // Next batch: b first, then a.
      b.add(bRes.prepared, span({ name: 'second' }));
      b.add(a.prepared, span({ name: 'third' }));
      const second = decodeOtlpTraces(b.take()!, encoding);
      expect(second.map((s) => [s.name, s.resource['service.name']])).toEqual([
        ['second', 'b'],
        ['third', 'a'],
      ]);
      expect(b.take()).toBeUndefined();
      // A resource idle for a batch is forgotten, and still works when it comes back.
      b.add(a.prepared, span({ name: 'fourth' }));
      expect(decodeOtlpTraces(b.take()!, encoding).map((s) => s.name)).toEqual(['fourth']);
    });
  }

  it('a tree that fails to encode (a throwing getter) leaves nothing behind', () => {
    const res = makeRes(BASE_RESOURCE);
    const b = batch('protobuf');
    b.add(res.prepared, span({ name: 'before' }));
    const bad = span({ name: 'bad' });
    Object.defineProperty(bad.attributes, 'boom', {
      enumerable: true,
      get() {
        throw new Error('boom');
      },
    });
    expect(() => b.add(res.prepared, span({ children: [span(), bad] }))).toThrow('boom');
    b.add(res.prepared, span({ name: 'after' }));
    expect(b.spans).toBe(2);
    expect(decodeOtlpTraces(b.take()!, 'protobuf').map((s) => s.name)).toEqual(['before', 'after']);
  });

  it('large batches grow the buffers and stay correct', () => {
    const res = makeRes(BASE_RESOURCE);
    const b = batch('protobuf');
    const s = span({ attributes: { big: 'q'.repeat(900), n: 1 }, children: [span(), span()] });
    for (let i = 0; i < 3000; i++) b.add(res.prepared, s);
    expect(b.spans).toBe(9000);
    const body = b.take()!;
    expect(body.length).toBeGreaterThan(3000 * 900);
    expect(decodeOtlpTraces(body, 'protobuf').length).toBe(9000);
  });
});
