/**
 * translate: one correlated ApiCall (or orphan attempt) -> span tree + metric
 * points, as plain records (otel-mapping.md §1, §2).
 *
 * Pure: no I/O, no clock, no shared mutable state but a bounded memo of
 * normalised names (`namesOf`), which never changes an output. Every time is
 * an epoch-ms number derived from the CSM events themselves.
 */
import {
  ATTR_ERROR_TYPE,
  ATTR_EXCEPTION_MESSAGE,
  ATTR_EXCEPTION_TYPE,
  ATTR_HTTP_REQUEST_RESEND_COUNT,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_NETWORK_PEER_ADDRESS,
  ATTR_RPC_METHOD,
  ATTR_RPC_SYSTEM_NAME,
  ATTR_SERVER_ADDRESS,
  ATTR_SERVER_PORT,
  ATTR_USER_AGENT_ORIGINAL,
  ERROR_TYPE_VALUE_OTHER,
  METRIC_RPC_CLIENT_CALL_DURATION,
} from '@opentelemetry/semantic-conventions';
import {
  ATTR_AWS_EXTENDED_REQUEST_ID,
  ATTR_AWS_REQUEST_ID,
  ATTR_CLOUD_REGION,
  ATTR_RPC_SERVICE,
  ATTR_RPC_SYSTEM,
} from '@opentelemetry/semantic-conventions/incubating';
import type { Correlated } from '../correlate/types.js';
import type { CsmApiCall, CsmAttempt } from '../decode/types.js';
import { classifyOutcome, statusMessage, type ErrorClassification } from './error-type.js';
import { attemptSpanName, callSpanName, normaliseApi, normaliseService } from './names.js';
import type {
  AttributeValue,
  Attributes,
  MetricPoint,
  SpanEventRecord,
  SpanRecord,
  Translation,
} from './types.js';

export interface TranslateOptions {
  /** Kind of the attempt spans (and orphan spans); the ApiCall span is always CLIENT (§1.3). */
  attemptSpanKind: 'client' | 'internal';
  /** OTEL_SEMCONV_STABILITY_OPT_IN: 'old' (default), 'stable' (=rpc), 'dup' (=rpc/dup) */
  rpcSemconv: 'old' | 'stable' | 'dup';
  /** CSM_COMPAT_JS_INSTRUMENTATION_KEYS: also write aws.request.id / aws.request.extended_id */
  jsInstrumentationKeys: boolean;
}

// ---------------------------------------------------------------------------
// Keys and values that have no semconv constant.

/** `rpc.system` / `rpc.system.name` value used by the aws-sdk semconv page and instrumentation-aws-sdk. */
export const RPC_SYSTEM_AWS_API = 'aws-api';
/** instrumentation-aws-sdk 0.79's non-semconv request-id keys (§1.4 compatibility flag). */
export const ATTR_JS_AWS_REQUEST_ID = 'aws.request.id';
export const ATTR_JS_AWS_EXTENDED_REQUEST_ID = 'aws.request.extended_id';
/** Used when an endpoint host is known but its port is not (§1.4). */
export const DEFAULT_SERVER_PORT = 443;

export const CSM_CLIENT_ID = 'csm.client_id';
export const CSM_ATTEMPT_COUNT = 'csm.attempt_count';
export const CSM_MAX_RETRIES_EXCEEDED = 'csm.max_retries_exceeded';
export const CSM_ATTEMPTS_MISSING = 'csm.attempts_missing';
export const CSM_ATTEMPT_NUMBER = 'csm.attempt.number';
export const CSM_CONNECTION_REUSED = 'csm.connection_reused';
export const CSM_ACCESS_KEY = 'csm.access_key';
export const CSM_ORPHAN = 'csm.orphan';
export const CSM_ORPHAN_REASON = 'csm.orphan_reason';
export const CSM_PHASE = 'csm.phase';
export const CSM_LATENCY_DNS_MS = 'csm.latency.dns_ms';
export const CSM_LATENCY_TCP_MS = 'csm.latency.tcp_ms';
export const CSM_LATENCY_SSL_MS = 'csm.latency.ssl_ms';
export const CSM_LATENCY_CONNECT_MS = 'csm.latency.connect_ms';
export const CSM_LATENCY_REQUEST_MS = 'csm.latency.request_ms';
export const CSM_LATENCY_ACQUIRE_CONNECTION_MS = 'csm.latency.acquire_connection_ms';

export const EXCEPTION_EVENT_NAME = 'exception';

// ---------------------------------------------------------------------------
// Metric instruments (§2.1).

export const METRIC_CSM_ATTEMPT_DURATION = 'csm.attempt.duration';
export const METRIC_CSM_CALL_ATTEMPTS = 'csm.call.attempts';
export const METRIC_CSM_CALL_RETRIES = 'csm.call.retries';
export const METRIC_CSM_CALL_MAX_RETRIES_EXCEEDED = 'csm.call.max_retries_exceeded';
export const METRIC_CSM_ATTEMPT_PHASE_DURATION = 'csm.attempt.phase.duration';

/** Semconv buckets for call/request durations, in seconds. */
export const DURATION_BUCKETS_S: readonly number[] = [
  0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10,
];
export const ATTEMPT_COUNT_BUCKETS: readonly number[] = [1, 2, 3, 4, 5, 6, 8, 10];
export const PHASE_DURATION_BUCKETS_S: readonly number[] = [
  0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
];

export interface MetricInstrument {
  name: string;
  kind: 'histogram' | 'counter';
  unit: string;
  description: string;
  /** Explicit bucket boundaries (histograms only); always pass them as `advice.explicitBucketBoundaries`. */
  buckets?: number[];
}

export const METRIC_INSTRUMENTS: readonly MetricInstrument[] = [
  {
    name: METRIC_RPC_CLIENT_CALL_DURATION,
    kind: 'histogram',
    unit: 's',
    description: 'Duration of AWS SDK API calls (including retries), from CSM ApiCall.Latency.',
    buckets: [...DURATION_BUCKETS_S],
  },
  {
    name: METRIC_CSM_ATTEMPT_DURATION,
    kind: 'histogram',
    unit: 's',
    description: 'Duration of individual AWS SDK request attempts, from CSM ApiCallAttempt.AttemptLatency.',
    buckets: [...DURATION_BUCKETS_S],
  },
  {
    name: METRIC_CSM_CALL_ATTEMPTS,
    kind: 'histogram',
    unit: '{attempt}',
    description: 'Number of attempts made per AWS SDK API call (CSM ApiCall.AttemptCount).',
    buckets: [...ATTEMPT_COUNT_BUCKETS],
  },
  {
    name: METRIC_CSM_CALL_RETRIES,
    kind: 'counter',
    unit: '{retry}',
    description: 'Retries made by AWS SDK API calls (AttemptCount - 1).',
  },
  {
    name: METRIC_CSM_CALL_MAX_RETRIES_EXCEEDED,
    kind: 'counter',
    unit: '{call}',
    description: 'AWS SDK API calls reported with MaxRetriesExceeded=1.',
  },
  {
    name: METRIC_CSM_ATTEMPT_PHASE_DURATION,
    kind: 'histogram',
    unit: 's',
    description: 'Connection/request phase durations of AWS SDK attempts, when the SDK reports them.',
    buckets: [...PHASE_DURATION_BUCKETS_S],
  },
];

// ---------------------------------------------------------------------------
// Small helpers.

/**
 * Sets `key` when `value` is defined. Hot paths write `if (v !== undefined) attrs[K] = v` inline
 * instead: every store in one shared helper sees every key and shape and is slow (megamorphic).
 */
function put(attrs: Attributes, key: string, value: AttributeValue | undefined): void {
  if (value !== undefined) attrs[key] = value;
}

function nonEmpty(s: string | undefined): string | undefined {
  return s === undefined || s === '' ? undefined : s;
}

/** A latency usable for timing: missing, negative or non-finite counts as 0. */
function latencyMs(x: number | undefined): number {
  return x !== undefined && Number.isFinite(x) && x > 0 ? x : 0;
}

/** A latency usable as a metric value (seconds), or undefined when not reported. */
function latencySeconds(x: number | undefined): number | undefined {
  return x !== undefined && Number.isFinite(x) && x >= 0 ? x / 1000 : undefined;
}

function clamp(x: number, lo: number, hi: number): number {
  return x < lo ? lo : x > hi ? hi : x;
}

/** Start/end of an attempt (§1.8): Go v1 stamps the end, everyone else the start. */
function attemptWindow(a: CsmAttempt): { start: number; end: number } {
  const lat = latencyMs(a.attemptLatency);
  const start = a.timestampMarksEnd ? a.timestamp - lat : a.timestamp;
  return { start, end: start + lat };
}

/** Request id of one attempt: `x-amzn-RequestId` first, then S3's `x-amz-request-id`. */
function requestIdOf(x: { xAmznRequestId?: string; xAmzRequestId?: string }): string | undefined {
  return nonEmpty(x.xAmznRequestId) ?? nonEmpty(x.xAmzRequestId);
}

/** Everything derived from one (Service, Api) pair alone. */
interface Names {
  /** Normalised service and api (names.ts). */
  service: string;
  api: string;
  callSpan: string;
  attemptSpan: string;
  /** `rpc.method` under the stable / dup semconv: `Service/Api`. */
  qualifiedMethod: string;
}

/*
 * Names are cached per raw (Service, Api): normalising and joining them per span costs a regex and
 * three new strings. Service and Api come from any local sender, so the cache is bounded: when it
 * holds NAMES_CACHE_MAX pairs it starts over.
 */
const NAMES_CACHE_MAX = 4096;
let namesCache = new Map<string, Map<string, Names>>();
let namesCached = 0;

function namesOf(rawService: string, rawApi: string): Names {
  let byApi = namesCache.get(rawService);
  let names = byApi?.get(rawApi);
  if (names !== undefined) return names;
  if (namesCached >= NAMES_CACHE_MAX) {
    namesCache = new Map();
    namesCached = 0;
    byApi = undefined;
  }
  if (byApi === undefined) {
    byApi = new Map();
    namesCache.set(rawService, byApi);
  }
  const service = normaliseService(rawService);
  const api = normaliseApi(rawApi);
  names = { service, api, callSpan: callSpanName(service, api), attemptSpan: attemptSpanName(service, api), qualifiedMethod: `${service}/${api}` };
  byApi.set(rawApi, names);
  namesCached++;
  return names;
}

interface Identity {
  service: string;
  api: string;
  region: string | undefined;
  names: Names;
}

function identityOf(e: { service: string; api: string; region?: string }): Identity {
  const names = namesOf(e.service, e.api);
  return { service: names.service, api: names.api, region: nonEmpty(e.region), names };
}

/**
 * `rpc.method` value per stability mode. 'old' keeps the AWS style
 * (`PutObject`); 'stable' and 'dup' use the fully qualified `Service/Api`.
 * 'dup' would need two values under one key, which an attribute cannot
 * hold, so it takes the stable form for `rpc.method` and keeps the old
 * `rpc.system` / `rpc.service` keys alongside (the "dup" part).
 */
function rpcMethod(id: Identity, opts: TranslateOptions): string {
  return opts.rpcSemconv === 'old' ? id.api : id.names.qualifiedMethod;
}

/** RPC identity attributes of the ApiCall span, the orphan span and `rpc.client.call.duration`. */
function rpcAttributes(id: Identity, opts: TranslateOptions): Attributes {
  const attrs: Attributes = {};
  if (opts.rpcSemconv !== 'stable') attrs[ATTR_RPC_SYSTEM] = RPC_SYSTEM_AWS_API;
  attrs[ATTR_RPC_SYSTEM_NAME] = RPC_SYSTEM_AWS_API;
  if (opts.rpcSemconv !== 'stable') attrs[ATTR_RPC_SERVICE] = id.service;
  attrs[ATTR_RPC_METHOD] = rpcMethod(id, opts);
  if (id.region !== undefined) attrs[ATTR_CLOUD_REGION] = id.region;
  return attrs;
}

/**
 * Base attributes of the bridge's own `csm.*` instruments. These are not
 * semconv instruments, so the `*` of §2.1 (drop `rpc.service` under
 * `rpc` opt-in) does not apply to them: `rpc.service` stays, otherwise
 * `csm.attempt.phase.duration` (which has no `rpc.method`) would lose its
 * only service dimension. `rpc.method` follows the opt-in so that it has the
 * same value on spans and on every metric.
 */
function csmMetricBase(id: Identity, opts: TranslateOptions, withMethod: boolean): Attributes {
  const attrs: Attributes = {};
  attrs[ATTR_RPC_SERVICE] = id.service;
  if (withMethod) attrs[ATTR_RPC_METHOD] = rpcMethod(id, opts);
  if (id.region !== undefined) attrs[ATTR_CLOUD_REGION] = id.region;
  return attrs;
}

/** The attempt reports at least one phase latency. */
function hasPhases(a: CsmAttempt): boolean {
  return (
    a.dnsLatency !== undefined || a.tcpLatency !== undefined || a.sslLatency !== undefined ||
    a.connectLatency !== undefined || a.requestLatency !== undefined || a.acquireConnectionLatency !== undefined
  );
}

function exceptionEvent(cls: ErrorClassification, timeMs: number): SpanEventRecord | undefined {
  if (cls.exception === undefined) return undefined;
  const attributes: Attributes = { [ATTR_EXCEPTION_TYPE]: cls.exception.type };
  if (cls.exception.message !== undefined) attributes[ATTR_EXCEPTION_MESSAGE] = cls.exception.message;
  return { name: EXCEPTION_EVENT_NAME, timeMs, attributes };
}

function errorStatus(cls: ErrorClassification): SpanRecord['status'] {
  const message = statusMessage(cls.exception);
  return message === undefined ? { code: 'error' } : { code: 'error', message };
}

// ---------------------------------------------------------------------------
// Attempts.

interface AttemptResult {
  span: SpanRecord;
  metrics: MetricPoint[];
}

/**
 * One attempt span + its metric points. `number` is the 1-based attempt
 * number, or undefined when unknown (orphans without a Go attempt number).
 */
function translateAttempt(
  a: CsmAttempt,
  number: number | undefined,
  id: Identity,
  opts: TranslateOptions,
): AttemptResult {
  const { start, end } = attemptWindow(a);
  const cls = classifyAttempt(a);

  const attrs: Attributes = {};
  if (number !== undefined) {
    attrs[CSM_ATTEMPT_NUMBER] = number;
    if (number > 1) attrs[ATTR_HTTP_REQUEST_RESEND_COUNT] = number - 1;
  }
  if (a.httpStatusCode !== undefined) attrs[ATTR_HTTP_RESPONSE_STATUS_CODE] = a.httpStatusCode;
  const address = nonEmpty(a.serverAddress);
  if (address !== undefined) {
    attrs[ATTR_SERVER_ADDRESS] = address;
    attrs[ATTR_SERVER_PORT] = a.serverPort ?? DEFAULT_SERVER_PORT;
  }
  const peer = nonEmpty(a.destinationIp);
  if (peer !== undefined) attrs[ATTR_NETWORK_PEER_ADDRESS] = peer;
  const requestId = requestIdOf(a);
  const extendedId = nonEmpty(a.xAmzId2);
  if (requestId !== undefined) attrs[ATTR_AWS_REQUEST_ID] = requestId;
  if (extendedId !== undefined) attrs[ATTR_AWS_EXTENDED_REQUEST_ID] = extendedId;
  if (opts.jsInstrumentationKeys) {
    if (requestId !== undefined) attrs[ATTR_JS_AWS_REQUEST_ID] = requestId;
    if (extendedId !== undefined) attrs[ATTR_JS_AWS_EXTENDED_REQUEST_ID] = extendedId;
  }
  if (cls.errorType !== undefined) attrs[ATTR_ERROR_TYPE] = cls.errorType;
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
    name: id.names.attemptSpan,
    kind: opts.attemptSpanKind,
    startMs: start,
    endMs: end,
    attributes: attrs,
    status: cls.failed ? errorStatus(cls) : { code: 'unset' },
    events,
    children: [],
  };

  const metrics: MetricPoint[] = [];
  const seconds = latencySeconds(a.attemptLatency);
  if (seconds !== undefined) {
    const m = csmMetricBase(id, opts, true);
    if (a.httpStatusCode !== undefined) m[ATTR_HTTP_RESPONSE_STATUS_CODE] = a.httpStatusCode;
    if (cls.errorType !== undefined) m[ATTR_ERROR_TYPE] = cls.errorType;
    if (a.connectionReused !== undefined) m[CSM_CONNECTION_REUSED] = a.connectionReused;
    metrics.push({ instrument: METRIC_CSM_ATTEMPT_DURATION, value: seconds, attributes: m });
  }
  return { span, metrics };
}

/** Appends the attempt's `csm.attempt.phase.duration` points to `out`. */
function phaseMetrics(a: CsmAttempt, id: Identity, out: MetricPoint[]): void {
  if (!hasPhases(a)) return;
  phasePoint(out, 'dns', a.dnsLatency, id);
  phasePoint(out, 'tcp', a.tcpLatency, id);
  phasePoint(out, 'tls', a.sslLatency, id);
  phasePoint(out, 'connect', a.connectLatency, id);
  phasePoint(out, 'request', a.requestLatency, id);
  phasePoint(out, 'acquire_connection', a.acquireConnectionLatency, id);
}

function phasePoint(out: MetricPoint[], phase: string, latency: number | undefined, id: Identity): void {
  const seconds = latencySeconds(latency);
  if (seconds === undefined) return;
  // csm.phase first, then csmMetricBase(id, opts, false)'s keys.
  const attributes: Attributes = {};
  attributes[CSM_PHASE] = phase;
  attributes[ATTR_RPC_SERVICE] = id.service;
  if (id.region !== undefined) attributes[ATTR_CLOUD_REGION] = id.region;
  out.push({ instrument: METRIC_CSM_ATTEMPT_PHASE_DURATION, value: seconds, attributes });
}

/** Move a span (and its events) inside [lo, hi], so rounding never draws a child outside its parent. */
function clampSpan(span: SpanRecord, lo: number, hi: number): void {
  span.startMs = clamp(span.startMs, lo, hi);
  span.endMs = clamp(span.endMs, span.startMs, hi);
  for (const e of span.events) e.timeMs = clamp(e.timeMs, span.startMs, span.endMs);
}

// ---------------------------------------------------------------------------
// ApiCall.

/**
 * Whether the call failed, and its `error.type` (§1.6). The call is failed
 * when a `Final*` exception is set, FinalHttpStatusCode ≥ 400,
 * MaxRetriesExceeded is set, or (Java) ApiCallTimeout is set; with nothing
 * more specific known, `error.type` is `_OTHER`.
 *
 * Exception: Go v1 reports MaxRetriesExceeded=1 for a call that *succeeded*
 * on its last allowed attempt (csm-protocol.md §4). A call with a final
 * status < 400 and no final exception is therefore a success even when
 * MaxRetriesExceeded is set (`csm.max_retries_exceeded` is still recorded).
 */
function classifyCall(call: CsmApiCall): ErrorClassification {
  const cls = classifyOutcome(
    call.finalAwsException,
    call.finalAwsExceptionMessage,
    call.finalSdkException,
    call.finalSdkExceptionMessage,
    call.finalHttpStatusCode,
  );
  if (cls.failed) return cls;
  const knownSuccess = call.finalHttpStatusCode !== undefined;
  const failed = call.apiCallTimeout === true || (call.maxRetriesExceeded === true && !knownSuccess);
  return failed ? { failed: true, errorType: ERROR_TYPE_VALUE_OTHER } : cls;
}

function classifyAttempt(a: CsmAttempt): ErrorClassification {
  return classifyOutcome(a.awsException, a.awsExceptionMessage, a.sdkException, a.sdkExceptionMessage, a.httpStatusCode);
}

function translateCall(
  call: CsmApiCall,
  attempts: readonly CsmAttempt[],
  missingAttempts: number,
  opts: TranslateOptions,
): Translation {
  const last = attempts[attempts.length - 1];
  // PHP removes Region from the ApiCall; its attempts still carry it.
  const id = identityOf(call);
  if (id.region === undefined) id.region = nonEmpty(last?.region);
  const cls = classifyCall(call);

  // Children first: their windows feed the call's window.
  const children: SpanRecord[] = [];
  const attemptPoints: MetricPoint[] = [];
  for (let i = 0; i < attempts.length; i++) {
    const a = attempts[i]!;
    const region = nonEmpty(a.region) ?? id.region;
    // Identity objects are only read: share the call's when the region is the same.
    const attemptId: Identity = region === id.region ? id : { service: id.service, api: id.api, region, names: id.names };
    const r = translateAttempt(a, a.attemptNumber ?? i + 1, attemptId, opts);
    children.push(r.span);
    for (const m of r.metrics) attemptPoints.push(m);
    phaseMetrics(a, attemptId, attemptPoints);
  }

  // §1.8: the call covers its own reported window and every attempt.
  const lat = latencyMs(call.latency);
  const ownStart = call.timestampMarksEnd ? call.timestamp - lat : call.timestamp;
  const ownEnd = ownStart + lat;
  let startMs = ownStart;
  let endMs = ownEnd;
  for (const c of children) {
    if (c.startMs < startMs) startMs = c.startMs;
    if (c.endMs > endMs) endMs = c.endMs;
  }
  for (const c of children) clampSpan(c, startMs, endMs);

  // Endpoint and response details come from the last attempt (the RPC spec:
  // after retries, the last address contacted).
  const attrs: Attributes = rpcAttributes(id, opts);
  const address = nonEmpty(last?.serverAddress);
  if (address !== undefined) {
    attrs[ATTR_SERVER_ADDRESS] = address;
    attrs[ATTR_SERVER_PORT] = last?.serverPort ?? DEFAULT_SERVER_PORT;
  }
  const peer = nonEmpty(last?.destinationIp);
  if (peer !== undefined) attrs[ATTR_NETWORK_PEER_ADDRESS] = peer;
  if (call.finalHttpStatusCode !== undefined) attrs[ATTR_HTTP_RESPONSE_STATUS_CODE] = call.finalHttpStatusCode;
  // The ApiCall's own id (Go v1) belongs to this call for certain; the last
  // matched attempt's id is the same value when correlation got it right.
  const requestId = requestIdOf(call) ?? (last === undefined ? undefined : requestIdOf(last));
  const extendedId = nonEmpty(last?.xAmzId2);
  if (requestId !== undefined) attrs[ATTR_AWS_REQUEST_ID] = requestId;
  if (extendedId !== undefined) attrs[ATTR_AWS_EXTENDED_REQUEST_ID] = extendedId;
  if (opts.jsInstrumentationKeys) {
    if (requestId !== undefined) attrs[ATTR_JS_AWS_REQUEST_ID] = requestId;
    if (extendedId !== undefined) attrs[ATTR_JS_AWS_EXTENDED_REQUEST_ID] = extendedId;
  }
  const userAgent = nonEmpty(call.userAgent);
  if (userAgent !== undefined) attrs[ATTR_USER_AGENT_ORIGINAL] = userAgent;
  if (cls.errorType !== undefined) attrs[ATTR_ERROR_TYPE] = cls.errorType;
  attrs[CSM_CLIENT_ID] = call.clientId;
  if (call.attemptCount !== undefined) attrs[CSM_ATTEMPT_COUNT] = call.attemptCount;
  if (call.maxRetriesExceeded === true) attrs[CSM_MAX_RETRIES_EXCEEDED] = true;
  if (missingAttempts > 0) attrs[CSM_ATTEMPTS_MISSING] = missingAttempts;

  const events: SpanEventRecord[] = [];
  if (cls.failed) {
    const ev = exceptionEvent(cls, endMs);
    if (ev !== undefined) events.push(ev);
  }

  const span: SpanRecord = {
    name: id.names.callSpan,
    kind: 'client',
    startMs,
    endMs,
    attributes: attrs,
    status: cls.failed ? errorStatus(cls) : { code: 'unset' },
    events,
    children,
  };

  // Metrics: same error.type as the span.
  const metrics: MetricPoint[] = [];
  const callSeconds = latencySeconds(call.latency);
  if (callSeconds !== undefined) {
    const m = rpcAttributes(id, opts);
    if (cls.errorType !== undefined) m[ATTR_ERROR_TYPE] = cls.errorType;
    metrics.push({ instrument: METRIC_RPC_CLIENT_CALL_DURATION, value: callSeconds, attributes: m });
  }
  if (call.attemptCount !== undefined) {
    const m = csmMetricBase(id, opts, true);
    if (cls.errorType !== undefined) m[ATTR_ERROR_TYPE] = cls.errorType;
    metrics.push({ instrument: METRIC_CSM_CALL_ATTEMPTS, value: call.attemptCount, attributes: m });
    const retries = call.attemptCount - 1;
    if (retries > 0) {
      metrics.push({ instrument: METRIC_CSM_CALL_RETRIES, value: retries, attributes: csmMetricBase(id, opts, true) });
    }
  }
  if (call.maxRetriesExceeded === true) {
    const m = csmMetricBase(id, opts, true);
    if (cls.errorType !== undefined) m[ATTR_ERROR_TYPE] = cls.errorType;
    metrics.push({ instrument: METRIC_CSM_CALL_MAX_RETRIES_EXCEEDED, value: 1, attributes: m });
  }
  for (const m of attemptPoints) metrics.push(m);

  return { clientId: call.clientId, span, metrics };
}

// ---------------------------------------------------------------------------
// Orphans.

function translateOrphan(
  a: CsmAttempt,
  reason: 'ttl_expired' | 'buffer_full' | 'shutdown',
  opts: TranslateOptions,
): Translation {
  const id = identityOf(a);
  // The position among the call's attempts is unknown, so the attempt number
  // is set only when the SDK sent one (some Go v1 releases).
  const r = translateAttempt(a, a.attemptNumber, id, opts);
  // A root span: no parent carries the RPC identity, user agent or client id,
  // so they go on the orphan itself.
  const attributes: Attributes = {
    ...rpcAttributes(id, opts),
    ...r.span.attributes,
  };
  put(attributes, ATTR_USER_AGENT_ORIGINAL, nonEmpty(a.userAgent));
  attributes[CSM_CLIENT_ID] = a.clientId;
  attributes[CSM_ORPHAN] = true;
  attributes[CSM_ORPHAN_REASON] = reason;
  return {
    clientId: a.clientId,
    span: { ...r.span, attributes },
    // §2.1: orphans feed csm.attempt.duration only.
    metrics: r.metrics,
  };
}

// ---------------------------------------------------------------------------

/** Turn one correlated call (with its attempts) or one orphan attempt into span records and metric points. */
export function translate(c: Correlated, opts: TranslateOptions): Translation {
  return c.kind === 'call'
    ? translateCall(c.call, c.attempts, c.missingAttempts, opts)
    : translateOrphan(c.attempt, c.reason, opts);
}
