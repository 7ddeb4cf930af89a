/**
 * `aws-csm-bridge policy FILE [--client ID] [--fails-only] [--include-possible]`: reads a
 * recording (`record FILE`) or a capture (test/fixtures/*.jsonl, the same line format), runs
 * it through decode and correlate on the recording's clock, and prints the IAM policies on
 * stdout: with --client exactly one policy document, without it every client's, keyed by
 * client. What a policy cannot say (unmapped calls, possible actions left out, AccessDenied
 * explanations, calls no service answered) goes to stderr. Exit 2 for an unreadable file or an
 * unknown client.
 */
import type { Config } from '../config/schema.js';
import type { Correlated } from '../correlate/types.js';
import { createLogger } from '../log.js';
import { Pipeline, pipelineOptions } from '../pipeline.js';
import { replay } from '../record/replay.js';
import { newStats } from '../stats.js';
import { PolicyBuilder, subjectLabel, type SubjectReport } from './document.js';
import { answered, PolicyObserver } from './observer.js';

/** Service.Api names the unanswered-calls note lists; the rest are summed as OTHER_CALLS. */
const MAX_UNANSWERED_NAMED = 20;
const OTHER_CALLS = 'other calls';

export interface RecordingRead {
  observer: PolicyObserver;
  /** Calls no service answered (left out of every policy), per `Service.Api`. */
  unanswered: Map<string, number>;
  lines: number;
  datagrams: number;
  badLines: number;
  rejected: number;
}

/**
 * Observes every call of a recording: the bridge's own Pipeline (decode → correlate →
 * translate), fed by the replayer on the recording's clock as fast as it reads. Throws when
 * the file cannot be opened.
 */
export async function observeRecording(file: string, config: Config): Promise<RecordingRead> {
  const observer = new PolicyObserver();
  const unanswered = new Map<string, number>();
  const observe = (c: Correlated): void => {
    if (!answered(c)) {
      const e = c.kind === 'call' ? c.call : c.attempt;
      const name = unanswered.size < MAX_UNANSWERED_NAMED || unanswered.has(`${e.service}.${e.api}`) ? `${e.service}.${e.api}` : OTHER_CALLS;
      unanswered.set(name, (unanswered.get(name) ?? 0) + 1);
    }
    observer.observe(c);
  };
  const stats = newStats(Date.now());
  // Quiet: what the recording held is summed up on stderr at the end instead.
  const log = createLogger('error', (line) => process.stderr.write(line));
  const pipeline = new Pipeline(pipelineOptions(config, config.accessKeySalt), { write: observe }, stats, log);
  const progress = await replay(file, pipeline, { speed: 0, log });
  pipeline.flush();
  const rejected = Object.values(stats.datagrams.rejected).reduce((a, b) => a + b, 0);
  return { observer, unanswered, lines: progress.lines, datagrams: progress.fed, badLines: progress.badLines, rejected };
}

export async function runPolicyCommand(
  file: string,
  config: Config,
  out: (s: string) => void = (s) => process.stdout.write(s),
  err: (s: string) => void = (s) => process.stderr.write(s),
): Promise<number> {
  let read: RecordingRead;
  try {
    read = await observeRecording(file, config);
  } catch (e) {
    err(`aws-csm-bridge: cannot read ${file}: ${(e as Error).message}\n`);
    return 2;
  }
  if (read.datagrams === 0 && read.badLines > 0) {
    err(`aws-csm-bridge: ${file} is not a recording: none of its ${read.lines} lines is a recorded datagram (record FILE writes them).\n`);
    return 2;
  }
  const state = read.observer.state();
  const builder = new PolicyBuilder();
  const opts = { failsOnly: config.policyFailsOnly, includePossible: config.policyIncludePossible };
  let reports: SubjectReport[];
  if (config.policyClient !== undefined) {
    const subjects = builder.select(state, config.policyClient);
    if (subjects.length === 0) {
      const known = state.subjects.map((s) => JSON.stringify(subjectLabel(s)));
      err(`aws-csm-bridge: no client ${JSON.stringify(config.policyClient)} in ${file}. Clients: ${known.length ? [...new Set(known)].join(', ') : 'none'}\n`);
      for (const line of unansweredNotes(read.unanswered)) err(`${line}\n`);
      return 2;
    }
    const r = await builder.report(subjects, config.policyClient, opts);
    out(`${JSON.stringify(r.policy, null, 2)}\n`);
    reports = [r];
  } else {
    reports = await builder.reports(state, opts);
    const keyed: Record<string, unknown> = {};
    for (const r of reports) keyed[r.label] = r.policy;
    out(`${JSON.stringify(keyed, null, 2)}\n`);
  }
  for (const r of reports) for (const line of notes(r, opts.includePossible)) err(`${line}\n`);
  for (const line of unansweredNotes(read.unanswered)) err(`${line}\n`);
  if (read.badLines > 0 || read.rejected > 0) err(`note: ${read.badLines} lines skipped, ${read.rejected} datagrams rejected by the decoder\n`);
  return 0;
}

/** The calls no service answered, as one line for stderr (none when there are none). */
export function unansweredNotes(unanswered: ReadonlyMap<string, number>): string[] {
  if (unanswered.size === 0) return [];
  let n = 0;
  for (const v of unanswered.values()) n += v;
  const which = [...unanswered].sort(([a], [b]) => (a === OTHER_CALLS ? 1 : b === OTHER_CALLS ? -1 : a < b ? -1 : a > b ? 1 : 0)).map(([call, k]) => `${call} ×${k}`);
  return [`note: ${n} call${n === 1 ? '' : 's'} left out: no service answered (no HTTP response on any attempt: connection refused, DNS, TLS or timeout), which proves no permission: ${which.join(', ')}`];
}

/** What the policy of one subject leaves out, as lines for stderr. */
export function notes(r: SubjectReport, includedPossible: boolean): string[] {
  const lines: string[] = [];
  const who = r.label;
  for (const u of r.unmapped) lines.push(`${who}: ${u.call} (${u.calls} calls) is not in the mapping: add its actions by hand`);
  if (!includedPossible) for (const p of r.possible) lines.push(`${who}: ${p.call} may also need ${p.actions.join(', ')} depending on its parameters (--include-possible adds them)`);
  for (const m of r.missing) {
    const what = m.action ?? `the permissions of ${m.call}`;
    const on = m.resource ? ` on ${m.resource}` : '';
    const why = m.explicitDeny ? ` (${m.reason ?? 'explicit deny'}: an Allow will not fix this)` : m.reason ? ` (${m.reason})` : '';
    const kind = m.dependent ? 'dependent permission missing' : 'missing';
    lines.push(`${who}: ${m.call} was denied ${m.calls}×: ${kind}: ${what}${on}${why}${m.named ? '' : ' [the message names no action]'}`);
  }
  return lines;
}
