/**
 * Protobuf serializer of the OTLP trace messages (opentelemetry/proto/trace/v1/trace.proto,
 * collector/trace/v1/trace_service.proto) straight from SpanRecords: one function per
 * message, the field table at the head. Its output equals otlp-transformer's
 * ProtobufTraceSerializer on the spans the SDK would have built (same fields, order and
 * defaults written); test/unit/trace-batch.test.ts checks it byte for byte.
 *
 * Each span is written once, into its resource's buffer, as the call is added; a request is
 * those buffers wrapped in their ResourceSpans/ScopeSpans. Span fields of fixed size (ids,
 * kind, times, flags) are stored as one run after one bounds check: this runs for every
 * call on the datagram path.
 */
import type { SpanEventRecord, SpanRecord } from '../../translate/types.js';
import { KeyValueWriter, writeInstrumentationScope, writeResource } from './common-protobuf.js';
import { byteTag, I32, I64, LEN, ProtobufWriter, putFixed32, putHrTimeFixed64, putVarint, tag, VARINT, varintSize } from './protobuf-writer.js';
import { TRACE_ID_BYTES, TREE_ID_BYTES, type SpanIds } from './span-ids.js';
import type { SpanLimits } from './span-limits.js';
import { childrenOf, type PreparedResource, type RemoteParent, type ResourceAttributes, type ResourceGroup, type SerializerParts, type SpanSerializer } from './span-serializer.js';
import { hrNanos, hrSeconds, spanTimes, splitSpanTimes } from './span-times.js';

// Field table (tags precomputed: the hot path stores them as bytes)
// ExportTraceServiceRequest
const REQUEST_RESOURCE_SPANS = byteTag(1, LEN); //    repeated ResourceSpans resource_spans
// ResourceSpans
const RESOURCE_SPANS_RESOURCE = byteTag(1, LEN); //   Resource resource
const RESOURCE_SPANS_SCOPE_SPANS = byteTag(2, LEN); // repeated ScopeSpans scope_spans
const RESOURCE_SPANS_SCHEMA_URL = byteTag(3, LEN); // string schema_url
// ScopeSpans (schema_url = 3: the bridge's scope has none)
const SCOPE_SPANS_SCOPE = byteTag(1, LEN); //         InstrumentationScope scope
const SCOPE_SPANS_SPANS = byteTag(2, LEN); //         repeated Span spans
// Span (links = 13: never set)
const SPAN_TRACE_ID = byteTag(1, LEN); //             bytes
const SPAN_SPAN_ID = byteTag(2, LEN); //              bytes
const SPAN_TRACE_STATE = byteTag(3, LEN); //          string (only below a remote parent)
const SPAN_PARENT_SPAN_ID = byteTag(4, LEN); //       bytes
const SPAN_NAME = byteTag(5, LEN); //                 string
const SPAN_KIND = byteTag(6, VARINT); //              SpanKind
const SPAN_START_TIME = byteTag(7, I64); //           fixed64 start_time_unix_nano
const SPAN_END_TIME = byteTag(8, I64); //             fixed64 end_time_unix_nano
const SPAN_ATTRIBUTES = byteTag(9, LEN); //           repeated KeyValue
const SPAN_DROPPED_ATTRIBUTES_COUNT = byteTag(10, VARINT);
const SPAN_EVENTS = byteTag(11, LEN); //              repeated Event
const SPAN_DROPPED_EVENTS_COUNT = byteTag(12, VARINT);
const SPAN_DROPPED_LINKS_COUNT = byteTag(14, VARINT);
const SPAN_STATUS = byteTag(15, LEN); //              Status
const SPAN_FLAGS = tag(16, I32); //                   fixed32 (a two-byte tag)
// Span.Event
const EVENT_TIME = byteTag(1, I64); //                fixed64 time_unix_nano
const EVENT_NAME = byteTag(2, LEN); //                string
const EVENT_ATTRIBUTES = byteTag(3, LEN); //          repeated KeyValue
const EVENT_DROPPED_ATTRIBUTES_COUNT = byteTag(4, VARINT);
// Status
const STATUS_MESSAGE = byteTag(2, LEN); //            string
const STATUS_CODE = byteTag(3, VARINT); //            StatusCode

// Enum values and flags
const SPAN_KIND_INTERNAL = 1;
const SPAN_KIND_CLIENT = 3;
const STATUS_CODE_UNSET = 0;
const STATUS_CODE_ERROR = 2;
/** SpanFlags: sampled (trace flags 0x01) | CONTEXT_HAS_IS_REMOTE (0x100; the parent is local or absent). */
const SPAN_FLAGS_VALUE = 0x01 | 0x100;
/** SpanFlags below a remote parent: also CONTEXT_IS_REMOTE (0x200). */
const SPAN_FLAGS_REMOTE_PARENT = SPAN_FLAGS_VALUE | 0x200;

/** Most spans are 128 bytes to 16 KiB: their length is reserved as two bytes, moved when it is not. */
const SPAN_LENGTH_BYTES = 2;
/** Events and Status are mostly shorter. */
const EVENT_LENGTH_BYTES = 2;
const STATUS_LENGTH_BYTES = 1;
/** Room for the fields stored without a bounds check each: tags, lengths, ids (16 + 8 + 8), kind, times. */
const FIXED_FIELDS_BYTES = 64;
/** dropped_links_count, a Status without message, flags: 2 + 4 + 6 bytes. */
const SPAN_TAIL_BYTES = 12;
/** A resource's span buffer starts at this size; one grown beyond the keep size is not kept for the next batch. */
const SPANS_INITIAL_BYTES = 16 * 1024;
const SPANS_KEEP_MAX_BYTES = 1024 * 1024;

/** The protobuf half of a PreparedResource: ResourceSpans.resource and .schema_url, encoded. */
export function protobufResource(
  attributes: ResourceAttributes,
  schemaUrl: string | undefined,
): Pick<PreparedResource, 'protoResourceField' | 'protoSchemaUrlField'> {
  const w = new ProtobufWriter(256);
  writeResource(w, RESOURCE_SPANS_RESOURCE, attributes);
  let protoSchemaUrlField: Uint8Array = new Uint8Array(0);
  if (schemaUrl !== undefined) {
    const s = new ProtobufWriter(64 + schemaUrl.length * 3);
    s.writeByte(RESOURCE_SPANS_SCHEMA_URL);
    s.writeString(schemaUrl);
    protoSchemaUrlField = s.finish();
  }
  return { protoResourceField: w.finish(), protoSchemaUrlField };
}

/** A resource's spans: the encoded `ScopeSpans.spans` fields (tag, length, Span) in `buf[0..pos)`. */
export class ProtobufSpanSerializer implements SpanSerializer<ProtobufWriter> {
  private readonly limits: SpanLimits;
  private readonly ids: SpanIds;
  private readonly attributes: KeyValueWriter;
  /** ScopeSpans.scope: tag, length, InstrumentationScope */
  private readonly scopeField: Uint8Array;
  /** trace id (0..15) and root span id (16..23) of the tree being written */
  private readonly tree = new Uint8Array(TREE_ID_BYTES);
  /** Below a remote parent (appendUnder): its trace state and the flags of the spans written. */
  private traceState = '';
  private flags = SPAN_FLAGS_VALUE;

  constructor(parts: SerializerParts) {
    this.limits = parts.limits;
    this.ids = parts.ids;
    this.attributes = new KeyValueWriter(parts.limits);
    const w = new ProtobufWriter(64);
    writeInstrumentationScope(w, SCOPE_SPANS_SCOPE, parts.scope);
    this.scopeField = w.finish();
  }

  emptySpans(): ProtobufWriter {
    return new ProtobufWriter(SPANS_INITIAL_BYTES);
  }

  clear(spans: ProtobufWriter): ProtobufWriter {
    if (spans.buf.length > SPANS_KEEP_MAX_BYTES) return this.emptySpans();
    spans.pos = 0;
    return spans;
  }

  envelopeBytes(resource: PreparedResource): number {
    // the fields around the spans plus the tags and lengths of ResourceSpans and ScopeSpans
    return resource.protoResourceField.length + resource.protoSchemaUrlField.length + this.scopeField.length + 12;
  }

  appendTree(w: ProtobufWriter, root: SpanRecord): number {
    const before = w.pos;
    const tree = this.tree;
    this.ids.nextTree(tree);
    const children = childrenOf(root);
    const n = children.length;
    try {
      for (let i = 0; i < n; i++) this.writeSpan(w, children[i]!, false);
      this.writeSpan(w, root, true);
    } catch (e) {
      w.pos = before; // nothing of a tree that could not be encoded stays
      throw e;
    }
    return w.pos - before;
  }

  appendUnder(w: ProtobufWriter, parent: RemoteParent, records: readonly SpanRecord[]): number {
    const before = w.pos;
    this.tree.set(parent.traceId.subarray(0, TRACE_ID_BYTES), 0);
    this.tree.set(parent.spanId.subarray(0, TREE_ID_BYTES - TRACE_ID_BYTES), TRACE_ID_BYTES);
    this.traceState = parent.traceState;
    this.flags = SPAN_FLAGS_REMOTE_PARENT;
    try {
      for (const r of records) this.writeSpan(w, r, false);
    } catch (e) {
      w.pos = before;
      throw e;
    } finally {
      this.traceState = '';
      this.flags = SPAN_FLAGS_VALUE;
    }
    return w.pos - before;
  }

  /** ExportTraceServiceRequest: sized first, then written into a buffer of exactly that size. */
  request(groups: readonly ResourceGroup<ProtobufWriter>[]): Uint8Array {
    let total = 0;
    for (const g of groups) {
      const rs = this.resourceSpansSize(g);
      total += 1 + varintSize(rs) + rs;
    }
    const out = Buffer.allocUnsafeSlow(total);
    let p = 0;
    for (const g of groups) {
      out[p++] = REQUEST_RESOURCE_SPANS;
      p = putVarint(out, p, this.resourceSpansSize(g));
      p = this.putResourceSpans(out, p, g);
    }
    return out;
  }

  /** ScopeSpans: the scope, then the spans. */
  private scopeSpansSize(g: ResourceGroup<ProtobufWriter>): number {
    return this.scopeField.length + g.spans.pos;
  }

  /** ResourceSpans: resource, one ScopeSpans, schema_url. */
  private resourceSpansSize(g: ResourceGroup<ProtobufWriter>): number {
    const scopeSpans = this.scopeSpansSize(g);
    return g.resource.protoResourceField.length + 1 + varintSize(scopeSpans) + scopeSpans + g.resource.protoSchemaUrlField.length;
  }

  /** A ResourceSpans message's content at p; returns the position after it. */
  private putResourceSpans(out: Uint8Array, p: number, g: ResourceGroup<ProtobufWriter>): number {
    const r = g.resource;
    out.set(r.protoResourceField, p);
    p += r.protoResourceField.length;
    out[p++] = RESOURCE_SPANS_SCOPE_SPANS;
    p = putVarint(out, p, this.scopeSpansSize(g));
    out.set(this.scopeField, p);
    p += this.scopeField.length;
    out.set(g.spans.buf.subarray(0, g.spans.pos), p);
    p += g.spans.pos;
    out.set(r.protoSchemaUrlField, p);
    return p + r.protoSchemaUrlField.length;
  }

  /** One `ScopeSpans.spans` field. The root's ids are in this.tree; a child gets a fresh span id. */
  private writeSpan(w: ProtobufWriter, rec: SpanRecord, isRoot: boolean): void {
    w.ensure(1 + SPAN_LENGTH_BYTES);
    w.buf[w.pos++] = SCOPE_SPANS_SPANS;
    const start = w.beginMessage(SPAN_LENGTH_BYTES);
    w.ensure(FIXED_FIELDS_BYTES);
    let buf = w.buf;
    let p = w.pos;
    const tree = this.tree;
    // the ids' bounds as locals, read once rather than per byte copied
    const traceIdEnd = TRACE_ID_BYTES;
    const spanIdEnd = tree.length;
    const spanIdBytes = spanIdEnd - traceIdEnd;
    buf[p++] = SPAN_TRACE_ID;
    buf[p++] = traceIdEnd;
    for (let i = 0; i < traceIdEnd; i++) buf[p++] = tree[i]!;
    buf[p++] = SPAN_SPAN_ID;
    buf[p++] = spanIdBytes;
    if (isRoot) {
      for (let i = traceIdEnd; i < spanIdEnd; i++) buf[p++] = tree[i]!;
    } else {
      this.ids.nextSpanId(buf, p);
      p += spanIdBytes;
      buf[p++] = SPAN_PARENT_SPAN_ID;
      buf[p++] = spanIdBytes;
      for (let i = traceIdEnd; i < spanIdEnd; i++) buf[p++] = tree[i]!;
    }
    if (this.traceState !== '') {
      w.pos = p;
      w.writeByte(SPAN_TRACE_STATE);
      w.writeString(this.traceState);
      w.ensure(1);
      buf = w.buf;
      p = w.pos;
    }
    buf[p++] = SPAN_NAME;
    w.pos = p;
    w.writeString(typeof rec.name === 'string' ? rec.name : String(rec.name));
    w.ensure(FIXED_FIELDS_BYTES);
    buf = w.buf;
    p = w.pos;
    buf[p++] = SPAN_KIND;
    buf[p++] = rec.kind === 'internal' ? SPAN_KIND_INTERNAL : SPAN_KIND_CLIENT;
    splitSpanTimes(rec.startMs, rec.endMs);
    buf[p++] = SPAN_START_TIME;
    p = putHrTimeFixed64(buf, p, spanTimes[0]!, spanTimes[1]!);
    buf[p++] = SPAN_END_TIME;
    p = putHrTimeFixed64(buf, p, spanTimes[2]!, spanTimes[3]!);
    w.pos = p;

    const limits = this.limits;
    const droppedAttributes = this.attributes.write(w, SPAN_ATTRIBUTES, rec.attributes, false);
    w.writeByte(SPAN_DROPPED_ATTRIBUTES_COUNT);
    w.writeUint32(droppedAttributes);

    const events = rec.events;
    const count = events === undefined ? 0 : events.length;
    const firstKept = limits.firstKeptEvent(count);
    for (let i = firstKept; i < count; i++) {
      w.writeByte(SPAN_EVENTS);
      this.writeEvent(w, events[i]!);
    }
    w.writeByte(SPAN_DROPPED_EVENTS_COUNT);
    w.writeUint32(firstKept);

    const st = rec.status;
    const error = st !== undefined && st.code === 'error';
    const message = error ? st.message : undefined;
    writeSpanTail(w, error ? STATUS_CODE_ERROR : STATUS_CODE_UNSET, typeof message === 'string' ? message : '', this.flags);
    w.endMessage(start, SPAN_LENGTH_BYTES);
  }

  /** A Span.Event message (length, then its fields), its attributes within the SDK's per-event limit. */
  private writeEvent(w: ProtobufWriter, e: SpanEventRecord): void {
    const start = w.beginMessage(EVENT_LENGTH_BYTES);
    const t = e.timeMs;
    w.writeByte(EVENT_TIME);
    w.writeHrTimeFixed64(hrSeconds(t), hrNanos(t));
    w.writeByte(EVENT_NAME);
    w.writeString(typeof e.name === 'string' ? e.name : String(e.name));
    const dropped = this.attributes.write(w, EVENT_ATTRIBUTES, e.attributes, true);
    w.writeByte(EVENT_DROPPED_ATTRIBUTES_COUNT);
    w.writeUint32(dropped);
    w.endMessage(start, EVENT_LENGTH_BYTES);
  }
}

/** The fields after the events: dropped_links_count, status, flags; stored as one run unless the status has a message. */
function writeSpanTail(w: ProtobufWriter, statusCode: number, statusMessage: string, flags: number): void {
  w.ensure(SPAN_TAIL_BYTES);
  const buf = w.buf;
  let p = w.pos;
  buf[p++] = SPAN_DROPPED_LINKS_COUNT;
  buf[p++] = 0;
  buf[p++] = SPAN_STATUS;
  if (statusMessage === '') {
    buf[p++] = 2; // Status length: code tag and value
    buf[p++] = STATUS_CODE;
    buf[p++] = statusCode;
    p = putVarint(buf, p, SPAN_FLAGS);
    w.pos = putFixed32(buf, p, flags);
    return;
  }
  w.pos = p;
  writeStatus(w, statusCode, statusMessage);
  w.writeUint32(SPAN_FLAGS);
  w.writeFixed32(flags);
}

/** A Status message (length, then its fields): the message only when there is one. */
function writeStatus(w: ProtobufWriter, code: number, message: string): void {
  const start = w.beginMessage(STATUS_LENGTH_BYTES);
  if (message !== '') {
    w.writeByte(STATUS_MESSAGE);
    w.writeString(message);
  }
  w.writeByte(STATUS_CODE);
  w.writeUint32(code);
  w.endMessage(start, STATUS_LENGTH_BYTES);
}
