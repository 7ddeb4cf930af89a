import { defaultResource, resourceFromAttributes, type Resource } from '@opentelemetry/resources';
import { MeterProvider, PeriodicExportingMetricReader, type MetricProducer } from '@opentelemetry/sdk-metrics';
import { join } from 'node:path';
import { ClientRegistry } from './clients.js';
import { MetricAggregator } from './metric-aggregator.js';
import { bridgeResource, registerSelfMetrics } from './self-metrics.js';
import { SpanBatcher } from './span-batcher.js';
import type { SpoolContent } from './spool.js';
import { encodingOf, SpoolingMetricExporter, SpoolingSpanExporter } from './spooling-exporter.js';
import { METRIC_INSTRUMENTS } from '../translate/instruments.js';
import type { Translation } from '../translate/types.js';
import type { ProcessIdentity } from '../identity/resolver.js';
import type { Logger } from '../log.js';
import type { Stats } from '../stats.js';
import type { OtelSettings } from '../config/otel-env.js';

export interface ExportOptions {
  /** The OTEL_* variables, resolved once (config/otel-env.ts): targets, temporality, resource. */
  otel: OtelSettings;
  defaultServiceName: string;
  serviceNamespace?: string;
  maxClients: number;
  exportDelayMs: number;
  exportBatchSize: number;
  metricsIntervalMs: number;
  version: string;
  /** Export spool bound (bytes of serialized requests); metrics get 1/8 of it. */
  spoolMaxBytes: number;
  /** Disk spool directory (traces/ and metrics/ below it); memory when absent. */
  spoolDir?: string;
}

/** Metric series per instrument and ClientId (otel-mapping.md §2.2); beyond it, the overflow series. */
const METRIC_CARDINALITY_LIMIT = 500;

/** One ClientId's metrics: its resource (MeterProvider) and the bridge-side aggregates the reader collects. */
interface ClientMetrics {
  meterProvider: MeterProvider;
  aggregator: MetricAggregator;
}

/**
 * Export stage: a translated call's spans go into the span batch under its client's resource,
 * its metric points into that client's aggregator. The parts, each in its own file:
 * `clients.ts` (which resource), `span-batcher.ts` (batches → request bodies),
 * `spooling-exporter.ts` + `spool.ts` (bodies wait, bounded, for the OTLP endpoint),
 * `metric-aggregator.ts` (bridge-side aggregation handed to the SDK's reader as a
 * MetricProducer, so the SDK still owns collection, temporality and serialisation) and
 * `self-metrics.ts` (the bridge's own health).
 */
export class OtelExporter {
  private readonly clients: ClientRegistry<ClientMetrics>;
  private readonly spanExporter: SpoolingSpanExporter;
  private readonly metricExporter: SpoolingMetricExporter;
  private readonly bridgeMeterProvider: MeterProvider;
  private readonly spans: SpanBatcher;
  /** The OTLP encoding of span requests (the warm-up compiles the same path). */
  readonly traceEncoding: 'protobuf' | 'json';

  constructor(
    private readonly opts: ExportOptions,
    private readonly stats: Stats,
    private readonly log: Logger,
  ) {
    // Batches → spool (accepts at once, bounded) → OTLP, oldest first, retried (spool.ts).
    const metricsSpoolBytes = Math.floor(opts.spoolMaxBytes / 8);
    const spoolDir = (signal: string) => (opts.spoolDir ? join(opts.spoolDir, signal) : undefined);
    this.traceEncoding = encodingOf(opts.otel.traces);
    this.spanExporter = new SpoolingSpanExporter(
      { target: opts.otel.traces, maxBytes: opts.spoolMaxBytes - metricsSpoolBytes, dir: spoolDir('traces') },
      stats,
      log,
    );
    this.metricExporter = new SpoolingMetricExporter(
      { target: opts.otel.metrics, maxBytes: metricsSpoolBytes, dir: spoolDir('metrics') },
      stats,
      log,
      opts.otel.temporality,
    );
    const scope = { name: 'aws-csm-bridge', version: opts.version };
    this.spans = new SpanBatcher(
      { encoding: this.traceEncoding, scope, maxBatchSpans: opts.exportBatchSize, delayMs: opts.exportDelayMs },
      this.spanExporter,
    );
    this.clients = new ClientRegistry<ClientMetrics>(
      {
        maxClients: opts.maxClients,
        defaultServiceName: opts.defaultServiceName,
        ...(opts.serviceNamespace ? { serviceNamespace: opts.serviceNamespace } : {}),
        // The merge order keeps telemetry.sdk.* and lets OTEL_RESOURCE_ATTRIBUTES add to every resource (§3.1).
        baseResource: defaultResource().merge(resourceFromAttributes(opts.otel.resourceAttributes)),
        createMetrics: (resource) => this.createMetrics(resource),
      },
      stats.clients,
    );
    this.bridgeMeterProvider = new MeterProvider({ resource: bridgeResource(opts.version, opts.otel), readers: [this.reader()] });
    registerSelfMetrics(this.bridgeMeterProvider.getMeter('aws-csm-bridge', opts.version), stats);
  }

  /** Encodes one translated call's spans into the current batch and aggregates its metric points. */
  write(t: Translation, identity?: ProcessIdentity): void {
    const client = this.clients.get(t.clientId, identity);
    this.stats.spans.created += this.spans.add(client.resource, t.span);
    client.metrics.aggregator.record(t.metrics);
  }

  private createMetrics(resource: Resource): ClientMetrics {
    const aggregator = new MetricAggregator({
      instruments: METRIC_INSTRUMENTS,
      scope: { name: 'aws-csm-bridge', version: this.opts.version },
      temporality: (kind) => this.metricExporter.selectAggregationTemporality(kind),
      cardinalityLimit: METRIC_CARDINALITY_LIMIT,
      // The SDK admits 499 new series per interval under cumulative temporality, so churn grows
      // memory without end; the specification's rule (first 500 series ever) keeps it bounded.
      cumulativeOverflow: 'bounded',
      onOverflow: (n) => (this.stats.metricPoints.overflowed += n),
    });
    return { meterProvider: new MeterProvider({ resource, readers: [this.reader([aggregator])] }), aggregator };
  }

  private reader(metricProducers: MetricProducer[] = []): PeriodicExportingMetricReader {
    return new PeriodicExportingMetricReader({
      exporter: this.metricExporter,
      metricProducers,
      exportIntervalMillis: this.opts.metricsIntervalMs,
      exportTimeoutMillis: Math.min(30_000, this.opts.metricsIntervalMs),
      // Only the bridge's self-metrics use SDK instruments; the aggregators cap their own series (§2.2).
      cardinalityLimits: { default: METRIC_CARDINALITY_LIMIT },
    } as ConstructorParameters<typeof PeriodicExportingMetricReader>[0]);
  }

  private meterProviders(): MeterProvider[] {
    return [...this.clients.metrics().map((m) => m.meterProvider), this.bridgeMeterProvider];
  }

  /** The current span batch and a metric collection go to the spools now. */
  async flush(): Promise<void> {
    this.spans.flush();
    await Promise.all(this.meterProviders().map((p) => p.forceFlush().catch((e: Error) => this.log.warn('flush failed', { error: e.message }))));
  }

  /**
   * Puts the span batch and a last metric collection in the spools, sends what the spools hold
   * until `deadlineAt` (epoch ms), then says what could not be delivered: a disk spool keeps it
   * for the next start, a memory spool loses it.
   */
  async shutdown(deadlineAt = Date.now() + 10_000): Promise<void> {
    this.spans.flush();
    await Promise.all(this.meterProviders().map((p) => p.shutdown().catch((e: Error) => this.log.warn('shutdown failed', { error: e.message }))));
    await Promise.all([this.spanExporter.drain(deadlineAt), this.metricExporter.drain(deadlineAt)]);
    // A request still in flight is abandoned at the deadline (a disk spool sends it again next time).
    const [spans, metrics] = await Promise.all([this.spanExporter.close(deadlineAt), this.metricExporter.close(deadlineAt)]);
    logUndelivered(this.log, spans, metrics, this.stats, this.opts.spoolDir);
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
