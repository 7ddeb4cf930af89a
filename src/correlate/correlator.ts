/**
 * Correlate: attach ApiCallAttempt events to their ApiCall.
 *
 * CSM has no join id (csm-protocol.md §5, otel-mapping.md §1.9). Events are
 * grouped by (SDK family, source IP, ClientId, Service, Api, Region), plus the
 * source port for SDK families that keep one socket. Inside a group an ApiCall
 * picks the chain of attempts that best explains its time window:
 *
 *  - the first attempt starts at (or just after) the call start,
 *  - the last attempt ends at the call end, and carries the call's final
 *    status / exception (and, for Go v1, its request id),
 *  - attempts are sequential and every attempt but the last failed.
 *
 * Attempts-first SDKs (botocore, JS v2, Go v1, Java v1, PHP, .NET) send every
 * attempt before its ApiCall, so the call claims from pending attempts and is
 * emitted at once. Ruby sends the ApiCall first: the call waits (callHoldMs)
 * and each arriving attempt claims the waiting call whose window it fits best.
 * Unknown SDKs get both behaviours.
 *
 * No timers here: the caller drives `expire(now)`. State is per group, kept
 * sorted by attempt end time, so each event only looks at the attempts that
 * end inside its call's window.
 */
import type { CsmApiCall, CsmAttempt, CsmEvent, SdkFamily } from '../decode/types.js';
import type { Correlated, CorrelatorOptions } from './types.js';

export const DEFAULT_CORRELATOR_OPTIONS: CorrelatorOptions = {
  attemptHoldMs: 300_000,
  callHoldMs: 3_000,
  maxPending: 100_000,
  toleranceMs: 10,
};

/** One UDP socket per session/process/client: the ApiCall and its attempts share the source port. */
const STABLE_PORT: ReadonlySet<SdkFamily> = new Set<SdkFamily>(['botocore', 'go-v1', 'java-v1', 'php-v3', 'dotnet']);
/** Every attempt is sent before its ApiCall (captured for botocore, JS v2, Go v1; source for the rest). */
const ATTEMPTS_FIRST: ReadonlySet<SdkFamily> = new Set<SdkFamily>(['botocore', 'js-v2', 'go-v1', 'java-v1', 'php-v3', 'dotnet']);
/** The ApiCall is sent before its attempts. */
const CALL_FIRST: ReadonlySet<SdkFamily> = new Set<SdkFamily>(['ruby-v3']);

/** How many best first / last candidates are paired when choosing a chain. */
const TOP_K = 4;
/** Score terms (ms-equivalents). */
const W_FIRST_LATE = 0.5; // first attempt starting after the call start: normal (build, sign, credentials)
const W_EARLY = 4; // first attempt before call start / last attempt after call end: only clock rounding
const P_REQUEST_ID = 1_000; // Go v1: ApiCall request id = last attempt's
const P_ATTEMPT_NUMBER = 500; // some Go v1 releases number attempts
const P_USER_AGENT = 200;
const P_FINAL_STATUS = 100;
const P_RETRIED_SUCCESS = 100; // a non-final attempt that succeeded
const P_FINAL_EXCEPTION = 50;
const B_SAME_PORT = 0.5; // JS v2 / Ruby: a weak hint only
/**
 * Attempts of one call are sequential; botocore and Go v1 measure tightly, so only ms rounding is
 * allowed between one's end and the next's start. JS v2 was seen (under CPU load) reporting
 * retries that overlap by several ms, so the other SDKs get the configured tolerance.
 */
const SEQ_TOLERANCE_MS = 2;
const TIGHT_TIMING: ReadonlySet<SdkFamily> = new Set<SdkFamily>(['botocore', 'go-v1']);
/**
 * A retry this soon after the previous attempt is unusual: Go v1's minimum retry delay is 30 ms,
 * botocore draws its backoff from [0, 1 s) (3 % below 30 ms). JS v2 retries sooner (DynamoDB base
 * 50 ms): it is only a preference, see `middles`.
 */
const QUICK_RETRY_MS = 30;

interface PendingAttempt {
  ev: CsmAttempt;
  start: number;
  end: number;
  group: Group;
  live: boolean;
}

interface PendingCall {
  ev: CsmApiCall;
  start: number;
  end: number;
  tol: number;
  /** Attempts needed to be complete. */
  want: number;
  attempts: PendingAttempt[];
  group: Group;
  live: boolean;
}

interface Group {
  /** Its key (to remove it from the `Level` maps). */
  key: GroupKey;
  /** Still in the index (an emptied group stays until the next sweep, see `gc`). */
  indexed: boolean;
  /** Queued in `emptied`. */
  queued: boolean;
  /** Unclaimed attempts sorted by `end` (dead entries removed lazily). */
  attempts: PendingAttempt[];
  liveAttempts: number;
  deadAttempts: number;
  /** Calls waiting for late attempts, in arrival order. */
  calls: PendingCall[];
}

/** A FIFO with lazy deletion: entries are marked dead and skipped. */
class Fifo<T extends { live: boolean }> {
  private items: T[] = [];
  private head = 0;
  private dead = 0;
  push(x: T): void {
    this.items.push(x);
  }
  markDead(): void {
    this.dead++;
    this.maybeCompact();
  }
  /** Oldest live entry, dropping dead ones in front of it. */
  peek(): T | undefined {
    while (this.head < this.items.length) {
      const x = this.items[this.head]!;
      if (x.live) return x;
      this.head++;
      this.dead--;
    }
    return undefined;
  }
  drain(): T[] {
    const out = this.items.slice(this.head).filter((x) => x.live);
    this.items = [];
    this.head = 0;
    this.dead = 0;
    return out;
  }
  private maybeCompact(): void {
    const size = this.items.length - this.head;
    if (this.dead > 1024 && this.dead === size) {
      // All dead (the usual case: attempts are claimed in arrival order): nothing to copy.
      this.items = [];
      this.head = 0;
      this.dead = 0;
    } else if (this.dead > 1024 && this.dead * 2 > size) {
      this.items = this.items.slice(this.head).filter((x) => x.live);
      this.head = 0;
      this.dead = 0;
    } else if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }
}

/* Intervals are computed inline as two numbers (no [start, end] array per event). */

function attemptStart(a: CsmAttempt): number {
  return a.timestampMarksEnd ? a.timestamp - (a.attemptLatency ?? 0) : a.timestamp;
}

function attemptEnd(a: CsmAttempt): number {
  return a.timestampMarksEnd ? a.timestamp : a.timestamp + (a.attemptLatency ?? 0);
}

/** Call window start; an unknown latency leaves the far side open. */
function callStart(c: CsmApiCall): number {
  if (!c.timestampMarksEnd) return c.timestamp;
  return c.latency === undefined ? -Infinity : c.timestamp - c.latency;
}

function callEnd(c: CsmApiCall): number {
  if (c.timestampMarksEnd) return c.timestamp;
  return c.latency === undefined ? Infinity : c.timestamp + c.latency;
}

/** What groups events: SDK family, source address (and port when stable), ClientId, Service, Api, Region. */
interface GroupKey {
  clientId: string;
  service: string;
  api: string;
  region: string;
  address: string;
  /** -1 for SDK families that change port per datagram. */
  port: number;
  sdk: SdkFamily;
}

/*
 * Groups are found through nested maps, one level per key part, instead of one map keyed by the
 * parts joined into a string: a joined key is a fresh string per event that has to be copied and
 * hashed whole, which cost several times the seven lookups of the (mostly short) parts.
 */
type Level = Map<string | number, Level | Group>;

function portOf(e: CsmEvent): number {
  return STABLE_PORT.has(e.sdk) ? e.source.port : -1;
}

/** The group of `e`'s key, or undefined. */
function findGroup(root: Level, e: CsmEvent): Group | undefined {
  const l1 = root.get(e.clientId) as Level | undefined;
  const l2 = l1?.get(e.service) as Level | undefined;
  const l3 = l2?.get(e.api) as Level | undefined;
  const l4 = l3?.get(e.region ?? '') as Level | undefined;
  const l5 = l4?.get(e.source.address) as Level | undefined;
  const l6 = l5?.get(portOf(e)) as Level | undefined;
  return l6?.get(e.sdk) as Group | undefined;
}

function hasKey(k: GroupKey, e: CsmEvent): boolean {
  return (
    k.api === e.api && k.service === e.service && k.clientId === e.clientId && k.region === (e.region ?? '') &&
    k.address === e.source.address && k.port === portOf(e) && k.sdk === e.sdk
  );
}

/** The map at `key` in `level`, created when absent. */
function child(level: Level, key: string | number): Level {
  let next = level.get(key) as Level | undefined;
  if (next === undefined) {
    next = new Map();
    level.set(key, next);
  }
  return next;
}

function insertGroup(root: Level, g: Group): void {
  const k = g.key;
  child(child(child(child(child(child(root, k.clientId), k.service), k.api), k.region), k.address), k.port).set(k.sdk, g);
}

/** Remove `g` and every level it leaves empty. */
function removeGroup(root: Level, g: Group): void {
  const k = g.key;
  const path: Level[] = [root];
  for (const part of [k.clientId, k.service, k.api, k.region, k.address, k.port]) {
    const next = path[path.length - 1]!.get(part) as Level | undefined;
    if (next === undefined) return;
    path.push(next);
  }
  const parts = [k.clientId, k.service, k.api, k.region, k.address, k.port, k.sdk];
  for (let i = path.length - 1; i >= 0; i--) {
    path[i]!.delete(parts[i]!);
    if (path[i]!.size > 0) break;
  }
}

function isEmpty(g: Group): boolean {
  return g.liveAttempts === 0 && g.calls.length === 0;
}

/** Emptied groups kept for reuse before a sweep removes those still empty. */
export const EMPTIED_BATCH = 1024;

function succeeded(a: CsmAttempt): boolean {
  return (
    a.httpStatusCode !== undefined &&
    a.httpStatusCode < 400 &&
    a.awsException === undefined &&
    a.sdkException === undefined
  );
}

/** First index whose `end` is >= x. */
function lowerBoundEnd(arr: PendingAttempt[], x: number): number {
  let lo = 0;
  let hi = arr.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (arr[mid]!.end < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function byStart(a: PendingAttempt, b: PendingAttempt): number {
  return a.start - b.start || a.end - b.end;
}

interface Chain {
  attempts: PendingAttempt[];
  cost: number;
}

export class Correlator {
  private readonly opts: CorrelatorOptions;
  private readonly emit: (c: Correlated) => void;
  /** Every group, by key (see `Level`). */
  private groups: Level = new Map();
  private groupCount = 0;
  /** The group found last (see `group`). */
  private lastGroup: Group | undefined;
  /** Groups that became empty since the last sweep (some may hold items again). */
  private emptied: Group[] = [];
  private readonly attemptFifo = new Fifo<PendingAttempt>();
  private readonly callFifo = new Fifo<PendingCall>();
  private nAttempts = 0;
  private nCalls = 0;

  constructor(opts: CorrelatorOptions, emit: (c: Correlated) => void) {
    this.opts = opts;
    this.emit = emit;
  }

  get pendingAttempts(): number {
    return this.nAttempts;
  }

  get pendingCalls(): number {
    return this.nCalls;
  }

  /** Groups holding pending state (emptied ones are freed in batches, see `gc`, and not counted). */
  get pendingGroups(): number {
    let empty = 0;
    for (const g of this.emptied) if (isEmpty(g)) empty++;
    return this.groupCount - empty;
  }

  /** Groups in memory: those of `pendingGroups` plus emptied ones awaiting a sweep (fewer than EMPTIED_BATCH). */
  get heldGroups(): number {
    return this.groupCount;
  }

  /**
   * Memory pressure: export the `n` oldest pending items now (attempts as
   * `buffer_full` orphans, calls with the attempts they have). Returns what was shed.
   */
  shedOldest(n: number): { attempts: number; calls: number } {
    const shed = { attempts: 0, calls: 0 };
    for (let i = 0; i < n; i++) {
      const kind = this.evictOldest();
      if (kind === undefined) break;
      shed[kind]++;
    }
    return shed;
  }

  /** Feed one decoded event (in arrival order). `event.receivedAt` is the clock for holds. */
  add(event: CsmEvent): void {
    if (event.type === 'ApiCall') this.addCall(event);
    else this.addAttempt(event);
    this.enforceCap();
  }

  /** Expire holds older than `now` minus the hold times. */
  expire(now: number): void {
    for (let a = this.attemptFifo.peek(); a && a.ev.receivedAt + this.opts.attemptHoldMs <= now; a = this.attemptFifo.peek()) {
      this.dropAttempt(a);
      this.emit({ kind: 'orphan', attempt: a.ev, reason: 'ttl_expired' });
    }
    for (let c = this.callFifo.peek(); c && c.ev.receivedAt + this.opts.callHoldMs <= now; c = this.callFifo.peek()) {
      this.finishCall(c);
    }
  }

  /** Emit everything still pending: calls with what they have, attempts as orphans ('shutdown'). */
  flush(): void {
    const calls = this.callFifo.drain();
    const attempts = this.attemptFifo.drain();
    const items: (PendingCall | PendingAttempt)[] = [...calls, ...attempts];
    items.sort((x, y) => x.ev.receivedAt - y.ev.receivedAt);
    for (const x of items) {
      if ('want' in x) this.finishCall(x);
      else {
        this.dropAttempt(x);
        this.emit({ kind: 'orphan', attempt: x.ev, reason: 'shutdown' });
      }
    }
    this.groups = new Map();
    this.groupCount = 0;
    this.emptied = [];
    this.lastGroup = undefined;
    this.nAttempts = 0;
    this.nCalls = 0;
  }

  // ---------------------------------------------------------------- calls

  private addCall(ev: CsmApiCall): void {
    const group = this.group(ev);
    const start = callStart(ev);
    const end = callEnd(ev);
    const tol = this.tolerance(ev);
    const want = ev.attemptCount === undefined ? 1 : Math.max(0, ev.attemptCount);
    const call: PendingCall = { ev, start, end, tol, want, attempts: [], group, live: true };

    if (!CALL_FIRST.has(ev.sdk) && want > 0) {
      const chain = this.chooseChain(call);
      for (const a of chain) this.dropAttempt(a);
      call.attempts = chain;
    }
    if (call.attempts.length >= want || ATTEMPTS_FIRST.has(ev.sdk)) {
      this.emitCall(call);
      this.gc(group);
      return;
    }
    // Claiming may have emptied (and dropped) the group: look it up again.
    call.group = this.group(ev);
    call.group.calls.push(call);
    this.callFifo.push(call);
    this.nCalls++;
  }

  /** Emit a waiting call (complete, expired, evicted or at shutdown). */
  private finishCall(c: PendingCall): void {
    if (!c.live) return;
    c.live = false;
    this.nCalls--;
    this.callFifo.markDead();
    const i = c.group.calls.indexOf(c);
    if (i >= 0) c.group.calls.splice(i, 1);
    this.emitCall(c);
    this.gc(c.group);
  }

  private emitCall(c: PendingCall): void {
    const chain = c.attempts.length > 1 ? c.attempts.slice().sort(byStart) : c.attempts;
    const attempts: CsmAttempt[] = [];
    for (const a of chain) attempts.push(a.ev);
    const count = c.ev.attemptCount;
    this.emit({
      kind: 'call',
      call: c.ev,
      attempts,
      missingAttempts: count === undefined ? 0 : Math.max(0, count - attempts.length),
    });
  }

  /**
   * Pick the pending attempts of `call`'s group that best explain its window.
   * Returns at most `want` attempts (AttemptCount, or a best guess when absent).
   */
  private chooseChain(call: PendingCall): PendingAttempt[] {
    const cands = this.candidates(call);
    // With one candidate every branch below picks it: skip the scoring (the usual case).
    if (cands.length <= 1) return cands;
    const ev = call.ev;
    const first = cands.map((a) => this.firstCost(call, a));
    const last = cands.map((a) => this.lastCost(call, a, call.want));
    const single = (): Chain => {
      // One attempt for the whole call: both ends must fit. With AttemptCount > 1
      // (others dropped), take it in whichever role it fits better.
      let best: Chain | undefined;
      for (let i = 0; i < cands.length; i++) {
        const cost = call.want === 1 ? first[i]! + last[i]! : Math.min(first[i]!, last[i]!);
        if (!best || cost < best.cost) best = { attempts: [cands[i]!], cost };
      }
      return best!;
    };

    if (call.want === 1) {
      const one = single();
      if (ev.attemptCount !== undefined || cands.length === 1) return one.attempts;
      // AttemptCount absent: a (first, last) pair wins when it explains both ends clearly better.
      const pair = this.bestChain(call, cands, first, last, 2);
      return pair && pair.attempts.length === 2 && pair.cost + 2 * call.tol < one.cost ? pair.attempts : one.attempts;
    }
    return (this.bestChain(call, cands, first, last, call.want) ?? single()).attempts;
  }

  /** Best chain of up to `n` (≥ 2) attempts: most attempts first, then lowest cost. */
  private bestChain(
    call: PendingCall,
    cands: PendingAttempt[],
    first: number[],
    last: number[],
    n: number,
  ): Chain | undefined {
    const idx = cands.map((_, i) => i);
    const topLast = idx.slice().sort((a, b) => last[a]! - last[b]!).slice(0, TOP_K);
    const topFirst = idx.slice().sort((a, b) => first[a]! - first[b]!).slice(0, TOP_K);
    const tol = this.seqTolerance(call.ev.sdk);
    const byEnd = n > 2 ? cands.slice().sort((a, b) => a.end - b.end || a.start - b.start) : [];
    let best: Chain | undefined;
    for (const li of topLast) {
      const L = cands[li]!;
      for (const fi of topFirst) {
        const F = cands[fi]!;
        if (F === L || F.end > L.start + tol) continue;
        const mids = this.middles(call, byEnd, F, L, n - 2);
        const cost = first[fi]! + last[li]! + mids.cost;
        const len = 2 + mids.attempts.length;
        if (!best || len > best.attempts.length || (len === best.attempts.length && cost < best.cost)) {
          best = { attempts: [F, ...mids.attempts, L], cost };
        }
      }
    }
    return best;
  }

  /**
   * Up to `k` sequential attempts strictly between F and L (`byEnd`: the
   * candidates sorted by end), earliest end first: the greedy that fits the
   * most. Preferences, relaxed in turn when they leave too few: an SDK retries
   * only after a failure, so attempts that succeeded come last; and it backs
   * off before retrying, so an attempt that starts within QUICK_RETRY_MS of the
   * previous one's end is more likely the first attempt of a concurrent call
   * (threads starting calls together) than our retry.
   *
   * This is the weak part: when several calls of one group overlap, their
   * middle attempts look alike (same status, same socket) and any assignment
   * that keeps each chain sequential is as consistent with the data as the
   * true one. First and last attempts are pinned by the call's start, end and
   * final status; the middles are a best guess.
   */
  private middles(call: PendingCall, byEnd: PendingAttempt[], F: PendingAttempt, L: PendingAttempt, k: number): Chain {
    if (k <= 0) return { attempts: [], cost: 0 };
    const tol = this.seqTolerance(call.ev.sdk);
    const between = byEnd.filter((a) => a !== F && a !== L && a.start >= F.end - tol && a.end <= L.start + tol);
    const pick = (allowSuccess: boolean, minGap: number): PendingAttempt[] => {
      const out: PendingAttempt[] = [];
      let after = F.end;
      for (const a of between) {
        if (out.length >= k) break;
        if (!allowSuccess && succeeded(a.ev)) continue;
        if (a.start >= after + minGap - tol) {
          out.push(a);
          after = a.end;
        }
      }
      return out;
    };
    let chosen = pick(false, QUICK_RETRY_MS);
    if (chosen.length < k) chosen = pick(false, 0);
    if (chosen.length < k) chosen = pick(true, 0);
    let cost = 0;
    for (const a of chosen) cost += this.middleCost(call, a);
    return { attempts: chosen, cost };
  }

  /** Live attempts of the call's group that lie inside its window (± tolerance), by start. */
  private candidates(call: PendingCall): PendingAttempt[] {
    const arr = call.group.attempts;
    const out: PendingAttempt[] = [];
    const lo = call.start - call.tol;
    const hi = call.end + call.tol;
    for (let i = lowerBoundEnd(arr, lo); i < arr.length; i++) {
      const a = arr[i]!;
      if (a.end > hi) break;
      if (a.live && a.start >= lo) out.push(a);
    }
    return out.length > 1 ? out.sort(byStart) : out;
  }

  // ---------------------------------------------------------------- attempts

  private addAttempt(ev: CsmAttempt): void {
    const group = this.group(ev);
    const start = attemptStart(ev);
    const end = attemptEnd(ev);
    const a: PendingAttempt = { ev, start, end, group, live: true };

    if (!ATTEMPTS_FIRST.has(ev.sdk) && group.calls.length > 0) {
      const call = this.bestWaitingCall(group, a);
      if (call) {
        call.attempts.push(a);
        a.live = false;
        if (call.attempts.length >= call.want) this.finishCall(call);
        return;
      }
    }
    // Insert sorted by end; arrival order is nearly end order, so this is almost always an append.
    const arr = group.attempts;
    let i = arr.length;
    while (i > 0 && arr[i - 1]!.end > end) i--;
    if (i === arr.length) arr.push(a);
    else arr.splice(i, 0, a);
    group.liveAttempts++;
    this.attemptFifo.push(a);
    this.nAttempts++;
  }

  /** Call-first SDKs: the waiting call of this group that the attempt fits best. */
  private bestWaitingCall(group: Group, a: PendingAttempt): PendingCall | undefined {
    let best: PendingCall | undefined;
    let bestCost = Infinity;
    const tol = this.seqTolerance(a.ev.sdk);
    for (const c of group.calls) {
      if (c.attempts.length >= c.want) continue;
      if (a.start < c.start - c.tol || a.end > c.end + c.tol) continue;
      if (c.attempts.some((b) => a.start < b.end - tol && b.start < a.end - tol)) continue;
      const isFirst = c.attempts.every((b) => a.start <= b.start);
      const isLast = c.attempts.every((b) => a.start >= b.start);
      let cost = 0;
      if (isFirst) cost += this.firstCost(c, a);
      if (isLast && c.attempts.length + 1 === c.want) cost += this.lastCost(c, a, c.want);
      else if (!isLast || c.attempts.length + 1 < c.want) cost += this.middleCost(c, a);
      if (cost < bestCost) {
        best = c;
        bestCost = cost;
      }
    }
    return best;
  }

  // ---------------------------------------------------------------- scoring

  /** How well `a` fits as the call's first attempt (lower is better). */
  private firstCost(c: PendingCall, a: PendingAttempt): number {
    let cost = 0;
    if (Number.isFinite(c.start)) {
      const d = a.start - c.start;
      cost += d >= 0 ? d * W_FIRST_LATE : -d * W_EARLY;
    }
    if (c.want > 1 && succeeded(a.ev)) cost += P_RETRIED_SUCCESS;
    if (a.ev.attemptNumber !== undefined && a.ev.attemptNumber !== 1) cost += P_ATTEMPT_NUMBER;
    if (a.ev.userAgent !== c.ev.userAgent) cost += P_USER_AGENT;
    return cost;
  }

  /** How well `a` fits as the call's last attempt, out of `n` (lower is better). */
  private lastCost(c: PendingCall, a: PendingAttempt, n: number): number {
    const call = c.ev;
    const ev = a.ev;
    let cost = 0;
    if (Number.isFinite(c.end)) {
      const d = c.end - a.end;
      cost += d >= 0 ? d : -d * W_EARLY;
    }
    if (call.xAmznRequestId !== undefined) cost += ev.xAmznRequestId === call.xAmznRequestId ? -P_REQUEST_ID : P_REQUEST_ID;
    if (call.xAmzRequestId !== undefined) cost += ev.xAmzRequestId === call.xAmzRequestId ? -P_REQUEST_ID : P_REQUEST_ID;
    if (call.finalHttpStatusCode !== ev.httpStatusCode) cost += P_FINAL_STATUS;
    // Compared as a pair in either order: Ruby swaps the two exception families.
    const x1 = call.finalAwsException;
    const x2 = call.finalSdkException;
    const y1 = ev.awsException;
    const y2 = ev.sdkException;
    if (!((x1 === y1 && x2 === y2) || (x1 === y2 && x2 === y1))) cost += P_FINAL_EXCEPTION;
    if (ev.attemptNumber !== undefined && ev.attemptNumber !== n) cost += P_ATTEMPT_NUMBER;
    if (ev.userAgent !== call.userAgent) cost += P_USER_AGENT;
    if (!STABLE_PORT.has(call.sdk) && ev.source.port === call.source.port) cost -= B_SAME_PORT;
    return cost;
  }

  /** Cost of `a` as a non-final attempt that is not the first. */
  private middleCost(c: PendingCall, a: PendingAttempt): number {
    let cost = succeeded(a.ev) ? P_RETRIED_SUCCESS : 0;
    if (a.ev.userAgent !== c.ev.userAgent) cost += P_USER_AGENT;
    return cost;
  }

  // ---------------------------------------------------------------- bookkeeping

  private seqTolerance(sdk: SdkFamily): number {
    return TIGHT_TIMING.has(sdk) ? SEQ_TOLERANCE_MS : Math.max(SEQ_TOLERANCE_MS, this.opts.toleranceMs);
  }

  private tolerance(c: CsmApiCall): number {
    // Wall-clock timestamps vs (sometimes monotonic) latencies drift apart on long calls: allow 1 ms/s.
    return this.opts.toleranceMs + (c.latency ?? 0) / 1000;
  }

  private group(e: CsmEvent): Group {
    // An ApiCall usually follows its own attempts: try the last group first.
    const last = this.lastGroup;
    if (last !== undefined && last.indexed && hasKey(last.key, e)) return last;
    let g = findGroup(this.groups, e);
    if (g === undefined) {
      const key: GroupKey = {
        clientId: e.clientId, service: e.service, api: e.api, region: e.region ?? '', address: e.source.address, port: portOf(e), sdk: e.sdk,
      };
      g = { key, indexed: true, queued: false, attempts: [], liveAttempts: 0, deadAttempts: 0, calls: [] };
      insertGroup(this.groups, g);
      this.groupCount++;
    }
    this.lastGroup = g;
    return g;
  }

  /** Remove a pending attempt (claimed, expired or evicted). */
  private dropAttempt(a: PendingAttempt): void {
    if (!a.live) return;
    a.live = false;
    this.nAttempts--;
    this.attemptFifo.markDead();
    const g = a.group;
    g.liveAttempts--;
    g.deadAttempts++;
    if (g.liveAttempts === 0) {
      g.attempts = [];
      g.deadAttempts = 0;
    } else if (g.deadAttempts > 32 && g.deadAttempts * 2 > g.attempts.length) {
      g.attempts = g.attempts.filter((x) => x.live);
      g.deadAttempts = 0;
    }
    this.gc(g);
  }

  /**
   * `g` may have become empty. An emptied group is not removed at once: the next event of its key
   * (often the very next call) would build it again. It waits in `emptied`, and a sweep every
   * EMPTIED_BATCH emptied groups removes those still empty, so at most that many are kept.
   * `pendingGroups` does not count them.
   */
  private gc(g: Group): void {
    if (g.queued || !g.indexed || !isEmpty(g)) return;
    g.queued = true;
    this.emptied.push(g);
    if (this.emptied.length >= EMPTIED_BATCH) this.sweep();
  }

  private sweep(): void {
    for (const g of this.emptied) {
      g.queued = false;
      if (!isEmpty(g)) continue;
      g.indexed = false;
      removeGroup(this.groups, g);
      this.groupCount--;
    }
    this.emptied = [];
  }

  /** Over the cap: flush the oldest pending items early. */
  private enforceCap(): void {
    while (this.nAttempts + this.nCalls > this.opts.maxPending) {
      if (this.evictOldest() === undefined) break;
    }
  }

  /** Emit the oldest pending item early; undefined when nothing is pending. */
  private evictOldest(): 'attempts' | 'calls' | undefined {
    const a = this.attemptFifo.peek();
    const c = this.callFifo.peek();
    if (c && (!a || c.ev.receivedAt <= a.ev.receivedAt)) {
      this.finishCall(c);
      return 'calls';
    }
    if (!a) return undefined;
    this.dropAttempt(a);
    this.emit({ kind: 'orphan', attempt: a.ev, reason: 'buffer_full' });
    return 'attempts';
  }
}
