/**
 * Attribute groups more than one span or metric point carries: the RPC identity, the base of
 * the bridge's own `csm.*` instruments, the request ids, the endpoint, `error.type`.
 * Each is written here once, so spans and metrics cannot disagree.
 */
import { ATTR_AWS_EXTENDED_REQUEST_ID, ATTR_AWS_REQUEST_ID, ATTR_CLOUD_REGION, ATTR_ERROR_TYPE, ATTR_NETWORK_PEER_ADDRESS, ATTR_RPC_METHOD, ATTR_RPC_SERVICE, ATTR_RPC_SYSTEM, ATTR_RPC_SYSTEM_NAME, ATTR_SERVER_ADDRESS, ATTR_SERVER_PORT } from './semconv.js';
import type { ErrorClassification } from './error-type.js';
import { ATTR_JS_AWS_EXTENDED_REQUEST_ID, ATTR_JS_AWS_REQUEST_ID, DEFAULT_SERVER_PORT, RPC_SYSTEM_AWS_API } from './keys.js';
import type { Operation } from './names.js';
import type { Attributes } from './types.js';

export interface TranslateOptions {
  /** Kind of the attempt spans (and orphan spans); the ApiCall span is always CLIENT (§1.3). */
  attemptSpanKind: 'client' | 'internal';
  /** OTEL_SEMCONV_STABILITY_OPT_IN: 'old' (default), 'stable' (=rpc), 'dup' (=rpc/dup) */
  rpcSemconv: 'old' | 'stable' | 'dup';
  /** CSM_COMPAT_JS_INSTRUMENTATION_KEYS: also write aws.request.id / aws.request.extended_id */
  jsInstrumentationKeys: boolean;
}

export function nonEmpty(s: string | undefined): string | undefined {
  return s === undefined || s === '' ? undefined : s;
}

/**
 * `rpc.method` value per stability mode. 'old' keeps the AWS style
 * (`PutObject`); 'stable' and 'dup' use the fully qualified `Service/Api`.
 * 'dup' would need two values under one key, which an attribute cannot
 * hold, so it takes the stable form for `rpc.method` and keeps the old
 * `rpc.system` / `rpc.service` keys alongside (the "dup" part).
 */
function rpcMethod(op: Operation, opts: TranslateOptions): string {
  return opts.rpcSemconv === 'old' ? op.api : op.names.qualifiedMethod;
}

/** RPC identity attributes of the ApiCall span, the orphan span and `rpc.client.call.duration`. */
export function rpcAttributes(op: Operation, opts: TranslateOptions): Attributes {
  const attrs: Attributes = {};
  if (opts.rpcSemconv !== 'stable') attrs[ATTR_RPC_SYSTEM] = RPC_SYSTEM_AWS_API;
  attrs[ATTR_RPC_SYSTEM_NAME] = RPC_SYSTEM_AWS_API;
  if (opts.rpcSemconv !== 'stable') attrs[ATTR_RPC_SERVICE] = op.service;
  attrs[ATTR_RPC_METHOD] = rpcMethod(op, opts);
  if (op.region !== undefined) attrs[ATTR_CLOUD_REGION] = op.region;
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
export function csmMetricBase(op: Operation, opts: TranslateOptions | undefined): Attributes {
  const attrs: Attributes = {};
  attrs[ATTR_RPC_SERVICE] = op.service;
  if (opts !== undefined) attrs[ATTR_RPC_METHOD] = rpcMethod(op, opts);
  if (op.region !== undefined) attrs[ATTR_CLOUD_REGION] = op.region;
  return attrs;
}

/** `error.type` of a failed outcome, the same on the span and on its metric points (§1.6). */
export function putErrorType(attrs: Attributes, cls: ErrorClassification): Attributes {
  if (cls.errorType !== undefined) attrs[ATTR_ERROR_TYPE] = cls.errorType;
  return attrs;
}

/** Request id of one event: `x-amzn-RequestId` first, then S3's `x-amz-request-id`. */
export function requestIdOf(x: { xAmznRequestId?: string; xAmzRequestId?: string }): string | undefined {
  return nonEmpty(x.xAmznRequestId) ?? nonEmpty(x.xAmzRequestId);
}

/** The request ids under the semconv keys, and under the JS instrumentation's keys when asked (§1.4). */
export function putRequestIds(attrs: Attributes, requestId: string | undefined, extendedId: string | undefined, opts: TranslateOptions): void {
  if (requestId !== undefined) attrs[ATTR_AWS_REQUEST_ID] = requestId;
  if (extendedId !== undefined) attrs[ATTR_AWS_EXTENDED_REQUEST_ID] = extendedId;
  if (opts.jsInstrumentationKeys) {
    if (requestId !== undefined) attrs[ATTR_JS_AWS_REQUEST_ID] = requestId;
    if (extendedId !== undefined) attrs[ATTR_JS_AWS_EXTENDED_REQUEST_ID] = extendedId;
  }
}

/** server.address / server.port / network.peer.address of the attempt that reached the endpoint. */
export function putEndpoint(attrs: Attributes, a: { serverAddress?: string; serverPort?: number; destinationIp?: string } | undefined): void {
  const address = nonEmpty(a?.serverAddress);
  if (address !== undefined) {
    attrs[ATTR_SERVER_ADDRESS] = address;
    attrs[ATTR_SERVER_PORT] = a?.serverPort ?? DEFAULT_SERVER_PORT;
  }
  const peer = nonEmpty(a?.destinationIp);
  if (peer !== undefined) attrs[ATTR_NETWORK_PEER_ADDRESS] = peer;
}
