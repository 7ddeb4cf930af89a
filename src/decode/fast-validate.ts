/**
 * Hand-written fast path in front of the zod schemas (./schema.ts), for the hot decode path.
 *
 * `fastValidate` accepts exactly what the zod schema accepts for the common shape and returns
 * what zod would return (the known fields only: unknown keys, `SessionToken` among them, are not
 * copied). On anything it does not accept it returns `undefined` and the caller runs zod, which
 * then produces the rejection (or, should the two ever disagree, the accepted value): zod stays
 * the definition. test/unit/decode-fastpath.test.ts checks the equivalence on mutated real
 * datagrams.
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

function ok(v: unknown, c: Check): boolean {
  switch (c) {
    case 's':
      return typeof v === 'string';
    case 'R':
      return typeof v === 'string' && v.length > 0;
    case 'n':
      return typeof v === 'number' && Number.isFinite(v);
    case 'u':
    case 'U':
      return typeof v === 'number' && Number.isFinite(v) && v >= 0;
  }
}

function pick(obj: Record<string, unknown>, type: string, fields: readonly (readonly [string, Check])[]): Record<string, unknown> | undefined {
  const out: Record<string, unknown> = {};
  for (const [name, check] of fields) {
    const v = obj[name];
    if (v === undefined) {
      if (check === 'R' || check === 'U') return undefined;
      continue;
    }
    if (!ok(v, check)) return undefined;
    out[name] = v;
  }
  out['Type'] = type;
  return out;
}

/** The zod-equivalent parse of an object whose `Type` is already known, or undefined: ask zod. */
export function fastValidateApiCall(obj: Record<string, unknown>): RawApiCall | undefined {
  if (obj['Type'] !== 'ApiCall') return undefined;
  return pick(obj, 'ApiCall', FAST_API_CALL_FIELDS) as RawApiCall | undefined;
}

export function fastValidateAttempt(obj: Record<string, unknown>): RawApiCallAttempt | undefined {
  if (obj['Type'] !== 'ApiCallAttempt') return undefined;
  return pick(obj, 'ApiCallAttempt', FAST_ATTEMPT_FIELDS) as RawApiCallAttempt | undefined;
}
