import { defaultResource, resourceFromAttributes } from '@opentelemetry/resources';
import { MeterProvider, type MetricReader, type PushMetricExporter } from '@opentelemetry/sdk-metrics';
import { join } from 'node:path';
import { ClientMetricsFactory, type ClientMetrics } from './client-metrics.js';
import { ClientRegistry } from './clients.js';
import { ConsoleMetricExporter, ConsoleSpanSink, type LineWriter } from './console-exporter.js';
import { MergedClientsProducer, PrometheusEndpoint } from './prometheus-endpoint.js';
import { CallSampler, parseKeepRules } from './sampler.js';
import { bridgeResource, registerSelfMetrics } from './self-metrics.js';
import { SpanBatcher } from './span-batcher.js';
import { prepareResource, type PreparedResource } from './trace-batch.js';
import type { AppResource } from '../join/app-span.js';
import type { JoinedTree } from '../join/joined-tree.js';
import type { SpoolContent } from './spool.js';
import { encodingOf, SpoolingMetricExporter, SpoolingSpanExporter } from './spooling-exporter.js';
import type { Translation } from '../translate/types.js';
import type { ProcessIdentity } from '../identity/resolver.js';
import type { Logger } from '../log.js';
import type { Stats } from '../stats.js';
import type { OtelSettings } from '../config/otel-env.js';
import { formatHostPort } from '../net/address.js';
import { timerGuard } from '../timer-guard.js';

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
  /** --allow-remote-http: the Prometheus endpoint answers any Host name (else loopback names only). */
  allowRemoteHttp?: boolean;
}

/**
 * Export stage: a translated call's metric points go into its client's
 * recorders (every call: metrics are never sampled), then the sampler decides
 * whether its span tree goes into the span batch. The parts, each in its own
 * file: `clients.ts` (which resource), `sampler.ts` (which calls become
 * spans), `span-batcher.ts` (batches → request bodies), `spooling-exporter.ts`
 * + `spool.ts` (bodies wait, bounded, for the OTLP endpoint; `otlp-sender.ts`
 * sends them over HTTP or gRPC), `client-metrics.ts` + `metric-aggregator.ts`
 * (each ClientId's recorders and readers: bridge-side aggregation handed to the
 * SDK's readers as a MetricProducer),
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
  private readonly sampler: CallSampler;
  private readonly prometheus: PrometheusEndpoint | undefined;
  private readonly disabled: boolean;
  /** Applications' resources of joined calls, encoded (weak: they live as long as the join index holds them). */
  private readonly appResources = new WeakMap<AppResource, PreparedResource>();
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
      this.batchers.push(new SpanBatcher({ encoding: this.traceEncoding, scope, maxBatchSpans: opts.exportBatchSize, delayMs: opts.exportDelayMs }, this.spanExporter, timerGuard(stats, log)));
    }
    if (traces.has('console')) {
      this.batchers.push(new SpanBatcher({ encoding: 'json', scope, maxBatchSpans: opts.exportBatchSize, delayMs: opts.exportDelayMs }, new ConsoleSpanSink(write, traces.has('otlp') ? undefined : (n) => (stats.spans.exported += n)), timerGuard(stats, log)));
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
        { allowRemoteHttp: opts.allowRemoteHttp === true, counts: stats.prometheus },
      );
    }
    const pushExporters: PushMetricExporter[] = [];
    if (this.metricExporter) pushExporters.push(this.metricExporter);
    if (this.consoleMetrics) pushExporters.push(this.consoleMetrics);
    const metricsOf = new ClientMetricsFactory(
      {
        pushExporters,
        prometheus: this.prometheus !== undefined,
        exponentialHistograms: otel.histogramAggregation === 'base2_exponential_bucket_histogram',
        intervalMs: opts.metricsIntervalMs,
        maxMetricSeries: opts.maxMetricSeries,
        version: opts.version,
      },
      stats,
    );
    this.clients = new ClientRegistry<ClientMetrics>(
      {
        maxClients: opts.maxClients,
        defaultServiceName: opts.defaultServiceName,
        ...(opts.serviceNamespace ? { serviceNamespace: opts.serviceNamespace } : {}),
        // The merge order keeps telemetry.sdk.* and lets OTEL_RESOURCE_ATTRIBUTES add to every resource (§3.1).
        baseResource: defaultResource().merge(resourceFromAttributes(otel.resourceAttributes)),
        createMetrics: (resource) => metricsOf.create(resource),
      },
      stats.clients,
    );
    // The bridge's own health goes wherever metrics go; the scrape endpoint reads from this provider.
    const readers: MetricReader[] = metricsOf.pushReaders();
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
    this.writeJoined(t, identity, undefined);
  }

  /** A call joined to an application's span (join/join-stage.ts): its spans go inside the app's trace; metrics as always. */
  writeJoined(t: Translation, identity: ProcessIdentity | undefined, joined: JoinedTree | undefined): void {
    const clients = this.clients;
    if (clients === undefined) return; // OTEL_SDK_DISABLED
    const client = clients.get(t.clientId, identity);
    const recorders = client.metrics.recorders;
    for (let i = 0; i < recorders.length; i++) recorders[i]!.record(t.metrics);
    const batchers = this.batchers;
    if (batchers.length === 0) return; // metrics only: no span is encoded
    const s = this.stats.sampling;
    if (joined !== undefined) {
      // Inside the app's trace, under its resource: the app sampled it (its span arrived), so it is kept.
      s.kept++;
      s.keptBy.joined++;
      const resource = this.appResource(joined.app.resource);
      let n = 0;
      for (let i = 0; i < batchers.length; i++) n = batchers[i]!.addUnder(resource, joined.parent, joined.spans);
      this.stats.spans.created += n;
      return;
    }
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

  /** Sets what waits now (spans.queued, metricExports.queued): the spools, and the span batch being filled (each batcher holds the same spans). */
  countQueued(): void {
    this.stats.spans.queued = this.stats.spool.queuedSpans + (this.batchers[0]?.pendingSpans ?? 0);
    this.stats.metricExports.queued = this.stats.spool.queuedMetricExports;
  }

  /** An application's resource, encoded once per (interned) resource the join index holds. */
  private appResource(r: AppResource): PreparedResource {
    let p = this.appResources.get(r);
    if (p === undefined) {
      p = prepareResource(r.attributes, r.schemaUrl);
      this.appResources.set(r, p);
    }
    return p;
  }

  private meterProviders(): MeterProvider[] {
    const clientProviders = (this.clients?.metrics() ?? []).flatMap((m) => m.providers);
    return [...clientProviders, ...(this.bridgeMeterProvider ? [this.bridgeMeterProvider] : [])];
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
    // Never throws: a step that fails is logged and the next still runs, so what is kept and lost is always said.
    const step = async <T>(what: string, run: () => T | Promise<T>, otherwise: T): Promise<T> => {
      try {
        return await run();
      } catch (e) {
        this.stats.internalErrors++;
        this.log.error(`export shutdown: ${what} failed`, { error: (e as Error).message });
        return otherwise;
      }
    };
    await step('span batch', () => this.batchers.forEach((b) => b.flush()), undefined);
    await Promise.all(this.meterProviders().map((p) => p.shutdown().catch((e: Error) => this.log.warn('shutdown failed', { error: e.message }))));
    await step('Prometheus endpoint', () => this.prometheus?.close(), undefined);
    await step('drain', async () => void (await Promise.all([this.spanExporter?.drain(deadlineAt), this.metricExporter?.drain(deadlineAt)])), undefined);
    // A request still in flight is abandoned at the deadline (a disk spool sends it again next time).
    const none: SpoolContent = { onDisk: { items: 0, bytes: 0, batches: 0 }, inMemory: { items: 0, bytes: 0, batches: 0 } };
    const [spans, metrics] = await Promise.all([
      step('span spool', () => this.spanExporter?.close(deadlineAt) ?? none, none),
      step('metric spool', () => this.metricExporter?.close(deadlineAt) ?? none, none),
    ]);
    logUndelivered(this.log, spans, metrics, this.stats, this.opts.spoolDir);
  }

  /** Where the Prometheus endpoint listens, as configured (for messages before start). */
  describePrometheus(): string | undefined {
    const p = this.prometheusListen;
    return p ? formatHostPort(p.host, p.port) : undefined;
  }
}

/**
 * The shutdown truth, in /stats's words: what is on disk for the next start (keptOnDisk: the
 * queued that remain), what was lost in the whole run (lost: spans.lost, metricExports.lost),
 * and of it what was lost now, undelivered and not on disk (lostAtShutdown: stats.spool.lostSpans /
 * lostMetricExports).
 */
export function logUndelivered(log: Logger, spans: SpoolContent, metrics: SpoolContent, stats: Stats, spoolDir: string | undefined): void {
  const keptItems = spans.onDisk.items + metrics.onDisk.items;
  const atShutdown = { spans: stats.spool.lostSpans, metricExports: stats.spool.lostMetricExports };
  if (keptItems === 0 && atShutdown.spans + atShutdown.metricExports === 0) return;
  const fields = {
    keptOnDisk: { spans: spans.onDisk.items, metricExports: metrics.onDisk.items, bytes: spans.onDisk.bytes + metrics.onDisk.bytes },
    lost: { spans: stats.spans.lost, metricExports: stats.metricExports.lost },
    lostAtShutdown: atShutdown,
    ...(spoolDir ? { spoolDir } : {}),
  };
  if (atShutdown.spans + atShutdown.metricExports === 0) log.warn('OTLP endpoint unavailable at shutdown: undelivered data kept in the spool directory for the next start', fields);
  else if (keptItems > 0) log.error('OTLP endpoint unavailable at shutdown: some undelivered data kept in the spool directory, the rest (not on disk) is lost', fields);
  else log.error(`OTLP endpoint unavailable at shutdown: undelivered data is lost${spoolDir ? ' (the spool directory took none of it)' : ' (no spoolDir)'}`, fields);
}
