/**
 * A real OTLP/HTTP receiver for tests ("sink").
 *
 * Binds 127.0.0.1:0, accepts POST /v1/traces and /v1/metrics in both OTLP/HTTP
 * encodings (application/x-protobuf and application/json, optionally
 * Content-Encoding: gzip), decodes STRICTLY and normalises both encodings into the
 * same plain shape (SinkSpan / SinkMetricPoint) so tests can assert without caring
 * how the data travelled.
 *
 * Strictness (anything below is recorded in `sink.errors`, answered 400, and the
 * request's data is NOT stored):
 *  - protobuf: decoded with protobufjs against the opentelemetry-proto v1.10.0
 *    definitions in ./proto. Truncated/garbled input throws; unknown fields and
 *    known fields sent with the wrong wire type (protobufjs parks both in
 *    `$unknowns` when `discardUnknown` is off) are rejected; a non-repeated field
 *    sent twice or two members of one oneof are rejected; `Type.verify` is run.
 *  - json: JSON.parse, then a strict zod schema of the OTLP/JSON mapping
 *    (lowerCamelCase keys only, unknown keys rejected, ids as lowercase hex,
 *    enums as integers, 64-bit ints as decimal strings or JSON integers, ...).
 *  - both encodings are funnelled through the same schema (the protobuf message is
 *    converted to the OTLP/JSON shape first) and the same semantic checks:
 *    non-zero 16/8-byte ids, non-empty span/event/metric names and attribute keys,
 *    unique attribute keys, end >= start, AnyValue holding exactly one value
 *    (an empty AnyValue is only accepted as an array element, where it maps to
 *    null), profiling-only `*_strindex` fields absent, sum/histogram temporality
 *    not UNSPECIFIED, histogram buckets consistent with bounds and count, and
 *    only gauge/sum/histogram/exponentialHistogram metric types (the bridge never emits summaries).
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';
import { gunzipSync } from 'node:zlib';
import protobuf from 'protobufjs';
import { z } from 'zod';

// ---------------------------------------------------------------------------
// Public shapes
// ---------------------------------------------------------------------------

/** Which AnyValue member carried an attribute (lets tests tell int 3 from double 3.0). */
export type AnyValueKind = 'string' | 'bool' | 'int' | 'double' | 'array' | 'kvlist' | 'bytes';

export interface SinkSpan {
  traceId: string;
  spanId: string;
  /** '' for a root span */
  parentSpanId: string;
  name: string;
  /** OTLP SpanKind: 0 unspecified, 1 internal, 2 server, 3 client, 4 producer, 5 consumer */
  kind: number;
  startTimeUnixNano: bigint;
  endTimeUnixNano: bigint;
  attributes: Record<string, unknown>;
  status: { code: number; message: string };
  events: { name: string; timeUnixNano: bigint; attributes: Record<string, unknown> }[];
  resource: Record<string, unknown>;
  scope: { name: string; version: string };
  // --- extras beyond the minimal shape ---
  /** AnyValue member used for each span attribute. */
  attributeTypes: Record<string, AnyValueKind>;
  traceState: string;
  /** Span.flags (W3C trace flags in bits 0-7, HAS_IS_REMOTE/IS_REMOTE in bits 8/9). 0 if absent. */
  flags: number;
  links: { traceId: string; spanId: string; traceState: string; attributes: Record<string, unknown>; flags: number }[];
  droppedAttributesCount: number;
  droppedEventsCount: number;
  droppedLinksCount: number;
  /** Index into `sink.requests` of the request that carried this span. */
  requestIndex: number;
}

export interface SinkMetricPoint {
  name: string;
  unit: string;
  description: string;
  type: 'sum' | 'gauge' | 'histogram' | 'exponentialHistogram';
  resource: Record<string, unknown>;
  scope: { name: string; version: string };
  attributes: Record<string, unknown>;
  /** sum/gauge: asDouble, or asInt converted to number */
  value?: number;
  /** sum/gauge: which NumberDataPoint oneof member carried the value */
  valueType?: 'int' | 'double';
  count?: number;
  sum?: number;
  min?: number;
  max?: number;
  bucketCounts?: number[];
  explicitBounds?: number[];
  /** exponentialHistogram: scale, zero bucket and the positive buckets (the bridge records no negative values). */
  scale?: number;
  zeroCount?: number;
  positive?: { offset: number; bucketCounts: number[] };
  isMonotonic?: boolean;
  /** 1 delta, 2 cumulative (sum and histogram only) */
  aggregationTemporality?: number;
  startTimeUnixNano: bigint;
  timeUnixNano: bigint;
  flags: number;
  /** Index into `sink.requests` of the request that carried this point. */
  requestIndex: number;
}

export interface SinkRequest {
  /** URL path as requested, e.g. '/v1/traces' */
  path: string;
  /** Content-Type header as sent */
  contentType: string;
  encoding: 'protobuf' | 'json';
  /** Content-Encoding header as sent ('' if none) */
  contentEncoding: string;
  /** raw body as received, before gunzip */
  bytes: Buffer;
  /** body after gunzip (same as `bytes` if not compressed) */
  decodedBytes: Buffer;
  /** HTTP status the sink answered with */
  status: number;
  /** decode/validation error, if any (also in `sink.errors`) */
  error?: string;
  /** number of spans / metric data points decoded from this request (0 if it failed) */
  items: number;
  headers: http.IncomingHttpHeaders;
}

export type SinkStatus = number | ((req: IncomingMessage, info: { path: string; index: number }) => number);

/** A 2xx answer that rejects the last `rejected` items of the request (OTLP partial success). */
export type SinkPartial = (info: { path: string; index: number; items: number }) => { rejected: number; message: string } | undefined;

export interface OtlpSinkOptions {
  /**
   * HTTP status to answer valid requests with (default 200). A non-2xx status makes
   * the sink answer with an rpc Status body and NOT store the request's spans/points
   * (the exporter considers them not delivered); the request is still decoded
   * strictly and recorded in `requests` (a body that fails decoding is answered 400
   * whatever the configured status). The function form gets the request and
   * `{ path, index }` (index = position it will take in `requests`).
   */
  status?: SinkStatus;
  /** Answer some accepted requests with a partial success (their last `rejected` items are not stored). */
  partial?: SinkPartial;
}

export interface OtlpSink {
  /** base URL, e.g. http://127.0.0.1:PORT (append /v1/traces or /v1/metrics) */
  readonly url: string;
  readonly spans: SinkSpan[];
  /** every point of every accepted request, in arrival order */
  readonly metricPoints: SinkMetricPoint[];
  readonly requests: SinkRequest[];
  readonly errors: string[];
  /** Polls `predicate` until it returns true; rejects with a summary of what arrived on timeout. */
  waitFor(predicate: () => boolean, timeoutMs?: number): Promise<void>;
  /**
   * Points named `name` (and matching every key of `attrsFilter`, compared with
   * isDeepStrictEqual; `undefined` matches an absent attribute) from the most recent
   * accepted request that has such a point. With cumulative temporality the latest
   * export holds the running totals. Returns [] if none.
   */
  latestMetric(name: string, attrsFilter?: Record<string, unknown>): SinkMetricPoint[];
  /** Changes the status answered to later requests (see OtlpSinkOptions.status). */
  setStatus(status: SinkStatus): void;
  /** Forgets everything received so far (arrays are emptied in place). */
  clear(): void;
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------
// Protobuf definitions
// ---------------------------------------------------------------------------

const PROTO_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'proto');
const PROTO_FILES = [
  'opentelemetry/proto/collector/trace/v1/trace_service.proto',
  'opentelemetry/proto/collector/metrics/v1/metrics_service.proto',
];
const TRACE_REQUEST = 'opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest';
const METRICS_REQUEST = 'opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceRequest';

let cachedRoot: protobuf.Root | undefined;

/**
 * The protobufjs Root holding the OTLP definitions from test/helpers/proto (handy for
 * tests that need to hand-craft protobuf payloads). Field names are lowerCamelCase.
 */
export function loadOtlpProtoRoot(): protobuf.Root {
  if (cachedRoot) return cachedRoot;
  const root = new protobuf.Root();
  root.resolvePath = (_origin: string, target: string) =>
    path.isAbsolute(target) ? target : path.join(PROTO_DIR, target);
  root.loadSync(PROTO_FILES, { keepCase: false });
  root.resolveAll();
  cachedRoot = root;
  return root;
}

// ---------------------------------------------------------------------------
// OTLP/JSON schema (validation only; conversion happens in the normaliser)
// ---------------------------------------------------------------------------

const MAX_U64 = (1n << 64n) - 1n;
const MIN_I64 = -(1n << 63n);
const MAX_I64 = (1n << 63n) - 1n;

const isAllZeroHex = (s: string) => /^0+$/.test(s);
const TraceId = z
  .string()
  .regex(/^[0-9a-f]{32}$/, 'must be 32 lowercase hex chars (16 bytes)')
  .refine((s) => !isAllZeroHex(s), 'must not be all zeros');
const SpanId = z
  .string()
  .regex(/^[0-9a-f]{16}$/, 'must be 16 lowercase hex chars (8 bytes)')
  .refine((s) => !isAllZeroHex(s), 'must not be all zeros');
/** empty / absent for a root span */
const ParentSpanId = z.union([z.literal(''), SpanId]);
const OptionalTraceId = z.union([z.literal(''), TraceId]);

/** zod keeps running refinements after a failed check, so range checks must not throw on malformed input */
const tryBigInt = (v: string | number): bigint | undefined => {
  try {
    return BigInt(v);
  } catch {
    return undefined; // already reported by the format check
  }
};
const JsonInteger = z.number().refine(Number.isInteger, 'must be an integer');
/** uint64/fixed64: decimal string (canonical) or JSON integer */
const U64 = z
  .union([z.string().regex(/^(0|[1-9][0-9]*)$/, 'must be a decimal uint64 string'), JsonInteger])
  .refine((v) => {
    const b = tryBigInt(v);
    return b === undefined || (b >= 0n && b <= MAX_U64);
  }, 'out of uint64 range');
/** int64/sfixed64: decimal string (canonical) or JSON integer */
const I64 = z
  .union([z.string().regex(/^-?(0|[1-9][0-9]*)$/, 'must be a decimal int64 string'), JsonInteger])
  .refine((v) => {
    const b = tryBigInt(v);
    return b === undefined || (b >= MIN_I64 && b <= MAX_I64);
  }, 'out of int64 range');
const U32 = z.number().int().min(0).max(0xffffffff);
const I32 = z.number().int().min(-0x80000000).max(0x7fffffff);
const Double = z.union([z.number(), z.enum(['NaN', 'Infinity', '-Infinity'])]);
const Base64 = z
  .string()
  .regex(/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/, 'must be standard padded base64');
const enumOf = (name: string, values: readonly number[]) =>
  z.number().int().refine((v) => values.includes(v), `${name} must be one of ${values.join(', ')} (enums are integers in OTLP/JSON)`);
const SpanKindEnum = enumOf('SpanKind', [0, 1, 2, 3, 4, 5]);
const StatusCodeEnum = enumOf('StatusCode', [0, 1, 2]);
const TemporalityEnum = enumOf('AggregationTemporality', [0, 1, 2]);

interface JAnyValue {
  stringValue?: string | undefined;
  boolValue?: boolean | undefined;
  intValue?: string | number | undefined;
  doubleValue?: number | string | undefined;
  arrayValue?: { values?: JAnyValue[] | undefined } | undefined;
  kvlistValue?: { values?: JKeyValue[] | undefined } | undefined;
  bytesValue?: string | undefined;
}
interface JKeyValue {
  key: string;
  value: JAnyValue;
}
const ANY_VALUE_MEMBERS = ['stringValue', 'boolValue', 'intValue', 'doubleValue', 'arrayValue', 'kvlistValue', 'bytesValue'] as const;
const countMembers = (v: object, members: readonly string[]) =>
  members.filter((m) => (v as Record<string, unknown>)[m] !== undefined).length;

/** AnyValue with at most one member set (empty allowed: only meaningful as an array element) */
const AnyValueSchema: z.ZodType<JAnyValue> = z.lazy(() =>
  z
    .strictObject({
      stringValue: z.string().optional(),
      boolValue: z.boolean().optional(),
      intValue: I64.optional(),
      doubleValue: Double.optional(),
      arrayValue: z.strictObject({ values: z.array(AnyValueSchema).optional() }).optional(),
      kvlistValue: z.strictObject({ values: z.array(KeyValueSchema).optional() }).optional(),
      bytesValue: Base64.optional(),
    })
    .refine((v) => countMembers(v, ANY_VALUE_MEMBERS) <= 1, 'AnyValue must hold at most one of its oneof members'),
);
const KeyValueSchema: z.ZodType<JKeyValue> = z.lazy(() =>
  z.strictObject({
    key: z.string().min(1, 'attribute key must be non-empty'),
    value: AnyValueSchema.refine(
      (v) => countMembers(v, ANY_VALUE_MEMBERS) === 1,
      'attribute value must hold exactly one of stringValue/boolValue/intValue/doubleValue/arrayValue/kvlistValue/bytesValue',
    ),
  }),
);
const Attributes = z.array(KeyValueSchema).optional();

const EntityRefSchema = z.strictObject({
  schemaUrl: z.string().optional(),
  type: z.string().optional(),
  idKeys: z.array(z.string()).optional(),
  descriptionKeys: z.array(z.string()).optional(),
});
const ResourceSchema = z.strictObject({
  attributes: Attributes,
  droppedAttributesCount: U32.optional(),
  entityRefs: z.array(EntityRefSchema).optional(),
});
const ScopeSchema = z.strictObject({
  name: z.string().optional(),
  version: z.string().optional(),
  attributes: Attributes,
  droppedAttributesCount: U32.optional(),
});

const EventSchema = z.strictObject({
  timeUnixNano: U64,
  name: z.string().min(1, 'event name must be non-empty'),
  attributes: Attributes,
  droppedAttributesCount: U32.optional(),
});
const LinkSchema = z.strictObject({
  traceId: TraceId,
  spanId: SpanId,
  traceState: z.string().optional(),
  attributes: Attributes,
  droppedAttributesCount: U32.optional(),
  flags: U32.optional(),
});
const StatusSchema = z.strictObject({
  message: z.string().optional(),
  code: StatusCodeEnum.optional(),
});
const SpanSchema = z.strictObject({
  traceId: TraceId,
  spanId: SpanId,
  traceState: z.string().optional(),
  parentSpanId: ParentSpanId.optional(),
  flags: U32.optional(),
  name: z.string().min(1, 'span name must be non-empty'),
  kind: SpanKindEnum.optional(),
  startTimeUnixNano: U64,
  endTimeUnixNano: U64,
  attributes: Attributes,
  droppedAttributesCount: U32.optional(),
  events: z.array(EventSchema).optional(),
  droppedEventsCount: U32.optional(),
  links: z.array(LinkSchema).optional(),
  droppedLinksCount: U32.optional(),
  status: StatusSchema.optional(),
});
const TraceRequestSchema = z.strictObject({
  resourceSpans: z
    .array(
      z.strictObject({
        resource: ResourceSchema.optional(),
        scopeSpans: z
          .array(
            z.strictObject({
              scope: ScopeSchema.optional(),
              spans: z.array(SpanSchema).optional(),
              schemaUrl: z.string().optional(),
            }),
          )
          .optional(),
        schemaUrl: z.string().optional(),
      }),
    )
    .optional(),
});
type JTraceRequest = z.infer<typeof TraceRequestSchema>;

const ExemplarSchema = z
  .strictObject({
    filteredAttributes: Attributes,
    timeUnixNano: U64.optional(),
    asDouble: Double.optional(),
    asInt: I64.optional(),
    spanId: z.union([z.literal(''), SpanId]).optional(),
    traceId: OptionalTraceId.optional(),
  })
  .refine((v) => countMembers(v, ['asDouble', 'asInt']) <= 1, 'Exemplar: at most one of asDouble/asInt');
const NumberDataPointSchema = z
  .strictObject({
    attributes: Attributes,
    startTimeUnixNano: U64.optional(),
    timeUnixNano: U64,
    asDouble: Double.optional(),
    asInt: I64.optional(),
    exemplars: z.array(ExemplarSchema).optional(),
    flags: U32.optional(),
  })
  .refine(
    (v) =>
      countMembers(v, ['asDouble', 'asInt']) === 1 ||
      // DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK: a point may carry no value
      ((v.flags ?? 0) & 1) === 1 && countMembers(v, ['asDouble', 'asInt']) === 0,
    'NumberDataPoint must hold exactly one of asDouble/asInt',
  );
const HistogramDataPointSchema = z.strictObject({
  attributes: Attributes,
  startTimeUnixNano: U64.optional(),
  timeUnixNano: U64,
  count: U64.optional(),
  sum: Double.optional(),
  bucketCounts: z.array(U64).optional(),
  explicitBounds: z.array(Double).optional(),
  exemplars: z.array(ExemplarSchema).optional(),
  flags: U32.optional(),
  min: Double.optional(),
  max: Double.optional(),
});
const BucketsSchema = z.strictObject({ offset: I32.optional(), bucketCounts: z.array(U64).optional() });
const ExponentialHistogramDataPointSchema = z.strictObject({
  attributes: Attributes,
  startTimeUnixNano: U64.optional(),
  timeUnixNano: U64,
  count: U64.optional(),
  sum: Double.optional(),
  scale: I32.optional(),
  zeroCount: U64.optional(),
  positive: BucketsSchema.optional(),
  negative: BucketsSchema.optional(),
  flags: U32.optional(),
  exemplars: z.array(ExemplarSchema).optional(),
  min: Double.optional(),
  max: Double.optional(),
  zeroThreshold: Double.optional(),
});
const SummaryDataPointSchema = z.strictObject({
  attributes: Attributes,
  startTimeUnixNano: U64.optional(),
  timeUnixNano: U64,
  count: U64.optional(),
  sum: Double.optional(),
  quantileValues: z.array(z.strictObject({ quantile: Double.optional(), value: Double.optional() })).optional(),
  flags: U32.optional(),
});
const METRIC_DATA_MEMBERS = ['gauge', 'sum', 'histogram', 'exponentialHistogram', 'summary'] as const;
const MetricSchema = z
  .strictObject({
    name: z.string().min(1, 'metric name must be non-empty'),
    description: z.string().optional(),
    unit: z.string().optional(),
    gauge: z.strictObject({ dataPoints: z.array(NumberDataPointSchema).optional() }).optional(),
    sum: z
      .strictObject({
        dataPoints: z.array(NumberDataPointSchema).optional(),
        aggregationTemporality: TemporalityEnum.optional(),
        isMonotonic: z.boolean().optional(),
      })
      .optional(),
    histogram: z
      .strictObject({
        dataPoints: z.array(HistogramDataPointSchema).optional(),
        aggregationTemporality: TemporalityEnum.optional(),
      })
      .optional(),
    exponentialHistogram: z
      .strictObject({
        dataPoints: z.array(ExponentialHistogramDataPointSchema).optional(),
        aggregationTemporality: TemporalityEnum.optional(),
      })
      .optional(),
    summary: z.strictObject({ dataPoints: z.array(SummaryDataPointSchema).optional() }).optional(),
    metadata: Attributes,
  })
  .refine(
    (v) => countMembers(v, METRIC_DATA_MEMBERS) === 1,
    'Metric must hold exactly one of gauge/sum/histogram/exponentialHistogram/summary',
  );
const MetricsRequestSchema = z.strictObject({
  resourceMetrics: z
    .array(
      z.strictObject({
        resource: ResourceSchema.optional(),
        scopeMetrics: z
          .array(
            z.strictObject({
              scope: ScopeSchema.optional(),
              metrics: z.array(MetricSchema).optional(),
              schemaUrl: z.string().optional(),
            }),
          )
          .optional(),
        schemaUrl: z.string().optional(),
      }),
    )
    .optional(),
});
type JMetricsRequest = z.infer<typeof MetricsRequestSchema>;

// ---------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------

export type OtlpSignal = 'traces' | 'metrics';
export type OtlpEncoding = 'protobuf' | 'json';

/** Thrown by decodeOtlpTraces/decodeOtlpMetrics; `problems` lists every issue found. */
export class OtlpDecodeError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.length === 1 ? problems[0] : `${problems.length} problems:\n  - ${problems.join('\n  - ')}`);
    this.name = 'OtlpDecodeError';
  }
}

function formatZodIssues(error: z.ZodError, limit = 20): string[] {
  const out = error.issues.slice(0, limit).map((i) => {
    const p = i.path.length ? i.path.map((s) => (typeof s === 'number' ? `[${s}]` : `.${String(s)}`)).join('').replace(/^\./, '') : '(root)';
    return `schema: ${p}: ${i.message}`;
  });
  if (error.issues.length > limit) out.push(`schema: ... and ${error.issues.length - limit} more issue(s)`);
  return out;
}

/** Walks the wire bytes once more to catch what protobufjs silently merges: repeated non-repeated fields and oneof conflicts. */
function checkWireDuplicates(type: protobuf.Type, buf: Uint8Array, where: string, problems: string[]): void {
  const reader = protobuf.Reader.create(buf);
  const seen = new Map<number, number>();
  const oneofSeen = new Map<string, string>();
  const repeatedIndex = new Map<number, number>();
  while (reader.pos < reader.len) {
    const tag = reader.uint32();
    const id = tag >>> 3;
    const wireType = tag & 7;
    const field = type.fieldsById[id];
    if (!field) {
      reader.skipType(wireType); // reported via $unknowns
      continue;
    }
    let here = `${where}.${field.name}`;
    if (field.repeated) {
      const i = repeatedIndex.get(id) ?? 0;
      repeatedIndex.set(id, i + 1);
      here = `${here}[${i}]`;
    } else {
      const n = (seen.get(id) ?? 0) + 1;
      seen.set(id, n);
      if (n === 2) problems.push(`protobuf: ${here}: non-repeated field ${id} occurs more than once`);
      const oneof = field.partOf;
      if (oneof && !oneof.name.startsWith('_')) {
        const prev = oneofSeen.get(oneof.name);
        if (prev !== undefined && prev !== field.name) {
          problems.push(`protobuf: ${where}: oneof '${oneof.name}' has both '${prev}' and '${field.name}' set`);
        }
        oneofSeen.set(oneof.name, field.name);
      }
    }
    if (wireType === 2 && field.resolvedType instanceof protobuf.Type) {
      const len = reader.uint32();
      const start = reader.pos;
      reader.skip(len);
      checkWireDuplicates(field.resolvedType, buf.subarray(start, start + len), here, problems);
    } else {
      reader.skipType(wireType);
    }
  }
}

function describeUnknown(type: protobuf.Type, raw: Uint8Array): string {
  try {
    const r = protobuf.Reader.create(raw);
    const tag = r.uint32();
    const id = tag >>> 3;
    const wt = tag & 7;
    const field = type.fieldsById[id];
    const hex = Buffer.from(raw.subarray(0, 16)).toString('hex');
    return field
      ? `field ${id} ('${field.name}', ${field.type}) with wrong wire type ${wt} [${hex}${raw.length > 16 ? '…' : ''}]`
      : `unknown field ${id} (wire type ${wt}) [${hex}${raw.length > 16 ? '…' : ''}]`;
  } catch {
    return `unparseable unknown field [${Buffer.from(raw).toString('hex')}]`;
  }
}

/** Reports every `$unknowns` (unknown fields, and known fields with the wrong wire type) in a decoded message tree. */
function collectUnknowns(type: protobuf.Type, msg: protobuf.Message, where: string, problems: string[]): void {
  const unknowns = (msg as unknown as { $unknowns?: Uint8Array[] }).$unknowns;
  if (unknowns?.length) {
    for (const raw of unknowns) problems.push(`protobuf: ${where}: ${describeUnknown(type, raw)}`);
  }
  const rec = msg as unknown as Record<string, unknown>;
  for (const field of type.fieldsArray) {
    const sub = field.resolvedType;
    if (!(sub instanceof protobuf.Type)) continue;
    const value = rec[field.name];
    if (field.repeated && Array.isArray(value)) {
      value.forEach((v, i) => collectUnknowns(sub, v as protobuf.Message, `${where}.${field.name}[${i}]`, problems));
    } else if (!field.repeated && value != null && Object.prototype.hasOwnProperty.call(rec, field.name)) {
      collectUnknowns(sub, value as protobuf.Message, `${where}.${field.name}`, problems);
    }
  }
}

function b64ToHex(v: unknown): unknown {
  return typeof v === 'string' ? Buffer.from(v, 'base64').toString('hex') : v;
}
function idsToHex(o: Record<string, unknown> | undefined, keys: readonly string[]): void {
  if (!o) return;
  for (const k of keys) if (k in o) o[k] = b64ToHex(o[k]);
}
type Obj = Record<string, unknown>;
const arr = (v: unknown): Obj[] => (Array.isArray(v) ? (v as Obj[]) : []);

/** protobuf bytes → OTLP/JSON-shaped object (ids as hex, 64-bit ints as decimal strings, bytes as base64). */
function protobufToJsonShape(signal: OtlpSignal, body: Uint8Array, problems: string[]): unknown {
  const root = loadOtlpProtoRoot();
  const type = root.lookupType(signal === 'traces' ? TRACE_REQUEST : METRICS_REQUEST);
  const reader = protobuf.Reader.create(body);
  reader.discardUnknown = false;
  let msg: protobuf.Message;
  try {
    msg = type.decode(reader);
  } catch (e) {
    problems.push(`protobuf: cannot decode ${type.name}: ${(e as Error).message}`);
    return undefined;
  }
  if (reader.pos !== body.length) problems.push(`protobuf: decoder stopped at byte ${reader.pos} of ${body.length}`);
  collectUnknowns(type, msg, type.name, problems);
  try {
    checkWireDuplicates(type, body, type.name, problems);
  } catch (e) {
    problems.push(`protobuf: wire walk failed: ${(e as Error).message}`);
  }
  const verifyError = type.verify(msg);
  if (verifyError) problems.push(`protobuf: verify: ${verifyError}`);
  if (problems.length) return undefined;

  const obj = type.toObject(msg, { longs: String, enums: Number, bytes: String, defaults: false, json: true }) as Obj;
  if (signal === 'traces') {
    for (const rs of arr(obj['resourceSpans']))
      for (const ss of arr(rs['scopeSpans']))
        for (const span of arr(ss['spans'])) {
          idsToHex(span, ['traceId', 'spanId', 'parentSpanId']);
          for (const link of arr(span['links'])) idsToHex(link, ['traceId', 'spanId']);
        }
  } else {
    for (const rm of arr(obj['resourceMetrics']))
      for (const sm of arr(rm['scopeMetrics']))
        for (const m of arr(sm['metrics']))
          for (const member of METRIC_DATA_MEMBERS) {
            const data = m[member] as Obj | undefined;
            for (const dp of arr(data?.['dataPoints']))
              for (const ex of arr(dp['exemplars'])) idsToHex(ex, ['traceId', 'spanId']);
          }
  }
  return obj;
}

function parseJsonBody(body: Uint8Array, problems: string[]): unknown {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(body);
  } catch {
    problems.push('json: body is not valid UTF-8');
    return undefined;
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    problems.push(`json: ${(e as Error).message}`);
    return undefined;
  }
}

// ---------------------------------------------------------------------------
// Normalisation
// ---------------------------------------------------------------------------

const toBig = (v: string | number): bigint => BigInt(v);
const toNum = (v: string | number): number => Number(v);
const toDouble = (v: number | string): number => (typeof v === 'number' ? v : Number(v));
function intValue(v: string | number): number | bigint {
  const b = BigInt(v);
  return b >= BigInt(Number.MIN_SAFE_INTEGER) && b <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(b) : b;
}

function anyValueKind(v: JAnyValue): AnyValueKind | undefined {
  if (v.stringValue !== undefined) return 'string';
  if (v.boolValue !== undefined) return 'bool';
  if (v.intValue !== undefined) return 'int';
  if (v.doubleValue !== undefined) return 'double';
  if (v.arrayValue !== undefined) return 'array';
  if (v.kvlistValue !== undefined) return 'kvlist';
  if (v.bytesValue !== undefined) return 'bytes';
  return undefined;
}

function convertAnyValue(v: JAnyValue, where: string, problems: string[]): unknown {
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.boolValue !== undefined) return v.boolValue;
  if (v.intValue !== undefined) return intValue(v.intValue);
  if (v.doubleValue !== undefined) return toDouble(v.doubleValue);
  if (v.arrayValue !== undefined)
    return (v.arrayValue.values ?? []).map((e, i) => convertAnyValue(e, `${where}[${i}]`, problems));
  if (v.kvlistValue !== undefined) return convertAttributes(v.kvlistValue.values, where, problems);
  if (v.bytesValue !== undefined) return new Uint8Array(Buffer.from(v.bytesValue, 'base64'));
  return null; // empty AnyValue (only reachable for array elements)
}

function convertAttributes(
  kvs: JKeyValue[] | undefined,
  where: string,
  problems: string[],
  kinds?: Record<string, AnyValueKind>,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const kv of kvs ?? []) {
    if (Object.prototype.hasOwnProperty.call(out, kv.key)) {
      problems.push(`${where}: duplicate attribute key '${kv.key}'`);
      continue;
    }
    out[kv.key] = convertAnyValue(kv.value, `${where}.${kv.key}`, problems);
    if (kinds) kinds[kv.key] = anyValueKind(kv.value) ?? 'string';
  }
  return out;
}

function convertScope(s: { name?: string | undefined; version?: string | undefined } | undefined) {
  return { name: s?.name ?? '', version: s?.version ?? '' };
}

function normaliseTraces(req: JTraceRequest, requestIndex: number, problems: string[]): SinkSpan[] {
  const spans: SinkSpan[] = [];
  (req.resourceSpans ?? []).forEach((rs, ri) => {
    const resource = convertAttributes(rs.resource?.attributes, `resourceSpans[${ri}].resource`, problems);
    (rs.scopeSpans ?? []).forEach((ss, si) => {
      const scope = convertScope(ss.scope);
      (ss.spans ?? []).forEach((s, i) => {
        const where = `resourceSpans[${ri}].scopeSpans[${si}].spans[${i}] '${s.name}'`;
        const start = toBig(s.startTimeUnixNano);
        const end = toBig(s.endTimeUnixNano);
        if (start === 0n) problems.push(`${where}: startTimeUnixNano is 0`);
        if (end < start) problems.push(`${where}: endTimeUnixNano ${end} < startTimeUnixNano ${start}`);
        const attributeTypes: Record<string, AnyValueKind> = {};
        spans.push({
          traceId: s.traceId,
          spanId: s.spanId,
          parentSpanId: s.parentSpanId ?? '',
          name: s.name,
          kind: s.kind ?? 0,
          startTimeUnixNano: start,
          endTimeUnixNano: end,
          attributes: convertAttributes(s.attributes, `${where}.attributes`, problems, attributeTypes),
          status: { code: s.status?.code ?? 0, message: s.status?.message ?? '' },
          events: (s.events ?? []).map((e, ei) => ({
            name: e.name,
            timeUnixNano: toBig(e.timeUnixNano),
            attributes: convertAttributes(e.attributes, `${where}.events[${ei}]`, problems),
          })),
          resource,
          scope,
          attributeTypes,
          traceState: s.traceState ?? '',
          flags: s.flags ?? 0,
          links: (s.links ?? []).map((l, li) => ({
            traceId: l.traceId,
            spanId: l.spanId,
            traceState: l.traceState ?? '',
            attributes: convertAttributes(l.attributes, `${where}.links[${li}]`, problems),
            flags: l.flags ?? 0,
          })),
          droppedAttributesCount: s.droppedAttributesCount ?? 0,
          droppedEventsCount: s.droppedEventsCount ?? 0,
          droppedLinksCount: s.droppedLinksCount ?? 0,
          requestIndex,
        });
      });
    });
  });
  return spans;
}

function normaliseMetrics(req: JMetricsRequest, requestIndex: number, problems: string[]): SinkMetricPoint[] {
  const points: SinkMetricPoint[] = [];
  (req.resourceMetrics ?? []).forEach((rm, ri) => {
    const resource = convertAttributes(rm.resource?.attributes, `resourceMetrics[${ri}].resource`, problems);
    (rm.scopeMetrics ?? []).forEach((sm, si) => {
      const scope = convertScope(sm.scope);
      (sm.metrics ?? []).forEach((m, mi) => {
        const where = `resourceMetrics[${ri}].scopeMetrics[${si}].metrics[${mi}] '${m.name}'`;
        const base = { name: m.name, unit: m.unit ?? '', description: m.description ?? '', resource, scope, requestIndex };
        const times = (dp: { startTimeUnixNano?: string | number | undefined; timeUnixNano: string | number }, w: string) => {
          const startTimeUnixNano = toBig(dp.startTimeUnixNano ?? 0);
          const timeUnixNano = toBig(dp.timeUnixNano);
          if (timeUnixNano === 0n) problems.push(`${w}: timeUnixNano is 0`);
          if (startTimeUnixNano > timeUnixNano) problems.push(`${w}: startTimeUnixNano ${startTimeUnixNano} > timeUnixNano ${timeUnixNano}`);
          return { startTimeUnixNano, timeUnixNano };
        };
        const temporality = (t: number | undefined) => {
          if ((t ?? 0) === 0) problems.push(`${where}: aggregationTemporality is UNSPECIFIED`);
          return t ?? 0;
        };
        /** A (exponential) histogram point: the shared fields, then sum/min/max when present. */
        const histogramPoint = (
          type: 'histogram' | 'exponentialHistogram',
          dp: { attributes?: JKeyValue[] | undefined; startTimeUnixNano?: string | number | undefined; timeUnixNano: string | number; flags?: number | undefined; sum?: number | string | undefined; min?: number | string | undefined; max?: number | string | undefined },
          w: string,
          aggregationTemporality: number,
          fields: Partial<SinkMetricPoint>,
        ): SinkMetricPoint => {
          const p: SinkMetricPoint = { ...base, type, attributes: convertAttributes(dp.attributes, w, problems), ...times(dp, w), ...fields, aggregationTemporality, flags: dp.flags ?? 0 };
          if (dp.sum !== undefined) p.sum = toDouble(dp.sum);
          if (dp.min !== undefined) p.min = toDouble(dp.min);
          if (dp.max !== undefined) p.max = toDouble(dp.max);
          return p;
        };
        if (m.gauge || m.sum) {
          const isSum = !!m.sum;
          const data = (m.sum ?? m.gauge)!;
          const aggregationTemporality = m.sum ? temporality(m.sum.aggregationTemporality) : undefined;
          (data.dataPoints ?? []).forEach((dp, di) => {
            const w = `${where}.dataPoints[${di}]`;
            const p: SinkMetricPoint = {
              ...base,
              type: isSum ? 'sum' : 'gauge',
              attributes: convertAttributes(dp.attributes, w, problems),
              ...times(dp, w),
              flags: dp.flags ?? 0,
            };
            if (dp.asInt !== undefined) {
              p.value = toNum(dp.asInt);
              p.valueType = 'int';
            } else if (dp.asDouble !== undefined) {
              p.value = toDouble(dp.asDouble);
              p.valueType = 'double';
            }
            if (m.sum && aggregationTemporality !== undefined) {
              p.isMonotonic = m.sum.isMonotonic ?? false;
              p.aggregationTemporality = aggregationTemporality;
            }
            points.push(p);
          });
        } else if (m.histogram) {
          const aggregationTemporality = temporality(m.histogram.aggregationTemporality);
          (m.histogram.dataPoints ?? []).forEach((dp, di) => {
            const w = `${where}.dataPoints[${di}]`;
            const bucketCounts = (dp.bucketCounts ?? []).map(toNum);
            const explicitBounds = (dp.explicitBounds ?? []).map(toDouble);
            const count = toNum(dp.count ?? 0);
            if (bucketCounts.length && bucketCounts.length !== explicitBounds.length + 1)
              problems.push(`${w}: ${bucketCounts.length} bucketCounts for ${explicitBounds.length} explicitBounds (want bounds+1)`);
            if (bucketCounts.length && bucketCounts.reduce((a, b) => a + b, 0) !== count)
              problems.push(`${w}: sum of bucketCounts ${bucketCounts.reduce((a, b) => a + b, 0)} != count ${count}`);
            for (let i = 1; i < explicitBounds.length; i++)
              if (!(explicitBounds[i - 1]! < explicitBounds[i]!)) problems.push(`${w}: explicitBounds not strictly increasing at ${i}`);
            points.push(histogramPoint('histogram', dp, w, aggregationTemporality, { count, bucketCounts, explicitBounds }));
          });
        } else if (m.exponentialHistogram) {
          const aggregationTemporality = temporality(m.exponentialHistogram.aggregationTemporality);
          (m.exponentialHistogram.dataPoints ?? []).forEach((dp, di) => {
            const w = `${where}.dataPoints[${di}]`;
            const count = toNum(dp.count ?? 0);
            const zeroCount = toNum(dp.zeroCount ?? 0);
            const positive = { offset: dp.positive?.offset ?? 0, bucketCounts: (dp.positive?.bucketCounts ?? []).map(toNum) };
            const negative = (dp.negative?.bucketCounts ?? []).map(toNum);
            const inBuckets = zeroCount + positive.bucketCounts.reduce((a, b) => a + b, 0) + negative.reduce((a, b) => a + b, 0);
            if (inBuckets !== count) problems.push(`${w}: zeroCount + bucket counts ${inBuckets} != count ${count}`);
            const scale = dp.scale ?? 0;
            if (scale < -10 || scale > 20) problems.push(`${w}: scale ${scale} outside -10..20`);
            points.push(histogramPoint('exponentialHistogram', dp, w, aggregationTemporality, { count, scale, zeroCount, positive }));
          });
        } else {
          problems.push(`${where}: metric type 'summary' is not supported by the test sink`);
        }
      });
    });
  });
  return points;
}

function decode(signal: OtlpSignal, encoding: OtlpEncoding, body: Uint8Array, requestIndex: number): SinkSpan[] | SinkMetricPoint[] {
  const problems: string[] = [];
  const raw = encoding === 'protobuf' ? protobufToJsonShape(signal, body, problems) : parseJsonBody(body, problems);
  if (problems.length) throw new OtlpDecodeError(problems);
  const schema = signal === 'traces' ? TraceRequestSchema : MetricsRequestSchema;
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw new OtlpDecodeError(formatZodIssues(parsed.error).map((s) => `${encoding === 'protobuf' ? 'protobuf→' : ''}${s}`));
  const out =
    signal === 'traces'
      ? normaliseTraces(parsed.data as JTraceRequest, requestIndex, problems)
      : normaliseMetrics(parsed.data as JMetricsRequest, requestIndex, problems);
  if (problems.length) throw new OtlpDecodeError(problems);
  return out;
}

/** Strictly decodes an ExportTraceServiceRequest body (already gunzipped). Throws OtlpDecodeError. */
export function decodeOtlpTraces(body: Uint8Array, encoding: OtlpEncoding, requestIndex = -1): SinkSpan[] {
  return decode('traces', encoding, body, requestIndex) as SinkSpan[];
}

/** Strictly decodes an ExportMetricsServiceRequest body (already gunzipped). Throws OtlpDecodeError. */
export function decodeOtlpMetrics(body: Uint8Array, encoding: OtlpEncoding, requestIndex = -1): SinkMetricPoint[] {
  return decode('metrics', encoding, body, requestIndex) as SinkMetricPoint[];
}

// ---------------------------------------------------------------------------
// HTTP server
// ---------------------------------------------------------------------------

const SIGNAL_BY_PATH: Record<string, OtlpSignal> = { '/v1/traces': 'traces', '/v1/metrics': 'metrics' };

function grpcCodeFor(status: number): number {
  if (status === 400) return 3; // INVALID_ARGUMENT
  if (status === 429) return 8; // RESOURCE_EXHAUSTED
  if (status === 502 || status === 503 || status === 504) return 14; // UNAVAILABLE
  return 2; // UNKNOWN
}

function sendStatus(res: ServerResponse, status: number, encoding: OtlpEncoding | undefined, message: string): void {
  if (encoding === 'protobuf') {
    // google.rpc.Status { int32 code = 1; string message = 2; }
    const body = protobuf.Writer.create().uint32(8).int32(grpcCodeFor(status)).uint32(18).string(message).finish();
    res.writeHead(status, { 'content-type': 'application/x-protobuf', 'content-length': body.length });
    res.end(Buffer.from(body));
  } else if (encoding === 'json') {
    const body = JSON.stringify({ code: grpcCodeFor(status), message });
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  } else {
    res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(message) });
    res.end(message);
  }
}

function sendSuccess(res: ServerResponse, status: number, encoding: OtlpEncoding): void {
  // An empty Export*ServiceResponse: zero bytes in protobuf, {} in JSON.
  if (encoding === 'protobuf') {
    res.writeHead(status, { 'content-type': 'application/x-protobuf', 'content-length': 0 });
    res.end();
  } else {
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': 2 });
    res.end('{}');
  }
}

/** An Export*ServiceResponse with partial_success, encoded with the official types (JSON: int64 as a string). */
function sendPartial(res: ServerResponse, status: number, encoding: OtlpEncoding, signal: 'traces' | 'metrics', p: { rejected: number; message: string }): void {
  const name = signal === 'traces' ? 'opentelemetry.proto.collector.trace.v1.ExportTraceServiceResponse' : 'opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceResponse';
  const partialSuccess = { [signal === 'traces' ? 'rejectedSpans' : 'rejectedDataPoints']: p.rejected, errorMessage: p.message };
  const body =
    encoding === 'protobuf'
      ? Buffer.from(loadOtlpProtoRoot().lookupType(name).encode(loadOtlpProtoRoot().lookupType(name).fromObject({ partialSuccess })).finish())
      : Buffer.from(JSON.stringify({ partialSuccess: { ...partialSuccess, [signal === 'traces' ? 'rejectedSpans' : 'rejectedDataPoints']: String(p.rejected) } }));
  res.writeHead(status, { 'content-type': encoding === 'protobuf' ? 'application/x-protobuf' : 'application/json', 'content-length': body.length });
  res.end(body);
}

export async function startOtlpSink(opts: OtlpSinkOptions = {}): Promise<OtlpSink> {
  const spans: SinkSpan[] = [];
  const metricPoints: SinkMetricPoint[] = [];
  const requests: SinkRequest[] = [];
  const errors: string[] = [];
  let status: SinkStatus = opts.status ?? 200;

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const bytes = Buffer.concat(chunks);
    const urlPath = new URL(req.url ?? '/', 'http://sink').pathname;
    const label = `${req.method ?? '?'} ${req.url ?? '?'}`;

    const signal = SIGNAL_BY_PATH[urlPath];
    if (!signal) {
      errors.push(`${label}: unknown path (only POST /v1/traces and /v1/metrics are served)`);
      sendStatus(res, 404, undefined, 'not found');
      return;
    }
    if (req.method !== 'POST') {
      errors.push(`${label}: method not allowed`);
      res.setHeader('allow', 'POST');
      sendStatus(res, 405, undefined, 'method not allowed');
      return;
    }
    const contentType = req.headers['content-type'] ?? '';
    const mediaType = contentType.split(';')[0]!.trim().toLowerCase();
    const encoding: OtlpEncoding | undefined =
      mediaType === 'application/x-protobuf' ? 'protobuf' : mediaType === 'application/json' ? 'json' : undefined;
    if (!encoding) {
      errors.push(`${label}: unsupported Content-Type '${contentType}'`);
      sendStatus(res, 415, undefined, 'unsupported media type');
      return;
    }
    const contentEncoding = (req.headers['content-encoding'] ?? '').trim().toLowerCase();
    const index = requests.length;
    const record: SinkRequest = {
      path: urlPath,
      contentType,
      encoding,
      contentEncoding,
      bytes,
      decodedBytes: bytes,
      status: 0,
      items: 0,
      headers: req.headers,
    };
    requests.push(record);
    const fail = (httpStatus: number, message: string) => {
      const full = `${label} #${index} (${encoding}${contentEncoding ? `, ${contentEncoding}` : ''}): ${message}`;
      record.status = httpStatus;
      record.error = full;
      errors.push(full);
      sendStatus(res, httpStatus, encoding, message);
    };

    if (contentEncoding === 'gzip') {
      try {
        record.decodedBytes = gunzipSync(bytes);
      } catch (e) {
        fail(400, `gunzip failed: ${(e as Error).message}`);
        return;
      }
    } else if (contentEncoding !== '' && contentEncoding !== 'identity') {
      fail(415, `unsupported Content-Encoding '${contentEncoding}'`);
      return;
    }

    let items: SinkSpan[] | SinkMetricPoint[];
    try {
      items = decode(signal, encoding, record.decodedBytes, index);
    } catch (e) {
      fail(400, (e as Error).message);
      return;
    }

    const answer = typeof status === 'function' ? status(req, { path: urlPath, index }) : status;
    record.status = answer;
    record.items = items.length;
    if (answer >= 200 && answer < 300) {
      const partial = opts.partial?.({ path: urlPath, index, items: items.length });
      const kept = partial === undefined ? items : items.slice(0, Math.max(0, items.length - partial.rejected));
      if (signal === 'traces') spans.push(...(kept as SinkSpan[]));
      else metricPoints.push(...(kept as SinkMetricPoint[]));
      if (partial === undefined) sendSuccess(res, answer, encoding);
      else sendPartial(res, answer, encoding, signal, partial);
    } else {
      sendStatus(res, answer, encoding, `test sink configured to answer ${answer}`);
    }
  };

  const server = http.createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      errors.push(`${req.method ?? '?'} ${req.url ?? '?'}: sink internal error: ${(e as Error)?.stack ?? String(e)}`);
      if (!res.headersSent) sendStatus(res, 500, undefined, 'internal error');
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;

  const summary = (): string => {
    const byStatus = new Map<number, number>();
    for (const r of requests) byStatus.set(r.status, (byStatus.get(r.status) ?? 0) + 1);
    const spanNames = [...new Set(spans.map((s) => s.name))];
    const metricNames = [...new Set(metricPoints.map((p) => p.name))];
    const list = (xs: string[], max = 15) => (xs.length > max ? [...xs.slice(0, max), `…+${xs.length - max}`] : xs).join(', ');
    return [
      `requests=${requests.length} (traces=${requests.filter((r) => r.path === '/v1/traces').length}, metrics=${requests.filter((r) => r.path === '/v1/metrics').length}; status ${[...byStatus].map(([s, n]) => `${s}×${n}`).join(' ') || '-'})`,
      `spans=${spans.length} [${list(spanNames)}]`,
      `metricPoints=${metricPoints.length} [${list(metricNames)}]`,
      `errors=${errors.length}${errors.length ? `:\n    ${errors.slice(-5).join('\n    ')}` : ''}`,
    ].join(', ');
  };

  let closed: Promise<void> | undefined;
  const sink: OtlpSink = {
    url: `http://127.0.0.1:${port}`,
    spans,
    metricPoints,
    requests,
    errors,
    async waitFor(predicate: () => boolean, timeoutMs = 15000): Promise<void> {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        let lastError: unknown;
        try {
          if (predicate()) return;
        } catch (e) {
          lastError = e;
        }
        if (Date.now() >= deadline) {
          const why = lastError ? `; predicate threw: ${(lastError as Error)?.message ?? String(lastError)}` : '';
          throw new Error(`OtlpSink.waitFor: condition not met within ${timeoutMs}ms${why}; ${summary()}`);
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    latestMetric(name: string, attrsFilter?: Record<string, unknown>): SinkMetricPoint[] {
      const matches = (p: SinkMetricPoint) =>
        p.name === name &&
        (!attrsFilter || Object.entries(attrsFilter).every(([k, v]) => isDeepStrictEqual(p.attributes[k], v)));
      let latest = -1;
      for (const p of metricPoints) if (matches(p) && p.requestIndex > latest) latest = p.requestIndex;
      return latest < 0 ? [] : metricPoints.filter((p) => p.requestIndex === latest && matches(p));
    },
    setStatus(next: SinkStatus): void {
      status = next;
    },
    clear(): void {
      spans.length = 0;
      metricPoints.length = 0;
      requests.length = 0;
      errors.length = 0;
    },
    close(): Promise<void> {
      closed ??= new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections(); // exporters keep connections alive
      });
      return closed;
    },
  };
  return sink;
}
