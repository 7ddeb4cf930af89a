/**
 * The translate stage: takes what correlation hands on (a finished call with its attempts, or
 * an orphan attempt), counts it (`correlation.*`), translates it and hands the result to the
 * call taps (the live view) and the sink (export, through the process-identity stage).
 * A bug past decoding costs one call (`internalErrors`), never the daemon.
 */
import type { Correlated } from '../correlate/types.js';
import type { Logger } from '../log.js';
import type { Stats } from '../stats.js';
import { translate, type TranslateOptions } from './translate.js';
import type { Translation } from './types.js';

/** Where translated calls go. */
export interface CallSink {
  write(c: Correlated, t: Translation): void;
}

/** Sees every translated call (the live view). */
export type CallTap = (c: Correlated, t: Translation) => void;

export class TranslateStage {
  private readonly taps: CallTap[] = [];

  constructor(
    private readonly opts: TranslateOptions,
    private readonly sink: CallSink,
    private readonly counters: Pick<Stats, 'correlation' | 'internalErrors'>,
    private readonly log: Logger,
  ) {}

  tap(tap: CallTap): void {
    this.taps.push(tap);
  }

  /** The correlator's output (an arrow: handed to the correlator as its emit function). */
  readonly correlated = (c: Correlated): void => {
    const s = this.counters.correlation;
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
      const t = translate(c, this.opts);
      for (const tap of this.taps) tap(c, t);
      this.sink.write(c, t);
    } catch (e) {
      this.counters.internalErrors++;
      this.log.warnLimited('translate', 'could not export a call', { error: (e as Error).message });
    }
  };
}
