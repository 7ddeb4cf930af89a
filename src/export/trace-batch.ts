/**
 * Direct OTLP trace encoder: turns translated `SpanRecord` trees straight into an
 * `ExportTraceServiceRequest` body (OTLP protobuf or OTLP/JSON), without the OTel
 * SDK's per-span objects (Tracer.startSpan, SpanImpl, BatchSpanProcessor,
 * otlp-transformer). Each added span tree is encoded into bytes at once and only
 * those bytes are kept, per resource, until `take()`.
 *
 * The output is meant to be exactly what the SDK path produces for the same input
 * (otel-exporter.ts `write()` + NodeTracerProvider + ProtobufTraceSerializer /
 * JsonTraceSerializer of @opentelemetry/otlp-transformer 0.223 and sdk-trace 2.12):
 * same field order and tags, same int/double choice, same time conversion
 * (`millisToHrTime`, then the serializer's fixed64 / BigInt arithmetic), same
 * limits and truncation (SpanImpl.setAttribute / addEvent / _truncateToSize), the
 * same end-before-start clamp (SpanImpl.end), and spans in the SDK's end order
 * (children, then their root). test/unit/trace-batch.test.ts checks it byte for byte.
 */
import { randomFillSync } from 'node:crypto';
import type { Attributes, SpanRecord } from '../translate/types.js';

/** Attribute values as an SDK Resource may hold them (a superset of the bridge's own). */
export type ResourceAttributes = Attributes | Readonly<Record<string, unknown>>;

/** A Resource encoded once (see prepareResource); opaque to callers. */
export interface PreparedResource {
  /** ResourceSpans.resource: tag, length and the Resource message. */
  readonly protoResourceField: Uint8Array;
  /** ResourceSpans.schema_url: tag, length, UTF-8 (empty when there is none). */
  readonly protoSchemaUrlField: Uint8Array;
  /** `"resource":{...}` members of a JSON ResourceSpans, as JSON text (without braces around it). */
  readonly jsonResource: string;
  /** `,"schemaUrl":"..."` or '' */
  readonly jsonSchemaUrl: string;
}

/**
 * Encodes a resource once. For an SDK Resource pass `resource.attributes` and
 * `resource.schemaUrl` (after async attributes have settled).
 */
export function prepareResource(attributes: ResourceAttributes, schemaUrl?: string): PreparedResource {
  const w = new ByteWriter(256);
  // ResourceSpans.resource (field 1) = Resource { attributes = 1; dropped_attributes_count = 2 }
  w.byte(0x0a);
  const start = w.begin(1);
  writeGenericAttributes(w, attributes, 0x0a);
  w.byte(0x10);
  w.byte(0); // dropped_attributes_count written as 0, as the SDK does
  w.end(start, 1);
  const protoResourceField = w.buf.slice(0, w.pos);
  let protoSchemaUrlField = new Uint8Array(0);
  const hasSchema = typeof schemaUrl === 'string' && schemaUrl !== '';
  if (hasSchema) {
    const s = new ByteWriter(64 + schemaUrl.length * 3);
    s.byte(0x1a);
    s.str(schemaUrl);
    protoSchemaUrlField = s.buf.slice(0, s.pos);
  }
  const res: Record<string, unknown> = { attributes: jsonResourceAttributes(attributes), droppedAttributesCount: 0 };
  if (hasSchema) res['schemaUrl'] = schemaUrl;
  return {
    protoResourceField,
    protoSchemaUrlField,
    jsonResource: `"resource":${JSON.stringify(res)}`,
    jsonSchemaUrl: hasSchema ? `,"schemaUrl":${JSON.stringify(schemaUrl)}` : '',
  };
}

export interface TraceBatchOptions {
  encoding: 'protobuf' | 'json';
  scope: { name: string; version: string };
  /** String attribute values longer than this are truncated (the SDK's spanLimits.attributeValueLengthLimit; we use 1024). */
  attributeValueLengthLimit: number;
  /** The SDK's spanLimits.attributeCountLimit (default 128, env OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT). */
  attributeCountLimit?: number;
  /** The SDK's spanLimits.eventCountLimit (default 128): the oldest events beyond it are dropped. */
  eventCountLimit?: number;
  /** The SDK's spanLimits.attributePerEventCountLimit (default 128). */
  attributePerEventCountLimit?: number;
  /** For tests: source of random bytes for ids (default: a pooled crypto.randomFillSync buffer). */
  randomFill?: (buf: Uint8Array) => void;
}

/** Spans of one resource since the last take(). */
interface Chunk {
  readonly resource: PreparedResource;
  /** protobuf: the encoded `ScopeSpans.spans` fields (tag, length, Span) */
  w: ByteWriter;
  /** json: the spans as JSON text, comma separated */
  json: string;
  spans: number;
}

const ID_POOL_BYTES = 4096;
const CHUNK_INITIAL_BYTES = 16 * 1024;
/** A chunk buffer larger than this is not kept for the next batch. */
const CHUNK_KEEP_MAX_BYTES = 1024 * 1024;
const KEY_CACHE_MAX = 4096;

export class TraceBatch {
  private readonly json: boolean;
  private readonly valueLimit: number;
  private readonly attributeCountLimit: number;
  private readonly eventCountLimit: number;
  private readonly attributePerEventCountLimit: number;
  private readonly randomFill: (buf: Uint8Array) => void;
  /** ScopeSpans.scope: tag, length, InstrumentationScope */
  private readonly protoScopeField: Uint8Array;
  private readonly jsonScope: string;
  private readonly chunks = new Map<PreparedResource, Chunk>();
  /** Chunks holding spans, in the order their first span arrived (the SDK groups resources in first-seen order). */
  private active: Chunk[] = [];
  private lastResource: PreparedResource | undefined;
  private lastChunk: Chunk | undefined;
  private readonly pool = new Uint8Array(ID_POOL_BYTES);
  private poolPos = ID_POOL_BYTES;
  /** trace id (0..15) and root span id (16..23) of the tree being encoded */
  private readonly ids = new Uint8Array(24);
  /** a child's span id (JSON) */
  private readonly childId = new Uint8Array(8);
  /** KeyValue.key field (tag, length, UTF-8) per attribute key */
  private readonly keyCache = new Map<string, Uint8Array>();
  private _spans = 0;
  private _bytes = 0;

  constructor(opts: TraceBatchOptions) {
    this.json = opts.encoding === 'json';
    const limit = opts.attributeValueLengthLimit;
    this.valueLimit = typeof limit === 'number' && limit > 0 ? limit : Infinity;
    this.attributeCountLimit = opts.attributeCountLimit ?? 128;
    this.eventCountLimit = opts.eventCountLimit ?? 128;
    this.attributePerEventCountLimit = opts.attributePerEventCountLimit ?? 128;
    this.randomFill = opts.randomFill ?? ((b) => randomFillSync(b));
    const w = new ByteWriter(64);
    w.byte(0x0a);
    const start = w.begin(1);
    w.byte(0x0a);
    w.str(String(opts.scope.name ?? ''));
    if (opts.scope.version) {
      w.byte(0x12);
      w.str(String(opts.scope.version));
    }
    w.end(start, 1);
    this.protoScopeField = w.buf.slice(0, w.pos);
    this.jsonScope = JSON.stringify({ name: opts.scope.name, version: opts.scope.version });
  }

  /** Spans added since the last take(). */
  get spans(): number {
    return this._spans;
  }

  /** Approximate encoded bytes held. */
  get bytes(): number {
    return this._bytes;
  }

  /**
   * Encodes the call's span tree (root + its children, which get the root as parent
   * and the same trace id) with fresh ids at once; returns the number of spans added.
   */
  add(resource: PreparedResource, span: SpanRecord): number {
    let chunk: Chunk;
    if (resource === this.lastResource && this.lastChunk !== undefined) chunk = this.lastChunk;
    else {
      let c = this.chunks.get(resource);
      if (c === undefined) {
        c = { resource, w: new ByteWriter(this.json ? 0 : CHUNK_INITIAL_BYTES), json: '', spans: 0 };
        this.chunks.set(resource, c);
      }
      this.lastResource = resource;
      this.lastChunk = chunk = c;
    }
    const ids = this.ids;
    this.nextId(ids, 0, 16);
    this.nextId(ids, 16, 8);
    const children = span.children;
    const n = children === undefined || children === null ? 0 : children.length;
    let added: number;
    if (this.json) {
      const traceId = hex(ids, 0, 16);
      const rootId = hex(ids, 16, 8);
      const childId = this.childId;
      let text = '';
      for (let i = 0; i < n; i++) {
        this.nextId(childId, 0, 8);
        text += this.jsonSpan(children[i]!, traceId, hex(childId, 0, 8), rootId) + ',';
      }
      text += this.jsonSpan(span, traceId, rootId, undefined);
      chunk.json = chunk.json === '' ? text : `${chunk.json},${text}`;
      added = text.length + 1;
    } else {
      const w = chunk.w;
      const before = w.pos;
      try {
        for (let i = 0; i < n; i++) this.protoSpan(w, children[i]!, false);
        this.protoSpan(w, span, true);
      } catch (e) {
        w.pos = before; // nothing of a tree that could not be encoded stays
        throw e;
      }
      added = w.pos - before;
    }
    if (chunk.spans === 0) {
      this.active.push(chunk);
      added += this.json
        ? resource.jsonResource.length + resource.jsonSchemaUrl.length + this.jsonScope.length + 40
        : resource.protoResourceField.length + resource.protoSchemaUrlField.length + this.protoScopeField.length + 12;
    }
    this._bytes += added;
    chunk.spans += n + 1;
    this._spans += n + 1;
    return n + 1;
  }

  /**
   * The OTLP ExportTraceServiceRequest body (protobuf bytes, or UTF-8 JSON bytes) for
   * everything added since the last take, grouped by resource (one ResourceSpans per
   * PreparedResource object, one ScopeSpans each); empties the batch. undefined when empty.
   */
  take(): Uint8Array | undefined {
    const active = this.active;
    // Resources idle for a whole batch are forgotten (a client's resource may be gone for good).
    for (const [r, c] of this.chunks) if (c.spans === 0) this.chunks.delete(r);
    this.lastResource = undefined;
    this.lastChunk = undefined;
    this.active = [];
    this._spans = 0;
    this._bytes = 0;
    if (active.length === 0) return undefined;
    const out = this.json ? this.takeJson(active) : this.takeProto(active);
    for (const c of active) {
      c.spans = 0;
      c.json = '';
      if (c.w.buf.length > CHUNK_KEEP_MAX_BYTES) c.w = new ByteWriter(CHUNK_INITIAL_BYTES);
      else c.w.pos = 0;
    }
    return out;
  }

  private takeProto(active: Chunk[]): Uint8Array {
    const scope = this.protoScopeField;
    let total = 0;
    for (const c of active) {
      const scopeSpans = scope.length + c.w.pos;
      const rs = c.resource.protoResourceField.length + 1 + varintSize(scopeSpans) + scopeSpans + c.resource.protoSchemaUrlField.length;
      total += 1 + varintSize(rs) + rs;
    }
    const out = Buffer.allocUnsafeSlow(total);
    let p = 0;
    for (const c of active) {
      const scopeSpans = scope.length + c.w.pos;
      const rs = c.resource.protoResourceField.length + 1 + varintSize(scopeSpans) + scopeSpans + c.resource.protoSchemaUrlField.length;
      out[p++] = 0x0a; // ExportTraceServiceRequest.resource_spans
      p = putVarint(out, p, rs);
      out.set(c.resource.protoResourceField, p);
      p += c.resource.protoResourceField.length;
      out[p++] = 0x12; // ResourceSpans.scope_spans
      p = putVarint(out, p, scopeSpans);
      out.set(scope, p);
      p += scope.length;
      out.set(c.w.buf.subarray(0, c.w.pos), p);
      p += c.w.pos;
      out.set(c.resource.protoSchemaUrlField, p);
      p += c.resource.protoSchemaUrlField.length;
    }
    return out;
  }

  private takeJson(active: Chunk[]): Uint8Array {
    let s = '{"resourceSpans":[';
    for (let i = 0; i < active.length; i++) {
      const c = active[i]!;
      if (i > 0) s += ',';
      s += `{${c.resource.jsonResource},"scopeSpans":[{"scope":${this.jsonScope},"spans":[${c.json}]}]${c.resource.jsonSchemaUrl}}`;
    }
    s += ']}';
    return Buffer.from(s, 'utf8');
  }

  /** Fills `len` bytes of `dst` at `off` with a random id that is not all zero. */
  private nextId(dst: Uint8Array, off: number, len: number): void {
    const pool = this.pool;
    for (;;) {
      if (this.poolPos + len > ID_POOL_BYTES) {
        this.randomFill(pool);
        this.poolPos = 0;
      }
      const p = this.poolPos;
      this.poolPos = p + len;
      let any = 0;
      for (let i = 0; i < len; i++) any |= dst[off + i] = pool[p + i]!;
      if (any !== 0) return;
    }
  }

  // -------------------------------------------------------------------------
  // protobuf

  /** One `ScopeSpans.spans` field. The root's ids are in this.ids; a child gets a fresh span id. */
  private protoSpan(w: ByteWriter, rec: SpanRecord, root: boolean): void {
    w.ensure(64);
    const buf0 = w.buf;
    let p = w.pos;
    buf0[p++] = 0x12;
    w.pos = p;
    const start = w.begin(2);
    w.ensure(64);
    const buf = w.buf;
    p = w.pos;
    const ids = this.ids;
    // trace_id (1)
    buf[p++] = 0x0a;
    buf[p++] = 16;
    for (let i = 0; i < 16; i++) buf[p++] = ids[i]!;
    // span_id (2)
    buf[p++] = 0x12;
    buf[p++] = 8;
    if (root) {
      for (let i = 16; i < 24; i++) buf[p++] = ids[i]!;
    } else {
      this.nextId(buf, p, 8);
      p += 8;
      // parent_span_id (4)
      buf[p++] = 0x22;
      buf[p++] = 8;
      for (let i = 16; i < 24; i++) buf[p++] = ids[i]!;
    }
    // name (5)
    buf[p++] = 0x2a;
    w.pos = p;
    w.str(typeof rec.name === 'string' ? rec.name : String(rec.name));
    w.ensure(40);
    const b = w.buf;
    p = w.pos;
    // kind (6): OTLP INTERNAL = 1, CLIENT = 3
    b[p++] = 0x30;
    b[p++] = rec.kind === 'internal' ? 1 : 3;
    // start/end_time_unix_nano (7, 8), the end clamped to the start as SpanImpl.end does
    splitSpanTimes(rec.startMs, rec.endMs);
    const ss = spanTimes[0]!;
    const sn = spanTimes[1]!;
    const es = spanTimes[2]!;
    const en = spanTimes[3]!;
    b[p++] = 0x39;
    p = putHrTimeFixed64(b, p, ss, sn);
    b[p++] = 0x41;
    p = putHrTimeFixed64(b, p, es, en);
    w.pos = p;
    // attributes (9), dropped_attributes_count (10)
    const dropped = this.protoAttributes(w, rec.attributes, 0x4a, this.attributeCountLimit, false);
    w.byte(0x50);
    w.varint32(dropped);
    // events (11), dropped_events_count (12)
    const events = rec.events;
    let droppedEvents = 0;
    if (events !== undefined && events.length > 0) {
      const limit = this.eventCountLimit;
      let first = 0;
      if (limit === 0) droppedEvents = events.length;
      else if (events.length > limit) {
        first = events.length - limit;
        droppedEvents = first;
      }
      for (let i = limit === 0 ? events.length : first; i < events.length; i++) {
        const e = events[i]!;
        w.byte(0x5a);
        const es0 = w.begin(2);
        w.ensure(9);
        const t = e.timeMs;
        w.buf[w.pos++] = 0x09;
        w.pos = putHrTimeFixed64(w.buf, w.pos, Math.trunc(t / 1000), Math.round((t % 1000) * 1e6));
        w.byte(0x12);
        w.str(typeof e.name === 'string' ? e.name : String(e.name));
        const ed = this.protoAttributes(w, e.attributes, 0x1a, this.attributePerEventCountLimit, true);
        w.byte(0x20);
        w.varint32(ed);
        w.end(es0, 2);
      }
    }
    w.byte(0x60);
    w.varint32(droppedEvents);
    // dropped_links_count (14)
    w.byte(0x70);
    w.byte(0);
    // status (15): message (2) when set, code (3)
    w.byte(0x7a);
    const st = rec.status;
    if (st !== undefined && st.code === 'error') {
      const msg = st.message;
      if (typeof msg === 'string' && msg !== '') {
        const s0 = w.begin(1);
        w.byte(0x12);
        w.str(msg);
        w.byte(0x18);
        w.byte(2);
        w.end(s0, 1);
      } else {
        w.byte(2);
        w.byte(0x18);
        w.byte(2);
      }
    } else {
      w.byte(2);
      w.byte(0x18);
      w.byte(0);
    }
    // flags (16, fixed32): sampled | CONTEXT_HAS_IS_REMOTE (parent is local or absent)
    w.ensure(6);
    const f = w.buf;
    p = w.pos;
    f[p++] = 0x85;
    f[p++] = 0x01;
    f[p++] = 0x01;
    f[p++] = 0x01;
    f[p++] = 0;
    f[p++] = 0;
    w.pos = p;
    w.end(start, 2);
  }

  /**
   * Span or event attributes as the SDK keeps them (SpanImpl.setAttribute / addEvent:
   * empty keys and invalid values dropped, count limit, strings truncated) and
   * serializes them. Returns the dropped-attributes count.
   */
  private protoAttributes(w: ByteWriter, attrs: Attributes, tag: number, countLimit: number, isEvent: boolean): number {
    let count = 0;
    let dropped = 0;
    for (const key in attrs) {
      if (!Object.prototype.hasOwnProperty.call(attrs, key)) continue;
      const v = attrs[key] as unknown;
      if (!keptBySdk(key, v, isEvent)) continue;
      const t = typeof v;
      if (count >= countLimit) {
        dropped++;
        continue;
      }
      count++;
      let keyField = this.keyCache.get(key);
      if (keyField === undefined) {
        const k = new ByteWriter(8 + key.length * 3);
        k.byte(0x0a);
        k.str(key);
        keyField = k.buf.slice(0, k.pos);
        if (this.keyCache.size >= KEY_CACHE_MAX) this.keyCache.clear();
        this.keyCache.set(key, keyField);
      }
      // Fast paths: a short ASCII string or a small non-negative integer, all lengths known up front.
      const kl = keyField.length;
      let s = '';
      if (t === 'string') {
        s = v as string;
        if (s.length > this.valueLimit) s = s.substring(0, this.valueLimit);
        const n = s.length;
        if (kl + n + 4 < 0x80) {
          w.ensure(kl + n + 6);
          const buf = w.buf;
          let p = w.pos;
          buf[p++] = tag;
          buf[p++] = kl + n + 4; // KeyValue: key field, 0x12, AnyValue length, 0x0a, string length, bytes
          for (let i = 0; i < kl; i++) buf[p++] = keyField[i]!;
          buf[p++] = 0x12;
          buf[p++] = n + 2;
          buf[p++] = 0x0a;
          buf[p++] = n;
          let i = 0;
          for (; i < n; i++) {
            const c = s.charCodeAt(i);
            if (c > 0x7f) break;
            buf[p++] = c;
          }
          if (i === n) {
            w.pos = p;
            continue;
          }
          // not ASCII: written again below
        }
      } else if (t === 'number' && (v as number) >= 0 && (v as number) < 0x10000000 && Number.isInteger(v)) {
        const x = v as number;
        const vs = varintSize(x);
        if (kl + vs + 3 < 0x80) {
          w.ensure(kl + vs + 5);
          const buf = w.buf;
          let p = w.pos;
          buf[p++] = tag;
          buf[p++] = kl + vs + 3; // key field, 0x12, AnyValue length, 0x18, varint
          for (let i = 0; i < kl; i++) buf[p++] = keyField[i]!;
          buf[p++] = 0x12;
          buf[p++] = vs + 1;
          buf[p++] = 0x18;
          w.pos = putVarint(buf, p, x);
          continue;
        }
      }
      w.byte(tag);
      const kv = w.begin(1);
      w.raw(keyField);
      w.byte(0x12);
      const av = w.begin(1);
      if (t === 'string') {
        w.byte(0x0a);
        w.str(s);
      } else if (t === 'number') w.numberValue(v as number);
      else if (t === 'boolean') {
        w.byte(0x10);
        w.byte(v ? 1 : 0);
      } else if (v != null) {
        const arr = (v as unknown[]).map((x) => (typeof x === 'string' && x.length > this.valueLimit ? x.substring(0, this.valueLimit) : x));
        writeAnyValue(w, arr);
      }
      w.end(av, 1);
      w.end(kv, 1);
    }
    return dropped;
  }

  // -------------------------------------------------------------------------
  // JSON (the objects JsonTraceSerializer builds, stringified at once)

  private jsonSpan(rec: SpanRecord, traceId: string, spanId: string, parentSpanId: string | undefined): string {
    splitSpanTimes(rec.startMs, rec.endMs);
    const ss = spanTimes[0]!;
    const sn = spanTimes[1]!;
    const es = spanTimes[2]!;
    const en = spanTimes[3]!;
    // The key order of otlp-transformer's sdkSpanToOtlpSpan (traceState is undefined, so absent).
    let out = `{"traceId":"${traceId}","spanId":"${spanId}"`;
    if (parentSpanId !== undefined) out += `,"parentSpanId":"${parentSpanId}"`;
    out += `,"name":${JSON.stringify(typeof rec.name === 'string' ? rec.name : String(rec.name))},"kind":${rec.kind === 'internal' ? 1 : 3}`;
    out += `,"startTimeUnixNano":"${nanosString(ss, sn)}","endTimeUnixNano":"${nanosString(es, en)}","attributes":[`;
    const dropped = this.jsonAttributes(rec.attributes, this.attributeCountLimit, false);
    out += `${this.jsonOut}],"droppedAttributesCount":${dropped},"events":[`;
    let droppedEvents = 0;
    const recEvents = rec.events;
    if (recEvents !== undefined && recEvents.length > 0) {
      const limit = this.eventCountLimit;
      let first = 0;
      if (limit === 0) first = droppedEvents = recEvents.length;
      else if (recEvents.length > limit) first = droppedEvents = recEvents.length - limit;
      for (let i = first; i < recEvents.length; i++) {
        const e = recEvents[i]!;
        const ed = this.jsonAttributes(e.attributes, this.attributePerEventCountLimit, true);
        const t = e.timeMs;
        out += `${i > first ? ',' : ''}{"attributes":[${this.jsonOut}],"name":${JSON.stringify(typeof e.name === 'string' ? e.name : String(e.name))}`;
        out += `,"timeUnixNano":"${nanosString(Math.trunc(t / 1000), Math.round((t % 1000) * 1e6))}","droppedAttributesCount":${ed}}`;
      }
    }
    out += `],"droppedEventsCount":${droppedEvents},"status":`;
    const st = rec.status;
    if (st !== undefined && st.code === 'error') {
      out += typeof st.message === 'string' && st.message !== '' ? `{"code":2,"message":${JSON.stringify(st.message)}}` : '{"code":2}';
    } else out += '{"code":0}';
    return out + ',"links":[],"droppedLinksCount":0,"flags":257}';
  }

  /** JSON text of the KeyValues of the last jsonAttributes() call. */
  private jsonOut = '';
  /** `{"key":...,"value":` per attribute key */
  private readonly jsonKeyCache = new Map<string, string>();

  /** The JSON twin of protoAttributes: the KeyValues go to this.jsonOut; returns the dropped count. */
  private jsonAttributes(attrs: Attributes, countLimit: number, isEvent: boolean): number {
    let out = '';
    let count = 0;
    let dropped = 0;
    for (const key in attrs) {
      if (!Object.prototype.hasOwnProperty.call(attrs, key)) continue;
      let v = attrs[key] as unknown;
      if (!keptBySdk(key, v, isEvent)) continue;
      const t = typeof v;
      if (Array.isArray(v)) {
        v = v.map((x: unknown) => (typeof x === 'string' && x.length > this.valueLimit ? x.substring(0, this.valueLimit) : x));
      }
      if (count >= countLimit) {
        dropped++;
        continue;
      }
      let k = this.jsonKeyCache.get(key);
      if (k === undefined) {
        k = `{"key":${JSON.stringify(key)},"value":`;
        if (this.jsonKeyCache.size >= KEY_CACHE_MAX) this.jsonKeyCache.clear();
        this.jsonKeyCache.set(key, k);
      }
      if (count > 0) out += ',';
      count++;
      if (t === 'string') {
        let s = v as string;
        if (s.length > this.valueLimit) s = s.substring(0, this.valueLimit);
        out += `${k}{"stringValue":${JSON.stringify(s)}}}`;
      } else if (t === 'number') {
        const x = v as number;
        // JSON.stringify writes NaN and the infinities as null
        out += `${k}{"${Number.isInteger(x) ? 'intValue' : 'doubleValue'}":${Number.isFinite(x) ? String(x) : 'null'}}}`;
      } else if (t === 'boolean') out += `${k}{"boolValue":${v ? 'true' : 'false'}}}`;
      else out += `${k}${JSON.stringify(jsonAnyValue(v))}}`;
    }
    this.jsonOut = out;
    return dropped;
  }
}

// ---------------------------------------------------------------------------
// Helpers

/** A growable byte buffer with the few protobuf primitives the encoder needs. */
class ByteWriter {
  buf: Buffer;
  pos = 0;
  private view: DataView | undefined;

  constructor(size: number) {
    this.buf = Buffer.allocUnsafeSlow(Math.max(size, 16));
  }

  ensure(n: number): void {
    if (this.pos + n > this.buf.length) this.grow(n);
  }

  private grow(n: number): void {
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = Buffer.allocUnsafeSlow(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
    this.view = undefined;
  }

  byte(b: number): void {
    if (this.pos >= this.buf.length) this.grow(1);
    this.buf[this.pos++] = b;
  }

  raw(bytes: Uint8Array): void {
    const n = bytes.length;
    this.ensure(n);
    const buf = this.buf;
    let p = this.pos;
    if (n <= 32) for (let i = 0; i < n; i++) buf[p++] = bytes[i]!;
    else {
      buf.set(bytes, p);
      p += n;
    }
    this.pos = p;
  }

  /** 0 <= v < 2^32 */
  varint32(v: number): void {
    this.ensure(5);
    const buf = this.buf;
    let p = this.pos;
    v >>>= 0;
    while (v > 0x7f) {
      buf[p++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    buf[p++] = v;
    this.pos = p;
  }

  /** ProtobufWriter.writeVarint of otlp-transformer (int64 two's complement for negatives). */
  varint(value: number): void {
    if (value >= 0 && value <= 0xffffffff) return this.varint32(value);
    this.ensure(10);
    let low: number;
    let high: number;
    if (value >= 0) {
      low = value >>> 0;
      high = (value / 0x100000000) >>> 0;
    } else {
      const abs = Math.abs(value);
      low = ~(abs >>> 0) >>> 0;
      high = ~((abs / 0x100000000) >>> 0) >>> 0;
      low = (low + 1) >>> 0;
      if (low === 0) high = (high + 1) >>> 0;
    }
    const buf = this.buf;
    let p = this.pos;
    while (high > 0 || low > 0x7f) {
      buf[p++] = (low & 0x7f) | 0x80;
      low = ((low >>> 7) | (high << 25)) >>> 0;
      high >>>= 7;
    }
    buf[p++] = low & 0x7f;
    this.pos = p;
  }

  double(v: number): void {
    this.ensure(8);
    this.view ??= new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.length);
    this.view.setFloat64(this.pos, v, true);
    this.pos += 8;
  }

  /** AnyValue members for a number: int_value for an integer within int64, else double_value. */
  numberValue(v: number): void {
    if (Number.isInteger(v) && v >= -(2 ** 63) && v < 2 ** 63) {
      this.byte(0x18);
      this.varint(v);
    } else {
      this.byte(0x21);
      this.double(v);
    }
  }

  /** Length-prefixed UTF-8 (lone surrogates become U+FFFD, as TextEncoder does). */
  str(s: string): void {
    const n = s.length;
    if (n < 128) {
      // ASCII fast path: the length is one byte
      this.ensure(n + 1);
      const buf = this.buf;
      let p = this.pos + 1;
      let i = 0;
      for (; i < n; i++) {
        const c = s.charCodeAt(i);
        if (c > 0x7f) break;
        buf[p++] = c;
      }
      if (i === n) {
        buf[this.pos] = n;
        this.pos = p;
        return;
      }
    }
    const max = n * 3;
    const hdr = varintSize(max);
    this.ensure(hdr + max);
    const written = this.buf.write(s, this.pos + hdr, max, 'utf8');
    const need = varintSize(written);
    if (need < hdr) this.buf.copyWithin(this.pos + need, this.pos + hdr, this.pos + hdr + written);
    putVarint(this.buf, this.pos, written);
    this.pos += need + written;
  }

  /** Reserves `reserved` bytes for a length; returns the position to pass to end(). */
  begin(reserved: number): number {
    const at = this.pos;
    this.ensure(reserved);
    this.pos += reserved;
    return at;
  }

  /** Writes the length of what followed begin() in minimal varint form, moving the content if needed. */
  end(at: number, reserved: number): void {
    const len = this.pos - at - reserved;
    const size = varintSize(len);
    if (size !== reserved) {
      if (size > reserved) this.ensure(size - reserved);
      this.buf.copyWithin(at + size, at + reserved, this.pos);
      this.pos += size - reserved;
    }
    putVarint(this.buf, at, len);
  }
}

function varintSize(v: number): number {
  if (v < 0x80) return 1;
  if (v < 0x4000) return 2;
  if (v < 0x200000) return 3;
  if (v < 0x10000000) return 4;
  return 5;
}

/** 0 <= v < 2^32; returns the position after it. */
function putVarint(buf: Uint8Array, p: number, v: number): number {
  v >>>= 0;
  while (v > 0x7f) {
    buf[p++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  buf[p++] = v;
  return p;
}

/**
 * HrTime [seconds, nanos] as fixed64 unix nanos, the arithmetic of otlp-transformer's
 * writeHrTimeAsFixed64 (so out-of-range values wrap the same way; NaN becomes 0).
 */
function putHrTimeFixed64(buf: Uint8Array, p: number, seconds: number, nanos: number): number {
  const lower = (seconds & 0xffff) * 1e9;
  const upper = ((seconds / 0x10000) >>> 0) * 1e9;
  const lowerLow = lower >>> 0;
  const lowerHigh = Math.floor(lower / 0x100000000);
  const upperLow = ((upper & 0xffff) * 0x10000) >>> 0;
  const upperHigh = (upper / 0x10000) >>> 0;
  const lowWithCarry = lowerLow + upperLow + nanos;
  const lo = lowWithCarry >>> 0;
  const hi = (lowerHigh + upperHigh + Math.floor(lowWithCarry / 0x100000000)) >>> 0;
  buf[p] = lo & 0xff;
  buf[p + 1] = (lo >>> 8) & 0xff;
  buf[p + 2] = (lo >>> 16) & 0xff;
  buf[p + 3] = lo >>> 24;
  buf[p + 4] = hi & 0xff;
  buf[p + 5] = (hi >>> 8) & 0xff;
  buf[p + 6] = (hi >>> 16) & 0xff;
  buf[p + 7] = hi >>> 24;
  return p + 8;
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

/** [start s, start ns, end s, end ns] of the span being written (reused: nothing allocated per span). */
const spanTimes = new Float64Array(4);

/**
 * Epoch ms → (seconds, nanoseconds) as millisToHrTime does, the end clamped to the start as
 * SpanImpl.end does; into spanTimes.
 */
function splitSpanTimes(startMs: number, endMs: number): void {
  const ss = Math.trunc(startMs / 1000);
  const sn = Math.round((startMs % 1000) * 1e6);
  let es = Math.trunc(endMs / 1000);
  let en = Math.round((endMs % 1000) * 1e6);
  if ((en - sn < 0 ? es - ss - 1 : es - ss) < 0) {
    es = ss;
    en = sn;
  }
  spanTimes[0] = ss;
  spanTimes[1] = sn;
  spanTimes[2] = es;
  spanTimes[3] = en;
}

/**
 * Whether the SDK keeps an attribute: a non-empty key and a primitive or homogeneous array value.
 * null: setAttribute ignores it, addEvent keeps it (an empty AnyValue).
 */
function keptBySdk(key: string, v: unknown, isEvent: boolean): boolean {
  if (key.length === 0) return false;
  if (v == null) return isEvent;
  const t = typeof v;
  return t === 'string' || t === 'number' || t === 'boolean' || (Array.isArray(v) && isHomogeneousArray(v));
}

/** core's isHomogeneousAttributeValueArray: nulls and one primitive type only. */
function isHomogeneousArray(arr: unknown[]): boolean {
  let type: string | undefined;
  for (const e of arr) {
    if (e == null) continue;
    const t = typeof e;
    if (t !== 'string' && t !== 'number' && t !== 'boolean') return false;
    if (type === undefined) type = t;
    else if (t !== type) return false;
  }
  return true;
}

/** otlp-transformer's writeAnyValue (any value; used for resources and attribute arrays). */
function writeAnyValue(w: ByteWriter, value: unknown): void {
  const t = typeof value;
  if (t === 'string') {
    w.byte(0x0a);
    w.str(value as string);
  } else if (t === 'boolean') {
    w.byte(0x10);
    w.byte(value ? 1 : 0);
  } else if (t === 'number') w.numberValue(value as number);
  else if (value instanceof Uint8Array) {
    w.byte(0x3a);
    w.varint32(value.length);
    w.raw(value);
  } else if (Array.isArray(value)) {
    w.byte(0x2a);
    const a = w.begin(1);
    for (const item of value) {
      w.byte(0x0a);
      const i = w.begin(1);
      writeAnyValue(w, item);
      w.end(i, 1);
    }
    w.end(a, 1);
  } else if (t === 'object' && value !== null) {
    w.byte(0x32);
    const l = w.begin(1);
    const obj = value as Record<string, unknown>;
    for (const k in obj) {
      if (!Object.prototype.hasOwnProperty.call(obj, k)) continue;
      w.byte(0x0a);
      const kv = w.begin(1);
      w.byte(0x0a);
      w.str(k);
      w.byte(0x12);
      const v = w.begin(1);
      writeAnyValue(w, obj[k]);
      w.end(v, 1);
      w.end(kv, 1);
    }
    w.end(l, 1);
  }
}

/** otlp-transformer's writeAttributes: every own key, as is. */
function writeGenericAttributes(w: ByteWriter, attrs: ResourceAttributes, tag: number): void {
  for (const key in attrs) {
    if (!Object.prototype.hasOwnProperty.call(attrs, key)) continue;
    w.byte(tag);
    const kv = w.begin(1);
    w.byte(0x0a);
    w.str(key);
    w.byte(0x12);
    const v = w.begin(1);
    writeAnyValue(w, (attrs as Record<string, unknown>)[key]);
    w.end(v, 1);
    w.end(kv, 1);
  }
}

/** otlp-transformer's toAnyValue with the JSON encoder. */
function jsonAnyValue(value: unknown): unknown {
  const t = typeof value;
  if (t === 'string') return { stringValue: value };
  if (t === 'number') return Number.isInteger(value) ? { intValue: value } : { doubleValue: value };
  if (t === 'boolean') return { boolValue: value };
  if (value instanceof Uint8Array) return { bytesValue: Buffer.from(value).toString('base64') };
  if (Array.isArray(value)) return { arrayValue: { values: value.map(jsonAnyValue) } };
  if (t === 'object' && value != null) {
    const obj = value as Record<string, unknown>;
    return { kvlistValue: { values: Object.keys(obj).map((k) => ({ key: k, value: jsonAnyValue(obj[k]) })) } };
  }
  return {};
}

/** otlp-transformer's toAttributes (resource attributes: no limits). */
function jsonResourceAttributes(attrs: ResourceAttributes): unknown[] {
  const obj = attrs as Record<string, unknown>;
  return Object.keys(obj).map((key) => ({ key, value: jsonAnyValue(obj[key]) }));
}
