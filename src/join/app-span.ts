/**
 * What the bridge keeps of an application's span: only what the join needs (docs/app-traces.md).
 *
 * An application's in-process AWS SDK instrumentation makes one span per logical call and
 * records the request id of the call's final HTTP attempt; CSM sends every attempt with its
 * request id. The id joins them exactly. Each instrumentation spells the attribute its own way
 * (../shared/app-trace-join.md §1, §7): `aws.request_id` (semconv: Python, Java >= 2.9, .NET, PHP,
 * Go v2, Ruby's per-attempt `Handler.NetHttp`), `aws.request.id` (JS), `aws.requestId` (Java
 * < 2.9); S3's extended id as `aws.extended_request_id` / `aws.request.extended_id` (and Python
 * may put an x-amz-id-2 value into `aws.request_id`); HTTP spans with captured response headers
 * carry `http.response.header.x-amzn-requestid` / `x-amz-request-id` (string arrays).
 *
 * A span is kept when it is an AWS SDK call (`rpc.system` or `rpc.system.name` = `aws-api`,
 * any kind: SNS Publish is PRODUCER) or carries a request id at all. Its level decides where
 * the CSM attempts go: under a *call* span; beside an *attempt* span (the app already has that
 * attempt, so the bridge does not export it again).
 */

/** Request-id attributes, as the instrumentations write them. */
export const REQUEST_ID_KEYS: readonly string[] = ['aws.request_id', 'aws.request.id', 'aws.requestId'];
/** S3's extended request id (x-amz-id-2). */
export const EXTENDED_ID_KEYS: readonly string[] = ['aws.extended_request_id', 'aws.request.extended_id'];
/** Captured response headers on HTTP client spans (string arrays). */
export const HEADER_ID_KEYS: readonly string[] = ['http.response.header.x-amzn-requestid', 'http.response.header.x-amz-request-id', 'http.response.header.x-amz-id-2'];
/** The instrumentation scope of the bridge's own spans: never joined to themselves (a Collector loop). */
export const BRIDGE_SCOPE = 'aws-csm-bridge';

/** Request ids longer than this are not ids (AWS's are 20-80 characters; x-amz-id-2 about 76). */
export const MAX_REQUEST_ID_LENGTH = 256;
/** Ids kept per span: a call span carries one or two; more is not an SDK span. */
export const MAX_IDS_PER_SPAN = 4;

export const SPAN_KIND_INTERNAL = 1;
export const SPAN_KIND_CLIENT = 3;

/** The application's resource, shared by every span of one ResourceSpans. */
export interface AppResource {
  /** key → value as decoded (string, number, boolean; arrays and maps as their JSON text). */
  readonly attributes: Readonly<Record<string, string | number | boolean>>;
  readonly schemaUrl?: string;
  /** Bytes this resource costs in memory (approximate), for the index's bound. */
  readonly bytes: number;
}

export interface AppSpan {
  /** 16 bytes */
  readonly traceId: Uint8Array;
  /** 8 bytes */
  readonly spanId: Uint8Array;
  /** 8 bytes, or empty for a root */
  readonly parentSpanId: Uint8Array;
  readonly traceState: string;
  readonly name: string;
  readonly kind: number;
  readonly startMs: number;
  readonly endMs: number;
  /** `call`: the logical SDK call (attempts hang below it); `attempt`: one HTTP attempt the app already has. */
  readonly level: 'call' | 'attempt';
  /** Every request id the span names (any spelling, extended ids included), each at most MAX_REQUEST_ID_LENGTH. */
  readonly ids: readonly string[];
  readonly resource: AppResource;
}

/** What the decoder needs to know of a span's attributes to keep it or not. */
export interface SpanFacts {
  rpcAws: boolean;
  ids: string[];
}

/** Folds one attribute into the facts; values of other keys are never looked at. */
export function noteAttribute(facts: SpanFacts, key: string, value: unknown): void {
  if (key === 'rpc.system' || key === 'rpc.system.name') {
    if (value === 'aws-api') facts.rpcAws = true;
    return;
  }
  if (REQUEST_ID_KEYS.includes(key) || EXTENDED_ID_KEYS.includes(key)) addId(facts, value);
  else if (HEADER_ID_KEYS.includes(key)) {
    if (Array.isArray(value)) for (const v of value.slice(0, MAX_IDS_PER_SPAN)) addId(facts, v);
    else addId(facts, value);
  }
}

function addId(facts: SpanFacts, value: unknown): void {
  if (typeof value !== 'string' || value === '' || value.length > MAX_REQUEST_ID_LENGTH) return;
  if (facts.ids.length >= MAX_IDS_PER_SPAN || facts.ids.includes(value)) return;
  facts.ids.push(value);
}

/**
 * The level of a kept span: an AWS SDK span that is not INTERNAL is the logical call (CLIENT,
 * PRODUCER, CONSUMER); an INTERNAL one with an id (Ruby's `Handler.NetHttp`) or a plain HTTP
 * span with a captured id is one attempt.
 */
export function levelOf(kind: number, facts: SpanFacts): 'call' | 'attempt' {
  return facts.rpcAws && kind !== SPAN_KIND_INTERNAL ? 'call' : 'attempt';
}
