import type { CsmApiCall, CsmAttempt } from '../decode/types.js';

/** What `correlate` hands to `translate`. */
export type Correlated =
  | {
      kind: 'call';
      call: CsmApiCall;
      /** The attempts judged to belong to `call`, in start-time order. */
      attempts: CsmAttempt[];
      /** `AttemptCount` minus the attempts that arrived (never negative). */
      missingAttempts: number;
      /**
       * Only when the data could not decide: per attempt (same order as
       * `attempts`), true where placing it elsewhere (under a concurrent twin
       * call, or leaving it to a call still to come) is within ln 2 as probable
       * under the SDK's retry model. Absent when every placement is clear.
       */
      ambiguous?: boolean[];
    }
  | {
      kind: 'orphan';
      /** An attempt no ApiCall claimed within the hold time (or evicted by the cap). */
      attempt: CsmAttempt;
      reason: 'ttl_expired' | 'buffer_full' | 'shutdown';
    };

export interface CorrelatorOptions {
  /** How long an unclaimed attempt waits for its ApiCall, ms. */
  attemptHoldMs: number;
  /** How long an ApiCall with too few attempts waits for late ones (Ruby sends the call first), ms. */
  callHoldMs: number;
  /** Cap on pending attempts + pending calls; beyond it the oldest are flushed. */
  maxPending: number;
  /** Slack allowed when checking that an attempt fits inside its call's time window, ms. */
  toleranceMs: number;
  /**
   * Longest time a call whose candidate attempts could also be a concurrent
   * call's waits for those competitors to arrive before it is decided, ms.
   * A call with no competitor is exported at once.
   */
  settleMs: number;
}

/** What the settle wait and the joint search did (counters, for /stats). */
export interface SettleCounts {
  /** Calls that waited for competitors (not exported on arrival). */
  calls: number;
  /** Of those, decided when their settle time ran out (the others as soon as the data was clear). */
  deadlines: number;
  /** Sum and maximum of the waits, ms (on the correlator's clock: receive times and `expire(now)`). */
  waitMsTotal: number;
  waitMsMax: number;
  /** Attempts exported with `ambiguous` set, and the calls holding them. */
  ambiguousAttempts: number;
  ambiguousCalls: number;
  /** Joint searches that ended more than 1 (ln) below their bound: the assignment may not be the most probable. */
  searchesCut: number;
  /** Calls with more candidate attempts than a chain space holds (the nearest to the call's ends were kept). */
  candidatesCut: number;
  /** Calls decided early because their group already had the most calls waiting it may have. */
  crowded: number;
  /** Calls decided alone on arrival because the joint search had used its work budget for the second. */
  overBudget: number;
  /** Calls that chose fewer attempts than their AttemptCount and were given the attempts in their window no waiting call chose (instead of leaving them orphans). */
  filled: number;
}
