import { createHash } from 'node:crypto';
import type { ZodError } from 'zod';
import { fastValidateApiCall, fastValidateAttempt } from './fast-validate.js';
import { apiCallAttemptSchema, apiCallSchema, FIELD_ALIASES, REQUIRED_FIELDS } from './schema.js';
import type { RawApiCall, RawApiCallAttempt } from './schema.js';
import type { CsmApiCall, CsmAttempt, CsmEvent, DecodeResult, SdkFamily, Source } from './types.js';

export interface DecoderOptions {
  /** Datagrams larger than this are rejected as `oversize`. */
  maxDatagramBytes: number;
  /** How `AccessKey` leaves the decoder: not at all, as its last 4 characters, or as a salted hash. */
  accessKey: 'drop' | 'suffix' | 'hash';
  accessKeySalt: string;
  /** What `Timestamp` marks; `auto` = end for Go v1 (csm-protocol.md §5), start otherwise. */
  timestampSemantics: 'auto' | 'start' | 'end';
}

const ALIASES: readonly (readonly [string, string])[] = Object.entries(FIELD_ALIASES);

/**
 * Decodes one datagram. Never throws: every failure is a counted `RejectReason`.
 *
 * `validator`: 'fast' (default) tries the hand-written equivalent of the zod schema first
 * (./fast-validate.ts) and runs zod only on what it does not accept; 'zod' runs zod always
 * (the reference the equivalence test compares against).
 */
export function decodeDatagram(
  bytes: Buffer,
  source: Source,
  receivedAt: number,
  opts: DecoderOptions,
  validator: 'fast' | 'zod' = 'fast',
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
  for (const [alias, name] of ALIASES) {
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
    const fast = validator === 'fast' ? fastValidateApiCall(obj) : undefined;
    if (fast) return checkRanges(toApiCall(fast, source, receivedAt, opts));
    const r = apiCallSchema.safeParse(obj);
    if (!r.success) return { ok: false, reason: 'bad_field', detail: issueText(type, r.error) };
    return checkRanges(toApiCall(r.data, source, receivedAt, opts));
  }
  const fast = validator === 'fast' ? fastValidateAttempt(obj) : undefined;
  if (fast) return checkRanges(toAttempt(fast, source, receivedAt, opts));
  const r = apiCallAttemptSchema.safeParse(obj);
  if (!r.success) return { ok: false, reason: 'bad_field', detail: issueText(type, r.error) };
  return checkRanges(toAttempt(r.data, source, receivedAt, opts));
}

/** Identity strings become span names, metric attributes, resources and correlation keys. */
export const MAX_NAME_CHARS = 256;
/** Epoch ms before 2286-11-20: nanoseconds still fit OTLP's fixed64 with room to spare. */
export const MAX_TIMESTAMP_MS = 1e13;
/** No SDK call or phase takes a week; larger values are clock jumps or garbage. */
export const MAX_LATENCY_MS = 7 * 24 * 3600 * 1000;
export const MAX_ATTEMPTS = 10_000;

const LATENCY_FIELDS = [
  'latency', 'attemptLatency', 'dnsLatency', 'tcpLatency', 'sslLatency', 'connectLatency', 'requestLatency', 'acquireConnectionLatency',
] as const;

/**
 * Values a span or metric cannot carry sensibly are rejected as `bad_field`
 * (counted, never clamped): no later stage can then produce a non-finite time,
 * an end before its start, a time before 1970, an integer attribute beyond int64,
 * or a multi-KiB span name / metric label.
 */
function checkRanges(e: CsmEvent): DecodeResult {
  const bad = (what: string): DecodeResult => ({ ok: false, reason: 'bad_field', detail: `${e.type}.${what}` });
  for (const [k, v] of [['ClientId', e.clientId], ['Service', e.service], ['Api', e.api], ['Region', e.region]] as const) {
    if (v !== undefined && v.length > MAX_NAME_CHARS) return bad(`${k}: longer than ${MAX_NAME_CHARS} characters`);
  }
  if (e.timestamp > MAX_TIMESTAMP_MS) return bad(`Timestamp: after ${MAX_TIMESTAMP_MS} (year 2286)`);
  const rec = e as unknown as Record<string, unknown>;
  let lat = 0;
  for (const k of LATENCY_FIELDS) {
    const v = rec[k];
    if (typeof v !== 'number') continue;
    if (v > MAX_LATENCY_MS) return bad(`${k}: more than ${MAX_LATENCY_MS} ms`);
    if (k === 'latency' || k === 'attemptLatency') lat = v;
  }
  if (e.timestampMarksEnd && e.timestamp - lat < 0) return bad('Timestamp: minus the latency is before 1970');
  for (const k of ['attemptCount', 'attemptNumber'] as const) {
    const v = rec[k];
    if (typeof v === 'number' && v > MAX_ATTEMPTS) return bad(`${k}: more than ${MAX_ATTEMPTS}`);
  }
  for (const k of ['httpStatusCode', 'finalHttpStatusCode'] as const) {
    const v = rec[k];
    if (typeof v === 'number' && (v < 0 || v > 999)) return bad(`${k}: not an HTTP status`);
  }
  return { ok: true, event: e };
}

/** A short, value-free description (values may hold secrets or control characters). */
function describe(v: unknown): string {
  // Only a short identifier is echoed: anything longer or odd may be a credential or an escape sequence.
  if (typeof v === 'string') return /^[A-Za-z0-9_.:-]{0,40}$/.test(v) ? `"${v}"` : `(a string of ${v.length} characters)`;
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

/*
 * The builders below assign only the fields the SDK sent, in a fixed order, instead of building
 * every field and deleting the undefined ones (deletes turn objects into slow dictionaries).
 * `'x' in event` still means "the SDK sent it".
 */
type Out = Record<string, unknown>;
function set(o: Out, k: string, v: unknown): void {
  if (v !== undefined) o[k] = v;
}

function common(o: Out, raw: RawApiCall | RawApiCallAttempt, source: Source, receivedAt: number, opts: DecoderOptions): void {
  const userAgent = nonEmpty(raw.UserAgent);
  const sdk = sdkFamily(userAgent);
  o['clientId'] = raw.ClientId ?? '';
  o['service'] = raw.Service;
  o['api'] = raw.Api;
  o['timestamp'] = raw.Timestamp;
  set(o, 'region', nonEmpty(raw.Region));
  set(o, 'userAgent', userAgent);
  o['sdk'] = sdk;
  o['timestampMarksEnd'] = opts.timestampSemantics === 'auto' ? sdk === 'go-v1' : opts.timestampSemantics === 'end';
  o['source'] = source;
  o['receivedAt'] = receivedAt;
}

function toApiCall(raw: RawApiCall, source: Source, receivedAt: number, opts: DecoderOptions): CsmApiCall {
  const o: Out = { type: 'ApiCall' };
  common(o, raw, source, receivedAt, opts);
  set(o, 'attemptCount', int(raw.AttemptCount));
  set(o, 'latency', int(raw.Latency));
  set(o, 'maxRetriesExceeded', flag(raw.MaxRetriesExceeded));
  set(o, 'finalHttpStatusCode', nonZero(raw.FinalHttpStatusCode));
  set(o, 'finalAwsException', nonEmpty(raw.FinalAwsException));
  set(o, 'finalAwsExceptionMessage', nonEmpty(raw.FinalAwsExceptionMessage));
  set(o, 'finalSdkException', nonEmpty(raw.FinalSdkException));
  set(o, 'finalSdkExceptionMessage', nonEmpty(raw.FinalSdkExceptionMessage));
  set(o, 'apiCallTimeout', flag(raw.ApiCallTimeout));
  set(o, 'xAmznRequestId', nonEmpty(raw.XAmznRequestId));
  set(o, 'xAmzRequestId', nonEmpty(raw.XAmzRequestId));
  return o as unknown as CsmApiCall;
}

function toAttempt(raw: RawApiCallAttempt, source: Source, receivedAt: number, opts: DecoderOptions): CsmAttempt {
  const fqdn = splitHostPort(nonEmpty(raw.Fqdn));
  const o: Out = { type: 'ApiCallAttempt' };
  common(o, raw, source, receivedAt, opts);
  set(o, 'attemptLatency', int(raw.AttemptLatency));
  set(o, 'attemptNumber', nonZero(raw.AttemptCount));
  set(o, 'serverAddress', fqdn?.host);
  set(o, 'serverPort', fqdn?.port);
  set(o, 'accessKey', redactAccessKey(nonEmpty(raw.AccessKey), opts));
  set(o, 'httpStatusCode', nonZero(raw.HttpStatusCode));
  set(o, 'xAmznRequestId', nonEmpty(raw.XAmznRequestId));
  set(o, 'xAmzRequestId', nonEmpty(raw.XAmzRequestId));
  set(o, 'xAmzId2', nonEmpty(raw.XAmzId2));
  set(o, 'awsException', nonEmpty(raw.AwsException));
  set(o, 'awsExceptionMessage', nonEmpty(raw.AwsExceptionMessage));
  set(o, 'sdkException', nonEmpty(raw.SdkException));
  set(o, 'sdkExceptionMessage', nonEmpty(raw.SdkExceptionMessage));
  set(o, 'destinationIp', nonEmpty(raw.DestinationIp));
  set(o, 'connectionReused', flag(raw.ConnectionReused));
  set(o, 'dnsLatency', int(raw.DnsLatency));
  set(o, 'tcpLatency', int(raw.TcpLatency));
  set(o, 'sslLatency', int(raw.SslLatency));
  set(o, 'connectLatency', int(raw.ConnectLatency));
  set(o, 'requestLatency', int(raw.RequestLatency));
  set(o, 'acquireConnectionLatency', int(raw.AcquireConnectionLatency));
  return o as unknown as CsmAttempt;
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
