/**
 * The last 15 minutes of one table row, for the web view's charts: per HISTORY_SLOT_MS slot, the
 * calls, errors, retries and throttles, and the p50 / p99 latency of the calls in that slot.
 * Fixed size (HISTORY_SLOTS slots of 6 numbers, plus one latency sketch for the slot being
 * filled), whatever the traffic. Slots are closed lazily, on the next call or read, so an idle
 * row costs no timer. Time is passed in.
 */
import { LatencySketch } from './sketch.js';

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

export class RowHistory {
  private readonly slots = new Float32Array(HISTORY_SLOTS * FIELDS);
  /** The slot being filled (floor(ms / HISTORY_SLOT_MS)); -1 before the first call. */
  private current = -1;
  /** The first slot with a call: the series starts there. */
  private first = -1;
  private readonly sketch = new LatencySketch();
  private calls = 0;
  private errors = 0;
  private retries = 0;
  private throttles = 0;

  add(nowMs: number, latencyMs: number, error: boolean, retries: number, throttles: number): void {
    this.advance(nowMs);
    this.calls++;
    if (error) this.errors++;
    this.retries += retries;
    this.throttles += throttles;
    this.sketch.add(latencyMs);
  }

  /** The slot being filled, as [slot start (epoch s), calls/s, errors/s, retries/s, throttles/s, p50, p99]. */
  currentPoint(nowMs: number): (number | null)[] {
    this.advance(nowMs);
    const start = this.current * HISTORY_SLOT_MS;
    // A partial slot's rate is over the time it has covered so far (at least 1 s, so a first call is not a spike).
    const secs = Math.max(1, Math.min(HISTORY_SLOT_MS, nowMs - start) / 1000);
    return [
      start / 1000,
      this.calls / secs,
      this.errors / secs,
      this.retries / secs,
      this.throttles / secs,
      this.sketch.quantile(0.5) ?? null,
      this.sketch.quantile(0.99) ?? null,
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

  /** Closes the current slot (and writes empty ones for the slots nothing happened in) when `nowMs` is past it. */
  private advance(nowMs: number): void {
    const slot = Math.floor(nowMs / HISTORY_SLOT_MS);
    if (this.current < 0) {
      this.current = this.first = slot;
      return;
    }
    if (slot <= this.current) return;
    const o = this.current % HISTORY_SLOTS;
    this.write(o, this.calls, this.errors, this.retries, this.throttles, this.sketch.quantile(0.5) ?? NaN, this.sketch.quantile(0.99) ?? NaN);
    const empty = Math.min(slot - this.current - 1, HISTORY_SLOTS);
    for (let i = 1; i <= empty; i++) this.write((this.current + i) % HISTORY_SLOTS, 0, 0, 0, 0, NaN, NaN);
    this.current = slot;
    this.calls = this.errors = this.retries = this.throttles = 0;
    this.sketch.reset();
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
