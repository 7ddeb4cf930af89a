/**
 * Hand-written fast path in front of the zod schemas (./schema.ts), for the hot decode path.
 *
 * `isValidApiCall` / `isValidAttempt` accept exactly what the zod schema accepts for the common
 * shape. The decoder then reads the known fields straight from the parsed object (zod would return
 * exactly those, unchanged), so unknown keys, `SessionToken` among them, are never read; nothing is
 * copied. On anything they do not accept the caller runs zod, which then produces the rejection
 * (or, should the two ever disagree, the accepted value): zod stays the definition.
 * `fastValidate*` return the copy zod would return, for test/unit/decode-fastpath.test.ts, which
 * checks the equivalence on mutated real datagrams.
 *
 * The field lists below mirror apiCallSchema / apiCallAttemptSchema; the test fails if one
 * of them gains a field this file does not know.
 */
import type { RawApiCall, RawApiCallAttempt } from './schema.js';

/**
 * s: string; n: finite number; u: finite number >= 0; all optional.
 * R: required non-empty string; U: required finite number >= 0. The literal Type is checked apart.
 */
type Check = 's' | 'n' | 'u' | 'R' | 'U';

const COMMON: readonly (readonly [string, Check])[] = [
  ['Version', 'n'],
  ['ClientId', 's'],
  ['Service', 'R'],
  ['Api', 'R'],
  ['Timestamp', 'U'],
  ['Region', 's'],
  ['UserAgent', 's'],
];

export const FAST_API_CALL_FIELDS: readonly (readonly [string, Check])[] = [
  ...COMMON,
  ['AttemptCount', 'u'],
  ['Latency', 'u'],
  ['MaxRetriesExceeded', 'n'],
  ['FinalHttpStatusCode', 'n'],
  ['FinalAwsException', 's'],
  ['FinalAwsExceptionMessage', 's'],
  ['FinalSdkException', 's'],
  ['FinalSdkExceptionMessage', 's'],
  ['ApiCallTimeout', 'n'],
  ['XAmznRequestId', 's'],
  ['XAmzRequestId', 's'],
];

export const FAST_ATTEMPT_FIELDS: readonly (readonly [string, Check])[] = [
  ...COMMON,
  ['AttemptLatency', 'u'],
  ['AttemptCount', 'u'],
  ['Fqdn', 's'],
  ['AccessKey', 's'],
  ['HttpStatusCode', 'n'],
  ['XAmznRequestId', 's'],
  ['XAmzRequestId', 's'],
  ['XAmzId2', 's'],
  ['AwsException', 's'],
  ['AwsExceptionMessage', 's'],
  ['SdkException', 's'],
  ['SdkExceptionMessage', 's'],
  ['DestinationIp', 's'],
  ['ConnectionReused', 'n'],
  ['DnsLatency', 'u'],
  ['TcpLatency', 'u'],
  ['SslLatency', 'u'],
  ['ConnectLatency', 'u'],
  ['RequestLatency', 'u'],
  ['AcquireConnectionLatency', 'u'],
];

/*
 * The checks below read every field by name (a keyed read per field, as a loop over the lists above
 * would do, costs a dictionary lookup each). They must check exactly the fields of the lists above;
 * the equivalence test mutates every one of them.
 */
type Obj = Record<string, unknown>;
/** Optional string. */
const s = (v: unknown): boolean => v === undefined || typeof v === 'string';
/** Optional finite number. */
const n = (v: unknown): boolean => v === undefined || (typeof v === 'number' && Number.isFinite(v));
/** Optional finite number >= 0. */
const u = (v: unknown): boolean => v === undefined || (typeof v === 'number' && Number.isFinite(v) && v >= 0);

function validCommon(o: Obj): boolean {
  const service = o['Service'];
  const api = o['Api'];
  const timestamp = o['Timestamp'];
  return (
    typeof service === 'string' && service.length > 0 &&
    typeof api === 'string' && api.length > 0 &&
    typeof timestamp === 'number' && Number.isFinite(timestamp) && timestamp >= 0 &&
    n(o['Version']) && s(o['ClientId']) && s(o['Region']) && s(o['UserAgent'])
  );
}

/** `obj` (its `Type` checked apart) passes apiCallSchema: zod's parse would be `obj`'s known fields as they are. */
export function isValidApiCall(o: Obj): boolean {
  return (
    validCommon(o) &&
    u(o['AttemptCount']) && u(o['Latency']) && n(o['MaxRetriesExceeded']) && n(o['FinalHttpStatusCode']) &&
    s(o['FinalAwsException']) && s(o['FinalAwsExceptionMessage']) && s(o['FinalSdkException']) && s(o['FinalSdkExceptionMessage']) &&
    n(o['ApiCallTimeout']) && s(o['XAmznRequestId']) && s(o['XAmzRequestId'])
  );
}

/** `obj` (its `Type` checked apart) passes apiCallAttemptSchema. */
export function isValidAttempt(o: Obj): boolean {
  return (
    validCommon(o) &&
    u(o['AttemptLatency']) && u(o['AttemptCount']) && s(o['Fqdn']) && s(o['AccessKey']) && n(o['HttpStatusCode']) &&
    s(o['XAmznRequestId']) && s(o['XAmzRequestId']) && s(o['XAmzId2']) &&
    s(o['AwsException']) && s(o['AwsExceptionMessage']) && s(o['SdkException']) && s(o['SdkExceptionMessage']) &&
    s(o['DestinationIp']) && n(o['ConnectionReused']) &&
    u(o['DnsLatency']) && u(o['TcpLatency']) && u(o['SslLatency']) && u(o['ConnectLatency']) && u(o['RequestLatency']) &&
    u(o['AcquireConnectionLatency'])
  );
}

/** The known fields of a valid object, as zod's parse returns them (unknown keys, SessionToken among them, left out). */
function pick(obj: Obj, type: string, fields: readonly (readonly [string, Check])[]): Obj {
  const out: Obj = {};
  for (const [name] of fields) {
    const v = obj[name];
    if (v !== undefined) out[name] = v;
  }
  out['Type'] = type;
  return out;
}

/** The zod-equivalent parse of an object whose `Type` is already known, or undefined: ask zod. */
export function fastValidateApiCall(obj: Obj): RawApiCall | undefined {
  if (obj['Type'] !== 'ApiCall' || !isValidApiCall(obj)) return undefined;
  return pick(obj, 'ApiCall', FAST_API_CALL_FIELDS) as RawApiCall;
}

export function fastValidateAttempt(obj: Obj): RawApiCallAttempt | undefined {
  if (obj['Type'] !== 'ApiCallAttempt' || !isValidAttempt(obj)) return undefined;
  return pick(obj, 'ApiCallAttempt', FAST_ATTEMPT_FIELDS) as RawApiCallAttempt;
}
