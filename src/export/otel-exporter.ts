import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import {
  createNoopMeter,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Counter,
  type Histogram,
  type Meter,
  type MeterProvider as ApiMeterProvider,
  type Tracer,
} from '@opentelemetry/api';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { OTLPMetricExporter as OTLPMetricExporterJson } from '@opentelemetry/exporter-metrics-otlp-http';
import { OTLPMetricExporter as OTLPMetricExporterProto } from '@opentelemetry/exporter-metrics-otlp-proto';
import { OTLPTraceExporter as OTLPTraceExporterJson } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as OTLPTraceExporterProto } from '@opentelemetry/exporter-trace-otlp-proto';
import { defaultResource, detectResources, envDetector, resourceFromAttributes, type Resource } from '@opentelemetry/resources';
import {
  AggregationTemporality,
  MeterProvider,
  PeriodicExportingMetricReader,
  type PushMetricExporter,
  type ResourceMetrics,
} from '@opentelemetry/sdk-metrics';
import { BatchSpanProcessor, NodeTracerProvider, type ReadableSpan, type SpanExporter } from '@opentelemetry/sdk-trace-node';
import { METRIC_INSTRUMENTS } from '../translate/translate.js';
import type { SpanRecord, Translation } from '../translate/types.js';
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
  exportQueueSize: number;
  exportBatchSize: number;
  metricsIntervalMs: number;
  version: string;
}

/** service.name shared by every ClientId beyond `maxClients`. */
export const OVERFLOW_SERVICE_NAME = 'aws-csm:other';

interface Client {
  tracerProvider: NodeTracerProvider;
  meterProvider: MeterProvider;
  tracer: Tracer;
  instruments: Map<string, Histogram | Counter>;
}

/**
 * Export stage. Design choice (otel-mapping.md §3.3, option 1): one
 * TracerProvider + MeterProvider per ClientId, each with its own resource,
 * so every monitored client is its own service in Jaeger/Tempo/Honeycomb
 * with only the SDK's public API, and its metrics carry the same resource.
 * Providers share one span exporter and one metric exporter (one HTTP
 * agent). The number of providers is capped by `maxClients`; the rest share
 * one "aws-csm:other" client, so no eviction churn and bounded memory.
 */
export class OtelExporter {
  private readonly clients = new Map<string, Client>();
  private readonly baseResource: Resource;
  private readonly spanExporter: CountingSpanExporter;
  private readonly metricExporter: CountingMetricExporter;
  private readonly bridgeMeterProvider: MeterProvider;
  /** Counts spans the batch processors drop when their queue is full. */
  private readonly selfObs: ApiMeterProvider;

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
    this.spanExporter = new CountingSpanExporter(
      traceProtocol === 'http/json' ? new OTLPTraceExporterJson(url('traces')) : new OTLPTraceExporterProto(url('traces')),
      stats,
      log,
    );
    this.metricExporter = new CountingMetricExporter(
      metricProtocol === 'http/json' ? new OTLPMetricExporterJson(url('metrics')) : new OTLPMetricExporterProto(url('metrics')),
      stats,
      log,
    );
    this.selfObs = droppedSpanCounter(stats);
    this.bridgeMeterProvider = this.createBridgeMeterProvider(env);
  }

  /** Hands one translated call to the SDK: spans with explicit times and parents, metric points. */
  write(t: Translation): void {
    const client = this.client(t.clientId);
    const root = client.tracer.startSpan(
      t.span.name,
      { kind: kindOf(t.span), startTime: t.span.startMs, attributes: t.span.attributes },
      ROOT_CONTEXT,
    );
    const parentContext = trace.setSpan(ROOT_CONTEXT, root);
    for (const child of t.span.children) {
      const span = client.tracer.startSpan(child.name, { kind: kindOf(child), startTime: child.startMs, attributes: child.attributes }, parentContext);
      finish(span, child);
    }
    finish(root, t.span);
    this.stats.spans.created += 1 + t.span.children.length;
    for (const p of t.metrics) {
      const inst = client.instruments.get(p.instrument);
      if (!inst) continue;
      if ('record' in inst) inst.record(p.value, p.attributes);
      else inst.add(p.value, p.attributes);
    }
  }

  private client(clientId: string): Client {
    const name = clientId === '' ? this.opts.defaultServiceName : clientId;
    const existing = this.clients.get(name);
    if (existing) return existing;
    if (this.clients.size >= this.opts.maxClients) {
      this.stats.clients.overflowed++;
      const other = this.clients.get(OVERFLOW_SERVICE_NAME);
      if (other) return other;
      return this.addClient(OVERFLOW_SERVICE_NAME);
    }
    return this.addClient(name);
  }

  private addClient(serviceName: string): Client {
    const resource = this.baseResource.merge(
      resourceFromAttributes({
        'service.name': serviceName,
        ...(this.opts.serviceNamespace ? { 'service.namespace': this.opts.serviceNamespace } : {}),
      }),
    );
    const tracerProvider = new NodeTracerProvider({
      resource,
      spanLimits: { attributeValueLengthLimit: 1024 },
      spanProcessors: [
        new BatchSpanProcessor(this.spanExporter, {
          maxQueueSize: this.opts.exportQueueSize,
          maxExportBatchSize: Math.min(this.opts.exportBatchSize, this.opts.exportQueueSize),
          scheduledDelayMillis: this.opts.exportDelayMs,
          selfObsMeterProvider: this.selfObs,
        } as ConstructorParameters<typeof BatchSpanProcessor>[1]),
      ],
    });
    const meterProvider = new MeterProvider({
      resource,
      readers: [this.reader()],
    });
    const meter = meterProvider.getMeter('aws-csm-bridge', this.opts.version);
    const client: Client = {
      tracerProvider,
      meterProvider,
      tracer: tracerProvider.getTracer('aws-csm-bridge', this.opts.version),
      instruments: createInstruments(meter),
    };
    this.clients.set(serviceName, client);
    this.stats.clients.active = this.clients.size;
    return client;
  }

  private reader(): PeriodicExportingMetricReader {
    return new PeriodicExportingMetricReader({
      exporter: this.metricExporter,
      exportIntervalMillis: this.opts.metricsIntervalMs,
      exportTimeoutMillis: Math.min(30_000, this.opts.metricsIntervalMs),
      // Guard against a flood of distinct label values (§2.2).
      cardinalityLimits: { default: 500 },
    } as ConstructorParameters<typeof PeriodicExportingMetricReader>[0]);
  }

  /** Self-metrics (otel-mapping.md §2.4) under the bridge's own resource. */
  private createBridgeMeterProvider(env: NodeJS.ProcessEnv): MeterProvider {
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
    void env;
    const provider = new MeterProvider({ resource, readers: [this.reader()] });
    const meter = provider.getMeter('aws-csm-bridge', this.opts.version);
    const s = this.stats;
    meter
      .createObservableCounter('csm.bridge.datagrams', { unit: '{datagram}', description: 'CSM datagrams received, by outcome.' })
      .addCallback((r) => {
        r.observe(s.datagrams.accepted, { 'csm.outcome': 'accepted' });
        for (const [reason, n] of Object.entries(s.datagrams.rejected)) r.observe(n, { 'csm.outcome': reason });
      });
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
    return provider;
  }

  private providers(): { forceFlush(): Promise<void>; shutdown(): Promise<void> }[] {
    return [...[...this.clients.values()].flatMap((c) => [c.tracerProvider, c.meterProvider]), this.bridgeMeterProvider];
  }

  async flush(): Promise<void> {
    await Promise.all(this.providers().map((p) => p.forceFlush().catch((e: Error) => this.log.warn('flush failed', { error: e.message }))));
  }

  /** Flushes and stops every provider, then the shared exporters. */
  async shutdown(): Promise<void> {
    await Promise.all(this.providers().map((p) => p.shutdown().catch((e: Error) => this.log.warn('shutdown failed', { error: e.message }))));
    await this.spanExporter.close();
    await this.metricExporter.close();
  }
}

function kindOf(s: SpanRecord): SpanKind {
  return s.kind === 'internal' ? SpanKind.INTERNAL : SpanKind.CLIENT;
}

function finish(span: ReturnType<Tracer['startSpan']>, rec: SpanRecord): void {
  for (const e of rec.events) span.addEvent(e.name, e.attributes, e.timeMs);
  if (rec.status.code === 'error') {
    span.setStatus(rec.status.message ? { code: SpanStatusCode.ERROR, message: rec.status.message } : { code: SpanStatusCode.ERROR });
  }
  span.end(rec.endMs);
}

function createInstruments(meter: Meter): Map<string, Histogram | Counter> {
  const m = new Map<string, Histogram | Counter>();
  for (const i of METRIC_INSTRUMENTS) {
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
  return m;
}

/** A MeterProvider for the batch processors' self-observability that only counts queue_full drops. */
function droppedSpanCounter(stats: Stats): ApiMeterProvider {
  const noop = createNoopMeter();
  const meter: Meter = Object.assign(Object.create(noop) as Meter, {
    createCounter: (name: string, options?: object) =>
      name === 'otel.sdk.processor.span.processed'
        ? {
            add: (n: number, attrs?: Record<string, unknown>) => {
              if (attrs?.['error.type'] === 'queue_full') stats.spans.dropped += n;
            },
          }
        : noop.createCounter(name, options),
  });
  return { getMeter: () => meter };
}

/**
 * Shared by every client's batch processor: counts outcomes, and ignores
 * the per-provider shutdown() calls until the bridge closes it for real.
 */
class CountingSpanExporter implements SpanExporter {
  constructor(
    private readonly inner: SpanExporter,
    private readonly stats: Stats,
    private readonly log: Logger,
  ) {}

  export(spans: ReadableSpan[], done: (r: ExportResult) => void): void {
    this.inner.export(spans, (r) => {
      if (r.code === ExportResultCode.SUCCESS) this.stats.spans.exported += spans.length;
      else {
        this.stats.spans.failed += spans.length;
        this.log.warnLimited('span-export', 'span export failed; these spans are lost', { spans: spans.length, error: r.error?.message });
      }
      done(r);
    });
  }

  shutdown(): Promise<void> {
    return Promise.resolve();
  }

  forceFlush(): Promise<void> {
    return this.inner.forceFlush?.() ?? Promise.resolve();
  }

  close(): Promise<void> {
    return this.inner.shutdown();
  }
}

class CountingMetricExporter implements PushMetricExporter {
  constructor(
    private readonly inner: PushMetricExporter,
    private readonly stats: Stats,
    private readonly log: Logger,
  ) {}

  export(metrics: ResourceMetrics, done: (r: ExportResult) => void): void {
    this.inner.export(metrics, (r) => {
      if (r.code === ExportResultCode.SUCCESS) this.stats.metricExports.succeeded++;
      else {
        this.stats.metricExports.failed++;
        this.log.warnLimited('metric-export', 'metric export failed', { error: r.error?.message });
      }
      done(r);
    });
  }

  selectAggregationTemporality(kind: Parameters<NonNullable<PushMetricExporter['selectAggregationTemporality']>>[0]): AggregationTemporality {
    return this.inner.selectAggregationTemporality?.(kind) ?? AggregationTemporality.CUMULATIVE;
  }

  forceFlush(): Promise<void> {
    return this.inner.forceFlush();
  }

  shutdown(): Promise<void> {
    return Promise.resolve();
  }

  close(): Promise<void> {
    return this.inner.shutdown();
  }
}
