import { defaultResource, resourceFromAttributes, type Resource } from '@opentelemetry/resources';
import {
  AggregationTemporality,
  MeterProvider,
  PeriodicExportingMetricReader,
  type MetricProducer,
  type MetricReader,
  type PushMetricExporter,
} from '@opentelemetry/sdk-metrics';
import { join } from 'node:path';
import { ClientRegistry } from './clients.js';
import { ConsoleMetricExporter, ConsoleSpanSink, type LineWriter } from './console-exporter.js';
import { MetricAggregator, type SeriesBudget } from './metric-aggregator.js';
import { MergedClientsProducer, PrometheusEndpoint } from './prometheus-endpoint.js';
import { CallSampler, parseKeepRules } from './sampler.js';
import { exponentialHistograms, SdkInstrumentRecorder } from './sdk-recorder.js';
import { bridgeResource, registerSelfMetrics } from './self-metrics.js';
import { SpanBatcher } from './span-batcher.js';
import type { SpoolContent } from './spool.js';
import { encodingOf, SpoolingMetricExporter, SpoolingSpanExporter } from './spooling-exporter.js';
import { METRIC_INSTRUMENTS } from '../translate/instruments.js';
import type { MetricPoint, Translation } from '../translate/types.js';
import type { ProcessIdentity } from '../identity/resolver.js';
import type { Logger } from '../log.js';
import type { Stats } from '../stats.js';
import type { OtelSettings } from '../config/otel-env.js';
import { formatHostPort } from '../net/address.js';

export interface ExportOptions {
  /** The OTEL_* variables, resolved once (config/otel-env.ts): targets, exporters, sampler, resource. */
  otel: OtelSettings;
  /** --sample-keep: calls kept whatever the sampler says. */
  sampleKeep: readonly string[];
  defaultServiceName: string;
  serviceNamespace?: string;
  maxClients: number;
  exportDelayMs: number;
  exportBatchSize: number;
  metricsIntervalMs: number;
  /** Metric series across every client and instrument; beyond it, points go to the overflow series. */
  maxMetricSeries: number;
  version: string;
  /** Export spool bound (bytes of serialized requests); metrics get 1/8 of it. */
  spoolMaxBytes: number;
  /** Bound on what the spools hold in memory (from memoryCeilingMb); default spoolMaxBytes. */
  spoolMaxMemoryBytes?: number;
  /** Disk spool directory (traces/ and metrics/ below it); memory when absent. */
  spoolDir?: string;
  /** Where the console exporters write (stdout). */
  console?: LineWriter;
}

/** Metric series per instrument and ClientId (otel-mapping.md §2.2); beyond it, the overflow series. */
const METRIC_CARDINALITY_LIMIT = 500;

/** What records one ClientId's points: one per reader that needs its own state. */
interface Recorder {
  record(points: readonly MetricPoint[]): void;
}

/** One ClientId's metrics: its MeterProvider (push readers), its recorders, and its Prometheus aggregate. */
interface ClientMetrics {
  meterProvider: MeterProvider | undefined;
  recorders: Recorder[];
  /** Cumulative, for the scrape endpoint, labelled with this client's service. */
  prometheus: { labels: Record<string, string>; producer: MetricProducer } | undefined;
}

/**
 * Export stage: a translated call's metric points go into its client's
 * recorders (every call: metrics are never sampled), then the sampler decides
 * whether its span tree goes into the span batch. The parts, each in its own
 * file: `clients.ts` (which resource), `sampler.ts` (which calls become
 * spans), `span-batcher.ts` (batches → request bodies), `spooling-exporter.ts`
 * + `spool.ts` (bodies wait, bounded, for the OTLP endpoint; `otlp-sender.ts`
 * sends them over HTTP or gRPC), `metric-aggregator.ts` (bridge-side
 * aggregation handed to the SDK's readers as a MetricProducer),
 * `prometheus-endpoint.ts` (the scrape endpoint), `console-exporter.ts` and
 * `self-metrics.ts` (the bridge's own health).
 *
 * Exporters (OTEL_TRACES_EXPORTER / OTEL_METRICS_EXPORTER): only what is
 * chosen is built. Without a traces exporter no span is encoded at all
 * (metrics only); with OTEL_SDK_DISABLED nothing is built and `write` returns
 * at once.
 */
export class OtelExporter {
  private readonly clients: ClientRegistry<ClientMetrics> | undefined;
  private readonly spanExporter: SpoolingSpanExporter | undefined;
  private readonly metricExporter: SpoolingMetricExporter | undefined;
  private readonly consoleMetrics: ConsoleMetricExporter | undefined;
  private readonly bridgeMeterProvider: MeterProvider | undefined;
  private readonly batchers: SpanBatcher[] = [];
  /** Providers beyond each client's first (exponential histograms with two push exporters). */
  private readonly extraProviders: MeterProvider[] = [];
  private readonly sampler: CallSampler;
  private readonly prometheus: PrometheusEndpoint | undefined;
  private readonly budget: SeriesBudget;
  private readonly disabled: boolean;
  /** The OTLP encoding of span requests (the warm-up compiles the same path). */
  readonly traceEncoding: 'protobuf' | 'json';

  constructor(
    private readonly opts: ExportOptions,
    private readonly stats: Stats,
    private readonly log: Logger,
  ) {
    const otel = opts.otel;
    this.disabled = otel.sdkDisabled;
    this.traceEncoding = encodingOf(otel.traces);
    this.budget = { used: 0, max: opts.maxMetricSeries };
    this.sampler = new CallSampler({ root: otel.sampler.root, ratio: otel.sampler.ratio, keep: parseKeepRules(opts.sampleKeep) });
    if (this.disabled) return;
    const traces = new Set(otel.tracesExporters);
    const metrics = new Set(otel.metricsExporters);
    const write = opts.console ?? ((line: string) => process.stdout.write(line));

    // Batches → spool (accepts at once, bounded) → OTLP, oldest first, retried (spool.ts).
    const metricsSpoolBytes = Math.floor(opts.spoolMaxBytes / 8);
    const memory = opts.spoolMaxMemoryBytes ?? opts.spoolMaxBytes;
    const spoolDir = (signal: string) => (opts.spoolDir ? join(opts.spoolDir, signal) : undefined);
    const scope = { name: 'aws-csm-bridge', version: opts.version };
    if (traces.has('otlp')) {
      this.spanExporter = new SpoolingSpanExporter(
        {
          target: otel.traces,
          maxBytes: opts.spoolMaxBytes - metricsSpoolBytes,
          maxMemoryBytes: memory - Math.floor(memory / 8),
          dir: spoolDir('traces'),
        },
        stats,
        log,
      );
      this.batchers.push(new SpanBatcher({ encoding: this.traceEncoding, scope, maxBatchSpans: opts.exportBatchSize, delayMs: opts.exportDelayMs }, this.spanExporter));
    }
    if (traces.has('console')) {
      this.batchers.push(new SpanBatcher({ encoding: 'json', scope, maxBatchSpans: opts.exportBatchSize, delayMs: opts.exportDelayMs }, new ConsoleSpanSink(write)));
    }
    if (metrics.has('otlp')) {
      this.metricExporter = new SpoolingMetricExporter(
        { target: otel.metrics, maxBytes: metricsSpoolBytes, maxMemoryBytes: Math.floor(memory / 8), dir: spoolDir('metrics') },
        stats,
        log,
        otel.temporality,
      );
    }
    if (metrics.has('console')) this.consoleMetrics = new ConsoleMetricExporter(write);
    if (metrics.has('prometheus')) {
      this.prometheus = new PrometheusEndpoint(
        otel.prometheus.host,
        otel.prometheus.port,
        new MergedClientsProducer(() => (this.clients?.metrics() ?? []).flatMap((m) => (m.prometheus ? [m.prometheus] : []))),
      );
    }
    this.clients = new ClientRegistry<ClientMetrics>(
      {
        maxClients: opts.maxClients,
        defaultServiceName: opts.defaultServiceName,
        ...(opts.serviceNamespace ? { serviceNamespace: opts.serviceNamespace } : {}),
        // The merge order keeps telemetry.sdk.* and lets OTEL_RESOURCE_ATTRIBUTES add to every resource (§3.1).
        baseResource: defaultResource().merge(resourceFromAttributes(otel.resourceAttributes)),
        createMetrics: (resource) => this.createMetrics(resource),
      },
      stats.clients,
    );
    // The bridge's own health goes wherever metrics go; the scrape endpoint reads from this provider.
    const readers: MetricReader[] = this.pushReaders();
    if (this.prometheus) readers.push(this.prometheus.reader);
    if (readers.length > 0) {
      this.bridgeMeterProvider = new MeterProvider({ resource: bridgeResource(opts.version, otel), readers });
      registerSelfMetrics(this.bridgeMeterProvider.getMeter('aws-csm-bridge', opts.version), stats);
    }
  }

  /** Opens the Prometheus endpoint, if chosen; its address. */
  async start(): Promise<{ prometheus?: string }> {
    if (!this.prometheus) return {};
    await this.prometheus.start();
    const address = this.prometheus.address();
    return address ? { prometheus: address } : {};
  }

  /** The listener a bind policy must check, if any. */
  get prometheusListen(): { host: string; port: number } | undefined {
    return this.prometheus ? { host: this.opts.otel.prometheus.host, port: this.opts.otel.prometheus.port } : undefined;
  }

  /** Bytes the export spools hold in memory now (the memory guard's share of RSS it cannot shed by exporting early). */
  get spoolMemoryBytes(): number {
    return (this.spanExporter?.heldInMemoryBytes ?? 0) + (this.metricExporter?.heldInMemoryBytes ?? 0);
  }

  /**
   * Hot path. Metric points first, for every call (sampling never changes a metric); then the
   * sampler's decision for the whole span tree.
   */
  write(t: Translation, identity?: ProcessIdentity): void {
    const clients = this.clients;
    if (clients === undefined) return; // OTEL_SDK_DISABLED
    const client = clients.get(t.clientId, identity);
    const recorders = client.metrics.recorders;
    for (let i = 0; i < recorders.length; i++) recorders[i]!.record(t.metrics);
    const batchers = this.batchers;
    if (batchers.length === 0) return; // metrics only: no span is encoded
    const s = this.stats.sampling;
    const outcome = this.sampler.keepsAll ? 'sampled' : this.sampler.decide(t);
    if (outcome === 'dropped') {
      s.sampledOut++;
      return;
    }
    s.kept++;
    s.keptBy[outcome]++;
    let spans = 0;
    for (let i = 0; i < batchers.length; i++) spans = batchers[i]!.add(client.resource, t.span);
    this.stats.spans.created += spans;
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

  /** The push exporters (OTLP, console), each on its own periodic reader. */
  private pushExporters(): PushMetricExporter[] {
    return [this.metricExporter, this.consoleMetrics].filter((e): e is NonNullable<typeof e> => e !== undefined);
  }

  private pushReaders(producers: (exporter: PushMetricExporter) => MetricProducer[] = () => [], exponential = false): MetricReader[] {
    return this.pushExporters().map(
      (exporter) =>
        new PeriodicExportingMetricReader({
          // The reader takes its aggregation from the exporter's selectAggregation, not from an option.
          exporter: exponential ? withAggregation(exporter, exponentialHistograms) : exporter,
          metricProducers: producers(exporter),
          exportIntervalMillis: this.opts.metricsIntervalMs,
          exportTimeoutMillis: Math.min(30_000, this.opts.metricsIntervalMs),
          // The aggregators cap their own series (§2.2); this caps the SDK instruments' (self-metrics, exponential histograms).
          cardinalityLimits: { default: METRIC_CARDINALITY_LIMIT },
        } as ConstructorParameters<typeof PeriodicExportingMetricReader>[0]),
    );
  }

  private createMetrics(resource: Resource): ClientMetrics {
    const recorders: Recorder[] = [];
    let meterProvider: MeterProvider | undefined;
    if (this.opts.otel.histogramAggregation === 'base2_exponential_bucket_histogram' && this.pushExporters().length > 0) {
      // The SDK's instruments, with exponential histograms: one provider per exporter (each reader its own state).
      for (const reader of this.pushReaders(() => [], true)) {
        const p = new MeterProvider({ resource, readers: [reader] });
        recorders.push(new SdkInstrumentRecorder(p.getMeter('aws-csm-bridge', this.opts.version), METRIC_INSTRUMENTS));
        meterProvider ??= p;
        if (p !== meterProvider) this.extraProviders.push(p);
      }
    } else {
      // One aggregator per reader: collect() is stateful (delta resets, the cardinality epoch).
      const readers = this.pushReaders((exporter) => {
        const a = this.aggregator((kind) => exporter.selectAggregationTemporality?.(kind) ?? AggregationTemporality.CUMULATIVE);
        recorders.push(a);
        return [a];
      });
      if (readers.length > 0) meterProvider = new MeterProvider({ resource, readers });
    }
    let prometheus: ClientMetrics['prometheus'];
    if (this.prometheus) {
      const a = this.aggregator(() => AggregationTemporality.CUMULATIVE);
      recorders.push(a);
      const attrs = resource.attributes;
      const labels: Record<string, string> = { service_name: String(attrs['service.name']) };
      if (attrs['service.namespace'] !== undefined) labels['service_namespace'] = String(attrs['service.namespace']);
      prometheus = { labels, producer: a };
    }
    return { meterProvider, recorders, prometheus };
  }

  private meterProviders(): MeterProvider[] {
    const clientProviders = (this.clients?.metrics() ?? []).flatMap((m) => (m.meterProvider ? [m.meterProvider] : []));
    return [...clientProviders, ...this.extraProviders, ...(this.bridgeMeterProvider ? [this.bridgeMeterProvider] : [])];
  }

  /** The current span batch and a metric collection go to the spools now. */
  async flush(): Promise<void> {
    for (const b of this.batchers) b.flush();
    await Promise.all(this.meterProviders().map((p) => p.forceFlush().catch((e: Error) => this.log.warn('flush failed', { error: e.message }))));
  }

  /**
   * Puts the span batch and a last metric collection in the spools, sends what the spools hold
   * until `deadlineAt` (epoch ms), then says what could not be delivered: a disk spool keeps it
   * for the next start, what was only in memory is lost (counted).
   */
  async shutdown(deadlineAt = Date.now() + 10_000): Promise<void> {
    for (const b of this.batchers) b.flush();
    await Promise.all(this.meterProviders().map((p) => p.shutdown().catch((e: Error) => this.log.warn('shutdown failed', { error: e.message }))));
    await this.prometheus?.close();
    await Promise.all([this.spanExporter?.drain(deadlineAt), this.metricExporter?.drain(deadlineAt)]);
    // A request still in flight is abandoned at the deadline (a disk spool sends it again next time).
    const none: SpoolContent = { onDisk: { items: 0, bytes: 0, batches: 0 }, inMemory: { items: 0, bytes: 0, batches: 0 } };
    const [spans, metrics] = await Promise.all([this.spanExporter?.close(deadlineAt) ?? none, this.metricExporter?.close(deadlineAt) ?? none]);
    logUndelivered(this.log, spans, metrics, this.stats, this.opts.spoolDir);
  }

  /** Where the Prometheus endpoint listens, as configured (for messages before start). */
  describePrometheus(): string | undefined {
    const p = this.prometheusListen;
    return p ? formatHostPort(p.host, p.port) : undefined;
  }
}

/**
 * The shutdown truth: what is on disk for the next start, and what was lost
 * (counted in stats.spool.lostSpans / lostMetricExports and spans.dropped).
 */
export function logUndelivered(log: Logger, spans: SpoolContent, metrics: SpoolContent, stats: Stats, spoolDir: string | undefined): void {
  const keptItems = spans.onDisk.items + metrics.onDisk.items;
  const lost = { spans: stats.spool.lostSpans, metricExports: stats.spool.lostMetricExports };
  if (keptItems === 0 && lost.spans + lost.metricExports === 0) return;
  const fields = {
    keptOnDisk: { spans: spans.onDisk.items, metricExports: metrics.onDisk.items, bytes: spans.onDisk.bytes + metrics.onDisk.bytes },
    lost,
    ...(spoolDir ? { spoolDir } : {}),
  };
  if (lost.spans + lost.metricExports === 0) log.warn('OTLP endpoint unavailable at shutdown: undelivered data kept in the spool directory for the next start', fields);
  else if (keptItems > 0) log.error('OTLP endpoint unavailable at shutdown: some undelivered data kept in the spool directory, the rest (not on disk) is lost', fields);
  else log.error(`OTLP endpoint unavailable at shutdown: undelivered data is lost${spoolDir ? ' (the spool directory took none of it)' : ' (no spoolDir)'}`, fields);
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
