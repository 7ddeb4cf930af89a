/**
 * The running bridge's side of the IAM policies: observes every correlated call (with its
 * sending process), answers GET /policy and the live view, and keeps --policy-file (loaded at
 * start, written debounced on change, at once on SIGHUP, and at shutdown). Observation costs a
 * few map reads per call; policies are built only when asked for.
 */
import type { Correlated } from '../correlate/types.js';
import type { Logger } from '../log.js';
import { PolicyBuilder, subjectLabel, type PolicyDocument, type SubjectReport } from './document.js';
import { IAM_MAP_COUNTS, IAM_MAP_SOURCES } from './iam-map.data.js';
import type { IdentifiedCallSink } from '../identity/identity-stage.js';
import { PolicyObserver, type PolicyCounters, type ProcessLabelSource } from './observer.js';
import { readPolicyFile, writePolicyFile } from './policy-file.js';

export interface PolicyFileCounters {
  fileWrites: number;
  fileErrors: number;
}

export type PolicyStats = PolicyCounters & PolicyFileCounters;

export interface PolicyServiceOptions {
  file?: string;
  writeDelayMs: number;
}

export class PolicyService {
  readonly observer: PolicyObserver;
  private readonly builder = new PolicyBuilder();
  private timer: NodeJS.Timeout | undefined;
  private writtenAt = -1;
  private writing: Promise<void> = Promise.resolve();

  /** Loads the policy file first: throws PolicyFileError when it exists but cannot be used. */
  constructor(
    private readonly opts: PolicyServiceOptions,
    private readonly counters: PolicyStats,
    private readonly log: Logger,
  ) {
    this.observer = new PolicyObserver(counters);
    const loaded = opts.file === undefined ? undefined : readPolicyFile(opts.file);
    if (loaded) this.observer.merge(loaded);
    this.writtenAt = loaded ? this.observer.changes : -1;
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

  /** GET /policy: every subject's report, with the mapping's provenance and the counters. */
  async all(): Promise<{ clients: SubjectReport[]; mapping: unknown; counters: PolicyStats }> {
    return {
      clients: await this.builder.reports(this.observer.state()),
      mapping: { sources: IAM_MAP_SOURCES, counts: IAM_MAP_COUNTS },
      counters: this.counters,
    };
  }

  /** GET /policy?client=ID: one policy document, or undefined for an unknown client. */
  async one(client: string): Promise<SubjectReport | undefined> {
    const state = this.observer.state();
    const subjects = this.builder.select(state, client);
    return subjects.length === 0 ? undefined : this.builder.report(subjects, client);
  }

  labels(): string[] {
    return this.observer.state().subjects.map(subjectLabel);
  }

  /** Writes the policy file now if anything changed since the last write (SIGHUP, shutdown). */
  write(): Promise<void> {
    const file = this.opts.file;
    if (file === undefined) return Promise.resolve();
    this.writing = this.writing.then(async () => {
      const changes = this.observer.changes;
      if (changes === this.writtenAt) return;
      try {
        const state = this.observer.state();
        const policies: Record<string, PolicyDocument> = {};
        for (const r of await this.builder.reports(state)) policies[r.label] = r.policy;
        await writePolicyFile(file, state, policies);
        this.writtenAt = changes;
        this.counters.fileWrites++;
      } catch (e) {
        this.counters.fileErrors++;
        this.log.warnLimited('policy-file', 'could not write the policy file', { file, error: (e as Error).message });
      }
    });
    return this.writing;
  }

  async close(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.write();
  }
}
