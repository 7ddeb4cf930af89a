/**
 * The bridge's own health as metrics (otel-mapping.md §2.4), under the bridge's own resource.
 *
 * Every instrument is an observable read from `Stats` at collection time: the stages only
 * increment plain counters (cheap on the datagram path), and this table is the one place that
 * says which counter becomes which metric. One row per instrument.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Meter, ObservableResult } from '@opentelemetry/api';
import { defaultResource, resourceFromAttributes, type Resource } from '@opentelemetry/resources';
import type { OtelSettings } from '../config/otel-env.js';
import type { Stats } from '../stats.js';

type Kind = 'counter' | 'updown' | 'gauge';

interface SelfMetric {
  name: string;
  kind: Kind;
  unit: string;
  description: string;
  observe(s: Stats, r: ObservableResult): void;
}

const byKey = (r: ObservableResult, label: string, counts: Readonly<Record<string, number>>): void => {
  for (const [k, n] of Object.entries(counts)) r.observe(n, { [label]: k });
};

export const SELF_METRICS: readonly SelfMetric[] = [
  {
    name: 'csm.bridge.datagrams',
    kind: 'counter',
    unit: '{datagram}',
    description: 'CSM datagrams received, by outcome.',
    observe: (s, r) => {
      r.observe(s.datagrams.accepted, { 'csm.outcome': 'accepted' });
      byKey(r, 'csm.outcome', s.datagrams.rejected);
      byKey(r, 'csm.outcome', s.datagrams.dropped);
      r.observe(s.datagrams.kernelDropped, { 'csm.outcome': 'kernel_dropped' });
      r.observe(s.datagrams.ringDropped, { 'csm.outcome': 'ring_dropped' });
    },
  },
  {
    name: 'csm.bridge.memory.shed',
    kind: 'counter',
    unit: '{item}',
    description: 'Pending attempts and calls exported early because RSS was above memoryCeilingMb.',
    observe: (s, r) => byKey(r, 'csm.kind', { attempt: s.memory.shedAttempts, call: s.memory.shedCalls }),
  },
  {
    name: 'csm.bridge.memory.rss',
    kind: 'gauge',
    unit: 'By',
    description: 'Resident set size of the bridge at the last memory check.',
    observe: (s, r) => r.observe(s.memory.rssBytes),
  },
  {
    name: 'csm.bridge.clients.overflowed',
    kind: 'counter',
    unit: '{call}',
    description: 'Calls folded into service "aws-csm:other" because maxClients was reached.',
    observe: (s, r) => r.observe(s.clients.overflowed),
  },
  {
    name: 'csm.bridge.metric_points.overflowed',
    kind: 'counter',
    unit: '{point}',
    description: 'Metric points folded into the otel.metric.overflow series because an instrument reached 500 series for a ClientId.',
    observe: (s, r) => r.observe(s.metricPoints.overflowed),
  },
  {
    name: 'csm.bridge.metric_points.rejected',
    kind: 'counter',
    unit: '{point}',
    description: 'Metric data points the OTLP endpoint rejected in a partial success (the rest of the export was accepted).',
    observe: (s, r) => r.observe(s.metricPoints.rejected),
  },
  {
    name: 'csm.bridge.attempts.unmatched',
    kind: 'counter',
    unit: '{attempt}',
    description: 'Attempts exported without their ApiCall.',
    observe: (s, r) => byKey(r, 'csm.reason', s.correlation.orphaned),
  },
  {
    name: 'csm.bridge.attempts.missing',
    kind: 'counter',
    unit: '{attempt}',
    description: 'Attempts an ApiCall counted that never arrived.',
    observe: (s, r) => r.observe(s.correlation.missingAttempts),
  },
  {
    name: 'csm.bridge.pending_attempts',
    kind: 'updown',
    unit: '{attempt}',
    description: 'Attempts waiting for their ApiCall.',
    observe: (s, r) => r.observe(s.correlation.pendingAttempts),
  },
  {
    name: 'csm.bridge.spans',
    kind: 'counter',
    unit: '{span}',
    description: 'Spans by export outcome.',
    observe: (s, r) => byKey(r, 'csm.outcome', { exported: s.spans.exported, failed: s.spans.failed, dropped: s.spans.dropped }),
  },
  {
    name: 'csm.bridge.spool.queued',
    kind: 'updown',
    unit: '{item}',
    description: 'Spans and metric export requests waiting in the export spool.',
    observe: (s, r) => byKey(r, 'csm.signal', { traces: s.spool.queuedSpans, metrics: s.spool.queuedMetricExports }),
  },
  {
    name: 'csm.bridge.spool.size',
    kind: 'updown',
    unit: 'By',
    description: 'Serialized bytes waiting in the export spool.',
    observe: (s, r) => r.observe(s.spool.queuedBytes),
  },
  {
    name: 'csm.bridge.spool.dropped',
    kind: 'counter',
    unit: '{item}',
    description: 'Dropped oldest-first because the export spool was full.',
    observe: (s, r) => byKey(r, 'csm.signal', { traces: s.spool.droppedSpans, metrics: s.spool.droppedMetricExports }),
  },
  {
    name: 'csm.bridge.spool.lost',
    kind: 'counter',
    unit: '{item}',
    description: 'Undelivered at shutdown and not in the spool directory: lost.',
    observe: (s, r) => byKey(r, 'csm.signal', { traces: s.spool.lostSpans, metrics: s.spool.lostMetricExports }),
  },
  {
    name: 'csm.bridge.export.retries',
    kind: 'counter',
    unit: '{request}',
    description: 'OTLP sends that failed and wait to be retried (endpoint down, timed out, 429/5xx, retryable gRPC codes), by csm.reason (tls: the handshake or a certificate check failed).',
    observe: (s, r) => byKey(r, 'csm.reason', { unavailable: s.spool.retries - s.spool.tlsErrors, tls: s.spool.tlsErrors }),
  },
  {
    name: 'csm.bridge.metric_exports',
    kind: 'counter',
    unit: '{request}',
    description: 'OTLP metric export requests, by outcome.',
    observe: (s, r) => byKey(r, 'csm.outcome', { succeeded: s.metricExports.succeeded, failed: s.metricExports.failed }),
  },
  {
    name: 'csm.bridge.calls.sampled',
    kind: 'counter',
    unit: '{call}',
    description: 'Calls whose spans were kept (by csm.reason: sampled, error, retry, slow) or sampled out (OTEL_TRACES_SAMPLER, --sample-keep). Metrics count every call.',
    observe: (s, r) => {
      for (const [reason, n] of Object.entries(s.sampling.keptBy)) r.observe(n, { 'csm.outcome': 'kept', 'csm.reason': reason });
      r.observe(s.sampling.sampledOut, { 'csm.outcome': 'sampled_out' });
    },
  },
  {
    name: 'csm.bridge.join.calls',
    kind: 'counter',
    unit: '{call}',
    description: "CSM calls and the applications' traces (--app-otlp-http/-grpc), by csm.outcome: joined (inside the app's trace), expired (standalone after the join window), no_request_id, not_joinable and no_app_spans (standalone at once), waiting_full (standalone at once: too many waited).",
    observe: (s, r) =>
      byKey(r, 'csm.outcome', {
        joined: s.join.joined,
        expired: s.join.expiredUnjoined,
        no_request_id: s.join.noRequestId,
        not_joinable: s.join.notJoinable,
        no_app_spans: s.join.noAppSpans,
        waiting_full: s.join.waitingFull,
      }),
  },
  {
    name: 'csm.bridge.app_spans',
    kind: 'counter',
    unit: '{span}',
    description: "Applications' spans received for the join, by csm.outcome: indexed, refused (the index was full: answered as partial success), expired (left unjoined), ignored (not AWS SDK spans with a request id, or the bridge's own).",
    observe: (s, r) =>
      byKey(r, 'csm.outcome', {
        indexed: s.appSpans.index.indexed,
        refused: s.appSpans.refused,
        expired: s.appSpans.index.expired,
        ignored: s.appSpans.spans - s.appSpans.kept,
      }),
  },
  {
    name: 'csm.bridge.app_span_requests.rejected',
    kind: 'counter',
    unit: '{request}',
    description: 'Export requests the app span listeners refused, by csm.reason: malformed (400), too_large (413), unsupported_media_type (415), not_found (404), timeout.',
    observe: (s, r) => byKey(r, 'csm.reason', s.appSpans.rejected),
  },
];

/** Registers every row of SELF_METRICS on `meter`, read from `stats` at each collection. */
export function registerSelfMetrics(meter: Meter, stats: Stats): void {
  for (const m of SELF_METRICS) {
    const opts = { unit: m.unit, description: m.description };
    const instrument =
      m.kind === 'counter'
        ? meter.createObservableCounter(m.name, opts)
        : m.kind === 'updown'
          ? meter.createObservableUpDownCounter(m.name, opts)
          : meter.createObservableGauge(m.name, opts);
    instrument.addCallback((r) => m.observe(stats, r));
  }
}

/** The bridge's own resource; OTEL_RESOURCE_ATTRIBUTES / OTEL_SERVICE_NAME (resolved in config/otel-env.ts) override its defaults. */
export function bridgeResource(version: string, otel: Pick<OtelSettings, 'resourceAttributes' | 'serviceName'>): Resource {
  return defaultResource()
    .merge(
      resourceFromAttributes({
        'service.name': 'aws-csm-bridge',
        'service.version': version,
        'service.instance.id': randomUUID(),
        'host.name': hostname(),
        'process.pid': process.pid,
      }),
    )
    .merge(resourceFromAttributes({ ...otel.resourceAttributes, ...(otel.serviceName ? { 'service.name': otel.serviceName } : {}) }));
}
