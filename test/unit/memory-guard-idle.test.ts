/**
 * The memory guard's idle collections (src/memory-guard.ts) also return what glibc malloc holds
 * free (the addon's malloc_trim): memory freed in the middle of malloc's heap, as threads and
 * collections leave it, otherwise stays resident for good. Freed buffers between kept ones make
 * that shape here; the clock is faked, RSS is the process's own.
 */
import { readFileSync } from 'node:fs';
import { runInNewContext } from 'node:vm';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createLogger } from '../../src/log.js';
import { IDLE_COLLECT_AFTER_MS, MemoryGuard } from '../../src/memory-guard.js';
import { loadBatchAddon } from '../../src/receive/batch-socket.js';
import { newStats } from '../../src/stats.js';

const glibc = !!(process.report.getReport() as { header?: { glibcVersionRuntime?: string } }).header?.glibcVersionRuntime;
/** Malloc'd (ArrayBuffer backing stores below glibc's mmap threshold), then freed but every 64th. */
const BLOCK_BYTES = 16 * 1024;
const BLOCKS = 4096;
const MB = 2 ** 20;
const SWEEP_WAIT_MS = 300;

const rssBytes = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))![1]) * 1024;

beforeEach(() => void vi.useFakeTimers({ toFake: ['Date'] }));
afterEach(() => void vi.useRealTimers());

describe('the idle collections', () => {
  it.runIf(!!loadBatchAddon().addon && glibc)('return the memory malloc holds free to the OS', async () => {
    const stats = newStats(0);
    const g = new MemoryGuard(stats, { pending: { attempts: 0, calls: 0 }, shedOldest: () => ({ attempts: 0, calls: 0 }) }, () => 0, createLogger('none'));
    let blocks: Buffer[] | undefined = Array.from({ length: BLOCKS }, () => Buffer.allocUnsafeSlow(BLOCK_BYTES).fill(1));
    const kept = blocks.filter((_, i) => i % 64 === 63);
    blocks = undefined;
    // Freed to malloc before the idle period: a collection, and real time for V8's concurrent
    // sweeping (which frees the buffers' memory) to end.
    runInNewContext('gc')(); // gc is exposed: src/memory-guard.ts set --expose-gc at its import
    await new Promise((r) => setTimeout(r, SWEEP_WAIT_MS));
    const before = rssBytes();
    vi.setSystemTime(Date.now() + IDLE_COLLECT_AFTER_MS);
    g.check(); // the first idle collection
    g.check(); // the check after it: the trim
    const returned = before - rssBytes();
    expect(kept).toHaveLength(BLOCKS / 64);
    // 63 of every 64 blocks freed: 63 MB; at least half of it back.
    expect(returned / MB).toBeGreaterThan((BLOCKS * BLOCK_BYTES * 0.5) / MB);
  });
});
