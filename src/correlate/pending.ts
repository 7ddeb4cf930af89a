/**
 * What waits in the correlator: attempts and calls with their group, the
 * queues that age them (FIFOs with lazy deletion: an entry is marked dead and
 * skipped, so claiming is O(1)), and the window lookup of a call's candidate
 * attempts. The lifecycle that moves them is correlator.ts.
 */
import type { ChainSpace, TimedAttempt, TimedCall } from './scoring.js';
import type { GroupKey } from './group-index.js';

export interface PendingAttempt extends TimedAttempt {
  group: Group;
  live: boolean;
  /** Inside the window of a waiting call: waits with it, not counted in pendingAttempts. */
  held: boolean;
  /** Arrival order (an attempts-first call can only have attempts that arrived before it). */
  seq: number;
  /** Scratch id for the joint search, valid while `idEpoch` is the current search's (chain-spaces.ts). */
  id: number;
  idEpoch: number;
  /** Its price in the joint search (assignment.ts), kept to warm-start the next one. */
  price: number;
  /** The call it was exported with, while that call counts in its group's ambiguity (`Group.recent`). */
  owner: PendingCall | undefined;
}

export interface PendingCall extends TimedCall {
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

export interface Group {
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

/**
 * Dead entries a queue may keep referenced before it lets them go. Small on purpose: every claimed
 * attempt stays reachable from the attempt FIFO until then, with its decoded datagram. At 1,024
 * that was 1,000-2,000 attempts, 20-40 ms at 100k datagrams/s, about the time between two young-
 * generation collections (12 MB of allocation, ~35 ms): a run where they outlived it had every
 * datagram's objects promoted (0.9-1.0 MB per scavenge, old space 22 -> 78 MB and back every ~1.5 s,
 * peak RSS 180+ MB, +1 µs per datagram), a run where they did not, none: the two modes of BENCHMARKS.md.
 * At 64 a scavenge finds 0.03 MB alive and promotes nothing (6 of 6 runs); at 4,096 every run
 * was in the high mode (4 of 4). Still amortised O(1): a compaction copies fewer live entries than
 * the dead ones it drops.
 */
const COMPACT_AFTER_DEAD = 64;

/** A FIFO with lazy deletion: entries are marked dead and skipped. */
export class Fifo<T extends { live: boolean }> {
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
    if (this.dead > COMPACT_AFTER_DEAD && this.dead === size) {
      // All dead (the usual case: attempts are claimed in arrival order): nothing to copy.
      this.items = [];
      this.head = 0;
      this.dead = 0;
    } else if (this.dead > COMPACT_AFTER_DEAD && this.dead * 2 > size) {
      this.items = this.items.slice(this.head).filter((x) => x.live);
      this.head = 0;
      this.dead = 0;
    } else if (this.head > COMPACT_AFTER_DEAD && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }
}

/** Waiting calls by settle deadline (arrival order); entries leave when due, live or not. */
export class SettleQueue {
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
      if (this.head > COMPACT_AFTER_DEAD && this.head * 2 > this.items.length) {
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

export function isEmpty(g: Group): boolean {
  return g.liveAttempts === 0 && g.calls.length === 0;
}

/** First index whose `end` is >= x. */
export function lowerBoundEnd(arr: PendingAttempt[], x: number): number {
  let lo = 0;
  let hi = arr.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (arr[mid]!.end < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export function byStart(a: PendingAttempt, b: PendingAttempt): number {
  return a.start - b.start || a.end - b.end || a.seq - b.seq;
}

/** `a` lies inside `c`'s window (± tolerance). */
export function fits(c: PendingCall, a: PendingAttempt): boolean {
  return a.start >= c.start - c.tol && a.end <= c.end + c.tol;
}

/** Live attempts of the call's group inside its window (± tolerance) that can be its, by start. */
export function candidatesOf(call: PendingCall): PendingAttempt[] {
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
