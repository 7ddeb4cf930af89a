/**
 * The last 15 minutes of one table row, for the web view's charts: per HISTORY_SLOT_MS slot, the
 * calls, errors, retries and throttles, and the p50 / p99 latency of the calls in that slot.
 *
 * Nothing is recorded per call: a slot is what the row's running totals (its counters and latency
 * sketch, which the table keeps anyway) gained since the slot began, so a call costs the history
 * nothing. A slot is closed lazily, when a call lands in a later slot or a page reads: the owner
 * (model.ts) advances every history before it counts a call of a new slot, so whatever the totals
 * gained since the last boundary belongs to the slot being filled. Fixed size (HISTORY_SLOTS slots
 * of 6 numbers, plus the sketch's counts at the slot's start), whatever the traffic; no timer.
 * Time is passed in.
 */
import { SKETCH_BUCKETS, type LatencySketch } from './sketch.js';

/** One point per 5 s: 180 points cover 15 minutes. */
export const HISTORY_SLOT_MS = 5_000;
export const HISTORY_SLOTS = 180;

/** Per slot: calls, errors, retries, throttles, p50 ms, p99 ms (NaN when the slot had no call). */
const FIELDS = 6;

/** The history as the charts draw it: slot start times (epoch s) and per-second rates / latencies. */
export interface Series {
  t: number[];
  callsPerSec: number[];
  errorsPerSec: number[];
  retriesPerSec: number[];
  throttlesPerSec: number[];
  p50: (number | null)[];
  p99: (number | null)[];
}

/** What a history reads: a row's running totals (or the sum of all rows). */
export interface Totals {
  calls: number;
  errors: number;
  retries: number;
  throttles: number;
  latency: LatencySketch;
}

export class RowHistory {
  private readonly slots = new Float32Array(HISTORY_SLOTS * FIELDS);
  /** The slot being filled (floor(ms / HISTORY_SLOT_MS)); -1 before the first advance. */
  private current = -1;
  /** The first slot: the series starts there. */
  private first = -1;
  /** The totals when the slot being filled began. */
  private calls = 0;
  private errors = 0;
  private retries = 0;
  private throttles = 0;
  private latencyCount = 0;
  private readonly latencyCounts = new Uint32Array(SKETCH_BUCKETS);

  /** `totals` is read at each slot boundary and each read (a row: itself; all calls: their sum). */
  constructor(private readonly totals: () => Totals) {}

  /** The slot being filled, as [slot start (epoch s), calls/s, errors/s, retries/s, throttles/s, p50, p99]. */
  currentPoint(nowMs: number): (number | null)[] {
    this.advance(nowMs);
    const t = this.totals();
    const start = this.current * HISTORY_SLOT_MS;
    // A partial slot's rate is over the time it has covered so far (at least 1 s, so a first call is not a spike).
    const secs = Math.max(1, Math.min(HISTORY_SLOT_MS, nowMs - start) / 1000);
    return [
      start / 1000,
      (t.calls - this.calls) / secs,
      (t.errors - this.errors) / secs,
      (t.retries - this.retries) / secs,
      (t.throttles - this.throttles) / secs,
      t.latency.quantileSince(0.5, this.latencyCounts, this.latencyCount) ?? null,
      t.latency.quantileSince(0.99, this.latencyCounts, this.latencyCount) ?? null,
    ];
  }

  /** Every closed slot of the last HISTORY_SLOTS, oldest first, then the slot being filled. */
  series(nowMs: number): Series {
    this.advance(nowMs);
    const out: Series = { t: [], callsPerSec: [], errorsPerSec: [], retriesPerSec: [], throttlesPerSec: [], p50: [], p99: [] };
    const secs = HISTORY_SLOT_MS / 1000;
    for (let k = HISTORY_SLOTS - 1; k >= 1; k--) {
      const slot = this.current - k;
      if (slot < this.first) continue;
      const o = (slot % HISTORY_SLOTS) * FIELDS;
      const v = this.slots;
      out.t.push((slot * HISTORY_SLOT_MS) / 1000);
      out.callsPerSec.push(v[o]! / secs);
      out.errorsPerSec.push(v[o + 1]! / secs);
      out.retriesPerSec.push(v[o + 2]! / secs);
      out.throttlesPerSec.push(v[o + 3]! / secs);
      out.p50.push(Number.isNaN(v[o + 4]!) ? null : v[o + 4]!);
      out.p99.push(Number.isNaN(v[o + 5]!) ? null : v[o + 5]!);
    }
    const p = this.currentPoint(nowMs);
    out.t.push(p[0]!);
    out.callsPerSec.push(p[1]!);
    out.errorsPerSec.push(p[2]!);
    out.retriesPerSec.push(p[3]!);
    out.throttlesPerSec.push(p[4]!);
    out.p50.push(p[5] ?? null);
    out.p99.push(p[6] ?? null);
    return out;
  }

  /**
   * Closes the slot being filled when `nowMs` is past it: what the totals gained since it began is
   * its content; the slots nothing happened in are written empty. Call it before the totals count
   * a call of a later slot.
   */
  advance(nowMs: number): void {
    const slot = Math.floor(nowMs / HISTORY_SLOT_MS);
    if (this.current >= 0 && slot <= this.current) return;
    const t = this.totals();
    if (this.current >= 0) {
      const l = t.latency;
      this.write(
        this.current % HISTORY_SLOTS,
        t.calls - this.calls,
        t.errors - this.errors,
        t.retries - this.retries,
        t.throttles - this.throttles,
        l.quantileSince(0.5, this.latencyCounts, this.latencyCount) ?? NaN,
        l.quantileSince(0.99, this.latencyCounts, this.latencyCount) ?? NaN,
      );
      const empty = Math.min(slot - this.current - 1, HISTORY_SLOTS);
      for (let i = 1; i <= empty; i++) this.write((this.current + i) % HISTORY_SLOTS, 0, 0, 0, 0, NaN, NaN);
    } else this.first = slot;
    this.current = slot;
    this.calls = t.calls;
    this.errors = t.errors;
    this.retries = t.retries;
    this.throttles = t.throttles;
    this.latencyCount = t.latency.count;
    t.latency.copyCounts(this.latencyCounts);
  }

  private write(i: number, calls: number, errors: number, retries: number, throttles: number, p50: number, p99: number): void {
    const o = i * FIELDS;
    this.slots[o] = calls;
    this.slots[o + 1] = errors;
    this.slots[o + 2] = retries;
    this.slots[o + 3] = throttles;
    this.slots[o + 4] = p50;
    this.slots[o + 5] = p99;
  }
}
