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
 * is exported as soon as no alternative that uses attempts no waiting call
 * explains is within RELEASE_MARGIN of its chain, or when its time is up.
 *
 * Ruby sends the ApiCall first: the call waits (callHoldMs) for its attempts,
 * then is decided as above. Unknown SDKs get both behaviours.
 *
 * Attempts placed where another placement is within ln 2 as probable are
 * marked `ambiguous` (twin calls started in the same millisecond with full
 * jitter backoff cannot be told apart by anything CSM sends).
 *
 * No timers here: the caller drives `expire(now)`; receive times of arriving
 * events also advance the settle clock. Memory: pending attempts, waiting calls
 * and the attempts they hold are capped together (maxPending, oldest exported
 * first); emptied groups are freed in batches.
 */
import type { CsmApiCall, CsmAttempt, CsmEvent, SdkFamily } from '../decode/types.js';
import { assign, components, type Assignment, type Party } from './assignment.js';
import { GroupIndex, hasKey, keyOf, type GroupKey } from './group-index.js';
import { attemptEnd, attemptStart, callEnd, callStart, LN_MISSING_ATTEMPT } from './retry-models.js';
import { CHAINS_PER_CALL, topChains, type Chain, type TimedAttempt, type TimedCall } from './scoring.js';
import type { Correlated, CorrelatorOptions, SettleCounts } from './types.js';

/** Every attempt is sent before its ApiCall (captured for botocore, JS v2, Go v1; source for the rest). */
const ATTEMPTS_FIRST: ReadonlySet<SdkFamily> = new Set<SdkFamily>(['botocore', 'js-v2', 'go-v1', 'java-v1', 'php-v3', 'dotnet']);
/**
 * Go v1 and botocore measure tightly: consecutive attempts of one call may
 * overlap by ms rounding only; JS v2 was seen (under CPU load) reporting
 * retries that overlap by several ms, so the others get the configured tolerance.
 */
const TIGHT_TIMING: ReadonlySet<SdkFamily> = new Set<SdkFamily>(['botocore', 'go-v1']);
const SEQ_TOLERANCE_MS = 2;

/** A waiting call is exported early when no alternative using free attempts is within this (ln 1000). */
const RELEASE_MARGIN = Math.log(1000);
/** An attempt is ambiguous when another placement is within this of the chosen one (a factor of 2). */
export const AMBIGUITY_LN = Math.LN2;

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
  /** Its best chains; undefined when new attempts came into its window since. */
  chains: Chain<PendingAttempt>[] | undefined;
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

function alive(ch: Chain<PendingAttempt>): boolean {
  for (const a of ch.attempts) if (!a.live) return false;
  return true;
}

/** The joint decision over a group's waiting calls. */
interface Decision {
  /** The group's waiting calls when decided (index i = party i). */
  calls: PendingCall[];
  parties: Party[];
  nIds: number;
  /** Per waiting call: its options (chains, best first, the empty chain included). */
  options: Chain<PendingAttempt>[][];
  result: Assignment;
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
  private nAttempts = 0;
  private nHeld = 0;
  private nCalls = 0;
  private seq = 0;
  private idEpoch = 0;
  private readonly counts: SettleCounts = {
    calls: 0, deadlines: 0, waitMsTotal: 0, waitMsMax: 0, ambiguousAttempts: 0, ambiguousCalls: 0, searchesCut: 0,
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
    this.releaseDue(event.receivedAt);
    if (event.type === 'ApiCall') this.addCall(event);
    else this.addAttempt(event);
    this.enforceCap();
  }

  /** Decide calls whose settle or hold time is up at `now`; expire attempts held longer than attemptHoldMs. */
  expire(now: number): void {
    for (let a = this.attemptFifo.peek(); a && a.ev.receivedAt + this.opts.attemptHoldMs <= now; a = this.attemptFifo.peek()) {
      // A held attempt waits with its call (decided within callHoldMs).
      if (a.held) break;
      this.dropAttempt(a);
      this.emit({ kind: 'orphan', attempt: a.ev, reason: 'ttl_expired' });
    }
    this.releaseDue(now);
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
      settleBy: now + this.opts.settleMs, holdUntil: now + this.opts.callHoldMs, chains: undefined,
    };
    if (want === 0) {
      this.emitCall(call, [], undefined);
      return;
    }
    if (group.calls.length === 0) {
      const cands = this.candidates(call);
      // The common case: one call, its attempts already there, nothing left over. Nothing to score.
      if (cands.length === want || (cands.length < want && !call.callFirst)) {
        if (cands.length <= 1) return this.claimAndEmit(call, cands);
        const best = topChains(call, cands, 1)[0]!;
        if (best.attempts.length === cands.length) return this.claimAndEmit(call, best.attempts);
        call.chains = topChains(call, cands);
      } else if (cands.length > want) {
        // More candidates than needed: a clear winner is exported at once; otherwise the rest may be a twin's.
        call.chains = topChains(call, cands);
        const [best, next] = call.chains;
        if (best!.attempts.length >= want && (next === undefined || best!.ll - next.ll > RELEASE_MARGIN)) {
          return this.claimAndEmit(call, best!.attempts);
        }
      }
    }
    this.wait(call, now);
  }

  private addAttempt(ev: CsmAttempt): void {
    const group = this.group(ev);
    const a: PendingAttempt = {
      ev, start: attemptStart(ev), end: attemptEnd(ev), group, live: true, held: false, seq: this.seq++, id: -1, idEpoch: -1,
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
        c.chains = undefined;
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
   * clear: its chain complete and no alternative that uses an attempt no
   * waiting call explains within RELEASE_MARGIN.
   */
  private settle(group: Group, now: number): void {
    for (;;) {
      const calls = group.calls;
      if (calls.length === 0) return;
      const d = this.decideAll(group);
      let next = -1;
      for (let i = 0; i < calls.length && next < 0; i++) {
        const c = calls[i]!;
        const complete = d.options[i]![d.result.choice[i]!]!.attempts.length >= c.want;
        const due = now >= c.holdUntil || (now >= c.settleBy && (complete || !c.callFirst));
        if (due || (complete && this.clear(d, i))) next = i;
      }
      if (next < 0) return;
      this.release(d, next, now);
    }
  }

  /** Export `call` now (hold expired, evicted, shutdown), decided jointly with its group. */
  private decide(group: Group, now: number, call: PendingCall): void {
    const d = this.decideAll(group);
    const i = group.calls.indexOf(call);
    if (i >= 0) this.release(d, i, now);
    else if (call.live) this.forget(call);
  }

  /** No alternative for waiting call `i` that avoids the others' chosen attempts and uses a free one is close. */
  private clear(d: Decision, i: number): boolean {
    const choice = d.result.choice;
    const mine = d.parties[i]!.options;
    const chosen = mine[choice[i]!]!;
    const byOthers = new Uint8Array(d.nIds);
    d.parties.forEach((p, j) => {
      for (const id of p.options[choice[j]!]!.ids) byOthers[id] = j === i ? 2 : 1;
    });
    for (const o of mine) {
      if (o === chosen) continue;
      if (o.ll <= chosen.ll - RELEASE_MARGIN) break;
      if (o.ids.some((id) => byOthers[id] === 1)) continue;
      if (o.ids.some((id) => byOthers[id] === 0)) return false;
    }
    return true;
  }

  /** The joint assignment of the group's waiting calls. */
  private decideAll(group: Group): Decision {
    const epoch = ++this.idEpoch;
    let nIds = 0;
    const options: Chain<PendingAttempt>[][] = [];
    const parties: Party[] = [];
    for (const c of group.calls) {
      const list = this.chainsOf(c);
      const empty: Chain<PendingAttempt> = { attempts: [], ll: c.want * LN_MISSING_ATTEMPT };
      const opts = list.some((ch) => ch.attempts.length === 0) ? list : [...list, empty].sort((x, y) => y.ll - x.ll);
      options.push(opts);
      parties.push({
        options: opts.map((ch) => ({
          ll: ch.ll,
          ids: ch.attempts.map((a) => {
            if (a.idEpoch !== epoch) {
              a.idEpoch = epoch;
              a.id = nIds++;
            }
            return a.id;
          }),
        })),
      });
    }
    const result = assign(parties, nIds);
    if (!result.exact) this.counts.searchesCut++;
    return { calls: group.calls.slice(), parties, nIds, options, result };
  }

  /** A waiting call's best chains among live attempts (kept between decisions; recomputed when stale). */
  private chainsOf(c: PendingCall): Chain<PendingAttempt>[] {
    if (c.chains !== undefined) {
      const before = c.chains.length;
      const kept = c.chains.filter(alive);
      // Cut chains may hide live ones: recompute when the claims of others left few.
      if (kept.length === before || kept.length >= 4 || before < CHAINS_PER_CALL) {
        c.chains = kept;
        if (kept.length > 0) return kept;
      }
    }
    c.chains = topChains(c, this.candidates(c));
    return c.chains;
  }

  /** Export waiting call `i` of decision `d` with its chosen chain, ambiguity marked. */
  private release(d: Decision, i: number, now: number): void {
    const call = d.calls[i]!;
    const chain = d.options[i]![d.result.choice[i]!]!;
    const ambiguous = this.ambiguity(d, i);
    this.forget(call);
    const wait = now === Infinity ? 0 : Math.max(0, now - call.ev.receivedAt);
    this.counts.waitMsTotal += wait;
    if (wait > this.counts.waitMsMax) this.counts.waitMsMax = wait;
    if (now >= call.settleBy || now >= call.holdUntil) this.counts.deadlines++;
    for (const a of chain.attempts) this.dropAttempt(a);
    this.unhold(call.group);
    this.emitCall(call, chain.attempts, ambiguous);
    this.gc(call.group);
  }

  /**
   * Per attempt of waiting call `i`'s chosen chain: true where the best
   * assignment of its component without that attempt under call `i` is within
   * AMBIGUITY_LN of the best one. Undefined when none is.
   */
  private ambiguity(d: Decision, i: number): boolean[] | undefined {
    const chain = d.options[i]![d.result.choice[i]!]!;
    if (chain.attempts.length === 0 || d.parties.length === 0) return undefined;
    const comp = components(d.parties, d.nIds).find((c) => c.includes(i))!;
    const sub = comp.map((j) => d.parties[j]!);
    const me = comp.indexOf(i);
    const base = assign(sub, d.nIds).ll;
    let out: boolean[] | undefined;
    const ids = d.parties[i]!.options[d.result.choice[i]!]!.ids;
    ids.forEach((id, k) => {
      const without = sub.slice();
      without[me] = { options: sub[me]!.options.filter((o) => !o.ids.includes(id)) };
      const alt = assign(without, d.nIds).ll;
      if (base - alt <= AMBIGUITY_LN) {
        out ??= new Array<boolean>(ids.length).fill(false);
        out[k] = true;
      }
    });
    return out;
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

  private claimAndEmit(call: PendingCall, attempts: PendingAttempt[]): void {
    for (const a of attempts) this.dropAttempt(a);
    this.emitCall(call, attempts, undefined);
    this.gc(call.group);
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
      g = { key: keyOf(e), indexed: true, queued: false, attempts: [], liveAttempts: 0, deadAttempts: 0, calls: [] };
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
