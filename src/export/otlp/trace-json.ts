/**
 * OTLP/JSON serializer of the trace messages straight from SpanRecords: one function per
 * message, each writing the JSON text of the object otlp-transformer's JsonTraceSerializer
 * builds and stringifies (same keys in the same order, ids as hex, nanosecond times as
 * decimal strings, NaN and the infinities as null); test/unit/trace-batch.test.ts checks it
 * character for character.
 *
 * Text is built by concatenation rather than objects and JSON.stringify (only strings go
 * through it, for their escaping), with each attribute key's `{"key":...,"value":` kept:
 * this runs for every call on the datagram path when the protocol is http/json.
 */
import type { Attributes, SpanEventRecord, SpanRecord } from '../../translate/types.js';
import { SPAN_ID_BYTES, TRACE_ID_BYTES, TREE_ID_BYTES, type SpanIds } from './span-ids.js';
import { DROPPED, IGNORED, type SpanLimits } from './span-limits.js';
import { childrenOf, type PreparedResource, type RemoteParent, type ResourceAttributes, type ResourceGroup, type SerializerParts, type SpanSerializer } from './span-serializer.js';
import { hrNanos, hrSeconds, spanTimes, splitSpanTimes } from './span-times.js';

/** A resource's spans: JSON Span objects, comma separated. */
export interface JsonSpans {
  text: string;
}

// Enum values and flags, as in trace-protobuf.ts
const SPAN_KIND_INTERNAL = 1;
const SPAN_KIND_CLIENT = 3;
/** Span fields the bridge never sets, as the SDK writes them for a local, sampled span without links. */
const SPAN_TAIL = ',"links":[],"droppedLinksCount":0,"flags":257}';
/** The same below a remote parent: flags also CONTEXT_IS_REMOTE (0x200). */
const SPAN_TAIL_REMOTE_PARENT = ',"links":[],"droppedLinksCount":0,"flags":769}';
/** Encoded keys kept at most (a client sending ever new keys must not grow memory). */
const KEY_CACHE_MAX = 4096;

/** The JSON half of a PreparedResource: the `"resource"` member and the `"schemaUrl"` one of a ResourceSpans. */
export function jsonResource(attributes: ResourceAttributes, schemaUrl: string | undefined): Pick<PreparedResource, 'jsonResource' | 'jsonSchemaUrl'> {
  const resource: Record<string, unknown> = { attributes: jsonKeyValueList(attributes), droppedAttributesCount: 0 };
  if (schemaUrl !== undefined) resource['schemaUrl'] = schemaUrl;
  return {
    jsonResource: `"resource":${JSON.stringify(resource)}`,
    jsonSchemaUrl: schemaUrl !== undefined ? `,"schemaUrl":${JSON.stringify(schemaUrl)}` : '',
  };
}

export class JsonSpanSerializer implements SpanSerializer<JsonSpans> {
  private readonly limits: SpanLimits;
  private readonly ids: SpanIds;
  /** ScopeSpans.scope as JSON */
  private readonly scope: string;
  /** trace id (0..15) and root span id (16..23) of the tree being written */
  private readonly treeIds = new Uint8Array(TREE_ID_BYTES);
  private readonly childId = new Uint8Array(SPAN_ID_BYTES);
  private readonly keyValues: JsonKeyValues;

  constructor(parts: SerializerParts) {
    this.limits = parts.limits;
    this.ids = parts.ids;
    this.keyValues = new JsonKeyValues(parts.limits);
    this.scope = JSON.stringify({ name: parts.scope.name, version: parts.scope.version });
  }

  emptySpans(): JsonSpans {
    return { text: '' };
  }

  clear(spans: JsonSpans): JsonSpans {
    spans.text = '';
    return spans;
  }

  envelopeBytes(resource: PreparedResource): number {
    // the members around the spans plus the keys, brackets and braces of ResourceSpans and ScopeSpans
    return resource.jsonResource.length + resource.jsonSchemaUrl.length + this.scope.length + 40;
  }

  appendTree(spans: JsonSpans, root: SpanRecord): number {
    const tree = this.treeIds;
    const childId = this.childId;
    this.ids.nextTree(tree);
    const traceId = hex(tree, 0, TRACE_ID_BYTES);
    const rootId = hex(tree, TRACE_ID_BYTES, SPAN_ID_BYTES);
    const children = childrenOf(root);
    const n = children.length;
    let text = '';
    for (let i = 0; i < n; i++) {
      this.ids.nextSpanId(childId, 0);
      text += this.span(children[i]!, traceId, hex(childId, 0, SPAN_ID_BYTES), rootId) + ',';
    }
    text += this.span(root, traceId, rootId, undefined);
    // only now: a tree that throws halfway leaves nothing behind
    spans.text = spans.text === '' ? text : `${spans.text},${text}`;
    return text.length + 1;
  }

  appendUnder(spans: JsonSpans, parent: RemoteParent, records: readonly SpanRecord[]): number {
    const childId = this.childId;
    const traceId = hex(parent.traceId, 0, TRACE_ID_BYTES);
    const parentId = hex(parent.spanId, 0, SPAN_ID_BYTES);
    let text = '';
    for (const r of records) {
      this.ids.nextSpanId(childId, 0);
      if (text !== '') text += ',';
      text += this.span(r, traceId, hex(childId, 0, SPAN_ID_BYTES), parentId, parent.traceState);
    }
    if (text === '') return 0;
    spans.text = spans.text === '' ? text : `${spans.text},${text}`;
    return text.length + 1;
  }

  /** ExportTraceServiceRequest, with a ResourceSpans and its one ScopeSpans per group. */
  request(groups: readonly ResourceGroup<JsonSpans>[]): Uint8Array {
    let s = '{"resourceSpans":[';
    for (let i = 0; i < groups.length; i++) {
      const g = groups[i]!;
      if (i > 0) s += ',';
      s += `{${g.resource.jsonResource},"scopeSpans":[{"scope":${this.scope},"spans":[${g.spans.text}]}]${g.resource.jsonSchemaUrl}}`;
    }
    s += ']}';
    return Buffer.from(s, 'utf8');
  }

  /** A Span object, in the key order of otlp-transformer's sdkSpanToOtlpSpan (traceState is undefined, so absent). */
  private span(rec: SpanRecord, traceId: string, spanId: string, parentSpanId: string | undefined, remoteTraceState?: string): string {
    splitSpanTimes(rec.startMs, rec.endMs);
    let out = `{"traceId":"${traceId}","spanId":"${spanId}"`;
    if (remoteTraceState !== undefined && remoteTraceState !== '') out += `,"traceState":${JSON.stringify(remoteTraceState)}`;
    if (parentSpanId !== undefined) out += `,"parentSpanId":"${parentSpanId}"`;
    out += `,"name":${JSON.stringify(typeof rec.name === 'string' ? rec.name : String(rec.name))}`;
    out += `,"kind":${rec.kind === 'internal' ? SPAN_KIND_INTERNAL : SPAN_KIND_CLIENT}`;
    out += `,"startTimeUnixNano":"${nanosString(spanTimes[0]!, spanTimes[1]!)}","endTimeUnixNano":"${nanosString(spanTimes[2]!, spanTimes[3]!)}"`;
    const limits = this.limits;
    const keyValues = this.keyValues;
    out += `,"attributes":[${keyValues.text(rec.attributes, false)}],"droppedAttributesCount":${keyValues.dropped},"events":[`;
    const events = rec.events;
    const count = events === undefined ? 0 : events.length;
    const firstKept = limits.firstKeptEvent(count);
    for (let i = firstKept; i < count; i++) {
      if (i > firstKept) out += ',';
      out += this.event(events[i]!);
    }
    return `${out}],"droppedEventsCount":${firstKept},"status":${status(rec.status)}${remoteTraceState === undefined ? SPAN_TAIL : SPAN_TAIL_REMOTE_PARENT}`;
  }

  /** A Span.Event object, its attributes within the SDK's per-event limit. */
  private event(e: SpanEventRecord): string {
    const keyValues = this.keyValues;
    const attributes = keyValues.text(e.attributes, true);
    const t = e.timeMs;
    return (
      `{"attributes":[${attributes}],"name":${JSON.stringify(typeof e.name === 'string' ? e.name : String(e.name))}` +
      `,"timeUnixNano":"${nanosString(hrSeconds(t), hrNanos(t))}","droppedAttributesCount":${keyValues.dropped}}`
    );
  }
}

/** KeyValue objects as JSON text for span and event attributes. */
class JsonKeyValues {
  /** `{"key":...,"value":` per attribute key */
  private readonly keyPrefixes = new Map<string, string>();
  /** The dropped_attributes_count of the last text() */
  dropped = 0;

  constructor(private readonly limits: SpanLimits) {}

  /** The KeyValues, comma separated, of the attributes the span limits keep of a span's or event's. */
  text(attrs: Attributes, forEvent: boolean): string {
    const limits = this.limits;
    let valid = 0;
    let out = '';
    for (const key in attrs) {
      if (!Object.prototype.hasOwnProperty.call(attrs, key)) continue;
      const v = limits.admit(key, attrs[key], valid, forEvent);
      if (v === IGNORED) continue;
      valid++;
      if (v === DROPPED) continue;
      let prefix = this.keyPrefixes.get(key);
      if (prefix === undefined) {
        prefix = `{"key":${JSON.stringify(key)},"value":`;
        if (this.keyPrefixes.size >= KEY_CACHE_MAX) this.keyPrefixes.clear();
        this.keyPrefixes.set(key, prefix);
      }
      if (out !== '') out += ',';
      out += `${prefix}${anyValue(v)}}`;
    }
    this.dropped = limits.droppedAttributes(valid, forEvent);
    return out;
  }
}

/** A Status object: the message only with an error that has one. */
function status(st: SpanRecord['status'] | undefined): string {
  if (st !== undefined && st.code === 'error') {
    return typeof st.message === 'string' && st.message !== '' ? `{"code":2,"message":${JSON.stringify(st.message)}}` : '{"code":2}';
  }
  return '{"code":0}';
}

/** An AnyValue object as JSON text; primitives without building an object. */
function anyValue(v: unknown): string {
  const t = typeof v;
  if (t === 'string') return `{"stringValue":${JSON.stringify(v)}}`;
  if (t === 'number') {
    const x = v as number;
    // JSON.stringify writes NaN and the infinities as null
    return `{"${Number.isInteger(x) ? 'intValue' : 'doubleValue'}":${Number.isFinite(x) ? String(x) : 'null'}}`;
  }
  if (t === 'boolean') return v ? '{"boolValue":true}' : '{"boolValue":false}';
  return JSON.stringify(anyValueObject(v));
}

/** otlp-transformer's toAnyValue with the JSON encoder: the AnyValue object of any value. */
function anyValueObject(value: unknown): unknown {
  const t = typeof value;
  if (t === 'string') return { stringValue: value };
  if (t === 'number') return Number.isInteger(value) ? { intValue: value } : { doubleValue: value };
  if (t === 'boolean') return { boolValue: value };
  if (value instanceof Uint8Array) return { bytesValue: Buffer.from(value).toString('base64') };
  if (Array.isArray(value)) return { arrayValue: { values: value.map(anyValueObject) } };
  if (t === 'object' && value != null) return { kvlistValue: { values: jsonKeyValueList(value as Record<string, unknown>) } };
  return {};
}

/** otlp-transformer's toAttributes: KeyValue objects of every own key, no limits (resources, kvlists). */
function jsonKeyValueList(attrs: ResourceAttributes | Attributes): unknown[] {
  const obj = attrs as Record<string, unknown>;
  return Object.keys(obj).map((key) => ({ key, value: anyValueObject(obj[key]) }));
}

/** otlp-transformer's JSON timestamp (hrTimeToNanos as a decimal string); '0' where it would throw. */
function nanosString(seconds: number, nanos: number): string {
  if (seconds > 0 && seconds <= 0xffffffff && nanos >= 0 && nanos < 1e9 && Number.isInteger(seconds) && Number.isInteger(nanos)) {
    const n = String(nanos);
    return String(seconds) + '000000000'.slice(n.length) + n;
  }
  if (!Number.isFinite(seconds) || !Number.isFinite(nanos)) return '0';
  return (BigInt(Math.trunc(seconds)) * 1_000_000_000n + BigInt(Math.trunc(nanos))).toString();
}

const HEX: string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

function hex(b: Uint8Array, off: number, len: number): string {
  let s = '';
  for (let i = off; i < off + len; i++) s += HEX[b[i]!];
  return s;
}
