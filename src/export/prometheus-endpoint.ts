/**
 * OTEL_METRICS_EXPORTER=prometheus: a scrape endpoint (GET /metrics) for a
 * team with Prometheus and no Collector.
 *
 * `@opentelemetry/exporter-prometheus` does the text format (names, `_total`,
 * histogram buckets, escaping, target_info); it is a pull MetricReader on the
 * bridge's own MeterProvider (its self-metrics, and target_info describing
 * the bridge). The monitored clients' metrics come in through one
 * MetricProducer that merges every client's cumulative aggregates into one
 * metric per instrument, each point labelled with its client's
 * `service_name` (and `service_namespace`): Prometheus has no resources, and
 * one metric family must not appear twice in a scrape.
 *
 * The listener is ours (node:http), not the exporter's: it binds the resolved
 * OTEL_EXPORTER_PROMETHEUS_HOST/_PORT (0 = any free port, for tests) under the
 * bridge's listener policy (loopback unless --allow-remote-http), and like the
 * admin listener answers only loopback Host names unless --allow-remote-http (a
 * web page could otherwise read the scrape through DNS rebinding).
 */
import { createServer, type Server } from 'node:http';
import { createRequire } from 'node:module';
import type { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import type { CollectionResult, MetricData, MetricProducer } from '@opentelemetry/sdk-metrics';
import { emptyResource } from '@opentelemetry/resources';
import { formatHostPort } from '../net/address.js';
import { isLoopbackHostHeader } from '../receive/source-filter.js';

/** One monitored client's cumulative aggregates, and the labels that say whose they are. */
export interface LabelledProducer {
  labels: Record<string, string>;
  producer: MetricProducer;
}

/** Merges per-client producers into one set of metrics, labels added to every point. */
export class MergedClientsProducer implements MetricProducer {
  constructor(private readonly sources: () => readonly LabelledProducer[]) {}

  async collect(): Promise<CollectionResult> {
    const byName = new Map<string, MetricData>();
    const order: MetricData[] = [];
    let scope: { name: string; version?: string } | undefined;
    for (const { labels, producer } of this.sources()) {
      const { resourceMetrics } = await producer.collect();
      for (const sm of resourceMetrics.scopeMetrics) {
        scope ??= sm.scope;
        for (const m of sm.metrics) {
          const points = m.dataPoints.map((p) => ({ ...p, attributes: { ...p.attributes, ...labels } }));
          const seen = byName.get(m.descriptor.name);
          if (seen) (seen.dataPoints as unknown[]).push(...points);
          else {
            const merged = { ...m, dataPoints: points } as MetricData;
            byName.set(m.descriptor.name, merged);
            order.push(merged);
          }
        }
      }
    }
    return {
      resourceMetrics: { resource: emptyResource(), scopeMetrics: scope && order.length > 0 ? [{ scope, metrics: order }] : [] },
      errors: [],
    };
  }
}

export class PrometheusEndpoint {
  /** Register on a MeterProvider (`readers`); the endpoint serves what it collects. */
  readonly reader: PrometheusExporter;
  private server: Server | undefined;

  constructor(
    private readonly host: string,
    private readonly port: number,
    clients: MetricProducer,
    private readonly policy: { allowRemoteHttp: boolean; counts: { rejectedHosts: number } },
  ) {
    // The exporter is loaded only for this endpoint: a bridge without it does not keep it (BENCHMARKS.md, "Idle memory").
    const { PrometheusExporter: Exporter } = createRequire(import.meta.url)('@opentelemetry/exporter-prometheus') as typeof import('@opentelemetry/exporter-prometheus');
    this.reader = new Exporter({ preventServerStart: true, host, port: port || 1, metricProducers: [clients] });
  }

  async start(): Promise<void> {
    const server = createServer((req, res) => {
      const host = req.headers.host;
      if (!this.policy.allowRemoteHttp && !isLoopbackHostHeader(host)) {
        this.policy.counts.rejectedHosts++;
        res
          .writeHead(421, { 'content-type': 'text/plain' })
          .end(`Host ${JSON.stringify(host!.slice(0, 200))} is not a loopback name: the Prometheus endpoint answers localhost, 127.0.0.0/8 and [::1] only; --allow-remote-http lifts this\n`);
        return;
      }
      const path = (req.url ?? '/').split('?')[0];
      if ((req.method === 'GET' || req.method === 'HEAD') && path === '/metrics') return this.reader.getMetricsRequestHandler(req, res);
      res.writeHead(404, { 'content-type': 'text/plain' }).end('only GET /metrics\n');
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e: NodeJS.ErrnoException) =>
        reject(
          new Error(
            `cannot start the Prometheus endpoint on ${formatHostPort(this.host, this.port)}: ${e.message}${e.code === 'EADDRINUSE' ? ' (set another OTEL_EXPORTER_PROMETHEUS_PORT)' : ''}`,
          ),
        ),
      );
      server.listen(this.port, this.host, () => resolve());
    });
    this.server = server;
  }

  address(): string | undefined {
    const a = this.server?.address();
    if (!a || typeof a === 'string') return undefined;
    return formatHostPort(a.address, a.port);
  }

  async close(): Promise<void> {
    const s = this.server;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}
