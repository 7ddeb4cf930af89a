/**
 * The process-identity join, the stage before export: a translated call goes on with the
 * process that sent it (processIdentity), so export can give each process its own resource.
 *
 * The lookup starts when the call's first datagram arrives (`observe`), so it is usually done
 * when the call completes; a call whose sender is still being looked up waits for it, at most
 * the resolver's maxWaitMs, then goes on with or without it. `settled()` waits for those calls
 * (shutdown).
 *
 * Without it (the sender exited before the lookup, as a short `aws` command often does, or its
 * socket was closed at once: JS v2, Ruby) a call must not split its application: its spans get
 * the ClientId's own resource, its IAM policy calls go with the ClientId's only known program
 * (policy/observer.ts), and clients.active counts ClientIds, not identified processes.
 */
import type { Correlated } from '../correlate/types.js';
import type { Source } from '../net/address.js';
import type { Logger } from '../log.js';
import type { SourceObserver } from '../decode/stage.js';
import type { CallSink } from '../translate/stage.js';
import type { Translation } from '../translate/types.js';
import type { ProcessIdentity, ProcessIdentityResolver } from './resolver.js';

/** What the stage hands on to: the exporter, and the IAM-policy observer (which needs the call too). */
export interface IdentifiedCallSink {
  write(t: Translation, identity: ProcessIdentity | undefined, c: Correlated): void;
}

export class IdentityStage implements CallSink, SourceObserver {
  /** Calls waiting for their sender's identity (bounded by the resolver's maxWaitMs). */
  private readonly waiting = new Set<Promise<void>>();

  /** `resolver` undefined: processIdentity off (or a replay): calls go on without a process. */
  constructor(
    private readonly resolver: ProcessIdentityResolver | undefined,
    private readonly next: readonly IdentifiedCallSink[],
    private readonly counters: { internalErrors: number },
    private readonly log: Logger,
  ) {}

  observe(source: Source, receivedAt: number): void {
    this.resolver?.observe(source.address, source.port, receivedAt);
  }

  write(c: Correlated, t: Translation): void {
    const source = c.kind === 'call' ? c.call.source : c.attempt.source;
    const identity = this.resolver?.lookup(source.address, source.port);
    if (!(identity instanceof Promise)) {
      this.handOn(t, identity, c);
      return;
    }
    const p = identity.then((id) => {
      try {
        this.handOn(t, id, c);
      } catch (e) {
        this.counters.internalErrors++;
        this.log.warnLimited('translate', 'could not export a call', { error: (e as Error).message });
      }
    });
    this.waiting.add(p);
    void p.finally(() => this.waiting.delete(p));
  }

  private handOn(t: Translation, identity: ProcessIdentity | undefined, c: Correlated): void {
    for (const sink of this.next) sink.write(t, identity, c);
  }

  /** Resolves when every waiting call has gone on. */
  async settled(): Promise<void> {
    await Promise.all(this.waiting);
  }

  close(): void {
    this.resolver?.close();
  }
}
