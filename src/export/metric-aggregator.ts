import { ValueType } from '@opentelemetry/api';
import { millisToHrTime } from '@opentelemetry/core';
import { emptyResource } from '@opentelemetry/resources';
import {
  AggregationTemporality,
  DataPointType,
  InstrumentType,
  type CollectionResult,
  type MetricData,
  type MetricProducer,
} from '@opentelemetry/sdk-metrics';
import type { MetricInstrument } from '../translate/instruments.js';
import type { Attributes, MetricPoint } from '../translate/types.js';

/**
 * Bridge-side metric aggregation (hot path), handed to the SDK's export
 * machinery as a `MetricProducer` (`metricProducers` of the reader).
 *
 * Produces exactly what @opentelemetry/sdk-metrics 2.12 produces for the same
 * recordings through `meter.createHistogram(name, { unit, description, advice:
 * { explicitBucketBoundaries } })` / `meter.createCounter(name, { unit,
 * description })` on a reader with `cardinalityLimits.default = limit`:
 *
 * - Descriptors: `{ name, type, description, unit, valueType: DOUBLE, advice }`.
 * - Values: histograms drop negative values (and -Infinity) without creating a
 *   series; NaN creates/activates the series but is not counted; +Infinity goes
 *   to the last bucket and makes the sum Infinity. Counters drop negative
 *   values; NaN is added (the sum becomes NaN, as in the SDK). Buckets are
 *   (b[i-1], b[i]]; boundaries sorted, ±Infinity removed, as the SDK does.
 * - Series identity: the SDK's `hashAttributes` (key order irrelevant, numbers
 *   as JSON so NaN/±Infinity are one value). The data point carries a copy of
 *   the first-seen attributes.
 * - Cardinality: per collection interval, like the SDK's DeltaMetricProcessor:
 *   a series not yet recorded in the current interval is admitted only while
 *   fewer than `limit - 1` series have been; otherwise the point goes to the
 *   `{ 'otel.metric.overflow': true }` series (so at most `limit` series per
 *   interval, overflow included). With CUMULATIVE temporality this means the
 *   SDK (and, by default, this class) keeps admitting up to `limit - 1` new
 *   series every interval and the series set grows without bound under
 *   attribute churn, and an old series can be folded into overflow in an
 *   interval where it came late. `cumulativeOverflow: 'bounded'` instead
 *   follows the specification (series seen before the overflow keep their own
 *   points; at most `limit` series ever).
 * - Temporality: chosen per instrument at its first collect (the exporter's
 *   selector), then fixed. DELTA: only series recorded since the previous
 *   collect are reported; start time is the previous collect's time for a
 *   series reported then, otherwise the series' first record time. CUMULATIVE:
 *   every series ever admitted, start time = its first record time.
 * - Cumulative sums are reported as (previous report + this interval's sum),
 *   the SDK's floating-point order, so even the last bits agree.
 * - A collect with no data points returns no ScopeMetrics (the reader then
 *   skips the export if the SDK's own meters have nothing either). Output
 *   order (metrics, data points) is the SDK's too.
 *
 * Memory: DELTA instruments forget a series after an interval without points
 * (≤ 2 × limit live per instrument); CUMULATIVE ones keep every admitted
 * series (see cardinality above). Points folded into overflow allocate a
 * little on their (slow) path; admitted points allocate nothing.
 *
 * One aggregator per reader: collect() is stateful (DELTA resets).
 */
export interface MetricAggregatorOptions {
  instruments: readonly MetricInstrument[];
  scope: { name: string; version: string };
  /** The exporter's selector (SpoolingMetricExporter.selectAggregationTemporality). */
  temporality: (kind: InstrumentType) => AggregationTemporality;
  /** Series per instrument, like the SDK's cardinalityLimits.default, overflow series included. */
  cardinalityLimit: number;
  /** Called (synchronously, from record) with the number of points folded into the overflow series. */
  onOverflow?: (points: number) => void;
  /**
   * 'sdk' (default): identical to sdk-metrics 2.12 (per-interval limit; cumulative series set unbounded).
   * 'bounded': for CUMULATIVE instruments, at most `cardinalityLimit` series ever (spec behaviour).
   */
  cumulativeOverflow?: 'sdk' | 'bounded';
  /**
   * Series shared by every aggregator of the bridge (all clients): once `used` reaches `max`, new
   * series of any instrument go to that instrument's overflow series, as at the per-instrument
   * limit. The per-client limits alone would add up to clients × instruments × limit.
   */
  budget?: SeriesBudget;
  now?: () => number; // epoch ms, for tests
}

/** A series count shared by several aggregators (a plain object: the hot path reads one field). */
export interface SeriesBudget {
  used: number;
  readonly max: number;
}

/** The SDK's default histogram boundaries (used only for a histogram without `buckets`). */
const SDK_DEFAULT_BOUNDARIES = [0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000];
const OVERFLOW_ATTRIBUTES: Attributes = Object.freeze({ 'otel.metric.overflow': true }) as Attributes;

/** One attribute set of one instrument. Fixed shape; numbers updated in place. */
class Series {
  /** Collect interval in which the series last took a point (or -1). */
  epoch = -1;
  count = 0;
  /** Histogram sum, or the counter's value, since the last collect. */
  sum = 0;
  /**
   * CUMULATIVE: the sum reported at the last collect. Kept apart so the reported
   * value is `base + interval sum`, the SDK's exact floating-point order (it
   * merges one interval's accumulation into the previous cumulative one).
   */
  base = 0;
  min = Infinity;
  max = -Infinity;
  constructor(
    readonly attributes: Attributes,
    /** Start time (epoch ms) of the current data point. */
    public start: number,
    /** Histogram bucket counts (bounds + 1), or null for a counter. */
    readonly counts: Float64Array | null,
  ) {}
}

/**
 * Series lookup: a trie over (attribute name, attribute value) in the point's
 * key order. Walking it costs two Map lookups per attribute on the point's own
 * short strings (their hashes are cached by V8), and allocates nothing; a
 * concatenated key string would have to be built, flattened and hashed whole
 * on every point (measured ≈8× slower). Map keys compare values as the SDK's
 * hashAttributes (JSON) does: 1 ≠ '1', true ≠ 'true', 0 = -0; NaN and
 * ±Infinity all become `null` (see valueKey).
 */
class Node {
  series: Series | undefined = undefined;
  /** The first attribute name seen after this node, and its values (the only one in practice: translate's key order is fixed). */
  name: string | undefined = undefined;
  values: Map<unknown, Node> | undefined = undefined;
  /** Any other names. */
  next: Map<string, Map<unknown, Node>> | undefined = undefined;
}

function child(node: Node, name: string): Map<unknown, Node> | undefined {
  return node.name === name ? node.values : node.next?.get(name);
}

class Instrument {
  root = new Node();
  /** Extra trie paths (another key order of an existing series), capped. */
  aliases = 0;
  /** Series in creation order (CUMULATIVE output order, the SDK's). */
  all: Series[] = [];
  /** Series admitted in the current interval, in admission order (DELTA output order, the SDK's). */
  active: Series[] = [];
  temporality: AggregationTemporality | undefined;
  overflow: Series | undefined;
  constructor(
    readonly descriptor: MetricData['descriptor'] & { type: InstrumentType; advice: object },
    /** Histogram upper bounds (sorted, finite), or null for a counter. */
    readonly bounds: Float64Array | null,
    readonly boundaries: number[],
  ) {}
}

export class MetricAggregator implements MetricProducer {
  private readonly byName = new Map<string, Instrument>();
  private readonly instruments: Instrument[] = [];
  private readonly scope: { name: string; version: string; schemaUrl?: string };
  private readonly limit: number;
  private readonly bounded: boolean;
  private readonly now: () => number;
  private readonly selectTemporality: (kind: InstrumentType) => AggregationTemporality;
  private readonly onOverflow: ((points: number) => void) | undefined;
  private readonly budget: SeriesBudget;
  private epoch = 0;
  private folded = 0;
  private liveSeries = 0;

  constructor(opts: MetricAggregatorOptions) {
    this.scope = { name: opts.scope.name, version: opts.scope.version, schemaUrl: undefined };
    // The SDK: `(aggregationCardinalityLimit ?? 2000) - 1` series, then overflow.
    this.limit = opts.cardinalityLimit;
    this.bounded = opts.cumulativeOverflow === 'bounded';
    this.now = opts.now ?? Date.now;
    this.selectTemporality = opts.temporality;
    this.onOverflow = opts.onOverflow;
    this.budget = opts.budget ?? { used: 0, max: Infinity };
    for (const i of opts.instruments) {
      if (this.byName.has(i.name)) continue;
      const histogram = i.kind === 'histogram';
      const advice = histogram && i.buckets ? { explicitBucketBoundaries: [...i.buckets] } : {};
      const descriptor = {
        name: i.name,
        type: histogram ? InstrumentType.HISTOGRAM : InstrumentType.COUNTER,
        description: i.description,
        unit: i.unit,
        valueType: ValueType.DOUBLE,
        advice,
      };
      let boundaries: number[] = [];
      if (histogram) {
        // ExplicitBucketHistogramAggregation: sorted copy without ±Infinity.
        const sorted = (i.buckets ?? SDK_DEFAULT_BOUNDARIES).concat().sort((a, b) => a - b);
        const lo = sorted.lastIndexOf(-Infinity);
        let hi = sorted.indexOf(Infinity);
        if (hi === -1) hi = sorted.length;
        boundaries = sorted.slice(lo + 1, hi);
      }
      const inst = new Instrument(descriptor, histogram ? Float64Array.from(boundaries) : null, boundaries);
      this.byName.set(i.name, inst);
      this.instruments.push(inst);
    }
  }

  /** Live series count (all instruments, overflow series included), for memory accounting. */
  get series(): number {
    return this.liveSeries;
  }

  /** Hot path: a trie walk per point (no allocation), numbers updated in place. */
  record(points: readonly MetricPoint[]): void {
    const epoch = this.epoch;
    for (let i = 0; i < points.length; i++) {
      const p = points[i]!;
      const inst = this.byName.get(p.instrument);
      if (inst === undefined) continue;
      const v = p.value;
      // The SDK's instruments: non-numbers and negative values are dropped (with a diag warning there).
      if (typeof v !== 'number' || v < 0) continue;
      const attrs = p.attributes;
      let node: Node | undefined = inst.root;
      for (const name in attrs) {
        const byValue: Map<unknown, Node> | undefined = node.name === name ? node.values : node.next?.get(name);
        node = byValue?.get(valueKey(attrs[name]));
        if (node === undefined) break;
      }
      let s = node?.series;
      if (s === undefined || s.epoch !== epoch) s = this.admit(inst, s, attrs);
      const counts = s.counts;
      if (counts === null) {
        s.sum += v; // NaN included, as SumAccumulation does
        continue;
      }
      if (v !== v) continue; // NaN: HistogramAccumulation ignores it (the series exists though)
      s.count++;
      s.sum += v;
      s.min = Math.min(v, s.min);
      s.max = Math.max(v, s.max);
      const b = inst.bounds!;
      let j = 0;
      while (j < b.length && b[j]! < v) j++;
      counts[j]!++;
    }
    if (this.folded !== 0) {
      const n = this.folded;
      this.folded = 0;
      this.onOverflow?.(n);
    }
  }

  /** Slow path: attributes not seen yet (in this key order), or a series' first point in this interval. */
  private admit(inst: Instrument, s: Series | undefined, attributes: Attributes): Series {
    const cumulativeBounded = this.bounded && inst.temporality !== AggregationTemporality.DELTA;
    if (s === undefined) {
      // The same attribute set in another key order is the same series (the SDK sorts keys).
      const names = Object.keys(attributes);
      // Own keys in order: the hot path's walk unless the object has inherited enumerable keys.
      s = lookup(inst.root, attributes, names);
      if (s === undefined && !isSorted(names)) {
        names.sort();
        s = lookup(inst.root, attributes, names);
        if (s !== undefined && inst.aliases < 4 * this.limit) {
          insert(inst.root, attributes, Object.keys(attributes), s);
          inst.aliases++;
        }
      }
      if (s === undefined) {
        const full =
          this.budget.used >= this.budget.max ||
          (cumulativeBounded ? inst.all.length - (inst.overflow ? 1 : 0) >= this.limit - 1 : inst.active.length >= this.limit - 1);
        if (full) return this.fold(inst);
        s = this.create(inst, attributes);
        if (lookup(inst.root, OVERFLOW_ATTRIBUTES, OVERFLOW_NAMES) === s) inst.overflow = s;
        s.epoch = this.epoch;
        inst.active.push(s);
        return s;
      }
      if (s.epoch === this.epoch) return s;
    }
    if (!cumulativeBounded && inst.active.length >= this.limit - 1) return this.fold(inst);
    s.epoch = this.epoch;
    inst.active.push(s);
    return s;
  }

  /** The point goes to the overflow series, which is admitted whatever the count (as the SDK's getOrDefault). */
  private fold(inst: Instrument): Series {
    this.folded++;
    let o = inst.overflow;
    if (o === undefined) {
      o = this.create(inst, OVERFLOW_ATTRIBUTES);
      inst.overflow = o;
    }
    if (o.epoch !== this.epoch) {
      o.epoch = this.epoch;
      inst.active.push(o);
    }
    return o;
  }

  private create(inst: Instrument, attributes: Attributes): Series {
    const s = new Series({ ...attributes }, this.now(), inst.bounds ? new Float64Array(inst.bounds.length + 1) : null);
    index(inst.root, s);
    inst.all.push(s);
    this.liveSeries++;
    this.budget.used++;
    return s;
  }

  async collect(_options?: { timeoutMillis?: number }): Promise<CollectionResult> {
    const nowMs = this.now();
    const endTime = millisToHrTime(nowMs);
    const metrics: MetricData[] = [];
    const epoch = this.epoch;
    for (const inst of this.instruments) {
      inst.temporality ??= this.selectTemporality(inst.descriptor.type);
      const delta = inst.temporality === AggregationTemporality.DELTA;
      const reported = delta ? inst.active : inst.all;
      if (reported.length > 0) metrics.push(this.metricData(inst, reported, endTime));
      if (!delta) {
        for (const s of reported) {
          s.base += s.sum;
          s.sum = 0;
        }
      } else {
        // Series without a point in this interval are forgotten; the others start a new point now.
        const forgotten = inst.all.length - reported.length;
        if (forgotten > 0) {
          this.liveSeries -= forgotten;
          this.budget.used -= forgotten;
          if (inst.overflow !== undefined && inst.overflow.epoch !== epoch) inst.overflow = undefined;
          inst.root = new Node();
          inst.aliases = 0;
          for (const s of reported) index(inst.root, s);
        }
        for (const s of reported) {
          s.start = nowMs;
          s.count = 0;
          s.sum = 0;
          s.min = Infinity;
          s.max = -Infinity;
          s.counts?.fill(0);
        }
        inst.all = inst.active;
      }
      inst.active = [];
    }
    this.epoch = epoch + 1;
    return {
      resourceMetrics: {
        // The reader keeps its MeterProvider's resource and only takes our scopeMetrics.
        resource: emptyResource(),
        scopeMetrics: metrics.length > 0 ? [{ scope: this.scope, metrics }] : [],
      },
      errors: [],
    };
  }

  private metricData(inst: Instrument, series: readonly Series[], endTime: [number, number]): MetricData {
    const aggregationTemporality = inst.temporality!;
    if (inst.bounds === null) {
      return {
        descriptor: inst.descriptor,
        aggregationTemporality,
        dataPointType: DataPointType.SUM,
        dataPoints: series.map((s) => ({ attributes: s.attributes, startTime: millisToHrTime(s.start), endTime, value: s.base + s.sum })),
        isMonotonic: true,
      };
    }
    return {
      descriptor: inst.descriptor,
      aggregationTemporality,
      dataPointType: DataPointType.HISTOGRAM,
      dataPoints: series.map((s) => ({
        attributes: s.attributes,
        startTime: millisToHrTime(s.start),
        endTime,
        value: {
          min: s.count > 0 ? s.min : undefined,
          max: s.count > 0 ? s.max : undefined,
          sum: s.base + s.sum,
          buckets: { boundaries: inst.boundaries, counts: Array.from(s.counts!) },
          count: s.count,
        },
      })),
    };
  }
}

// ---------------------------------------------------------------------------
// The series trie.

/** A Map key that is equal for two attribute values exactly when their JSON (the SDK's hashAttributes) is. */
function valueKey(v: unknown): unknown {
  switch (typeof v) {
    case 'string':
    case 'boolean':
      return v;
    case 'number':
      return v - v === 0 ? v : null; // SameValueZero: 0 = -0 as in JSON; NaN/±Infinity are JSON null
    case 'undefined':
      return null; // JSON.stringify([k, undefined]) → [k,null]
    default:
      return jsonToken(v);
  }
}

/** Other values (arrays; never produced by translate): one token object per JSON text. */
const jsonTokens = new Map<string, object>();
function jsonToken(v: unknown): object {
  let json: string;
  try {
    json = JSON.stringify(v) ?? 'null';
  } catch {
    json = String(v);
  }
  let t = jsonTokens.get(json);
  if (t === undefined) {
    t = Object.freeze({ json });
    if (jsonTokens.size < 10_000) jsonTokens.set(json, t);
  }
  return t;
}

function isSorted(names: string[]): boolean {
  for (let i = 1; i < names.length; i++) if (names[i - 1]! > names[i]!) return false;
  return true;
}

function lookup(root: Node, attrs: Attributes, names: readonly string[]): Series | undefined {
  let node: Node | undefined = root;
  for (const name of names) {
    node = child(node, name)?.get(valueKey(attrs[name]));
    if (node === undefined) return undefined;
  }
  return node.series;
}

function insert(root: Node, attrs: Attributes, names: readonly string[], s: Series): void {
  let node = root;
  for (const name of names) {
    let byValue = child(node, name);
    if (byValue === undefined) {
      byValue = new Map();
      if (node.name === undefined) {
        node.name = name;
        node.values = byValue;
      } else (node.next ??= new Map()).set(name, byValue);
    }
    const k = valueKey(attrs[name]);
    let next = byValue.get(k);
    if (next === undefined) byValue.set(k, (next = new Node()));
    node = next;
  }
  node.series = s;
}

/** Makes a series reachable in its own key order and in sorted order (the canonical path of admit). */
function index(root: Node, s: Series): void {
  const names = Object.keys(s.attributes);
  insert(root, s.attributes, names, s);
  if (!isSorted(names)) insert(root, s.attributes, names.sort(), s);
}

const OVERFLOW_NAMES = Object.keys(OVERFLOW_ATTRIBUTES);
