/**
 * Metric points recorded through the SDK's own instruments, for what the
 * bridge's MetricAggregator does not implement: exponential histograms
 * (OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION=
 * base2_exponential_bucket_histogram). The reader's aggregation selector makes
 * every histogram a base-2 exponential one (the SDK's defaults: 160 buckets,
 * max scale 20); counters stay sums. Slower per point than the aggregator (the
 * SDK hashes the attributes of every recording), which is why it is only used
 * when asked for.
 */
import type { Attributes as ApiAttributes, Counter, Histogram, Meter } from '@opentelemetry/api';
import { AggregationType, InstrumentType, type AggregationOption } from '@opentelemetry/sdk-metrics';
import type { MetricInstrument } from '../translate/instruments.js';
import type { MetricPoint } from '../translate/types.js';

/** For a reader's `aggregationSelector`. */
export function exponentialHistograms(type: InstrumentType): AggregationOption {
  return type === InstrumentType.HISTOGRAM ? { type: AggregationType.EXPONENTIAL_HISTOGRAM } : { type: AggregationType.DEFAULT };
}

export class SdkInstrumentRecorder {
  private readonly byName = new Map<string, { histogram?: Histogram; counter?: Counter }>();

  constructor(meter: Meter, instruments: readonly MetricInstrument[]) {
    for (const i of instruments) {
      const o = { unit: i.unit, description: i.description };
      this.byName.set(i.name, i.kind === 'histogram' ? { histogram: meter.createHistogram(i.name, o) } : { counter: meter.createCounter(i.name, o) });
    }
  }

  record(points: readonly MetricPoint[]): void {
    for (const p of points) {
      const i = this.byName.get(p.instrument);
      if (i?.histogram) i.histogram.record(p.value, p.attributes as ApiAttributes);
      else i?.counter?.add(p.value, p.attributes as ApiAttributes);
    }
  }
}
