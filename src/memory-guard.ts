/**
 * The memory ceiling (memoryCeilingMb): above it, half of the pending correlation state is
 * exported early, oldest first, and a full GC returns what that freed.
 *
 * Everything else the bridge holds is bounded by count (export spool, clients, metric series);
 * pending correlation state is the one part that grows with what senders do, so it is the part
 * shed. RSS is read on a timer and, during a flood, every so many datagrams or bytes (`note`),
 * so a burst between two ticks is caught too. A soft ceiling: RSS can overshoot between checks.
 *
 * A check never throws, on the timer or on the datagram path: reading RSS opens /proc/self/stat,
 * which fails with EMFILE when the process is out of file descriptors (an admin connection flood
 * did that, and the uncaught error ended the bridge). Then the last reading stands, counted in
 * memory.readErrors; a failure while shedding (a bug) is counted in internalErrors.
 *
 * Idle, it returns what a burst left: V8 grows its young generation to 2 × 16 MiB under load (the
 * start-up warm-up is enough) and shrinks it only in a collection made while allocation is low,
 * which an idle process never makes (the memory reducer comes a minute or more later): 108-110 MB
 * RSS 20 s after an idle start without these collections, 73-80 MB with them (BENCHMARKS.md). So
 * once no datagram has arrived for IDLE_COLLECT_AFTER_MS, a full collection, and another as long
 * again later (see `check`). At the check after each, glibc malloc's free memory is returned to
 * the OS (the addon's malloc_trim): the threads' arenas keep what they freed otherwise.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Logger } from './log.js';
import { trimMalloc } from './receive/batch-socket.js';
import type { Stats } from './stats.js';
import { timerGuard } from './timer-guard.js';

/** RSS is checked on a timer and, during a flood, every so many datagrams or bytes. */
export const MEMORY_CHECK_EVERY_MS = 500;
const MEMORY_CHECK_EVERY_DATAGRAMS = 16_384;
const MEMORY_CHECK_EVERY_BYTES = 8 * 1024 * 1024;
/** At most one shed per this gap, so the GC gets a chance to return what was freed. */
const MEMORY_SHED_MIN_GAP_MS = 100;
const MEMORY_GC_MIN_GAP_MS = 1_000;
/**
 * With nothing shed, the GC is run again only once RSS grew this much past what it was after
 * the last one: above the ceiling for good (state that cannot be shed, a ceiling below the idle
 * RSS), a GC every second found nothing while idle.
 */
const MEMORY_GC_REGROWTH_BYTES = 16 * 1024 * 1024;
/**
 * No datagram for this long: a full collection; twice that, another (then none until the next
 * idle period). Longer than V8's 5 s allocation-throughput window, so that the collection sees a
 * low rate and shrinks the young generation.
 */
export const IDLE_COLLECT_AFTER_MS = 6_000;
const IDLE_COLLECTIONS = 2;

/** A full, synchronous GC (global.gc without starting node with --expose-gc). */
const fullGc: () => void = (() => {
  try {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    return () => gc();
  } catch {
    return () => {};
  }
})();

/** What can be shed: the pipeline's pending correlation state. */
export interface Sheddable {
  readonly pending: { attempts: number; calls: number };
  shedOldest(n: number): { attempts: number; calls: number };
}

export class MemoryGuard {
  private sinceCheckDatagrams = 0;
  private sinceCheckBytes = 0;
  private lastShedAt = 0;
  private lastGcAt = 0;
  private rssAfterGc = 0;
  /** When a datagram was last seen by a check, and whether this idle period was collected. */
  private lastActiveAt = Date.now();
  private idleCollections = 0;
  /** An idle collection was made: malloc's free memory is returned at the next check. */
  private trimAtNextCheck = false;
  private timer: NodeJS.Timeout | undefined;
  /** shedAboveCeiling, its throws (a bug) counted in internalErrors, on the timer and on the datagram path alike. */
  private readonly checkGuarded: () => void;

  constructor(
    private readonly counters: Pick<Stats, 'memory' | 'internalErrors'>,
    private readonly state: Sheddable,
    /** What the export spools hold in memory: part of RSS, bounded on its own, not sheddable here. */
    private readonly spoolBytes: () => number,
    private readonly log: Logger,
  ) {
    this.checkGuarded = timerGuard(counters, log)('the memory check', () => this.shedAboveCeiling());
  }

  start(): void {
    this.timer = setInterval(() => this.check(), MEMORY_CHECK_EVERY_MS);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One datagram of `bytes` arrived: a flood is checked between timer ticks too. */
  note(bytes: number): void {
    if (++this.sinceCheckDatagrams >= MEMORY_CHECK_EVERY_DATAGRAMS || (this.sinceCheckBytes += bytes) >= MEMORY_CHECK_EVERY_BYTES) this.check();
  }

  private get stats(): Stats['memory'] {
    return this.counters.memory;
  }

  /** Reads RSS into the stats (and the peak); returns it, or undefined when it cannot be read (the last reading stays). */
  readRss(): number | undefined {
    const m = this.stats;
    m.spoolBytes = this.spoolBytes();
    let rss: number;
    try {
      rss = process.memoryUsage.rss();
    } catch (e) {
      m.readErrors++;
      this.log.warnLimited('memory-read', 'could not read resident memory: the memory ceiling is not checked until it can be', { error: (e as Error).message });
      return undefined;
    }
    m.rssBytes = rss;
    if (rss > m.peakRssBytes) m.peakRssBytes = rss;
    return rss;
  }

  check(): void {
    const now = Date.now();
    if (this.sinceCheckDatagrams > 0) {
      this.lastActiveAt = now;
      this.idleCollections = 0;
    } else if (this.idleCollections < IDLE_COLLECTIONS && now - this.lastActiveAt >= IDLE_COLLECT_AFTER_MS * (this.idleCollections + 1)) {
      // Twice, IDLE_COLLECT_AFTER_MS apart: V8 rates allocation between collections, so the first
      // (the first since the burst) still sees the burst's rate; the second sees the idle one.
      this.idleCollections++;
      this.lastGcAt = now;
      fullGc();
      this.trimAtNextCheck = true;
    } else if (this.trimAtNextCheck) {
      // What the collection (its sweeping ends on V8's worker threads after it returns, hence a
      // check later) and the threads (V8's compiler, libuv's pool) freed to malloc stays in its
      // arenas otherwise: 2-5 MB RSS idle (BENCHMARKS.md).
      this.trimAtNextCheck = false;
      trimMalloc();
    }
    this.sinceCheckDatagrams = 0;
    this.sinceCheckBytes = 0;
    this.checkGuarded();
  }

  private shedAboveCeiling(): void {
    const rss = this.readRss();
    const m = this.stats;
    if (rss === undefined || m.ceilingBytes === 0 || rss <= m.ceilingBytes) return;
    const now = Date.now();
    if (now - this.lastShedAt < MEMORY_SHED_MIN_GAP_MS) return;
    this.lastShedAt = now;
    const pending = this.state.pending;
    const shed = this.state.shedOldest(Math.ceil((pending.attempts + pending.calls) / 2));
    // V8 collects lazily far below its own heap limit: most of the RSS above the ceiling is
    // usually garbage (parsed datagrams). A full collection returns it to the OS now.
    if (now - this.lastGcAt >= MEMORY_GC_MIN_GAP_MS && (shed.attempts + shed.calls > 0 || rss > this.rssAfterGc + MEMORY_GC_REGROWTH_BYTES)) {
      this.lastGcAt = now;
      fullGc();
      this.rssAfterGc = this.readRss() ?? rss;
    }
    if (shed.attempts + shed.calls > 0) {
      m.sheds++;
      m.shedAttempts += shed.attempts;
      m.shedCalls += shed.calls;
    }
    const left = this.state.pending;
    const said =
      shed.attempts + shed.calls > 0
        ? 'resident memory above memoryCeilingMb: exported the oldest pending attempts and calls early'
        : 'resident memory above memoryCeilingMb: nothing pending to export early (the rest is the bridge itself, its spools and its bounded state)';
    this.log.warnLimited('memory', said, {
      rssBytes: rss,
      ceilingBytes: m.ceilingBytes,
      spoolBytes: m.spoolBytes,
      shedAttempts: shed.attempts,
      shedCalls: shed.calls,
      stillPending: left.attempts + left.calls,
    });
  }
}
