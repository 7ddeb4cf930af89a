import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { defaultResource, detectResources, envDetector, resourceFromAttributes, type Resource } from '@opentelemetry/resources';
import { MeterProvider, PeriodicExportingMetricReader, type MetricProducer } from '@opentelemetry/sdk-metrics';
import { join } from 'node:path';
import { SpoolingMetricExporter, SpoolingSpanExporter } from './spooling-exporter.js';
import { MetricAggregator } from './metric-aggregator.js';
import { prepareResource, TraceBatch, type PreparedResource } from './trace-batch.js';
import { METRIC_INSTRUMENTS } from '../translate/translate.js';
import type { Translation } from '../translate/types.js';
import type { ProcessIdentity } from '../identity/resolver.js';
import type { Logger } from '../log.js';
import type { Stats } from '../stats.js';

export interface ExportOptions {
  /** Base URL; when absent the exporters read the standard OTEL_EXPORTER_OTLP_* variables. */
  otlpEndpoint?: string;
  otlpProtocol: 'http/protobuf' | 'http/json';
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

/** service.name shared by every ClientId beyond `maxClients`. */
export const OVERFLOW_SERVICE_NAME = 'aws-csm:other';
/** Metric series per instrument and ClientId (otel-mapping.md §2.2); beyond it, the overflow series. */
const METRIC_CARDINALITY_LIMIT = 500;
/** The longest string attribute value exported (the SDK's spanLimits.attributeValueLengthLimit we used). */
const ATTRIBUTE_VALUE_LENGTH_LIMIT = 1024;

/** One ClientId's metrics: its resource (MeterProvider) and the bridge-side aggregates the reader collects. */
interface ClientMetrics {
  meterProvider: MeterProvider;
  aggregator: MetricAggregator;
}

interface Client {
  /** The sending process (processIdentity), part of the resource and of the client's key. */
  identity?: ProcessIdentity;
  /** The span resource, encoded once. */
  resource: PreparedResource;
  metrics: ClientMetrics;
}

/**
 * Export stage. Every ClientId is its own service (otel-mapping.md §3.3,
 * option 1): spans and metrics carry a resource per ClientId, so each
 * monitored client shows up as a service in Jaeger/Tempo/Honeycomb.
 *
 * Spans skip the SDK's Span objects: the SDK path cost 20-30 CPU µs per span
 * (bench/, BENCHMARKS.md), beyond the budget of 100k datagrams/s on one core.
 * A TraceBatch encodes each call's span tree into OTLP at once; full or
 * exportDelayMs old, the batch becomes one request body in the export spool.
 * Metrics are aggregated here too (MetricAggregator, one hash lookup per
 * point) and handed to the SDK's MeterProvider/PeriodicExportingMetricReader
 * as a MetricProducer, so the SDK still owns collection, temporality and
 * serialisation.
 *
 * The number of clients is capped by `maxClients`; the rest share one
 * "aws-csm:other" client. With processIdentity a client is a (ClientId,
 * sending process) pair with its own span resource; its metrics stay with its
 * ClientId. Clients of processes that have exited make room at the cap.
 */
export class OtelExporter {
  private readonly clients = new Map<string, Client>();
  private lastEvictCheck = -Infinity;
  private readonly baseResource: Resource;
  private readonly spanExporter: SpoolingSpanExporter;
  private readonly metricExporter: SpoolingMetricExporter;
  private readonly bridgeMeterProvider: MeterProvider;
  private readonly batch: TraceBatch;
  private batchTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly opts: ExportOptions,
    private readonly stats: Stats,
    private readonly log: Logger,
    env: NodeJS.ProcessEnv = process.env,
  ) {
    // The merge order keeps telemetry.sdk.* and lets OTEL_RESOURCE_ATTRIBUTES add to every resource (§3.1).
    this.baseResource = defaultResource().merge(detectResources({ detectors: [envDetector] }));
    const traceProtocol = env['OTEL_EXPORTER_OTLP_TRACES_PROTOCOL'] ?? opts.otlpProtocol;
    const metricProtocol = env['OTEL_EXPORTER_OTLP_METRICS_PROTOCOL'] ?? opts.otlpProtocol;
    const url = (signal: string) => (opts.otlpEndpoint ? { url: `${opts.otlpEndpoint.replace(/\/+$/, '')}/v1/${signal}` } : {});
    // Batches → spool (accepts at once, bounded) → OTLP/HTTP, oldest first, retried (spool.ts).
    const metricsSpoolBytes = Math.floor(opts.spoolMaxBytes / 8);
    const spoolDir = (signal: string) => (opts.spoolDir ? join(opts.spoolDir, signal) : undefined);
    const traceEncoding = traceProtocol === 'http/json' ? 'json' : 'protobuf';
    this.spanExporter = new SpoolingSpanExporter(
      {
        encoding: traceEncoding,
        url: url('traces').url,
        maxBytes: opts.spoolMaxBytes - metricsSpoolBytes,
        dir: spoolDir('traces'),
      },
      stats,
      log,
    );
    this.metricExporter = new SpoolingMetricExporter(
      {
        encoding: metricProtocol === 'http/json' ? 'json' : 'protobuf',
        url: url('metrics').url,
        maxBytes: metricsSpoolBytes,
        dir: spoolDir('metrics'),
      },
      stats,
      log,
      env,
    );
    this.batch = new TraceBatch({
      encoding: traceEncoding,
      scope: { name: 'aws-csm-bridge', version: opts.version },
      attributeValueLengthLimit: ATTRIBUTE_VALUE_LENGTH_LIMIT,
    });
    this.bridgeMeterProvider = this.createBridgeMeterProvider();
  }

  /** Encodes one translated call's spans into the current batch and aggregates its metric points. */
  write(t: Translation, identity?: ProcessIdentity): void {
    const client = this.client(t.clientId, identity);
    this.stats.spans.created += this.batch.add(client.resource, t.span);
    client.metrics.aggregator.record(t.metrics);
    if (this.batch.spans >= this.opts.exportBatchSize) this.flushBatch();
    else if (this.batchTimer === undefined) {
      this.batchTimer = setTimeout(() => this.flushBatch(), this.opts.exportDelayMs);
      this.batchTimer.unref();
    }
  }

  /** The current batch becomes one request in the spool. */
  private flushBatch(): void {
    clearTimeout(this.batchTimer);
    this.batchTimer = undefined;
    const spans = this.batch.spans;
    const body = this.batch.take();
    if (body) this.spanExporter.push(body, spans);
  }

  /** One client per (ClientId, sending process); resources are immutable per client. */
  private client(clientId: string, identity?: ProcessIdentity): Client {
    const name = clientId === '' ? this.opts.defaultServiceName : clientId;
    const key = identity ? `${name}\u0000${identity.key}` : name;
    const existing = this.clients.get(key);
    if (existing) return existing;
    // A process's client records its metrics in its ClientId's own client, which must exist too.
    const needed = identity && !this.clients.has(name) ? 2 : 1;
    const full = () => this.clients.size - (this.clients.has(OVERFLOW_SERVICE_NAME) ? 1 : 0) + needed > this.opts.maxClients;
    if (full() && (!this.evictExited() || full())) {
      this.stats.clients.overflowed++;
      const other = this.clients.get(OVERFLOW_SERVICE_NAME);
      if (other) return other;
      return this.addClient(OVERFLOW_SERVICE_NAME, OVERFLOW_SERVICE_NAME);
    }
    return this.addClient(key, name, identity);
  }

  /**
   * At the cap: forgets the clients of processes that have exited, e.g. one per
   * `aws` CLI command (spans already in the batch keep their resource).
   * Checked at most once a second.
   */
  private evictExited(): boolean {
    const now = Date.now();
    if (now - this.lastEvictCheck < 1_000) return false;
    this.lastEvictCheck = now;
    let evicted = 0;
    for (const [key, c] of this.clients) {
      if (!c.identity || c.identity.alive()) continue;
      // Its metrics live in its ClientId's client, which stays.
      this.clients.delete(key);
      evicted++;
    }
    this.stats.clients.evicted += evicted;
    this.stats.clients.active = this.clients.size;
    return evicted > 0;
  }

  /**
   * With an identity, the client gets its own span resource (spans carry the
   * process) but shares the metrics of its ClientId's client: metric series
   * stay per service instead of multiplying per process (one per `aws` CLI
   * command) or colliding in Prometheus (same job, no instance).
   */
  private addClient(key: string, serviceName: string, identity?: ProcessIdentity): Client {
    const resource = this.baseResource.merge(
      resourceFromAttributes({
        'service.name': serviceName,
        ...(this.opts.serviceNamespace ? { 'service.namespace': this.opts.serviceNamespace } : {}),
        ...identity?.attributes,
      }),
    );
    const metrics = identity ? (this.clients.get(serviceName) ?? this.addClient(serviceName, serviceName)).metrics : this.createMetrics(resource);
    const client: Client = {
      ...(identity ? { identity } : {}),
      resource: prepareResource(resource.attributes as Record<string, string | number | boolean>, resource.schemaUrl),
      metrics,
    };
    this.clients.set(key, client);
    this.stats.clients.active = this.clients.size;
    return client;
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

  /** Self-metrics (otel-mapping.md §2.4) under the bridge's own resource. */
  private createBridgeMeterProvider(): MeterProvider {
    const resource = defaultResource()
      .merge(
        resourceFromAttributes({
          'service.name': 'aws-csm-bridge',
          'service.version': this.opts.version,
          'service.instance.id': randomUUID(),
          'host.name': hostname(),
          'process.pid': process.pid,
        }),
      )
      // OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES override the defaults above.
      .merge(detectResources({ detectors: [envDetector] }));
    const provider = new MeterProvider({ resource, readers: [this.reader()] });
    const meter = provider.getMeter('aws-csm-bridge', this.opts.version);
    const s = this.stats;
    meter
      .createObservableCounter('csm.bridge.datagrams', { unit: '{datagram}', description: 'CSM datagrams received, by outcome.' })
      .addCallback((r) => {
        r.observe(s.datagrams.accepted, { 'csm.outcome': 'accepted' });
        for (const [reason, n] of Object.entries(s.datagrams.rejected)) r.observe(n, { 'csm.outcome': reason });
        for (const [reason, n] of Object.entries(s.datagrams.dropped)) r.observe(n, { 'csm.outcome': reason });
        r.observe(s.datagrams.kernelDropped, { 'csm.outcome': 'kernel_dropped' });
      });
    meter
      .createObservableCounter('csm.bridge.memory.shed', { unit: '{item}', description: 'Pending attempts and calls exported early because RSS was above memoryCeilingMb.' })
      .addCallback((r) => {
        r.observe(s.memory.shedAttempts, { 'csm.kind': 'attempt' });
        r.observe(s.memory.shedCalls, { 'csm.kind': 'call' });
      });
    meter
      .createObservableGauge('csm.bridge.memory.rss', { unit: 'By', description: 'Resident set size of the bridge at the last memory check.' })
      .addCallback((r) => r.observe(s.memory.rssBytes));
    meter
      .createObservableCounter('csm.bridge.clients.overflowed', { unit: '{call}', description: 'Calls folded into service "aws-csm:other" because maxClients was reached.' })
      .addCallback((r) => r.observe(s.clients.overflowed));
    meter
      .createObservableCounter('csm.bridge.metric_points.overflowed', {
        unit: '{point}',
        description: 'Metric points folded into the otel.metric.overflow series because an instrument reached 500 series for a ClientId.',
      })
      .addCallback((r) => r.observe(s.metricPoints.overflowed));
    meter
      .createObservableCounter('csm.bridge.attempts.unmatched', { unit: '{attempt}', description: 'Attempts exported without their ApiCall.' })
      .addCallback((r) => {
        for (const [reason, n] of Object.entries(s.correlation.orphaned)) r.observe(n, { 'csm.reason': reason });
      });
    meter
      .createObservableCounter('csm.bridge.attempts.missing', { unit: '{attempt}', description: 'Attempts an ApiCall counted that never arrived.' })
      .addCallback((r) => r.observe(s.correlation.missingAttempts));
    meter
      .createObservableUpDownCounter('csm.bridge.pending_attempts', { unit: '{attempt}', description: 'Attempts waiting for their ApiCall.' })
      .addCallback((r) => r.observe(s.correlation.pendingAttempts));
    meter
      .createObservableCounter('csm.bridge.spans', { unit: '{span}', description: 'Spans by export outcome.' })
      .addCallback((r) => {
        r.observe(s.spans.exported, { 'csm.outcome': 'exported' });
        r.observe(s.spans.failed, { 'csm.outcome': 'failed' });
        r.observe(s.spans.dropped, { 'csm.outcome': 'dropped' });
      });
    meter
      .createObservableUpDownCounter('csm.bridge.spool.queued', { unit: '{item}', description: 'Spans and metric export requests waiting in the export spool.' })
      .addCallback((r) => {
        r.observe(s.spool.queuedSpans, { 'csm.signal': 'traces' });
        r.observe(s.spool.queuedMetricExports, { 'csm.signal': 'metrics' });
      });
    meter
      .createObservableUpDownCounter('csm.bridge.spool.size', { unit: 'By', description: 'Serialized bytes waiting in the export spool.' })
      .addCallback((r) => r.observe(s.spool.queuedBytes));
    meter
      .createObservableCounter('csm.bridge.spool.dropped', { unit: '{item}', description: 'Dropped oldest-first because the export spool was full.' })
      .addCallback((r) => {
        r.observe(s.spool.droppedSpans, { 'csm.signal': 'traces' });
        r.observe(s.spool.droppedMetricExports, { 'csm.signal': 'metrics' });
      });
    return provider;
  }

  private meterProviders(): MeterProvider[] {
    // A ClientId's clients share its MeterProvider: each once.
    return [...new Set([...this.clients.values()].map((c) => c.metrics.meterProvider)), this.bridgeMeterProvider];
  }

  /** The current span batch and a metric collection go to the spools now. */
  async flush(): Promise<void> {
    this.flushBatch();
    await Promise.all(this.meterProviders().map((p) => p.forceFlush().catch((e: Error) => this.log.warn('flush failed', { error: e.message }))));
  }

  /**
   * Puts the span batch and a last metric collection in the spools, sends what the spools hold
   * until `deadlineAt` (epoch ms), then says what could not be delivered: a disk spool keeps it
   * for the next start, a memory spool loses it.
   */
  async shutdown(deadlineAt = Date.now() + 10_000): Promise<void> {
    this.flushBatch();
    await Promise.all(this.meterProviders().map((p) => p.shutdown().catch((e: Error) => this.log.warn('shutdown failed', { error: e.message }))));
    await Promise.all([this.spanExporter.drain(deadlineAt), this.metricExporter.drain(deadlineAt)]);
    const spans = this.spanExporter.queued;
    const metrics = this.metricExporter.queued;
    if (spans.items + metrics.items > 0) {
      const fields = {
        spans: spans.items,
        metricExports: metrics.items,
        bytes: spans.bytes + metrics.bytes,
        ...(this.opts.spoolDir ? { spoolDir: this.opts.spoolDir } : {}),
      };
      if (spans.keptOnDisk) this.log.warn('OTLP endpoint unavailable at shutdown: undelivered data kept in the spool directory for the next start', fields);
      else this.log.error('OTLP endpoint unavailable at shutdown: undelivered data is lost (no spoolDir)', fields);
    }
    // A request still in flight is abandoned at the deadline (a disk spool sends it again next time).
    await Promise.all([this.spanExporter.close(deadlineAt), this.metricExporter.close(deadlineAt)]);
  }
}
