/**
 * The OpenTelemetry semantic-convention names the bridge writes, as local constants with the
 * same names as @opentelemetry/semantic-conventions' exports (test/unit/semconv.test.ts checks
 * every one against the package, stable and incubating entries, so an upgrade cannot drift).
 *
 * Why not import them: the package's ESM entries are whole registries evaluated at load. The
 * incubating entry alone kept 3.6 MB of V8 heap (its module sources are retained) in every idle
 * bridge for five strings, and the stable entry is a second copy next to the CommonJS build the
 * OTel SDK packages load anyway (BENCHMARKS.md, "Idle memory").
 */

// Stable.
/** `error.type` */
export const ATTR_ERROR_TYPE = 'error.type';
/** `error.type`'s value when the error has no better name. */
export const ERROR_TYPE_VALUE_OTHER = '_OTHER';
/** `exception.message` */
export const ATTR_EXCEPTION_MESSAGE = 'exception.message';
/** `exception.type` */
export const ATTR_EXCEPTION_TYPE = 'exception.type';
/** `http.request.resend_count` */
export const ATTR_HTTP_REQUEST_RESEND_COUNT = 'http.request.resend_count';
/** `http.response.status_code` */
export const ATTR_HTTP_RESPONSE_STATUS_CODE = 'http.response.status_code';
/** `network.peer.address` */
export const ATTR_NETWORK_PEER_ADDRESS = 'network.peer.address';
/** `rpc.method` */
export const ATTR_RPC_METHOD = 'rpc.method';
/** `rpc.system.name` */
export const ATTR_RPC_SYSTEM_NAME = 'rpc.system.name';
/** `server.address` */
export const ATTR_SERVER_ADDRESS = 'server.address';
/** `server.port` */
export const ATTR_SERVER_PORT = 'server.port';
/** `user_agent.original` */
export const ATTR_USER_AGENT_ORIGINAL = 'user_agent.original';
/** The metric `rpc.client.call.duration` */
export const METRIC_RPC_CLIENT_CALL_DURATION = 'rpc.client.call.duration';

// Incubating (@opentelemetry/semantic-conventions/incubating).
/** `aws.extended_request_id` */
export const ATTR_AWS_EXTENDED_REQUEST_ID = 'aws.extended_request_id';
/** `aws.request_id` */
export const ATTR_AWS_REQUEST_ID = 'aws.request_id';
/** `cloud.region` */
export const ATTR_CLOUD_REGION = 'cloud.region';
/** `rpc.service` */
export const ATTR_RPC_SERVICE = 'rpc.service';
/** `rpc.system` */
export const ATTR_RPC_SYSTEM = 'rpc.system';
