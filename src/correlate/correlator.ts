/**
 * Correlate: attach ApiCallAttempt events to their ApiCall. This file is the
 * lifecycle (what waits, for how long, what is exported when) and the caps;
 * the evidence is elsewhere: group-index.ts (which events may belong
 * together), retry-models.ts (each SDK's retry timing as log-densities),
 * scoring.ts (a call's most probable chains), assignment.ts (the most probable
 * assignment of a group's attempts to its calls, jointly), ambiguity.ts (what
 * the data cannot decide); pending.ts holds what waits, chain-spaces.ts a
 * waiting call's chains and bids, work-budget.ts the joint search's budget.
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
 * search has a work budget per second (work-budget.ts); emptied groups are freed
 * in batches. Everything is counted in `settleCounts` (/stats correlation.joint).
 */
import type { CsmApiCall, CsmAttempt, CsmEvent, SdkFamily } from '../decode/types.js';
import { ambiguityOf, type Party } from './ambiguity.js';
import { assignJointly, type AssignOption, type Bidder, type JointResult } from './assignment.js';
import { ChainSpaces } from './chain-spaces.js';
import { GroupIndex, hasKey, keyOf } from './group-index.js';
import { byStart, candidatesOf, Fifo, fits, isEmpty, SettleQueue, type Group, type PendingAttempt, type PendingCall } from './pending.js';
import { attemptEnd, attemptStart, callEnd, callStart } from './retry-models.js';
import { chainLogLikelihood, topChains } from './scoring.js';
import type { Correlated, CorrelatorOptions, SettleCounts } from './types.js';
import { WorkBudget } from './work-budget.js';

/** Every attempt is sent before its ApiCall (captured for botocore, JS v2, Go v1; source for the rest). */
const ATTEMPTS_FIRST: ReadonlySet<SdkFamily> = new Set<SdkFamily>(['botocore', 'js-v2', 'go-v1', 'java-v1', 'php-v3', 'dotnet']);

/** A waiting call is exported early when no other chain of its own is within this (ln 1000; see `clear`). */
const RELEASE_MARGIN = Math.log(1000);
/** A search that ends further than this below its bound counts as cut (searchesCut). */
const CUT_GAP = 1;
/**
 * Exported calls kept per group for the ambiguity of twins decided after them, and for how many
 * settle times: a twin's ApiCall comes up to its retry chain's length after the call, and in the
 * storm captures the decisive one came 1-3.4 s after (one settle time saw none of those).
 */
const RECENT_CALLS = 32;
const RECENT_SETTLES = 4;
/** Candidates a call decided alone over the budget looks at (the nearest to its ends). */
const CANDIDATES_OVER_BUDGET = 16;
/** Calls waiting in one group at most: beyond it the oldest is decided at once (counted: joint.crowded). */
const MAX_WAITING_PER_GROUP = 32;
/** What each attempt added to a short chain is worth when a call is filled (see `filled`): more than any chain's ln likelihood. */
const FILL_BONUS = 1e4;

/** Emptied groups kept for reuse before a sweep removes those still empty. */
export const EMPTIED_BATCH = 1024;

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
  private readonly budget = new WorkBudget();
  private nAttempts = 0;
  private nHeld = 0;
  private nCalls = 0;
  private seq = 0;
  private readonly counts: SettleCounts = {
    calls: 0, deadlines: 0, waitMsTotal: 0, waitMsMax: 0, ambiguousAttempts: 0, ambiguousCalls: 0, searchesCut: 0, candidatesCut: 0, crowded: 0, overBudget: 0, filled: 0,
  };
  private readonly spaces = new ChainSpaces(this.budget, this.counts);

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
    this.budget.event();
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
    const callFirst = !ATTEMPTS_FIRST.has(ev.sdk);
    // callHoldMs is how long a call waits for its own late attempts (the ApiCall came first); an
    // attempts-first call has them all, and waits for its twins as long as settleMs says.
    const hold = callFirst ? this.opts.callHoldMs : Math.max(this.opts.callHoldMs, this.opts.settleMs);
    const call: PendingCall = {
      ev, start, end, want, tol, group, live: true, seq: this.seq++, callFirst,
      settleBy: now + this.opts.settleMs, holdUntil: now + hold, space: undefined, chosenLl: 0, recentUntil: -Infinity, completeSince: Infinity,
    };
    if (want === 0) {
      this.emitCall(call, [], undefined);
      this.gc(group);
      return;
    }
    if (this.budget.over(now) && (!call.callFirst || candidatesOf(call).length >= want)) {
      // Over the work budget: decided alone, on arrival (its best chain), as the joint search would a clear call.
      this.counts.overBudget++;
      const cands = this.spaces.capped(call, candidatesOf(call), CANDIDATES_OVER_BUDGET);
      return this.claimAndEmit(call, cands.length <= 1 ? cands : topChains(call, cands, 1)[0]!.attempts, now, false);
    }
    if (group.calls.length === 0) {
      const cands = candidatesOf(call);
      // The common case: one call, its attempts already there, nothing left over. Nothing to score.
      if (cands.length === want || (cands.length < want && !call.callFirst)) {
        if (cands.length <= 1) return this.claimAndEmit(call, cands, now);
        const best = topChains(call, cands, 1)[0]!;
        if (best.attempts.length === cands.length) return this.claimAndEmit(call, best.attempts, now);
      } else if (cands.length > want) {
        // More candidates than needed: a clear winner is exported at once; otherwise the rest may be a twin's.
        call.space = this.spaces.build(call, cands);
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
      if (c.callFirst && fits(c, a)) {
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
    for (const a of candidatesOf(call)) {
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
    const over = this.budget.over(now);
    if (!over && group.calls.length > 0) {
      const d = this.decideAll(group, true);
      waiting = d.calls.map((c, j) => ({ call: c, chain: d.result.choice[j]!.ids.map((id) => d.byId[id]!), ll: d.result.choice[j]!.ll }));
    }
    const recent = [...new Set([...recentBefore, ...group.recent, ...batch.map((b) => b.call)])].filter((r) => r.recentUntil >= now || batch.some((b) => b.call === r));
    for (const b of batch) {
      const ambiguous = over || b.chain.length === 0 ? undefined : ambiguityOf(this.spaces, b, waiting, recent);
      if (ambiguous !== undefined && b.call.recentUntil < now) this.remember(b.call, b.chain, now);
      this.emitCall(b.call, b.chain, ambiguous);
    }
    for (const b of batch) if (b.call.recentUntil < now) this.letGo(b.call);
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
      const cands = this.spaces.of(c).cands;
      if (chosen.ids.some((id) => cands.includes(d.byId[id]!))) return false;
    }
    const two = d.bidders[i]!.bid(new Float64Array(d.byId.length), 2);
    const other = two.find((o) => o.ids.join() !== chosen.ids.join());
    if (other === undefined || other.ll <= chosen.ll - RELEASE_MARGIN) return true;
    const explained = new Uint8Array(d.byId.length);
    for (const o of d.result.choice) for (const id of o.ids) explained[id] = 1;
    for (const a of this.spaces.of(d.calls[i]!).cands) if (a.live && explained[a.id] === 0) return false;
    return true;
  }

  /** The joint assignment of the group's waiting calls (assignment.ts), warm-started from the attempts' prices. */
  private decideAll(group: Group, probe = false): Decision {
    const calls = group.calls.slice();
    const epoch = this.spaces.nextEpoch();
    const byId: PendingAttempt[] = [];
    for (const c of calls) {
      for (const a of this.spaces.of(c).cands) {
        if (a.live && a.idEpoch !== epoch) {
          a.idEpoch = epoch;
          a.id = byId.length;
          byId.push(a);
        }
      }
    }
    const bidders = calls.map((c) => this.spaces.bidder(c, epoch));
    const prices = new Float64Array(byId.length);
    byId.forEach((a, id) => (prices[id] = a.price));
    const result = assignJointly(bidders, byId.length, prices);
    // A probe (the chains the waiting calls would be given now, for the ambiguity of those released) changes nothing.
    if (probe) return { calls, bidders, byId, prices, result };
    byId.forEach((a, id) => (a.price = prices[id]!));
    if (result.ll < result.bound - CUT_GAP) this.counts.searchesCut++;
    return { calls, bidders, byId, prices, result };
  }

  /** Export waiting call `i` of decision `d` with its chosen chain, ambiguity marked. */
  private release(d: Decision, i: number, now: number, batch?: Party[]): void {
    const call = d.calls[i]!;
    const filled = this.filled(d, i);
    if (filled !== undefined) d.result.choice[i] = filled;
    const chain = d.result.choice[i]!.ids.map((id) => d.byId[id]!);
    // Over the work budget the ambiguity search is skipped: the flag is left out rather than guessed.
    const ambiguous = batch !== undefined || this.budget.over(now) ? undefined : this.ambiguity(d, i, now);
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
    if (d.calls.length > 1 || ambiguous !== undefined) this.remember(call, chain, now);
    if (batch !== undefined) {
      batch.push({ call, chain, ll: call.chosenLl });
      return;
    }
    this.emitCall(call, chain, ambiguous);
    if (call.recentUntil < now) this.letGo(call);
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
    const space = this.spaces.of(call);
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
   * assignment without that attempt under call `i` is within ln 2 (ambiguity.ts) of
   * the chosen one. Undefined when none is.
   */
  private ambiguity(d: Decision, i: number, now: number): boolean[] | undefined {
    const chosen = d.result.choice[i]!;
    const call = d.calls[i]!;
    if (chosen.ids.length === 0 || (d.calls.length < 2 && this.spaces.of(call).cands.length <= chosen.ids.length)) return undefined;
    const waiting: Party[] = [];
    d.calls.forEach((c, j) => {
      if (j !== i && c.live) waiting.push({ call: c, chain: d.result.choice[j]!.ids.map((id) => d.byId[id]!), ll: d.result.choice[j]!.ll });
    });
    this.pruneRecent(call.group, now);
    return ambiguityOf(this.spaces, { call, chain: chosen.ids.map((id) => d.byId[id]!), ll: chosen.ll }, waiting, call.group.recent);
  }

  /**
   * `call`, exported with `chain`, counts in the ambiguity of its group's later twins for
   * RECENT_SETTLES settle times (at most RECENT_CALLS per group, the oldest let go).
   */
  private remember(call: PendingCall, chain: readonly PendingAttempt[], now: number): void {
    for (const a of chain) a.owner = call;
    call.recentUntil = now + RECENT_SETTLES * this.opts.settleMs;
    const recent = call.group.recent;
    recent.push(call);
    if (recent.length > RECENT_CALLS) this.letGo(recent.shift()!);
  }

  private pruneRecent(g: Group, now: number): void {
    if (g.recent.every((r) => r.recentUntil >= now)) return;
    g.recent = g.recent.filter((r) => {
      if (r.recentUntil >= now) return true;
      this.letGo(r);
      return false;
    });
  }

  /**
   * A call leaves `recent`: its attempts forget it and it forgets its chain space, so an exported
   * call holds no memory (attempts → owners → their spaces → attempts would keep a group's whole
   * history reachable).
   */
  private letGo(r: PendingCall): void {
    for (const a of r.space?.cands ?? []) if (a.owner === r) a.owner = undefined;
    r.space = undefined;
    r.recentUntil = -Infinity;
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
      if (g.calls.some((c) => fits(c, a) && (c.callFirst || a.seq < c.seq))) continue;
      a.held = false;
      this.nHeld--;
      this.nAttempts++;
    }
  }

  /**
   * Export a call decided alone on arrival. Alone is not unopposed: calls of its group exported
   * in the last RECENT_SETTLES settle times may have been as likely to own its attempts (a twin
   * that took this one's attempt and left it another), so with any of them about, its ambiguity
   * is searched against them (`flag`: not over the work budget).
   */
  private claimAndEmit(call: PendingCall, attempts: PendingAttempt[], now: number, flag = true): void {
    const group = call.group;
    let ambiguous: boolean[] | undefined;
    if (group.recent.length > 0) {
      // Also over the budget: the recent calls' chain spaces are let go once they no longer count.
      this.pruneRecent(group, now);
      if (flag && attempts.length > 0 && group.recent.length > 0) {
        this.spaces.of(call);
        ambiguous = ambiguityOf(this.spaces, { call, chain: attempts, ll: chainLogLikelihood(call, attempts) }, [], group.recent);
      }
    }
    for (const a of attempts) this.dropAttempt(a);
    if (ambiguous !== undefined) this.remember(call, attempts, now);
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
    // Nothing waits: no later decision will ask about the calls exported from here (a settle still
    // flagging the calls it released holds its own references).
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
