/**
 * Scoring: how probable a chain of attempts is as one call's, under its SDK's
 * retry model (retry-models.ts), and the most probable chains of a call.
 *
 * A chain a_1 … a_n (start order) of call c scores
 *   first offset (a_1 starts just after c) + Σ gap G_k (the delay before retry k,
 *   by SDK, mode, service, k and a_k's error) + last offset (a_n ends with c)
 *   + cues: a_n carries c's final outcome (and Go's request id), a_1 … a_(n−1)
 *   failed retryably, every attempt has c's UserAgent, AttemptCount − n missing.
 * Every term is a log-probability (densities per ms), so the sum over a group
 * compares assignments as wholes: `assignment.ts` picks the most probable one.
 *
 * `topChains` finds the best chains by dynamic programming over the candidates
 * in start order (a state is "attempt j at position k"; the gap term depends
 * on k and on the attempt before), keeping the CHAINS_PER_STATE best partial
 * chains per state, so the result is the exact K best. Chains built this way
 * follow the hard cues (the last attempt is pinned by the call's end and final
 * outcome, exact or bounded gaps narrow each predecessor to a few), where a
 * search by pairwise swaps would get stuck between impossible chains.
 */
import type { CsmApiCall, CsmAttempt } from '../decode/types.js';
import {
  LN_MISSING_ATTEMPT,
  logArrival,
  logAttemptCues,
  logFirstOffset,
  logGap,
  logLastCues,
  logLastOffset,
  logRetried,
  retryProfile,
  type RetryProfile,
} from './retry-models.js';

/** An attempt with its interval (retry-models.ts §1). */
export interface TimedAttempt {
  ev: CsmAttempt;
  start: number;
  end: number;
}

/** A call with its interval. */
export interface TimedCall {
  ev: CsmApiCall;
  start: number;
  end: number;
  /** Attempts it should have: AttemptCount (1 when absent). */
  want: number;
}

export interface Chain<A extends TimedAttempt> {
  /** In start order. */
  attempts: A[];
  /** ln likelihood (see the module header). */
  ll: number;
}

/** Partial chains kept per (attempt, position) state. */
const CHAINS_PER_STATE = 4;
/** Chains returned per call by default. */
export const CHAINS_PER_CALL = 24;

/** ln likelihood of `chain` (start order) as `call`'s attempts. */
export function chainLogLikelihood(call: TimedCall, chain: readonly TimedAttempt[]): number {
  const p = retryProfile(call.ev);
  const n = chain.length;
  let ll = Math.max(0, call.want - n) * LN_MISSING_ATTEMPT;
  if (n === 0) return ll;
  ll += firstTerm(p, call, chain[0]!);
  for (let i = 1; i < n; i++) ll += stepTerm(p, call, chain[i - 1]!, chain[i]!, i);
  ll += lastTerm(p, call, chain[n - 1]!, n, n > 1 ? chain[n - 2]!.ev : undefined);
  return ll;
}

function firstTerm(p: RetryProfile, call: TimedCall, a: TimedAttempt): number {
  const offset = Number.isFinite(call.start) ? logFirstOffset(p, a.start - call.start) : 0;
  return offset + logAttemptCues(call.ev, a.ev, 1) + logArrival(call.ev, a.ev);
}

/** `b` follows `a` as attempt k+1 (k = 1: the first retry). */
function stepTerm(p: RetryProfile, call: TimedCall, a: TimedAttempt, b: TimedAttempt, k: number): number {
  return logRetried(a.ev) + logGap(p, k, a.ev, b.start - a.end) + logAttemptCues(call.ev, b.ev, k + 1) + logArrival(call.ev, b.ev);
}

function lastTerm(p: RetryProfile, call: TimedCall, a: TimedAttempt, n: number, prev: CsmAttempt | undefined): number {
  const offset = Number.isFinite(call.end) ? logLastOffset(p, call.end - a.end, n, prev) : 0;
  return offset + logLastCues(call.ev, a.ev);
}

interface Partial {
  ll: number;
  j: number;
  prev: Partial | undefined;
}

/** Insert `x` into `list` (best first), keeping at most `cap`. */
function keepBest(list: Partial[], x: Partial, cap: number): void {
  if (list.length >= cap && list[list.length - 1]!.ll >= x.ll) return;
  let i = list.length;
  while (i > 0 && list[i - 1]!.ll < x.ll) i--;
  list.splice(i, 0, x);
  if (list.length > cap) list.pop();
}

/**
 * The `limit` most probable chains of `call` among `cands` (start order), of
 * every length from 1 to min(want, cands) (a shorter chain pays for each
 * missing attempt), best first. With no candidates: the empty chain.
 */
export function topChains<A extends TimedAttempt>(call: TimedCall, cands: readonly A[], limit = CHAINS_PER_CALL): Chain<A>[] {
  const missingAll = call.want * LN_MISSING_ATTEMPT;
  const m = cands.length;
  const n = Math.min(call.want, m);
  if (n === 0) return [{ attempts: [], ll: missingAll }];
  const p = retryProfile(call.ev);
  const closed: { ll: number; node: Partial }[] = [];
  const close = (node: Partial, len: number): void => {
    const a = cands[node.j]!;
    const prev = node.prev === undefined ? undefined : cands[node.prev.j]!.ev;
    closed.push({ ll: node.ll + lastTerm(p, call, a, len, prev) + Math.max(0, call.want - len) * LN_MISSING_ATTEMPT, node });
  };
  let layer: Partial[][] = [];
  for (let j = 0; j < m; j++) {
    const node: Partial = { ll: firstTerm(p, call, cands[j]!), j, prev: undefined };
    layer.push([node]);
    close(node, 1);
  }
  for (let k = 1; k < n; k++) {
    const next: Partial[][] = [];
    for (let j = 0; j < m; j++) {
      const b = cands[j]!;
      const states: Partial[] = [];
      for (let i = 0; i < j; i++) {
        const from = layer[i]!;
        if (from.length === 0) continue;
        const step = stepTerm(p, call, cands[i]!, b, k);
        for (const x of from) keepBest(states, { ll: x.ll + step, j, prev: x }, CHAINS_PER_STATE);
      }
      next.push(states);
      for (const s of states) close(s, k + 1);
    }
    layer = next;
  }
  closed.sort((x, y) => y.ll - x.ll);
  const out: Chain<A>[] = [];
  for (let i = 0; i < closed.length && out.length < limit; i++) {
    const attempts: A[] = [];
    for (let node: Partial | undefined = closed[i]!.node; node !== undefined; node = node.prev) attempts.push(cands[node.j]!);
    attempts.reverse();
    out.push({ attempts, ll: closed[i]!.ll });
  }
  return out;
}
