/**
 * MetricAggregator (src/export/metric-aggregator.ts) against the SDK itself:
 * the same recordings go (a) through real sdk-metrics instruments created like
 * otel-exporter's createInstruments() and (b) through a MetricAggregator
 * registered as a metricProducer of a reader whose MeterProvider has no
 * instruments; both readers' collect() results must be equal — timestamps
 * included, since Date is faked and both sides read the same clock.
 */
import { ValueType, type Counter, type Histogram } from '@opentelemetry/api';
import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  AggregationTemporality,
  InstrumentType,
  MeterProvider,
  MetricReader,
  PeriodicExportingMetricReader,
  type CollectionResult,
  type MetricProducer,
} from '@opentelemetry/sdk-metrics';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { CsmAttempt, CsmEvent } from '../../src/decode/types.js';
import { MetricAggregator, type MetricAggregatorOptions } from '../../src/export/metric-aggregator.js';
import { METRIC_INSTRUMENTS, type MetricInstrument } from '../../src/translate/instruments.js';
import { translate } from '../../src/translate/translate.js';
import type { Attributes, MetricPoint, Translation } from '../../src/translate/types.js';
import { decodeCapture, readTruth, scenarios } from '../helpers/captures.js';
import { startOtlpSink, type OtlpSink } from '../helpers/otlp-sink.js';

const RESOURCE = resourceFromAttributes({ 'service.name': 'agg-test' });
const SCOPE = { name: 'aws-csm-bridge', version: '9.9.9' };
const T0 = Date.UTC(2026, 10, 23, 12, 0, 0, 0);

type Selector = (kind: InstrumentType) => AggregationTemporality;
const CUMULATIVE: Selector = () => AggregationTemporality.CUMULATIVE;
const DELTA: Selector = () => AggregationTemporality.DELTA;
/** Not a real preference, but proves the choice is per instrument kind. */
const MIXED: Selector = (k) => (k === InstrumentType.COUNTER ? AggregationTemporality.DELTA : AggregationTemporality.CUMULATIVE);
const SELECTORS: [string, Selector][] = [
  ['cumulative', CUMULATIVE],
  ['delta', DELTA],
  ['mixed', MIXED],
];

/** A reader collected by hand (no timer). */
class ManualReader extends MetricReader {
  constructor(temporality: Selector, limit: number, metricProducers?: MetricProducer[]) {
    super({ aggregationTemporalitySelector: temporality, cardinalitySelector: () => limit, ...(metricProducers ? { metricProducers } : {}) });
  }
  protected override async onShutdown(): Promise<void> {}
  protected override async onForceFlush(): Promise<void> {}
}

interface Side {
  record(points: readonly MetricPoint[]): void;
  collect(): Promise<CollectionResult>;
}

/** (a) The SDK's own instruments, created exactly like otel-exporter's createInstruments(). */
function sdkSide(temporality: Selector, limit: number, instruments: readonly MetricInstrument[] = METRIC_INSTRUMENTS): Side {
  const reader = new ManualReader(temporality, limit);
  const provider = new MeterProvider({ resource: RESOURCE, readers: [reader] });
  const meter = provider.getMeter(SCOPE.name, SCOPE.version);
  const m = new Map<string, Histogram | Counter>();
  for (const i of instruments) {
    m.set(
      i.name,
      i.kind === 'histogram'
        ? meter.createHistogram(i.name, {
            unit: i.unit,
            description: i.description,
            ...(i.buckets ? { advice: { explicitBucketBoundaries: i.buckets } } : {}),
          })
        : meter.createCounter(i.name, { unit: i.unit, description: i.description }),
    );
  }
  return {
    record(points) {
      for (const p of points) {
        const inst = m.get(p.instrument);
        if (!inst) continue;
        if ('record' in inst) inst.record(p.value, p.attributes);
        else inst.add(p.value, p.attributes);
      }
    },
    collect: () => reader.collect(),
  };
}

/** (b) The aggregator as a metric producer of a MeterProvider without instruments. */
function aggSide(temporality: Selector, limit: number, extra: Partial<MetricAggregatorOptions> = {}): Side & { agg: MetricAggregator } {
  const agg = new MetricAggregator({
    instruments: METRIC_INSTRUMENTS,
    scope: SCOPE,
    temporality,
    cardinalityLimit: limit,
    now: () => Date.now(),
    ...extra,
  });
  const reader = new ManualReader(temporality, limit, [agg]);
  new MeterProvider({ resource: RESOURCE, readers: [reader] });
  return { agg, record: (p) => agg.record(p), collect: () => reader.collect() };
}

async function expectSame(a: Side, b: Side, label = ''): Promise<CollectionResult> {
  const [ra, rb] = [await a.collect(), await b.collect()];
  expect(rb.errors).toEqual([]);
  expect(rb.resourceMetrics.resource).toBe(ra.resourceMetrics.resource);
  expect(rb.resourceMetrics.scopeMetrics, label).toStrictEqual(ra.resourceMetrics.scopeMetrics);
  return rb;
}

function points(r: CollectionResult, name: string) {
  const m = r.resourceMetrics.scopeMetrics.flatMap((s) => s.metrics).find((x) => x.descriptor.name === name);
  return (m?.dataPoints ?? []) as { attributes: Attributes; startTime: [number, number]; endTime: [number, number]; value: unknown }[];
}

const hr = (ms: number): [number, number] => [Math.trunc(ms / 1000), (ms % 1000) * 1e6];

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['Date'] });
  vi.setSystemTime(T0);
});
afterEach(() => {
  vi.useRealTimers();
});

// ---------------------------------------------------------------------------
// Real captures → translations

function captureTranslations(): Translation[] {
  const opts = { attemptSpanKind: 'client', rpcSemconv: 'dup', jsInstrumentationKeys: false } as const;
  const out: Translation[] = [];
  for (const s of scenarios()) {
    const events = new Map<number, CsmEvent>(decodeCapture(s).map(({ line, event }) => [line, event]));
    for (const tc of readTruth(s)) {
      const attempts = tc.attempt_lines
        .map((l) => events.get(l))
        .filter((e): e is CsmAttempt => e?.type === 'ApiCallAttempt')
        .sort((x, y) => x.timestamp - y.timestamp);
      const c = tc.api_call_line === null ? undefined : events.get(tc.api_call_line);
      if (c?.type === 'ApiCall') {
        out.push(translate({ kind: 'call', call: c, attempts, missingAttempts: Math.max(0, (c.attemptCount ?? 0) - attempts.length) }, opts));
      } else {
        for (const a of attempts) out.push(translate({ kind: 'orphan', attempt: a, reason: 'ttl_expired' }, opts));
      }
    }
  }
  return out;
}

describe('MetricAggregator ≡ sdk-metrics instruments: real captures', () => {
  const translations = captureTranslations();

  it('the captures give enough material', () => {
    expect(translations.length).toBeGreaterThan(100);
    const names = new Set(translations.flatMap((t) => t.metrics.map((m) => m.instrument)));
    // (phase durations are not in the captures; the random sequences cover that instrument)
    for (const i of METRIC_INSTRUMENTS) if (i.name !== 'csm.attempt.phase.duration') expect(names, i.name).toContain(i.name);
  });

  for (const [label, sel] of SELECTORS) {
    for (const limit of [500, 6]) {
      it(`${label}, cardinality limit ${limit}: equal after every one of 5 collects`, async () => {
        const a = sdkSide(sel, limit);
        const b = aggSide(sel, limit);
        let overflowed = 0;
        for (let round = 0; round < 5; round++) {
          // Each round a different slice, so series come and go between collects.
          const slice = translations.filter((_, i) => i % 5 !== round || round === 4);
          for (const [i, t] of slice.entries()) {
            if (i % 7 === 0) vi.advanceTimersByTime(3);
            a.record(t.metrics);
            b.record(t.metrics);
          }
          vi.advanceTimersByTime(1000);
          const r = await expectSame(a, b, `round ${round}`);
          overflowed += points(r, 'csm.attempt.duration').filter((p) => p.attributes['otel.metric.overflow'] === true).length;
        }
        if (limit === 6) expect(overflowed).toBeGreaterThan(0);
        const empty = await expectSame(a, b, 'nothing recorded since');
        if (sel === DELTA) expect(empty.resourceMetrics.scopeMetrics).toEqual([]);
      });
    }
  }
});

// ---------------------------------------------------------------------------
// Random sequences (fast-check)

const INSTRUMENTS: MetricInstrument[] = [
  ...METRIC_INSTRUMENTS,
  // Not used by the bridge: an unsorted, infinite-bounded and a default-bucket histogram.
  { name: 'test.odd_buckets', kind: 'histogram', unit: '1', description: 'odd', buckets: [5, Infinity, 1, -Infinity, 2, 2] },
  { name: 'test.default_buckets', kind: 'histogram', unit: '', description: '' },
];

const attrValue = fc.oneof(
  fc.constantFrom('', ':', '1:', 's1:x', 'a\u0000b', 'true', '1', 'null', 'x'),
  fc.constantFrom(0, -0, 1, 1.5, NaN, Infinity, -Infinity, 1e21),
  fc.boolean(),
);
const attrName = fc.constantFrom('a', 'b', 'b:', '1', 'rpc.method', 'otel.metric.overflow', '');
const attrSet = fc.dictionary(attrName, attrValue, { maxKeys: 3, noNullPrototype: true });
const value = fc.oneof(
  fc.double({ min: 0, max: 20, noNaN: true }),
  fc.constantFrom(0, -0, 0.005, 1, 2, 5, 10, 10.0000001, NaN, Infinity, -Infinity, -1, -1e-9),
);
type Op =
  | { op: 'record'; inst: number; attrs: number; value: number; reversed: boolean }
  | { op: 'tick'; ms: number }
  | { op: 'collect' };
const opArb = (pool: number): fc.Arbitrary<Op> =>
  fc.oneof(
    { weight: 12, arbitrary: fc.record({ op: fc.constant('record' as const), inst: fc.nat(INSTRUMENTS.length), attrs: fc.nat(pool - 1), value, reversed: fc.boolean() }) },
    { weight: 3, arbitrary: fc.record({ op: fc.constant('tick' as const), ms: fc.integer({ min: 0, max: 5000 }) }) },
    { weight: 2, arbitrary: fc.constant({ op: 'collect' as const }) },
  );

function reversedCopy(a: Attributes): Attributes {
  return Object.fromEntries(Object.entries(a).reverse());
}

describe('MetricAggregator ≡ sdk-metrics instruments: random sequences', () => {
  for (const [label, sel] of SELECTORS) {
    it(`${label}: equal at every collect (limits 2..12 and 500, key orders, NaN/±Infinity/negatives)`, async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.array(attrSet, { minLength: 1, maxLength: 14 }), // duplicates welcome: {a: NaN} and {a: Infinity} are one series for the SDK
          fc.oneof(fc.integer({ min: 2, max: 12 }), fc.constant(500)),
          fc.array(opArb(14), { maxLength: 120 }),
          async (pool, limit, ops) => {
            vi.setSystemTime(T0);
            const a = sdkSide(sel, limit, INSTRUMENTS);
            const overflows: number[] = [];
            const b = aggSide(sel, limit, { instruments: INSTRUMENTS, onOverflow: (n) => overflows.push(n) });
            for (const o of [...ops, { op: 'collect' } as const]) {
              if (o.op === 'tick') vi.advanceTimersByTime(o.ms);
              else if (o.op === 'collect') await expectSame(a, b);
              else {
                const attrs = pool[o.attrs % pool.length]!;
                // inst === INSTRUMENTS.length: an unknown instrument (ignored by both)
                const p: MetricPoint = { instrument: INSTRUMENTS[o.inst]?.name ?? 'no.such.instrument', value: o.value, attributes: o.reversed ? reversedCopy(attrs) : attrs };
                a.record([p]);
                b.record([p]);
              }
            }
            for (const n of overflows) expect(n).toBe(1);
          },
        ),
        { numRuns: 150 },
      );
    });
  }

  it('batches behave like single points', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(fc.nat(5), attrSet, value), { maxLength: 60 }), fc.integer({ min: 2, max: 6 }), async (recs, limit) => {
        const a = sdkSide(CUMULATIVE, limit);
        const b = aggSide(CUMULATIVE, limit);
        const batch = recs.map(([i, attributes, v]) => ({ instrument: METRIC_INSTRUMENTS[i]!.name, value: v, attributes }));
        a.record(batch);
        b.record(batch);
        await expectSame(a, b);
      }),
      { numRuns: 100 },
    );
  });
});

// ---------------------------------------------------------------------------
// Semantics, spelled out

const HIST = 'rpc.client.call.duration';
const CTR = 'csm.call.retries';
const A = { 'rpc.method': 'GetObject' };
const B = { 'rpc.method': 'PutObject' };

describe('MetricAggregator: semantics spelled out', () => {
  it('descriptors, values and buckets of a histogram and a counter', async () => {
    const { agg } = aggSide(CUMULATIVE, 500);
    agg.record([
      { instrument: HIST, value: 0.005, attributes: A }, // upper bound inclusive → bucket 0
      { instrument: HIST, value: 0.0051, attributes: A },
      { instrument: HIST, value: 11, attributes: A }, // beyond the last bound
      { instrument: HIST, value: -1, attributes: A }, // dropped
      { instrument: HIST, value: NaN, attributes: B }, // creates the series, counts nothing
      { instrument: CTR, value: 2, attributes: A },
      { instrument: CTR, value: -2, attributes: A }, // dropped
      { instrument: CTR, value: 3, attributes: A },
      { instrument: 'nope', value: 3, attributes: A },
    ]);
    const r = await agg.collect();
    const [h] = r.resourceMetrics.scopeMetrics[0]!.metrics;
    expect(r.resourceMetrics.scopeMetrics[0]!.scope).toEqual(SCOPE);
    expect(h!.descriptor).toEqual({
      name: HIST,
      type: InstrumentType.HISTOGRAM,
      unit: 's',
      description: METRIC_INSTRUMENTS[0]!.description,
      valueType: ValueType.DOUBLE,
      advice: { explicitBucketBoundaries: METRIC_INSTRUMENTS[0]!.buckets },
    });
    const hp = points(r, HIST);
    expect(hp.map((p) => p.attributes)).toEqual([A, B]);
    expect(hp[0]!.value).toEqual({
      count: 3,
      sum: 0.005 + 0.0051 + 11,
      min: 0.005,
      max: 11,
      buckets: { boundaries: METRIC_INSTRUMENTS[0]!.buckets, counts: [1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1] },
    });
    expect(hp[1]!.value).toMatchObject({ count: 0, sum: 0, min: undefined, max: undefined });
    expect(points(r, CTR)).toMatchObject([{ attributes: A, value: 5 }]);
    expect(r.resourceMetrics.scopeMetrics[0]!.metrics.map((m) => m.descriptor.name)).toEqual([HIST, CTR]);
  });

  it('start times: cumulative = first record; delta = previous collect, or first record for a series new since then', async () => {
    for (const [sel, delta] of [
      [CUMULATIVE, false],
      [DELTA, true],
    ] as const) {
      vi.setSystemTime(T0);
      const a = sdkSide(sel, 500);
      const b = aggSide(sel, 500);
      const both = (p: MetricPoint[]) => (a.record(p), b.record(p));
      both([{ instrument: CTR, value: 1, attributes: A }]);
      vi.setSystemTime(T0 + 100);
      const r1 = await expectSame(a, b);
      expect(points(r1, CTR)).toMatchObject([{ startTime: hr(T0), endTime: hr(T0 + 100) }]);
      vi.setSystemTime(T0 + 150);
      both([{ instrument: CTR, value: 1, attributes: B }]);
      vi.setSystemTime(T0 + 170);
      both([{ instrument: CTR, value: 1, attributes: A }]);
      vi.setSystemTime(T0 + 200);
      const r2 = await expectSame(a, b);
      expect(points(r2, CTR)).toMatchObject(
        delta
          ? [
              { attributes: B, startTime: hr(T0 + 150), value: 1 },
              { attributes: A, startTime: hr(T0 + 100), value: 1 },
            ]
          : [
              { attributes: A, startTime: hr(T0), value: 2 },
              { attributes: B, startTime: hr(T0 + 150), value: 1 },
            ],
      );
      // An interval without B; B again afterwards starts at its record time (delta), not at the last collect.
      vi.setSystemTime(T0 + 250);
      both([{ instrument: CTR, value: 1, attributes: A }]);
      vi.setSystemTime(T0 + 300);
      const r3 = await expectSame(a, b);
      expect(points(r3, CTR).map((p) => p.attributes)).toEqual(delta ? [A] : [A, B]);
      vi.setSystemTime(T0 + 350);
      both([{ instrument: CTR, value: 1, attributes: B }]);
      vi.setSystemTime(T0 + 400);
      const r4 = await expectSame(a, b);
      const pb = points(r4, CTR).find((p) => p.attributes['rpc.method'] === 'PutObject');
      expect(pb).toMatchObject({ startTime: hr(delta ? T0 + 350 : T0 + 150), value: delta ? 1 : 2 });
    }
  });

  it('overflow: limit - 1 own series + the otel.metric.overflow series; onOverflow counts folded points', async () => {
    const folded: number[] = [];
    const { agg } = aggSide(CUMULATIVE, 3, { onOverflow: (n) => folded.push(n) });
    const batch = ['a', 'b', 'c', 'd', 'a', 'e'].map((m) => ({ instrument: CTR, value: 1, attributes: { 'rpc.method': m } }));
    agg.record(batch);
    expect(folded).toEqual([3]); // c, d, e
    expect(agg.series).toBe(3);
    const r = await agg.collect();
    expect(points(r, CTR).map((p) => [p.attributes, p.value])).toEqual([
      [{ 'rpc.method': 'a' }, 2],
      [{ 'rpc.method': 'b' }, 1],
      [{ 'otel.metric.overflow': true }, 3],
    ]);
  });

  it('overflow with CUMULATIVE, as the SDK does it: the limit is per interval, so series keep being added (and an old one can be folded)', async () => {
    const a = sdkSide(CUMULATIVE, 3);
    const b = aggSide(CUMULATIVE, 3);
    const rec = (...ms: string[]) => {
      const p = ms.map((m) => ({ instrument: CTR, value: 1, attributes: { 'rpc.method': m } }));
      a.record(p);
      b.record(p);
    };
    rec('a', 'b', 'c');
    await expectSame(a, b);
    rec('d', 'e', 'a');
    const r = await expectSame(a, b);
    expect(points(r, CTR).map((p) => [p.attributes, p.value])).toEqual([
      [{ 'rpc.method': 'a' }, 1], // its second point went to overflow
      [{ 'rpc.method': 'b' }, 1],
      [{ 'otel.metric.overflow': true }, 2],
      [{ 'rpc.method': 'd' }, 1],
      [{ 'rpc.method': 'e' }, 1],
    ]);
    expect(b.agg.series).toBe(5); // beyond the limit of 3
  });

  it('delta: an overflow series idle for an interval starts again at its first record time', async () => {
    const a = sdkSide(DELTA, 2);
    const b = aggSide(DELTA, 2);
    const rec = (...ms: string[]) => {
      const p = ms.map((m) => ({ instrument: CTR, value: 1, attributes: { 'rpc.method': m } }));
      a.record(p);
      b.record(p);
    };
    rec('a', 'b');
    vi.setSystemTime(T0 + 10);
    await expectSame(a, b);
    vi.setSystemTime(T0 + 15);
    rec('a');
    vi.setSystemTime(T0 + 20);
    await expectSame(a, b);
    expect(b.agg.series).toBe(1);
    vi.setSystemTime(T0 + 25);
    rec('a', 'b');
    vi.setSystemTime(T0 + 30);
    const r = await expectSame(a, b);
    expect(points(r, CTR)).toMatchObject([
      { attributes: { 'rpc.method': 'a' }, startTime: hr(T0 + 20) },
      { attributes: { 'otel.metric.overflow': true }, startTime: hr(T0 + 25) },
    ]);
    expect(b.agg.series).toBe(2);
  });

  it("cumulativeOverflow: 'bounded' keeps the series seen before the overflow and never exceeds the limit", async () => {
    const folded: number[] = [];
    const { agg } = aggSide(CUMULATIVE, 3, { cumulativeOverflow: 'bounded', onOverflow: (n) => folded.push(n) });
    const rec = (...ms: string[]) => agg.record(ms.map((m) => ({ instrument: CTR, value: 1, attributes: { 'rpc.method': m } })));
    rec('a', 'b', 'c');
    await agg.collect();
    rec('d', 'e', 'a');
    const r = await agg.collect();
    expect(points(r, CTR).map((p) => [p.attributes, p.value])).toEqual([
      [{ 'rpc.method': 'a' }, 2],
      [{ 'rpc.method': 'b' }, 1],
      [{ 'otel.metric.overflow': true }, 3],
    ]);
    expect(folded).toEqual([1, 2]);
    expect(agg.series).toBe(3);
    // delta instruments are per interval either way (the SDK's and the spec's behaviour)
    const d = aggSide(DELTA, 3, { cumulativeOverflow: 'bounded' });
    const e = sdkSide(DELTA, 3);
    for (const ms of [['a', 'b', 'c'], ['d', 'e', 'a']]) {
      const p = ms.map((m) => ({ instrument: CTR, value: 1, attributes: { 'rpc.method': m } }));
      d.record(p);
      e.record(p);
      await expectSame(e, d);
    }
  });

  it('series count; 1M records over 100 series do not grow it; delta forgets idle series', async () => {
    for (const sel of [CUMULATIVE, DELTA]) {
      const { agg } = aggSide(sel, 500);
      const pts: MetricPoint[] = [];
      for (let i = 0; i < 50; i++) {
        pts.push({ instrument: HIST, value: (i % 13) / 10, attributes: { 'rpc.service': 'S3', 'rpc.method': `M${i}`, 'cloud.region': 'eu-west-1' } });
        pts.push({ instrument: CTR, value: 1, attributes: { 'rpc.service': 'S3', 'rpc.method': `M${i}` } });
      }
      for (let n = 0; n < 10_000; n++) {
        agg.record(pts); // 100 points per call, copies of nothing
        if (n % 2500 === 0) {
          expect(agg.series).toBe(100);
          await agg.collect();
        }
      }
      expect(agg.series).toBe(100);
      const r = await agg.collect();
      const hp = points(r, HIST);
      expect(hp).toHaveLength(50);
      const total = hp.reduce((s, p) => s + (p.value as { count: number }).count, 0);
      expect(total).toBe(sel === CUMULATIVE ? 500_000 : 50 * 2499);
      // nothing recorded for an interval: delta drops every series, cumulative keeps them
      await agg.collect();
      expect(agg.series).toBe(sel === DELTA ? 0 : 100);
    }
  });

  it("series identity is the SDK's: key order ignored, NaN/±Infinity one value, 1 ≠ '1', true ≠ 'true', separators in names and values", async () => {
    const sets: Attributes[] = [
      { a: NaN },
      { a: Infinity },
      { a: -Infinity },
      { a: 1 },
      { a: '1' },
      { a: true },
      { a: 'true' },
      { a: 0 },
      { a: -0 },
      { x: 'a', y: 'b' },
      { y: 'b', x: 'a' },
      { 'x1:': 's1:y' },
      { x: '1:s1:y' },
      { '': '' },
      {},
    ];
    const a = sdkSide(CUMULATIVE, 500);
    const b = aggSide(CUMULATIVE, 500);
    const pts = sets.map((attributes) => ({ instrument: CTR, value: 1, attributes }));
    a.record(pts);
    b.record(pts);
    const r = await expectSame(a, b);
    expect(points(r, CTR).map((p) => p.value)).toEqual([3, 1, 1, 1, 1, 2, 2, 1, 1, 1, 1]);
    expect(b.agg.series).toBe(11);
    // inherited enumerable keys are not attributes (the SDK uses Object.keys)
    const inherited = Object.assign(Object.create({ zz: 'inherited' }) as Attributes, { a: 1 });
    for (let i = 0; i < 3; i++) b.record([{ instrument: CTR, value: 1, attributes: inherited }]);
    expect(b.agg.series).toBe(11);
    expect(points(await b.collect(), CTR).find((p) => p.attributes['a'] === 1)?.value).toBe(4);
  });

  it('never throws, whatever the value or attributes', () => {
    const { agg } = aggSide(CUMULATIVE, 4);
    const weird = [NaN, Infinity, -Infinity, -0, -1, Number.MAX_VALUE, 'x' as unknown as number, undefined as unknown as number];
    const attrs: Attributes[] = [{}, { a: NaN }, { a: Infinity }, { '': '' }, { a: [1, 2] as unknown as string }, { a: undefined as unknown as string }];
    for (const v of weird) for (const at of attrs) for (const i of METRIC_INSTRUMENTS) agg.record([{ instrument: i.name, value: v, attributes: at }]);
    expect(agg.series).toBeLessThanOrEqual(4 * METRIC_INSTRUMENTS.length);
  });
});

// ---------------------------------------------------------------------------
// Through the real export path

describe('MetricAggregator through PeriodicExportingMetricReader + OTLPMetricExporter (http/protobuf) into the strict sink', () => {
  let sink: OtlpSink;
  beforeEach(async () => {
    vi.useRealTimers();
    sink = await startOtlpSink();
  });
  afterEach(async () => {
    await sink.close();
  });

  for (const [label, sel, temporality] of [
    ['cumulative', CUMULATIVE, 2],
    ['delta', DELTA, 1],
  ] as const) {
    it(`${label}: points arrive with their values, the sink reports no errors`, async () => {
      const agg = new MetricAggregator({ instruments: METRIC_INSTRUMENTS, scope: SCOPE, temporality: sel, cardinalityLimit: 3 });
      const exporter = new OTLPMetricExporter({ url: `${sink.url}/v1/metrics`, temporalityPreference: sel(InstrumentType.COUNTER) });
      const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000, metricProducers: [agg] });
      const provider = new MeterProvider({ resource: RESOURCE, readers: [reader] });
      try {
        agg.record([
          { instrument: HIST, value: 0.02, attributes: A },
          { instrument: HIST, value: 3, attributes: A },
          { instrument: HIST, value: 0.5, attributes: B },
          { instrument: HIST, value: 0.7, attributes: { 'rpc.method': 'C' } }, // overflow (limit 3)
          { instrument: CTR, value: 2, attributes: { ...A, 'http.response.status_code': 503 } },
          { instrument: 'csm.call.max_retries_exceeded', value: 1, attributes: { ...A, 'error.type': 'ThrottlingException' } },
        ]);
        await reader.forceFlush();
        await sink.waitFor(() => sink.latestMetric(HIST).length === 3);
        expect(sink.errors).toEqual([]);
        expect(sink.requests[0]).toMatchObject({ path: '/v1/metrics', encoding: 'protobuf', status: 200 });
        const [h] = sink.latestMetric(HIST, A);
        expect(h).toMatchObject({
          type: 'histogram',
          unit: 's',
          description: METRIC_INSTRUMENTS[0]!.description,
          count: 2,
          sum: 3.02,
          min: 0.02,
          max: 3,
          explicitBounds: METRIC_INSTRUMENTS[0]!.buckets,
          bucketCounts: [0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0],
          aggregationTemporality: temporality,
          scope: SCOPE,
          resource: { 'service.name': 'agg-test' },
        });
        expect(h!.timeUnixNano).toBeGreaterThanOrEqual(h!.startTimeUnixNano);
        expect(sink.latestMetric(HIST, { 'otel.metric.overflow': true })).toMatchObject([{ count: 1, sum: 0.7 }]);
        expect(sink.latestMetric(CTR)).toMatchObject([
          { type: 'sum', value: 2, valueType: 'double', isMonotonic: true, aggregationTemporality: temporality, attributes: { ...A, 'http.response.status_code': 503 } },
        ]);
        expect(sink.latestMetric('csm.call.max_retries_exceeded')).toMatchObject([{ value: 1, attributes: { 'error.type': 'ThrottlingException' } }]);

        // second export
        const first = sink.requests.length;
        agg.record([{ instrument: HIST, value: 1, attributes: A }]);
        await reader.forceFlush();
        await sink.waitFor(() => sink.requests.length > first);
        expect(sink.errors).toEqual([]);
        expect(sink.latestMetric(HIST, A)).toMatchObject([{ count: sel === DELTA ? 1 : 3 }]);
        expect(sink.latestMetric(HIST)).toHaveLength(sel === DELTA ? 1 : 3);
        const last = sink.requests.length - 1;
        expect(sink.metricPoints.filter((p) => p.requestIndex === last && p.name === CTR)).toHaveLength(sel === DELTA ? 0 : 1);
        // shutdown flushes what was recorded since
        agg.record([{ instrument: CTR, value: 5, attributes: B }]);
        const before = sink.requests.length;
        await provider.shutdown();
        await sink.waitFor(() => sink.requests.length > before);
        expect(sink.latestMetric(CTR, B)).toMatchObject([{ value: 5 }]);
        expect(sink.errors).toEqual([]);
      } finally {
        await provider.shutdown().catch(() => {});
      }
    });
  }
});

describe('MetricAggregator: one series budget across aggregators (all clients)', () => {
  it('once the shared budget is used, new series of any aggregator go to overflow; forgotten delta series give it back', async () => {
    const budget = { used: 0, max: 5 };
    let overflowed = 0;
    const make = (temporality: AggregationTemporality) =>
      new MetricAggregator({
        instruments: [{ name: 'c', kind: 'counter', unit: '1', description: '' }],
        scope: { name: 't', version: '1' },
        temporality: () => temporality,
        cardinalityLimit: 500,
        cumulativeOverflow: 'bounded',
        budget,
        onOverflow: (n) => (overflowed += n),
      });
    const a = make(AggregationTemporality.CUMULATIVE);
    const b = make(AggregationTemporality.DELTA);
    const point = (k: number): MetricPoint => ({ instrument: 'c', value: 1, attributes: { k } });
    a.record([0, 1, 2].map(point));
    b.record([10, 11].map(point));
    expect([budget.used, overflowed]).toEqual([5, 0]);
    // Both clients are at the budget: new series fold, old ones still count.
    a.record([point(3), point(0)]);
    b.record([point(12)]);
    expect(overflowed).toBe(2);
    const series = async (x: MetricAggregator) =>
      (await x.collect()).resourceMetrics.scopeMetrics.flatMap((s) => s.metrics.flatMap((m) => m.dataPoints.map((d) => d.attributes)));
    expect(await series(a)).toEqual([{ k: 0 }, { k: 1 }, { k: 2 }, { 'otel.metric.overflow': true }]);
    expect(await series(b)).toEqual([{ k: 10 }, { k: 11 }, { 'otel.metric.overflow': true }]);
    // Delta: an interval without points forgets its series, and the budget gets them back.
    await series(b);
    expect(budget.used).toBe(4); // a's three and its overflow series
    b.record([point(20)]);
    expect(overflowed).toBe(2);
  });
});
