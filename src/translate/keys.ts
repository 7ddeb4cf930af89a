/**
 * Attribute keys and values the translation writes that have no semconv constant
 * (otel-mapping.md §1.4, §1.5). The semconv ones are in ./semconv.ts.
 */

/** `rpc.system` / `rpc.system.name` value used by the aws-sdk semconv page and instrumentation-aws-sdk. */
export const RPC_SYSTEM_AWS_API = 'aws-api';
/** instrumentation-aws-sdk 0.79's non-semconv request-id keys (§1.4 compatibility flag). */
export const ATTR_JS_AWS_REQUEST_ID = 'aws.request.id';
export const ATTR_JS_AWS_EXTENDED_REQUEST_ID = 'aws.request.extended_id';
/** Used when an endpoint host is known but its port is not (§1.4). */
export const DEFAULT_SERVER_PORT = 443;

export const CSM_CLIENT_ID = 'csm.client_id';
export const CSM_ATTEMPT_COUNT = 'csm.attempt_count';
/** The SDK gave up: the call failed and the SDK reported MaxRetriesExceeded (whatever SDK sent it). */
export const CSM_MAX_RETRIES_EXCEEDED = 'csm.max_retries_exceeded';
/**
 * The call succeeded on its last allowed attempt: MaxRetriesExceeded=1 on a success, which
 * botocore (standard/adaptive) and Go v1 send; other SDKs never say so (absent ≠ false).
 */
export const CSM_SUCCEEDED_ON_LAST_ALLOWED_ATTEMPT = 'csm.succeeded_on_last_allowed_attempt';
export const CSM_ATTEMPTS_MISSING = 'csm.attempts_missing';
export const CSM_ATTEMPT_NUMBER = 'csm.attempt.number';
export const CSM_CONNECTION_REUSED = 'csm.connection_reused';
export const CSM_ACCESS_KEY = 'csm.access_key';
export const CSM_ORPHAN = 'csm.orphan';
/** Attempt span: another placement (a concurrent twin call) is about as probable (correlate/types.ts `ambiguous`). */
export const CSM_MATCH_AMBIGUOUS = 'csm.match.ambiguous';
/** Call span: how many of its attempts carry csm.match.ambiguous. */
export const CSM_MATCH_AMBIGUOUS_ATTEMPTS = 'csm.match.ambiguous_attempts';
export const CSM_ORPHAN_REASON = 'csm.orphan_reason';
export const CSM_PHASE = 'csm.phase';
export const CSM_LATENCY_DNS_MS = 'csm.latency.dns_ms';
export const CSM_LATENCY_TCP_MS = 'csm.latency.tcp_ms';
export const CSM_LATENCY_SSL_MS = 'csm.latency.ssl_ms';
export const CSM_LATENCY_CONNECT_MS = 'csm.latency.connect_ms';
export const CSM_LATENCY_REQUEST_MS = 'csm.latency.request_ms';
export const CSM_LATENCY_ACQUIRE_CONNECTION_MS = 'csm.latency.acquire_connection_ms';

export const EXCEPTION_EVENT_NAME = 'exception';
