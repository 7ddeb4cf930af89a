/**
 * The join stage, between process identity and export (only built with an app-span listener):
 * a CSM call goes into the application's trace when the app's own span of it is known by a
 * request id (docs/app-traces.md).
 *
 * Order of arrival: the CSM datagrams come first (botocore sends its ApiCall before the app's
 * span even ends), the app span after its batch processor's delay (5 s by default) and the
 * Collector's batching. So a call that may still be joined waits, up to `windowMs`, and goes
 * the moment its app span arrives; after the window it is exported standalone, as without the
 * join. App spans that come first wait in the index (app-span-index.ts).
 *
 * Which traffic waits: a ClientId whose calls have been joined in the last JOINABLE_FOR_MS, or
 * one still on trial (its first TRIAL_WINDOWS join windows after it is first seen: time for a
 * first app span to arrive). A ClientId that never joins (an application
 * without tracing, or one that samples nothing) stops paying the window after its trial: its
 * calls go at once, and one call per PROBE_EVERY_MS still waits, so turning tracing on later is
 * noticed. Calls that carry no request id at all (transport errors, Java v1 errors, Ruby's default
 * shape) can never be joined and never wait.
 *
 * Nothing waits while no application span arrives (APP_SPANS_ACTIVE_MS; after a start-up grace):
 * a listener nothing feeds costs the datagram path nothing. Bounded: at most MAX_WAITING calls
 * wait (the oldest goes standalone beyond it, counted), and at most MAX_KEYS ClientIds are
 * remembered.
 */
import type { Correlated } from '../correlate/types.js';
import type { ProcessIdentity } from '../identity/resolver.js';
import type { IdentifiedCallSink } from '../identity/identity-stage.js';
import type { Translation } from '../translate/types.js';
import type { AppSpan } from './app-span.js';
import type { AppSpanIndex } from './app-span-index.js';
import { attemptIds, joinedTree, type JoinedTree } from './joined-tree.js';

/**
 * Calls waiting for their app span at most. Each holds its translation and decoded events (about
 * 18 KiB measured at 100k datagrams/s, where 8,192 of them pushed RSS to 280 MB and GC pauses
 * overflowed the receive ring): 2,048 keep it near 36 MiB, enough to join ~400 calls/s of a
 * host's traced traffic in full (beyond it new calls go standalone at once, counted in waitingFull).
 */
export const MAX_WAITING = 2_048;
/**
 * Calls wait only while applications' spans arrive: an AWS SDK span within this long, or the
 * first TRIAL_WINDOWS windows after the first call (the first app spans come a batch delay after
 * the first calls). A listener nothing feeds costs the datagram path one clock read per call.
 */
export const APP_SPANS_ACTIVE_MS = 60_000;
/** ClientIds whose joinability is remembered. */
export const MAX_KEYS = 4_096;
/** A ClientId joined within this long keeps waiting for its app spans. */
export const JOINABLE_FOR_MS = 10 * 60_000;
/** A ClientId first seen waits this many join windows before it is known to join at all. */
export const TRIAL_WINDOWS = 2;
/** A ClientId that does not join still has one call this often wait (tracing may have been turned on). */
export const PROBE_EVERY_MS = 30_000;

/** The exporter's side of the join: a call written standalone, or into the app's trace. */
export interface JoinedCallSink {
  write(t: Translation, identity: ProcessIdentity | undefined): void;
  writeJoined(t: Translation, identity: ProcessIdentity | undefined, joined: JoinedTree): void;
}

export interface JoinCounts {
  /** Calls exported inside an application's trace. */
  joined: number;
  /** Of those, joined when their app span arrived while they waited (the others found it indexed). */
  joinedWaiting: number;
  /** Calls exported standalone after waiting the whole window. */
  expiredUnjoined: number;
  /** Calls exported at once, standalone: no request id (can never join). */
  noRequestId: number;
  /** Calls exported at once, standalone: their ClientId has not joined lately (trial over). */
  notJoinable: number;
  /** Calls exported at once, standalone: no application span arrived for APP_SPANS_ACTIVE_MS. */
  noAppSpans: number;
  /** Calls exported at once, standalone, because MAX_WAITING calls waited already. */
  waitingFull: number;
  /** Attempts not exported because the app has a span of that attempt itself. */
  attemptsInApp: number;
  /** Calls waiting now. */
  waiting: number;
}

export function newJoinCounts(): JoinCounts {
  return { joined: 0, joinedWaiting: 0, expiredUnjoined: 0, noRequestId: 0, notJoinable: 0, noAppSpans: 0, waitingFull: 0, attemptsInApp: 0, waiting: 0 };
}

interface Waiting {
  t: Translation;
  identity: ProcessIdentity | undefined;
  ids: string[][];
  deadline: number;
  key: string;
  done: boolean;
}

interface KeyState {
  lastJoinAt: number;
  trialUntil: number;
  lastProbeAt: number;
}

export class JoinStage implements IdentifiedCallSink {
  private readonly waitingById = new Map<string, Waiting>();
  /** In arrival order = deadline order (one window for all). */
  private readonly queue: Waiting[] = [];
  private head = 0;
  private readonly keys = new Map<string, KeyState>();
  /** When the first call came (the start-up grace runs from it), and the last app span. */
  private firstCallAt: number | undefined;
  private lastAppSpanAt = -Infinity;

  constructor(
    private readonly opts: { windowMs: number; attemptKind: 'client' | 'internal' },
    private readonly index: AppSpanIndex,
    private readonly next: JoinedCallSink,
    readonly counts: JoinCounts,
    private readonly now: () => number = Date.now,
  ) {}

  /** A call from the identity stage. */
  write(t: Translation, identity: ProcessIdentity | undefined, c: Correlated): void {
    const now = this.now();
    this.firstCallAt ??= now;
    // Nothing feeds the listener (the index is empty too): nothing can join, nothing waits.
    if (now - this.lastAppSpanAt > APP_SPANS_ACTIVE_MS && now - this.firstCallAt > TRIAL_WINDOWS * this.opts.windowMs) {
      this.counts.noAppSpans++;
      this.next.write(t, identity);
      return;
    }
    // Full: the call goes at once. Not the oldest for it: at high rates that would hold every
    // call for a few ms, long enough to be promoted, and the GC pauses cost more than the join.
    if (this.counts.waiting >= MAX_WAITING) {
      this.counts.waitingFull++;
      this.next.write(t, identity);
      return;
    }
    const ids = attemptIds(c);
    if (ids.every((a) => a.length === 0)) {
      this.counts.noRequestId++;
      this.next.write(t, identity);
      return;
    }
    if (this.tryJoin(t, identity, ids, now)) return;
    const key = t.clientId;
    if (!this.waits(key, now)) {
      this.counts.notJoinable++;
      this.next.write(t, identity);
      return;
    }
    const w: Waiting = { t, identity, ids, deadline: now + this.opts.windowMs, key, done: false };
    for (const a of ids) for (const id of a) this.waitingById.set(id, w);
    this.queue.push(w);
    this.counts.waiting++;
  }

  /** App spans from the listener: indexed, and any call waiting for one of them goes now. */
  appSpans(spans: readonly AppSpan[]): { refused: number } {
    const now = this.now();
    if (spans.length > 0) this.lastAppSpanAt = now;
    let refused = 0;
    for (const s of spans) if (!this.index.add(s, now)) refused++;
    for (const s of spans) {
      for (const id of s.ids) {
        const w = this.waitingById.get(id);
        if (w === undefined || w.done) continue;
        if (this.tryJoin(w.t, w.identity, w.ids, now)) {
          this.counts.joinedWaiting++;
          this.finish(w);
        }
        break;
      }
    }
    return { refused };
  }

  /** Calls whose window has run out go standalone (the bridge's expiry tick). */
  expire(now = this.now()): void {
    const q = this.queue;
    while (this.head < q.length) {
      const w = q[this.head]!;
      if (!w.done && w.deadline > now) break;
      this.head++;
      if (w.done) continue;
      this.finish(w);
      this.counts.expiredUnjoined++;
      this.next.write(w.t, w.identity);
    }
    this.compact();
    this.index.expire(now);
  }

  /** Every waiting call goes standalone now (shutdown). */
  flush(): void {
    this.expire(Infinity);
  }

  private tryJoin(t: Translation, identity: ProcessIdentity | undefined, ids: string[][], now: number): boolean {
    let call: AppSpan | undefined;
    const attemptLevel: (AppSpan | undefined)[] = [];
    for (let i = 0; i < ids.length; i++) {
      const s = this.index.take(ids[i]!);
      if (s === undefined) continue;
      if (s.level === 'call' && call === undefined) call = s;
      else if (s.level === 'attempt') attemptLevel[i] = s;
    }
    const joined = joinedTree(t, call, attemptLevel, this.opts.attemptKind);
    if (joined === undefined) return false;
    this.counts.joined++;
    this.counts.attemptsInApp += attemptLevel.filter((s) => s !== undefined).length;
    this.state(t.clientId, now).lastJoinAt = now;
    this.next.writeJoined(t, identity, joined);
    return true;
  }

  private waits(key: string, now: number): boolean {
    const s = this.state(key, now);
    if (now - s.lastJoinAt < JOINABLE_FOR_MS) return true;
    if (now < s.trialUntil) return true;
    if (now - s.lastProbeAt >= PROBE_EVERY_MS) {
      s.lastProbeAt = now;
      return true;
    }
    return false;
  }

  private state(key: string, now: number): KeyState {
    let s = this.keys.get(key);
    if (s === undefined) {
      if (this.keys.size >= MAX_KEYS) this.keys.delete(this.keys.keys().next().value!);
      s = { lastJoinAt: -Infinity, trialUntil: now + TRIAL_WINDOWS * this.opts.windowMs, lastProbeAt: now };
      this.keys.set(key, s);
    }
    return s;
  }

  private finish(w: Waiting): void {
    w.done = true;
    this.counts.waiting--;
    for (const a of w.ids) for (const id of a) if (this.waitingById.get(id) === w) this.waitingById.delete(id);
  }

  private compact(): void {
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
  }
}
