/**
 * What the live views show (the terminal's and the web page's), kept from translated calls (the
 * tap after translate in bridge.ts). Everything here is bounded: at most `maxRows` Service.Api
 * rows (the rest fold into one "(other)" row), a fixed-size latency sketch and a 10-slot rate
 * ring per row, the last `maxFailed` failed calls and the last `maxLogs` log lines. The web view
 * asks for more, each bounded too: rows per client and Service.Api (`perClient`, at most
 * `maxRows` of them), 15 minutes of history per row (`history`), and the last `maxRecent` calls
 * with their attempts, for the waterfall. Time is passed in, so it is testable.
 */
import { ATTR_AWS_EXTENDED_REQUEST_ID, ATTR_AWS_REQUEST_ID, ATTR_HTTP_RESPONSE_STATUS_CODE } from '../translate/semconv.js';
import type { Correlated } from '../correlate/types.js';
import { CSM_MATCH_AMBIGUOUS } from '../translate/keys.js';
import type { SpanRecord, Translation } from '../translate/types.js';
import { HISTORY_SLOT_MS, RowHistory, type Totals } from './history.js';
import { bucketOf as latencyBucketOf, LatencySketch } from './sketch.js';

export const OTHER_ROW = '(other)';
/** Seconds of history behind a rate. */
export const RATE_WINDOW_S = 10;

export interface ViewLimits {
  maxRows: number;
  maxFailed: number;
  maxLogs: number;
  /** Also keep rows per (ClientId, Service.Api), at most maxRows of them (the web view). */
  perClient?: boolean;
  /** Keep 15 minutes of history per row and for all calls (the web view's charts). */
  history?: boolean;
  /**
   * Keep the last this many calls with their attempts (the web view's feed and waterfall); 0 = none.
   * Admitted at most this many per second, in bursts of as many (see admitRecent).
   */
  maxRecent?: number;
}

export const DEFAULT_LIMITS: ViewLimits = { maxRows: 200, maxFailed: 50, maxLogs: 5 };

/** Attempts kept per recent call (a waterfall of more is cut, and says how many it left out). */
export const MAX_WATERFALL_ATTEMPTS = 20;
/**
 * Characters kept of a datagram's strings in recent calls and last errors (request ids have no
 * other bound than the datagram's size; ClientIds and messages are cut to 256 before this).
 */
export const MAX_TEXT = 256;

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
  /** name, or ClientId NUL name for a per-client row: unique among the model's rows. */
  key: string;
  name: string;
  /** Set on per-client rows. */
  clientId?: string;
  calls: number;
  errors: number;
  retries: number;
  throttles: number;
  latency: LatencySketch;
  rate: RateRing;
  lastError?: { at: number; text: string };
  history?: RowHistory;
}

/** One attempt of a recent call, as the waterfall draws it (times are epoch ms). */
export interface RecentAttempt {
  startMs: number;
  endMs: number;
  status?: number;
  errorType?: string;
  message?: string;
  requestId?: string;
  extendedRequestId?: string;
  ambiguous: boolean;
}

/** A recent call: what the feed lists and the waterfall draws. */
export interface RecentCall {
  /** Increases by one per call (the first is 1): the web page asks for what is newer than what it has. */
  seq: number;
  at: number;
  clientId: string;
  name: string;
  startMs: number;
  endMs: number;
  latencyMs: number;
  error: boolean;
  errorType?: string;
  message?: string;
  status?: number;
  attemptCount: number;
  attempts: RecentAttempt[];
  /** Attempts left out of `attempts` (beyond MAX_WATERFALL_ATTEMPTS). */
  attemptsCut: number;
  /** The call's attempts the SDK counted but the bridge never received. */
  missingAttempts: number;
  /** The application trace this call was joined into (src/join/), once it is. */
  traceId?: string;
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
  /** Per (ClientId, Service.Api), with limits.perClient. */
  readonly clientRows = new Map<string, Row>();
  /** The same rows by ClientId, then name: found without making a key string per call (folded pairs are not kept here). */
  private readonly clientIndex = new Map<string, Map<string, Row>>();
  /** The last call's rows (rows are never removed): traffic repeats one client and API at a time, found without hashing its strings. */
  private last: { name: string; clientId: string; row: Row; clientRow: Row | undefined } | undefined;
  /** All calls together (the charts' "all" selection), with limits.history: the sum of the Service.Api rows. */
  readonly total: RowHistory | undefined;
  private readonly sum: Totals = { calls: 0, errors: 0, retries: 0, throttles: 0, latency: new LatencySketch() };
  /** The history slot the last counted call fell in (histories are advanced when a call starts a new one). */
  private slot = -1;
  /** Newest last. */
  readonly failed: FailedCall[] = [];
  readonly logs: LogLine[] = [];
  /**
   * The last limits.maxRecent calls, as the tap saw them: a ring of references, so a call costs
   * no copy here; their views (RecentCall) are built only when a page asks (recentAfter).
   */
  private readonly ringCalls: (Correlated & { kind: 'call' })[] = [];
  private readonly ringTranslations: Translation[] = [];
  private readonly ringAt: number[] = [];
  /** Calls kept in all (the newest's seq). */
  private seq = 0;
  /** Token bucket of recent calls (admitRecent): tokens left, and when it was last filled. */
  private recentTokens: number;
  private recentFilledAt = 0;
  /** Trace ids of calls joined into an application's trace (weak: gone with the translation). */
  private readonly traceIds = new WeakMap<Translation, string>();
  calls = 0;
  orphans = 0;

  constructor(readonly limits: ViewLimits = DEFAULT_LIMITS) {
    this.total = limits.history ? new RowHistory(() => this.sumOfRows()) : undefined;
    this.recentTokens = limits.maxRecent ?? 0;
  }

  /** One correlated call (or orphan attempt) and what it became. */
  add(c: Correlated, t: Translation, nowMs: number): void {
    if (c.kind === 'orphan') {
      this.orphans++;
      return;
    }
    this.calls++;
    // The call span's name is Service.Api as the table shows it (translate made it, once per operation).
    const name = t.span.name;
    const latency = c.call.latency ?? Math.max(0, t.span.endMs - t.span.startMs);
    const attempts = Math.max(c.call.attemptCount ?? 0, c.attempts.length);
    const retries = Math.max(0, attempts - 1);
    let throttles = 0;
    for (const a of t.span.children) {
      if (isThrottle(a.attributes['error.type'], a.attributes[ATTR_HTTP_RESPONSE_STATUS_CODE])) throttles++;
    }
    if (t.span.children.length === 0 && isThrottle(t.span.attributes['error.type'], t.span.attributes[ATTR_HTTP_RESPONSE_STATUS_CODE])) throttles++;
    const error = t.span.status.code === 'error';
    const errorType = error ? String(t.span.attributes['error.type'] ?? '_OTHER') : undefined;
    const message = error ? (t.span.status.message ?? '') : '';
    const lastError = errorType === undefined ? undefined : { at: nowMs, text: cut(message ? `${errorType}: ${message}` : errorType) };
    // A call of a new history slot: every history closes the slot the totals have filled so far.
    if (this.total !== undefined && Math.floor(nowMs / HISTORY_SLOT_MS) !== this.slot) this.advanceHistories(nowMs);
    const clientId = c.call.clientId;
    let last = this.last;
    if (last === undefined || last.name !== name || last.clientId !== clientId) {
      last = this.last = { name, clientId, row: this.row(this.rows, name, name), clientRow: this.limits.perClient ? this.clientRow(clientId, name) : undefined };
    }
    // the latency's bucket once for both rows (a logarithm)
    const bucket = latencyBucketOf(latency);
    this.count(last.row, nowMs, bucket, latency, retries, throttles, lastError);
    if (last.clientRow !== undefined) this.count(last.clientRow, nowMs, bucket, latency, retries, throttles, lastError);
    if (this.limits.maxRecent && this.admitRecent(nowMs)) {
      const i = this.seq++ % this.limits.maxRecent;
      this.ringCalls[i] = c;
      this.ringTranslations[i] = t;
      this.ringAt[i] = nowMs;
    }
    if (errorType === undefined) return;
    const status = t.span.attributes[ATTR_HTTP_RESPONSE_STATUS_CODE];
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

  /**
   * Whether a call goes into the recent ring: at most maxRecent per second, bursts of maxRecent.
   * Keeping every call at a sustained rate kept the last 200 calls (their datagrams, attempts and
   * attributes) alive across every young-generation collection: each copied 0.6 MB more (pause 0.6 ->
   * 1.2 ms, about 0.15 us per datagram at 100k/s). The page shows at most FEED_PER_UPDATE of them a
   * second anyway: at such rates the feed was a sample already; now calls kept live ~1 s and die old.
   */
  private admitRecent(nowMs: number): boolean {
    const max = this.limits.maxRecent!;
    const elapsed = nowMs - this.recentFilledAt;
    this.recentFilledAt = nowMs;
    // a clock that went back refills nothing
    if (elapsed > 0) this.recentTokens = Math.min(max, this.recentTokens + (elapsed * max) / 1000);
    if (this.recentTokens < 1) return false;
    this.recentTokens--;
    return true;
  }

  /** A call went into an application's trace (the join, up to its window after the call). */
  joined(t: Translation, traceId: string): void {
    this.traceIds.set(t, traceId);
  }

  /** The newest recent call's seq (0 before the first). */
  get lastSeq(): number {
    return this.seq;
  }

  /** Recent calls newer than `seq` (at most limits.maxRecent), oldest first. */
  recentAfter(seq: number): RecentCall[] {
    const max = this.limits.maxRecent ?? 0;
    const out: RecentCall[] = [];
    for (let s = Math.max(seq, this.seq - max) + 1; s <= this.seq; s++) out.push(this.recentView(s));
    return out;
  }

  /** Of the recent calls up to `seq`, those whose translation is in `ts`, with their trace ids. */
  joinedAmong(ts: ReadonlySet<Translation>, seq: number): [number, string][] {
    const max = this.limits.maxRecent ?? 0;
    const out: [number, string][] = [];
    for (let s = Math.max(0, this.seq - max) + 1; s <= Math.min(seq, this.seq); s++) {
      const t = this.ringTranslations[(s - 1) % max]!;
      const id = ts.has(t) ? this.traceIds.get(t) : undefined;
      if (id !== undefined) out.push([s, id]);
    }
    return out;
  }

  private count(row: Row, nowMs: number, latencyBucket: number, latency: number, retries: number, throttles: number, lastError: Row['lastError']): void {
    row.calls++;
    row.rate.add(nowMs);
    row.latency.addToBucket(latencyBucket, latency);
    row.retries += retries;
    row.throttles += throttles;
    if (lastError === undefined) return;
    row.errors++;
    row.lastError = lastError;
  }

  /** Closes, in every history, the slot the totals have filled so far (before a call of a later slot is counted). */
  private advanceHistories(nowMs: number): void {
    this.slot = Math.floor(nowMs / HISTORY_SLOT_MS);
    this.total?.advance(nowMs);
    for (const r of this.rows.values()) r.history?.advance(nowMs);
    for (const r of this.clientRows.values()) r.history?.advance(nowMs);
  }

  /** The running totals of all calls: the Service.Api rows summed ((other) included), into one reused object. */
  private sumOfRows(): Totals {
    const s = this.sum;
    s.calls = s.errors = s.retries = s.throttles = 0;
    s.latency.reset();
    for (const r of this.rows.values()) {
      s.calls += r.calls;
      s.errors += r.errors;
      s.retries += r.retries;
      s.throttles += r.throttles;
      s.latency.merge(r.latency);
    }
    return s;
  }

  /** The view of recent call `seq` (1-based; must still be in the ring). */
  private recentView(seq: number): RecentCall {
    const i = (seq - 1) % this.limits.maxRecent!;
    const c = this.ringCalls[i]!;
    const t = this.ringTranslations[i]!;
    const children = t.span.children.length > MAX_WATERFALL_ATTEMPTS ? t.span.children.slice(0, MAX_WATERFALL_ATTEMPTS) : t.span.children;
    const status = t.span.attributes[ATTR_HTTP_RESPONSE_STATUS_CODE];
    const error = t.span.status.code === 'error';
    const message = error ? (t.span.status.message ?? '') : '';
    const traceId = this.traceIds.get(t);
    return {
      seq,
      at: this.ringAt[i]!,
      clientId: cut(c.call.clientId),
      name: t.span.name,
      startMs: t.span.startMs,
      endMs: t.span.endMs,
      latencyMs: c.call.latency ?? Math.max(0, t.span.endMs - t.span.startMs),
      error,
      ...(error ? { errorType: cut(String(t.span.attributes['error.type'] ?? '_OTHER')) } : {}),
      ...(message ? { message: cut(message) } : {}),
      ...(typeof status === 'number' ? { status } : {}),
      attemptCount: Math.max(c.call.attemptCount ?? 0, c.attempts.length),
      attempts: children.map(recentAttempt).sort((a, b) => a.startMs - b.startMs),
      attemptsCut: t.span.children.length - children.length,
      missingAttempts: c.missingAttempts,
      ...(traceId !== undefined ? { traceId } : {}),
    };
  }

  log(at: number, level: string, text: string): void {
    this.logs.push({ at, level, text });
    if (this.logs.length > this.limits.maxLogs) this.logs.shift();
  }

  private clientRow(clientId: string, name: string): Row {
    let byName = this.clientIndex.get(clientId);
    const found = byName?.get(name);
    if (found !== undefined) return found;
    const row = this.row(this.clientRows, `${clientId}\u0000${name}`, name, clientId);
    if (row.key === OTHER_ROW) return row;
    if (byName === undefined) this.clientIndex.set(clientId, (byName = new Map()));
    byName.set(name, row);
    return row;
  }

  private row(rows: Map<string, Row>, key: string, name: string, clientId?: string): Row {
    const existing = rows.get(key);
    if (existing) return existing;
    // Keep one slot for "(other)": at most maxRows rows in all.
    const full = rows.size >= this.limits.maxRows - 1;
    const k = full ? OTHER_ROW : key;
    let row = rows.get(k);
    if (!row) {
      row = {
        key: k,
        name: full ? OTHER_ROW : name,
        ...(clientId !== undefined && !full ? { clientId } : {}),
        calls: 0,
        errors: 0,
        retries: 0,
        throttles: 0,
        latency: new LatencySketch(),
        rate: new RateRing(),
      };
      if (this.limits.history) {
        const r = row;
        r.history = new RowHistory(() => r);
        r.history.advance(this.slot * HISTORY_SLOT_MS);
      }
      rows.set(k, row);
    }
    return row;
  }

  /** Rows by calls, most first (ties by name, so the order is stable). */
  sortedRows(): Row[] {
    return [...this.rows.values()].sort((a, b) => b.calls - a.calls || (a.name < b.name ? -1 : 1));
  }
}

function cut(s: string): string {
  return s.length > MAX_TEXT ? `${s.slice(0, MAX_TEXT)}…` : s;
}

function recentAttempt(a: SpanRecord): RecentAttempt {
  const status = a.attributes[ATTR_HTTP_RESPONSE_STATUS_CODE];
  const errorType = a.attributes['error.type'];
  const requestId = a.attributes[ATTR_AWS_REQUEST_ID];
  const extended = a.attributes[ATTR_AWS_EXTENDED_REQUEST_ID];
  return {
    startMs: a.startMs,
    endMs: a.endMs,
    ...(typeof status === 'number' ? { status } : {}),
    ...(errorType !== undefined ? { errorType: cut(String(errorType)) } : {}),
    ...(a.status.message ? { message: cut(a.status.message) } : {}),
    ...(typeof requestId === 'string' ? { requestId: cut(requestId) } : {}),
    ...(typeof extended === 'string' ? { extendedRequestId: cut(extended) } : {}),
    ambiguous: a.attributes[CSM_MATCH_AMBIGUOUS] === true,
  };
}
