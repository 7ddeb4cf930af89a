/**
 * What each application really calls, kept for its IAM policy: per subject (ClientId, split by
 * sending process when process identity is known, calls of an unidentified process going with
 * the ClientId's only known program; an empty ClientId is grouped by the hash of its access key), the distinct Service.Api it called with how often and how often it failed,
 * the scopes the calls give (partition, Region, account, S3 bucket), and the denials its
 * AccessDenied messages explain. Operations, not actions, are kept: the policy is computed from
 * them when asked for (./document.ts), so a policy file stays valid when the mapping improves.
 *
 * Bounded whatever the input: MAX_SUBJECTS × MAX_CALLS_PER_SUBJECT entries, MAX_SCOPES_PER_CALL
 * scopes each, MAX_DENIALS_PER_SUBJECT denials; what does not fit is counted (stats.policy),
 * never kept. Pure: no clock, no I/O; `changes` tells the policy file when to write.
 */
import type { Correlated } from '../correlate/types.js';
import type { CsmAttempt } from '../decode/types.js';
import type { Principal } from '../decode/access-key.js';
import { isDenied, parseDenial } from './denial.js';

export const MAX_SUBJECTS = 500;
export const MAX_CALLS_PER_SUBJECT = 1_000;
export const MAX_SCOPES_PER_CALL = 32;
export const MAX_DENIALS_PER_SUBJECT = 200;
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
}

export const newPolicyCounters = (): PolicyCounters => ({ observed: 0, unanswered: 0, subjects: 0, droppedSubjects: 0, droppedCalls: 0, droppedScopes: 0, droppedDenials: 0 });

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
}

interface Subject {
  client: string;
  process: string | undefined;
  calls: Map<string, CallRecord>;
  denials: Map<string, ObservedDenial>;
}

export class PolicyObserver {
  private readonly subjects = new Map<string, Subject>();
  /** Bumped on every change that alters a policy (not on a repeated call): the policy file writes on it. */
  changes = 0;

  constructor(readonly counters: PolicyCounters = newPolicyCounters()) {}

  /** One correlated call (or orphan attempt) from a process, if known. Never throws on odd input. */
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
    const subject = this.subject(client, processLabel(process));
    if (!subject) return;
    const key = `${first.service}\0${first.api}`;
    const rec = this.callRecord(subject, first.service, first.api);
    if (!rec) return;
    rec.calls++;
    const scope = scopeOf(first.region ?? attempts.find((a) => a.region)?.region, principal?.account, first.service === 'S3' ? bucketOf(attempts) : undefined);
    if (!rec.scopes.has(scope)) {
      if (rec.scopes.size >= MAX_SCOPES_PER_CALL) this.counters.droppedScopes++;
      else {
        rec.scopes.add(scope);
        this.changes++;
      }
    }
    const outcome = c.kind === 'call' ? callOutcome(c.call) : attemptOutcome(c.attempt);
    if (!outcome.failed) return;
    if (rec.failed++ === 0) this.changes++;
    if (!isDenied(outcome.code, outcome.status)) return;
    const d = parseDenial(outcome.message);
    const dkey = `${key}\0${d.action ?? ''}\0${d.resource ?? ''}\0${d.explicitDeny}`;
    const known = subject.denials.get(dkey);
    if (known) {
      known.calls++;
      return;
    }
    if (subject.denials.size >= MAX_DENIALS_PER_SUBJECT) {
      this.counters.droppedDenials++;
      return;
    }
    const denial: ObservedDenial = { service: rec.service, api: rec.api, explicitDeny: d.explicitDeny, calls: 1 };
    if (d.action !== undefined) denial.action = cut(d.action);
    if (d.resource !== undefined) denial.resource = d.resource.slice(0, 2 * MAX_TEXT);
    if (d.reason !== undefined) denial.reason = cut(d.reason);
    subject.denials.set(dkey, denial);
    this.changes++;
  }

  /** Everything observed, in a stable order (subjects, calls, scopes, denials sorted). */
  state(): PolicyState {
    const subjects: SubjectState[] = [];
    for (const s of this.subjects.values()) {
      const calls = [...s.calls.values()]
        .map((r) => ({ service: r.service, api: r.api, calls: r.calls, failed: r.failed, scopes: [...r.scopes].sort() }))
        .sort((a, b) => cmp(a.service, b.service) || cmp(a.api, b.api));
      const denials = [...s.denials.values()]
        .map((d) => ({ ...d }))
        .sort((a, b) => cmp(a.service, b.service) || cmp(a.api, b.api) || cmp(a.action ?? '', b.action ?? '') || cmp(a.resource ?? '', b.resource ?? ''));
      subjects.push(s.process === undefined ? { client: s.client, calls, denials } : { client: s.client, process: s.process, calls, denials });
    }
    return { version: 1, subjects: withUnidentifiedAttributed(subjects) };
  }

  /** Adds what an earlier run observed (the policy file), within the same bounds. */
  merge(state: PolicyState): void {
    for (const s of state.subjects) {
      const subject = this.subject(s.client, s.process);
      if (!subject) continue;
      for (const c of s.calls) {
        const rec = this.callRecord(subject, c.service, c.api);
        if (!rec) continue;
        rec.calls += c.calls;
        rec.failed += c.failed;
        for (const sc of c.scopes) {
          if (rec.scopes.size < MAX_SCOPES_PER_CALL) rec.scopes.add(sc);
          else if (!rec.scopes.has(sc)) this.counters.droppedScopes++;
        }
      }
      for (const d of s.denials) {
        const dkey = `${d.service}\0${d.api}\0${d.action ?? ''}\0${d.resource ?? ''}\0${d.explicitDeny}`;
        const known = subject.denials.get(dkey);
        if (known) known.calls += d.calls;
        else if (subject.denials.size < MAX_DENIALS_PER_SUBJECT) subject.denials.set(dkey, { ...d });
        else this.counters.droppedDenials++;
      }
    }
    this.changes++;
  }

  /** The subject's record of one Service.Api, made if there is room (else counted and undefined). */
  private callRecord(subject: Subject, service: string, api: string): CallRecord | undefined {
    const key = `${service}\0${api}`;
    let rec = subject.calls.get(key);
    if (!rec) {
      if (subject.calls.size >= MAX_CALLS_PER_SUBJECT) {
        this.counters.droppedCalls++;
        return undefined;
      }
      rec = { service: cut(service), api: cut(api), calls: 0, failed: 0, scopes: new Set() };
      subject.calls.set(key, rec);
      this.changes++;
    }
    return rec;
  }

  private subject(client: string, process: string | undefined): Subject | undefined {
    const key = `${client}\0${process ?? ''}`;
    let s = this.subjects.get(key);
    if (!s) {
      if (this.subjects.size >= MAX_SUBJECTS) {
        this.counters.droppedSubjects++;
        return undefined;
      }
      s = { client: cut(client), process, calls: new Map(), denials: new Map() };
      this.subjects.set(key, s);
      this.counters.subjects = this.subjects.size;
      this.changes++;
    }
    return s;
  }
}

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

/**
 * One application, one subject, whatever the identification outcome: a ClientId's calls whose
 * sending process could not be identified (an `aws` command that exited before the lookup, a
 * JS v2 or Ruby socket closed at once) are its program's when the ClientId has exactly one
 * known program. Otherwise one `aws` command identified and the next one not would split one
 * application into two subjects with different policies. With several programs known, which
 * one made them is unknown: they stay under the ClientId alone. Done on the output only (the
 * caps hold per stored subject, so a folded subject holds at most twice as much), sorted.
 */
export function withUnidentifiedAttributed(subjects: SubjectState[]): SubjectState[] {
  const programs = new Map<string, SubjectState | null>();
  for (const s of subjects) if (s.process !== undefined) programs.set(s.client, programs.has(s.client) ? null : s);
  const out: SubjectState[] = [];
  for (const s of subjects) {
    const only = s.process === undefined ? programs.get(s.client) : undefined;
    if (only) foldInto(only, s);
    else out.push(s);
  }
  return out.sort((a, b) => cmp(a.client, b.client) || cmp(a.process ?? '', b.process ?? ''));
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

function callOutcome(c: Extract<Correlated, { kind: 'call' }>['call']): Outcome {
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
