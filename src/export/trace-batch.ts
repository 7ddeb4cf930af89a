/**
 * The span batch of the export stage: each translated call's span tree is encoded into
 * OTLP at once (protobuf or OTLP/JSON) and only those bytes are kept, per resource, until
 * `take()` makes them one ExportTraceServiceRequest body. No OTel SDK span objects
 * (Tracer.startSpan, SpanImpl, BatchSpanProcessor) are built: that path costs several times
 * as much per span (bench/trace-encode.mjs), beyond the datagram budget.
 *
 * This file is only the batching: which resource a tree goes to, in which order resources
 * come out, what is counted. The encoding lives in otlp/: the span serializers
 * (trace-protobuf.ts, trace-json.ts, behind span-serializer.ts), the SDK's span limits
 * (span-limits.ts) and time conversion (span-times.ts), ids (span-ids.ts), the protobuf
 * primitives (protobuf-writer.ts).
 *
 * The bodies are byte for byte what the SDK path produces for the same input
 * (a TracerProvider with the same limits and ids, then ProtobufTraceSerializer /
 * JsonTraceSerializer of @opentelemetry/otlp-transformer 0.223 and sdk-trace 2.12,
 * resources grouped in first-seen order, each tree's spans in the SDK's end order);
 * test/unit/trace-batch.test.ts checks it against that path.
 */
import type { SpanRecord } from '../translate/types.js';
import { SpanIds } from './otlp/span-ids.js';
import { SpanLimits, type SpanLimitOptions } from './otlp/span-limits.js';
import { childrenOf, type PreparedResource, type RemoteParent, type ResourceAttributes, type SpanSerializer } from './otlp/span-serializer.js';
import { jsonResource, JsonSpanSerializer } from './otlp/trace-json.js';
import { protobufResource, ProtobufSpanSerializer } from './otlp/trace-protobuf.js';

export type { PreparedResource, RemoteParent, ResourceAttributes } from './otlp/span-serializer.js';

/**
 * Encodes a resource once, for either encoding. For an SDK Resource pass `resource.attributes`
 * and `resource.schemaUrl` (after async attributes have settled).
 */
export function prepareResource(attributes: ResourceAttributes, schemaUrl?: string): PreparedResource {
  const schema = typeof schemaUrl === 'string' && schemaUrl !== '' ? schemaUrl : undefined;
  return { ...protobufResource(attributes, schema), ...jsonResource(attributes, schema) };
}

export interface TraceBatchOptions extends SpanLimitOptions {
  encoding: 'protobuf' | 'json';
  scope: { name: string; version: string };
  /** String attribute values longer than this are cut (the SDK's spanLimits.attributeValueLengthLimit; the exporter uses 1024). */
  attributeValueLengthLimit: number;
  /** For tests: source of random bytes for ids (default: a pooled crypto.randomFillSync buffer). */
  randomFill?: (buf: Uint8Array) => void;
}

/** Spans of one resource since the last take(). */
interface Chunk {
  readonly resource: PreparedResource;
  /** the serializer's buffer of this resource's spans */
  spans: object;
  /** spans in it */
  count: number;
}

export class TraceBatch {
  private readonly serializer: SpanSerializer<object>;
  private readonly chunks = new Map<PreparedResource, Chunk>();
  /** Chunks holding spans, in the order their first span arrived (the SDK groups resources in first-seen order). */
  private active: Chunk[] = [];
  private lastResource: PreparedResource | undefined;
  private lastChunk: Chunk | undefined;
  private _spans = 0;
  private _bytes = 0;

  constructor(opts: TraceBatchOptions) {
    const parts = { scope: opts.scope, limits: new SpanLimits(opts), ids: new SpanIds(opts.randomFill) };
    this.serializer = opts.encoding === 'json' ? new JsonSpanSerializer(parts) : new ProtobufSpanSerializer(parts);
  }

  /** Spans added since the last take(). */
  get spans(): number {
    return this._spans;
  }

  /** Approximate encoded bytes held (the body take() returns, within a few bytes per resource). */
  get bytes(): number {
    return this._bytes;
  }

  /**
   * Encodes the call's span tree (root + its children, which get the root as parent
   * and the same trace id) with fresh ids at once; returns the number of spans added.
   */
  add(resource: PreparedResource, span: SpanRecord): number {
    const chunk = this.chunkOf(resource);
    const added = this.serializer.appendTree(chunk.spans, span);
    return this.count(chunk, added, 1 + childrenOf(span).length);
  }

  /** Encodes spans below a span of another process (the application's, joined by request id); returns the number added. */
  addUnder(resource: PreparedResource, parent: RemoteParent, spans: readonly SpanRecord[]): number {
    if (spans.length === 0) return 0;
    const chunk = this.chunkOf(resource);
    const added = this.serializer.appendUnder(chunk.spans, parent, spans);
    return this.count(chunk, added, spans.length);
  }

  private chunkOf(resource: PreparedResource): Chunk {
    if (resource === this.lastResource && this.lastChunk !== undefined) return this.lastChunk;
    let c = this.chunks.get(resource);
    if (c === undefined) {
      c = { resource, spans: this.serializer.emptySpans(), count: 0 };
      this.chunks.set(resource, c);
    }
    this.lastResource = resource;
    this.lastChunk = c;
    return c;
  }

  private count(chunk: Chunk, added: number, n: number): number {
    if (chunk.count === 0) {
      this.active.push(chunk);
      added += this.serializer.envelopeBytes(chunk.resource);
    }
    this._bytes += added;
    chunk.count += n;
    this._spans += n;
    return n;
  }

  /**
   * The OTLP ExportTraceServiceRequest body (protobuf bytes, or UTF-8 JSON bytes) for
   * everything added since the last take, grouped by resource (one ResourceSpans per
   * PreparedResource object, one ScopeSpans each); empties the batch. undefined when empty.
   */
  take(): Uint8Array | undefined {
    const active = this.active;
    // Resources idle for a whole batch are forgotten (a client's resource may be gone for good).
    for (const [r, c] of this.chunks) if (c.count === 0) this.chunks.delete(r);
    this.lastResource = undefined;
    this.lastChunk = undefined;
    this.active = [];
    this._spans = 0;
    this._bytes = 0;
    if (active.length === 0) return undefined;
    const out = this.serializer.request(active);
    for (const c of active) {
      c.count = 0;
      c.spans = this.serializer.clear(c.spans);
    }
    return out;
  }
}
