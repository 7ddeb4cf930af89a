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
}
