/**
 * One ApiCallAttempt → its span and metric points (otel-mapping.md §1.5, §2.1): under its call
 * (call.ts) or alone as an orphan (orphan.ts).
 */
import { ATTR_CLOUD_REGION, ATTR_HTTP_REQUEST_RESEND_COUNT, ATTR_HTTP_RESPONSE_STATUS_CODE, ATTR_RPC_SERVICE } from './semconv.js';
import type { CsmAttempt } from '../decode/types.js';
import { csmMetricBase, nonEmpty, putEndpoint, putErrorType, putRequestIds, requestIdOf, type TranslateOptions } from './attributes.js';
import { classifyOutcome, exceptionEvent, spanStatus, type ErrorClassification } from './error-type.js';
import { METRIC_CSM_ATTEMPT_DURATION, METRIC_CSM_ATTEMPT_PHASE_DURATION } from './instruments.js';
import {
  CSM_ACCESS_KEY,
  CSM_ATTEMPT_NUMBER,
  CSM_CONNECTION_REUSED,
  CSM_LATENCY_ACQUIRE_CONNECTION_MS,
  CSM_LATENCY_CONNECT_MS,
  CSM_LATENCY_DNS_MS,
  CSM_LATENCY_REQUEST_MS,
  CSM_LATENCY_SSL_MS,
  CSM_LATENCY_TCP_MS,
  CSM_PHASE,
} from './keys.js';
import type { Operation } from './names.js';
import { attemptWindow, latencySeconds } from './timing.js';
import type { Attributes, MetricPoint, SpanEventRecord, SpanRecord } from './types.js';

export interface AttemptResult {
  span: SpanRecord;
  metrics: MetricPoint[];
}

export function classifyAttempt(a: CsmAttempt): ErrorClassification {
  return classifyOutcome(a.awsException, a.awsExceptionMessage, a.sdkException, a.sdkExceptionMessage, a.httpStatusCode);
}

/**
 * One attempt span + its `csm.attempt.duration` point. `number` is the 1-based attempt
 * number, or undefined when unknown (orphans without a Go attempt number).
 */
export function translateAttempt(a: CsmAttempt, number: number | undefined, op: Operation, opts: TranslateOptions): AttemptResult {
  const { start, end } = attemptWindow(a);
  const cls = classifyAttempt(a);

  const attrs: Attributes = {};
  if (number !== undefined) {
    attrs[CSM_ATTEMPT_NUMBER] = number;
    if (number > 1) attrs[ATTR_HTTP_REQUEST_RESEND_COUNT] = number - 1;
  }
  if (a.httpStatusCode !== undefined) attrs[ATTR_HTTP_RESPONSE_STATUS_CODE] = a.httpStatusCode;
  putEndpoint(attrs, a);
  putRequestIds(attrs, requestIdOf(a), nonEmpty(a.xAmzId2), opts);
  putErrorType(attrs, cls);
  if (a.connectionReused !== undefined) attrs[CSM_CONNECTION_REUSED] = a.connectionReused;
  if (a.dnsLatency !== undefined) attrs[CSM_LATENCY_DNS_MS] = a.dnsLatency;
  if (a.tcpLatency !== undefined) attrs[CSM_LATENCY_TCP_MS] = a.tcpLatency;
  if (a.sslLatency !== undefined) attrs[CSM_LATENCY_SSL_MS] = a.sslLatency;
  if (a.connectLatency !== undefined) attrs[CSM_LATENCY_CONNECT_MS] = a.connectLatency;
  if (a.requestLatency !== undefined) attrs[CSM_LATENCY_REQUEST_MS] = a.requestLatency;
  if (a.acquireConnectionLatency !== undefined) attrs[CSM_LATENCY_ACQUIRE_CONNECTION_MS] = a.acquireConnectionLatency;
  // Already redacted by decode (suffix or salted hash) and only present when the operator opted in.
  const accessKey = nonEmpty(a.accessKey);
  if (accessKey !== undefined) attrs[CSM_ACCESS_KEY] = accessKey;

  const events: SpanEventRecord[] = [];
  const ev = exceptionEvent(cls, end);
  if (ev !== undefined) events.push(ev);

  const span: SpanRecord = {
    name: op.names.attemptSpan,
    kind: opts.attemptSpanKind,
    startMs: start,
    endMs: end,
    attributes: attrs,
    status: spanStatus(cls),
    events,
    children: [],
  };

  const metrics: MetricPoint[] = [];
  const seconds = latencySeconds(a.attemptLatency);
  if (seconds !== undefined) {
    const m = csmMetricBase(op, opts);
    if (a.httpStatusCode !== undefined) m[ATTR_HTTP_RESPONSE_STATUS_CODE] = a.httpStatusCode;
    putErrorType(m, cls);
    if (a.connectionReused !== undefined) m[CSM_CONNECTION_REUSED] = a.connectionReused;
    metrics.push({ instrument: METRIC_CSM_ATTEMPT_DURATION, value: seconds, attributes: m });
  }
  return { span, metrics };
}

/** Appends the attempt's `csm.attempt.phase.duration` points to `out` (only calls' attempts have them, §2.1). */
export function phaseMetrics(a: CsmAttempt, op: Operation, out: MetricPoint[]): void {
  if (
    a.dnsLatency === undefined && a.tcpLatency === undefined && a.sslLatency === undefined &&
    a.connectLatency === undefined && a.requestLatency === undefined && a.acquireConnectionLatency === undefined
  ) return;
  phasePoint(out, 'dns', a.dnsLatency, op);
  phasePoint(out, 'tcp', a.tcpLatency, op);
  phasePoint(out, 'tls', a.sslLatency, op);
  phasePoint(out, 'connect', a.connectLatency, op);
  phasePoint(out, 'request', a.requestLatency, op);
  phasePoint(out, 'acquire_connection', a.acquireConnectionLatency, op);
}

function phasePoint(out: MetricPoint[], phase: string, latency: number | undefined, op: Operation): void {
  const seconds = latencySeconds(latency);
  if (seconds === undefined) return;
  // csm.phase first, then csmMetricBase(op, undefined)'s keys.
  const attributes: Attributes = {};
  attributes[CSM_PHASE] = phase;
  attributes[ATTR_RPC_SERVICE] = op.service;
  if (op.region !== undefined) attributes[ATTR_CLOUD_REGION] = op.region;
  out.push({ instrument: METRIC_CSM_ATTEMPT_PHASE_DURATION, value: seconds, attributes });
}
