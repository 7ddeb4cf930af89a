/**
 * An OTLP ExportTraceServiceRequest (protobuf, or OTLP/JSON) → the application spans the join
 * can use (app-span.ts); every other span is counted and forgotten at once.
 *
 * Hand-written rather than a generated decoder: only a dozen fields of four messages are read,
 * everything else is skipped by its wire type without being materialised, and every length is
 * checked against the buffer, so a malformed or hostile body costs one pass over its bytes and
 * ends in a DecodeError (an HTTP 400 / gRPC INVALID_ARGUMENT), never a throw elsewhere. Nesting
 * is fixed by the schema (no recursion on input: AnyValue arrays and maps are skipped unless they
 * are a captured-header string array, read one level deep).
 *
 * Field numbers: opentelemetry/proto/trace/v1/trace.proto, common/v1/common.proto,
 * resource/v1/resource.proto.
 */
import { BRIDGE_SCOPE, levelOf, noteAttribute, type AppResource, type AppSpan, type SpanFacts } from './app-span.js';

export class DecodeError extends Error {}

// ExportTraceServiceRequest
const REQUEST_RESOURCE_SPANS = 1;
// ResourceSpans
const RESOURCE_SPANS_RESOURCE = 1;
const RESOURCE_SPANS_SCOPE_SPANS = 2;
const RESOURCE_SPANS_SCHEMA_URL = 3;
// Resource
const RESOURCE_ATTRIBUTES = 1;
// ScopeSpans
const SCOPE_SPANS_SCOPE = 1;
const SCOPE_SPANS_SPANS = 2;
// InstrumentationScope
const SCOPE_NAME = 1;
// Span
const SPAN_TRACE_ID = 1;
const SPAN_SPAN_ID = 2;
const SPAN_TRACE_STATE = 3;
const SPAN_PARENT_SPAN_ID = 4;
const SPAN_NAME = 5;
const SPAN_KIND = 6;
const SPAN_START_TIME = 7;
const SPAN_END_TIME = 8;
const SPAN_ATTRIBUTES = 9;
// KeyValue
const KEY_VALUE_KEY = 1;
const KEY_VALUE_VALUE = 2;
// AnyValue
const ANY_STRING = 1;
const ANY_BOOL = 2;
const ANY_INT = 3;
const ANY_DOUBLE = 4;
const ANY_ARRAY = 5;
// ArrayValue
const ARRAY_VALUES = 1;

const VARINT = 0;
const I64 = 1;
const LEN = 2;
const I32 = 5;

/** Resource attributes kept per resource (the rest are dropped, counted in the result). */
export const MAX_RESOURCE_ATTRIBUTES = 64;
/** A resource attribute value longer than this is cut (service names, k8s labels are short). */
export const MAX_RESOURCE_VALUE_LENGTH = 256;
/** Span names longer than this are cut (SDK span names are `Service.Operation`). */
export const MAX_SPAN_NAME_LENGTH = 256;
/** A trace state longer than this is dropped (W3C allows 512 characters). */
export const MAX_TRACE_STATE_LENGTH = 512;

export interface DecodedSpans {
  /** The spans worth indexing. */
  spans: AppSpan[];
  /** Every span in the request. */
  total: number;
  /** Spans of the bridge's own instrumentation scope (a fan-out loop): never joined. */
  ownSpans: number;
  /** Spans with an invalid trace or span id: not joinable. */
  invalid: number;
}

const utf8 = new TextDecoder('utf-8', { fatal: false });

/** Reads protobuf fields of one message, bounds-checked against its end. */
class Cursor {
  pos: number;
  constructor(
    readonly buf: Uint8Array,
    start: number,
    readonly end: number,
  ) {
    this.pos = start;
  }

  get more(): boolean {
    return this.pos < this.end;
  }

  varint(): number {
    let v = 0;
    let scale = 1;
    for (let n = 0; n < 10; n++) {
      if (this.pos >= this.end) throw new DecodeError('truncated varint');
      const b = this.buf[this.pos++]!;
      v += (b & 0x7f) * scale;
      if (b < 0x80) return v;
      scale *= 128;
    }
    throw new DecodeError('varint too long');
  }

  /** A length-delimited field's [start, end). */
  len(): [number, number] {
    const n = this.varint();
    const start = this.pos;
    if (n > this.end - start) throw new DecodeError('truncated field');
    this.pos = start + n;
    return [start, start + n];
  }

  /** fixed64 as a number of milliseconds (nanoseconds / 1e6; exact to the microsecond up to year 2255). */
  fixed64Ms(): number {
    if (this.end - this.pos < 8) throw new DecodeError('truncated fixed64');
    const b = this.buf;
    const p = this.pos;
    const lo = (b[p]! | (b[p + 1]! << 8) | (b[p + 2]! << 16) | (b[p + 3]! << 24)) >>> 0;
    const hi = (b[p + 4]! | (b[p + 5]! << 8) | (b[p + 6]! << 16) | (b[p + 7]! << 24)) >>> 0;
    this.pos = p + 8;
    return (hi * 4294967296 + lo) / 1e6;
  }

  /** Calls `fn` for each length-delimited field (its number and [start, end)); skips every other field. */
  lenFields(fn: (field: number, start: number, end: number) => void): void {
    while (this.pos < this.end) {
      const tag = this.varint();
      if ((tag & 7) !== LEN) {
        this.skip(tag & 7);
        continue;
      }
      const [s, e] = this.len();
      fn(tag >>> 3, s, e);
    }
  }

  skip(wire: number): void {
    if (wire === VARINT) this.varint();
    else if (wire === LEN) this.len();
    else if (wire === I64) this.advance(8);
    else if (wire === I32) this.advance(4);
    else throw new DecodeError(`wire type ${wire}`);
  }

  private advance(n: number): void {
    if (this.end - this.pos < n) throw new DecodeError('truncated field');
    this.pos += n;
  }

  string(start: number, end: number, max: number): string {
    return utf8.decode(this.buf.subarray(start, Math.min(end, start + max * 4))).slice(0, max);
  }

  bytes(start: number, end: number): Uint8Array {
    return this.buf.slice(start, end);
  }
}

/** Decodes an ExportTraceServiceRequest in protobuf. Throws DecodeError on a malformed body. */
export function decodeProtobufRequest(buf: Uint8Array): DecodedSpans {
  const out: DecodedSpans = { spans: [], total: 0, ownSpans: 0, invalid: 0 };
  const c = new Cursor(buf, 0, buf.length);
  c.lenFields((field, s, e) => {
    if (field === REQUEST_RESOURCE_SPANS) resourceSpans(new Cursor(buf, s, e), out);
  });
  return out;
}

function resourceSpans(c: Cursor, out: DecodedSpans): void {
  // The resource may come after its spans on the wire: collect the scopes' ranges first.
  let attributes: Record<string, string | number | boolean> = {};
  let schemaUrl: string | undefined;
  const scopes: [number, number][] = [];
  c.lenFields((field, s, e) => {
    if (field === RESOURCE_SPANS_RESOURCE) attributes = resourceAttributes(new Cursor(c.buf, s, e));
    else if (field === RESOURCE_SPANS_SCOPE_SPANS) scopes.push([s, e]);
    else if (field === RESOURCE_SPANS_SCHEMA_URL) schemaUrl = c.string(s, e, MAX_RESOURCE_VALUE_LENGTH);
  });
  let resource: AppResource | undefined;
  for (const [s, e] of scopes) {
    const kept = scopeSpans(new Cursor(c.buf, s, e), out);
    if (kept.length === 0) continue;
    resource ??= makeResource(attributes, schemaUrl);
    for (const k of kept) out.spans.push({ ...k, resource });
  }
}

function makeResource(attributes: Record<string, string | number | boolean>, schemaUrl: string | undefined): AppResource {
  let bytes = 64;
  for (const k in attributes) bytes += 48 + k.length * 2 + (typeof attributes[k] === 'string' ? (attributes[k] as string).length * 2 : 8);
  return schemaUrl === undefined ? { attributes, bytes } : { attributes, schemaUrl, bytes: bytes + schemaUrl.length * 2 };
}

function resourceAttributes(c: Cursor): Record<string, string | number | boolean> {
  const attrs: Record<string, string | number | boolean> = {};
  let n = 0;
  c.lenFields((field, s, e) => {
    if (field !== RESOURCE_ATTRIBUTES || n >= MAX_RESOURCE_ATTRIBUTES) return;
    const kv = keyValue(new Cursor(c.buf, s, e), true);
    if (kv !== undefined && typeof kv[1] !== 'object' && kv[0] !== '__proto__') {
      attrs[kv[0]] = kv[1];
      n++;
    }
  });
  return attrs;
}

type Kept = Omit<AppSpan, 'resource'>;

function scopeSpans(c: Cursor, out: DecodedSpans): Kept[] {
  let own = false;
  const spans: [number, number][] = [];
  c.lenFields((field, s, e) => {
    if (field === SCOPE_SPANS_SPANS) spans.push([s, e]);
    else if (field === SCOPE_SPANS_SCOPE) own = scopeName(new Cursor(c.buf, s, e)) === BRIDGE_SCOPE;
  });
  out.total += spans.length;
  if (own) {
    out.ownSpans += spans.length;
    return [];
  }
  const kept: Kept[] = [];
  for (const [s, e] of spans) {
    const k = span(new Cursor(c.buf, s, e), out);
    if (k !== undefined) kept.push(k);
  }
  return kept;
}

function scopeName(c: Cursor): string {
  let name = '';
  c.lenFields((field, s, e) => {
    if (field === SCOPE_NAME) name = c.string(s, e, 64);
  });
  return name;
}

const EMPTY: Uint8Array = new Uint8Array(0);

function span(c: Cursor, out: DecodedSpans): Kept | undefined {
  let traceId: Uint8Array = EMPTY;
  let spanId: Uint8Array = EMPTY;
  let parentSpanId: Uint8Array = EMPTY;
  let traceState = '';
  let name = '';
  let kind = 0;
  let startMs = 0;
  let endMs = 0;
  const facts: SpanFacts = { rpcAws: false, ids: [] };
  while (c.more) {
    const tag = c.varint();
    const field = tag >>> 3;
    const wire = tag & 7;
    if (wire === LEN) {
      const [s, e] = c.len();
      if (field === SPAN_ATTRIBUTES) {
        const kv = keyValue(new Cursor(c.buf, s, e), false);
        if (kv !== undefined) noteAttribute(facts, kv[0], kv[1]);
      } else if (field === SPAN_TRACE_ID) traceId = c.bytes(s, e);
      else if (field === SPAN_SPAN_ID) spanId = c.bytes(s, e);
      else if (field === SPAN_PARENT_SPAN_ID) parentSpanId = c.bytes(s, e);
      else if (field === SPAN_NAME) name = c.string(s, e, MAX_SPAN_NAME_LENGTH);
      else if (field === SPAN_TRACE_STATE) traceState = e - s <= MAX_TRACE_STATE_LENGTH ? c.string(s, e, MAX_TRACE_STATE_LENGTH) : '';
    } else if (wire === VARINT && field === SPAN_KIND) kind = c.varint();
    else if (wire === I64 && field === SPAN_START_TIME) startMs = c.fixed64Ms();
    else if (wire === I64 && field === SPAN_END_TIME) endMs = c.fixed64Ms();
    else c.skip(wire);
  }
  return keep(traceId, spanId, parentSpanId, traceState, name, kind, startMs, endMs, facts, out);
}

function keep(
  traceId: Uint8Array,
  spanId: Uint8Array,
  parentSpanId: Uint8Array,
  traceState: string,
  name: string,
  kind: number,
  startMs: number,
  endMs: number,
  facts: SpanFacts,
  out: DecodedSpans,
): Kept | undefined {
  if (!facts.rpcAws && facts.ids.length === 0) return undefined;
  if (!validId(traceId, 16) || !validId(spanId, 8) || (parentSpanId.length !== 0 && parentSpanId.length !== 8)) {
    out.invalid++;
    return undefined;
  }
  if (facts.ids.length === 0) return undefined; // an SDK span without an id cannot be joined
  return { traceId, spanId, parentSpanId, traceState, name, kind, startMs, endMs, level: levelOf(kind, facts), ids: facts.ids };
}

function validId(id: Uint8Array, len: number): boolean {
  if (id.length !== len) return false;
  for (let i = 0; i < len; i++) if (id[i] !== 0) return true;
  return false;
}

/** A KeyValue: [key, value]; arrays only when `arrays` (captured headers), as string[]. */
function keyValue(c: Cursor, resource: boolean): [string, string | number | boolean | string[]] | undefined {
  let key = '';
  let value: string | number | boolean | string[] | undefined;
  while (c.more) {
    const tag = c.varint();
    const field = tag >>> 3;
    if (field === KEY_VALUE_KEY && (tag & 7) === LEN) {
      const [s, e] = c.len();
      key = c.string(s, e, MAX_RESOURCE_VALUE_LENGTH);
    } else if (field === KEY_VALUE_VALUE && (tag & 7) === LEN) {
      const [s, e] = c.len();
      value = anyValue(new Cursor(c.buf, s, e), resource ? MAX_RESOURCE_VALUE_LENGTH : 1024, !resource);
    } else c.skip(tag & 7);
  }
  return value === undefined || key === '' ? undefined : [key, value];
}

function anyValue(c: Cursor, maxString: number, arrays: boolean): string | number | boolean | string[] | undefined {
  let v: string | number | boolean | string[] | undefined;
  while (c.more) {
    const tag = c.varint();
    const field = tag >>> 3;
    const wire = tag & 7;
    if (field === ANY_STRING && wire === LEN) {
      const [s, e] = c.len();
      v = c.string(s, e, maxString);
    } else if (field === ANY_BOOL && wire === VARINT) v = c.varint() !== 0;
    else if (field === ANY_INT && wire === VARINT) v = c.varint();
    else if (field === ANY_DOUBLE && wire === I64) {
      c.skip(I64);
      v = 0; // doubles matter to no join fact
    } else if (field === ANY_ARRAY && wire === LEN && arrays) {
      const [s, e] = c.len();
      v = stringArray(new Cursor(c.buf, s, e), maxString);
    } else c.skip(wire);
  }
  return v;
}

/** The strings of an ArrayValue (a captured header's values), at most 4. */
function stringArray(c: Cursor, maxString: number): string[] {
  const out: string[] = [];
  c.lenFields((field, s, e) => {
    if (field !== ARRAY_VALUES) return;
    const v = anyValue(new Cursor(c.buf, s, e), maxString, false);
    if (typeof v === 'string' && out.length < 4) out.push(v);
  });
  return out;
}

// ---- OTLP/JSON ----

/**
 * Decodes an ExportTraceServiceRequest in OTLP/JSON (ids as hex, times as decimal strings or
 * numbers, enums as numbers; the lowerCamelCase keys of the protobuf JSON mapping). The text
 * must already be bounded in size by the caller. Throws DecodeError when it is not such a request.
 */
export function decodeJsonRequest(text: string): DecodedSpans {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new DecodeError(`not JSON: ${(e as Error).message}`);
  }
  if (!isObject(doc)) throw new DecodeError('not an ExportTraceServiceRequest object');
  const out: DecodedSpans = { spans: [], total: 0, ownSpans: 0, invalid: 0 };
  for (const rs of arrayOf(doc['resourceSpans'])) {
    if (!isObject(rs)) throw new DecodeError('resourceSpans: not objects');
    const res = isObject(rs['resource']) ? rs['resource'] : {};
    const attributes: Record<string, string | number | boolean> = {};
    let n = 0;
    for (const kv of arrayOf(res['attributes'])) {
      if (n >= MAX_RESOURCE_ATTRIBUTES) break;
      const pair = jsonKeyValue(kv, MAX_RESOURCE_VALUE_LENGTH);
      if (pair !== undefined && !Array.isArray(pair[1]) && pair[0] !== '__proto__') {
        attributes[pair[0]] = pair[1];
        n++;
      }
    }
    const schemaUrl = typeof rs['schemaUrl'] === 'string' ? rs['schemaUrl'].slice(0, MAX_RESOURCE_VALUE_LENGTH) : undefined;
    let resource: AppResource | undefined;
    for (const ss of arrayOf(rs['scopeSpans'])) {
      if (!isObject(ss)) throw new DecodeError('scopeSpans: not objects');
      const spans = arrayOf(ss['spans']);
      out.total += spans.length;
      const scope = isObject(ss['scope']) ? ss['scope'] : {};
      if (scope['name'] === BRIDGE_SCOPE) {
        out.ownSpans += spans.length;
        continue;
      }
      for (const s of spans) {
        if (!isObject(s)) throw new DecodeError('spans: not objects');
        const facts: SpanFacts = { rpcAws: false, ids: [] };
        for (const kv of arrayOf(s['attributes'])) {
          const pair = jsonKeyValue(kv, 1024);
          if (pair !== undefined) noteAttribute(facts, pair[0], pair[1]);
        }
        const k = keep(
          hex(s['traceId']),
          hex(s['spanId']),
          hex(s['parentSpanId']),
          typeof s['traceState'] === 'string' && s['traceState'].length <= MAX_TRACE_STATE_LENGTH ? s['traceState'] : '',
          typeof s['name'] === 'string' ? s['name'].slice(0, MAX_SPAN_NAME_LENGTH) : '',
          typeof s['kind'] === 'number' ? s['kind'] : 0,
          nanosToMs(s['startTimeUnixNano']),
          nanosToMs(s['endTimeUnixNano']),
          facts,
          out,
        );
        if (k === undefined) continue;
        resource ??= makeResource(attributes, schemaUrl);
        out.spans.push({ ...k, resource });
      }
    }
  }
  return out;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function arrayOf(v: unknown): unknown[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new DecodeError('expected an array');
  return v;
}

function jsonKeyValue(kv: unknown, maxString: number): [string, string | number | boolean | string[]] | undefined {
  if (!isObject(kv) || typeof kv['key'] !== 'string' || !isObject(kv['value'])) return undefined;
  const v = jsonAnyValue(kv['value'], maxString, true);
  return v === undefined ? undefined : [kv['key'].slice(0, MAX_RESOURCE_VALUE_LENGTH), v];
}

function jsonAnyValue(v: Record<string, unknown>, maxString: number, arrays: boolean): string | number | boolean | string[] | undefined {
  if (typeof v['stringValue'] === 'string') return v['stringValue'].slice(0, maxString);
  if (typeof v['boolValue'] === 'boolean') return v['boolValue'];
  if (typeof v['intValue'] === 'number' || typeof v['intValue'] === 'string') return Number(v['intValue']);
  if (typeof v['doubleValue'] === 'number') return v['doubleValue'];
  if (arrays && isObject(v['arrayValue'])) {
    const out: string[] = [];
    for (const x of arrayOf(v['arrayValue']['values']).slice(0, 4)) {
      if (isObject(x) && typeof x['stringValue'] === 'string') out.push(x['stringValue'].slice(0, maxString));
    }
    return out;
  }
  return undefined;
}

function hex(v: unknown): Uint8Array {
  if (typeof v !== 'string' || v.length > 32 || v.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(v)) return EMPTY;
  return Uint8Array.from(Buffer.from(v, 'hex'));
}

function nanosToMs(v: unknown): number {
  if (typeof v === 'number') return v / 1e6;
  if (typeof v === 'string' && /^\d{1,20}$/.test(v)) return Number(BigInt(v) / 1000n) / 1000;
  return 0;
}
