/**
 * Correlate: attach ApiCallAttempt events to their ApiCall. This file is the
 * lifecycle (what waits, for how long, what is exported when) and the caps;
 * the evidence is elsewhere: group-index.ts (which events may belong
 * together), retry-models.ts (each SDK's retry timing as log-densities),
 * scoring.ts (a call's most probable chains), assignment.ts (the most probable
 * assignment of a group's attempts to its calls, jointly).
 *
 * Attempts-first SDKs (botocore, JS v2, Go v1, Java v1, PHP, .NET) send every
 * attempt before its ApiCall. A call arriving with no competitor (no other
 * call waiting in its group, no more candidate attempts than it needs, or a
 * best chain clearly more probable than any other) is exported at once: the
 * common case, which scores nothing. Otherwise the candidates it leaves over
 * may be a concurrent twin's, and that twin's ApiCall (its start, end and
 * outcome) is the evidence that separates them: the call waits, up to
 * `settleMs`, and every arrival re-decides the group jointly. A waiting call
 * is exported as soon as no other chain of its own is within RELEASE_MARGIN,
 * or all its candidates are explained by waiting calls, or when its time is up.
 *
 * Ruby sends the ApiCall first: the call waits (callHoldMs) for its attempts,
 * then is decided as above. Unknown SDKs get both behaviours.
 *
 * Attempts placed where another placement is within ln 2 as probable are
 * marked `ambiguous` (twin calls started in the same millisecond with full
 * jitter backoff cannot be told apart by anything CSM sends). "Another
 * placement" includes the calls exported in the last RECENT_SETTLES settle times that competed
 * for the same attempts (`Group.recent`), with the attempts they were exported with, so both
 * sides of a swap are marked — also for a call that arrives alone after them.
 *
 * No timers here: the caller drives `expire(now)` (the bridge every 100 ms);
 * receive times of arriving events also advance the settle clock. Bounds:
 * pending attempts, waiting calls and the attempts they hold are capped
 * together (maxPending, oldest exported first); at most MAX_WAITING_PER_GROUP
 * calls wait per group; a chain space holds at most MAX_STEP_TERMS; the joint
 * search has a work budget per second (`overBudget`); emptied groups are freed
 * in batches. Everything is counted in `settleCounts` (/stats correlation.joint).
 */
import type { CsmApiCall, CsmAttempt, CsmEvent, SdkFamily } from '../decode/types.js';
import { assignJointly, bestWithout, type AssignOption, type Bidder, type JointResult, type PricedOption } from './assignment.js';
import { GroupIndex, hasKey, keyOf, type GroupKey } from './group-index.js';
import { attemptEnd, attemptStart, callEnd, callStart, LN_MISSING_ATTEMPT } from './retry-models.js';
import { ChainSpace, chainLogLikelihood, MAX_POSITIONS, topChains, type TimedAttempt, type TimedCall } from './scoring.js';
import type { Correlated, CorrelatorOptions, SettleCounts } from './types.js';

/** Every attempt is sent before its ApiCall (captured for botocore, JS v2, Go v1; source for the rest). */
const ATTEMPTS_FIRST: ReadonlySet<SdkFamily> = new Set<SdkFamily>(['botocore', 'js-v2', 'go-v1', 'java-v1', 'php-v3', 'dotnet']);

/** A waiting call is exported early when no other chain of its own is within this (ln 1000; see `clear`). */
const RELEASE_MARGIN = Math.log(1000);
/** A search that ends further than this below its bound counts as cut (searchesCut). */
const CUT_GAP = 1;
/** Price rounds of the joint search for the best assignment without one attempt (see `bestWithout`). */
const AMBIGUITY_ROUNDS = 8;
/**
 * Exported calls kept per group for the ambiguity of twins decided after them, and for how many
 * settle times: a twin's ApiCall comes up to its retry chain's length after the call, and in the
 * storm captures the decisive one came 1-3.4 s after (one settle time saw none of those).
 */
const RECENT_CALLS = 32;
const RECENT_SETTLES = 4;
/** Candidates per call beyond which the nearest to its ends are kept (see `capped`), and the step terms of one chain space. */
const MAX_CANDIDATES = 192;
const MAX_STEP_TERMS = 1 << 18;
/** Chain-space work allowed per second of the correlator's clock (see `overBudget`); building a space costs SPACE_WORK per term. */
const WORK_PER_SECOND = 120_000_000;
/**
 * Above this many events in a second of the correlator's clock (this second or the one before),
 * every call is decided alone on arrival, as before the joint search. The joint search costs
 * milliseconds per call in a storm; at 100k datagrams/s of twin calls it took the bridge past one
 * core (bench/run.mjs: 13-19 µs per datagram instead of 7, a third of the datagrams dropped by
 * the kernel). Storms of real applications are far below it (the captures: about 100 events/s).
 */
const JOINT_MAX_EVENTS_PER_SECOND = 10_000;
const SPACE_WORK = 10;
/** Candidates a call decided alone over the budget looks at (the nearest to its ends). */
const CANDIDATES_OVER_BUDGET = 16;
/** Calls waiting in one group at most: beyond it the oldest is decided at once (counted: joint.crowded). */
const MAX_WAITING_PER_GROUP = 32;
/** What each attempt added to a short chain is worth when a call is filled (see `filled`): more than any chain's ln likelihood. */
const FILL_BONUS = 1e4;
/** An attempt is ambiguous when another placement is within this of the chosen one (a factor of 2). */
const AMBIGUITY_LN = Math.LN2;

interface PendingAttempt extends TimedAttempt {
  group: Group;
  live: boolean;
  /** Inside the window of a waiting call: waits with it, not counted in pendingAttempts. */
  held: boolean;
  /** Arrival order (an attempts-first call can only have attempts that arrived before it). */
  seq: number;
  /** Scratch id for the joint search, valid while `idEpoch` is the correlator's. */
  id: number;
  idEpoch: number;
  /** Its price in the joint search (assignment.ts), kept to warm-start the next one. */
  price: number;
  /** The call it was exported with. */
  owner: PendingCall | undefined;
}

interface PendingCall extends TimedCall {
  tol: number;
  group: Group;
  live: boolean;
  seq: number;
  /** The ApiCall is sent before its attempts (Ruby, unknown SDKs): it waits for them. */
  callFirst: boolean;
  /** When it is decided at the latest with its chain complete (settleMs) or not (callHoldMs). */
  settleBy: number;
  holdUntil: number;
  /** Its chains over its candidates; undefined when new attempts came into its window since. */
  space: ChainSpace<PendingAttempt> | undefined;
  /** Once exported after competing: its chain's ln likelihood, and until when it counts in others' ambiguity. */
  chosenLl: number;
  recentUntil: number;
  /** Since which arrival (seq) its chosen chain has been complete; Infinity while it is not. */
  completeSince: number;
}

interface Group {
  key: GroupKey;
  /** Still in the index (an emptied group stays until the next sweep, see `gc`). */
  indexed: boolean;
  /** Queued in `emptied`. */
  queued: boolean;
  /** Unclaimed attempts sorted by `end` (dead entries removed lazily). */
  attempts: PendingAttempt[];
  liveAttempts: number;
  deadAttempts: number;
  /** Calls waiting (for competitors or late attempts), in arrival order. */
  calls: PendingCall[];
  /**
   * Calls exported in the last RECENT_SETTLES settle times after competing (at most RECENT_CALLS):
   * a twin decided later may have been as likely to own their attempts.
   */
  recent: PendingCall[];
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

/** Waiting calls by settle deadline (arrival order); entries leave when due, live or not. */
class SettleQueue {
  private items: PendingCall[] = [];
  private head = 0;
  push(c: PendingCall): void {
    this.items.push(c);
  }
  /** The oldest entry due at `now`, removed; undefined when none is due. */
  popDue(now: number): PendingCall | undefined {
    while (this.head < this.items.length) {
      const c = this.items[this.head]!;
      if (c.live && c.settleBy > now) return undefined;
      this.head++;
      if (this.head > 1024 && this.head * 2 > this.items.length) {
        this.items = this.items.slice(this.head);
        this.head = 0;
      }
      if (c.live) return c;
    }
    return undefined;
  }
  clear(): void {
    this.items = [];
    this.head = 0;
  }
}

function sameArrays(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function isEmpty(g: Group): boolean {
  return g.liveAttempts === 0 && g.calls.length === 0;
}

/** Emptied groups kept for reuse before a sweep removes those still empty. */
export const EMPTIED_BATCH = 1024;

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
  return a.start - b.start || a.end - b.end || a.seq - b.seq;
}

/** A call with a chain, as the ambiguity search sees it. */
interface Party {
  call: PendingCall;
  chain: PendingAttempt[];
  ll: number;
}

/** The joint decision over a group's waiting calls. */
interface Decision {
  /** The group's waiting calls when decided (index i = bidder i). */
  calls: PendingCall[];
  bidders: Bidder[];
  /** Attempt by id. */
  byId: PendingAttempt[];
  prices: Float64Array;
  result: JointResult;
}

export class Correlator {
  private readonly opts: CorrelatorOptions;
  private readonly emit: (c: Correlated) => void;
  private readonly index = new GroupIndex<Group>();
  /** The group found last (see `group`). */
  private lastGroup: Group | undefined;
  /** Groups that became empty since the last sweep (some may hold items again). */
  private emptied: Group[] = [];
  private readonly attemptFifo = new Fifo<PendingAttempt>();
  private readonly callFifo = new Fifo<PendingCall>();
  private readonly settleQueue = new SettleQueue();
  /** Chain-space work (candidates² × positions per search step) since `workSince`, for the work budget. */
  private work = 0;
  private workSince = -Infinity;
  /** Events since `workSince`, and in the second before it (the rate cut of `overBudget`). */
  private events = 0;
  private eventsBefore = 0;
  private nAttempts = 0;
  private nHeld = 0;
  private nCalls = 0;
  private seq = 0;
  private idEpoch = 0;
  private readonly counts: SettleCounts = {
    calls: 0, deadlines: 0, waitMsTotal: 0, waitMsMax: 0, ambiguousAttempts: 0, ambiguousCalls: 0, searchesCut: 0, candidatesCut: 0, crowded: 0, overBudget: 0, filled: 0,
  };

  constructor(opts: CorrelatorOptions, emit: (c: Correlated) => void) {
    this.opts = opts;
    this.emit = emit;
  }

  /** Attempts waiting for an ApiCall (not those already inside a waiting call's window). */
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
    return this.index.size - empty;
  }

  /** Groups in memory: those of `pendingGroups` plus emptied ones awaiting a sweep (fewer than EMPTIED_BATCH). */
  get heldGroups(): number {
    return this.index.size;
  }

  /** What the settle wait and the joint search did so far. */
  get settleCounts(): Readonly<SettleCounts> {
    return this.counts;
  }

  /**
   * Memory pressure: export the `n` oldest pending items now (attempts as
   * `buffer_full` orphans, calls decided with the attempts they have). Returns what was shed.
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
    this.events++;
    this.releaseDue(event.receivedAt);
    if (event.type === 'ApiCall') this.addCall(event);
    else this.addAttempt(event);
    this.enforceCap();
  }

  /** Decide calls whose settle or hold time is up at `now`; expire attempts held longer than attemptHoldMs. */
  expire(now: number): void {
    // Calls first: one whose time is up may take (or let go of) attempts held with it.
    this.releaseDue(now);
    for (let a = this.attemptFifo.peek(); a && a.ev.receivedAt + this.opts.attemptHoldMs <= now; a = this.attemptFifo.peek()) {
      // A held attempt waits with its call (decided within callHoldMs).
      if (a.held) break;
      this.dropAttempt(a);
      this.emit({ kind: 'orphan', attempt: a.ev, reason: 'ttl_expired' });
    }
  }

  /** Emit everything still pending: waiting calls decided with what they have, attempts as orphans ('shutdown'). */
  flush(): void {
    for (let c = this.callFifo.peek(); c; c = this.callFifo.peek()) this.decide(c.group, Infinity, c);
    for (const a of this.attemptFifo.drain()) {
      this.dropAttempt(a);
      this.emit({ kind: 'orphan', attempt: a.ev, reason: 'shutdown' });
    }
    this.callFifo.drain();
    this.settleQueue.clear();
    this.index.clear();
    this.emptied = [];
    this.lastGroup = undefined;
    this.nAttempts = 0;
    this.nHeld = 0;
    this.nCalls = 0;
  }

  // ---------------------------------------------------------------- arrivals

  private addCall(ev: CsmApiCall): void {
    const group = this.group(ev);
    const start = callStart(ev);
    const end = callEnd(ev);
    const tol = this.opts.toleranceMs + (ev.latency ?? 0) / 1000;
    const want = ev.attemptCount === undefined ? 1 : Math.max(0, ev.attemptCount);
    const now = ev.receivedAt;
    const call: PendingCall = {
      ev, start, end, want, tol, group, live: true, seq: this.seq++, callFirst: !ATTEMPTS_FIRST.has(ev.sdk),
      settleBy: now + this.opts.settleMs, holdUntil: now + this.opts.callHoldMs, space: undefined, chosenLl: 0, recentUntil: -Infinity, completeSince: Infinity,
    };
    if (want === 0) {
      this.emitCall(call, [], undefined);
      this.gc(group);
      return;
    }
    if (this.overBudget(now) && (!call.callFirst || this.candidates(call).length >= want)) {
      // Over the work budget: decided alone, on arrival (its best chain), as the joint search would a clear call.
      this.counts.overBudget++;
      const cands = this.capped(call, this.candidates(call), CANDIDATES_OVER_BUDGET);
      return this.claimAndEmit(call, cands.length <= 1 ? cands : topChains(call, cands, 1)[0]!.attempts);
    }
    if (group.calls.length === 0) {
      const cands = this.candidates(call);
      // The common case: one call, its attempts already there, nothing left over. Nothing to score.
      if (cands.length === want || (cands.length < want && !call.callFirst)) {
        if (cands.length <= 1) return this.claimAndEmit(call, cands, now);
        const best = topChains(call, cands, 1)[0]!;
        if (best.attempts.length === cands.length) return this.claimAndEmit(call, best.attempts, now);
      } else if (cands.length > want) {
        // More candidates than needed: a clear winner is exported at once; otherwise the rest may be a twin's.
        call.space = this.newSpace(call, cands);
        const [best, next] = call.space.best(2);
        if (best!.attempts.length >= want && (next === undefined || best!.ll - next.ll > RELEASE_MARGIN)) {
          return this.claimAndEmit(call, best!.attempts, now);
        }
      }
    }
    this.wait(call, now);
  }

  private addAttempt(ev: CsmAttempt): void {
    const group = this.group(ev);
    const a: PendingAttempt = {
      ev, start: attemptStart(ev), end: attemptEnd(ev), group, live: true, held: false, seq: this.seq++, id: -1, idEpoch: -1, price: 0, owner: undefined,
    };
    // Insert sorted by end; arrival order is nearly end order, so this is almost always an append.
    const arr = group.attempts;
    let i = arr.length;
    while (i > 0 && arr[i - 1]!.end > a.end) i--;
    if (i === arr.length) arr.push(a);
    else arr.splice(i, 0, a);
    group.liveAttempts++;
    this.attemptFifo.push(a);
    let wanted = false;
    for (const c of group.calls) {
      // Only a call-first call can still get attempts; attempts-first calls sent theirs before the ApiCall.
      if (c.callFirst && this.fits(c, a)) {
        c.space = undefined;
        wanted = true;
      }
    }
    if (wanted) {
      a.held = true;
      this.nHeld++;
      this.settle(group, ev.receivedAt);
    } else {
      this.nAttempts++;
    }
  }

  // ---------------------------------------------------------------- waiting and deciding

  /** `call` waits in its group (for competitors or for its late attempts); the group is re-decided. */
  private wait(call: PendingCall, now: number): void {
    const group = call.group;
    // Every arrival re-decides the group's waiting calls together: their number is bounded.
    while (group.calls.length >= MAX_WAITING_PER_GROUP) {
      this.counts.crowded++;
      this.decide(group, now, group.calls[0]!);
    }
    group.calls.push(call);
    this.callFifo.push(call);
    this.settleQueue.push(call);
    this.nCalls++;
    this.counts.calls++;
    for (const a of this.candidates(call)) {
      if (!a.held) {
        a.held = true;
        this.nHeld++;
        this.nAttempts--;
      }
    }
    this.settle(group, now);
  }

  /** Calls whose settle (or hold) time is up at `now` are decided. */
  private releaseDue(now: number): void {
    for (let c = this.settleQueue.popDue(now); c; c = this.settleQueue.popDue(now)) this.settle(c.group, now);
    for (let c = this.callFifo.peek(); c && c.holdUntil <= now; c = this.callFifo.peek()) this.decide(c.group, now, c);
  }

  /**
   * Re-decide `group` jointly and export every waiting call that is due or
   * clear (its chain complete, see `clear`).
   */
  private settle(group: Group, now: number): void {
    // Calls released together are flagged together, each against the others' final chains (see `flagAndEmit`).
    const batch: Party[] = [];
    const recentBefore = group.recent.slice();
    for (;;) {
      if (group.calls.length === 0) break;
      const d = this.decideAll(group);
      // Of the calls that may go, the one whose chain has been complete longest goes first.
      let next = -1;
      for (let i = 0; i < d.calls.length; i++) {
        const c = d.calls[i]!;
        const complete = d.result.choice[i]!.ids.length >= c.want;
        if (!complete) c.completeSince = Infinity;
        else if (c.completeSince === Infinity) c.completeSince = this.seq;
        const due = now >= c.holdUntil || (now >= c.settleBy && (complete || !c.callFirst));
        if ((due || (complete && this.clear(d, i))) && (next < 0 || c.completeSince < d.calls[next]!.completeSince)) next = i;
      }
      if (next < 0) break;
      // Releasing renumbers attempts (the ambiguity search): the rest is decided afresh.
      this.release(d, next, now, batch);
    }
    if (batch.length > 0) this.flagAndEmit(group, batch, recentBefore, now);
  }

  /**
   * Calls released by one `settle` (same instant): each one's ambiguity is searched against the chains
   * the others were finally given (the waiting calls as decided now, the released ones as exported),
   * not against the decision in force when it left, which the later ones may have changed.
   */
  private flagAndEmit(group: Group, batch: readonly Party[], recentBefore: readonly PendingCall[], now: number): void {
    let waiting: Party[] = [];
    const over = this.overBudget(now);
    if (!over && group.calls.length > 0) {
      const d = this.decideAll(group, true);
      waiting = d.calls.map((c, j) => ({ call: c, chain: d.result.choice[j]!.ids.map((id) => d.byId[id]!), ll: d.result.choice[j]!.ll }));
    }
    const recent = [...new Set([...recentBefore, ...group.recent, ...batch.map((b) => b.call)])].filter((r) => r.recentUntil >= now || batch.some((b) => b.call === r));
    for (const b of batch) {
      const ambiguous = over || b.chain.length === 0 ? undefined : this.ambiguityOf(b, waiting, recent);
      if (ambiguous !== undefined && b.call.recentUntil < now) {
        b.call.recentUntil = now + RECENT_SETTLES * this.opts.settleMs;
        group.recent.push(b.call);
        if (group.recent.length > RECENT_CALLS) group.recent.shift();
      }
      this.emitCall(b.call, b.chain, ambiguous);
    }
    this.gc(group);
  }

  /** Export `call` now (hold expired, evicted, shutdown), decided jointly with its group. */
  private decide(group: Group, now: number, call: PendingCall): void {
    const d = this.decideAll(group);
    const i = d.calls.indexOf(call);
    if (i >= 0) this.release(d, i, now);
    else {
      this.forget(call);
      this.unhold(group);
    }
  }

  /**
   * Waiting call `i` is decided: no other chain of its own is within
   * RELEASE_MARGIN, or every candidate in its window is explained by a waiting
   * call (then nothing still to come can change the joint decision); and no
   * waiting call whose attempts are still coming could use its attempts.
   */
  private clear(d: Decision, i: number): boolean {
    const chosen = d.result.choice[i]!;
    // A waiting call still missing attempts (the ApiCall came first) may want ours once its own arrive.
    for (let j = 0; j < d.calls.length; j++) {
      const c = d.calls[j]!;
      if (j === i || !c.callFirst || d.result.choice[j]!.ids.length >= c.want) continue;
      const cands = this.spaceOf(c).cands;
      if (chosen.ids.some((id) => cands.includes(d.byId[id]!))) return false;
    }
    const two = d.bidders[i]!.bid(new Float64Array(d.byId.length), 2);
    const other = two.find((o) => o.ids.join() !== chosen.ids.join());
    if (other === undefined || other.ll <= chosen.ll - RELEASE_MARGIN) return true;
    const explained = new Uint8Array(d.byId.length);
    for (const o of d.result.choice) for (const id of o.ids) explained[id] = 1;
    for (const a of this.spaceOf(d.calls[i]!).cands) if (a.live && explained[a.id] === 0) return false;
    return true;
  }

  /** The joint assignment of the group's waiting calls (assignment.ts), warm-started from the attempts' prices. */
  private decideAll(group: Group, probe = false): Decision {
    const calls = group.calls.slice();
    const epoch = ++this.idEpoch;
    const byId: PendingAttempt[] = [];
    for (const c of calls) {
      for (const a of this.spaceOf(c).cands) {
        if (a.live && a.idEpoch !== epoch) {
          a.idEpoch = epoch;
          a.id = byId.length;
          byId.push(a);
        }
      }
    }
    const bidders = calls.map((c) => this.bidder(c, epoch));
    const prices = new Float64Array(byId.length);
    byId.forEach((a, id) => (prices[id] = a.price));
    const result = assignJointly(bidders, byId.length, prices);
    // A probe (the chains the waiting calls would be given now, for the ambiguity of those released) changes nothing.
    if (probe) return { calls, bidders, byId, prices, result };
    byId.forEach((a, id) => (a.price = prices[id]!));
    if (result.ll < result.bound - CUT_GAP) this.counts.searchesCut++;
    return { calls, bidders, byId, prices, result };
  }

  /** A waiting call's chains over its candidates (built once; rebuilt when new attempts came into its window). */
  private spaceOf(c: PendingCall): ChainSpace<PendingAttempt> {
    if (c.space === undefined) c.space = this.newSpace(c, this.candidates(c));
    return c.space;
  }

  /** A chain space over (at most MAX_CANDIDATES of) `cands`; its building counts as work. */
  private newSpace(c: PendingCall, cands: PendingAttempt[]): ChainSpace<PendingAttempt> {
    const kept = this.capped(c, cands);
    this.work += kept.length * kept.length * Math.min(c.want, MAX_POSITIONS) * SPACE_WORK;
    return new ChainSpace(c, kept);
  }

  /** `c` as a bidder in a joint search whose attempt ids are those of `epoch` (claimed attempts are left out). */
  private bidder(c: PendingCall, epoch: number): Bidder {
    const space = this.spaceOf(c);
    const cands = space.cands;
    const local = new Float64Array(cands.length);
    const banned = new Uint8Array(cands.length);
    // Price rounds often leave a bidder's prices as they were: the last answer per limit is kept for that.
    const lastBy = new Map<number, { local: Float64Array; banned: Uint8Array; out: PricedOption[] }>();
    return {
      emptyLl: c.want * LN_MISSING_ATTEMPT,
      llOf: (ids) => {
        const chain: PendingAttempt[] = [];
        for (const id of ids) {
          const a = cands.find((x) => x.idEpoch === epoch && x.id === id);
          if (a === undefined) return -Infinity;
          chain.push(a);
        }
        return chainLogLikelihood(c, chain.sort(byStart));
      },
      bid: (prices, limit, taken) => {
        for (let j = 0; j < cands.length; j++) {
          const a = cands[j]!;
          // Ids of the epoch are given to usable attempts only (see decideAll, ambiguity).
          const usable = a.idEpoch === epoch && (taken === undefined || taken[a.id] === 0);
          banned[j] = usable ? 0 : 1;
          local[j] = usable ? prices[a.id]! : 0;
        }
        const last = lastBy.get(limit);
        if (last !== undefined && sameArrays(last.local, local) && sameArrays(last.banned, banned)) return last.out;
        this.work += cands.length * cands.length * Math.min(c.want, MAX_POSITIONS);
        const out = space.best(limit, local, banned).map((ch) => ({ ids: ch.attempts.map((a) => a.id), ll: ch.ll, score: ch.score }));
        lastBy.set(limit, { local: local.slice(), banned: banned.slice(), out });
        return out;
      },
    };
  }

  /** Export waiting call `i` of decision `d` with its chosen chain, ambiguity marked. */
  private release(d: Decision, i: number, now: number, batch?: Party[]): void {
    const call = d.calls[i]!;
    const filled = this.filled(d, i);
    if (filled !== undefined) d.result.choice[i] = filled;
    const chain = d.result.choice[i]!.ids.map((id) => d.byId[id]!);
    // Over the work budget the ambiguity search is skipped: the flag is left out rather than guessed.
    const ambiguous = batch !== undefined || this.overBudget(now) ? undefined : this.ambiguity(d, i, now);
    this.forget(call);
    const wait = now === Infinity ? 0 : Math.max(0, now - call.ev.receivedAt);
    this.counts.waitMsTotal += wait;
    if (wait > this.counts.waitMsMax) this.counts.waitMsMax = wait;
    if (now >= call.settleBy || now >= call.holdUntil) this.counts.deadlines++;
    for (const a of chain) {
      this.dropAttempt(a);
      a.owner = call;
    }
    this.unhold(call.group);
    call.chosenLl = d.result.choice[i]!.ll;
    if (d.calls.length > 1 || ambiguous !== undefined) {
      call.recentUntil = now + RECENT_SETTLES * this.opts.settleMs;
      const recent = call.group.recent;
      recent.push(call);
      if (recent.length > RECENT_CALLS) recent.shift();
    }
    if (batch !== undefined) {
      batch.push({ call, chain, ll: call.chosenLl });
      return;
    }
    this.emitCall(call, chain, ambiguous);
    this.gc(call.group);
  }

  /**
   * Waiting call `i` chose fewer attempts than its AttemptCount while attempts
   * in its window are left that no waiting call chose: once it is exported they
   * would be orphans (no call still to come is known to want them, and the SDK
   * says this call had more). Its most probable chain of the most attempts it
   * can have, among its choice and those: every attempt it adds is worth more
   * than any score (FILL_BONUS). Undefined when there is nothing to add.
   */
  private filled(d: Decision, i: number): AssignOption | undefined {
    const call = d.calls[i]!;
    const chosen = d.result.choice[i]!;
    if (chosen.ids.length >= call.want) return undefined;
    const takenByOther = new Uint8Array(d.byId.length);
    d.result.choice.forEach((o, j) => {
      if (j !== i) for (const id of o.ids) takenByOther[id] = 1;
    });
    const space = this.spaceOf(call);
    const cands = space.cands;
    const banned = new Uint8Array(cands.length);
    let free = 0;
    for (let j = 0; j < cands.length; j++) {
      const a = cands[j]!;
      const usable = a.live && d.byId[a.id] === a && takenByOther[a.id] === 0;
      banned[j] = usable ? 0 : 1;
      if (usable) free++;
    }
    if (free <= chosen.ids.length) return undefined;
    const best = space.best(1, new Float64Array(cands.length).fill(-FILL_BONUS), banned)[0];
    if (best === undefined || best.attempts.length <= chosen.ids.length) return undefined;
    this.counts.filled++;
    return { ids: best.attempts.map((a) => a.id), ll: best.ll };
  }

  /**
   * Per attempt of waiting call `i`'s chosen chain: true where the best joint
   * assignment without that attempt under call `i` is within AMBIGUITY_LN of
   * the chosen one. Undefined when none is.
   */
  private ambiguity(d: Decision, i: number, now: number): boolean[] | undefined {
    const chosen = d.result.choice[i]!;
    const call = d.calls[i]!;
    if (chosen.ids.length === 0 || (d.calls.length < 2 && this.spaceOf(call).cands.length <= chosen.ids.length)) return undefined;
    const waiting: Party[] = [];
    d.calls.forEach((c, j) => {
      if (j !== i && c.live) waiting.push({ call: c, chain: d.result.choice[j]!.ids.map((id) => d.byId[id]!), ll: d.result.choice[j]!.ll });
    });
    const group = call.group;
    group.recent = group.recent.filter((r) => r.recentUntil >= now);
    return this.ambiguityOf({ call, chain: chosen.ids.map((id) => d.byId[id]!), ll: chosen.ll }, waiting, group.recent);
  }

  /**
   * The ambiguity of `me`'s chain against the `waiting` calls (their chains as decided) and the `recent`
   * exported calls that competed for the same attempts, both free to change their chain.
   */
  private ambiguityOf(me: Party, waiting: readonly Party[], recent: readonly PendingCall[]): boolean[] | undefined {
    const call = me.call;
    const chain = me.chain;
    const mineCands = this.withRecentOwned(call, recent).cands;
    const parties: Party[] = [me, ...waiting];
    const inChain = new Set(chain);
    const mineSet = new Set(mineCands);
    for (const r of recent) {
      if (r !== call && r.space!.cands.some((a) => inChain.has(a) || (a.owner === r && mineSet.has(a)))) {
        parties.push({ call: r, chain: r.space!.cands.filter((a) => a.owner === r), ll: r.chosenLl });
      }
    }
    if (parties.length === 1 && mineCands.length <= chain.length) return undefined;
    const epoch = ++this.idEpoch;
    const owners = new Set(parties.map((p) => p.call));
    let nIds = 0;
    for (const p of parties) {
      for (const a of p.call.space!.cands) {
        if (a.idEpoch !== epoch && (a.live || (a.owner !== undefined && owners.has(a.owner)))) {
          a.idEpoch = epoch;
          a.id = nIds++;
        }
      }
    }
    const bidders = parties.map((p) => this.bidder(p.call, epoch));
    const current = parties.map((p) => p.chain.map((a) => a.id));
    const currentLl = parties.map((p) => p.ll);
    const base = currentLl.reduce((s, v) => s + v, 0);
    const mineIds = new Set<number>();
    for (const a of mineCands) if (a.idEpoch === epoch) mineIds.add(a.id);
    // What the others could gain at most if they were free to take anything: bounds every alternative.
    const zero = new Float64Array(nIds);
    let othersGain = 0;
    for (let j = 1; j < parties.length; j++) {
      const o = bidders[j]!.bid(zero, 1)[0];
      othersGain += Math.max(0, Math.max(o?.ll ?? -Infinity, bidders[j]!.emptyLl) - currentLl[j]!);
    }
    let out: boolean[] | undefined;
    chain.forEach((a, k) => {
      const banned = new Uint8Array(nIds);
      banned[a.id] = 1;
      const moved = bidders[0]!.bid(zero, 1, banned)[0];
      const upper = base - currentLl[0]! + Math.max(moved?.ll ?? -Infinity, bidders[0]!.emptyLl) + othersGain;
      if (base - upper > AMBIGUITY_LN) return;
      if (base - bestWithout(bidders, nIds, current, currentLl, 0, a.id, mineIds, AMBIGUITY_ROUNDS) <= AMBIGUITY_LN) {
        out ??= new Array<boolean>(chain.length).fill(false);
        out[k] = true;
      }
    });
    return out;
  }


  /**
   * `call`'s chain space, widened by the attempts in its window that `recent` calls were exported
   * with (an attempts-first call only those that arrived before it): the alternatives of a call
   * that arrived after a twin took its attempt. Only for the ambiguity search (it bans what no
   * party holds); the space is the call's from then on, as it is exported.
   */
  private withRecentOwned(call: PendingCall, recent: readonly PendingCall[]): ChainSpace<PendingAttempt> {
    const space = this.spaceOf(call);
    const have = new Set(space.cands);
    const extra: PendingAttempt[] = [];
    for (const r of recent) {
      if (r === call || r.space === undefined) continue;
      for (const a of r.space.cands) {
        if (a.owner === r && !have.has(a) && this.fits(call, a) && (call.callFirst || a.seq < call.seq)) {
          have.add(a);
          extra.push(a);
        }
      }
    }
    if (extra.length === 0) return space;
    return (call.space = this.newSpace(call, [...space.cands, ...extra].sort(byStart)));
  }

  /** Remove a waiting call from its group and the counts. */
  private forget(c: PendingCall): void {
    if (!c.live) return;
    c.live = false;
    this.nCalls--;
    this.callFifo.markDead();
    const i = c.group.calls.indexOf(c);
    if (i >= 0) c.group.calls.splice(i, 1);
  }

  /** Held attempts that no waiting call of the group can take any more wait for an ApiCall again. */
  private unhold(g: Group): void {
    for (const a of g.attempts) {
      if (!a.live || !a.held) continue;
      if (g.calls.some((c) => this.fits(c, a) && (c.callFirst || a.seq < c.seq))) continue;
      a.held = false;
      this.nHeld--;
      this.nAttempts++;
    }
  }

  /**
   * Export a call decided alone on arrival. Alone is not unopposed: calls of its group exported
   * in the last RECENT_SETTLES settle times may have been as likely to own its attempts (a twin
   * that took this one's attempt and left it another), so with any of them about, its ambiguity
   * is searched against them (`now` given; not over the work budget).
   */
  private claimAndEmit(call: PendingCall, attempts: PendingAttempt[], now?: number): void {
    const group = call.group;
    let ambiguous: boolean[] | undefined;
    if (now !== undefined && attempts.length > 0 && group.recent.length > 0 && !this.overBudget(now)) {
      group.recent = group.recent.filter((r) => r.recentUntil >= now);
      if (group.recent.length > 0) {
        this.spaceOf(call);
        ambiguous = this.ambiguityOf({ call, chain: attempts, ll: chainLogLikelihood(call, attempts) }, [], group.recent);
      }
    }
    for (const a of attempts) {
      this.dropAttempt(a);
      a.owner = call;
    }
    if (ambiguous !== undefined) {
      call.recentUntil = now! + RECENT_SETTLES * this.opts.settleMs;
      group.recent.push(call);
      if (group.recent.length > RECENT_CALLS) group.recent.shift();
    }
    this.emitCall(call, attempts, ambiguous);
    this.gc(group);
  }

  private emitCall(c: PendingCall, chain: PendingAttempt[], ambiguous: boolean[] | undefined): void {
    const attempts: CsmAttempt[] = [];
    let order = chain;
    let flags = ambiguous;
    if (chain.length > 1) {
      const idx = chain.map((_, k) => k).sort((x, y) => byStart(chain[x]!, chain[y]!));
      order = idx.map((k) => chain[k]!);
      if (ambiguous) flags = idx.map((k) => ambiguous[k]!);
    }
    for (const a of order) attempts.push(a.ev);
    const count = c.ev.attemptCount;
    const missingAttempts = count === undefined ? 0 : Math.max(0, count - attempts.length);
    if (flags === undefined) {
      this.emit({ kind: 'call', call: c.ev, attempts, missingAttempts });
      return;
    }
    const n = flags.filter(Boolean).length;
    this.counts.ambiguousAttempts += n;
    this.counts.ambiguousCalls++;
    this.emit({ kind: 'call', call: c.ev, attempts, missingAttempts, ambiguous: flags });
  }

  // ---------------------------------------------------------------- candidates

  /**
   * At most MAX_CANDIDATES per call (the chain space grows with their square):
   * beyond it, those starting nearest the call's start and ending nearest its
   * end are kept, where its first and last attempts are.
   */
  private capped(c: PendingCall, cands: PendingAttempt[], limit = MAX_CANDIDATES): PendingAttempt[] {
    // The space holds (positions − 1) × candidates² step terms: at most MAX_STEP_TERMS.
    const max = Math.min(limit, Math.floor(Math.sqrt(MAX_STEP_TERMS / Math.max(1, Math.min(c.want, MAX_POSITIONS) - 1))));
    if (cands.length <= max) return cands;
    this.counts.candidatesCut++;
    const keep = new Set([...cands].sort((x, y) => Math.abs(x.start - c.start) - Math.abs(y.start - c.start)).slice(0, max >> 1));
    for (const a of [...cands].sort((x, y) => Math.abs(c.end - x.end) - Math.abs(c.end - y.end))) {
      if (keep.size >= max) break;
      keep.add(a);
    }
    return cands.filter((a) => keep.has(a));
  }

  /**
   * The joint search costs far more than the common case: within each second
   * of the correlator's clock it may do WORK_PER_SECOND units (candidates² ×
   * positions per chain search; at most about half a second of CPU), then calls are decided alone
   * until the next second (counted: joint.overBudget). A storm of thousands of
   * identical calls cannot stall the datagram path. Above JOINT_MAX_EVENTS_PER_SECOND
   * events a second the datagram path itself needs the CPU: every call is decided alone.
   */
  private overBudget(now: number): boolean {
    if (now - this.workSince >= 1000) {
      this.eventsBefore = now - this.workSince < 2000 ? this.events : 0;
      this.workSince = now;
      this.work = 0;
      this.events = 0;
    }
    return this.work > WORK_PER_SECOND || this.events > JOINT_MAX_EVENTS_PER_SECOND || this.eventsBefore > JOINT_MAX_EVENTS_PER_SECOND;
  }

  /** `a` lies inside `c`'s window (± tolerance). */
  private fits(c: PendingCall, a: PendingAttempt): boolean {
    return a.start >= c.start - c.tol && a.end <= c.end + c.tol;
  }

  /** Live attempts of the call's group inside its window (± tolerance) that can be its, by start. */
  private candidates(call: PendingCall): PendingAttempt[] {
    const arr = call.group.attempts;
    const out: PendingAttempt[] = [];
    const lo = call.start - call.tol;
    const hi = call.end + call.tol;
    for (let i = lowerBoundEnd(arr, lo); i < arr.length; i++) {
      const a = arr[i]!;
      if (a.end > hi) break;
      if (a.live && a.start >= lo && (call.callFirst || a.seq < call.seq)) out.push(a);
    }
    return out.length > 1 ? out.sort(byStart) : out;
  }

  // ---------------------------------------------------------------- bookkeeping

  private group(e: CsmEvent): Group {
    // An ApiCall usually follows its own attempts: try the last group first.
    const last = this.lastGroup;
    if (last !== undefined && last.indexed && hasKey(last.key, e)) return last;
    let g = this.index.find(e);
    if (g === undefined) {
      g = { key: keyOf(e), indexed: true, queued: false, attempts: [], liveAttempts: 0, deadAttempts: 0, calls: [], recent: [] };
      this.index.insert(g);
    }
    this.lastGroup = g;
    return g;
  }

  /** Remove a pending attempt (claimed, expired or evicted). */
  private dropAttempt(a: PendingAttempt): void {
    if (!a.live) return;
    a.live = false;
    if (a.held) this.nHeld--;
    else this.nAttempts--;
    a.held = false;
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
    if (!isEmpty(g)) return;
    // Nothing waits: no later decision will ask about the calls exported from here.
    g.recent = [];
    if (g.queued || !g.indexed) return;
    g.queued = true;
    this.emptied.push(g);
    if (this.emptied.length >= EMPTIED_BATCH) this.sweep();
  }

  private sweep(): void {
    for (const g of this.emptied) {
      g.queued = false;
      if (!isEmpty(g)) continue;
      g.indexed = false;
      this.index.remove(g);
    }
    this.emptied = [];
  }

  /** Over the cap: flush the oldest pending items early. */
  private enforceCap(): void {
    while (this.nAttempts + this.nHeld + this.nCalls > this.opts.maxPending) {
      if (this.evictOldest() === undefined) break;
    }
  }

  /** Emit the oldest pending item early; undefined when nothing is pending. */
  private evictOldest(): 'attempts' | 'calls' | undefined {
    const a = this.attemptFifo.peek();
    const c = this.callFifo.peek();
    // A held attempt goes with its call: evict the oldest call instead.
    if (c && (!a || a.held || c.ev.receivedAt <= a.ev.receivedAt)) {
      this.decide(c.group, Infinity, c);
      return 'calls';
    }
    if (!a) return undefined;
    this.dropAttempt(a);
    this.emit({ kind: 'orphan', attempt: a.ev, reason: 'buffer_full' });
    return 'attempts';
  }
}
