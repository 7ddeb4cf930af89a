/**
 * The seam between TraceBatch (which resource's spans go together, when a request body is
 * taken) and a wire encoding of spans (trace-protobuf.ts, trace-json.ts). A serializer
 * appends each call's span tree to a per-resource buffer of its own kind at once, and
 * wraps the buffers into one ExportTraceServiceRequest body on take.
 */
import type { Attributes, SpanRecord } from '../../translate/types.js';
import type { SpanIds } from './span-ids.js';
import type { SpanLimits } from './span-limits.js';

/** Attribute values as an SDK Resource may hold them (a superset of the bridge's own). */
export type ResourceAttributes = Attributes | Readonly<Record<string, unknown>>;

/** A Resource encoded once, for both encodings (see prepareResource in trace-batch.ts); opaque to callers. */
export interface PreparedResource {
  /** ResourceSpans.resource: tag, length and the Resource message. */
  readonly protoResourceField: Uint8Array;
  /** ResourceSpans.schema_url: tag, length, UTF-8 (empty when there is none). */
  readonly protoSchemaUrlField: Uint8Array;
  /** `"resource":{...}` member of a JSON ResourceSpans, as JSON text (without braces around it). */
  readonly jsonResource: string;
  /** `,"schemaUrl":"..."` or '' */
  readonly jsonSchemaUrl: string;
}

/** One resource's spans of a batch, as a serializer buffered them. */
export interface ResourceGroup<Spans> {
  readonly resource: PreparedResource;
  readonly spans: Spans;
}

/** What a serializer is built from: the instrumentation scope, the span limits and the id source. */
export interface SerializerParts {
  scope: { name: string; version: string };
  limits: SpanLimits;
  ids: SpanIds;
}

/** A span of another process (the application's) that joined spans hang below. */
export interface RemoteParent {
  /** 16 bytes */
  readonly traceId: Uint8Array;
  /** 8 bytes */
  readonly spanId: Uint8Array;
  /** W3C tracestate of the parent, '' when none. */
  readonly traceState: string;
}

export interface SpanSerializer<Spans> {
  /** An empty buffer for one resource's spans. */
  emptySpans(): Spans;
  /**
   * Appends one call's span tree with fresh ids: its children (the root as their parent, its
   * trace id), then the root, the order in which the SDK ends them. Returns the bytes added;
   * when it throws (a throwing getter in the input), `spans` is left as it was.
   */
  appendTree(spans: Spans, tree: SpanRecord): number;
  /**
   * Appends spans (no children of their own) below a remote parent: its trace id, the parent's
   * span id, its trace state, fresh span ids, flagged sampled with a remote parent. Returns the
   * bytes added; when it throws, `spans` is left as it was.
   */
  appendUnder(spans: Spans, parent: RemoteParent, records: readonly SpanRecord[]): number;
  /** About what a resource's ResourceSpans and ScopeSpans add to a body around its spans. */
  envelopeBytes(resource: PreparedResource): number;
  /** The ExportTraceServiceRequest body: one ResourceSpans (with one ScopeSpans) per group, in order. */
  request(groups: readonly ResourceGroup<Spans>[]): Uint8Array;
  /** `spans` emptied for the next batch, or a fresh buffer instead of one grown too large to keep. */
  clear(spans: Spans): Spans;
}

const NO_CHILDREN: readonly SpanRecord[] = [];

/** A tree's child spans (none when a caller left them out). */
export function childrenOf(tree: SpanRecord): readonly SpanRecord[] {
  return tree.children ?? NO_CHILDREN;
}
