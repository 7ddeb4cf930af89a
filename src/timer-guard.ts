/**
 * Timer callbacks that cannot end the process. Node ends it on anything a timer callback
 * throws, and the bridge's timers (expiry, batches, the memory check) run the stages over data
 * from outside: a throw there is a bug, and costs the work of one tick, counted in
 * internalErrors and logged, never the daemon and what it holds. The timer keeps running.
 */
import type { Logger } from './log.js';

export type TimerGuard = (what: string, tick: () => void) => () => void;

export function timerGuard(counters: { internalErrors: number }, log: Pick<Logger, 'warnLimited'>): TimerGuard {
  return (what, tick) => () => {
    try {
      tick();
    } catch (e) {
      counters.internalErrors++;
      log.warnLimited(`timer ${what}`, `${what} failed (a bug): counted in internalErrors, the bridge goes on`, { error: (e as Error)?.message ?? String(e) });
    }
  };
}
