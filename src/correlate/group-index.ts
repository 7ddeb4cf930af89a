/**
 * Group index: which events may belong together.
 *
 * CSM has no call id (csm-protocol.md §5, otel-mapping.md §1.9): a call and its
 * attempts share SDK family, source IP, ClientId, Service, Api and Region, and
 * the source port where the SDK keeps one socket (botocore per Session, Go v1
 * and PHP per process, Java per client, .NET). JS v2 and Ruby use a new port
 * for nearly every datagram, so there the port is not part of the key.
 */
import type { CsmEvent, SdkFamily } from '../decode/types.js';

/** One UDP socket per session/process/client: the ApiCall and its attempts share the source port. */
export const STABLE_PORT: ReadonlySet<SdkFamily> = new Set<SdkFamily>(['botocore', 'go-v1', 'java-v1', 'php-v3', 'dotnet']);

export interface GroupKey {
  clientId: string;
  service: string;
  api: string;
  region: string;
  address: string;
  /** -1 for SDK families that change port per datagram. */
  port: number;
  sdk: SdkFamily;
}

export function portOf(e: CsmEvent): number {
  return STABLE_PORT.has(e.sdk) ? e.source.port : -1;
}

export function keyOf(e: CsmEvent): GroupKey {
  return { clientId: e.clientId, service: e.service, api: e.api, region: e.region ?? '', address: e.source.address, port: portOf(e), sdk: e.sdk };
}

export function hasKey(k: GroupKey, e: CsmEvent): boolean {
  return (
    k.api === e.api && k.service === e.service && k.clientId === e.clientId && k.region === (e.region ?? '') &&
    k.address === e.source.address && k.port === portOf(e) && k.sdk === e.sdk
  );
}

/*
 * Groups are found through nested maps, one level per key part, instead of one map keyed by the
 * parts joined into a string: a joined key is a fresh string per event that has to be copied and
 * hashed whole, which cost several times the seven lookups of the (mostly short) parts.
 */
type Level<G> = Map<string | number, Level<G> | G>;

/** The map at `key` in `level`, created when absent. */
function child<G>(level: Level<G>, key: string | number): Level<G> {
  let next = level.get(key) as Level<G> | undefined;
  if (next === undefined) {
    next = new Map();
    level.set(key, next);
  }
  return next;
}

/** Groups by key; `G` carries its own key. */
export class GroupIndex<G extends { key: GroupKey }> {
  private root: Level<G> = new Map();
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** The group of `e`'s key, or undefined. */
  find(e: CsmEvent): G | undefined {
    const l1 = this.root.get(e.clientId) as Level<G> | undefined;
    const l2 = l1?.get(e.service) as Level<G> | undefined;
    const l3 = l2?.get(e.api) as Level<G> | undefined;
    const l4 = l3?.get(e.region ?? '') as Level<G> | undefined;
    const l5 = l4?.get(e.source.address) as Level<G> | undefined;
    const l6 = l5?.get(portOf(e)) as Level<G> | undefined;
    return l6?.get(e.sdk) as G | undefined;
  }

  insert(g: G): void {
    const k = g.key;
    child(child(child(child(child(child(this.root, k.clientId), k.service), k.api), k.region), k.address), k.port).set(k.sdk, g);
    this.count++;
  }

  /** Remove `g` and every level it leaves empty. */
  remove(g: G): void {
    const k = g.key;
    const parts = [k.clientId, k.service, k.api, k.region, k.address, k.port, k.sdk];
    const path: Level<G>[] = [this.root];
    for (let i = 0; i < parts.length - 1; i++) {
      const next = path[path.length - 1]!.get(parts[i]!) as Level<G> | undefined;
      if (next === undefined) return;
      path.push(next);
    }
    if (!path[path.length - 1]!.delete(k.sdk)) return;
    this.count--;
    for (let i = path.length - 2; i >= 0; i--) {
      if (path[i + 1]!.size > 0) break;
      path[i]!.delete(parts[i]!);
    }
  }

  clear(): void {
    this.root = new Map();
    this.count = 0;
  }
}
