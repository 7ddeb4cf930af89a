/**
 * A waiting call's chain space (scoring.ts) over its candidate attempts, and
 * the call as a bidder in a joint search (assignment.ts). Both count their
 * work against the correlator's budget (work-budget.ts). Attempt ids of a
 * search are numbered per epoch: an attempt takes part in the search of
 * `epoch` only if it was given an id in it, so claimed attempts stay out.
 */
import type { Bidder, PricedOption } from './assignment.js';
import { candidatesOf, byStart, type PendingAttempt, type PendingCall } from './pending.js';
import { LN_MISSING_ATTEMPT } from './retry-models.js';
import { ChainSpace, chainLogLikelihood, MAX_POSITIONS } from './scoring.js';
import type { SettleCounts } from './types.js';
import { SPACE_WORK, type WorkBudget } from './work-budget.js';

/** Candidates per call beyond which the nearest to its ends are kept (see `capped`), and the step terms of one chain space. */
const MAX_CANDIDATES = 192;
const MAX_STEP_TERMS = 1 << 18;

function sameArrays(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export class ChainSpaces {
  private epoch = 0;

  constructor(
    private readonly budget: WorkBudget,
    private readonly counts: SettleCounts,
  ) {}

  /** A new numbering of attempt ids for one joint search. */
  nextEpoch(): number {
    return ++this.epoch;
  }

  /** A waiting call's chains over its candidates (built once; rebuilt when new attempts came into its window). */
  of(c: PendingCall): ChainSpace<PendingAttempt> {
    if (c.space === undefined) c.space = this.build(c, candidatesOf(c));
    return c.space;
  }

  /** A chain space over (at most MAX_CANDIDATES of) `cands`; its building counts as work. */
  build(c: PendingCall, cands: PendingAttempt[]): ChainSpace<PendingAttempt> {
    const kept = this.capped(c, cands);
    this.budget.charge(kept.length * kept.length * Math.min(c.want, MAX_POSITIONS) * SPACE_WORK);
    return new ChainSpace(c, kept);
  }

  /**
   * At most `limit` (MAX_CANDIDATES) per call (the chain space grows with their square):
   * beyond it, those starting nearest the call's start and ending nearest its
   * end are kept, where its first and last attempts are.
   */
  capped(c: PendingCall, cands: PendingAttempt[], limit = MAX_CANDIDATES): PendingAttempt[] {
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

  /** `c` as a bidder in a joint search whose attempt ids are those of `epoch` (claimed attempts are left out). */
  bidder(c: PendingCall, epoch: number): Bidder {
    const space = this.of(c);
    const cands = space.cands;
    const local = new Float64Array(cands.length);
    const banned = new Uint8Array(cands.length);
    // Price rounds often leave a bidder's prices as they were: the last answer per limit is kept for that.
    const lastBy = new Map<number, { local: Float64Array; banned: Uint8Array; out: PricedOption[] }>();
    let byId: Map<number, PendingAttempt> | undefined;
    return {
      emptyLl: c.want * LN_MISSING_ATTEMPT,
      llOf: (ids) => {
        // Scoring one chain is linear in its length: counted like a search step, so the ambiguity search stays in the budget.
        this.budget.charge(ids.length * Math.min(c.want, MAX_POSITIONS));
        byId ??= new Map(cands.filter((a) => a.idEpoch === epoch).map((a) => [a.id, a]));
        const chain: PendingAttempt[] = [];
        for (const id of ids) {
          const a = byId.get(id);
          if (a === undefined) return -Infinity;
          chain.push(a);
        }
        return chainLogLikelihood(c, chain.sort(byStart));
      },
      bid: (prices, limit, taken) => {
        for (let j = 0; j < cands.length; j++) {
          const a = cands[j]!;
          // Ids of the epoch are given to usable attempts only (see the correlator's decideAll, ambiguity.ts).
          const usable = a.idEpoch === epoch && (taken === undefined || taken[a.id] === 0);
          banned[j] = usable ? 0 : 1;
          local[j] = usable ? prices[a.id]! : 0;
        }
        const last = lastBy.get(limit);
        if (last !== undefined && sameArrays(last.local, local) && sameArrays(last.banned, banned)) return last.out;
        this.budget.charge(cands.length * cands.length * Math.min(c.want, MAX_POSITIONS));
        const out = space.best(limit, local, banned).map((ch) => ({ ids: ch.attempts.map((a) => a.id), ll: ch.ll, score: ch.score }));
        lastBy.set(limit, { local: local.slice(), banned: banned.slice(), out });
        return out;
      },
    };
  }
}
