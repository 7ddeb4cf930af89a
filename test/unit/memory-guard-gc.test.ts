/**
 * The memory guard's forced GC (src/memory-guard.ts): above the ceiling with nothing to shed
 * (state it cannot shed, or a ceiling under the idle RSS), it ran a full GC every second while
 * idle. Forced collections are counted from node's own GC entries; the clock is faked.
 */
import { constants, PerformanceObserver } from 'node:perf_hooks';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createLogger } from '../../src/log.js';
import { MemoryGuard, type Sheddable } from '../../src/memory-guard.js';
import { newStats } from '../../src/stats.js';

let forced = 0;
let observer: PerformanceObserver;
beforeEach(() => {
  forced = 0;
  observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) if (((e as { detail?: { flags?: number } }).detail?.flags ?? 0) & constants.NODE_PERFORMANCE_GC_FLAGS_FORCED) forced++;
  });
  observer.observe({ entryTypes: ['gc'] });
  vi.useFakeTimers({ toFake: ['Date'] });
});
afterEach(() => {
  observer.disconnect();
  vi.useRealTimers();
});

/** GC entries are delivered after the fact: a real turn of the event loop. */
const settle = () => new Promise((r) => setTimeout(r, 50));

function guard(pending: () => number, log = createLogger('none')) {
  const stats = newStats(0);
  stats.memory.ceilingBytes = 1; // every RSS is above it
  const state: Sheddable = {
    get pending() {
      return { attempts: pending(), calls: 0 };
    },
    shedOldest: (n) => ({ attempts: Math.min(n, pending()), calls: 0 }),
  };
  return new MemoryGuard(stats, state, () => 0, log);
}

describe('the memory guard above its ceiling', () => {
  it('with nothing to shed, one forced GC, not one a second', async () => {
    const g = guard(() => 0);
    for (let i = 0; i < 5; i++) {
      vi.setSystemTime(Date.now() + 1_100);
      g.check();
    }
    await settle();
    expect(forced).toBe(1);
  });

  it('says what it did: exported the oldest pending state, or that nothing was pending', async () => {
    try {
      saysWhatItDid();
    } finally {
      await settle(); // its forced collections' entries, before the next test counts
    }
  });

  function saysWhatItDid(): void {
    for (const pending of [0, 10]) {
      const lines: string[] = [];
      vi.setSystemTime(Date.now() + 60_000); // past the previous guard's warning interval
      guard(() => pending, createLogger('warn', (l) => void lines.push(l))).check();
      const msgs = lines.map((l) => (JSON.parse(l) as { msg: string }).msg).filter((m) => m.startsWith('resident memory above'));
      expect(msgs).toHaveLength(1);
      expect(msgs[0]).toContain(pending > 0 ? 'exported the oldest pending attempts and calls early' : 'nothing pending to export early');
    }
  }

  it('with state shed at each check, a forced GC at each (at most one a second)', async () => {
    const g = guard(() => 10);
    for (let i = 0; i < 3; i++) {
      vi.setSystemTime(Date.now() + 1_100);
      g.check();
      g.check(); // within the second: no second GC
    }
    await settle();
    expect(forced).toBe(3);
  });
});
