// What the correlator keeps reachable once a call is exported. Its queues delete lazily: a claimed
// attempt (with its decoded datagram) stays referenced until the queue compacts. Kept for ~1,000
// attempts, that was about one young-generation interval at 100k datagrams/s, and in the runs where
// it outlived one every datagram's objects were promoted to the old generation (the high-memory
// mode, BENCHMARKS.md). So: a few dozen claimed attempts at most.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG } from '../../src/config/schema.js';
import { Correlator } from '../../src/correlate/correlator.js';
import type { CsmAttempt } from '../../src/decode/types.js';
import { pipelineOptions } from '../../src/pipeline.js';
import { apiCall, apiCallAttempt } from '../helpers/events.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

describe('the correlator after a call is exported', () => {
  it('keeps at most a few dozen claimed attempts reachable (1,000 single-attempt calls in a row)', async () => {
    const c = new Correlator(pipelineOptions(DEFAULT_CONFIG, '').correlator, () => {});
    const refs: WeakRef<CsmAttempt>[] = [];
    const T0 = 1_700_000_000_000;
    for (let i = 0; i < 1_000; i++) {
      const timestamp = T0 + i;
      const a = apiCallAttempt({ service: 'S3', api: 'ListBuckets', timestamp, attemptLatency: 3, httpStatusCode: 200, xAmznRequestId: `r${i}` });
      refs.push(new WeakRef(a));
      c.add(a);
      c.add(apiCall({ service: 'S3', api: 'ListBuckets', timestamp: timestamp - 1, latency: 4, attemptCount: 1, finalHttpStatusCode: 200 }));
    }
    expect(c.pendingAttempts + c.pendingCalls).toBe(0);
    await new Promise((r) => setTimeout(r, 0)); // WeakRefs made in this job keep their targets until it ends
    gc();
    const reachable = refs.filter((r) => r.deref() !== undefined).length;
    expect(reachable).toBeLessThanOrEqual(100);
  });
});
