import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { assign, assignJointly, bestWithout, components, type Bidder, type Party } from '../../src/correlate/assignment.js';
import { attemptEnd, attemptStart } from '../../src/correlate/retry-models.js';
import { ChainSpace, chainLogLikelihood, topChains, type TimedAttempt, type TimedCall } from '../../src/correlate/scoring.js';
import type { CsmAttempt } from '../../src/decode/types.js';
import { apiCall, apiCallAttempt } from '../helpers/events.js';

/** Every way to pick one option per party with no id twice: the exact optimum, by enumeration. */
function bruteForce(parties: readonly Party[]): number {
  let best = -Infinity;
  const used = new Set<number>();
  const go = (i: number, acc: number): void => {
    if (i === parties.length) {
      best = Math.max(best, acc);
      return;
    }
    for (const o of parties[i]!.options) {
      if (o.ids.some((id) => used.has(id))) continue;
      o.ids.forEach((id) => used.add(id));
      go(i + 1, acc + o.ll);
      o.ids.forEach((id) => used.delete(id));
    }
  };
  go(0, 0);
  return best;
}

const partiesArb = fc
  .array(
    fc.array(fc.record({ ids: fc.uniqueArray(fc.integer({ min: 0, max: 7 }), { maxLength: 3 }), ll: fc.double({ min: -30, max: 0, noNaN: true }) }), { maxLength: 5 }),
    { minLength: 1, maxLength: 5 },
  )
  .map((lists) =>
    lists.map((options) => ({ options: [...options, { ids: [], ll: -40 }].sort((a, b) => b.ll - a.ll) })),
  );

describe('assignment: branch and bound', () => {
  it('finds the optimum of small problems (against enumeration)', () => {
    fc.assert(
      fc.property(partiesArb, (parties) => {
        const r = assign(parties, 8);
        expect(r.exact).toBe(true);
        expect(r.ll).toBeCloseTo(bruteForce(parties), 9);
        // The choice is feasible and adds up.
        const used = new Set<number>();
        let sum = 0;
        r.choice.forEach((k, i) => {
          const o = parties[i]!.options[k]!;
          for (const id of o.ids) {
            expect(used.has(id)).toBe(false);
            used.add(id);
          }
          sum += o.ll;
        });
        expect(sum).toBeCloseTo(r.ll, 9);
      }),
      { numRuns: 300 },
    );
  });

  it('solves parties that share no attempt apart', () => {
    const parties: Party[] = [
      { options: [{ ids: [0, 1], ll: -1 }, { ids: [], ll: -9 }] },
      { options: [{ ids: [2], ll: -2 }, { ids: [], ll: -9 }] },
      { options: [{ ids: [1], ll: -1 }, { ids: [3], ll: -3 }, { ids: [], ll: -9 }] },
    ];
    expect(components(parties, 4).map((c) => c.sort()).sort()).toEqual([[0, 2], [1]]);
    expect(assign(parties, 4).ll).toBeCloseTo(-6, 9);
  });

  it('a search cut by its budget keeps an assignment no worse than greedy, and says so', () => {
    const n = 12;
    // Every party wants attempt 0 most; the rest are ties.
    const parties: Party[] = Array.from({ length: n }, (_, i) => ({
      options: [{ ids: [0], ll: -1 }, ...Array.from({ length: 6 }, (_, k) => ({ ids: [1 + ((i + k) % n)], ll: -2 })), { ids: [], ll: -20 }],
    }));
    const r = assign(parties, n + 1, 50);
    expect(r.exact).toBe(false);
    expect(r.ll).toBeGreaterThanOrEqual(-1 - 2 * (n - 1) - 20);
  });
});

/** Bidders whose options are fixed lists (prices subtracted), for the joint search. */
function listBidders(parties: readonly Party[]): Bidder[] {
  return parties.map((p) => ({
    emptyLl: p.options.find((o) => o.ids.length === 0)!.ll,
    bid: (prices, limit, taken) =>
      p.options
        .filter((o) => o.ids.length > 0 && !o.ids.some((id) => taken !== undefined && taken[id] !== 0))
        .map((o) => ({ ...o, score: o.ll - o.ids.reduce((s, id) => s + prices[id]!, 0) }))
        .sort((a, b) => b.score - a.score)
        .slice(0, limit),
  }));
}

describe('assignment: the best assignment without one attempt (ambiguity)', () => {
  /** `listBidders` that can also score an exact chain (the option with those ids). */
  const scoring = (parties: readonly Party[]): Bidder[] =>
    listBidders(parties).map((b, i) => ({
      ...b,
      llOf: (ids: readonly number[]) => {
        const key = [...ids].sort((x, y) => x - y).join();
        return parties[i]!.options.find((o) => [...o.ids].sort((x, y) => x - y).join() === key)?.ll ?? -Infinity;
      },
    }));
  // A holds 0,1; B 2,3; C 4,5. Without 1 under A, the only assignment as good is the rotation
  // 1 → B (for its 3), 3 → C (for its 5), 5 → A. A's best chain with B's attempts free takes 2,
  // which leaves B nothing; with C's free it takes 5, and C cannot have 1.
  const parties: Party[] = [
    { options: [{ ids: [0, 2], ll: -9.5 }, { ids: [0, 1], ll: -10 }, { ids: [0, 5], ll: -10 }, { ids: [], ll: -40 }] },
    { options: [{ ids: [2, 3], ll: -10 }, { ids: [2, 1], ll: -10 }, { ids: [], ll: -40 }] },
    { options: [{ ids: [4, 5], ll: -10 }, { ids: [4, 3], ll: -10 }, { ids: [], ll: -40 }] },
  ];
  const current = [[0, 1], [2, 3], [4, 5]];
  const currentLl = [-10, -10, -10];
  const mine = new Set([0, 1, 2, 5]);

  it('finds an exchange along a cycle of three calls that no move or swap reaches', () => {
    expect(bestWithout(scoring(parties), 6, current, currentLl, 0, 1, mine, 1)).toBeCloseTo(-30, 9);
  });

  it('the exchange search is bounded: 64 calls of 64 attempts, no cycle possible, a few thousand chains scored', () => {
    const n = 64;
    const len = 64;
    let scored = 0;
    const chains = Array.from({ length: n }, (_, p) => Array.from({ length: len }, (_, k) => p * len + k));
    const x = 0;
    const bidders: Bidder[] = chains.map((chain, p) => ({
      emptyLl: -1e6,
      // Its own chain only: every move, swap and joint search finds nothing.
      bid: (_prices, _limit, taken) => (chain.some((id) => taken?.[id]) ? [] : [{ ids: chain, ll: -10, score: -10 }]),
      // The flagged call (0) could take any other call's even attempt in place of x; any other
      // call could take x in place of an odd one; no other exchange fits (so no cycle closes).
      llOf: (got) => {
        scored++;
        const foreign = got.filter((id) => Math.floor(id / len) !== p);
        if (foreign.length === 0) return -10;
        if (foreign.length > 1) return -Infinity;
        const f = foreign[0]!;
        if (p === 0) return f % 2 === 0 ? -10 - (f % 97) / 10 : -Infinity;
        const replaced = chain.find((id) => !got.includes(id))!;
        return f === x && replaced % 2 === 1 ? -10 - (replaced % 89) / 10 : -Infinity;
      },
    }));
    const mine = new Set(Array.from({ length: n * len }, (_, i) => i).filter((i) => i % 2 === 0));
    const got = bestWithout(bidders, n * len, chains, chains.map(() => -10), 0, x, mine, 1);
    expect(got).toBeLessThan(-10 * n - Math.LN2);
    // Building both ends scores 63 × 64 chains each; the three-call cycles at most 64 × 64 more
    // (4 million without the cap: 63 × 32 ends on either side).
    expect(scored).toBeLessThanOrEqual(2 * (n - 1) * len + 64 * 64);
  });

  it('without chain scores the same problem falls back to the moves and the short joint search', () => {
    expect(bestWithout(listBidders(parties), 6, current, currentLl, 0, 1, mine, 1)).toBeLessThan(-30 - Math.LN2);
  });
});

describe('assignment: the joint search with prices', () => {
  it('is feasible, never above its bound, and finds the optimum of small problems', () => {
    let optimal = 0;
    let runs = 0;
    fc.assert(
      fc.property(partiesArb, (parties) => {
        const r = assignJointly(listBidders(parties), 8, new Float64Array(8));
        const used = new Set<number>();
        for (const o of r.choice) {
          for (const id of o.ids) {
            expect(used.has(id)).toBe(false);
            used.add(id);
          }
        }
        const best = bruteForce(parties);
        expect(r.ll).toBeLessThanOrEqual(best + 1e-9);
        expect(r.bound).toBeGreaterThanOrEqual(best - 1e-9);
        runs++;
        if (r.ll >= best - 1e-9) optimal++;
      }),
      { numRuns: 300 },
    );
    // Not guaranteed (a heuristic with a bound), but on problems this small it is all but always exact.
    expect(optimal / runs).toBeGreaterThanOrEqual(0.97);
  });
});

// ---------------------------------------------------------------- the chain space

const T0 = 1_700_000_000_000;
const UA = 'Boto3/1.43.11 md/Botocore#1.43.11 cfg/retry-mode#legacy Botocore/1.43.11';

function att(at: number, lat: number, status: number, seq: number): TimedAttempt {
  const ev: CsmAttempt = apiCallAttempt({
    service: 'DynamoDB', api: 'DescribeTable', timestamp: T0 + at, attemptLatency: lat, httpStatusCode: status, userAgent: UA,
    ...(status >= 400 ? { awsException: 'ServiceUnavailable' } : {}),
  });
  return { ev, start: attemptStart(ev), end: attemptEnd(ev), seq };
}

function callOf(at: number, lat: number, n: number, status = 200): TimedCall {
  const ev = apiCall({ service: 'DynamoDB', api: 'DescribeTable', timestamp: T0 + at, latency: lat, attemptCount: n, finalHttpStatusCode: status, userAgent: UA });
  return { ev, start: T0 + at, end: T0 + at + lat, want: n, seq: 100 };
}

/** Every subsequence (start order) of `cands` of length 1 … want, scored alone. */
function allChains(call: TimedCall, cands: readonly TimedAttempt[]): { ll: number; seqs: string }[] {
  const out: { ll: number; seqs: string }[] = [];
  const pick = (from: number, chosen: TimedAttempt[]): void => {
    if (chosen.length > 0) out.push({ ll: chainLogLikelihood(call, chosen), seqs: chosen.map((a) => a.seq).join() });
    if (chosen.length === call.want) return;
    for (let i = from; i < cands.length; i++) pick(i + 1, [...chosen, cands[i]!]);
  };
  pick(0, []);
  return out.sort((a, b) => b.ll - a.ll);
}

describe('scoring: the chain space', () => {
  it('botocore legacy DynamoDB: the exact 50/100 ms gaps pick the right chain out of twins', () => {
    // Two twin calls started 1 ms apart, both 500 → 503 → 200; the gaps are exactly 50 and 100 ms.
    const mine = [att(1, 5, 500, 1), att(56, 10, 503, 3), att(167, 5, 200, 5)];
    const twin = [att(2, 8, 500, 2), att(60, 10, 503, 4), att(171, 4, 200, 6)];
    const cands = [...mine, ...twin].sort((a, b) => a.start - b.start);
    const best = topChains(callOf(0, 172, 3), cands, 1)[0]!;
    expect(best.attempts.map((a) => a.seq)).toEqual([1, 3, 5]);
  });

  it('finds the same best chains as enumerating every subsequence', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ at: fc.integer({ min: 0, max: 400 }), lat: fc.integer({ min: 0, max: 60 }), ok: fc.boolean() }), { minLength: 1, maxLength: 7 }),
        fc.integer({ min: 1, max: 3 }),
        (raw, n) => {
          const cands = raw.map((r, i) => att(r.at, r.lat, r.ok ? 200 : 503, i)).sort((a, b) => a.start - b.start || a.end - b.end || a.seq - b.seq);
          const call = callOf(0, 480, n);
          const dp = new ChainSpace(call, cands).best(3);
          const all = allChains(call, cands);
          // (The empty chain, every attempt missing, is the search's own option, not the space's.)
          expect(dp[0]!.ll).toBeCloseTo(all[0]!.ll, 6);
          for (const c of dp) expect(c.ll).toBeCloseTo(chainLogLikelihood(call, c.attempts), 6);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('prices steer the choice; banned candidates are never used', () => {
    const cands = [att(1, 5, 503, 1), att(2, 5, 503, 2), att(60, 5, 200, 3)];
    const space = new ChainSpace(callOf(0, 65, 2), cands);
    const free = space.best(1)[0]!;
    const dear = new Float64Array(3);
    dear[free.idx[0]!] = 50;
    const other = space.best(1, dear)[0]!;
    expect(other.idx[0]).not.toBe(free.idx[0]);
    expect(other.score).toBeCloseTo(other.ll, 9);
    const banned = new Uint8Array(3);
    banned[2] = 1;
    expect(space.best(5, undefined, banned).every((c) => !c.idx.includes(2))).toBe(true);
  });
});
