/**
 * Scoring: how probable a chain of attempts is as one call's, under its SDK's
 * retry model (retry-models.ts), and the most probable chains of a call.
 *
 * A chain a_1 … a_n (start order) of call c scores
 *   first offset (a_1 starts just after c) + Σ gap G_k (the delay before retry k,
 *   by SDK, mode, service, k and a_k's error) + last offset (a_n ends with c)
 *   + cues: a_n carries c's final outcome (and Go's request id), a_1 … a_(n−1)
 *   failed retryably, every attempt has c's UserAgent, AttemptCount − n missing,
 *   Ruby's burst (call, then its attempts back to back).
 * Every term is a log-probability (densities per ms), so the sum over a group
 * compares assignments as wholes: `assignment.ts` picks the most probable one.
 *
 * `ChainSpace` finds the best chains by dynamic programming over the candidates
 * in start order (a state is "attempt j at position k"; the gap term depends
 * on k and on the attempt before), keeping the CHAINS_PER_STATE best partial
 * chains per state, so the result is the exact K best (K ≤ CHAINS_PER_STATE);
 * under attempt prices for the joint search (assignment.ts). Chains built this way
 * follow the hard cues (the last attempt is pinned by the call's end and final
 * outcome, exact or bounded gaps narrow each predecessor to a few), where a
 * search by pairwise swaps would get stuck between impossible chains.
 */
import type { CsmApiCall, CsmAttempt } from '../decode/types.js';
import {
  LN_MISSING_ATTEMPT,
  logBurst,
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
  /** Arrival order (any increasing count of datagrams); used for Ruby's bursts. */
  seq: number;
}

/** A call with its interval. */
export interface TimedCall {
  ev: CsmApiCall;
  start: number;
  end: number;
  /** Attempts it should have: AttemptCount (1 when absent). */
  want: number;
  /** Arrival order, as for attempts. */
  seq: number;
}

export interface Chain<A extends TimedAttempt> {
  /** In start order. */
  attempts: A[];
  /** ln likelihood (see the module header). */
  ll: number;
}

/** Partial chains kept per (attempt, position) state. */
const CHAINS_PER_STATE = 4;
/** Positions a chain space holds (AttemptCount above it: the later attempts count as missing). */
export const MAX_POSITIONS = 64;
/** Chains returned per call by default. */
export const CHAINS_PER_CALL = 24;

/**
 * ln likelihood of `chain` (start order) as `call`'s attempts, as the chain
 * space scores it: when attempts are missing, the most probable of "the first
 * (or last) ones are missing" and "missing in between".
 */
export function chainLogLikelihood(call: TimedCall, chain: readonly TimedAttempt[]): number {
  const n = chain.length;
  if (n === 0) return call.want * LN_MISSING_ATTEMPT;
  const p = retryProfile(call.ev);
  const inside = -Math.log((Number.isFinite(call.start) && Number.isFinite(call.end) ? Math.max(1, call.end - call.start) : 300_000) + 1);
  const want = Math.max(call.want, n);
  let best = -Infinity;
  // Entered at position e (attempts 1 … e−1 missing).
  for (let e = 1; e + n - 1 <= Math.max(want, n); e++) {
    let ll = e === 1 ? firstTerm(p, call, chain[0]!) : inside + logAttemptCues(call.ev, chain[0]!.ev, e) + (e - 1) * LN_MISSING_ATTEMPT;
    for (let i = 1; i < n; i++) ll += stepTerm(p, call, chain[i - 1]!, chain[i]!, e + i - 1);
    const pos = e + n - 1;
    let last = lastTerm(p, call, chain[n - 1]!, pos, n > 1 ? chain[n - 2]!.ev : undefined) + Math.max(0, call.want - pos) * LN_MISSING_ATTEMPT;
    if (pos < call.want) last = Math.max(last, logRetried(chain[n - 1]!.ev) + inside + (call.want - pos) * LN_MISSING_ATTEMPT);
    best = Math.max(best, ll + last);
  }
  return best;
}

function firstTerm(p: RetryProfile, call: TimedCall, a: TimedAttempt): number {
  const offset = Number.isFinite(call.start) ? logFirstOffset(p, a.start - call.start) : 0;
  return offset + logAttemptCues(call.ev, a.ev, 1) + logBurst(p.sdk, a.seq - call.seq);
}

/** `b` follows `a` as attempt k+1 (k = 1: the first retry). */
function stepTerm(p: RetryProfile, call: TimedCall, a: TimedAttempt, b: TimedAttempt, k: number): number {
  return logRetried(a.ev) + logGap(p, k, a.ev, b.start - a.end) + logAttemptCues(call.ev, b.ev, k + 1) + logBurst(p.sdk, b.seq - a.seq);
}

function lastTerm(p: RetryProfile, call: TimedCall, a: TimedAttempt, n: number, prev: CsmAttempt | undefined): number {
  const offset = Number.isFinite(call.end) ? logLastOffset(p, call.end - a.end, n, prev) : 0;
  return offset + logLastCues(call.ev, a.ev);
}

interface Partial {
  /** ln likelihood so far, minus prices. */
  score: number;
  ll: number;
  j: number;
  prev: Partial | undefined;
}

/** Insert `x` into `list` (best first), keeping at most `cap`. */
function keepBest(list: Partial[], x: Partial, cap: number): void {
  if (list.length >= cap && list[list.length - 1]!.score >= x.score) return;
  let i = list.length;
  while (i > 0 && list[i - 1]!.score < x.score) i--;
  list.splice(i, 0, x);
  if (list.length > cap) list.pop();
}

/** A chain found under prices: `score` = ll − Σ prices of its attempts; `idx` = candidate indices. */
export interface PricedChain<A extends TimedAttempt> extends Chain<A> {
  score: number;
  idx: number[];
}

/**
 * Every chain a call could have among its candidates, as a DP over them in
 * start order: a state is "candidate j at position k". The terms that depend
 * only on the pair (candidate i, then j as attempt k+1) are computed once, so
 * asking again under other prices (assignment.ts) only adds numbers.
 * Memory: at most want × candidates² numbers (candidates are capped by the caller).
 */
export class ChainSpace<A extends TimedAttempt> {
  readonly call: TimedCall;
  /** In start order. */
  readonly cands: readonly A[];
  private readonly p: RetryProfile;
  /** Positions: min(want, MAX_POSITIONS), 0 without candidates. */
  private readonly n: number;
  private readonly first: Float64Array;
  /** stepLl[k − 1][j][i]: ln likelihood of candidate j following candidate i (i before j in start order) as attempt k + 1. */
  private readonly stepLl: Float64Array[][] = [];
  /** last[len − 1][j]: j closes a chain of `len` (PHP's depends on the attempt before: computed when closing). */
  private readonly last: Float64Array[] = [];
  /** ln density of an attempt starting (or ending) somewhere inside the call. */
  private readonly inside: number;
  /** logRetried per candidate, and its attempt cues per position. */
  private readonly retried: Float64Array;
  private readonly cues: Float64Array[];

  constructor(call: TimedCall, cands: readonly A[]) {
    this.call = call;
    this.cands = cands;
    this.p = retryProfile(call.ev);
    const m = cands.length;
    this.n = m === 0 ? 0 : Math.min(call.want, MAX_POSITIONS);
    this.first = new Float64Array(m);
    for (let j = 0; j < m; j++) this.first[j] = firstTerm(this.p, call, cands[j]!);
    // An attempt the SDK dropped (or a twin was given) may be the first or the last: then the observed first or
    // last one is a retry somewhere inside the call, where nothing says where.
    const span = Number.isFinite(call.start) && Number.isFinite(call.end) ? Math.max(1, call.end - call.start) : 300_000;
    this.inside = -Math.log(span + 1);
    this.retried = new Float64Array(m);
    this.cues = [];
    for (let j = 0; j < m; j++) this.retried[j] = logRetried(cands[j]!.ev);
    for (let k = 1; k <= this.n; k++) {
      const t = new Float64Array(m);
      for (let j = 0; j < m; j++) t[j] = logAttemptCues(call.ev, cands[j]!.ev, k);
      this.cues.push(t);
    }
    for (let k = 1; k < this.n; k++) {
      const lls: Float64Array[] = [];
      for (let j = 0; j < m; j++) {
        const row = new Float64Array(j);
        for (let i = 0; i < j; i++) row[i] = stepTerm(this.p, call, cands[i]!, cands[j]!, k);
        lls.push(row);
      }
      this.stepLl.push(lls);
    }
    if (this.p.sdk !== 'php-v3') {
      for (let len = 1; len <= this.n; len++) {
        const t = new Float64Array(m);
        for (let j = 0; j < m; j++) t[j] = lastTerm(this.p, call, cands[j]!, len, undefined) + Math.max(0, call.want - len) * LN_MISSING_ATTEMPT;
        this.last.push(t);
      }
    }
  }

  /**
   * The `limit` best chains by ll minus the prices of their attempts
   * (`price[j]` for candidate j), best first, each set of attempts once;
   * candidates with `banned[j]` are left out. A chain shorter than AttemptCount
   * pays for each missing attempt, and may start or end at any position (its
   * first or last attempts missing) where that is more probable than missing
   * in between. The empty chain (every attempt missing) is not among them.
   */
  best(limit: number, price?: Float64Array, banned?: Uint8Array | readonly boolean[]): PricedChain<A>[] {
    const m = this.cands.length;
    const cap = Math.min(limit, CHAINS_PER_STATE);
    const closed: Partial[] = [];
    const want = this.call.want;
    const close = (node: Partial, pos: number): void => {
      let t: number;
      if (this.p.sdk === 'php-v3') {
        const prev = node.prev === undefined ? undefined : this.cands[node.prev.j]!.ev;
        t = lastTerm(this.p, this.call, this.cands[node.j]!, pos, prev) + Math.max(0, want - pos) * LN_MISSING_ATTEMPT;
      } else {
        t = this.last[pos - 1]![node.j]!;
      }
      // Or the last attempts are missing: this one failed and was retried, somewhere inside the call.
      if (pos < want) t = Math.max(t, this.retried[node.j]! + this.inside + (want - pos) * LN_MISSING_ATTEMPT);
      keepBest(closed, { score: node.score + t, ll: node.ll + t, j: node.j, prev: node }, 2 * limit);
    };
    let layer: Partial[][] = [];
    for (let j = 0; j < m; j++) {
      if (banned !== undefined && banned[j]) {
        layer.push([]);
        continue;
      }
      const ll = this.first[j]!;
      const node: Partial = { score: ll - (price === undefined ? 0 : price[j]!), ll, j, prev: undefined };
      layer.push([node]);
      close(node, 1);
    }
    for (let k = 1; k < this.n; k++) {
      const llsK = this.stepLl[k - 1]!;
      const next: Partial[][] = [];
      for (let j = 0; j < m; j++) {
        const states: Partial[] = [];
        next.push(states);
        if (banned !== undefined && banned[j]) continue;
        const pj = price === undefined ? 0 : price[j]!;
        const lls = llsK[j]!;
        for (let i = 0; i < j; i++) {
          const from = layer[i]!;
          const st = lls[i]!;
          // `from` is best first: once one cannot get in, the rest cannot either.
          for (const x of from) {
            const score = x.score + st - pj;
            if (states.length >= cap && states[states.length - 1]!.score >= score) break;
            keepBest(states, { score, ll: x.ll + st, j, prev: x }, cap);
          }
        }
        // Entered here, attempts 1 … k missing (the penalty is paid when the chain closes).
        const entry = this.inside + this.cues[k]![j]!;
        if (states.length < cap || states[states.length - 1]!.score < entry + k * LN_MISSING_ATTEMPT - pj) {
          keepBest(states, { score: entry + k * LN_MISSING_ATTEMPT - pj, ll: entry + k * LN_MISSING_ATTEMPT, j, prev: undefined }, cap);
        }
        for (const st of states) close(st, k + 1);
      }
      layer = next;
    }
    // The same attempts can close under two hypotheses (first attempt there or missing): the better one counts.
    const out: PricedChain<A>[] = [];
    const seen = new Set<string>();
    for (const c of closed) {
      const attempts: A[] = [];
      const idx: number[] = [];
      // `c` is a closing copy of its last state: walk from that state.
      for (let node: Partial | undefined = c.prev; node !== undefined; node = node.prev) {
        attempts.push(this.cands[node.j]!);
        idx.push(node.j);
      }
      attempts.reverse();
      idx.reverse();
      const key = idx.join(',');
      if (seen.has(key)) continue;
      seen.add(key);
      out.push({ attempts, idx, ll: c.ll, score: c.score });
      if (out.length === limit) break;
    }
    return out;
  }
}

/**
 * The `limit` most probable chains of `call` among `cands` (start order), of
 * every length from 1 to min(want, cands) (a shorter chain pays for each
 * missing attempt), best first. With no candidates: the empty chain.
 */
export function topChains<A extends TimedAttempt>(call: TimedCall, cands: readonly A[], limit = CHAINS_PER_CALL): Chain<A>[] {
  if (Math.min(call.want, cands.length) === 0) return [{ attempts: [], ll: call.want * LN_MISSING_ATTEMPT }];
  return new ChainSpace(call, cands).best(limit).map((c) => ({ attempts: c.attempts, ll: c.ll }));
}
