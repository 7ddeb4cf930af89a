import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { AggregationTemporality, InstrumentType, type PushMetricExporter, type ResourceMetrics } from '@opentelemetry/sdk-metrics';
import type { OtlpTarget, Signal, TemporalityPreference } from '../config/otel-env.js';
import type { Logger } from '../log.js';
import type { Stats } from '../stats.js';
import { createOtlpSender, serializerFor, type OtlpSender } from './otlp-sender.js';
import { DiskStorage, Spool, type Encoding, type SpoolContent, type SpoolEvents } from './spool.js';

export interface SpoolingOptions {
  /** Where and how this signal goes (resolved from the OTEL_* variables, config/otel-env.ts). */
  target: OtlpTarget;
  maxBytes: number;
  /** Bound on what is held in memory (memory spool, or batches the disk refused); default maxBytes. */
  maxMemoryBytes?: number | undefined;
  dir?: string | undefined;
  /** For tests. */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
}

/** The body encoding a protocol sends: JSON for http/json, protobuf for http/protobuf and gRPC. */
export const encodingOf = (t: OtlpTarget): Encoding => (t.protocol === 'http/json' ? 'json' : 'protobuf');

/**
 * The one table of what each signal's spool events do to /stats and the log:
 * spans count per span, metrics per export request.
 */
const SIGNALS = {
  traces: {
    noun: 'spans',
    queued: 'queuedSpans',
    onDisk: 'onDiskSpans',
    dropped: 'droppedSpans',
    lost: 'lostSpans',
    recovered: 'recoveredSpans',
    counts: (s: Stats) => s.spans,
    delivered: (s: Stats, n: number) => (s.spans.exported += n),
    /** Of a request of `n` spans, `rejected` were refused in a partial success: they are not delivered. */
    partial: (s: Stats, n: number, rejected: number) => {
      const r = Math.min(n, rejected);
      s.spans.exported += n - r;
      s.spans.failed += r;
      s.spans.lost += r;
    },
    partialNoun: 'spans',
  },
  metrics: {
    noun: 'metric exports',
    queued: 'queuedMetricExports',
    onDisk: 'onDiskMetricExports',
    dropped: 'droppedMetricExports',
    lost: 'lostMetricExports',
    recovered: 'recoveredMetricExports',
    counts: (s: Stats) => s.metricExports,
    delivered: (s: Stats) => s.metricExports.succeeded++,
    partial: (s: Stats, _n: number, rejected: number) => {
      s.metricExports.succeeded++;
      s.metricPoints.rejected += rejected;
    },
    partialNoun: 'data points',
  },
} as const;

export function spoolEvents(signal: Signal, stats: Stats, log: Logger, dir: string | undefined): SpoolEvents {
  const t = SIGNALS[signal];
  const sp = stats.spool;
  return {
    queued: (n, b) => {
      sp[t.queued] += n;
      sp.queuedBytes += b;
    },
    onDisk: (n, b) => {
      sp[t.onDisk] += n;
      sp.onDiskBytes += b;
    },
    delivered: (n, partial, unread) => {
      stats.lastExportOkAt[signal] = Date.now();
      if (unread !== undefined) log.warnLimited(`${signal}-export-unread`, `the OTLP endpoint accepted ${t.noun} but its answer was not read`, { [t.noun]: n, why: unread });
      if (partial === undefined) {
        t.delivered(stats, n);
        return;
      }
      t.partial(stats, n, partial.rejected);
      if (partial.rejected === 0) {
        log.warnLimited(`${signal}-export-warning`, 'the OTLP endpoint accepted the export with a warning', { warning: partial.message });
        return;
      }
      const error = `partial success: ${partial.rejected} ${t.partialNoun} rejected${partial.message ? `: ${partial.message}` : ''}`;
      stats.lastExportError[signal] = exportError(error);
      log.warnLimited(`${signal}-export-partial`, `the OTLP endpoint rejected part of an export (${t.partialNoun}); they are lost`, { [t.partialNoun]: partial.rejected, error: partial.message });
    },
    rejected: (n, error) => {
      t.counts(stats).failed += n;
      t.counts(stats).lost += n;
      stats.lastExportError[signal] = exportError(error);
      log.warnLimited(`${signal}-export`, `the OTLP endpoint refused ${t.noun}; they are lost`, { [t.noun]: n, error });
    },
    dropped: (n, reason) => {
      t.counts(stats).dropped += n;
      t.counts(stats).lost += n;
      if (reason === 'shutdown') {
        sp[t.lost] += n;
        return; // said once, in the shutdown summary
      }
      sp[t.dropped] += n;
      log.warnLimited(`${signal}-spool-${reason}`, `${t.noun} dropped from the export spool`, {
        [t.noun]: n,
        reason,
        droppedSoFar: sp[t.dropped],
        ...(reason === 'disk_full' ? { dir, hint: 'the spool directory is full and the memory bound too: free space or raise the bound' } : {}),
      });
    },
    retrying: (error, delayMs, tls) => {
      sp.retries++;
      t.counts(stats).failedAttempts++;
      if (tls) sp.tlsErrors++;
      stats.lastExportError[signal] = exportError(error);
      log.warnLimited(
        `${signal}-export-retry`,
        tls ? `TLS with the OTLP endpoint failed (check the certificate variables); ${t.noun} wait in the spool` : `OTLP endpoint unavailable; ${t.noun} wait in the spool`,
        { error, retryInMs: delayMs, [t.queued]: sp[t.queued], queuedBytes: sp.queuedBytes },
      );
    },
    recovered: (n, bytes, batches) => {
      sp[t.recovered] += n;
      log.info(`spool: ${t.noun} from an earlier run will be sent first`, { [t.noun]: n, bytes, batches, dir });
    },
    diskError: (op, error) => {
      sp.diskErrors++;
      log.warnLimited(`spool-disk-${op}`, op === 'write' ? 'spool directory refused a batch: it stays in memory until there is space' : 'spool directory error', {
        op,
        error,
        dir,
      });
    },
  };
}

/**
 * Shared base: serialize at once, spool, acknowledge. The SDK sees every
 * export succeed immediately; the real outcome is counted when the spool
 * delivers, rejects or drops the batch.
 */
abstract class SpoolingExporter {
  protected readonly spool: Spool;
  protected readonly encoding: Encoding;
  private readonly senders = new Map<Encoding, OtlpSender>();

  constructor(
    private readonly signal: Signal,
    protected readonly opts: SpoolingOptions,
    stats: Stats,
    log: Logger,
  ) {
    this.encoding = encodingOf(opts.target);
    this.spool = new Spool({
      maxBytes: opts.maxBytes,
      ...(opts.maxMemoryBytes !== undefined ? { maxMemoryBytes: opts.maxMemoryBytes } : {}),
      ...(opts.dir ? { storage: new DiskStorage(opts.dir) } : {}),
      events: spoolEvents(signal, stats, log, opts.dir),
      send: (body, encoding, items) => this.sender(encoding).send(body, items),
      ...(opts.initialBackoffMs !== undefined ? { initialBackoffMs: opts.initialBackoffMs } : {}),
      ...(opts.maxBackoffMs !== undefined ? { maxBackoffMs: opts.maxBackoffMs } : {}),
    });
  }

  /** Files from a run with the other encoding are sent with that encoding's Content-Type. */
  private sender(encoding: Encoding): OtlpSender {
    let s = this.senders.get(encoding);
    if (!s) {
      s = createOtlpSender(this.opts.target, encoding);
      this.senders.set(encoding, s);
    }
    return s;
  }

  /** Serializes and spools a request; true when it counts (spooled, or lost because it could not be serialized). */
  protected accept(request: unknown, items: number, done: (r: ExportResult) => void, onSerializeError: (e: Error) => void): boolean {
    let body: Uint8Array | undefined;
    try {
      body = (serializerFor(this.signal, this.encoding) as { serializeRequest(r: unknown): Uint8Array | undefined }).serializeRequest(request);
    } catch (e) {
      onSerializeError(e as Error);
      done({ code: ExportResultCode.FAILED, error: e as Error });
      return true;
    }
    const spooled = body !== undefined && body.byteLength > 0;
    if (spooled) this.spool.push(body!, items, this.encoding);
    done({ code: ExportResultCode.SUCCESS });
    return spooled;
  }

  /** What waits now: on disk (kept for the next start) and in memory. */
  get queued(): SpoolContent {
    return this.spool.content();
  }

  /** Bytes held in memory (for the memory ceiling). */
  get heldInMemoryBytes(): number {
    return this.spool.heldInMemoryBytes;
  }

  /** Sends what is spooled until `deadlineAt`; true when nothing is left. */
  drain(deadlineAt: number): Promise<boolean> {
    return this.spool.drain(deadlineAt);
  }

  /**
   * Stops the spool, closes the senders (waiting for a request in flight no later than
   * `deadlineAt`), and says what is left: on disk for the next start; what was only in
   * memory is lost and counted (stats.spool.lost*).
   */
  async close(deadlineAt = Date.now() + 1_000): Promise<SpoolContent> {
    this.spool.close();
    const closing = Promise.all([...this.senders.values()].map((s) => s.shutdown().catch(() => undefined)));
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<void>((r) => {
      timer = setTimeout(r, Math.max(0, deadlineAt - Date.now()));
      timer.unref();
    });
    await Promise.race([closing, late]);
    clearTimeout(timer);
    return this.spool.abandon();
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
    super('traces', opts, stats, log);
  }

  /** Queues one encoded ExportTraceServiceRequest of `spans` spans; never blocks, never throws. */
  push(body: Uint8Array, spans: number): void {
    this.spool.push(body, spans, this.encoding);
  }
}

/**
 * OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE's three selectors, as the OTLP exporter spec
 * defines them (and @opentelemetry/exporter-metrics-otlp-http exports them: test/unit/temporality.test.ts
 * checks every instrument type against it). Here, not imported: that package and the exporter
 * base it loads were 65 KB of module source kept in every bridge for three switches.
 */
export const TEMPORALITY = {
  cumulative: () => AggregationTemporality.CUMULATIVE,
  // Sums that are monotonic, gauges and histograms as deltas; up-down counters cumulative.
  delta: (kind: InstrumentType) =>
    kind === InstrumentType.UP_DOWN_COUNTER || kind === InstrumentType.OBSERVABLE_UP_DOWN_COUNTER ? AggregationTemporality.CUMULATIVE : AggregationTemporality.DELTA,
  // Only synchronous counters and histograms as deltas.
  lowmemory: (kind: InstrumentType) =>
    kind === InstrumentType.COUNTER || kind === InstrumentType.HISTOGRAM ? AggregationTemporality.DELTA : AggregationTemporality.CUMULATIVE,
} as const;

export class SpoolingMetricExporter extends SpoolingExporter implements PushMetricExporter {
  private readonly temporality: (kind: Parameters<NonNullable<PushMetricExporter['selectAggregationTemporality']>>[0]) => AggregationTemporality;
  private readonly onSerializeError: (e: Error) => void;

  /** `temporality`: OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE, with OTLPMetricExporter's selectors. */
  constructor(
    opts: SpoolingOptions,
    private readonly stats: Stats,
    log: Logger,
    temporality: TemporalityPreference = 'cumulative',
  ) {
    super('metrics', opts, stats, log);
    this.temporality = TEMPORALITY[temporality];
    this.onSerializeError = (e) => {
      stats.metricExports.failed++;
      stats.metricExports.lost++;
      log.warnLimited('metric-serialize', 'could not serialize metrics; this export is lost', { error: e.message });
    };
  }

  export(metrics: ResourceMetrics, done: (r: ExportResult) => void): void {
    if (this.accept(metrics, 1, done, this.onSerializeError)) this.stats.metricExports.created++;
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
