import { describe, expect, it } from 'vitest';
import { Correlator, DEFAULT_CORRELATOR_OPTIONS, EMPTIED_BATCH } from '../../src/correlate/correlator.js';
import type { Correlated, CorrelatorOptions } from '../../src/correlate/types.js';
import type { CsmApiCall, CsmAttempt, CsmEvent, SdkFamily } from '../../src/decode/types.js';
import { decodeCapture, readTruth, scenarios } from '../helpers/captures.js';

// ------------------------------------------------------------------ real captures

interface Score {
  scenario: string;
  calls: number;
  callsExact: number;
  attempts: number;
  attemptsCorrect: number;
  orphans: number;
  emittedCalls: number;
}

function run(events: CsmEvent[], opts: CorrelatorOptions = DEFAULT_CORRELATOR_OPTIONS): Correlated[] {
  const out: Correlated[] = [];
  const c = new Correlator(opts, (x) => out.push(x));
  for (const e of events) {
    c.expire(e.receivedAt); // as the bridge would, roughly
    c.add(e);
  }
  c.flush();
  expect(c.pendingAttempts).toBe(0);
  expect(c.pendingCalls).toBe(0);
  return out;
}

function score(scenario: string): Score {
  const decoded = decodeCapture(scenario);
  const lineOf = new Map<CsmEvent, number>(decoded.map((d) => [d.event, d.line]));
  const out = run(decoded.map((d) => d.event));

  // Every datagram comes out exactly once.
  const seen = new Map<number, number>();
  const bump = (e: CsmEvent) => {
    const l = lineOf.get(e);
    expect(l, `${scenario}: emitted an event that was never fed`).toBeDefined();
    seen.set(l!, (seen.get(l!) ?? 0) + 1);
  };
  const byCallLine = new Map<number, number[]>();
  const orphanLines = new Set<number>();
  for (const c of out) {
    if (c.kind === 'call') {
      bump(c.call);
      c.attempts.forEach(bump);
      byCallLine.set(lineOf.get(c.call)!, c.attempts.map((a) => lineOf.get(a)!));
      const starts = c.attempts.map((a) => (a.timestampMarksEnd ? a.timestamp - (a.attemptLatency ?? 0) : a.timestamp));
      expect(starts, `${scenario}: attempts in start order`).toEqual([...starts].sort((x, y) => x - y));
    } else {
      bump(c.attempt);
      orphanLines.add(lineOf.get(c.attempt)!);
    }
  }
  expect(seen.size, `${scenario}: every line emitted`).toBe(decoded.length);
  expect([...seen.values()].every((n) => n === 1), `${scenario}: no line emitted twice`).toBe(true);

  const s: Score = { scenario, calls: 0, callsExact: 0, attempts: 0, attemptsCorrect: 0, orphans: orphanLines.size, emittedCalls: byCallLine.size };
  for (const t of readTruth(scenario)) {
    const got = t.api_call_line === null ? undefined : byCallLine.get(t.api_call_line);
    if (t.api_call_line !== null) {
      s.calls++;
      const exact = got !== undefined && [...got].sort((a, b) => a - b).join() === [...t.attempt_lines].sort((a, b) => a - b).join();
      if (exact) s.callsExact++;
    }
    for (const l of t.attempt_lines) {
      s.attempts++;
      if (got ? got.includes(l) : orphanLines.has(l)) s.attemptsCorrect++;
    }
  }
  return s;
}

const CONCURRENT = new Set(['boto3_threads_standard']);

describe('correlate: real captures against ground truth', () => {
  const scores = scenarios().map(score);

  it('prints the per-scenario table', () => {
    const rows = scores.map((s) => ({
      scenario: s.scenario,
      'calls exact': `${s.callsExact}/${s.calls}`,
      'attempts correct': `${s.attemptsCorrect}/${s.attempts}`,
      '%': ((100 * s.attemptsCorrect) / Math.max(1, s.attempts)).toFixed(1),
      orphans: s.orphans,
    }));
    console.log(
      ['correlation accuracy (fed in arrival order, then flush):']
        .concat(rows.map((r) => `  ${r.scenario.padEnd(24)} calls exact ${r['calls exact'].padStart(6)}  attempts ${r['attempts correct'].padStart(6)} (${r['%']}%)  orphans ${r.orphans}`))
        .join('\n'),
    );
    expect(scores.length).toBeGreaterThanOrEqual(8);
  });

  for (const s of scores.filter((x) => !CONCURRENT.has(x.scenario))) {
    it(`${s.scenario}: every call gets exactly its own attempts`, () => {
      expect(s.callsExact).toBe(s.calls);
      expect(s.attemptsCorrect).toBe(s.attempts);
      expect(s.orphans).toBe(0);
    });
  }

  it('boto3_threads_standard: interleaved calls on one port', () => {
    const s = scores.find((x) => x.scenario === 'boto3_threads_standard')!;
    // See the note on THREADS_MIN_ATTEMPT_ACCURACY below: the 10 middle attempts of the five
    // 4-attempt DescribeTable calls are not determined by anything CSM sends.
    expect(s.attemptsCorrect / s.attempts).toBeGreaterThanOrEqual(THREADS_MIN_ATTEMPT_ACCURACY);
    expect(s.callsExact).toBeGreaterThanOrEqual(s.calls - 5);
    expect(s.orphans).toBe(0);
  });

  it('boto3_threads_standard: first and last attempt of every call are right', () => {
    const decoded = decodeCapture('boto3_threads_standard');
    const lineOf = new Map<CsmEvent, number>(decoded.map((d) => [d.event, d.line]));
    const got = new Map<number, number[]>();
    for (const c of run(decoded.map((d) => d.event))) {
      if (c.kind === 'call') got.set(lineOf.get(c.call)!, c.attempts.map((a) => lineOf.get(a)!));
    }
    for (const t of readTruth('boto3_threads_standard')) {
      const mine = got.get(t.api_call_line!)!;
      const start = (l: number) => decoded[l]!.event.timestamp;
      const truthSorted = [...t.attempt_lines].sort((a, b) => start(a) - start(b));
      expect(mine.length, `call line ${t.api_call_line}`).toBe(t.attempt_lines.length);
      expect(mine[0], `first attempt of call line ${t.api_call_line}`).toBe(truthSorted[0]);
      expect(mine.at(-1), `last attempt of call line ${t.api_call_line}`).toBe(truthSorted.at(-1));
    }
  });
});

/**
 * The lead asked for ≥ 99 %. That is not reachable from the data: in
 * boto3_threads_standard five DescribeTable calls with AttemptCount 4 overlap,
 * and their 10 middle attempts (all retryable errors from one socket, same
 * UserAgent/Fqdn/AccessKey) can be shuffled among them in thousands of ways that
 * satisfy every constraint (windows, sequencing, the standard-mode backoff bound
 * of 2^(k-1) s, final status). First and last attempts are pinned (asserted
 * above); the middles are a guess. Measured: see the printed table.
 */
const THREADS_MIN_ATTEMPT_ACCURACY = 0.85;

// ------------------------------------------------------------------ hand-made events

const T0 = 1_700_000_000_000;
const UA: Record<string, string> = {
  botocore: 'Boto3/1.43.11 md/Botocore#1.43.11 Botocore/1.43.11',
  'js-v2': 'aws-sdk-nodejs/2.1693.0 linux/v20.20.2 promise',
  'go-v1': 'aws-sdk-go/1.44.133 (go1.19.8; linux; amd64)',
  'ruby-v3': 'aws-sdk-ruby3/3.168.1 ruby/3.1.7 x86_64-linux-gnu aws-sdk-core/3.168.1',
  unknown: 'something/1.0',
};

interface Common {
  sdk?: SdkFamily;
  port?: number;
  /** ms after T0 */
  at: number;
  /** receive time, ms after T0; defaults to the end of the event */
  recv?: number;
  api?: string;
}

function common(o: Common, end: number) {
  const sdk = o.sdk ?? 'botocore';
  return {
    clientId: 'app',
    service: 'DynamoDB',
    api: o.api ?? 'DescribeTable',
    region: 'us-east-1',
    userAgent: UA[sdk] ?? UA['unknown']!,
    timestampMarksEnd: sdk === 'go-v1',
    sdk,
    source: { address: '127.0.0.1', port: o.port ?? 40000 },
    receivedAt: T0 + (o.recv ?? end),
  };
}

function attempt(o: Common & { lat: number; status?: number; rid?: string }): CsmAttempt {
  const goEnd = (o.sdk ?? 'botocore') === 'go-v1';
  return {
    ...common(o, o.at + o.lat),
    type: 'ApiCallAttempt',
    timestamp: T0 + (goEnd ? o.at + o.lat : o.at),
    attemptLatency: o.lat,
    httpStatusCode: o.status ?? 200,
    ...(o.status && o.status >= 400 ? { awsException: 'ServiceUnavailable' } : {}),
    ...(o.rid ? { xAmznRequestId: o.rid } : {}),
  };
}

function call(o: Common & { lat: number; n: number | undefined; status?: number; rid?: string }): CsmApiCall {
  const goEnd = (o.sdk ?? 'botocore') === 'go-v1';
  return {
    ...common(o, o.at + o.lat),
    type: 'ApiCall',
    timestamp: T0 + (goEnd ? o.at + o.lat : o.at),
    latency: o.lat,
    ...(o.n === undefined ? {} : { attemptCount: o.n }),
    finalHttpStatusCode: o.status ?? 200,
    ...(o.status && o.status >= 400 ? { finalAwsException: 'ServiceUnavailable' } : {}),
    ...(o.rid ? { xAmznRequestId: o.rid } : {}),
  };
}

function collector(opts: Partial<CorrelatorOptions> = {}) {
  const out: Correlated[] = [];
  const c = new Correlator({ ...DEFAULT_CORRELATOR_OPTIONS, ...opts }, (x) => out.push(x));
  return { c, out };
}

const calls = (out: Correlated[]) => out.filter((x): x is Extract<Correlated, { kind: 'call' }> => x.kind === 'call');
const orphans = (out: Correlated[]) => out.filter((x): x is Extract<Correlated, { kind: 'orphan' }> => x.kind === 'orphan');

describe('correlate: hand-made cases', () => {
  it('Ruby: ApiCall first, held until its attempts arrive, then emitted at once', () => {
    const { c, out } = collector();
    const C = call({ sdk: 'ruby-v3', port: 50001, at: 0, lat: 400, n: 2 });
    const A1 = attempt({ sdk: 'ruby-v3', port: 50002, at: 1, lat: 5, status: 503, recv: 400 });
    const A2 = attempt({ sdk: 'ruby-v3', port: 50003, at: 398, lat: 2, recv: 400 });
    c.add(C);
    expect(out).toEqual([]);
    expect(c.pendingCalls).toBe(1);
    c.add(A1);
    expect(out).toEqual([]);
    expect(c.pendingAttempts).toBe(0);
    c.add(A2);
    expect(out).toEqual([{ kind: 'call', call: C, attempts: [A1, A2], missingAttempts: 0 }]);
    expect(c.pendingCalls).toBe(0);
  });

  it('Ruby: two interleaved calls (threads) each get their own attempts', () => {
    const { c, out } = collector();
    const CA = call({ sdk: 'ruby-v3', port: 1, at: 0, lat: 310, n: 2 });
    const CB = call({ sdk: 'ruby-v3', port: 2, at: 150, lat: 161, n: 1 });
    const A1 = attempt({ sdk: 'ruby-v3', port: 3, at: 1, lat: 2, status: 500, recv: 311 });
    const B1 = attempt({ sdk: 'ruby-v3', port: 4, at: 151, lat: 160, recv: 311 });
    const A2 = attempt({ sdk: 'ruby-v3', port: 5, at: 305, lat: 5, recv: 311 });
    for (const e of [CA, CB, A1, B1, A2]) c.add(e);
    expect(calls(out)).toEqual([
      { kind: 'call', call: CB, attempts: [B1], missingAttempts: 0 },
      { kind: 'call', call: CA, attempts: [A1, A2], missingAttempts: 0 },
    ]);
  });

  it('a call whose attempts never came is emitted after callHoldMs with missingAttempts', () => {
    const { c, out } = collector({ callHoldMs: 3000 });
    const C = call({ sdk: 'ruby-v3', at: 0, lat: 50, n: 3 });
    const A1 = attempt({ sdk: 'ruby-v3', at: 1, lat: 5, status: 503 });
    c.add(C);
    c.add(A1);
    c.expire(C.receivedAt + 2999);
    expect(out).toEqual([]);
    c.expire(C.receivedAt + 3000);
    expect(out).toEqual([{ kind: 'call', call: C, attempts: [A1], missingAttempts: 2 }]);
    expect(c.pendingCalls).toBe(0);
  });

  it('attempts-first SDK: a call with nothing to claim is emitted at once (its attempts cannot come later)', () => {
    const { c, out } = collector();
    const C = call({ at: 0, lat: 57, n: 2 }); // boto3_edge_cases line 2: both attempts dropped as oversize
    c.add(C);
    expect(out).toEqual([{ kind: 'call', call: C, attempts: [], missingAttempts: 2 }]);
    expect(c.pendingCalls).toBe(0);
  });

  it('attempts that never get a call become orphans after attemptHoldMs', () => {
    const { c, out } = collector({ attemptHoldMs: 300_000 });
    const A = attempt({ at: 0, lat: 5 });
    c.add(A);
    expect(c.pendingAttempts).toBe(1);
    c.expire(A.receivedAt + 299_999);
    expect(out).toEqual([]);
    c.expire(A.receivedAt + 300_000);
    expect(out).toEqual([{ kind: 'orphan', attempt: A, reason: 'ttl_expired' }]);
    expect(c.pendingAttempts).toBe(0);
    // and a late ApiCall no longer finds it
    c.add(call({ at: 0, lat: 6, n: 1, recv: 300_010 }));
    expect(calls(out)[0]!.attempts).toEqual([]);
  });

  it('maxPending: the oldest pending items are flushed early', () => {
    const { c, out } = collector({ maxPending: 3 });
    const W = call({ sdk: 'ruby-v3', at: 0, lat: 100, n: 2 }); // waiting call, oldest
    const A = [1, 2, 3].map((i) => attempt({ at: 1000 * i, lat: 5, api: `Op${i}` }));
    c.add(W);
    c.add(A[0]!);
    c.add(A[1]!);
    expect(out).toEqual([]);
    c.add(A[2]!);
    expect(out).toEqual([{ kind: 'call', call: W, attempts: [], missingAttempts: 2 }]);
    const A4 = attempt({ at: 5000, lat: 5, api: 'Op4' });
    c.add(A4);
    expect(out[1]).toEqual({ kind: 'orphan', attempt: A[0], reason: 'buffer_full' });
    expect(c.pendingAttempts + c.pendingCalls).toBe(3);
    c.flush();
    expect(orphans(out).map((o) => [o.attempt, o.reason])).toEqual([
      [A[0], 'buffer_full'],
      [A[1], 'shutdown'],
      [A[2], 'shutdown'],
      [A4, 'shutdown'],
    ]);
  });

  it('JS v2: two concurrent calls whose datagrams all come from different ports', () => {
    const { c, out } = collector();
    // A: 503 then 200, 0..70 ms; B: one attempt 5..40 ms. Ports change per datagram.
    const A1 = attempt({ sdk: 'js-v2', port: 41001, at: 1, lat: 9, status: 503 });
    const B1 = attempt({ sdk: 'js-v2', port: 41002, at: 6, lat: 34 });
    const CB = call({ sdk: 'js-v2', port: 41002, at: 5, lat: 35, n: 1 });
    const A2 = attempt({ sdk: 'js-v2', port: 41003, at: 55, lat: 15 });
    const CA = call({ sdk: 'js-v2', port: 41004, at: 0, lat: 70, n: 2 });
    for (const e of [A1, B1, CB, A2, CA]) c.add(e);
    expect(calls(out)).toEqual([
      { kind: 'call', call: CB, attempts: [B1], missingAttempts: 0 },
      { kind: 'call', call: CA, attempts: [A1, A2], missingAttempts: 0 },
    ]);
  });

  it('stable-port SDK: a second botocore Session on another port does not steal attempts', () => {
    const { c, out } = collector();
    // Session 1 (port 59015) is mid-call; session 2 (port 35004) makes the same call and its
    // attempts were dropped (oversize). The window of session 2's call covers session 1's attempt.
    const S1a = attempt({ port: 59015, at: 10, lat: 20 });
    const S2call = call({ port: 35004, at: 9, lat: 22, n: 1 });
    const S1call = call({ port: 59015, at: 9, lat: 21, n: 1 });
    for (const e of [S1a, S2call, S1call]) c.add(e);
    expect(calls(out)).toEqual([
      { kind: 'call', call: S2call, attempts: [], missingAttempts: 1 },
      { kind: 'call', call: S1call, attempts: [S1a], missingAttempts: 0 },
    ]);
  });

  it('boto3_edge_cases: the second Session (port 35004) gets nothing; the other port keeps its attempts', () => {
    const decoded = decodeCapture('boto3_edge_cases');
    const ev = (l: number) => decoded[l]!.event;
    const out = run(decoded.map((d) => d.event));
    const second = calls(out).find((x) => x.call === ev(2))!;
    expect(second.attempts).toEqual([]);
    expect(second.missingAttempts).toBe(2);
    expect(calls(out).find((x) => x.call === ev(25))!.attempts).toEqual([ev(23), ev(24)]);
  });

  it('JS v2 (port is only a hint): the same situation as above is matched by time', () => {
    const { c, out } = collector();
    const a = attempt({ sdk: 'js-v2', port: 1, at: 10, lat: 20 });
    c.add(a);
    c.add(call({ sdk: 'js-v2', port: 2, at: 9, lat: 22, n: 1 }));
    expect(calls(out)[0]!.attempts).toEqual([a]);
  });

  it('Go v1: end-stamped events, and the request id on the ApiCall picks the last attempt', () => {
    const { c, out } = collector();
    // Two concurrent Go calls with the same shape; only the request id tells them apart.
    const X1 = attempt({ sdk: 'go-v1', at: 0, lat: 10, status: 503, rid: 'x1' });
    const Y1 = attempt({ sdk: 'go-v1', at: 0, lat: 10, status: 503, rid: 'y1' });
    const Y2 = attempt({ sdk: 'go-v1', at: 100, lat: 10, rid: 'y2' });
    const X2 = attempt({ sdk: 'go-v1', at: 100, lat: 10, rid: 'x2' });
    const CX = call({ sdk: 'go-v1', at: 0, lat: 110, n: 2, rid: 'x2' });
    const CY = call({ sdk: 'go-v1', at: 0, lat: 110, n: 2, rid: 'y2' });
    for (const e of [X1, Y1, Y2, X2, CX, CY]) c.add(e);
    const got = calls(out);
    expect(got[0]!.call).toBe(CX);
    expect(got[0]!.attempts.at(-1)).toBe(X2);
    expect(got[1]!.call).toBe(CY);
    expect(got[1]!.attempts.at(-1)).toBe(Y2);
  });

  it('the last attempt carries the final status: a success is not taken as a retried attempt', () => {
    const { c, out } = collector();
    // Two overlapping calls; the 200 that ends inside A's window belongs to B.
    const A1 = attempt({ at: 1, lat: 5, status: 500 });
    const B1 = attempt({ at: 3, lat: 10 });
    const CB = call({ at: 2, lat: 12, n: 1 });
    const A2 = attempt({ at: 50, lat: 20, status: 400 });
    const CA = call({ at: 0, lat: 70, n: 2, status: 400 });
    for (const e of [A1, B1, CB, A2, CA]) c.add(e);
    expect(calls(out).find((x) => x.call === CA)!.attempts).toEqual([A1, A2]);
  });

  it('AttemptCount absent: takes the best-fitting attempt', () => {
    const { c, out } = collector();
    const other = attempt({ at: 0, lat: 3, status: 500 });
    const mine = attempt({ at: 20, lat: 10 });
    c.add(other);
    c.add(mine);
    c.add(call({ at: 19, lat: 11, n: undefined }));
    expect(calls(out)[0]).toMatchObject({ attempts: [mine], missingAttempts: 0 });
    expect(c.pendingAttempts).toBe(1);
  });

  it('emits attempts in start-time order even when they arrive out of order', () => {
    const { c, out } = collector();
    const C = call({ sdk: 'unknown', at: 0, lat: 100, n: 3 });
    const A3 = attempt({ sdk: 'unknown', at: 90, lat: 10, recv: 100 });
    const A1 = attempt({ sdk: 'unknown', at: 1, lat: 9, status: 500, recv: 101 });
    const A2 = attempt({ sdk: 'unknown', at: 40, lat: 10, status: 500, recv: 102 });
    for (const e of [C, A3, A1, A2]) c.add(e);
    expect(calls(out)[0]!.attempts).toEqual([A1, A2, A3]);
  });

  it('unknown SDK: both orders; a call that claimed early attempts still waits for late ones', () => {
    const { c, out } = collector();
    const A1 = attempt({ sdk: 'unknown', port: 1, at: 1, lat: 9, status: 500 });
    const C = call({ sdk: 'unknown', port: 2, at: 0, lat: 100, n: 2, recv: 60 });
    const A2 = attempt({ sdk: 'unknown', port: 3, at: 90, lat: 10 });
    c.add(A1);
    c.add(C);
    expect(out).toEqual([]);
    expect([c.pendingAttempts, c.pendingCalls]).toEqual([0, 1]);
    c.add(A2);
    expect(out).toEqual([{ kind: 'call', call: C, attempts: [A1, A2], missingAttempts: 0 }]);
  });

  it('emptied groups are freed in batches: few are held, and a key seen again after its sweep still matches', () => {
    const { c, out } = collector();
    const n = 3 * EMPTIED_BATCH + 17;
    for (let i = 0; i < n; i++) {
      // A distinct key per call (its own source port), each matched at once.
      c.add(attempt({ port: 10_000 + i, at: 2 * i, lat: 1 }));
      c.add(call({ port: 10_000 + i, at: 2 * i, lat: 1, n: 1 }));
      expect(c.pendingGroups).toBe(0);
      expect(c.heldGroups).toBeLessThan(EMPTIED_BATCH);
    }
    c.add(attempt({ port: 10_000, at: 2 * n, lat: 1 }));
    expect([c.pendingGroups, c.pendingAttempts]).toEqual([1, 1]);
    c.add(call({ port: 10_000, at: 2 * n, lat: 1, n: 1 }));
    const done = calls(out);
    expect(done).toHaveLength(n + 1);
    expect(done.every((x) => x.attempts.length === 1 && x.attempts[0]!.source.port === x.call.source.port)).toBe(true);
    c.flush();
    expect([c.pendingGroups, c.heldGroups]).toEqual([0, 0]);
  });

  it('flush emits waiting calls with what they have and attempts as shutdown orphans', () => {
    const { c, out } = collector();
    const C = call({ sdk: 'ruby-v3', at: 0, lat: 50, n: 2 });
    const A = attempt({ sdk: 'ruby-v3', at: 1, lat: 5, status: 500 });
    const O = attempt({ at: 500, lat: 5, api: 'Other' });
    c.add(C);
    c.add(A);
    c.add(O);
    c.flush();
    expect(out).toEqual([
      { kind: 'call', call: C, attempts: [A], missingAttempts: 1 },
      { kind: 'orphan', attempt: O, reason: 'shutdown' },
    ]);
    expect(c.pendingAttempts + c.pendingCalls).toBe(0);
  });

  it('matches a long stream of concurrent calls of ten APIs exactly (throughput: bench/)', () => {
    const { c, out } = collector();
    const N = 20_000;
    const events: CsmEvent[] = [];
    for (let i = 0; i < N; i++) {
      // 10 APIs, ~5 calls of each in flight, one attempt per call, a call starting every ms.
      events.push(attempt({ at: i + 1, lat: 20, api: `Op${i % 10}`, recv: i + 21 }));
      if (i >= 50) events.push(call({ at: i - 50, lat: 22, n: 1, api: `Op${(i - 50) % 10}`, recv: i + 21 }));
    }
    for (let i = 0; i < events.length; i++) {
      c.add(events[i]!);
      if (i % 2000 === 0) c.expire(events[i]!.receivedAt);
    }
    c.flush();
    expect(calls(out).every((x) => x.attempts.length === 1 && x.attempts[0]!.timestamp === x.call.timestamp + 1)).toBe(true);
    expect(calls(out).length).toBe(N - 50);
    expect(orphans(out).length).toBe(50); // the last 50 attempts, whose calls never came
  });
});
