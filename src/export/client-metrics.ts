/**
 * The metrics side of one ClientId: what records its points and which readers collect them.
 *
 * Each push exporter (OTLP, console) gets its own periodic reader and its own aggregator,
 * because collect() is stateful (delta resets, the cardinality epoch); the scrape endpoint gets
 * a cumulative aggregator of its own. With exponential histograms the SDK's own instruments
 * record instead (one MeterProvider per exporter). Every aggregator and SDK recorder of every
 * client draws on one series budget (`maxMetricSeries`), so the bridge's series stay bounded
 * whatever the clients do.
 */
import { AggregationTemporality, MeterProvider, PeriodicExportingMetricReader, type MetricProducer, type MetricReader, type PushMetricExporter } from '@opentelemetry/sdk-metrics';
import type { Resource } from '@opentelemetry/resources';
import type { Stats } from '../stats.js';
import { METRIC_INSTRUMENTS } from '../translate/instruments.js';
import type { MetricPoint } from '../translate/types.js';
import { MetricAggregator, type SeriesBudget } from './metric-aggregator.js';
import { exponentialHistograms, SdkInstrumentRecorder } from './sdk-recorder.js';

/** Metric series per instrument and ClientId (otel-mapping.md §2.2); beyond it, the overflow series. */
const METRIC_CARDINALITY_LIMIT = 500;

/** What records one ClientId's points: one per reader that needs its own state. */
interface Recorder {
  record(points: readonly MetricPoint[]): void;
}

/** One ClientId's metrics: its MeterProvider(s) (push readers), its recorders, and its Prometheus aggregate. */
export interface ClientMetrics {
  providers: MeterProvider[];
  recorders: Recorder[];
  /** Cumulative, for the scrape endpoint, labelled with this client's service. */
  prometheus: { labels: Record<string, string>; producer: MetricProducer } | undefined;
}

export interface ClientMetricsOptions {
  /** OTLP and console metric exporters that were chosen. */
  pushExporters: PushMetricExporter[];
  /** A scrape endpoint was chosen. */
  prometheus: boolean;
  exponentialHistograms: boolean;
  intervalMs: number;
  maxMetricSeries: number;
  version: string;
}

export class ClientMetricsFactory {
  private readonly budget: SeriesBudget;

  constructor(
    private readonly opts: ClientMetricsOptions,
    private readonly stats: Stats,
  ) {
    this.budget = { used: 0, max: opts.maxMetricSeries };
  }

  /** A periodic reader per push exporter; `producers` gives each its own aggregators. */
  pushReaders(producers: (exporter: PushMetricExporter) => MetricProducer[] = () => [], exponential = false): MetricReader[] {
    return this.opts.pushExporters.map(
      (exporter) =>
        new PeriodicExportingMetricReader({
          // The reader takes its aggregation from the exporter's selectAggregation, not from an option.
          exporter: exponential ? withAggregation(exporter, exponentialHistograms) : exporter,
          metricProducers: producers(exporter),
          exportIntervalMillis: this.opts.intervalMs,
          exportTimeoutMillis: Math.min(30_000, this.opts.intervalMs),
          // The aggregators cap their own series (§2.2); this caps the SDK instruments' (self-metrics, exponential histograms).
          cardinalityLimits: { default: METRIC_CARDINALITY_LIMIT },
        } as ConstructorParameters<typeof PeriodicExportingMetricReader>[0]),
    );
  }

  create(resource: Resource): ClientMetrics {
    const recorders: Recorder[] = [];
    const providers: MeterProvider[] = [];
    if (this.opts.exponentialHistograms && this.opts.pushExporters.length > 0) {
      // The SDK's instruments, with exponential histograms: one provider per exporter (each reader its own state).
      for (const reader of this.pushReaders(() => [], true)) {
        const p = new MeterProvider({ resource, readers: [reader] });
        recorders.push(
          new SdkInstrumentRecorder(p.getMeter('aws-csm-bridge', this.opts.version), METRIC_INSTRUMENTS, this.budget, (n) => (this.stats.metricPoints.overflowed += n)),
        );
        providers.push(p);
      }
    } else {
      const readers = this.pushReaders((exporter) => {
        const a = this.aggregator((kind) => exporter.selectAggregationTemporality?.(kind) ?? AggregationTemporality.CUMULATIVE);
        recorders.push(a);
        return [a];
      });
      if (readers.length > 0) providers.push(new MeterProvider({ resource, readers }));
    }
    let prometheus: ClientMetrics['prometheus'];
    if (this.opts.prometheus) {
      const a = this.aggregator(() => AggregationTemporality.CUMULATIVE);
      recorders.push(a);
      const attrs = resource.attributes;
      const labels: Record<string, string> = { service_name: String(attrs['service.name']) };
      if (attrs['service.namespace'] !== undefined) labels['service_namespace'] = String(attrs['service.namespace']);
      prometheus = { labels, producer: a };
    }
    return { providers, recorders, prometheus };
  }

  private aggregator(temporality: (kind: Parameters<PushMetricExporter['selectAggregationTemporality'] & {}>[0]) => AggregationTemporality): MetricAggregator {
    return new MetricAggregator({
      instruments: METRIC_INSTRUMENTS,
      scope: { name: 'aws-csm-bridge', version: this.opts.version },
      temporality,
      cardinalityLimit: METRIC_CARDINALITY_LIMIT,
      // The SDK admits 499 new series per interval under cumulative temporality, so churn grows
      // memory without end; the specification's rule (first 500 series ever) keeps it bounded.
      cumulativeOverflow: 'bounded',
      budget: this.budget,
      onOverflow: (n) => (this.stats.metricPoints.overflowed += n),
    });
  }
}

/** `exporter` with another aggregation per instrument type (exponential histograms). */
function withAggregation(exporter: PushMetricExporter, selectAggregation: NonNullable<PushMetricExporter['selectAggregation']>): PushMetricExporter {
  return {
    export: (metrics, done) => exporter.export(metrics, done),
    forceFlush: () => exporter.forceFlush(),
    shutdown: () => exporter.shutdown(),
    selectAggregation,
    ...(exporter.selectAggregationTemporality ? { selectAggregationTemporality: (kind) => exporter.selectAggregationTemporality!(kind) } : {}),
  };
}
