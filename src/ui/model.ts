/**
 * What the live view shows, kept from translated calls (the tap after
 * translate in bridge.ts). Everything here is bounded: at most `maxRows`
 * Service.Api rows (the rest fold into one "(other)" row), a fixed-size
 * latency sketch and a 10-slot rate ring per row, the last `maxFailed` failed
 * calls and the last `maxLogs` log lines. Time is passed in, so it is testable.
 */
import type { Correlated } from '../correlate/types.js';
import { callSpanName, normaliseApi, normaliseService } from '../translate/names.js';
import type { Translation } from '../translate/types.js';
import { LatencySketch } from './sketch.js';

export const OTHER_ROW = '(other)';
/** Seconds of history behind a rate. */
export const RATE_WINDOW_S = 10;

export interface ViewLimits {
  maxRows: number;
  maxFailed: number;
  maxLogs: number;
}

export const DEFAULT_LIMITS: ViewLimits = { maxRows: 200, maxFailed: 50, maxLogs: 5 };

/**
 * Error codes the AWS SDKs retry as throttling (botocore, JS v2, Go v1
 * lists), plus HTTP 429.
 */
const THROTTLE = new Set([
  'Throttling',
  'ThrottlingException',
  'ThrottledException',
  'RequestThrottledException',
  'TooManyRequestsException',
  'ProvisionedThroughputExceededException',
  'TransactionInProgressException',
  'RequestLimitExceeded',
  'BandwidthLimitExceeded',
  'LimitExceededException',
  'RequestThrottled',
  'SlowDown',
  'PriorRequestNotComplete',
  'EC2ThrottledException',
  '429',
]);

export function isThrottle(errorType: unknown, status: unknown): boolean {
  return (typeof errorType === 'string' && THROTTLE.has(errorType)) || status === 429;
}

/** Calls per second over the last RATE_WINDOW_S whole seconds, from a ring of per-second counts. */
export class RateRing {
  private readonly slots = new Uint32Array(RATE_WINDOW_S);
  private second = -1;

  add(nowMs: number, n = 1): void {
    this.advance(Math.floor(nowMs / 1000));
    this.slots[this.second % RATE_WINDOW_S]! += n;
  }

  /** Average over the window ending at `nowMs` (the current, partial second excluded). */
  rate(nowMs: number): number {
    this.advance(Math.floor(nowMs / 1000));
    let sum = 0;
    for (let i = 1; i < RATE_WINDOW_S; i++) sum += this.slots[(this.second - i + RATE_WINDOW_S * 2) % RATE_WINDOW_S]!;
    // Include the current second so a burst shows at once; divide by the time it covers.
    sum += this.slots[this.second % RATE_WINDOW_S]!;
    const covered = RATE_WINDOW_S - 1 + ((nowMs % 1000) + 1) / 1000;
    return sum / covered;
  }

  private advance(sec: number): void {
    if (this.second < 0) {
      this.second = sec;
      return;
    }
    if (sec <= this.second) return;
    const steps = Math.min(sec - this.second, RATE_WINDOW_S);
    for (let i = 1; i <= steps; i++) this.slots[(this.second + i) % RATE_WINDOW_S] = 0;
    this.second = sec;
  }
}

export interface Row {
  name: string;
  calls: number;
  errors: number;
  retries: number;
  throttles: number;
  latency: LatencySketch;
  rate: RateRing;
  lastError?: { at: number; text: string };
}

export interface FailedCall {
  at: number;
  name: string;
  clientId: string;
  errorType: string;
  status?: number;
  attempts: number;
  latencyMs: number;
  message: string;
}

export interface LogLine {
  at: number;
  level: string;
  text: string;
}

export class ViewModel {
  readonly rows = new Map<string, Row>();
  /** Newest last. */
  readonly failed: FailedCall[] = [];
  readonly logs: LogLine[] = [];
  calls = 0;
  orphans = 0;

  constructor(readonly limits: ViewLimits = DEFAULT_LIMITS) {}

  /** One correlated call (or orphan attempt) and what it became. */
  add(c: Correlated, t: Translation, nowMs: number): void {
    if (c.kind === 'orphan') {
      this.orphans++;
      return;
    }
    this.calls++;
    const name = callSpanName(normaliseService(c.call.service), normaliseApi(c.call.api));
    const row = this.row(name);
    row.calls++;
    row.rate.add(nowMs);
    const latency = c.call.latency ?? Math.max(0, t.span.endMs - t.span.startMs);
    row.latency.add(latency);
    const attempts = Math.max(c.call.attemptCount ?? 0, c.attempts.length);
    row.retries += Math.max(0, attempts - 1);
    for (const a of t.span.children) {
      if (isThrottle(a.attributes['error.type'], a.attributes['http.response.status_code'])) row.throttles++;
    }
    if (t.span.children.length === 0 && isThrottle(t.span.attributes['error.type'], t.span.attributes['http.response.status_code'])) row.throttles++;
    if (t.span.status.code !== 'error') return;
    row.errors++;
    const errorType = String(t.span.attributes['error.type'] ?? '_OTHER');
    const message = t.span.status.message ?? '';
    row.lastError = { at: nowMs, text: message ? `${errorType}: ${message}` : errorType };
    const status = t.span.attributes['http.response.status_code'];
    this.failed.push({
      at: nowMs,
      name,
      clientId: c.call.clientId,
      errorType,
      ...(typeof status === 'number' ? { status } : {}),
      attempts,
      latencyMs: latency,
      message,
    });
    if (this.failed.length > this.limits.maxFailed) this.failed.shift();
  }

  log(at: number, level: string, text: string): void {
    this.logs.push({ at, level, text });
    if (this.logs.length > this.limits.maxLogs) this.logs.shift();
  }

  private row(name: string): Row {
    const existing = this.rows.get(name);
    if (existing) return existing;
    // Keep one slot for "(other)": at most maxRows rows in all.
    const key = this.rows.size >= this.limits.maxRows - 1 ? OTHER_ROW : name;
    let row = this.rows.get(key);
    if (!row) {
      row = { name: key, calls: 0, errors: 0, retries: 0, throttles: 0, latency: new LatencySketch(), rate: new RateRing() };
      this.rows.set(key, row);
    }
    return row;
  }

  /** Rows by calls, most first (ties by name, so the order is stable). */
  sortedRows(): Row[] {
    return [...this.rows.values()].sort((a, b) => b.calls - a.calls || (a.name < b.name ? -1 : 1));
  }
}
