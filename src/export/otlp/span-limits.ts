/**
 * The OTel SDK's span limits, applied once for both wire encodings: which attributes a span
 * or event keeps (SpanImpl.setAttribute / addEvent: empty keys and invalid values ignored,
 * the first `attributeCountLimit` kept and the rest counted as dropped, strings cut to
 * `attributeValueLengthLimit`, in arrays too) and which events (addEvent: beyond
 * `eventCountLimit` the oldest go).
 *
 * The SDK applies them as a span is built; we build no span, so the serializers ask here,
 * attribute by attribute, as they write: `admit()` says whether and as what an attribute is
 * kept. The serializers keep the for-in loop itself (five lines each): handing each kept
 * attribute to a callback, or collecting them into a list first, measured 5 to 8% slower on
 * the protobuf encoder (the attribute loop is its hottest; bench/trace-encode.mjs).
 */
export interface SpanLimitOptions {
  /** The SDK's spanLimits.attributeValueLengthLimit; 0 or absent: no limit. */
  attributeValueLengthLimit?: number;
  /** The SDK's spanLimits.attributeCountLimit (its default 128). */
  attributeCountLimit?: number;
  /** The SDK's spanLimits.eventCountLimit (its default 128). */
  eventCountLimit?: number;
  /** The SDK's spanLimits.attributePerEventCountLimit (its default 128). */
  attributePerEventCountLimit?: number;
}

/** The SDK's default count limits (sdk-trace-base config.ts). */
const SDK_DEFAULT_COUNT_LIMIT = 128;

/** admit(): the SDK ignores the attribute (an empty key or an invalid value); it does not count. */
export const IGNORED: unique symbol = Symbol('ignored');
/** admit(): the attribute is beyond the count limit: not kept, counted as dropped. */
export const DROPPED: unique symbol = Symbol('dropped');

export class SpanLimits {
  private readonly valueLength: number;
  private readonly attributeCount: number;
  private readonly eventCount: number;
  private readonly attributesPerEvent: number;

  constructor(opts: SpanLimitOptions) {
    const length = opts.attributeValueLengthLimit;
    this.valueLength = typeof length === 'number' && length > 0 ? length : Infinity;
    this.attributeCount = opts.attributeCountLimit ?? SDK_DEFAULT_COUNT_LIMIT;
    this.eventCount = opts.eventCountLimit ?? SDK_DEFAULT_COUNT_LIMIT;
    this.attributesPerEvent = opts.attributePerEventCountLimit ?? SDK_DEFAULT_COUNT_LIMIT;
  }

  /**
   * An own attribute of a span (SpanImpl.setAttribute) or event (addEvent) as it is kept (a
   * string cut to the length limit, in an array too), or IGNORED, or DROPPED. `valid` is how
   * many attributes before it were not IGNORED: the caller counts them, so no state is kept
   * here (a field per attribute measurably slowed the protobuf encoder).
   */
  admit(key: string, v: unknown, valid: number, forEvent: boolean): unknown {
    if (!keptBySdk(key, v, forEvent)) return IGNORED;
    if (valid >= (forEvent ? this.attributesPerEvent : this.attributeCount)) return DROPPED;
    if (typeof v === 'string') return cut(v, this.valueLength);
    if (Array.isArray(v)) return cutStrings(v, this.valueLength);
    return v;
  }

  /** The dropped_attributes_count of a span or event with `valid` attributes not IGNORED. */
  droppedAttributes(valid: number, forEvent: boolean): number {
    return Math.max(0, valid - (forEvent ? this.attributesPerEvent : this.attributeCount));
  }

  /**
   * Index of the first of `count` events the span keeps (addEvent drops the oldest beyond the
   * limit, and every event when it is 0), which is also its dropped_events_count.
   */
  firstKeptEvent(count: number): number {
    const limit = this.eventCount;
    if (limit === 0) return count;
    return count > limit ? count - limit : 0;
  }
}

/** SpanImpl._truncateToSize of a string. */
function cut(s: string, max: number): string {
  return s.length > max ? s.substring(0, max) : s;
}

/**
 * SpanImpl._truncateToSize of an array: its strings cut. Not a closure inside admit(): one
 * there would make admit allocate a context on every call.
 */
function cutStrings(arr: unknown[], max: number): unknown[] {
  return arr.map((x) => (typeof x === 'string' ? cut(x, max) : x));
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
