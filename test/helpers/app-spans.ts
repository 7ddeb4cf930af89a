/**
 * Application spans as OTLP requests, encoded with the official protobuf definitions
 * (./proto, protobufjs): an encoder independent of the bridge's decoder. The span shapes follow
 * ../../../shared/app-trace-join.md §1 (each in-process instrumentation's name, kind and
 * request-id attribute); `fromTruth` derives them from a capture's ground truth, so a real SDK's
 * CSM datagrams meet the app spans its instrumentation would have made for the same calls.
 */
import { randomBytes } from 'node:crypto';
import type { CsmApiCall, CsmAttempt, CsmEvent } from '../../src/decode/types.js';
import { attemptEnd, attemptStart, callEnd, callStart } from '../../src/correlate/retry-models.js';
import { loadOtlpProtoRoot } from './otlp-sink.js';

export interface FixtureSpan {
  traceId: Buffer;
  spanId: Buffer;
  parentSpanId?: Buffer;
  name: string;
  /** OTLP SpanKind: 1 internal, 3 client, 4 producer */
  kind: number;
  startMs: number;
  endMs: number;
  attributes: Record<string, string | number | boolean | string[]>;
  /** The truth: capture lines of the CSM call this span is the app's view of (call line first). */
  truthLines?: number[];
}

/** The instrumentations whose shapes are built. */
export type Shape = 'botocore' | 'java-v1' | 'ruby-internal';

const idOf = (a: CsmAttempt | CsmApiCall): string | undefined => a.xAmznRequestId || a.xAmzRequestId || undefined;

/**
 * App spans for the calls of a capture, in the shape `shape` makes them:
 * - botocore (opentelemetry-instrumentation-botocore): one CLIENT span per call, `aws.request_id`
 *   = the final attempt's id (falling back to x-amz-id-2), none on a transport error;
 * - java-v1 (the agent's aws-sdk-1.11): `aws.request_id` only on success, and never for S3;
 * - ruby-internal (aws_sdk with the SDK's telemetry, internal spans on): a CLIENT span without id
 *   and one INTERNAL `Handler.NetHttp` span per attempt with that attempt's `aws.request_id`.
 */
export function fromTruth(
  shape: Shape,
  calls: readonly { call: CsmApiCall; attempts: CsmAttempt[]; lines: number[] }[],
): FixtureSpan[] {
  const out: FixtureSpan[] = [];
  for (const { call, attempts, lines } of calls) {
    const traceId = randomBytes(16);
    const spanId = randomBytes(8);
    const last = attempts[attempts.length - 1];
    const failed = (call.finalHttpStatusCode ?? 0) >= 400 || call.finalAwsException !== undefined || call.finalSdkException !== undefined;
    const attributes: FixtureSpan['attributes'] = { 'rpc.system': 'aws-api', 'rpc.service': call.service, 'rpc.method': call.api };
    if (shape === 'botocore') {
      const id = last === undefined ? undefined : (idOf(last) ?? (last.xAmzId2 || undefined));
      if (id !== undefined && last?.httpStatusCode !== undefined && last.httpStatusCode > 0) attributes['aws.request_id'] = id;
      attributes['retry_attempts'] = Math.max(0, attempts.length - 1);
    } else if (shape === 'java-v1') {
      attributes['rpc.service'] = `Amazon ${call.service}`;
      const id = last === undefined ? undefined : idOf(last);
      if (!failed && call.service !== 'S3' && id !== undefined) attributes['aws.request_id'] = id;
    }
    const start = callStart(call);
    const end = callEnd(call);
    out.push({ traceId, spanId, name: `${call.service}.${call.api}`, kind: 3, startMs: start, endMs: end, attributes, truthLines: lines });
    if (shape === 'ruby-internal') {
      for (const a of attempts) {
        const id = idOf(a);
        out.push({
          traceId,
          spanId: randomBytes(8),
          parentSpanId: spanId,
          name: 'Handler.NetHttp',
          kind: 1,
          startMs: attemptStart(a),
          endMs: attemptEnd(a),
          attributes: { 'http.method': 'POST', ...(a.httpStatusCode !== undefined ? { 'http.status_code': a.httpStatusCode } : {}), ...(id !== undefined ? { 'aws.request_id': id } : {}) },
        });
      }
    }
  }
  return out;
}

/** The calls of a capture as the truth groups them (calls without an ApiCall left out). */
export function truthCalls(
  events: readonly { line: number; event: CsmEvent }[],
  truth: readonly { api_call_line: number | null; attempt_lines: number[] }[],
): { call: CsmApiCall; attempts: CsmAttempt[]; lines: number[] }[] {
  const byLine = new Map(events.map((e) => [e.line, e.event]));
  return truth
    .filter((t) => t.api_call_line !== null)
    .map((t) => ({
      call: byLine.get(t.api_call_line!) as CsmApiCall,
      attempts: t.attempt_lines.map((l) => byLine.get(l) as CsmAttempt),
      lines: [t.api_call_line!, ...t.attempt_lines],
    }));
}

const nanos = (ms: number): string => (BigInt(Math.round(ms * 1000)) * 1000n).toString();

function anyValue(v: string | number | boolean | string[]): Record<string, unknown> {
  if (Array.isArray(v)) return { arrayValue: { values: v.map((s) => ({ stringValue: s })) } };
  if (typeof v === 'string') return { stringValue: v };
  if (typeof v === 'boolean') return { boolValue: v };
  return Number.isInteger(v) ? { intValue: v } : { doubleValue: v };
}

/** An ExportTraceServiceRequest object (protobuf JSON mapping) for spans of one resource. */
function requestObject(spans: readonly FixtureSpan[], serviceName: string, scope: string): Record<string, unknown> {
  return {
    resourceSpans: [
      {
        resource: { attributes: [{ key: 'service.name', value: { stringValue: serviceName } }] },
        scopeSpans: [
          {
            scope: { name: scope },
            spans: spans.map((s) => ({
              traceId: s.traceId,
              spanId: s.spanId,
              ...(s.parentSpanId ? { parentSpanId: s.parentSpanId } : {}),
              name: s.name,
              kind: s.kind,
              startTimeUnixNano: nanos(s.startMs),
              endTimeUnixNano: nanos(s.endMs),
              attributes: Object.entries(s.attributes).map(([key, value]) => ({ key, value: anyValue(value) })),
            })),
          },
        ],
      },
    ],
  };
}

const REQUEST = 'opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest';

/** The request in protobuf, encoded by protobufjs from the official .proto files. */
export function protobufRequest(spans: readonly FixtureSpan[], serviceName = 'app', scope = 'opentelemetry.instrumentation.botocore'): Buffer {
  const type = loadOtlpProtoRoot().lookupType(REQUEST);
  const msg = type.fromObject(requestObject(spans, serviceName, scope));
  const err = type.verify(msg);
  if (err) throw new Error(err);
  return Buffer.from(type.encode(msg).finish());
}

/** The request in OTLP/JSON (ids as hex, as the OTLP JSON encoding has them). */
export function jsonRequest(spans: readonly FixtureSpan[], serviceName = 'app', scope = 'opentelemetry.instrumentation.botocore'): string {
  const o = requestObject(spans, serviceName, scope) as { resourceSpans: { scopeSpans: { spans: Record<string, unknown>[] }[] }[] };
  for (const s of o.resourceSpans[0]!.scopeSpans[0]!.spans) {
    for (const k of ['traceId', 'spanId', 'parentSpanId']) if (Buffer.isBuffer(s[k])) s[k] = (s[k] as Buffer).toString('hex');
  }
  return JSON.stringify(o);
}
