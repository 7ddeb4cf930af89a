/**
 * Decoded CSM events built by hand, shaped like decode's output (src/decode/types.ts): a
 * botocore event from 127.0.0.1:40000 in us-east-1, received 1 s after its Timestamp, with
 * whatever the test sets on top. Values worth checking come from the real captures.
 */
import type { CsmApiCall, CsmAttempt } from '../../src/decode/types.js';

type Required = 'service' | 'api' | 'timestamp';
export type CallFields = Partial<CsmApiCall> & Pick<CsmApiCall, Required>;
export type AttemptFields = Partial<CsmAttempt> & Pick<CsmAttempt, Required>;

export const TEST_SOURCE = { address: '127.0.0.1', port: 40000 };

/** The fields every event shares; `p` overrides them. */
function common(timestamp: number) {
  return {
    clientId: 'corpus',
    region: 'us-east-1',
    timestampMarksEnd: false,
    sdk: 'botocore' as const,
    source: TEST_SOURCE,
    receivedAt: timestamp + 1000,
  };
}

export function apiCall(p: CallFields): CsmApiCall {
  return { type: 'ApiCall', ...common(p.timestamp), ...p };
}

export function apiCallAttempt(p: AttemptFields): CsmAttempt {
  return { type: 'ApiCallAttempt', ...common(p.timestamp), ...p };
}
