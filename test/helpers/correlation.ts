/**
 * Measures the correlator on a real capture against its ground truth, the way the bridge runs it:
 * datagrams fed in arrival order at their recorded receive times, `expire` on a CLOCK_TICK_MS
 * timer between them (the bridge's), everything flushed at the end. Besides accuracy it scores
 * each misplacement under the retry models: a set of calls that traded attempts (a "misplaced
 * group") where the truth is more probable than the output by more than ln 2 is a matcher error.
 */
import { bestWithout, type Bidder } from '../../src/correlate/assignment.js';
import { Correlator } from '../../src/correlate/correlator.js';
import { keyOf } from '../../src/correlate/group-index.js';
import { attemptEnd, attemptStart, callEnd, callStart, LN_MISSING_ATTEMPT, retryProfile } from '../../src/correlate/retry-models.js';
import { ChainSpace, chainLogLikelihood, type TimedAttempt, type TimedCall } from '../../src/correlate/scoring.js';
import type { Correlated, CorrelatorOptions } from '../../src/correlate/types.js';
import type { CsmApiCall, CsmAttempt, CsmEvent } from '../../src/decode/types.js';
import { decodeCapture, readTruth } from './captures.js';

/** The bridge's expiry tick (src/bridge.ts). */
export const CLOCK_TICK_MS = 100;

export interface CaptureScore {
  scenario: string;
  attempts: number;
  /** Attempts exported under their true call (an orphan is right when the truth has no call for it). */
  attemptsRight: number;
  calls: number;
  callsExact: number;
  orphans: number;
  /** Attempts exported with `ambiguous` set. */
  flagged: number;
  /** Misplaced attempts without the flag (lines). */
  misplacedUnflagged: number[];
  /** Misplaced groups, and those where the truth is more probable than the output by more than ln 2. */
  misplacedGroups: number;
  truthMoreProbable: { calls: number[]; by: number }[];
  /** Flagged attempts with no alternative placement within ln 2 once every call is known (lines). */
  flaggedWithoutAlternative: number[];
  /** How long each call waited in the correlator (ms on the capture's clock), sorted. */
  waitsMs: number[];
  out: Correlated[];
  /** The capture line of each event of `out`. */
  lineOf: Map<CsmEvent, number>;
}

export interface Replayed {
  out: Correlated[];
  waitsMs: number[];
}

/** Feeds `events` as the bridge would (arrival order, expiry ticks between them), then flushes. */
export function replay(events: readonly CsmEvent[], opts: CorrelatorOptions): Replayed {
  const out: Correlated[] = [];
  const waitsMs: number[] = [];
  let clock = 0;
  const c = new Correlator(opts, (x) => {
    out.push(x);
    if (x.kind === 'call' && Number.isFinite(clock)) waitsMs.push(clock - x.call.receivedAt);
  });
  let tick = events.length > 0 ? events[0]!.receivedAt : 0;
  for (const e of events) {
    for (; tick + CLOCK_TICK_MS <= e.receivedAt; ) {
      tick += CLOCK_TICK_MS;
      clock = tick;
      c.expire(tick);
    }
    clock = e.receivedAt;
    c.add(e);
  }
  // The traffic stops: the timer goes on until nothing waits any more.
  for (let i = 0; i < 100 && c.pendingCalls > 0; i++) {
    tick += CLOCK_TICK_MS;
    clock = tick;
    c.expire(tick);
  }
  clock = Infinity;
  c.flush();
  return { out, waitsMs: waitsMs.sort((a, b) => a - b) };
}

const timedAttempt = (ev: CsmAttempt, seq: number): TimedAttempt => ({ ev, start: attemptStart(ev), end: attemptEnd(ev), seq });
const timedCall = (ev: CsmApiCall, seq: number): TimedCall => ({ ev, start: callStart(ev), end: callEnd(ev), want: ev.attemptCount ?? 1, seq });

export function measureCapture(scenario: string, opts: CorrelatorOptions): CaptureScore {
  const decoded = decodeCapture(scenario);
  const ev = decoded.map((d) => d.event);
  const lineOf = new Map<CsmEvent, number>(decoded.map((d) => [d.event, d.line]));
  const { out, waitsMs } = replay(ev, opts);

  const ours = new Map<number, number[]>();
  const ownerOf = new Map<number, number>();
  const flagged = new Set<number>();
  const orphans = new Set<number>();
  for (const x of out) {
    if (x.kind === 'call') {
      const cl = lineOf.get(x.call)!;
      const lines = x.attempts.map((a) => lineOf.get(a)!);
      ours.set(cl, lines);
      lines.forEach((l, k) => {
        ownerOf.set(l, cl);
        if (x.ambiguous?.[k] === true) flagged.add(l);
      });
    } else {
      orphans.add(lineOf.get(x.attempt)!);
    }
  }
  const truth = readTruth(scenario);
  const truthOf = new Map<number, number[]>();
  for (const t of truth) if (t.api_call_line !== null) truthOf.set(t.api_call_line, t.attempt_lines);

  const s: CaptureScore = {
    scenario, attempts: 0, attemptsRight: 0, calls: 0, callsExact: 0, orphans: orphans.size, flagged: flagged.size,
    misplacedUnflagged: [], misplacedGroups: 0, truthMoreProbable: [], flaggedWithoutAlternative: [], waitsMs, out, lineOf,
  };
  const sameSet = (a: number[], b: number[]) => a.length === b.length && [...a].sort().join() === [...b].sort().join();
  // Misplaced groups: calls linked by the attempts that are not under their true call.
  const parent = new Map<number, number>();
  const find = (x: number): number => {
    while (parent.get(x) !== x) x = parent.get(x)!;
    return x;
  };
  const link = (x: number, y: number) => {
    for (const z of [x, y]) if (!parent.has(z)) parent.set(z, z);
    parent.set(find(x), find(y));
  };
  for (const t of truth) {
    if (t.api_call_line !== null) {
      s.calls++;
      if (sameSet(ours.get(t.api_call_line) ?? [], t.attempt_lines)) s.callsExact++;
    }
    for (const l of t.attempt_lines) {
      s.attempts++;
      const mine = ownerOf.get(l) ?? null;
      if (mine === t.api_call_line) {
        s.attemptsRight++;
        continue;
      }
      if (!flagged.has(l)) s.misplacedUnflagged.push(l);
      if (t.api_call_line !== null && mine !== null) link(t.api_call_line, mine);
      else if (t.api_call_line !== null) link(t.api_call_line, t.api_call_line);
      else if (mine !== null) link(mine, mine);
    }
  }
  const ll = (cl: number, lines: readonly number[]): number =>
    chainLogLikelihood(
      timedCall(ev[cl] as CsmApiCall, cl),
      lines.map((l) => timedAttempt(ev[l] as CsmAttempt, l)).sort((a, b) => a.start - b.start || a.end - b.end),
    );
  const groups = new Map<number, number[]>();
  for (const x of parent.keys()) {
    const r = find(x);
    groups.set(r, [...(groups.get(r) ?? []), x]);
  }
  s.misplacedGroups = groups.size;
  for (const calls of groups.values()) {
    let lt = 0;
    let lo = 0;
    for (const cl of calls) {
      lt += ll(cl, truthOf.get(cl) ?? []);
      lo += ll(cl, ours.get(cl) ?? []);
    }
    if (lt - lo > Math.LN2) s.truthMoreProbable.push({ calls: calls.sort((a, b) => a - b), by: lt - lo });
  }
  s.flaggedWithoutAlternative = flagsWithoutAlternative(ev, ours, flagged);
  return s;
}

/**
 * Flagged attempts for which, with every call of their group known, no assignment that moves the
 * attempt off its call is within ln 2 of the output: the flag says more than the data does.
 */
function flagsWithoutAlternative(ev: readonly CsmEvent[], ours: Map<number, number[]>, flagged: Set<number>): number[] {
  const byGroup = new Map<string, number[]>();
  for (const cl of ours.keys()) {
    const k = JSON.stringify(keyOf(ev[cl]!));
    byGroup.set(k, [...(byGroup.get(k) ?? []), cl]);
  }
  const attemptsByGroup = new Map<string, number[]>();
  ev.forEach((e, l) => {
    if (e.type !== 'ApiCallAttempt') return;
    const k = JSON.stringify(keyOf(e));
    attemptsByGroup.set(k, [...(attemptsByGroup.get(k) ?? []), l]);
  });
  const out: number[] = [];
  for (const [k, calls] of byGroup) {
    const mineFlagged = calls.flatMap((cl) => ours.get(cl)!.filter((l) => flagged.has(l)).map((l) => ({ cl, l })));
    if (mineFlagged.length === 0) continue;
    const lines = attemptsByGroup.get(k) ?? [];
    const idOf = new Map(lines.map((l, i) => [l, i]));
    const spaces = calls.map((cl) => {
      const call = timedCall(ev[cl] as CsmApiCall, cl);
      const tol = 50 + ((ev[cl] as CsmApiCall).latency ?? 0) / 1000;
      const attemptsFirst = retryProfile(call.ev).sdk !== 'ruby-v3' && retryProfile(call.ev).sdk !== 'unknown';
      const cands = lines
        .filter((l) => !attemptsFirst || l < cl)
        .map((l) => timedAttempt(ev[l] as CsmAttempt, l))
        .filter((a) => a.start >= call.start - tol && a.end <= call.end + tol)
        .sort((a, b) => a.start - b.start || a.end - b.end);
      return new ChainSpace(call, cands);
    });
    const chainOf = (i: number) => spaces[i]!.cands.filter((a) => ours.get(calls[i]!)!.includes(a.seq));
    const currentLl = calls.map((_, i) => chainLogLikelihood(spaces[i]!.call, chainOf(i)));
    const current = calls.map((_, i) => chainOf(i).map((a) => idOf.get(a.seq)!));
    const bidders: Bidder[] = spaces.map((space) => {
      const local = new Float64Array(space.cands.length);
      const byId = new Map(space.cands.map((a) => [idOf.get(a.seq)!, a]));
      return {
        emptyLl: space.call.want * LN_MISSING_ATTEMPT,
        llOf: (ids) => {
          const chain = ids.map((id) => byId.get(id));
          if (chain.some((a) => a === undefined)) return -Infinity;
          return chainLogLikelihood(space.call, (chain as TimedAttempt[]).sort((a, b) => a.start - b.start || a.end - b.end));
        },
        bid: (prices, limit, taken) => {
          const banned = space.cands.map((a) => taken !== undefined && taken[idOf.get(a.seq)!] !== 0);
          space.cands.forEach((a, j) => (local[j] = prices[idOf.get(a.seq)!]!));
          return space.best(limit, local, banned).map((c) => ({ ids: c.attempts.map((a) => idOf.get(a.seq)!), ll: c.ll, score: c.score }));
        },
      };
    });
    const base = currentLl.reduce((sum, v) => sum + v, 0);
    for (const { cl, l } of mineFlagged) {
      const me = calls.indexOf(cl);
      const mine = new Set(spaces[me]!.cands.map((a) => idOf.get(a.seq)!));
      // The same search the correlator flags with (one move, one swap, else a joint search), now with every call known.
      if (base - bestWithout(bidders, lines.length, current, currentLl, me, idOf.get(l)!, mine, 40) > Math.LN2) out.push(l);
    }
  }
  return out.sort((a, b) => a - b);
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}
