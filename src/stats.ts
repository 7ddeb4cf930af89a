import type { RejectReason } from './decode/types.js';

/**
 * Every counter the bridge keeps, in one plain object: `/stats` serves it
 * as is and the self-metrics read it. Stages increment fields directly
 * (cheap on the hot path); nothing else holds counts.
 */
export interface Stats {
  startedAt: number;
  datagrams: { received: number; accepted: number; rejected: Record<RejectReason, number> };
  events: { calls: number; attempts: number };
  correlation: {
    /** Attempts exported under their ApiCall. */
    matched: number;
    /** Attempts exported without a call, by reason. */
    orphaned: { ttl_expired: number; buffer_full: number; shutdown: number };
    /** Calls exported with fewer attempts than their AttemptCount, and how many were missing in all. */
    callsIncomplete: number;
    missingAttempts: number;
    pendingAttempts: number;
    pendingCalls: number;
  };
  spans: { created: number; exported: number; failed: number; dropped: number };
  metricExports: { succeeded: number; failed: number };
  clients: { active: number; overflowed: number };
  /** Calls that failed inside the bridge (a bug): logged and counted, never fatal. */
  internalErrors: number;
}

export function newStats(now: number): Stats {
  return {
    startedAt: now,
    datagrams: {
      received: 0,
      accepted: 0,
      rejected: { oversize: 0, malformed_json: 0, not_object: 0, unknown_type: 0, missing_field: 0, bad_field: 0 },
    },
    events: { calls: 0, attempts: 0 },
    correlation: {
      matched: 0,
      orphaned: { ttl_expired: 0, buffer_full: 0, shutdown: 0 },
      callsIncomplete: 0,
      missingAttempts: 0,
      pendingAttempts: 0,
      pendingCalls: 0,
    },
    spans: { created: 0, exported: 0, failed: 0, dropped: 0 },
    metricExports: { succeeded: 0, failed: 0 },
    clients: { active: 0, overflowed: 0 },
    internalErrors: 0,
  };
}
