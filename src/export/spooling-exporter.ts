import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import {
  CumulativeTemporalitySelector,
  DeltaTemporalitySelector,
  LowMemoryTemporalitySelector,
} from '@opentelemetry/exporter-metrics-otlp-http';
import type { AggregationTemporality, PushMetricExporter, ResourceMetrics } from '@opentelemetry/sdk-metrics';
import type { Logger } from '../log.js';
import type { Stats } from '../stats.js';
import { createOtlpSender, serializerFor, type OtlpSender, type Signal } from './otlp-sender.js';
import { Spool, type Encoding, type SpoolEvents } from './spool.js';

export interface SpoolingOptions {
  encoding: Encoding;
  /** Full per-signal URL; absent: the OTEL_EXPORTER_OTLP_* variables decide. */
  url?: string | undefined;
  maxBytes: number;
  dir?: string | undefined;
  /** For tests. */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
}

export interface Undelivered {
  items: number;
  bytes: number;
  keptOnDisk: boolean;
}

/**
 * Shared base: serialize at once, spool, acknowledge. The SDK sees every
 * export succeed immediately; the real outcome is counted when the spool
 * delivers, rejects or drops the batch.
 */
abstract class SpoolingExporter {
  protected readonly spool: Spool;
  private readonly senders = new Map<Encoding, OtlpSender>();

  constructor(
    private readonly signal: Signal,
    protected readonly opts: SpoolingOptions,
    events: SpoolEvents,
  ) {
    this.spool = new Spool({
      maxBytes: opts.maxBytes,
      dir: opts.dir,
      events,
      send: (body, encoding, items) => this.sender(encoding).send(body, items),
      ...(opts.initialBackoffMs !== undefined ? { initialBackoffMs: opts.initialBackoffMs } : {}),
      ...(opts.maxBackoffMs !== undefined ? { maxBackoffMs: opts.maxBackoffMs } : {}),
    });
  }

  /** Files from a run with the other protocol are sent with that protocol's Content-Type. */
  private sender(encoding: Encoding): OtlpSender {
    let s = this.senders.get(encoding);
    if (!s) {
      s = createOtlpSender(this.signal, encoding, this.opts.url);
      this.senders.set(encoding, s);
    }
    return s;
  }

  protected accept(request: unknown, items: number, done: (r: ExportResult) => void, onSerializeError: (e: Error) => void): void {
    let body: Uint8Array | undefined;
    try {
      body = (serializerFor(this.signal, this.opts.encoding) as { serializeRequest(r: unknown): Uint8Array | undefined }).serializeRequest(request);
    } catch (e) {
      onSerializeError(e as Error);
      done({ code: ExportResultCode.FAILED, error: e as Error });
      return;
    }
    if (body && body.byteLength > 0) this.spool.push(body, items, this.opts.encoding);
    done({ code: ExportResultCode.SUCCESS });
  }

  get queued(): Undelivered {
    return { items: this.spool.queuedItems, bytes: this.spool.queuedBytes, keptOnDisk: this.spool.onDisk };
  }

  /** Sends what is spooled until `deadlineAt`; true when nothing is left. */
  drain(deadlineAt: number): Promise<boolean> {
    return this.spool.drain(deadlineAt);
  }

  /** Stops the spool, then closes the HTTP agents, waiting for a request in flight no later than `deadlineAt`. */
  async close(deadlineAt = Date.now() + 1_000): Promise<void> {
    this.spool.close();
    const closing = Promise.all([...this.senders.values()].map((s) => s.shutdown().catch(() => undefined)));
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<void>((r) => {
      timer = setTimeout(r, Math.max(0, deadlineAt - Date.now()));
      timer.unref();
    });
    await Promise.race([closing, late]);
    clearTimeout(timer);
  }

  /** Per-provider shutdown/flush calls: the spool already holds everything; the bridge drains and closes it. */
  shutdown(): Promise<void> {
    return Promise.resolve();
  }

  forceFlush(): Promise<void> {
    return Promise.resolve();
  }
}

/** Trace side: takes request bodies the TraceBatch already encoded (trace-batch.ts). */
export class SpoolingSpanExporter extends SpoolingExporter {
  constructor(opts: SpoolingOptions, stats: Stats, log: Logger) {
    super('traces', opts, {
      queued: (n, b) => {
        stats.spool.queuedSpans += n;
        stats.spool.queuedBytes += b;
      },
      delivered: (n) => {
        stats.spans.exported += n;
        stats.lastExportOkAt.traces = Date.now();
      },
      rejected: (n, error) => {
        stats.spans.failed += n;
        stats.lastExportError.traces = exportError(error);
        log.warnLimited('span-export', 'the OTLP endpoint refused a span batch; these spans are lost', { spans: n, error });
      },
      dropped: (n, reason) => {
        stats.spans.dropped += n;
        stats.spool.droppedSpans += n;
        log.warnLimited(`span-spool-${reason}`, 'spans dropped from the export spool', {
          spans: n,
          reason,
          droppedSoFar: stats.spool.droppedSpans,
        });
      },
      retrying: (error, delayMs) => {
        stats.spool.retries++;
        stats.lastExportError.traces = exportError(error);
        log.warnLimited('span-export-retry', 'OTLP endpoint unavailable; spans wait in the spool', {
          error,
          retryInMs: delayMs,
          queuedSpans: stats.spool.queuedSpans,
          queuedBytes: stats.spool.queuedBytes,
        });
      },
      recovered: (n, bytes, batches) => {
        stats.spool.recoveredSpans += n;
        log.info('spool: spans from an earlier run will be sent first', { spans: n, bytes, batches, dir: opts.dir });
      },
      diskError: (op, error) => {
        stats.spool.diskErrors++;
        log.warnLimited(`spool-disk-${op}`, 'spool directory error', { op, error, dir: opts.dir });
      },
    });
  }

  /** Queues one encoded ExportTraceServiceRequest of `spans` spans; never blocks, never throws. */
  push(body: Uint8Array, spans: number): void {
    this.spool.push(body, spans, this.opts.encoding);
  }
}

export class SpoolingMetricExporter extends SpoolingExporter implements PushMetricExporter {
  private readonly temporality: (kind: Parameters<NonNullable<PushMetricExporter['selectAggregationTemporality']>>[0]) => AggregationTemporality;

  constructor(opts: SpoolingOptions, stats: Stats, log: Logger, env: NodeJS.ProcessEnv) {
    super('metrics', opts, {
      queued: (n, b) => {
        stats.spool.queuedMetricExports += n;
        stats.spool.queuedBytes += b;
      },
      delivered: () => {
        stats.metricExports.succeeded++;
        stats.lastExportOkAt.metrics = Date.now();
      },
      rejected: (_n, error) => {
        stats.metricExports.failed++;
        stats.lastExportError.metrics = exportError(error);
        log.warnLimited('metric-export', 'the OTLP endpoint refused a metric export', { error });
      },
      dropped: (n, reason) => {
        stats.spool.droppedMetricExports += n;
        log.warnLimited(`metric-spool-${reason}`, 'metric exports dropped from the export spool', {
          exports: n,
          reason,
          droppedSoFar: stats.spool.droppedMetricExports,
        });
      },
      retrying: (error, delayMs) => {
        stats.spool.retries++;
        stats.lastExportError.metrics = exportError(error);
        log.warnLimited('metric-export-retry', 'OTLP endpoint unavailable; metric exports wait in the spool', {
          error,
          retryInMs: delayMs,
          queuedMetricExports: stats.spool.queuedMetricExports,
        });
      },
      recovered: (n, bytes) => {
        stats.spool.recoveredMetricExports += n;
        log.info('spool: metric exports from an earlier run will be sent first', { exports: n, bytes, dir: opts.dir });
      },
      diskError: (op, error) => {
        stats.spool.diskErrors++;
        log.warnLimited(`spool-disk-${op}`, 'spool directory error', { op, error, dir: opts.dir });
      },
    });
    // Same rule and variable as OTLPMetricExporter (exporter-metrics-otlp-http).
    const pref = (env['OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE'] ?? 'cumulative').trim().toLowerCase();
    this.temporality =
      pref === 'delta' ? DeltaTemporalitySelector : pref === 'lowmemory' ? LowMemoryTemporalitySelector : CumulativeTemporalitySelector;
    if (!['cumulative', 'delta', 'lowmemory'].includes(pref)) {
      log.warn('OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE is not cumulative, delta or lowmemory; using cumulative', { value: pref });
    }
    this.onSerializeError = (e) => {
      stats.metricExports.failed++;
      log.warnLimited('metric-serialize', 'could not serialize metrics; this export is lost', { error: e.message });
    };
  }

  private readonly onSerializeError: (e: Error) => void;

  export(metrics: ResourceMetrics, done: (r: ExportResult) => void): void {
    this.accept(metrics, 1, done, this.onSerializeError);
  }

  selectAggregationTemporality(kind: Parameters<NonNullable<PushMetricExporter['selectAggregationTemporality']>>[0]): AggregationTemporality {
    return this.temporality(kind);
  }
}

/** What a failed send said, for /stats and the live view: bounded, one line. */
function exportError(message: string): { at: number; message: string } {
  const m = message.replace(/\s+/g, ' ');
  return { at: Date.now(), message: m.length > 300 ? `${m.slice(0, 300)}…` : m };
}
