/**
 * Proves test/helpers/otlp-sink.ts decodes what the real OpenTelemetry JS exporters
 * send (http/protobuf and http/json, plain and gzip), normalises both encodings to
 * the same shape, and rejects malformed bodies loudly.
 */
import { gzipSync } from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import protobuf from 'protobufjs';
import { SpanKind, SpanStatusCode, ValueType, context, trace, type Attributes } from '@opentelemetry/api';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { NodeTracerProvider, SimpleSpanProcessor, type SpanExporter } from '@opentelemetry/sdk-trace-node';
import { MeterProvider, PeriodicExportingMetricReader, type PushMetricExporter } from '@opentelemetry/sdk-metrics';
import { OTLPTraceExporter as ProtoTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { OTLPTraceExporter as JsonTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPMetricExporter as ProtoMetricExporter } from '@opentelemetry/exporter-metrics-otlp-proto';
import { OTLPMetricExporter as JsonMetricExporter } from '@opentelemetry/exporter-metrics-otlp-http';
import { CompressionAlgorithm } from '@opentelemetry/otlp-exporter-base';
import { loadOtlpProtoRoot, startOtlpSink, type OtlpSink, type SinkSpan } from '../helpers/otlp-sink.js';

type Encoding = 'protobuf' | 'json';
const CONTENT_TYPE: Record<Encoding, string> = { protobuf: 'application/x-protobuf', json: 'application/json' };

const traceExporter = (encoding: Encoding, url: string, gzip = false): SpanExporter => {
  const config = { url: `${url}/v1/traces`, ...(gzip ? { compression: CompressionAlgorithm.GZIP } : {}) };
  return encoding === 'protobuf' ? new ProtoTraceExporter(config) : new JsonTraceExporter(config);
};
const metricExporter = (encoding: Encoding, url: string): PushMetricExporter => {
  const config = { url: `${url}/v1/metrics` };
  return encoding === 'protobuf' ? new ProtoMetricExporter(config) : new JsonMetricExporter(config);
};

const RESOURCE_ATTRS = { 'service.name': 'otlp-sink-test', 'deployment.environment.name': 'ci', 'res.int': 7 };
const resource = () => resourceFromAttributes(RESOURCE_ATTRS);

/** epoch ms, as the bridge will pass them (CSM Timestamp is epoch ms) */
const T0 = 1_700_000_000_123;
const ns = (ms: number) => BigInt(ms) * 1_000_000n;

const CHILD_ATTRS: Attributes = {
  str: 'hello',
  emptyStr: '',
  unicode: 'żółw 🐢',
  boolTrue: true,
  boolFalse: false,
  int: 42,
  zero: 0,
  negInt: -7,
  bigInt: 2 ** 60, // integral but beyond 2^53: both encoders emit intValue
  double: 3.25,
  negDouble: -0.5,
  strArr: ['a', 'b'],
  intArr: [1, 2, 3],
  dblArr: [0.5, 1.5],
  boolArr: [true, false],
};
const EXPECTED_CHILD_ATTRS = { ...CHILD_ATTRS, bigInt: 1152921504606846976n };
const EXPECTED_CHILD_TYPES = {
  str: 'string',
  emptyStr: 'string',
  unicode: 'string',
  boolTrue: 'bool',
  boolFalse: 'bool',
  int: 'int',
  zero: 'int',
  negInt: 'int',
  bigInt: 'int',
  double: 'double',
  negDouble: 'double',
  strArr: 'array',
  intArr: 'array',
  dblArr: 'array',
  boolArr: 'array',
};

/** parent (SERVER, root) + child (CLIENT, ERROR, event) with explicit epoch-ms times */
function emitParentAndChild(provider: NodeTracerProvider) {
  const tracer = provider.getTracer('sink-scope', '1.2.3');
  const parent = tracer.startSpan('parent-op', { kind: SpanKind.SERVER, startTime: T0, attributes: { 'p.attr': 'p' } });
  const child = tracer.startSpan(
    'child-op',
    {
      kind: SpanKind.CLIENT,
      startTime: T0 + 10,
      attributes: CHILD_ATTRS,
      links: [{ context: parent.spanContext(), attributes: { 'link.why': 'follows' } }],
    },
    trace.setSpan(context.active(), parent),
  );
  child.addEvent('retry', { attempt: 2, reason: 'throttled' }, T0 + 15);
  child.setStatus({ code: SpanStatusCode.ERROR, message: 'boom' });
  child.end(T0 + 20);
  parent.end(T0 + 30);
  return { parentCtx: parent.spanContext(), childCtx: child.spanContext() };
}

function expectParentAndChild(spans: SinkSpan[], ids: ReturnType<typeof emitParentAndChild>) {
  expect(spans).toHaveLength(2);
  const parent = spans.find((s) => s.name === 'parent-op')!;
  const child = spans.find((s) => s.name === 'child-op')!;
  expect(parent).toBeDefined();
  expect(child).toBeDefined();

  expect(parent.traceId).toBe(ids.parentCtx.traceId);
  expect(parent.spanId).toBe(ids.parentCtx.spanId);
  expect(parent.parentSpanId).toBe('');
  expect(child.traceId).toBe(ids.parentCtx.traceId);
  expect(child.spanId).toBe(ids.childCtx.spanId);
  expect(child.parentSpanId).toBe(parent.spanId);

  expect(parent.kind).toBe(2); // SPAN_KIND_SERVER (API SERVER=1, OTLP is offset by one)
  expect(child.kind).toBe(3); // SPAN_KIND_CLIENT
  expect(parent.startTimeUnixNano).toBe(ns(T0));
  expect(parent.endTimeUnixNano).toBe(ns(T0 + 30));
  expect(child.startTimeUnixNano).toBe(ns(T0 + 10));
  expect(child.endTimeUnixNano).toBe(ns(T0 + 20));

  expect(parent.attributes).toEqual({ 'p.attr': 'p' });
  expect(child.attributes).toEqual(EXPECTED_CHILD_ATTRS);
  expect(child.attributeTypes).toEqual(EXPECTED_CHILD_TYPES);
  expect(child.events).toEqual([{ name: 'retry', timeUnixNano: ns(T0 + 15), attributes: { attempt: 2, reason: 'throttled' } }]);
  expect(parent.events).toEqual([]);
  expect(child.status).toEqual({ code: 2, message: 'boom' });
  expect(parent.status).toEqual({ code: 0, message: '' });

  expect(parent.links).toEqual([]);
  expect(child.links).toEqual([
    { traceId: parent.traceId, spanId: parent.spanId, traceState: '', attributes: { 'link.why': 'follows' }, flags: 0x101 },
  ]);
  for (const s of [parent, child]) {
    expect(s.resource).toEqual(RESOURCE_ATTRS);
    expect(s.scope).toEqual({ name: 'sink-scope', version: '1.2.3' });
    expect(s.flags).toBe(0x101); // sampled | CONTEXT_HAS_IS_REMOTE
    expect(s.traceState).toBe('');
  }
}

let sink: OtlpSink;
beforeEach(async () => {
  sink = await startOtlpSink();
});
afterEach(async () => {
  await sink.close();
});

describe.each<Encoding>(['protobuf', 'json'])('traces from the real OTLP exporter (%s)', (encoding) => {
  it('round-trips a parent+child span exactly', async () => {
    const provider = new NodeTracerProvider({
      resource: resource(),
      spanProcessors: [new SimpleSpanProcessor(traceExporter(encoding, sink.url))],
    });
    try {
      const ids = emitParentAndChild(provider);
      await provider.forceFlush();
      await sink.waitFor(() => sink.spans.length >= 2);
      expect(sink.errors).toEqual([]);
      expectParentAndChild(sink.spans, ids);
      expect(sink.requests.length).toBeGreaterThanOrEqual(1);
      for (const r of sink.requests) {
        expect(r).toMatchObject({ path: '/v1/traces', encoding, status: 200, contentEncoding: '' });
        expect(r.contentType).toBe(CONTENT_TYPE[encoding]);
        expect(r.decodedBytes).toBe(r.bytes);
      }
    } finally {
      await provider.shutdown();
    }
  });

  it('accepts gzip-compressed exports', async () => {
    const provider = new NodeTracerProvider({
      resource: resource(),
      spanProcessors: [new SimpleSpanProcessor(traceExporter(encoding, sink.url, true))],
    });
    try {
      const ids = emitParentAndChild(provider);
      await provider.forceFlush();
      await sink.waitFor(() => sink.spans.length >= 2);
      expect(sink.errors).toEqual([]);
      expectParentAndChild(sink.spans, ids);
      for (const r of sink.requests) {
        expect(r.contentEncoding).toBe('gzip');
        expect([...r.bytes.subarray(0, 2)]).toEqual([0x1f, 0x8b]);
        expect(r.decodedBytes.equals(r.bytes)).toBe(false);
      }
    } finally {
      await provider.shutdown();
    }
  });
});

it('normalises the same spans identically whichever encoding carried them', async () => {
  const provider = new NodeTracerProvider({
    resource: resource(),
    spanProcessors: [
      new SimpleSpanProcessor(traceExporter('protobuf', sink.url)),
      new SimpleSpanProcessor(traceExporter('json', sink.url)),
    ],
  });
  try {
    emitParentAndChild(provider);
    await provider.forceFlush();
    await sink.waitFor(() => sink.spans.length >= 4);
    expect(sink.errors).toEqual([]);
    const byEncoding = (e: Encoding) =>
      sink.spans
        .filter((s) => sink.requests[s.requestIndex]!.encoding === e)
        .map(({ requestIndex: _ignored, ...rest }) => rest)
        .sort((a, b) => a.name.localeCompare(b.name));
    expect(byEncoding('protobuf')).toHaveLength(2);
    expect(byEncoding('json')).toEqual(byEncoding('protobuf'));
  } finally {
    await provider.shutdown();
  }
});

describe.each<Encoding>(['protobuf', 'json'])('metrics from the real OTLP exporter (%s)', (encoding) => {
  it('delivers a histogram with explicit buckets, counters and a gauge with the right values', async () => {
    const reader = new PeriodicExportingMetricReader({
      exporter: metricExporter(encoding, sink.url),
      exportIntervalMillis: 3_600_000, // only forceFlush exports
    });
    const provider = new MeterProvider({ resource: resource(), readers: [reader] });
    try {
      const meter = provider.getMeter('sink-meter', '0.0.1');
      const hist = meter.createHistogram('csm.call.duration', {
        unit: 'ms',
        description: 'API call latency',
        advice: { explicitBucketBoundaries: [10, 50, 100] },
      });
      const calls = meter.createCounter('csm.calls', { unit: '{call}', valueType: ValueType.INT });
      const inflight = meter.createUpDownCounter('csm.inflight', { valueType: ValueType.INT });
      const depth = meter.createGauge('csm.queue.depth');

      for (const v of [5, 20, 20, 70, 500]) hist.record(v, { op: 'GetObject' });
      calls.add(3, { op: 'GetObject' });
      calls.add(2, { op: 'PutObject' });
      calls.add(1, { op: 'GetObject' });
      inflight.add(-3, { op: 'x' });
      depth.record(2.5);

      await reader.forceFlush();
      await sink.waitFor(() => sink.latestMetric('csm.calls').length === 2);
      expect(sink.errors).toEqual([]);
      expect(sink.requests[0]).toMatchObject({ path: '/v1/metrics', encoding, status: 200 });

      const [h] = sink.latestMetric('csm.call.duration', { op: 'GetObject' });
      expect(h).toMatchObject({
        type: 'histogram',
        unit: 'ms',
        description: 'API call latency',
        attributes: { op: 'GetObject' },
        count: 5,
        sum: 615,
        min: 5,
        max: 500,
        explicitBounds: [10, 50, 100],
        bucketCounts: [1, 2, 1, 1],
        aggregationTemporality: 2, // CUMULATIVE
        scope: { name: 'sink-meter', version: '0.0.1' },
      });
      expect(h!.resource).toEqual(RESOURCE_ATTRS);
      expect(h!.timeUnixNano).toBeGreaterThanOrEqual(h!.startTimeUnixNano);
      expect(h!.startTimeUnixNano).toBeGreaterThan(0n);

      expect(sink.latestMetric('csm.calls', { op: 'GetObject' })).toMatchObject([
        { type: 'sum', value: 4, valueType: 'int', isMonotonic: true, aggregationTemporality: 2, unit: '{call}' },
      ]);
      expect(sink.latestMetric('csm.calls', { op: 'PutObject' })).toMatchObject([{ value: 2 }]);
      expect(sink.latestMetric('csm.inflight')).toMatchObject([
        { type: 'sum', value: -3, valueType: 'int', isMonotonic: false, attributes: { op: 'x' } },
      ]);
      const [g] = sink.latestMetric('csm.queue.depth');
      expect(g).toMatchObject({ type: 'gauge', value: 2.5, valueType: 'double', attributes: {} });
      expect(g!.aggregationTemporality).toBeUndefined();
      expect(g!.isMonotonic).toBeUndefined();

      // second export: cumulative totals, latestMetric picks the newest request
      const firstRequest = sink.latestMetric('csm.calls')[0]!.requestIndex;
      calls.add(10, { op: 'PutObject' });
      hist.record(60, { op: 'GetObject' });
      await reader.forceFlush();
      await sink.waitFor(() => sink.latestMetric('csm.calls')[0]!.requestIndex > firstRequest);
      expect(sink.latestMetric('csm.calls', { op: 'PutObject' })).toMatchObject([{ value: 12 }]);
      expect(sink.latestMetric('csm.calls', { op: 'GetObject' })).toMatchObject([{ value: 4 }]);
      expect(sink.latestMetric('csm.call.duration')).toMatchObject([{ count: 6, sum: 675, bucketCounts: [1, 2, 2, 1] }]);
      expect(sink.latestMetric('csm.calls', { op: 'nope' })).toEqual([]);
      expect(sink.latestMetric('no.such.metric')).toEqual([]);
      expect(sink.errors).toEqual([]);
    } finally {
      await provider.shutdown();
    }
  });
});

// ---------------------------------------------------------------------------
// Hand-made bodies
// ---------------------------------------------------------------------------

const TRACE_ID = '0af7651916cd43dd8448eb211c80319c';
const SPAN_ID = 'b7ad6b7169203331';

const post = (path: string, body: Uint8Array | string, headers: Record<string, string>) =>
  fetch(sink.url + path, { method: 'POST', body: typeof body === 'string' ? body : new Uint8Array(body), headers });
const postJson = (path: string, body: unknown) =>
  post(path, typeof body === 'string' ? body : JSON.stringify(body), { 'content-type': 'application/json' });
const postProto = (path: string, body: Uint8Array) => post(path, body, { 'content-type': 'application/x-protobuf' });

function goodJsonTraces() {
  return {
    resourceSpans: [
      {
        resource: { attributes: [{ key: 'service.name', value: { stringValue: 'hand' } }] },
        scopeSpans: [
          {
            scope: { name: 'hand-scope', version: '1' },
            spans: [
              {
                traceId: TRACE_ID,
                spanId: SPAN_ID,
                parentSpanId: '',
                name: 'hand-made',
                kind: 3,
                startTimeUnixNano: 1000, // integers are accepted besides decimal strings
                endTimeUnixNano: '2000',
                attributes: [
                  { key: 'big', value: { intValue: '9007199254740993' } },
                  { key: 'small', value: { intValue: 5 } },
                  { key: 'nan', value: { doubleValue: 'NaN' } },
                  { key: 'bytes', value: { bytesValue: 'AQID' } },
                  { key: 'kv', value: { kvlistValue: { values: [{ key: 'a', value: { boolValue: true } }] } } },
                  { key: 'withNull', value: { arrayValue: { values: [{ stringValue: 'x' }, {}] } } },
                ],
                status: { code: 2, message: 'bad' },
              },
            ],
          },
        ],
      },
    ],
  };
}

function goodProtoTraces(): Uint8Array {
  const type = loadOtlpProtoRoot().lookupType('opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest');
  const msg = type.fromObject({
    resourceSpans: [
      {
        resource: { attributes: [{ key: 'service.name', value: { stringValue: 'hand' } }] },
        scopeSpans: [
          {
            scope: { name: 'hand-scope' },
            spans: [
              {
                traceId: Buffer.from(TRACE_ID, 'hex'),
                spanId: Buffer.from(SPAN_ID, 'hex'),
                name: 'hand-made',
                kind: 2,
                startTimeUnixNano: '1700000000000000000',
                endTimeUnixNano: '1700000000001000000',
              },
            ],
          },
        ],
      },
    ],
  });
  return type.encode(msg).finish();
}

/** ExportTraceServiceRequest{resource_spans{scope_spans{spans{trace_id, span_id, ...extra}}}} written by hand */
function handWrittenSpan(extra: (w: protobuf.Writer) => void): Uint8Array {
  const w = protobuf.Writer.create();
  w.uint32((1 << 3) | 2).fork(); // ExportTraceServiceRequest.resource_spans
  w.uint32((2 << 3) | 2).fork(); // ResourceSpans.scope_spans
  w.uint32((2 << 3) | 2).fork(); // ScopeSpans.spans
  w.uint32((1 << 3) | 2).bytes(Buffer.from(TRACE_ID, 'hex'));
  w.uint32((2 << 3) | 2).bytes(Buffer.from(SPAN_ID, 'hex'));
  w.uint32((7 << 3) | 1).fixed64(1000);
  w.uint32((8 << 3) | 1).fixed64(2000);
  extra(w);
  w.ldelim().ldelim().ldelim();
  return w.finish();
}

describe('hand-made protobuf bodies', () => {
  it('accepts a valid body and answers with an empty protobuf response', async () => {
    const res = await postProto('/v1/traces', goodProtoTraces());
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/x-protobuf');
    expect((await res.arrayBuffer()).byteLength).toBe(0);
    expect(sink.errors).toEqual([]);
    expect(sink.spans).toMatchObject([
      {
        traceId: TRACE_ID,
        spanId: SPAN_ID,
        parentSpanId: '',
        name: 'hand-made',
        kind: 2,
        startTimeUnixNano: 1700000000000000000n,
        endTimeUnixNano: 1700000000001000000n,
        status: { code: 0, message: '' },
        resource: { 'service.name': 'hand' },
        scope: { name: 'hand-scope', version: '' },
        flags: 0,
      },
    ]);
    const ok = handWrittenSpan((w) => w.uint32((5 << 3) | 2).string('ok'));
    expect((await postProto('/v1/traces', ok)).status).toBe(200);
    expect(sink.errors).toEqual([]);
  });

  const bad: [string, () => Uint8Array, RegExp][] = [
    ['random garbage', () => Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), /cannot decode/],
    ['text', () => Buffer.from('this is not protobuf'), /cannot decode/],
    ['a truncated body', () => goodProtoTraces().subarray(0, goodProtoTraces().length - 3), /cannot decode/],
    ['trailing bytes forming an unknown field', () => Buffer.concat([goodProtoTraces(), Buffer.from([0x78, 0x01])]), /unknown field 15/],
    ['trailing bytes with a wrong wire type', () => Buffer.concat([goodProtoTraces(), Buffer.from([0x08, 0x01])]), /field 1 \('resourceSpans'.*wrong wire type 0/],
    ['Span.name sent as a varint', () => handWrittenSpan((w) => w.uint32((5 << 3) | 0).uint32(1)), /spans\[0\].*'name'.*wrong wire type 0/],
    ['Span.name sent twice', () => handWrittenSpan((w) => w.uint32((5 << 3) | 2).string('a').uint32((5 << 3) | 2).string('b')), /spans\[0\]\.name: non-repeated field 5 occurs more than once/],
    ['invalid UTF-8 in Span.name', () => handWrittenSpan((w) => w.uint32((5 << 3) | 2).bytes(Buffer.from([0xc3, 0x28]))), /cannot decode/],
    ['a 15-byte trace id', () => {
      const w = protobuf.Writer.create();
      w.uint32((1 << 3) | 2).fork().uint32((2 << 3) | 2).fork().uint32((2 << 3) | 2).fork();
      w.uint32((1 << 3) | 2).bytes(Buffer.from(TRACE_ID.slice(2), 'hex'));
      w.uint32((2 << 3) | 2).bytes(Buffer.from(SPAN_ID, 'hex'));
      w.uint32((5 << 3) | 2).string('short-id');
      w.uint32((7 << 3) | 1).fixed64(1).uint32((8 << 3) | 1).fixed64(2);
      w.ldelim().ldelim().ldelim();
      return w.finish();
    }, /traceId: must be 32 lowercase hex/],
    ['an unknown SpanKind', () => handWrittenSpan((w) => w.uint32((5 << 3) | 2).string('k').uint32((6 << 3) | 0).uint32(9)), /kind: SpanKind must be one of/],
    ['a profiling-only string_value_strindex attribute', () =>
      handWrittenSpan((w) => {
        w.uint32((5 << 3) | 2).string('s');
        w.uint32((9 << 3) | 2).fork().uint32((1 << 3) | 2).string('k').uint32((2 << 3) | 2).fork().uint32((8 << 3) | 0).uint32(3).ldelim().ldelim();
      }), /stringValueStrindex/],
    ['an AnyValue with two members', () =>
      handWrittenSpan((w) => {
        w.uint32((5 << 3) | 2).string('s');
        w.uint32((9 << 3) | 2).fork().uint32((1 << 3) | 2).string('k').uint32((2 << 3) | 2).fork()
          .uint32((1 << 3) | 2).string('x').uint32((3 << 3) | 0).uint32(1).ldelim().ldelim();
      }), /oneof 'value' has both 'stringValue' and 'intValue'/],
    ['end before start', () => {
      const w = protobuf.Writer.create();
      w.uint32((1 << 3) | 2).fork().uint32((2 << 3) | 2).fork().uint32((2 << 3) | 2).fork();
      w.uint32((1 << 3) | 2).bytes(Buffer.from(TRACE_ID, 'hex')).uint32((2 << 3) | 2).bytes(Buffer.from(SPAN_ID, 'hex'));
      w.uint32((5 << 3) | 2).string('backwards');
      w.uint32((7 << 3) | 1).fixed64(2000).uint32((8 << 3) | 1).fixed64(1000);
      w.ldelim().ldelim().ldelim();
      return w.finish();
    }, /endTimeUnixNano 1000 < startTimeUnixNano 2000/],
  ];
  it.each(bad)('rejects %s with 400 and records the error', async (_what, body, pattern) => {
    const res = await postProto('/v1/traces', body());
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toBe('application/x-protobuf');
    expect(sink.errors).toHaveLength(1);
    expect(sink.errors[0]).toMatch(pattern);
    expect(sink.spans).toEqual([]);
    expect(sink.requests).toMatchObject([{ status: 400, encoding: 'protobuf', items: 0 }]);
    expect(sink.requests[0]!.error).toBe(sink.errors[0]);
  });
});

describe('hand-made JSON bodies', () => {
  it('accepts a valid body, answers {} and normalises ints, NaN, bytes, kvlists and null array elements', async () => {
    const res = await postJson('/v1/traces', goodJsonTraces());
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(await res.text()).toBe('{}');
    expect(sink.errors).toEqual([]);
    expect(sink.spans).toHaveLength(1);
    const s = sink.spans[0]!;
    expect(s).toMatchObject({
      traceId: TRACE_ID,
      parentSpanId: '',
      kind: 3,
      startTimeUnixNano: 1000n,
      endTimeUnixNano: 2000n,
      status: { code: 2, message: 'bad' },
      scope: { name: 'hand-scope', version: '1' },
      resource: { 'service.name': 'hand' },
    });
    expect(s.attributes).toEqual({
      big: 9007199254740993n,
      small: 5,
      nan: Number.NaN,
      bytes: new Uint8Array([1, 2, 3]),
      kv: { a: true },
      withNull: ['x', null],
    });
  });

  type Mutator = (body: ReturnType<typeof goodJsonTraces>) => unknown;
  const span0 = (b: ReturnType<typeof goodJsonTraces>) => b.resourceSpans[0]!.scopeSpans[0]!.spans[0]! as Record<string, unknown>;
  const bad: [string, Mutator, RegExp][] = [
    ['a 31-char traceId', (b) => ((span0(b).traceId = TRACE_ID.slice(1)), b), /spans\[0\]\.traceId: must be 32 lowercase hex/],
    ['an uppercase spanId', (b) => ((span0(b).spanId = SPAN_ID.toUpperCase()), b), /spanId: must be 16 lowercase hex/],
    ['an all-zero traceId', (b) => ((span0(b).traceId = '0'.repeat(32)), b), /traceId: must not be all zeros/],
    ['a base64 (protobuf-JSON default) traceId', (b) => ((span0(b).traceId = Buffer.from(TRACE_ID, 'hex').toString('base64')), b), /traceId/],
    ['a 15-char parentSpanId', (b) => ((span0(b).parentSpanId = SPAN_ID.slice(1)), b), /parentSpanId/],
    ['an enum given by name', (b) => ((span0(b).kind = 'SPAN_KIND_CLIENT'), b), /spans\[0\]\.kind/],
    ['a non-decimal timestamp', (b) => ((span0(b).startTimeUnixNano = '0x10'), b), /startTimeUnixNano/],
    ['a fractional timestamp', (b) => ((span0(b).startTimeUnixNano = 1.5), b), /startTimeUnixNano/],
    ['a missing endTimeUnixNano', (b) => (delete span0(b).endTimeUnixNano, b), /endTimeUnixNano/],
    ['an unknown key', (b) => ((span0(b).bogus = 1), b), /Unrecognized key.*bogus/],
    ['a snake_case key', (b) => ((span0(b).trace_state = ''), b), /Unrecognized key.*trace_state/],
    ['an AnyValue with two members', (b) => ((span0(b).attributes = [{ key: 'k', value: { stringValue: 'x', intValue: '1' } }]), b), /at most one/],
    ['an empty attribute value', (b) => ((span0(b).attributes = [{ key: 'k', value: {} }]), b), /exactly one/],
    ['an empty attribute key', (b) => ((span0(b).attributes = [{ key: '', value: { boolValue: true } }]), b), /key must be non-empty/],
    ['duplicate attribute keys', (b) => ((span0(b).attributes = [{ key: 'k', value: { boolValue: true } }, { key: 'k', value: { boolValue: false } }]), b), /duplicate attribute key 'k'/],
    ['null for an optional field', (b) => ((span0(b).status = null), b), /status/],
    ['an intValue out of int64 range', (b) => ((span0(b).attributes = [{ key: 'k', value: { intValue: '9223372036854775808' } }]), b), /int64 range/],
    ['bad base64 bytes', (b) => ((span0(b).attributes = [{ key: 'k', value: { bytesValue: 'not base64!' } }]), b), /base64/],
    ['malformed JSON', () => '{"resourceSpans": [', /json: /],
    ['a top-level array', () => [], /schema: \(root\)/],
  ];
  it.each(bad)('rejects %s with 400 and records the error', async (_what, mutate, pattern) => {
    const res = await postJson('/v1/traces', mutate(goodJsonTraces()));
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ code: 3 });
    expect(sink.errors).toHaveLength(1);
    expect(sink.errors[0]).toMatch(pattern);
    expect(sink.spans).toEqual([]);
  });

  it('rejects an inconsistent histogram and an UNSPECIFIED temporality', async () => {
    const metric = (histogram: unknown) => ({
      resourceMetrics: [{ scopeMetrics: [{ metrics: [{ name: 'h', histogram }] }] }],
    });
    const dp = { timeUnixNano: '2000', startTimeUnixNano: '1000', count: '3', sum: 6, bucketCounts: ['1', '2'], explicitBounds: [1] };
    expect((await postJson('/v1/metrics', metric({ aggregationTemporality: 2, dataPoints: [dp] }))).status).toBe(200);
    expect(sink.latestMetric('h')).toMatchObject([{ type: 'histogram', count: 3, sum: 6, bucketCounts: [1, 2], explicitBounds: [1] }]);
    expect(sink.errors).toEqual([]);

    const cases: [unknown, RegExp][] = [
      [metric({ aggregationTemporality: 2, dataPoints: [{ ...dp, count: '4' }] }), /sum of bucketCounts 3 != count 4/],
      [metric({ aggregationTemporality: 2, dataPoints: [{ ...dp, explicitBounds: [] }] }), /2 bucketCounts for 0 explicitBounds/],
      [metric({ dataPoints: [dp] }), /aggregationTemporality is UNSPECIFIED/],
      [{ resourceMetrics: [{ scopeMetrics: [{ metrics: [{ name: 'nodata' }] }] }] }, /exactly one of gauge\/sum\/histogram/],
      [{ resourceMetrics: [{ scopeMetrics: [{ metrics: [{ name: 's', summary: { dataPoints: [{ timeUnixNano: '1' }] } }] }] }] }, /'summary' is not supported/],
    ];
    for (const [body, pattern] of cases) {
      const before = sink.errors.length;
      expect((await postJson('/v1/metrics', body)).status).toBe(400);
      expect(sink.errors).toHaveLength(before + 1);
      expect(sink.errors.at(-1)).toMatch(pattern);
    }
    expect(sink.metricPoints).toHaveLength(1);
  });
});

describe('transport', () => {
  it('answers 404 for unknown paths and 415 for unknown media types, recording both', async () => {
    expect((await postJson('/v1/logs', {})).status).toBe(404);
    expect((await post('/v1/traces', '{}', { 'content-type': 'text/plain' })).status).toBe(415);
    expect(sink.errors).toHaveLength(2);
    expect(sink.errors[0]).toMatch(/POST \/v1\/logs: unknown path/);
    expect(sink.errors[1]).toMatch(/unsupported Content-Type 'text\/plain'/);
  });

  it('gunzips bodies posted by hand and rejects corrupt gzip', async () => {
    const json = JSON.stringify(goodJsonTraces());
    const gz = gzipSync(json);
    const res = await post('/v1/traces', gz, { 'content-type': 'application/json; charset=utf-8', 'content-encoding': 'gzip' });
    expect(res.status).toBe(200);
    expect(sink.spans).toHaveLength(1);
    expect(sink.requests[0]!.bytes.equals(gz)).toBe(true);
    expect(sink.requests[0]!.decodedBytes.toString()).toBe(json);

    const corrupt = await post('/v1/traces', gz.subarray(0, gz.length - 8), { 'content-type': 'application/json', 'content-encoding': 'gzip' });
    expect(corrupt.status).toBe(400);
    expect(sink.errors).toHaveLength(1);
    expect(sink.errors[0]).toMatch(/gunzip failed/);
  });

  it('answers a configured status without storing the data, then recovers', async () => {
    sink.setStatus(503);
    const res = await postJson('/v1/traces', goodJsonTraces());
    expect(res.status).toBe(503);
    expect(await res.json()).toMatchObject({ code: 14 });
    expect(sink.spans).toEqual([]);
    expect(sink.errors).toEqual([]);
    expect(sink.requests).toMatchObject([{ status: 503, items: 1 }]);

    sink.setStatus(200);
    expect((await postJson('/v1/traces', goodJsonTraces())).status).toBe(200);
    expect(sink.spans).toHaveLength(1);
    expect(sink.spans[0]!.requestIndex).toBe(1);
  });

  it('lets the real exporter retry after a 503 (status function)', async () => {
    await sink.close();
    sink = await startOtlpSink({ status: (_req, { index }) => (index === 0 ? 503 : 200) });
    const provider = new NodeTracerProvider({
      resource: resource(),
      spanProcessors: [new SimpleSpanProcessor(traceExporter('protobuf', sink.url))],
    });
    try {
      provider.getTracer('retry').startSpan('retried', { startTime: T0 }).end(T0 + 1);
      await sink.waitFor(() => sink.spans.length === 1, 10_000);
      expect(sink.requests.map((r) => r.status)).toEqual([503, 200]);
      expect(sink.requests[0]!.bytes.equals(sink.requests[1]!.bytes)).toBe(true);
      expect(sink.errors).toEqual([]);
    } finally {
      await provider.shutdown();
    }
  });

  it('waitFor rejects with a summary of what arrived', async () => {
    await postJson('/v1/traces', goodJsonTraces());
    await postJson('/v1/nope', {});
    await expect(sink.waitFor(() => sink.spans.length > 5, 100)).rejects.toThrow(
      /not met within 100ms; requests=1 .*spans=1 \[hand-made\].*metricPoints=0.*errors=1:[\s\S]*unknown path/,
    );
    await expect(
      sink.waitFor(() => {
        throw new Error('predicate exploded');
      }, 50),
    ).rejects.toThrow(/predicate threw: predicate exploded/);
  });
});
