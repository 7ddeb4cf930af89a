/**
 * Metric points recorded through the SDK's own instruments, for what the
 * bridge's MetricAggregator does not implement: exponential histograms
 * (OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION=
 * base2_exponential_bucket_histogram). The reader's aggregation selector makes
 * every histogram a base-2 exponential one (the SDK's defaults: 160 buckets,
 * max scale 20); counters stay sums. Slower per point than the aggregator (the
 * SDK hashes the attributes of every recording), which is why it is only used
 * when asked for.
 *
 * The SDK caps each instrument's series (the reader's cardinality limit), but not the bridge's
 * series across clients: a recorder draws on the same series budget as the aggregators
 * (`maxMetricSeries`), and a point of a new attribute set beyond it goes to the instrument's
 * otel.metric.overflow series (counted in metricPoints.overflowed). The SDK keeps a cumulative
 * series for good, so a series counts from its first point on (under delta temporality too:
 * what the SDK forgets between exports is not known here, so the budget errs on the safe side).
 */
import type { Attributes as ApiAttributes, Counter, Histogram, Meter } from '@opentelemetry/api';
import { AggregationType, InstrumentType, type AggregationOption } from '@opentelemetry/sdk-metrics';
import type { MetricInstrument } from '../translate/instruments.js';
import type { MetricPoint } from '../translate/types.js';
import type { SeriesBudget } from './metric-aggregator.js';

const OVERFLOW: ApiAttributes = Object.freeze({ 'otel.metric.overflow': true });

/** For a reader's `aggregationSelector`. */
export function exponentialHistograms(type: InstrumentType): AggregationOption {
  return type === InstrumentType.HISTOGRAM ? { type: AggregationType.EXPONENTIAL_HISTOGRAM } : { type: AggregationType.DEFAULT };
}

interface SdkInstrument {
  histogram?: Histogram;
  counter?: Counter;
  /** Attribute sets (keys sorted) this instrument has recorded. */
  series: Set<string>;
}

export class SdkInstrumentRecorder {
  private readonly byName = new Map<string, SdkInstrument>();

  constructor(
    meter: Meter,
    instruments: readonly MetricInstrument[],
    private readonly budget: SeriesBudget = { used: 0, max: Infinity },
    private readonly onOverflow: (points: number) => void = () => {},
  ) {
    for (const i of instruments) {
      const o = { unit: i.unit, description: i.description };
      const series = new Set<string>();
      this.byName.set(i.name, i.kind === 'histogram' ? { histogram: meter.createHistogram(i.name, o), series } : { counter: meter.createCounter(i.name, o), series });
    }
  }

  record(points: readonly MetricPoint[]): void {
    for (const p of points) {
      const i = this.byName.get(p.instrument);
      if (i === undefined) continue;
      const attributes = this.admit(i, p.attributes as ApiAttributes);
      if (i.histogram) i.histogram.record(p.value, attributes);
      else i.counter?.add(p.value, attributes);
    }
  }

  /** `attributes`, or the overflow set when they are a new series and the budget is spent. */
  private admit(i: SdkInstrument, attributes: ApiAttributes): ApiAttributes {
    const key = JSON.stringify(Object.entries(attributes).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    if (i.series.has(key)) return attributes;
    if (this.budget.used >= this.budget.max) {
      this.onOverflow(1);
      return OVERFLOW;
    }
    i.series.add(key);
    this.budget.used++;
    return attributes;
  }
}
