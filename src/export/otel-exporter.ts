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
import { millisToHrTime } from '@opentelemetry/core';
import { defaultResource, detectResources, envDetector, resourceFromAttributes, type Resource } from '@opentelemetry/resources';
import { MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import { BatchSpanProcessor, NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { join } from 'node:path';
import { SpoolingMetricExporter, SpoolingSpanExporter } from './spooling-exporter.js';
import { METRIC_INSTRUMENTS } from '../translate/translate.js';
import type { SpanRecord, Translation } from '../translate/types.js';
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
  exportQueueSize: number;
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

interface Client {
  /** The sending process (processIdentity), part of the resource and of the client's key. */
  identity?: ProcessIdentity;
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
 * With processIdentity a client is a (ClientId, sending process) pair; only
 * providers of processes that have exited are ever closed early.
 */
export class OtelExporter {
  private readonly clients = new Map<string, Client>();
  /** Providers of exited processes being closed (awaited by shutdown). */
  private readonly closing = new Set<Promise<void>>();
  private lastEvictCheck = -Infinity;
  private readonly baseResource: Resource;
  private readonly spanExporter: SpoolingSpanExporter;
  private readonly metricExporter: SpoolingMetricExporter;
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
    // BSP / metric reader → spool (accepts at once, bounded) → OTLP/HTTP, oldest first, retried (spool.ts).
    const metricsSpoolBytes = Math.floor(opts.spoolMaxBytes / 8);
    const spoolDir = (signal: string) => (opts.spoolDir ? join(opts.spoolDir, signal) : undefined);
    this.spanExporter = new SpoolingSpanExporter(
      {
        encoding: traceProtocol === 'http/json' ? 'json' : 'protobuf',
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
    this.selfObs = droppedSpanCounter(stats);
    this.bridgeMeterProvider = this.createBridgeMeterProvider(env);
  }

  /** Hands one translated call to the SDK: spans with explicit times and parents, metric points. */
  write(t: Translation, identity?: ProcessIdentity): void {
    const client = this.client(t.clientId, identity);
    const root = client.tracer.startSpan(
      t.span.name,
      { kind: kindOf(t.span), startTime: hr(t.span.startMs), attributes: t.span.attributes },
      ROOT_CONTEXT,
    );
    const parentContext = trace.setSpan(ROOT_CONTEXT, root);
    for (const child of t.span.children) {
      const span = client.tracer.startSpan(child.name, { kind: kindOf(child), startTime: hr(child.startMs), attributes: child.attributes }, parentContext);
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

  /** One provider pair per (ClientId, sending process); resources are immutable per provider. */
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
   * At the cap: closes (flush, then shutdown) the providers of processes that
   * have exited, e.g. one per `aws` CLI command. Checked at most once a second.
   */
  private evictExited(): boolean {
    const now = Date.now();
    if (now - this.lastEvictCheck < 1_000) return false;
    this.lastEvictCheck = now;
    let evicted = 0;
    for (const [key, c] of this.clients) {
      if (!c.identity || c.identity.alive()) continue;
      this.clients.delete(key);
      evicted++;
      // Its metrics live in its ClientId's client, which stays.
      const closing = c.tracerProvider.shutdown().then(
        () => {},
        (e: Error) => this.log.warn('closing the provider of an exited process failed', { error: e.message }),
      );
      this.closing.add(closing);
      void closing.finally(() => this.closing.delete(closing));
    }
    this.stats.clients.evicted += evicted;
    this.stats.clients.active = this.clients.size;
    return evicted > 0;
  }

  /**
   * With an identity, the client gets its own TracerProvider (spans carry the
   * process) but shares the MeterProvider of its ClientId's client: metric
   * series stay per service instead of multiplying per process (one per
   * `aws` CLI command) or colliding in Prometheus (same job, no instance).
   */
  private addClient(key: string, serviceName: string, identity?: ProcessIdentity): Client {
    const resource = this.baseResource.merge(
      resourceFromAttributes({
        'service.name': serviceName,
        ...(this.opts.serviceNamespace ? { 'service.namespace': this.opts.serviceNamespace } : {}),
        ...identity?.attributes,
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
    const metricsOf = identity ? (this.clients.get(serviceName) ?? this.addClient(serviceName, serviceName)) : undefined;
    const meterProvider = metricsOf?.meterProvider ?? new MeterProvider({ resource, readers: [this.reader()] });
    const client: Client = {
      ...(identity ? { identity } : {}),
      tracerProvider,
      meterProvider,
      tracer: tracerProvider.getTracer('aws-csm-bridge', this.opts.version),
      instruments: metricsOf?.instruments ?? createInstruments(meterProvider.getMeter('aws-csm-bridge', this.opts.version)),
    };
    this.clients.set(key, client);
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

  private providers(): { forceFlush(): Promise<void>; shutdown(): Promise<void> }[] {
    // A MeterProvider is shared by a ClientId's clients: each once.
    return [...new Set([...this.clients.values()].flatMap((c) => [c.tracerProvider, c.meterProvider])), this.bridgeMeterProvider];
  }

  async flush(): Promise<void> {
    await Promise.all(this.providers().map((p) => p.forceFlush().catch((e: Error) => this.log.warn('flush failed', { error: e.message }))));
  }

  /** Flushes and stops every provider, then the shared exporters. */
  /**
   * Flushes and stops every provider (their batches go to the spools at once), sends what the
   * spools hold until `deadlineAt` (epoch ms), then says what could not be delivered: a disk
   * spool keeps it for the next start, a memory spool loses it.
   */
  async shutdown(deadlineAt = Date.now() + 10_000): Promise<void> {
    await Promise.all(this.providers().map((p) => p.shutdown().catch((e: Error) => this.log.warn('shutdown failed', { error: e.message }))));
    await Promise.all(this.closing);
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

/**
 * Epoch ms as HrTime. A plain number is not safe: the SDK reads a number below
 * performance.now() (or half of timeOrigin, depending on the API) as a relative
 * performance time, so an event stamped near 1970 (a broken SDK clock) would be
 * moved to "now", and a span straddling the threshold would end before it starts.
 */
function hr(ms: number): [number, number] {
  return millisToHrTime(ms);
}

function kindOf(s: SpanRecord): SpanKind {
  return s.kind === 'internal' ? SpanKind.INTERNAL : SpanKind.CLIENT;
}

function finish(span: ReturnType<Tracer['startSpan']>, rec: SpanRecord): void {
  for (const e of rec.events) span.addEvent(e.name, e.attributes, hr(e.timeMs));
  if (rec.status.code === 'error') {
    span.setStatus(rec.status.message ? { code: SpanStatusCode.ERROR, message: rec.status.message } : { code: SpanStatusCode.ERROR });
  }
  span.end(hr(rec.endMs));
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
