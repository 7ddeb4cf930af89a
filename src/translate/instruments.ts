/**
 * The metric instruments the translation records points for (otel-mapping.md §2.1): the
 * contract between translate (which names an instrument per point) and export (which
 * aggregates per instrument), so both import it from here.
 */
import { METRIC_RPC_CLIENT_CALL_DURATION } from './semconv.js';

export const METRIC_CSM_ATTEMPT_DURATION = 'csm.attempt.duration';
export const METRIC_CSM_CALL_ATTEMPTS = 'csm.call.attempts';
export const METRIC_CSM_CALL_RETRIES = 'csm.call.retries';
export const METRIC_CSM_CALL_MAX_RETRIES_EXCEEDED = 'csm.call.max_retries_exceeded';
export const METRIC_CSM_ATTEMPT_PHASE_DURATION = 'csm.attempt.phase.duration';

/** Semconv buckets for call/request durations, in seconds. */
export const DURATION_BUCKETS_S: readonly number[] = [
  0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10,
];
export const ATTEMPT_COUNT_BUCKETS: readonly number[] = [1, 2, 3, 4, 5, 6, 8, 10];
export const PHASE_DURATION_BUCKETS_S: readonly number[] = [
  0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
];

export interface MetricInstrument {
  name: string;
  kind: 'histogram' | 'counter';
  unit: string;
  description: string;
  /** Explicit bucket boundaries (histograms only); always pass them as `advice.explicitBucketBoundaries`. */
  buckets?: number[];
}

export const METRIC_INSTRUMENTS: readonly MetricInstrument[] = [
  {
    name: METRIC_RPC_CLIENT_CALL_DURATION,
    kind: 'histogram',
    unit: 's',
    description: 'Duration of AWS SDK API calls (including retries), from CSM ApiCall.Latency.',
    buckets: [...DURATION_BUCKETS_S],
  },
  {
    name: METRIC_CSM_ATTEMPT_DURATION,
    kind: 'histogram',
    unit: 's',
    description: 'Duration of individual AWS SDK request attempts, from CSM ApiCallAttempt.AttemptLatency.',
    buckets: [...DURATION_BUCKETS_S],
  },
  {
    name: METRIC_CSM_CALL_ATTEMPTS,
    kind: 'histogram',
    unit: '{attempt}',
    description: 'Number of attempts made per AWS SDK API call (CSM ApiCall.AttemptCount).',
    buckets: [...ATTEMPT_COUNT_BUCKETS],
  },
  {
    name: METRIC_CSM_CALL_RETRIES,
    kind: 'counter',
    unit: '{retry}',
    description: 'Retries made by AWS SDK API calls (AttemptCount - 1).',
  },
  {
    name: METRIC_CSM_CALL_MAX_RETRIES_EXCEEDED,
    kind: 'counter',
    unit: '{call}',
    description: 'AWS SDK API calls that failed after using every allowed attempt (the SDK gave up: MaxRetriesExceeded=1 on a failed call).',
  },
  {
    name: METRIC_CSM_ATTEMPT_PHASE_DURATION,
    kind: 'histogram',
    unit: 's',
    description: 'Connection/request phase durations of AWS SDK attempts, when the SDK reports them.',
    buckets: [...PHASE_DURATION_BUCKETS_S],
  },
];
