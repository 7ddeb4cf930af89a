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
 */
import type { Signal } from '../config/otel-env.js';
import { protoFields } from './otlp/protobuf-reader.js';
import type { Encoding } from './spool.js';

export interface PartialSuccess {
  /** Spans (traces) or data points (metrics) the endpoint rejected. */
  rejected: number;
  /** What it said (may be empty). */
  message: string;
}

/** Longest message kept (the endpoint's words go to the log and /stats). */
const MAX_MESSAGE = 300;

/** The partial success in a response body, or undefined when there is none (or it cannot be read). */
export function partialSuccessOf(signal: Signal, encoding: Encoding, body: Uint8Array | undefined): PartialSuccess | undefined {
  if (body === undefined || body.byteLength === 0) return undefined;
  try {
    return encoding === 'json' ? fromJson(signal, body) : fromProtobuf(body);
  } catch {
    // Not a response we can read (a proxy's page, garbage): the request itself was accepted.
    return undefined;
  }
}

function fromProtobuf(body: Uint8Array): PartialSuccess | undefined {
  for (const [field, value] of protoFields(body)) {
    if (field !== 1 || !(value instanceof Uint8Array)) continue;
    let rejected = 0;
    let message = '';
    for (const [f, v] of protoFields(value)) {
      if (f === 1 && typeof v === 'number') rejected = v;
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
