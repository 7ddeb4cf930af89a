/**
 * Timer callbacks that throw (src/timer-guard.ts): counted in internalErrors, logged once per
 * interval, and the timer keeps running. Without the guard the first throw is uncaught and
 * would end the bridge (here: fail the run with an unhandled error).
 */
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';
import { timerGuard } from '../../src/timer-guard.js';

describe('timerGuard', () => {
  it('a tick that throws is counted and logged; the interval goes on', async () => {
    const counters = { internalErrors: 0 };
    const lines: string[] = [];
    const guard = timerGuard(counters, createLogger('warn', (l) => lines.push(l)));
    let ticks = 0;
    await new Promise<void>((resolve) => {
      const t = setInterval(
        guard('the test tick', () => {
          if (++ticks === 3) {
            clearInterval(t);
            resolve();
          }
          throw new Error(`tick ${ticks} broke`);
        }),
        1,
      );
    });
    expect(counters.internalErrors).toBe(3);
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({ level: 'warn', msg: 'the test tick failed (a bug): counted in internalErrors, the bridge goes on', error: 'tick 1 broke' });
  });
});
