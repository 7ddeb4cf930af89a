/**
 * OTLP partial success (https://opentelemetry.io/docs/specs/otlp/#partial-success): the
 * endpoint accepted the request (HTTP 200, gRPC OK) but says in the response that it rejected
 * some of its spans or data points, and why. Not retried (the spec: the same data would be
 * rejected again), but counted: the spans are not delivered (`spans.failed`), the points are
 * in `metricPoints.rejected`, and the message is the signal's last export error. A message
 * with nothing rejected is a warning (logged).
 *
 * Export{Trace,Metrics}ServiceResponse: 1 = partial_success { 1 = rejected_spans or
 * rejected_data_points (int64), 2 = error_message }; OTLP/JSON: { partialSuccess:
 * { rejectedSpans | rejectedDataPoints (an int64: a string or a number), errorMessage } }.
 *
 * The count is the endpoint's word, not a fact: it is clamped to 0..what the request carried
 * (its spans, or its data points, counted in the request body only when a count arrives), so a
 * negative int64 (read as 1.8e19 unsigned) or a made-up number cannot inflate a counter.
 */
import type { Signal } from '../config/otel-env.js';
import { int64, protoFields } from './otlp/protobuf-reader.js';
import type { Encoding } from './spool.js';

export interface PartialSuccess {
  /** Spans (traces) or data points (metrics) the endpoint rejected. */
  rejected: number;
  /** What it said (may be empty). */
  message: string;
}

/**
 * Largest export answer read: an OTLP/HTTP body, a gRPC response message (the OTLP exporters' and
 * the collector's bound). An answer that says "accepted" and is larger is delivered all the same:
 * counted as exported, its partial success unread (said in a warning).
 */
export const MAX_RESPONSE_BYTES = 4 * 1024 * 1024;

/** Longest message kept (the endpoint's words go to the log and /stats). */
const MAX_MESSAGE = 300;

/** The request a response answers: its body (uncompressed, in the response's encoding) and its item count (spans; 1 per metrics request). */
export interface SentRequest {
  body: Uint8Array;
  items: number;
}

/** The partial success in a response body, or undefined when there is none (or it cannot be read). */
export function partialSuccessOf(signal: Signal, encoding: Encoding, body: Uint8Array | undefined, sent: SentRequest): PartialSuccess | undefined {
  if (body === undefined || body.byteLength === 0) return undefined;
  let p: PartialSuccess | undefined;
  try {
    p = encoding === 'json' ? fromJson(signal, body) : fromProtobuf(body);
  } catch {
    // Not a response we can read (a proxy's page, garbage): the request itself was accepted.
    return undefined;
  }
  if (p === undefined || p.rejected === 0) return p;
  return { ...p, rejected: Math.min(p.rejected, sentItems(signal, encoding, sent)) };
}

/** Spans, or data points, in a request (0 when its body cannot be read: nothing is known to be rejected). */
export function sentItems(signal: Signal, encoding: Encoding, sent: SentRequest): number {
  if (signal === 'traces') return sent.items;
  try {
    return encoding === 'json' ? jsonDataPoints(sent.body) : protobufDataPoints(sent.body);
  } catch {
    return 0;
  }
}

/** Metric fields that hold data points (gauge, sum, histogram, exponential_histogram, summary); field 1 of each is data_points. */
const POINT_HOLDERS = new Set([5, 7, 9, 10, 11]);

/** ExportMetricsServiceRequest: 1 resource_metrics { 2 scope_metrics { 2 metrics { holder { 1 data_points } } } }. */
function protobufDataPoints(body: Uint8Array): number {
  let n = 0;
  const inner = (buf: Uint8Array, field: number, each: (b: Uint8Array) => void) => {
    for (const [f, v] of protoFields(buf)) if (f === field && v instanceof Uint8Array) each(v);
  };
  inner(body, 1, (rm) =>
    inner(rm, 2, (sm) =>
      inner(sm, 2, (metric) => {
        for (const [f, holder] of protoFields(metric)) if (POINT_HOLDERS.has(f) && holder instanceof Uint8Array) inner(holder, 1, () => n++);
      }),
    ),
  );
  return n;
}

function jsonDataPoints(body: Uint8Array): number {
  type Holder = { dataPoints?: unknown[] } | undefined;
  const doc = JSON.parse(Buffer.from(body).toString('utf8')) as {
    resourceMetrics?: { scopeMetrics?: { metrics?: Record<string, Holder>[] }[] }[];
  } | null;
  let n = 0;
  for (const rm of doc?.resourceMetrics ?? [])
    for (const sm of rm?.scopeMetrics ?? [])
      for (const m of sm?.metrics ?? [])
        for (const k of ['gauge', 'sum', 'histogram', 'exponentialHistogram', 'summary']) {
          const points = m?.[k]?.dataPoints;
          if (Array.isArray(points)) n += points.length;
        }
  return n;
}

function fromProtobuf(body: Uint8Array): PartialSuccess | undefined {
  for (const [field, value] of protoFields(body)) {
    if (field !== 1 || !(value instanceof Uint8Array)) continue;
    let rejected = 0;
    let message = '';
    for (const [f, v] of protoFields(value)) {
      if (f === 1 && typeof v === 'number') rejected = int64(v);
      if (f === 2 && v instanceof Uint8Array) message = Buffer.from(v).toString('utf8');
    }
    return result(rejected, message);
  }
  return undefined;
}

function fromJson(signal: Signal, body: Uint8Array): PartialSuccess | undefined {
  const doc = JSON.parse(Buffer.from(body).toString('utf8')) as { partialSuccess?: Record<string, unknown> } | null;
  const p = doc?.partialSuccess;
  if (p === undefined || p === null || typeof p !== 'object') return undefined;
  const raw = p[signal === 'traces' ? 'rejectedSpans' : 'rejectedDataPoints'];
  const rejected = typeof raw === 'number' || typeof raw === 'string' ? Number(raw) : 0;
  return result(Number.isFinite(rejected) ? rejected : 0, typeof p.errorMessage === 'string' ? p.errorMessage : '');
}

function result(rejected: number, message: string): PartialSuccess | undefined {
  if (rejected <= 0 && message === '') return undefined;
  const m = message.replace(/\s+/g, ' ');
  return { rejected: Math.max(0, Math.floor(rejected)), message: m.length > MAX_MESSAGE ? `${m.slice(0, MAX_MESSAGE)}…` : m };
}
