/**
 * The datagram path, built in one place: admit → decode → correlate → translate → sink.
 *
 * The bridge (UDP), the warm-up, replay, the benchmarks and the fuzz tests all run this one
 * class, so what they measure is what users run. A datagram goes one way through it and never
 * comes back: `ingest` admits and decodes it and hands the event to the correlator; the
 * correlator hands each finished call (or orphan attempt) to `translated`, which translates it
 * and hands it to the sink (export, through the process-identity stage) and the call taps (the
 * live view). Each step counts its own outcomes in its part of `Stats`.
 *
 * Stage options come from the Config in `pipelineOptions`, the only place that maps settings
 * onto stages, so tests that build a Pipeline from `DEFAULT_CONFIG` run what users get.
 */
import type { Config } from './config/schema.js';
import { Correlator } from './correlate/correlator.js';
import type { Correlated, CorrelatorOptions } from './correlate/types.js';
import { decodeDatagram, type DecoderOptions } from './decode/decoder.js';
import type { Source } from './net/address.js';
import type { Logger } from './log.js';
import { SourceFilter } from './receive/source-filter.js';
import type { Stats } from './stats.js';
import { translate, type TranslateOptions } from './translate/translate.js';
import type { Translation } from './translate/types.js';

/** Where translated calls go. */
export interface CallSink {
  /**
   * Every accepted event's source as it arrives, before its call is complete: lets the
   * process-identity stage start a lookup early, off the datagram path.
   */
  observe?(source: Source): void;
  write(c: Correlated, t: Translation): void;
}

/**
 * Sees every datagram as received (the recorder), with the receive time the pipeline uses.
 * `bytes` is the tap's own copy (the receiver's buffer is reused), so a tap may keep it.
 */
export type DatagramTap = (bytes: Buffer, from: Source, receivedAt: number) => void;
/** Sees every translated call (the live view). */
export type CallTap = (c: Correlated, t: Translation) => void;

export interface PipelineOptions {
  /** --allow-source: datagrams from elsewhere are dropped before decoding. Empty: all admitted. */
  allowSource: readonly string[];
  decoder: DecoderOptions;
  correlator: CorrelatorOptions;
  translate: TranslateOptions;
}

/** The one mapping of settings onto stage options. */
export function pipelineOptions(config: Config, accessKeySalt: string): PipelineOptions {
  const optIn = config.semconvStabilityOptIn;
  return {
    allowSource: config.allowSource,
    decoder: {
      maxDatagramBytes: config.maxDatagramBytes,
      accessKey: config.accessKey,
      accessKeySalt,
      timestampSemantics: config.timestampSemantics,
    },
    correlator: {
      attemptHoldMs: config.attemptHoldMs,
      callHoldMs: config.callHoldMs,
      maxPending: config.maxPending,
      toleranceMs: config.matchToleranceMs,
    },
    translate: {
      attemptSpanKind: config.attemptSpanKind,
      rpcSemconv: optIn.includes('rpc/dup') ? 'dup' : optIn.includes('rpc') ? 'stable' : 'old',
      jsInstrumentationKeys: config.jsInstrumentationKeys,
    },
  };
}

/** The counters the pipeline's steps keep (parts of the bridge's Stats). */
export type PipelineStats = Pick<Stats, 'datagrams' | 'events' | 'correlation'> & { internalErrors: number };

export class Pipeline {
  private readonly sourceFilter: SourceFilter | undefined;
  private readonly correlator: Correlator;
  private readonly datagramTaps: DatagramTap[] = [];
  private readonly callTaps: CallTap[] = [];

  constructor(
    private readonly opts: PipelineOptions,
    private readonly sink: CallSink,
    private readonly stats: PipelineStats,
    private readonly log: Logger,
  ) {
    this.sourceFilter = opts.allowSource.length > 0 ? new SourceFilter(opts.allowSource) : undefined;
    this.correlator = new Correlator(opts.correlator, (c) => this.translated(c));
  }

  /** Adds a tap on received datagrams (before decoding). */
  tapDatagrams(tap: DatagramTap): void {
    this.datagramTaps.push(tap);
  }

  /** Adds a tap on translated calls (before the sink). */
  tapCalls(tap: CallTap): void {
    this.callTaps.push(tap);
  }

  /** One datagram, as received from `from` at `receivedAt` (epoch ms; replays pass the recorded time). */
  ingest(bytes: Buffer, from: Source, receivedAt: number): void {
    const s = this.stats.datagrams;
    s.received++;
    if (this.sourceFilter !== undefined && !this.sourceFilter.allows(from.address)) {
      const n = ++s.dropped.source_not_allowed;
      this.log.warnLimited('drop:source', 'dropped a datagram from a source outside --allow-source', { from: from.address, droppedSoFar: n });
      return;
    }
    if (this.datagramTaps.length > 0) {
      // The recvmmsg receiver's `bytes` is a view into a buffer the next batch overwrites: taps
      // (the recorder) get a copy they may keep. Without taps the hot path copies nothing.
      const copy = Buffer.from(bytes);
      for (const tap of this.datagramTaps) tap(copy, from, receivedAt);
    }
    const r = decodeDatagram(bytes, from, receivedAt, this.opts.decoder);
    if (!r.ok) {
      s.rejected[r.reason]++;
      this.log.warnLimited(`reject:${r.reason}`, 'rejected CSM datagram', {
        reason: r.reason,
        detail: r.detail,
        from: `${from.address}:${from.port}`,
        rejectedSoFar: s.rejected[r.reason],
      });
      return;
    }
    s.accepted++;
    if (r.event.type === 'ApiCall') this.stats.events.calls++;
    else this.stats.events.attempts++;
    this.sink.observe?.(r.event.source);
    this.correlator.add(r.event);
  }

  /** Exports attempts and calls whose hold has run out by `now` (the bridge's clock, or a replay's). */
  expire(now: number): void {
    this.correlator.expire(now);
  }

  /** Exports everything still pending (shutdown, end of a replay). */
  flush(): void {
    this.correlator.flush();
  }

  /** Memory pressure: exports the `n` oldest pending items early. */
  shedOldest(n: number): { attempts: number; calls: number } {
    return this.correlator.shedOldest(n);
  }

  get pending(): { attempts: number; calls: number; groups: number } {
    const c = this.correlator;
    return { attempts: c.pendingAttempts, calls: c.pendingCalls, groups: c.pendingGroups };
  }

  /** Correlate → translate → sink: one finished call or orphan attempt. */
  private translated(c: Correlated): void {
    const s = this.stats.correlation;
    if (c.kind === 'call') {
      s.matched += c.attempts.length;
      if (c.missingAttempts > 0) {
        s.callsIncomplete++;
        s.missingAttempts += c.missingAttempts;
      }
    } else {
      s.orphaned[c.reason]++;
    }
    try {
      const t = translate(c, this.opts.translate);
      for (const tap of this.callTaps) tap(c, t);
      this.sink.write(c, t);
    } catch (e) {
      // Decoding never throws; a bug past it must cost one call, not the daemon.
      this.stats.internalErrors++;
      this.log.warnLimited('translate', 'could not export a call', { error: (e as Error).message });
    }
  }
}
