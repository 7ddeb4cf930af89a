/**
 * The decode stage: admits a datagram (the --allow-source filter, the datagram taps), decodes
 * it, counts the outcome (`datagrams.*`, `events.*`) and hands the event on to correlation.
 * A rejected datagram is counted by reason and logged at most once per 10 s per reason; it
 * never goes further.
 */
import type { Logger } from '../log.js';
import type { Source } from '../net/address.js';
import { SourceFilter } from '../receive/source-filter.js';
import type { Stats } from '../stats.js';
import { decodeDatagram, type DecoderOptions } from './decoder.js';
import type { CsmEvent } from './types.js';

/** Where decoded events go: the correlator. */
export interface EventSink {
  add(event: CsmEvent): void;
}

/** Told every accepted event's source as it arrives, and when (the process-identity stage starts its lookup). */
export interface SourceObserver {
  observe(source: Source, receivedAt: number): void;
}

/**
 * Sees every datagram as received (the recorder), with the receive time the pipeline uses.
 * `bytes` is the tap's own copy (the receiver's buffer is reused), so a tap may keep it.
 */
export type DatagramTap = (bytes: Buffer, from: Source, receivedAt: number) => void;

export class DecodeStage {
  private readonly sourceFilter: SourceFilter | undefined;
  private readonly taps: DatagramTap[] = [];

  constructor(
    private readonly opts: DecoderOptions & { allowSource: readonly string[] },
    private readonly next: EventSink,
    private readonly observer: SourceObserver | undefined,
    private readonly counters: Pick<Stats, 'datagrams' | 'events'>,
    private readonly log: Logger,
  ) {
    this.sourceFilter = opts.allowSource.length > 0 ? new SourceFilter(opts.allowSource) : undefined;
  }

  tap(tap: DatagramTap): void {
    this.taps.push(tap);
  }

  /** `text`, when given, is `bytes` decoded (the receiver decodes an ASCII batch at once). */
  ingest(bytes: Buffer, from: Source, receivedAt: number, text?: string): void {
    const s = this.counters.datagrams;
    s.received++;
    if (this.sourceFilter !== undefined && !this.sourceFilter.allows(from.address)) {
      const n = ++s.dropped.source_not_allowed;
      this.log.warnLimited('drop:source', 'dropped a datagram from a source outside --allow-source', { from: from.address, droppedSoFar: n });
      return;
    }
    if (this.taps.length > 0) {
      // The recvmmsg receiver's `bytes` is a view into a buffer the next batch overwrites: taps
      // (the recorder) get a copy they may keep. Without taps the hot path copies nothing.
      const copy = Buffer.from(bytes);
      for (const tap of this.taps) tap(copy, from, receivedAt);
    }
    const r = decodeDatagram(bytes, from, receivedAt, this.opts, 'fast', text);
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
    if (r.event.type === 'ApiCall') this.counters.events.calls++;
    else this.counters.events.attempts++;
    this.observer?.observe(r.event.source, receivedAt);
    this.next.add(r.event);
  }
}
