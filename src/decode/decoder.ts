import { createHash } from 'node:crypto';
import type { ZodError } from 'zod';
import { principalOf } from './access-key.js';
import { isValidApiCall, isValidAttempt } from './fast-validate.js';
import { apiCallAttemptSchema, apiCallSchema, type REQUIRED_FIELDS } from './schema.js';
import type { RawApiCall, RawApiCallAttempt } from './schema.js';
import type { Source } from '../net/address.js';
import type { CsmApiCall, CsmAttempt, CsmEvent, DecodeResult, SdkFamily } from './types.js';

export interface DecoderOptions {
  /** Datagrams larger than this are rejected as `oversize`. */
  maxDatagramBytes: number;
  /** How `AccessKey` leaves the decoder: not at all, as its last 4 characters, or as a salted hash. */
  accessKey: 'drop' | 'suffix' | 'hash';
  accessKeySalt: string;
  /** What `Timestamp` marks; `auto` = end for Go v1 (csm-protocol.md §5), start otherwise. */
  timestampSemantics: 'auto' | 'start' | 'end';
}

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
  /** `bytes` as text, when the caller has it already (a receiver's ASCII batch); else decoded here as UTF-8. */
  text?: string,
): DecodeResult {
  if (bytes.length > opts.maxDatagramBytes) {
    return { ok: false, reason: 'oversize', detail: `${bytes.length} bytes > ${opts.maxDatagramBytes}` };
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text ?? bytes.toString('utf8'));
  } catch {
    return { ok: false, reason: 'malformed_json', detail: `${bytes.length} bytes are not JSON` };
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    return { ok: false, reason: 'not_object', detail: `JSON ${Array.isArray(parsed) ? 'array' : typeof parsed}, not an object` };
  }
  const obj = parsed as Record<string, unknown>;
  resolveAliases(obj);
  const type = obj['Type'];
  if (type !== 'ApiCall' && type !== 'ApiCallAttempt') {
    return { ok: false, reason: 'unknown_type', detail: `Type ${describe(type)}` };
  }
  const version = obj['Version'];
  if (version !== undefined && version !== 1) {
    return { ok: false, reason: 'bad_field', detail: `Version ${describe(version)} (only 1 is known)` };
  }
  const missing = missingField(obj);
  if (missing !== undefined) return { ok: false, reason: 'missing_field', detail: `${type} without ${missing}` };
  // Fast path: a valid object is read as it is (its known fields are exactly what zod would return).
  if (type === 'ApiCall') {
    if (validator === 'fast' && isValidApiCall(obj)) return checkRanges(toApiCall(obj as RawApiCall, source, receivedAt, opts));
    const r = apiCallSchema.safeParse(obj);
    if (!r.success) return { ok: false, reason: 'bad_field', detail: issueText(type, r.error) };
    return checkRanges(toApiCall(r.data, source, receivedAt, opts));
  }
  if (validator === 'fast' && isValidAttempt(obj)) return checkRanges(toAttempt(obj as RawApiCallAttempt, source, receivedAt, opts));
  const r = apiCallAttemptSchema.safeParse(obj);
  if (!r.success) return { ok: false, reason: 'bad_field', detail: issueText(type, r.error) };
  return checkRanges(toAttempt(r.data, source, receivedAt, opts));
}

/*
 * JSON.parse never yields an `undefined` value and no field name is inherited from Object.prototype,
 * so `obj.Name !== undefined` is `Object.hasOwn(obj, 'Name')`, read by name (cheaper than a keyed loop).
 */

/** .NET's `AWS*` spellings (FIELD_ALIASES) become the usual ones, unless those are present too. */
function resolveAliases(obj: Record<string, unknown>): void {
  if (obj['AWSException'] !== undefined && obj['AwsException'] === undefined) obj['AwsException'] = obj['AWSException'];
  if (obj['AWSExceptionMessage'] !== undefined && obj['AwsExceptionMessage'] === undefined) obj['AwsExceptionMessage'] = obj['AWSExceptionMessage'];
  if (obj['FinalAWSException'] !== undefined && obj['FinalAwsException'] === undefined) obj['FinalAwsException'] = obj['FinalAWSException'];
  if (obj['FinalAWSExceptionMessage'] !== undefined && obj['FinalAwsExceptionMessage'] === undefined) {
    obj['FinalAwsExceptionMessage'] = obj['FinalAWSExceptionMessage'];
  }
}

/** The first of REQUIRED_FIELDS that is absent or null. */
function missingField(obj: Record<string, unknown>): (typeof REQUIRED_FIELDS)[number] | undefined {
  if (obj['Service'] === undefined || obj['Service'] === null) return 'Service';
  if (obj['Api'] === undefined || obj['Api'] === null) return 'Api';
  if (obj['Timestamp'] === undefined || obj['Timestamp'] === null) return 'Timestamp';
  return undefined;
}

/** Identity strings become span names, metric attributes, resources and correlation keys. */
export const MAX_NAME_CHARS = 256;
/** Epoch ms before 2286-11-20: nanoseconds still fit OTLP's fixed64 with room to spare. */
export const MAX_TIMESTAMP_MS = 1e13;
/** No SDK call or phase takes a week; larger values are clock jumps or garbage. */
export const MAX_LATENCY_MS = 7 * 24 * 3600 * 1000;
export const MAX_ATTEMPTS = 10_000;

/**
 * Values a span or metric cannot carry sensibly are rejected as `bad_field`
 * (counted, never clamped): no later stage can then produce a non-finite time,
 * an end before its start, a time before 1970, an integer attribute beyond int64,
 * or a multi-KiB span name / metric label.
 */
function checkRanges(e: CsmEvent): DecodeResult {
  const problem = rangeProblem(e);
  return problem === undefined ? { ok: true, event: e } : { ok: false, reason: 'bad_field', detail: `${e.type}.${problem}` };
}

/** The first out-of-range field, described without its value; undefined when all fit. Allocates nothing when all fit. */
function rangeProblem(e: CsmEvent): string | undefined {
  if (e.clientId.length > MAX_NAME_CHARS) return `ClientId: longer than ${MAX_NAME_CHARS} characters`;
  if (e.service.length > MAX_NAME_CHARS) return `Service: longer than ${MAX_NAME_CHARS} characters`;
  if (e.api.length > MAX_NAME_CHARS) return `Api: longer than ${MAX_NAME_CHARS} characters`;
  if (e.region !== undefined && e.region.length > MAX_NAME_CHARS) return `Region: longer than ${MAX_NAME_CHARS} characters`;
  if (e.timestamp > MAX_TIMESTAMP_MS) return `Timestamp: after ${MAX_TIMESTAMP_MS} (year 2286)`;
  let lat = 0;
  if (e.type === 'ApiCall') {
    if (e.latency !== undefined) {
      if (e.latency > MAX_LATENCY_MS) return `latency: more than ${MAX_LATENCY_MS} ms`;
      lat = e.latency;
    }
  } else {
    if (e.attemptLatency !== undefined) {
      if (e.attemptLatency > MAX_LATENCY_MS) return `attemptLatency: more than ${MAX_LATENCY_MS} ms`;
      lat = e.attemptLatency;
    }
    if (e.dnsLatency !== undefined && e.dnsLatency > MAX_LATENCY_MS) return `dnsLatency: more than ${MAX_LATENCY_MS} ms`;
    if (e.tcpLatency !== undefined && e.tcpLatency > MAX_LATENCY_MS) return `tcpLatency: more than ${MAX_LATENCY_MS} ms`;
    if (e.sslLatency !== undefined && e.sslLatency > MAX_LATENCY_MS) return `sslLatency: more than ${MAX_LATENCY_MS} ms`;
    if (e.connectLatency !== undefined && e.connectLatency > MAX_LATENCY_MS) return `connectLatency: more than ${MAX_LATENCY_MS} ms`;
    if (e.requestLatency !== undefined && e.requestLatency > MAX_LATENCY_MS) return `requestLatency: more than ${MAX_LATENCY_MS} ms`;
    if (e.acquireConnectionLatency !== undefined && e.acquireConnectionLatency > MAX_LATENCY_MS) {
      return `acquireConnectionLatency: more than ${MAX_LATENCY_MS} ms`;
    }
  }
  if (e.timestampMarksEnd && e.timestamp - lat < 0) return 'Timestamp: minus the latency is before 1970';
  if (e.type === 'ApiCall') {
    if (e.attemptCount !== undefined && e.attemptCount > MAX_ATTEMPTS) return `attemptCount: more than ${MAX_ATTEMPTS}`;
    const s = e.finalHttpStatusCode;
    if (s !== undefined && (s < 0 || s > 999)) return 'finalHttpStatusCode: not an HTTP status';
  } else {
    if (e.attemptNumber !== undefined && e.attemptNumber > MAX_ATTEMPTS) return `attemptNumber: more than ${MAX_ATTEMPTS}`;
    const s = e.httpStatusCode;
    if (s !== undefined && (s < 0 || s > 999)) return 'httpStatusCode: not an HTTP status';
  }
  return undefined;
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
  // The usual spellings without the regex (per datagram); the regex still catches other cases.
  if (userAgent.startsWith('Boto3/') || userAgent.startsWith('Botocore/') || userAgent.startsWith('aws-cli/')) return 'botocore';
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
 * `'x' in event` still means "the SDK sent it". Each field is written by name: a generic
 * `set(o, key, v)` helper makes every write a slow keyed store.
 */
type Out = { -readonly [K in keyof CsmApiCall | keyof CsmAttempt]?: unknown };

/** The fields common to both types, in their fixed order. */
function common(type: CsmEvent['type'], raw: RawApiCall | RawApiCallAttempt, source: Source, receivedAt: number, opts: DecoderOptions): Out {
  const userAgent = nonEmpty(raw.UserAgent);
  const region = nonEmpty(raw.Region);
  const sdk = sdkFamily(userAgent);
  const clientId = raw.ClientId ?? '';
  const timestampMarksEnd = opts.timestampSemantics === 'auto' ? sdk === 'go-v1' : opts.timestampSemantics === 'end';
  if (region !== undefined && userAgent !== undefined) {
    // The usual case as one literal: one allocation, one shape.
    return { type, clientId, service: raw.Service, api: raw.Api, timestamp: raw.Timestamp, region, userAgent, sdk, timestampMarksEnd, source, receivedAt };
  }
  const o: Out = { type, clientId, service: raw.Service, api: raw.Api, timestamp: raw.Timestamp };
  if (region !== undefined) o.region = region;
  if (userAgent !== undefined) o.userAgent = userAgent;
  o.sdk = sdk;
  o.timestampMarksEnd = timestampMarksEnd;
  o.source = source;
  o.receivedAt = receivedAt;
  return o;
}

function toApiCall(raw: RawApiCall, source: Source, receivedAt: number, opts: DecoderOptions): CsmApiCall {
  const o = common('ApiCall', raw, source, receivedAt, opts);
  let v: string | number | boolean | undefined;
  if ((v = int(raw.AttemptCount)) !== undefined) o.attemptCount = v;
  if ((v = int(raw.Latency)) !== undefined) o.latency = v;
  if ((v = flag(raw.MaxRetriesExceeded)) !== undefined) o.maxRetriesExceeded = v;
  if ((v = nonZero(raw.FinalHttpStatusCode)) !== undefined) o.finalHttpStatusCode = v;
  if ((v = nonEmpty(raw.FinalAwsException)) !== undefined) o.finalAwsException = v;
  if ((v = nonEmpty(raw.FinalAwsExceptionMessage)) !== undefined) o.finalAwsExceptionMessage = v;
  if ((v = nonEmpty(raw.FinalSdkException)) !== undefined) o.finalSdkException = v;
  if ((v = nonEmpty(raw.FinalSdkExceptionMessage)) !== undefined) o.finalSdkExceptionMessage = v;
  if ((v = flag(raw.ApiCallTimeout)) !== undefined) o.apiCallTimeout = v;
  if ((v = nonEmpty(raw.XAmznRequestId)) !== undefined) o.xAmznRequestId = v;
  if ((v = nonEmpty(raw.XAmzRequestId)) !== undefined) o.xAmzRequestId = v;
  return o as CsmApiCall;
}

function toAttempt(raw: RawApiCallAttempt, source: Source, receivedAt: number, opts: DecoderOptions): CsmAttempt {
  const o = common('ApiCallAttempt', raw, source, receivedAt, opts);
  let v: string | number | boolean | undefined;
  if ((v = int(raw.AttemptLatency)) !== undefined) o.attemptLatency = v;
  if ((v = nonZero(raw.AttemptCount)) !== undefined) o.attemptNumber = v;
  const fqdn = nonEmpty(raw.Fqdn);
  if (fqdn !== undefined) {
    splitFqdn(fqdn);
    o.serverAddress = fqdnHost;
    if (fqdnPort !== undefined) o.serverPort = fqdnPort;
  }
  const accessKey = nonEmpty(raw.AccessKey);
  if (accessKey !== undefined) {
    if ((v = redactAccessKey(accessKey, opts)) !== undefined) o.accessKey = v;
    // IAM policies group by key (when ClientId is empty) and scope ARNs by its account: a cached hash, never the key.
    o.principal = principalOf(accessKey, opts.accessKeySalt);
  }
  if ((v = nonZero(raw.HttpStatusCode)) !== undefined) o.httpStatusCode = v;
  if ((v = nonEmpty(raw.XAmznRequestId)) !== undefined) o.xAmznRequestId = v;
  if ((v = nonEmpty(raw.XAmzRequestId)) !== undefined) o.xAmzRequestId = v;
  if ((v = nonEmpty(raw.XAmzId2)) !== undefined) o.xAmzId2 = v;
  if ((v = nonEmpty(raw.AwsException)) !== undefined) o.awsException = v;
  if ((v = nonEmpty(raw.AwsExceptionMessage)) !== undefined) o.awsExceptionMessage = v;
  if ((v = nonEmpty(raw.SdkException)) !== undefined) o.sdkException = v;
  if ((v = nonEmpty(raw.SdkExceptionMessage)) !== undefined) o.sdkExceptionMessage = v;
  if ((v = nonEmpty(raw.DestinationIp)) !== undefined) o.destinationIp = v;
  if ((v = flag(raw.ConnectionReused)) !== undefined) o.connectionReused = v;
  if ((v = int(raw.DnsLatency)) !== undefined) o.dnsLatency = v;
  if ((v = int(raw.TcpLatency)) !== undefined) o.tcpLatency = v;
  if ((v = int(raw.SslLatency)) !== undefined) o.sslLatency = v;
  if ((v = int(raw.ConnectLatency)) !== undefined) o.connectLatency = v;
  if ((v = int(raw.RequestLatency)) !== undefined) o.requestLatency = v;
  if ((v = int(raw.AcquireConnectionLatency)) !== undefined) o.acquireConnectionLatency = v;
  return o as CsmAttempt;
}

/** `host`, `host:port`, `[v6]:port` or a bare IPv6 address. */
export function splitHostPort(fqdn: string | undefined): { host: string; port?: number } | undefined {
  if (fqdn === undefined) return undefined;
  splitFqdn(fqdn);
  return fqdnPort === undefined ? { host: fqdnHost } : { host: fqdnHost, port: fqdnPort };
}

/** Results of `splitFqdn`. */
let fqdnHost = '';
let fqdnPort: number | undefined;

/**
 * Accepted forms (what two regexes used to match): `[host]` or `[host]:port` with a non-empty
 * host free of `]`; `host:port` with a non-empty host free of `:`; a port is 1 to 5 ASCII digits
 * and kept only when in 1..65535. Anything else is a bare host.
 */
function splitFqdn(fqdn: string): void {
  const n = fqdn.length;
  fqdnPort = undefined;
  if (fqdn.charCodeAt(0) === 0x5b /* [ */) {
    const close = fqdn.indexOf(']', 1);
    if (close > 1) {
      if (close === n - 1) {
        fqdnHost = fqdn.slice(1, close);
        return;
      }
      if (fqdn.charCodeAt(close + 1) === 0x3a /* : */ && isPort(fqdn, close + 2)) {
        fqdnHost = fqdn.slice(1, close);
        fqdnPort = portValue(fqdn, close + 2);
        return;
      }
    }
  }
  const colon = fqdn.indexOf(':');
  if (colon > 0 && isPort(fqdn, colon + 1)) {
    fqdnHost = fqdn.slice(0, colon);
    fqdnPort = portValue(fqdn, colon + 1);
    return;
  }
  fqdnHost = fqdn;
}

/** 1 to 5 ASCII digits from `from` to the end. */
function isPort(s: string, from: number): boolean {
  const len = s.length - from;
  if (len < 1 || len > 5) return false;
  for (let i = from; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return false;
  }
  return true;
}

function portValue(s: string, from: number): number | undefined {
  let n = 0;
  for (let i = from; i < s.length; i++) n = n * 10 + (s.charCodeAt(i) - 0x30);
  return n > 0 && n < 65536 ? n : undefined;
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
