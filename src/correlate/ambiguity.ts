/**
 * Ambiguity: which attempts of a call about to be exported could as well be
 * elsewhere. An attempt is ambiguous when the best joint assignment without it
 * under its call is within AMBIGUITY_LN (a factor of 2) of the chosen one, the
 * other parties free to change their chains: the calls still waiting in the
 * group, and the calls exported recently that competed for the same attempts
 * (with the attempts they were exported with: both sides of a swap are marked,
 * also for a call that arrives after its twin left). The search is bounded
 * first (what every party could gain at most), then `bestWithout`
 * (assignment.ts): moves, swaps and exchanges along cycles, then a short
 * joint search.
 */
import { bestWithout } from './assignment.js';
import type { ChainSpaces } from './chain-spaces.js';
import { byStart, fits, type PendingAttempt, type PendingCall } from './pending.js';
import type { ChainSpace } from './scoring.js';

/** An attempt is ambiguous when another placement is within this of the chosen one (a factor of 2). */
const AMBIGUITY_LN = Math.LN2;
/** Price rounds of the joint search for the best assignment without one attempt (see `bestWithout`). */
const AMBIGUITY_ROUNDS = 8;

/** A call with a chain, as the ambiguity search sees it. */
export interface Party {
  call: PendingCall;
  chain: PendingAttempt[];
  ll: number;
}

/**
 * Per attempt of `me`'s chain: true where it is ambiguous against the `waiting` calls (their chains
 * as decided) and the `recent` exported calls that competed for the same attempts. Undefined when
 * none is.
 */
export function ambiguityOf(spaces: ChainSpaces, me: Party, waiting: readonly Party[], recent: readonly PendingCall[]): boolean[] | undefined {
  const call = me.call;
  const chain = me.chain;
  const mineCands = withRecentOwned(spaces, call, recent).cands;
  const parties: Party[] = [me, ...waiting];
  const inChain = new Set(chain);
  const mineSet = new Set(mineCands);
  for (const r of recent) {
    if (r !== call && r.space !== undefined && r.space.cands.some((a) => inChain.has(a) || (a.owner === r && mineSet.has(a)))) {
      parties.push({ call: r, chain: r.space.cands.filter((a) => a.owner === r), ll: r.chosenLl });
    }
  }
  if (parties.length === 1 && mineCands.length <= chain.length) return undefined;
  const epoch = spaces.nextEpoch();
  const owners = new Set(parties.map((p) => p.call));
  let nIds = 0;
  for (const p of parties) {
    for (const a of p.call.space!.cands) {
      if (a.idEpoch !== epoch && (a.live || (a.owner !== undefined && owners.has(a.owner)))) {
        a.idEpoch = epoch;
        a.id = nIds++;
      }
    }
  }
  const bidders = parties.map((p) => spaces.bidder(p.call, epoch));
  const current = parties.map((p) => p.chain.map((a) => a.id));
  const currentLl = parties.map((p) => p.ll);
  const base = currentLl.reduce((s, v) => s + v, 0);
  const mineIds = new Set<number>();
  for (const a of mineCands) if (a.idEpoch === epoch) mineIds.add(a.id);
  // What the others could gain at most if they were free to take anything: bounds every alternative.
  const zero = new Float64Array(nIds);
  let othersGain = 0;
  for (let j = 1; j < parties.length; j++) {
    const o = bidders[j]!.bid(zero, 1)[0];
    othersGain += Math.max(0, Math.max(o?.ll ?? -Infinity, bidders[j]!.emptyLl) - currentLl[j]!);
  }
  let out: boolean[] | undefined;
  chain.forEach((a, k) => {
    const banned = new Uint8Array(nIds);
    banned[a.id] = 1;
    const moved = bidders[0]!.bid(zero, 1, banned)[0];
    const upper = base - currentLl[0]! + Math.max(moved?.ll ?? -Infinity, bidders[0]!.emptyLl) + othersGain;
    if (base - upper > AMBIGUITY_LN) return;
    if (base - bestWithout(bidders, nIds, current, currentLl, 0, a.id, mineIds, AMBIGUITY_ROUNDS) <= AMBIGUITY_LN) {
      out ??= new Array<boolean>(chain.length).fill(false);
      out[k] = true;
    }
  });
  return out;
}

/**
 * `call`'s chain space, widened by the attempts in its window that `recent` calls were exported
 * with (an attempts-first call only those that arrived before it): the alternatives of a call
 * that arrived after a twin took its attempt. Only for the ambiguity search (it bans what no
 * party holds); the space is the call's from then on, as it is exported.
 */
function withRecentOwned(spaces: ChainSpaces, call: PendingCall, recent: readonly PendingCall[]): ChainSpace<PendingAttempt> {
  const space = spaces.of(call);
  const have = new Set(space.cands);
  const extra: PendingAttempt[] = [];
  for (const r of recent) {
    if (r === call || r.space === undefined) continue;
    for (const a of r.space.cands) {
      if (a.owner === r && !have.has(a) && fits(call, a) && (call.callFirst || a.seq < call.seq)) {
        have.add(a);
        extra.push(a);
      }
    }
  }
  if (extra.length === 0) return space;
  return (call.space = spaces.build(call, [...space.cands, ...extra].sort(byStart)));
}
