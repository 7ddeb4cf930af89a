/**
 * Assignment: within one group, the most probable way to give attempts to
 * calls jointly, not call by call in arrival order (a call that grabs the
 * best-looking attempts first can take its twin's).
 *
 * Each call ("party") brings its best chains (scoring.ts) as options, each a
 * set of attempt ids and a log-likelihood, plus the empty option (all its
 * attempts missing). The search picks one option per party, no attempt used
 * twice, maximising the summed log-likelihood: a depth-first branch and bound,
 * parties ordered most decided first (largest lead of their best option), the
 * bound being the sum of the remaining parties' best options among the
 * attempts still free (it sees at once that a twin would be left without). Parties that
 * share no attempt are solved apart (connected components).
 *
 * Bounds: a component of more than MAX_EXACT_PARTIES parties, or a search that
 * tries more than `budget` options, keeps the best assignment found so far;
 * the first one found is the greedy "most decided first" assignment, so the
 * fallback is never worse than greedy. `exact` says whether the optimum was
 * proven. Storm captures (39 overlapping calls) solve exactly well within it.
 */

/** One way to explain a party: attempt ids (0 … nIds−1) and ln likelihood. */
export interface AssignOption {
  ids: readonly number[];
  ll: number;
}

export interface Party {
  /** Best first; must include an option with no ids (so every party can be explained). */
  options: readonly AssignOption[];
}

export interface Assignment {
  /** Option index per party. */
  choice: number[];
  ll: number;
  /** False when a bound cut the search (see the module header). */
  exact: boolean;
}

/** Options tried per solve before the best so far is kept. */
export const ASSIGN_BUDGET = 200_000;
/** Larger components are solved greedily. */
export const MAX_EXACT_PARTIES = 256;

/** Connected components of parties that share an attempt id (index lists). */
export function components(parties: readonly Party[], nIds: number): number[][] {
  const parent = new Int32Array(parties.length);
  for (let i = 0; i < parties.length; i++) parent[i] = i;
  const find = (x: number): number => {
    while (parent[x] !== x) {
      parent[x] = parent[parent[x]!]!;
      x = parent[x]!;
    }
    return x;
  };
  const owner = new Int32Array(nIds).fill(-1);
  parties.forEach((p, i) => {
    for (const o of p.options) {
      for (const id of o.ids) {
        const q = owner[id]!;
        if (q < 0) owner[id] = i;
        else parent[find(i)] = find(q);
      }
    }
  });
  const byRoot = new Map<number, number[]>();
  for (let i = 0; i < parties.length; i++) {
    const r = find(i);
    let list = byRoot.get(r);
    if (list === undefined) byRoot.set(r, (list = []));
    list.push(i);
  }
  return [...byRoot.values()];
}

/** The most probable assignment of `parties` (see the module header). */
export function assign(parties: readonly Party[], nIds: number, budget = ASSIGN_BUDGET): Assignment {
  const choice = new Array<number>(parties.length).fill(0);
  let ll = 0;
  let exact = true;
  for (const comp of components(parties, nIds)) {
    const r = solveComponent(parties, comp, nIds, budget);
    comp.forEach((p, i) => (choice[p] = r.choice[i]!));
    ll += r.ll;
    exact &&= r.exact;
  }
  return { choice, ll, exact };
}

/** Lead of a party's best option over its second (how decided it is on its own). */
function lead(p: Party): number {
  const o = p.options;
  return o.length < 2 ? Infinity : o[0]!.ll - o[1]!.ll;
}

function solveComponent(parties: readonly Party[], comp: readonly number[], nIds: number, budget: number): Assignment {
  if (comp.length === 1) return { choice: [0], ll: parties[comp[0]!]!.options[0]!.ll, exact: true };
  // Most decided first: their choice rarely changes, so the bound tightens early.
  const order = comp.map((p, i) => ({ p, i, lead: lead(parties[p]!) })).sort((a, b) => b.lead - a.lead);
  const opts = order.map((x) => parties[x.p]!.options);
  const n = opts.length;
  const rest = new Float64Array(n + 1);
  for (let d = n - 1; d >= 0; d--) rest[d] = rest[d + 1]! + opts[d]![0]!.ll;
  const used = new Uint8Array(nIds);
  const cur = new Int32Array(n);
  const best = new Int32Array(n).fill(-1);
  let bestLl = -Infinity;
  let tries = 0;
  let cut = n > MAX_EXACT_PARTIES;

  const free = (ids: readonly number[]): boolean => {
    for (const id of ids) if (used[id] !== 0) return false;
    return true;
  };
  const bestFreeRest = (from: number): number => {
    let sum = 0;
    for (let j = from; j < n; j++) {
      const list = opts[j]!;
      let k = 0;
      while (k < list.length - 1 && !free(list[k]!.ids)) k++;
      sum += list[k]!.ll;
    }
    return sum;
  };
  const dfs = (d: number, acc: number): void => {
    if (d === n) {
      if (acc > bestLl) {
        bestLl = acc;
        best.set(cur);
      }
      return;
    }
    const list = opts[d]!;
    for (let k = 0; k < list.length; k++) {
      const o = list[k]!;
      // Options are best first: once this one cannot beat the best, none after it can.
      if (acc + o.ll + rest[d + 1]! <= bestLl) return;
      if (!free(o.ids)) continue;
      if (++tries > budget && bestLl > -Infinity) {
        cut = true;
        return;
      }
      for (const id of o.ids) used[id] = 1;
      cur[d] = k;
      // The bound again, with what the parties below can still have: their best option among free attempts.
      if (acc + o.ll + bestFreeRest(d + 1) > bestLl) dfs(d + 1, acc + o.ll);
      for (const id of o.ids) used[id] = 0;
      if (cut) return;
    }
  };
  if (!cut) dfs(0, 0);
  if (bestLl === -Infinity) {
    // Too large to search (or, impossible with an empty option per party, nothing found): greedy.
    used.fill(0);
    greedy(opts, used, cur);
    best.set(cur);
  }
  const choice = new Array<number>(n);
  let ll = 0;
  order.forEach((x, d) => {
    choice[x.i] = best[d]!;
    ll += opts[d]![best[d]!]!.ll;
  });
  return { choice, ll, exact: !cut };
}

/** Each party in turn takes its best option whose attempts are still free. */
function greedy(opts: readonly (readonly AssignOption[])[], used: Uint8Array, cur: Int32Array): void {
  opts.forEach((list, d) => {
    let k = list.findIndex((o) => o.ids.every((id) => used[id] === 0));
    if (k < 0) k = list.findIndex((o) => o.ids.length === 0);
    cur[d] = k;
    for (const id of list[k]!.ids) used[id] = 1;
  });
}

// ---------------------------------------------------------------- the joint search with prices

/** An option found under prices: `score` = ll − Σ prices of its ids. */
export interface PricedOption extends AssignOption {
  score: number;
}

/** A call as the joint search sees it: it bids for attempts at given prices. */
export interface Bidder {
  /** Its `limit` best options at `prices` (by id) without the ids `taken` marks, best score first, none empty. */
  bid(prices: Float64Array, limit: number, taken?: Uint8Array): PricedOption[];
  /** ln likelihood of explaining none of its attempts. */
  emptyLl: number;
  /** ln likelihood of exactly the chain `ids` (any order); −Infinity when they cannot be its chain. */
  llOf?(ids: readonly number[]): number;
}

export interface JointResult {
  /** The option chosen per bidder (ids [] = none of its attempts). */
  choice: AssignOption[];
  ll: number;
  /** An upper bound on any assignment's ll (the Lagrangian dual). */
  bound: number;
  /** Every option each bidder bid, the empty one included (for re-searches). */
  pools: AssignOption[][];
}

/** Subgradient rounds per joint search, and the first step (ln units). */
export const PRICE_ROUNDS = 8;
const FIRST_STEP = 2;
/** Options the final branch and bound over the pools may try (the repairs usually leave it little to find). */
export const JOINT_BUDGET = 5_000;
/** Rounds between two repairs of the prices' choice into an assignment (see `repair`). */
const REPAIR_EVERY = 4;
/** In the final search, a bidder's options whose score at the last prices trails its best by more than this are left out. */
const SCORE_WINDOW = 4;

/**
 * The most probable assignment of attempts to bidders, by Lagrangian
 * relaxation of "one attempt, one call": every attempt gets a price (in ln
 * units, warm-started from `prices`, which is updated), every bidder takes its
 * best chain at those prices by dynamic programming over *all* its candidates
 * (scoring.ts), prices rise on attempts two bidders want and fall towards 0 on
 * those nobody wants. When no attempt is wanted twice and the unwanted are
 * free, the assignment is optimal. Otherwise the chains bid along the way (the
 * pools: alternatives each call found when its favourites were dear) go to the
 * branch and bound above, and the better of that and the best conflict-free
 * round is kept. `bound` tells how far from optimal it can be.
 */
export function assignJointly(bidders: readonly Bidder[], nIds: number, prices: Float64Array, rounds = PRICE_ROUNDS, budget = JOINT_BUDGET): JointResult {
  const pools: Map<string, PricedOption>[] = bidders.map((b) => new Map([['', { ids: [], ll: b.emptyLl, score: b.emptyLl }]]));
  const use = new Uint16Array(nIds);
  let bound = Infinity;
  let primal: AssignOption[] | undefined;
  let primalLl = -Infinity;
  const latest: PricedOption[] = new Array<PricedOption>(bidders.length);
  for (let round = 0; round < rounds; round++) {
    use.fill(0);
    let dual = 0;
    for (let id = 0; id < nIds; id++) dual += prices[id]!;
    bidders.forEach((b, i) => {
      const top = b.bid(prices, 1)[0];
      const o: PricedOption = top !== undefined && top.score > b.emptyLl ? top : { ids: [], ll: b.emptyLl, score: b.emptyLl };
      const key = o.ids.join(',');
      if (!pools[i]!.has(key)) pools[i]!.set(key, o);
      latest[i] = o;
      dual += o.score;
      for (const id of o.ids) use[id]!++;
    });
    if (dual < bound) bound = dual;
    let conflict = false;
    for (let id = 0; id < nIds; id++) if (use[id]! > 1) conflict = true;
    if (!conflict) {
      let ll = 0;
      for (const o of latest) ll += o.ll;
      if (ll > primalLl) {
        primalLl = ll;
        primal = latest.slice();
      }
      // Conflict-free with the unwanted attempts free: nothing can do better.
      if (ll >= bound - 1e-9) break;
    }
    if (conflict && (round % REPAIR_EVERY === REPAIR_EVERY - 1 || round === rounds - 1)) {
      const r = repair(bidders, nIds, prices, latest);
      if (r.ll > primalLl) {
        primalLl = r.ll;
        primal = r.choice;
      }
      if (primalLl >= bound - 1e-9) break;
    }
    const step = FIRST_STEP / (1 + round / 5);
    for (let id = 0; id < nIds; id++) prices[id] = Math.max(0, prices[id]! + step * (use[id]! - 1));
  }
  const poolLists = pools.map((m) => [...m.values()].sort((x, y) => y.ll - x.ll));
  if (primal !== undefined && primalLl >= bound - 1e-9) return { choice: primal, ll: primalLl, bound, pools: poolLists };
  // Rescore the pools at the last prices; the search gets the options that are still competitive.
  const parties: Party[] = poolLists.map((list) => {
    const score = (o: AssignOption): number => o.ll - o.ids.reduce((s, id) => s + prices[id]!, 0);
    const top = Math.max(...list.map(score));
    return { options: list.filter((o) => o.ids.length === 0 || score(o) >= top - SCORE_WINDOW) };
  });
  const r = assign(parties, nIds, budget);
  if (r.ll >= primalLl || primal === undefined) {
    return { choice: r.choice.map((k, i) => parties[i]!.options[k]!), ll: r.ll, bound, pools: poolLists };
  }
  return { choice: primal, ll: primalLl, bound, pools: poolLists };
}

/**
 * The Lagrangian heuristic: turn the bidders' choices at `prices` into an
 * assignment. Bidders keep their choice in order of how much they stand to
 * lose without it (their regret: best minus second best); a bidder whose choice collides
 * with an earlier one bids again, at the same prices, for attempts still free.
 */
function repair(bidders: readonly Bidder[], nIds: number, prices: Float64Array, latest: readonly PricedOption[]): { choice: AssignOption[]; ll: number } {
  const taken = new Uint8Array(nIds);
  // Regret: what a bidder loses if it must take its second best (a full-jitter retry has many equals, a pinned chain none).
  const order = bidders
    .map((b, i) => {
      const two = b.bid(prices, 2);
      const second = two[1] === undefined ? b.emptyLl : Math.max(two[1].score, b.emptyLl);
      return { i, regret: latest[i]!.score - second };
    })
    .sort((x, y) => y.regret - x.regret);
  const choice = new Array<AssignOption>(bidders.length);
  let ll = 0;
  for (const { i } of order) {
    const b = bidders[i]!;
    let o: AssignOption = latest[i]!;
    if (o.ids.some((id) => taken[id] !== 0)) {
      const again = b.bid(prices, 1, taken)[0];
      o = again !== undefined && again.ll > b.emptyLl ? again : { ids: [], ll: b.emptyLl };
    }
    for (const id of o.ids) taken[id] = 1;
    choice[i] = o;
    ll += o.ll;
  }
  return { choice, ll };
}

/**
 * The best ln likelihood found for the bidders with attempt `x` not under
 * bidder `me`, starting from their `current` chains: `me` moves to its best
 * chain among attempts no one else holds, or swaps with one other bidder
 * whose chain holds one of its candidates (that bidder then takes its best
 * chain with `x` free), or exchanges attempts along a cycle of two or three
 * bidders (`exchange`); when none comes within ln 2, a short joint search
 * (deeper rearrangements).
 */
export function bestWithout(
  bidders: readonly Bidder[],
  nIds: number,
  current: readonly (readonly number[])[],
  currentLl: readonly number[],
  me: number,
  x: number,
  mine: ReadonlySet<number>,
  rounds: number,
): number {
  const zero = new Float64Array(nIds);
  const total = currentLl.reduce((s, v) => s + v, 0);
  const held = new Uint8Array(nIds);
  current.forEach((ids, j) => {
    if (j !== me) for (const id of ids) held[id] = 1;
  });
  const best = (j: number, taken: Uint8Array): PricedOption | undefined => {
    const o = bidders[j]!.bid(zero, 1, taken)[0];
    return o !== undefined && o.ll > bidders[j]!.emptyLl ? o : undefined;
  };
  held[x] = 1;
  let alt = total - currentLl[me]! + (best(me, held)?.ll ?? bidders[me]!.emptyLl);
  held[x] = 0;
  for (let r = 0; r < bidders.length; r++) {
    if (r === me || !current[r]!.some((id) => mine.has(id))) continue;
    const t = held.slice();
    for (const id of current[r]!) t[id] = 0;
    t[x] = 1;
    const moved = best(me, t);
    if (moved === undefined || !moved.ids.some((id) => current[r]!.includes(id))) continue;
    const tr = held.slice();
    for (const id of current[r]!) tr[id] = 0;
    for (const id of moved.ids) tr[id] = 1;
    alt = Math.max(alt, total - currentLl[me]! - currentLl[r]! + moved.ll + (best(r, tr)?.ll ?? bidders[r]!.emptyLl));
  }
  if (total - alt <= Math.LN2) return alt;
  const exchanged = exchange(bidders, current, currentLl, me, x, mine, zero);
  if (exchanged !== undefined) alt = Math.max(alt, total + exchanged);
  if (total - alt <= Math.LN2) return alt;
  // Not within reach by one move, swap or exchange: the joint search, with `x` kept from `me` (a few price rounds).
  const without: Bidder = {
    emptyLl: bidders[me]!.emptyLl,
    bid: (prices, limit, taken) => {
      const t = taken === undefined ? new Uint8Array(nIds) : taken.slice();
      t[x] = 1;
      return bidders[me]!.bid(prices, limit, t);
    },
  };
  const others = bidders.slice();
  others[me] = without;
  return Math.max(alt, assignJointly(others, nIds, new Float64Array(nIds), rounds).ll);
}

/** Ends of an exchange cycle kept per side (see `exchange`): at most their square of three-call cycles is scored. */
const EXCHANGE_ENDS = 64;

/**
 * The best gain (ln) of moving `x` off `me` by exchanging attempts along a
 * cycle of two or three bidders, every other attempt of their chains kept:
 * `x` goes to r1 in place of its y1, y1 goes to r2 in place of y2 (r2 = r1,
 * y2 = y1: a plain exchange), and y2 comes to `me` in place of `x`. Where
 * chains tie (full jitter) or gaps are bounded (Go) the moves of `bestWithout`
 * miss these: `me`'s best chain with another's attempts free often takes more
 * of them than that one can spare. Undefined without `llOf`.
 */
function exchange(
  bidders: readonly Bidder[],
  current: readonly (readonly number[])[],
  currentLl: readonly number[],
  me: number,
  x: number,
  mine: ReadonlySet<number>,
  zero: Float64Array,
): number | undefined {
  const llMe = bidders[me]!.llOf;
  if (llMe === undefined) return undefined;
  const swap = (ids: readonly number[], from: number, to: number) => ids.map((id) => (id === from ? to : id));
  // `me` with x → y2, by y2's holder r2; and r1 with y1 → x.
  const toMe: { r: number; y: number; d: number }[] = [];
  const toR1: { r: number; y: number; d: number }[] = [];
  for (let r = 0; r < bidders.length; r++) {
    const llR = bidders[r]!.llOf;
    if (r === me || llR === undefined) continue;
    for (const y of current[r]!) {
      if (mine.has(y)) {
        const d = llMe(swap(current[me]!, x, y)) - currentLl[me]!;
        if (d > -Infinity) toMe.push({ r, y, d });
      }
      const d = llR(swap(current[r]!, y, x)) - currentLl[r]!;
      if (d > -Infinity) toR1.push({ r, y, d });
    }
  }
  if (toMe.length === 0 || toR1.length === 0) return undefined;
  // What r2 could gain at most (its best chain): bounds a cycle before its third chain is scored.
  const bestGain = new Map<number, number>();
  const gainBound = (r: number): number => {
    let g = bestGain.get(r);
    if (g === undefined) {
      const o = bidders[r]!.bid(zero, 1)[0];
      bestGain.set(r, (g = Math.max(0, (o?.ll ?? -Infinity) - currentLl[r]!)));
    }
    return g;
  };
  // The most promising ends of the cycle only: the pairs, each a chain scored, stay bounded whatever the storm.
  toMe.sort((a, b) => b.d - a.d).length = Math.min(toMe.length, EXCHANGE_ENDS);
  toR1.sort((a, b) => b.d - a.d).length = Math.min(toR1.length, EXCHANGE_ENDS);
  let best: number | undefined;
  for (const m of toMe) {
    for (const o of toR1) {
      // Options sorted best first: once the bound cannot beat the best, no later r1 can.
      if (best !== undefined && m.d + o.d + gainBound(m.r) <= best) break;
      let d = m.d + o.d;
      if (o.r === m.r) {
        // A plain exchange: r gives y and takes x in its place.
        if (o.y !== m.y) continue;
      } else {
        d += bidders[m.r]!.llOf!(swap(current[m.r]!, m.y, o.y)) - currentLl[m.r]!;
      }
      if (best === undefined || d > best) best = d;
    }
  }
  return best;
}
