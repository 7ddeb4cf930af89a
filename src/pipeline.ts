/**
 * The datagram path, built in one place: decode → correlate → translate → sink.
 *
 * The bridge (UDP), the warm-up, replay, the benchmarks and the fuzz tests all run this one
 * class, so what they measure is what users run. A datagram goes one way through the stages
 * and never comes back: `decode/stage.ts` admits, decodes and counts it and hands the event to
 * `correlate/correlator.ts`, which hands each finished call (or orphan attempt) to
 * `translate/stage.ts`, which translates it and hands it to the call taps (the live view) and
 * the sink (the process-identity stage, then export). Each stage counts its own outcomes in its
 * part of `Stats`.
 *
 * Stage options come from the Config in `pipelineOptions`, the only place that maps settings
 * onto stages, so tests that build a Pipeline from `DEFAULT_CONFIG` run what users get.
 */
import type { Config } from './config/schema.js';
import { Correlator } from './correlate/correlator.js';
import type { CorrelatorOptions, SettleCounts } from './correlate/types.js';
import type { DecoderOptions } from './decode/decoder.js';
import { DecodeStage, type DatagramTap, type SourceObserver } from './decode/stage.js';
import type { Logger } from './log.js';
import type { Source } from './net/address.js';
import type { Stats } from './stats.js';
import { TranslateStage, type CallSink, type CallTap } from './translate/stage.js';
import type { TranslateOptions } from './translate/translate.js';

export type { CallSink, CallTap, DatagramTap };

/** The pipeline's sink may also watch sources as they arrive (the process-identity stage does). */
export type PipelineSink = CallSink & Partial<SourceObserver>;

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
      settleMs: config.matchSettleMs,
    },
    translate: {
      attemptSpanKind: config.attemptSpanKind,
      rpcSemconv: optIn.includes('rpc/dup') ? 'dup' : optIn.includes('rpc') ? 'stable' : 'old',
      jsInstrumentationKeys: config.jsInstrumentationKeys,
    },
  };
}

/** The counters the stages keep (parts of the bridge's Stats). */
export type PipelineStats = Pick<Stats, 'datagrams' | 'events' | 'correlation' | 'internalErrors'>;

export class Pipeline {
  private readonly decode: DecodeStage;
  private readonly correlator: Correlator;
  private readonly translate: TranslateStage;

  constructor(opts: PipelineOptions, sink: PipelineSink, stats: PipelineStats, log: Logger) {
    this.translate = new TranslateStage(opts.translate, sink, stats, log);
    this.correlator = new Correlator(opts.correlator, this.translate.correlated);
    const observer = sink.observe === undefined ? undefined : (sink as SourceObserver);
    this.decode = new DecodeStage({ ...opts.decoder, allowSource: opts.allowSource }, this.correlator, observer, stats, log);
  }

  /** Adds a tap on received datagrams (before decoding). */
  tapDatagrams(tap: DatagramTap): void {
    this.decode.tap(tap);
  }

  /** Adds a tap on translated calls (before the sink). */
  tapCalls(tap: CallTap): void {
    this.translate.tap(tap);
  }

  /**
   * One datagram, as received from `from` at `receivedAt` (epoch ms; replays pass the recorded
   * time); `text`: its bytes as a string, when the receiver has it already (see DecodeStage).
   */
  ingest(bytes: Buffer, from: Source, receivedAt: number, text?: string): void {
    this.decode.ingest(bytes, from, receivedAt, text);
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

  /** What the correlator's settle wait and joint search did (stats correlation.joint). */
  get jointCounts(): Readonly<SettleCounts> {
    return this.correlator.settleCounts;
  }

  get pending(): { attempts: number; calls: number; groups: number } {
    const c = this.correlator;
    return { attempts: c.pendingAttempts, calls: c.pendingCalls, groups: c.pendingGroups };
  }
}
