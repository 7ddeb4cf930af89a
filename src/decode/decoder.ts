import { createHash } from 'node:crypto';
import type { ZodError } from 'zod';
import { apiCallAttemptSchema, apiCallSchema, FIELD_ALIASES, REQUIRED_FIELDS } from './schema.js';
import type { RawApiCall, RawApiCallAttempt } from './schema.js';
import type { CsmApiCall, CsmAttempt, DecodeResult, SdkFamily, Source } from './types.js';

export interface DecoderOptions {
  /** Datagrams larger than this are rejected as `oversize`. */
  maxDatagramBytes: number;
  /** How `AccessKey` leaves the decoder: not at all, as its last 4 characters, or as a salted hash. */
  accessKey: 'drop' | 'suffix' | 'hash';
  accessKeySalt: string;
  /** What `Timestamp` marks; `auto` = end for Go v1 (csm-protocol.md §5), start otherwise. */
  timestampSemantics: 'auto' | 'start' | 'end';
}

/** Decodes one datagram. Never throws: every failure is a counted `RejectReason`. */
export function decodeDatagram(
  bytes: Buffer,
  source: Source,
  receivedAt: number,
  opts: DecoderOptions,
): DecodeResult {
  if (bytes.length > opts.maxDatagramBytes) {
    return { ok: false, reason: 'oversize', detail: `${bytes.length} bytes > ${opts.maxDatagramBytes}` };
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString('utf8'));
  } catch {
    return { ok: false, reason: 'malformed_json', detail: `${bytes.length} bytes are not JSON` };
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    return { ok: false, reason: 'not_object', detail: `JSON ${Array.isArray(parsed) ? 'array' : typeof parsed}, not an object` };
  }
  const obj = parsed as Record<string, unknown>;
  for (const [alias, name] of Object.entries(FIELD_ALIASES)) {
    if (Object.hasOwn(obj, alias) && !Object.hasOwn(obj, name)) obj[name] = obj[alias];
  }
  const type = obj['Type'];
  if (type !== 'ApiCall' && type !== 'ApiCallAttempt') {
    return { ok: false, reason: 'unknown_type', detail: `Type ${describe(type)}` };
  }
  if (obj['Version'] !== undefined && obj['Version'] !== 1) {
    return { ok: false, reason: 'bad_field', detail: `Version ${describe(obj['Version'])} (only 1 is known)` };
  }
  for (const field of REQUIRED_FIELDS) {
    if (obj[field] === undefined || obj[field] === null) {
      return { ok: false, reason: 'missing_field', detail: `${type} without ${field}` };
    }
  }
  if (type === 'ApiCall') {
    const r = apiCallSchema.safeParse(obj);
    if (!r.success) return { ok: false, reason: 'bad_field', detail: issueText(type, r.error) };
    return { ok: true, event: toApiCall(r.data, source, receivedAt, opts) };
  }
  const r = apiCallAttemptSchema.safeParse(obj);
  if (!r.success) return { ok: false, reason: 'bad_field', detail: issueText(type, r.error) };
  return { ok: true, event: toAttempt(r.data, source, receivedAt, opts) };
}

/** A short, value-free description (values may hold secrets or control characters). */
function describe(v: unknown): string {
  if (typeof v === 'string') return `"${v.length > 40 ? `${v.slice(0, 40)}…` : v}"`;
  if (v === null) return 'null';
  return typeof v === 'number' ? String(v) : `of type ${Array.isArray(v) ? 'array' : typeof v}`;
}

function issueText(type: string, err: ZodError): string {
  const issue = err.issues[0];
  if (!issue) return `${type}: invalid`;
  return `${type}.${issue.path.join('.')}: ${issue.message}`;
}

export function sdkFamily(userAgent: string | undefined): SdkFamily {
  if (!userAgent) return 'unknown';
  if (/^(Boto3|Botocore|aws-cli)\//i.test(userAgent)) return 'botocore';
  if (userAgent.startsWith('aws-sdk-nodejs/')) return 'js-v2';
  if (userAgent.startsWith('aws-sdk-go/')) return 'go-v1';
  if (userAgent.startsWith('aws-sdk-java/')) return 'java-v1';
  if (userAgent.startsWith('aws-sdk-ruby')) return 'ruby-v3';
  if (userAgent.startsWith('aws-sdk-php/')) return 'php-v3';
  if (/^aws-sdk-dotnet/i.test(userAgent)) return 'dotnet';
  return 'unknown';
}

/** Integer fields may come as floats (PHP). */
const int = (v: number | undefined): number | undefined => (v === undefined ? undefined : Math.trunc(v));
/** Go and Ruby send "" / 0 for "absent" (csm-protocol.md §7.11). */
const nonEmpty = (v: string | undefined): string | undefined => (v === undefined || v === '' ? undefined : v);
const nonZero = (v: number | undefined): number | undefined => (v === undefined || v === 0 ? undefined : Math.trunc(v));
const flag = (v: number | undefined): boolean | undefined => (v === undefined ? undefined : v !== 0);

function common(raw: RawApiCall | RawApiCallAttempt, source: Source, receivedAt: number, opts: DecoderOptions) {
  const userAgent = nonEmpty(raw.UserAgent);
  const sdk = sdkFamily(userAgent);
  return {
    clientId: raw.ClientId ?? '',
    service: raw.Service,
    api: raw.Api,
    timestamp: raw.Timestamp,
    region: nonEmpty(raw.Region),
    userAgent,
    sdk,
    timestampMarksEnd: opts.timestampSemantics === 'auto' ? sdk === 'go-v1' : opts.timestampSemantics === 'end',
    source,
    receivedAt,
  };
}

function toApiCall(raw: RawApiCall, source: Source, receivedAt: number, opts: DecoderOptions): CsmApiCall {
  return dropUndefined({
    type: 'ApiCall',
    ...common(raw, source, receivedAt, opts),
    attemptCount: int(raw.AttemptCount),
    latency: int(raw.Latency),
    maxRetriesExceeded: flag(raw.MaxRetriesExceeded),
    finalHttpStatusCode: nonZero(raw.FinalHttpStatusCode),
    finalAwsException: nonEmpty(raw.FinalAwsException),
    finalAwsExceptionMessage: nonEmpty(raw.FinalAwsExceptionMessage),
    finalSdkException: nonEmpty(raw.FinalSdkException),
    finalSdkExceptionMessage: nonEmpty(raw.FinalSdkExceptionMessage),
    apiCallTimeout: flag(raw.ApiCallTimeout),
    xAmznRequestId: nonEmpty(raw.XAmznRequestId),
    xAmzRequestId: nonEmpty(raw.XAmzRequestId),
  });
}

function toAttempt(raw: RawApiCallAttempt, source: Source, receivedAt: number, opts: DecoderOptions): CsmAttempt {
  const fqdn = splitHostPort(nonEmpty(raw.Fqdn));
  return dropUndefined({
    type: 'ApiCallAttempt',
    ...common(raw, source, receivedAt, opts),
    attemptLatency: int(raw.AttemptLatency),
    attemptNumber: nonZero(raw.AttemptCount),
    serverAddress: fqdn?.host,
    serverPort: fqdn?.port,
    accessKey: redactAccessKey(nonEmpty(raw.AccessKey), opts),
    httpStatusCode: nonZero(raw.HttpStatusCode),
    xAmznRequestId: nonEmpty(raw.XAmznRequestId),
    xAmzRequestId: nonEmpty(raw.XAmzRequestId),
    xAmzId2: nonEmpty(raw.XAmzId2),
    awsException: nonEmpty(raw.AwsException),
    awsExceptionMessage: nonEmpty(raw.AwsExceptionMessage),
    sdkException: nonEmpty(raw.SdkException),
    sdkExceptionMessage: nonEmpty(raw.SdkExceptionMessage),
    destinationIp: nonEmpty(raw.DestinationIp),
    connectionReused: flag(raw.ConnectionReused),
    dnsLatency: int(raw.DnsLatency),
    tcpLatency: int(raw.TcpLatency),
    sslLatency: int(raw.SslLatency),
    connectLatency: int(raw.ConnectLatency),
    requestLatency: int(raw.RequestLatency),
    acquireConnectionLatency: int(raw.AcquireConnectionLatency),
  });
}

/** `host`, `host:port`, `[v6]:port` or a bare IPv6 address. */
export function splitHostPort(fqdn: string | undefined): { host: string; port?: number } | undefined {
  if (fqdn === undefined) return undefined;
  const bracketed = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(fqdn);
  if (bracketed) return withPort(bracketed[1] ?? fqdn, bracketed[2]);
  const hostPort = /^([^:]+):(\d{1,5})$/.exec(fqdn);
  if (hostPort) return withPort(hostPort[1] ?? fqdn, hostPort[2]);
  return { host: fqdn };
}

function withPort(host: string, port: string | undefined): { host: string; port?: number } {
  const n = port === undefined ? NaN : Number(port);
  return n > 0 && n < 65536 ? { host, port: n } : { host };
}

function redactAccessKey(key: string | undefined, opts: DecoderOptions): string | undefined {
  if (key === undefined) return undefined;
  switch (opts.accessKey) {
    case 'drop':
      return undefined;
    case 'suffix':
      return key.slice(-4);
    case 'hash':
      return createHash('sha256').update(opts.accessKeySalt).update('\0').update(key).digest('hex').slice(0, 16);
  }
}

/** Keeps events small and makes `'x' in event` mean "the SDK sent it". */
function dropUndefined<T extends object>(o: T): T {
  for (const k of Object.keys(o) as (keyof T)[]) if (o[k] === undefined) delete o[k];
  return o;
}
