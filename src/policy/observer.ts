/**
 * What each application really calls, kept for its IAM policy: per subject (ClientId, split by
 * sending process when process identity is known, calls of an unidentified process going with
 * the ClientId's only known program; an empty ClientId is grouped by the hash of its access key), the distinct Service.Api it called with how often and how often it failed,
 * the scopes the calls give (partition, Region, account, S3 bucket), and the denials its
 * AccessDenied messages explain. Operations, not actions, are kept: the policy is computed from
 * them when asked for (./document.ts), so a policy file stays valid when the mapping improves.
 *
 * Bounded whatever the input, twice: in shape (MAX_SUBJECTS × MAX_CALLS_PER_SUBJECT entries,
 * MAX_SCOPES_PER_CALL scopes each, MAX_DENIALS_PER_SUBJECT denials) and in bytes (a budget,
 * MAX_POLICY_STATE_BYTES or less: the shape caps alone allow about 5 GB, and this state lives
 * beside the pending state the memory ceiling sheds, so it must fit beside it). Each entry's
 * heap cost is estimated from its strings when it is made (textBytes, *_BYTES); what does not fit is
 * counted (stats.policy), never kept. Pure: no clock, no I/O; `changes` tells the policy file
 * when to write, each subject's `version` tells the policy service what to rebuild.
 */
import type { Correlated } from '../correlate/types.js';
import type { CsmAttempt } from '../decode/types.js';
import type { Principal } from '../decode/access-key.js';
import { isDenied, parseDenial } from './denial.js';

export const MAX_SUBJECTS = 500;
export const MAX_CALLS_PER_SUBJECT = 1_000;
export const MAX_SCOPES_PER_CALL = 32;
export const MAX_DENIALS_PER_SUBJECT = 200;
/**
 * The byte budget of the whole state, and without a memory ceiling: enough for about 100,000
 * distinct Service.Api × scope entries, hundreds of times what real applications make.
 */
export const MAX_POLICY_STATE_BYTES = 32 * 1024 * 1024;
/**
 * Under a memory ceiling the budget is 1/16 of it when that is less (16 MiB under the default
 * 256 MiB). The reports built from the state may keep as much again (policy-service.ts), so
 * policies take at most 1/8 of the ceiling; the export spools have 1/4; the rest is the process
 * itself (about 110 MiB RSS idle) and the pending state the memory guard sheds.
 */
export const POLICY_SHARE_OF_MEMORY_CEILING = 16;
/** Longest name kept from the wire (ClientId and friends are already ≤ 256 after decode). */
const MAX_TEXT = 256;

export interface PolicyCounters {
  /** Calls (and orphan attempts) observed. */
  observed: number;
  /** Of those, left out because no service answered them (`answered`). */
  unanswered: number;
  subjects: number;
  /** Not kept because a bound was reached. */
  droppedSubjects: number;
  droppedCalls: number;
  droppedScopes: number;
  droppedDenials: number;
  /** Of the dropped above: because the byte budget was full (the rest hit a shape cap). */
  droppedOverBudget: number;
  /** The state's estimated heap size now, and its budget. */
  stateBytes: number;
  maxStateBytes: number;
}

export const newPolicyCounters = (): PolicyCounters => ({
  observed: 0,
  unanswered: 0,
  subjects: 0,
  droppedSubjects: 0,
  droppedCalls: 0,
  droppedScopes: 0,
  droppedDenials: 0,
  droppedOverBudget: 0,
  stateBytes: 0,
  maxStateBytes: MAX_POLICY_STATE_BYTES,
});

/** Where a call went, as far as CSM tells: `partition|region|account|bucket`, '' = unknown. */
export type Scope = string;

export interface ObservedCall {
  service: string;
  api: string;
  calls: number;
  failed: number;
  scopes: Scope[];
}

export interface ObservedDenial {
  /** The call that was denied. */
  service: string;
  api: string;
  /** What the message names; absent when it names no action (the call's own actions are missing). */
  action?: string;
  resource?: string;
  reason?: string;
  explicitDeny: boolean;
  calls: number;
}

export interface SubjectState {
  /** ClientId, or `key:<hash>` for calls without one (the hash of the signing access key). */
  client: string;
  /** The sending program (process.executable.name, container id) when process identity is on. */
  process?: string;
  calls: ObservedCall[];
  denials: ObservedDenial[];
}

/** The policy file's content (and what /policy is built from). */
export interface PolicyState {
  version: 1;
  subjects: SubjectState[];
}

/** The process a call came from, as src/identity resolves it. */
export interface ProcessLabelSource {
  readonly attributes: Readonly<Record<string, string | number>>;
}

interface CallRecord {
  service: string;
  api: string;
  calls: number;
  failed: number;
  scopes: Set<Scope>;
  /** What the last scope added or found in `scopes` was made of (`scoped`: there is one): the next call's is usually the same. */
  scoped: boolean;
  region: string | undefined;
  account: string | undefined;
  bucket: string | undefined;
}

interface Subject {
  client: string;
  process: string | undefined;
  calls: Map<string, CallRecord>;
  /** The same records by (raw) Service, then Api: found without making a key string per call. */
  byService: Map<string, Map<string, CallRecord>>;
  denials: Map<string, ObservedDenial>;
  /** Bumped on every change of this subject, counts included: its report is rebuilt when it moved. */
  version: number;
}

/** One subject as the policy service reads it: a stable key, its version, and its state copied on demand. */
export interface SubjectEntry {
  readonly key: string;
  readonly client: string;
  readonly process: string | undefined;
  readonly version: number;
  state(): SubjectState;
}

/**
 * Estimated heap bytes of what an entry holds, beyond its strings: object, Map or Set slot (with
 * the table's spare capacity), the composite key's cons cells. Measured on V8 (node 20) with the
 * real decoder feeding distinct calls (test/unit/policy-state.test.ts checks the estimate against
 * the heap), rounded up.
 */
const SUBJECT_BYTES = 800;
const CALL_BYTES = 400;
const SCOPE_BYTES = 80;
const DENIAL_BYTES = 360;

/** A string's heap bytes: header plus one byte a character, or two if any is beyond Latin-1. */
const textBytes = (s: string | undefined) => (s === undefined ? 0 : 16 + s.length * (WIDE.test(s) ? 2 : 1));
const WIDE = /[^\u0000-\u00ff]/;

/** How a subject is shown and addressed: `client`, or `client [process]`. */
export function subjectLabel(s: { client: string; process?: string }): string {
  const client = s.client === '' ? '(no ClientId)' : s.client;
  return s.process === undefined ? client : `${client} [${s.process}]`;
}

export class PolicyObserver {
  private readonly subjects = new Map<string, Subject>();
  /** Bumped on every change that alters a policy (not on a repeated call): the policy file writes on it. */
  changes = 0;
  /** Bumped on every change of any subject, counts included (the sum of their versions). */
  revision = 0;
  private bytes = 0;

  constructor(
    readonly counters: PolicyCounters = newPolicyCounters(),
    /** The byte budget (MAX_POLICY_STATE_BYTES, or the ceiling's share when smaller). */
    readonly maxBytes: number = MAX_POLICY_STATE_BYTES,
  ) {
    counters.maxStateBytes = maxBytes;
  }

  /** The estimated heap bytes of the state now. */
  get stateBytes(): number {
    return this.bytes;
  }

  /** One correlated call (or orphan attempt) from a process, if known. Never throws on odd input. */
  /** The last observed call's subject and call record (observe's fast path). */
  private memo: {
    client?: string;
    process?: ProcessLabelSource | undefined;
    subject?: Subject;
    service?: string;
    api?: string;
    rec?: CallRecord;
  } = {};
  private bucketHost: string | undefined;
  private bucketOfHost: string | undefined;

  observe(c: Correlated, process?: ProcessLabelSource): void {
    this.counters.observed++;
    if (!answered(c)) {
      this.counters.unanswered++;
      return;
    }
    const attempts = c.kind === 'call' ? c.attempts : [c.attempt];
    const first = c.kind === 'call' ? c.call : c.attempt;
    const principal = principalOf(attempts);
    const client = first.clientId !== '' ? first.clientId : principal ? `key:${principal.id}` : '';
    // The last call's subject and record first: traffic repeats (one application, one API at a
    // time), and looking them up costs a key string each. Subjects and records are never removed.
    let subject = this.memo.subject;
    if (subject === undefined || client !== this.memo.client || process !== this.memo.process) {
      subject = this.subject(client, processLabel(process));
      if (!subject) return;
      this.memo = { client, process, subject };
    }
    subject.version++;
    this.revision++;
    let rec = this.memo.rec;
    if (rec === undefined || first.service !== this.memo.service || first.api !== this.memo.api) {
      rec = this.callRecord(subject, first.service, first.api);
      if (!rec) return;
      this.memo.rec = rec;
      this.memo.service = first.service;
      this.memo.api = first.api;
    }
    rec.calls++;
    const region = first.region ?? attempts.find((a) => a.region)?.region;
    const account = principal?.account;
    const bucket = first.service === 'S3' ? this.bucketOf(attempts) : undefined;
    // This API's last scope again (the usual case): no scope string built and hashed.
    if (!rec.scoped || region !== rec.region || account !== rec.account || bucket !== rec.bucket) {
      const scope = scopeOf(region, account, bucket);
      if (!rec.scopes.has(scope) && this.addScope(rec, own(scope))) this.changes++;
      if (rec.scopes.has(scope)) {
        rec.scoped = true;
        rec.region = region;
        rec.account = account;
        rec.bucket = bucket;
      }
    }
    const outcome = c.kind === 'call' ? callOutcome(c.call) : attemptOutcome(c.attempt);
    if (!outcome.failed) return;
    if (rec.failed++ === 0) this.changes++;
    if (!isDenied(outcome.code, outcome.status)) return;
    const d = parseDenial(outcome.message);
    const dkey = `${first.service}\0${first.api}\0${d.action ?? ''}\0${d.resource ?? ''}\0${d.explicitDeny}`;
    const known = subject.denials.get(dkey);
    if (known) {
      known.calls++;
      return;
    }
    const denial: ObservedDenial = { service: rec.service, api: rec.api, explicitDeny: d.explicitDeny, calls: 1 };
    // Own copies: the parts a regex matched would keep the whole message alive.
    if (d.action !== undefined) denial.action = own(cut(d.action));
    if (d.resource !== undefined) denial.resource = own(d.resource.slice(0, 2 * MAX_TEXT));
    if (d.reason !== undefined) denial.reason = own(cut(d.reason));
    if (this.addDenial(subject, own(dkey), denial)) this.changes++;
  }

  /** bucketOf, with the last single-attempt call's host remembered (a regex per attempt otherwise). */
  private bucketOf(attempts: readonly CsmAttempt[]): string | undefined {
    if (attempts.length !== 1) return bucketOf(attempts);
    const host = attempts[0]!.serverAddress;
    if (host !== this.bucketHost || host === undefined) {
      this.bucketHost = host;
      this.bucketOfHost = bucketOf(attempts);
    }
    return this.bucketOfHost;
  }

  /**
   * Every subject as state() shows it, sorted; each one's state is copied only when asked for.
   * One application, one subject, whatever the identification outcome: a ClientId's calls whose
   * sending process could not be identified (an `aws` command that exited before the lookup, a
   * JS v2 or Ruby socket closed at once) are its program's when the ClientId has exactly one
   * known program. Otherwise one `aws` command identified and the next one not would split one
   * application into two subjects with different policies. With several programs known, which
   * one made them is unknown: they stay under the ClientId alone. Done on the output only (the
   * caps hold per stored subject, so a folded subject holds at most twice as much); the entry's
   * key names every stored subject in it, its version is theirs summed.
   */
  entries(): SubjectEntry[] {
    const programs = new Map<string, string | null>();
    for (const [key, s] of this.subjects) if (s.process !== undefined) programs.set(s.client, programs.has(s.client) ? null : key);
    const unidentified = new Map<string, [string, Subject]>();
    for (const [key, s] of this.subjects) {
      const only = s.process === undefined ? programs.get(s.client) : undefined;
      if (only) unidentified.set(only, [key, s]);
    }
    const out: SubjectEntry[] = [];
    for (const [key, s] of this.subjects) {
      if (s.process === undefined && programs.get(s.client)) continue;
      const from = unidentified.get(key);
      out.push(
        from === undefined
          ? { key, client: s.client, process: s.process, version: s.version, state: () => subjectState(s) }
          : {
              key: `${key}\u0001${from[0]}`,
              client: s.client,
              process: s.process,
              version: s.version + from[1].version,
              state: () => {
                const into = subjectState(s);
                foldInto(into, subjectState(from[1]));
                return into;
              },
            },
      );
    }
    return out.sort((a, b) => cmp(a.client, b.client) || cmp(a.process ?? '', b.process ?? ''));
  }

  /** The labels' parts of every subject, without copying what they hold (the live view reads them every frame). */
  subjectNames(): { client: string; process?: string }[] {
    return this.entries().map((e) => (e.process === undefined ? { client: e.client } : { client: e.client, process: e.process }));
  }

  /** Everything observed, in a stable order (subjects, calls, scopes, denials sorted). */
  state(): PolicyState {
    return { version: 1, subjects: this.entries().map((e) => e.state()) };
  }

  /** Adds what an earlier run observed (the policy file), within the same bounds. */
  merge(state: PolicyState): void {
    for (const s of state.subjects) {
      const subject = this.subject(cut(s.client), s.process === undefined ? undefined : cut(s.process));
      if (!subject) continue;
      subject.version++;
      this.revision++;
      for (const c of s.calls) {
        const rec = this.callRecord(subject, c.service, c.api);
        if (!rec) continue;
        rec.calls += c.calls;
        rec.failed += c.failed;
        for (const sc of c.scopes) if (!rec.scopes.has(sc)) this.addScope(rec, own(sc.slice(0, 4 * MAX_TEXT)));
      }
      for (const d of s.denials) {
        const dkey = `${d.service}\0${d.api}\0${d.action ?? ''}\0${d.resource ?? ''}\0${d.explicitDeny}`;
        const known = subject.denials.get(dkey);
        if (known) known.calls += d.calls;
        else this.addDenial(subject, dkey, { ...d });
      }
    }
    this.changes++;
  }

  /** The subject's record of one Service.Api, made if there is room (else counted and undefined). */
  private callRecord(subject: Subject, service: string, api: string): CallRecord | undefined {
    let byApi = subject.byService.get(service);
    const found = byApi?.get(api);
    if (found !== undefined) return found;
    const key = `${service}\0${api}`;
    let rec = subject.calls.get(key);
    if (!rec) {
      const svc = cut(service);
      const op = cut(api);
      if (subject.calls.size >= MAX_CALLS_PER_SUBJECT || !this.fits(CALL_BYTES + textBytes(svc) + textBytes(op))) {
        this.counters.droppedCalls++;
        return undefined;
      }
      rec = { service: svc, api: op, calls: 0, failed: 0, scopes: new Set(), scoped: false, region: undefined, account: undefined, bucket: undefined };
      subject.calls.set(key, rec);
      this.changes++;
    }
    if (byApi === undefined) subject.byService.set(service, (byApi = new Map()));
    byApi.set(api, rec);
    return rec;
  }

  private subject(client: string, process: string | undefined): Subject | undefined {
    const key = `${client}\0${process ?? ''}`;
    let s = this.subjects.get(key);
    if (!s) {
      const bytes = SUBJECT_BYTES + 2 * (textBytes(client) + textBytes(process));
      if (this.subjects.size >= MAX_SUBJECTS || !this.fits(bytes)) {
        this.counters.droppedSubjects++;
        return undefined;
      }
      s = { client: cut(client), process, calls: new Map(), byService: new Map(), denials: new Map(), version: 0 };
      this.subjects.set(key, s);
      this.counters.subjects = this.subjects.size;
      this.changes++;
    }
    return s;
  }

  /** Adds a scope the record does not have if the cap and the budget allow; else counts it. */
  private addScope(rec: CallRecord, scope: Scope): boolean {
    if (rec.scopes.size >= MAX_SCOPES_PER_CALL || !this.fits(SCOPE_BYTES + textBytes(scope))) {
      this.counters.droppedScopes++;
      return false;
    }
    rec.scopes.add(scope);
    return true;
  }

  /** Adds a new denial if the cap and the budget allow; else counts it. */
  private addDenial(subject: Subject, dkey: string, d: ObservedDenial): boolean {
    const bytes = DENIAL_BYTES + textBytes(dkey) + textBytes(d.action) + textBytes(d.resource) + textBytes(d.reason);
    if (subject.denials.size >= MAX_DENIALS_PER_SUBJECT || !this.fits(bytes)) {
      this.counters.droppedDenials++;
      return false;
    }
    subject.denials.set(dkey, d);
    return true;
  }

  /** Takes `bytes` of the budget if they fit; a refusal is counted as over budget (the caller counts what it refused). */
  private fits(bytes: number): boolean {
    if (this.bytes + bytes > this.maxBytes) {
      this.counters.droppedOverBudget++;
      return false;
    }
    this.bytes += bytes;
    this.counters.stateBytes = this.bytes;
    return true;
  }
}

function subjectState(s: Subject): SubjectState {
  const calls = [...s.calls.values()]
    .map((r) => ({ service: r.service, api: r.api, calls: r.calls, failed: r.failed, scopes: [...r.scopes].sort() }))
    .sort((a, b) => cmp(a.service, b.service) || cmp(a.api, b.api));
  const denials = [...s.denials.values()]
    .map((d) => ({ ...d }))
    .sort((a, b) => cmp(a.service, b.service) || cmp(a.api, b.api) || cmp(a.action ?? '', b.action ?? '') || cmp(a.resource ?? '', b.resource ?? ''));
  return s.process === undefined ? { client: s.client, calls, denials } : { client: s.client, process: s.process, calls, denials };
}

/** A flat copy of `s` that keeps nothing else alive (a regex match or a concatenation holds its source). */
const own = (s: string): string => JSON.parse(JSON.stringify(s)) as string;

/**
 * Whether a service answered the call: some attempt got an HTTP status. A call whose every
 * attempt failed before any response (connection refused, DNS, TLS, timeout) proves nothing
 * about permissions, so it stays out of the policy (counted in `unanswered`). A call with
 * attempts we did not see, or none at all, may have been answered: it counts.
 */
export function answered(c: Correlated): boolean {
  if (c.kind === 'orphan') return c.attempt.httpStatusCode !== undefined;
  if (c.call.finalHttpStatusCode !== undefined || c.missingAttempts > 0 || c.attempts.length === 0) return true;
  for (const a of c.attempts) if (a.httpStatusCode !== undefined) return true;
  return false;
}

/** Adds `from`'s calls and denials to `into` (both in state() order; kept sorted). */
function foldInto(into: SubjectState, from: SubjectState): void {
  const calls = new Map(into.calls.map((c) => [`${c.service}\0${c.api}`, c]));
  for (const c of from.calls) {
    const known = calls.get(`${c.service}\0${c.api}`);
    if (!known) into.calls.push(c);
    else {
      known.calls += c.calls;
      known.failed += c.failed;
      known.scopes = [...new Set([...known.scopes, ...c.scopes])].sort();
    }
  }
  into.calls.sort((a, b) => cmp(a.service, b.service) || cmp(a.api, b.api));
  const dkey = (d: ObservedDenial) => `${d.service}\0${d.api}\0${d.action ?? ''}\0${d.resource ?? ''}\0${d.explicitDeny}`;
  const denials = new Map(into.denials.map((d) => [dkey(d), d]));
  for (const d of from.denials) {
    const known = denials.get(dkey(d));
    if (known) known.calls += d.calls;
    else into.denials.push(d);
  }
  into.denials.sort((a, b) => cmp(a.service, b.service) || cmp(a.api, b.api) || cmp(a.action ?? '', b.action ?? '') || cmp(a.resource ?? '', b.resource ?? ''));
}

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
const cut = (s: string) => (s.length > MAX_TEXT ? s.slice(0, MAX_TEXT) : s);

function principalOf(attempts: readonly CsmAttempt[]): Principal | undefined {
  for (const a of attempts) if (a.principal) return a.principal;
  return undefined;
}

/**
 * The program, not the pid: a policy is about what a program needs, and pids change at every
 * restart (the policy file accumulates across them).
 */
function processLabel(p: ProcessLabelSource | undefined): string | undefined {
  if (!p) return undefined;
  const exe = p.attributes['process.executable.name'];
  const container = p.attributes['container.id'];
  if (exe === undefined && container === undefined) return undefined;
  const name = exe === undefined ? 'process' : cut(String(exe));
  return container === undefined ? name : `${name} in container ${String(container).slice(0, 12)}`;
}

/** The partition of a Region (aws-cn, aws-us-gov, aws-iso*; else aws); '' when the Region is unknown. */
export function partitionOf(region: string | undefined): string {
  if (!region) return '';
  if (region.startsWith('cn-')) return 'aws-cn';
  if (region.startsWith('us-gov-')) return 'aws-us-gov';
  if (region.startsWith('us-isob-')) return 'aws-iso-b';
  if (region.startsWith('us-iso-')) return 'aws-iso';
  return 'aws';
}

const REGION = /^[a-z]{2}(-[a-z]+)+-\d{1,2}$/;

function scopeOf(region: string | undefined, account: string | undefined, bucket: string | undefined): Scope {
  // Only a well-formed Region goes into an ARN (anything can arrive on the port).
  const r = region !== undefined && REGION.test(region) ? region : '';
  return `${partitionOf(r)}|${r}|${account ?? ''}|${bucket ?? ''}`;
}

const S3_HOST = /^(.+?)\.s3(?:[.-](?:dualstack\.)?[a-z0-9-]*)?\.amazonaws\.com(?:\.cn)?$/;
const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

/**
 * The bucket of a virtual-hosted S3 endpoint (`my-bucket.s3.eu-west-1.amazonaws.com`); none for
 * path-style, access points (`*.s3-accesspoint.*`) or other hosts.
 */
export function bucketOf(attempts: readonly CsmAttempt[]): string | undefined {
  for (const a of attempts) {
    const host = a.serverAddress?.toLowerCase();
    if (!host || host.includes('.s3-accesspoint.') || host.includes('.s3-object-lambda.') || host.includes('.s3express-')) continue;
    const m = S3_HOST.exec(host);
    if (m && BUCKET.test(m[1]!) && !m[1]!.startsWith('s3.')) return m[1]!;
  }
  return undefined;
}

interface Outcome {
  failed: boolean;
  code?: string;
  status?: number;
  message?: string;
}

/** What every successful call's outcome is (most calls: no object made for them). */
const SUCCEEDED: Outcome = Object.freeze({ failed: false });

function callOutcome(c: Extract<Correlated, { kind: 'call' }>['call']): Outcome {
  if (c.finalAwsException === undefined && c.finalSdkException === undefined && !(c.finalHttpStatusCode! >= 400)) return SUCCEEDED;
  // Ruby reports modelled service errors as SdkException with its class name (Aws::S3::Errors::AccessDenied).
  const code = c.finalAwsException ?? rubyCode(c.finalSdkException);
  const message = c.finalAwsExceptionMessage ?? (code !== undefined && c.finalAwsException === undefined ? c.finalSdkExceptionMessage : undefined);
  const status = c.finalHttpStatusCode;
  const failed = code !== undefined || c.finalSdkException !== undefined || (status !== undefined && status >= 400);
  return withDefined({ failed }, code, status, message);
}

function attemptOutcome(a: CsmAttempt): Outcome {
  const code = a.awsException ?? rubyCode(a.sdkException);
  const message = a.awsExceptionMessage ?? (code !== undefined && a.awsException === undefined ? a.sdkExceptionMessage : undefined);
  const status = a.httpStatusCode;
  const failed = code !== undefined || a.sdkException !== undefined || (status !== undefined && status >= 400);
  return withDefined({ failed }, code, status, message);
}

function withDefined(o: Outcome, code: string | undefined, status: number | undefined, message: string | undefined): Outcome {
  if (code !== undefined) o.code = code;
  if (status !== undefined) o.status = status;
  if (message !== undefined) o.message = message;
  return o;
}

function rubyCode(sdkException: string | undefined): string | undefined {
  const m = sdkException === undefined ? null : /^Aws::[A-Za-z0-9]+::Errors::([A-Za-z0-9]+)$/.exec(sdkException);
  return m ? m[1] : undefined;
}
