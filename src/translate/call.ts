/**
 * One correlated ApiCall with its attempts → a span tree (the call, its attempts as children)
 * and metric points (otel-mapping.md §1.4, §1.6, §1.8, §2.1).
 */
import { ATTR_HTTP_RESPONSE_STATUS_CODE, ATTR_USER_AGENT_ORIGINAL, ERROR_TYPE_VALUE_OTHER, METRIC_RPC_CLIENT_CALL_DURATION } from './semconv.js';
import type { CsmApiCall, CsmAttempt } from '../decode/types.js';
import { phaseMetrics, translateAttempt } from './attempt.js';
import {
  csmMetricBase,
  nonEmpty,
  putEndpoint,
  putErrorType,
  putRequestIds,
  requestIdOf,
  rpcAttributes,
  type TranslateOptions,
} from './attributes.js';
import { classifyOutcome, exceptionEvent, spanStatus, type ErrorClassification } from './error-type.js';
import { METRIC_CSM_CALL_ATTEMPTS, METRIC_CSM_CALL_MAX_RETRIES_EXCEEDED, METRIC_CSM_CALL_RETRIES } from './instruments.js';
import { CSM_ATTEMPT_COUNT, CSM_ATTEMPTS_MISSING, CSM_CLIENT_ID, CSM_MATCH_AMBIGUOUS, CSM_MATCH_AMBIGUOUS_ATTEMPTS, CSM_MAX_RETRIES_EXCEEDED, CSM_SUCCEEDED_ON_LAST_ALLOWED_ATTEMPT } from './keys.js';
import { operationOf, type Operation } from './names.js';
import { clampSpan, latencyMs, latencySeconds } from './timing.js';
import type { Attributes, MetricPoint, SpanEventRecord, SpanRecord, Translation } from './types.js';

/**
 * Whether the call failed, and its `error.type` (§1.6). The call is failed
 * when a `Final*` exception is set, FinalHttpStatusCode ≥ 400,
 * MaxRetriesExceeded is set, or (Java) ApiCallTimeout is set; with nothing
 * more specific known, `error.type` is `_OTHER`.
 *
 * Exception: Go v1 and botocore (standard/adaptive) report MaxRetriesExceeded=1
 * for a call that *succeeded* on its last allowed attempt (csm-protocol.md §4).
 * A call with a final status < 400 and no final exception is therefore a
 * success even when MaxRetriesExceeded is set.
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

export function translateCall(
  call: CsmApiCall,
  attempts: readonly CsmAttempt[],
  missingAttempts: number,
  opts: TranslateOptions,
  ambiguous?: readonly boolean[],
): Translation {
  const last = attempts[attempts.length - 1];
  // PHP removes Region from the ApiCall; its attempts still carry it.
  const op = operationOf(call);
  if (op.region === undefined) op.region = nonEmpty(last?.region);
  const cls = classifyCall(call);

  // Children first: their windows feed the call's window.
  const children: SpanRecord[] = [];
  const attemptPoints: MetricPoint[] = [];
  for (let i = 0; i < attempts.length; i++) {
    const a = attempts[i]!;
    const region = nonEmpty(a.region) ?? op.region;
    // Operations are only read: share the call's when the region is the same.
    const attemptOp: Operation = region === op.region ? op : { service: op.service, api: op.api, region, names: op.names };
    const r = translateAttempt(a, a.attemptNumber ?? i + 1, attemptOp, opts);
    if (ambiguous?.[i] === true) r.span.attributes[CSM_MATCH_AMBIGUOUS] = true;
    children.push(r.span);
    for (const m of r.metrics) attemptPoints.push(m);
    phaseMetrics(a, attemptOp, attemptPoints);
  }

  // §1.8: the call covers its own reported window and every attempt.
  const lat = latencyMs(call.latency);
  const ownStart = call.timestampMarksEnd ? call.timestamp - lat : call.timestamp;
  let startMs = ownStart;
  let endMs = ownStart + lat;
  for (const c of children) {
    if (c.startMs < startMs) startMs = c.startMs;
    if (c.endMs > endMs) endMs = c.endMs;
  }
  for (const c of children) clampSpan(c, startMs, endMs);

  // Endpoint and response details come from the last attempt (the RPC spec:
  // after retries, the last address contacted).
  const attrs: Attributes = rpcAttributes(op, opts);
  putEndpoint(attrs, last);
  if (call.finalHttpStatusCode !== undefined) attrs[ATTR_HTTP_RESPONSE_STATUS_CODE] = call.finalHttpStatusCode;
  // The ApiCall's own id (Go v1) belongs to this call for certain; the last
  // matched attempt's id is the same value when correlation got it right.
  putRequestIds(attrs, requestIdOf(call) ?? (last === undefined ? undefined : requestIdOf(last)), nonEmpty(last?.xAmzId2), opts);
  const userAgent = nonEmpty(call.userAgent);
  if (userAgent !== undefined) attrs[ATTR_USER_AGENT_ORIGINAL] = userAgent;
  putErrorType(attrs, cls);
  attrs[CSM_CLIENT_ID] = call.clientId;
  if (call.attemptCount !== undefined) attrs[CSM_ATTEMPT_COUNT] = call.attemptCount;
  if (call.maxRetriesExceeded === true) {
    // The SDK gave up only if the call failed; otherwise the SDK's flag says the success came
    // on the last allowed attempt (botocore standard/adaptive, Go v1), kept under that name.
    attrs[cls.failed ? CSM_MAX_RETRIES_EXCEEDED : CSM_SUCCEEDED_ON_LAST_ALLOWED_ATTEMPT] = true;
  }
  if (missingAttempts > 0) attrs[CSM_ATTEMPTS_MISSING] = missingAttempts;
  const nAmbiguous = ambiguous === undefined ? 0 : ambiguous.filter(Boolean).length;
  if (nAmbiguous > 0) attrs[CSM_MATCH_AMBIGUOUS_ATTEMPTS] = nAmbiguous;

  const events: SpanEventRecord[] = [];
  if (cls.failed) {
    const ev = exceptionEvent(cls, endMs);
    if (ev !== undefined) events.push(ev);
  }

  const span: SpanRecord = {
    name: op.names.callSpan,
    kind: 'client',
    startMs,
    endMs,
    attributes: attrs,
    status: spanStatus(cls),
    events,
    children,
  };
  const metrics = callMetrics(call, op, cls, opts);
  for (const m of attemptPoints) metrics.push(m);
  return { clientId: call.clientId, span, metrics };
}

/** The call's own metric points, with the same error.type as its span. */
function callMetrics(call: CsmApiCall, op: Operation, cls: ErrorClassification, opts: TranslateOptions): MetricPoint[] {
  const metrics: MetricPoint[] = [];
  const callSeconds = latencySeconds(call.latency);
  if (callSeconds !== undefined) {
    metrics.push({ instrument: METRIC_RPC_CLIENT_CALL_DURATION, value: callSeconds, attributes: putErrorType(rpcAttributes(op, opts), cls) });
  }
  if (call.attemptCount !== undefined) {
    metrics.push({ instrument: METRIC_CSM_CALL_ATTEMPTS, value: call.attemptCount, attributes: putErrorType(csmMetricBase(op, opts), cls) });
    const retries = call.attemptCount - 1;
    if (retries > 0) metrics.push({ instrument: METRIC_CSM_CALL_RETRIES, value: retries, attributes: csmMetricBase(op, opts) });
  }
  if (call.maxRetriesExceeded === true && cls.failed) {
    metrics.push({ instrument: METRIC_CSM_CALL_MAX_RETRIES_EXCEEDED, value: 1, attributes: putErrorType(csmMetricBase(op, opts), cls) });
  }
  return metrics;
}
