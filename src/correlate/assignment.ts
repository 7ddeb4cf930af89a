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
 * bound being the sum of the remaining parties' best options. Parties that
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
      dfs(d + 1, acc + o.ll);
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
