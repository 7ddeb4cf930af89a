import { describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG } from '../../src/config/schema.js';
import { Correlator, EMPTIED_BATCH } from '../../src/correlate/correlator.js';
import type { Correlated, CorrelatorOptions } from '../../src/correlate/types.js';
import type { CsmApiCall, CsmAttempt, CsmEvent, SdkFamily } from '../../src/decode/types.js';
import { pipelineOptions } from '../../src/pipeline.js';
import { decodeCapture, scenarios } from '../helpers/captures.js';
import { measureCapture, percentile, replay, type CaptureScore } from '../helpers/correlation.js';

/** What users get: the correlator options the shipped defaults build. */
const SHIPPED: CorrelatorOptions = pipelineOptions(DEFAULT_CONFIG, '').correlator;

// ------------------------------------------------------------------ real captures

function run(events: CsmEvent[], opts: CorrelatorOptions = SHIPPED): Correlated[] {
  return replay(events, opts).out;
}

/**
 * What each capture must reach with the shipped defaults (measured; see the printed table).
 * Sequential traffic is exact and never flagged. Concurrent traffic: at least `right` of the
 * attempts under their true call; every misplaced attempt flagged except `unflagged` (the
 * misplacements no alternative within ln 2 was found for when they were exported), at most
 * `truthMoreProbable` misplaced groups where the truth is more probable than the output by more
 * than ln 2 (each explained in docs/correlation.md "What correlation can and cannot know": the call whose
 * attempts were taken arrived after the settle time), at most `spurious` flags without an
 * alternative once every call is known.
 */
interface Expect {
  right: number;
  unflagged: number;
  truthMoreProbable: number;
  spurious: number;
}
const EXACT: Expect = { right: 1, unflagged: 0, truthMoreProbable: 0, spurious: 0 };
const EXPECTED: Record<string, Expect> = {
  boto3_edge_cases: EXACT,
  cli_connrefused: EXACT,
  cli_fake_retries: EXACT,
  cli_moto_basic: EXACT,
  go_v1_sequential: EXACT,
  js_v2_sequential: EXACT,
  ruby_v3_sequential: EXACT,
  ruby_v3_concurrent: EXACT,
  boto3_storm_legacy: { right: 0.9, unflagged: 0, truthMoreProbable: 0, spurious: 0 },
  boto3_storm_standard: { right: 0.65, unflagged: 0, truthMoreProbable: 1, spurious: 0 },
  boto3_threads_adaptive: { right: 0.9, unflagged: 0, truthMoreProbable: 1, spurious: 0 },
  boto3_threads_legacy: { right: 0.9, unflagged: 0, truthMoreProbable: 0, spurious: 0 },
  boto3_threads_standard: { right: 0.85, unflagged: 0, truthMoreProbable: 1, spurious: 0 },
  go_v1_concurrent: { right: 0.7, unflagged: 0, truthMoreProbable: 0, spurious: 0 },
  go_v1_storm: { right: 0.75, unflagged: 0, truthMoreProbable: 1, spurious: 0 },
  js_v2_concurrent: { right: 0.85, unflagged: 0, truthMoreProbable: 0, spurious: 0 },
  js_v2_storm: { right: 0.7, unflagged: 0, truthMoreProbable: 0, spurious: 0 },
  ruby_v3_storm: { right: 0.97, unflagged: 0, truthMoreProbable: 0, spurious: 0 },
};

describe('correlate: real captures against ground truth (shipped defaults)', () => {
  const scores: CaptureScore[] = scenarios().map((sc) => measureCapture(sc, SHIPPED));

  it('every capture has expectations, and the table is printed', () => {
    const pct = (n: number, d: number) => `${((100 * n) / Math.max(1, d)).toFixed(1)}%`.padStart(6);
    console.log(
      ['correlation on real captures (shipped defaults, arrival order, expiry ticks):']
        .concat(
          scores.map(
            (s) =>
              `  ${s.scenario.padEnd(24)} attempts ${`${s.attemptsRight}/${s.attempts}`.padStart(6)} ${pct(s.attemptsRight, s.attempts)}` +
              `  calls exact ${`${s.callsExact}/${s.calls}`.padStart(6)}  flagged ${String(s.flagged).padStart(3)}` +
              `  misplaced unflagged ${s.misplacedUnflagged.length}  truth more probable ${s.truthMoreProbable.length}/${s.misplacedGroups}` +
              `  flags without alternative ${s.flaggedWithoutAlternative.length}  orphans ${s.orphans}` +
              `  wait p50/p99 ${percentile(s.waitsMs, 0.5)}/${percentile(s.waitsMs, 0.99)} ms`,
          ),
        )
        .join('\n'),
    );
    expect(scores.map((s) => s.scenario).filter((sc) => EXPECTED[sc] === undefined)).toEqual([]);
  });

  for (const s of scores) {
    const e = EXPECTED[s.scenario] ?? EXACT;
    it(`${s.scenario}: measured against its expectations`, () => {
      expect(s.attemptsRight / s.attempts, 'attempts under their true call').toBeGreaterThanOrEqual(e.right);
      expect(s.misplacedUnflagged.length, `misplaced, not flagged: lines ${s.misplacedUnflagged.join(', ')}`).toBeLessThanOrEqual(e.unflagged);
      expect(s.truthMoreProbable.length, `truth more probable: ${JSON.stringify(s.truthMoreProbable)}`).toBeLessThanOrEqual(e.truthMoreProbable);
      expect(s.flaggedWithoutAlternative.length, `flags without alternative: lines ${s.flaggedWithoutAlternative.join(', ')}`).toBeLessThanOrEqual(e.spurious);
      // Every attempt of these captures has its call: none may be exported alone (a call that chose too few takes them).
      expect(s.orphans, 'orphans').toBe(0);
      if (e === EXACT) {
        expect(s.callsExact).toBe(s.calls);
        expect(s.flagged, 'sequential traffic is never flagged').toBe(0);
      }
    });
  }

  it('--match-settle-ms 10000 (docs/correlation.md: for exact storm trees, at the cost of export latency): no misplaced group where the truth is more probable, every misplaced attempt flagged', () => {
    const opts = pipelineOptions({ ...DEFAULT_CONFIG, matchSettleMs: 10_000 }, '').correlator;
    for (const sc of scenarios()) {
      const s = measureCapture(sc, opts);
      expect(s.truthMoreProbable, `${sc}: truth more probable`).toEqual([]);
      expect(s.misplacedUnflagged, `${sc}: misplaced, not flagged`).toEqual([]);
      expect(s.orphans, `${sc}: orphans`).toBe(0);
      // Waits beyond callHoldMs (3 s): it bounds only a call waiting for its own attempts.
      if (sc === 'boto3_storm_standard') expect(s.waitsMs.at(-1)).toBeGreaterThan(DEFAULT_CONFIG.callHoldMs);
    }
  });

  it('every datagram comes out exactly once, attempts in start order', () => {
    for (const sc of scenarios()) {
      const decoded = decodeCapture(sc);
      const lineOf = new Map<CsmEvent, number>(decoded.map((d) => [d.event, d.line]));
      const seen = new Map<number, number>();
      const bump = (e: CsmEvent) => seen.set(lineOf.get(e)!, (seen.get(lineOf.get(e)!) ?? 0) + 1);
      for (const c of run(decoded.map((d) => d.event))) {
        if (c.kind === 'call') {
          bump(c.call);
          c.attempts.forEach(bump);
          const starts = c.attempts.map((a) => (a.timestampMarksEnd ? a.timestamp - (a.attemptLatency ?? 0) : a.timestamp));
          expect(starts, `${sc}: attempts in start order`).toEqual([...starts].sort((x, y) => x - y));
          if (c.ambiguous) expect(c.ambiguous.length).toBe(c.attempts.length);
        } else {
          bump(c.attempt);
        }
      }
      expect(seen.size, `${sc}: every line emitted`).toBe(decoded.length);
      expect([...seen.values()].every((n) => n === 1), `${sc}: no line emitted twice`).toBe(true);
    }
  });
});

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
  const c = new Correlator({ ...SHIPPED, ...opts }, (x) => out.push(x));
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

  it('a call that chose fewer attempts than its AttemptCount takes the one left in its window rather than orphan it', () => {
    const { c, out } = collector();
    // DynamoDB legacy (exact 50·2^(k-1) ms delays). A [0, 60] has two attempts; B [0, 1000] counted three, and the
    // only third one in its window fits badly: a success followed by a retry, another UserAgent, gaps off the model.
    // B's most probable chain leaves it out (one attempt missing); exported so, it would be an orphan.
    const A1 = attempt({ at: 0, lat: 5, status: 503 });
    const B1 = attempt({ at: 1, lat: 5, status: 503 });
    const A2 = attempt({ at: 55, lat: 5 });
    const A = call({ at: 0, lat: 60, n: 2 });
    const Z = { ...attempt({ at: 500, lat: 5 }), userAgent: 'Other/1.0' };
    const B3 = attempt({ at: 990, lat: 10 });
    const B = call({ at: 0, lat: 1000, n: 3 });
    for (const e of [A1, B1, A2, A, Z, B3, B]) c.add(e);
    c.expire(T0 + 1000 + SHIPPED.settleMs + 100);
    c.flush();
    expect(orphans(out)).toEqual([]);
    const b = calls(out).find((x) => x.call === B)!;
    expect(b.attempts).toEqual([B1, Z, B3]);
    expect(b.missingAttempts).toBe(0);
    expect(calls(out).find((x) => x.call === A)!.attempts).toEqual([A1, A2]);
    expect(c.settleCounts.filled).toBe(1);
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

describe('correlate: bounded under a storm of identical calls', () => {
  it('thousands of overlapping twins: the waiting set and the work are bounded, nothing is lost', () => {
    const out: Correlated[] = [];
    const c = new Correlator(SHIPPED, (x) => out.push(x));
    const N = 2_000;
    const events: CsmEvent[] = [];
    for (let i = 0; i < N; i++) {
      // Each call: a 503 at its start, a retry 40 ms later; calls start every 0.5 ms, all alike.
      const at = i / 2;
      events.push(attempt({ at: Math.floor(at), lat: 5, status: 503, recv: Math.floor(at) + 5 }));
      events.push(attempt({ at: Math.floor(at) + 45, lat: 5, recv: Math.floor(at) + 50 }));
      events.push(call({ at: Math.floor(at), lat: 50, n: 2, recv: Math.floor(at) + 51 }));
    }
    events.sort((x, y) => x.receivedAt - y.receivedAt || (x.type === 'ApiCall' ? 1 : 0) - (y.type === 'ApiCall' ? 1 : 0));
    for (const e of events) {
      c.add(e);
      expect(c.pendingCalls).toBeLessThanOrEqual(32);
    }
    c.flush();
    const done = calls(out);
    expect(done).toHaveLength(N);
    expect(done.reduce((n, x) => n + x.attempts.length, 0) + orphans(out).length).toBe(2 * N);
    const counts = c.settleCounts;
    expect(counts.crowded + counts.overBudget, 'the bounds were reached').toBeGreaterThan(0);
  });
  it('at a high rate (over 10,000 events a second) every call is decided alone on arrival, and none waits', () => {
    const out: Correlated[] = [];
    const c = new Correlator(SHIPPED, (x) => out.push(x));
    // The bench's traffic: 14 single-attempt twin calls per ms in one group, one attempt in 20 lost.
    const N = 14_000;
    for (let i = 0; i < N; i++) {
      const at = Math.floor(i / 14);
      if (i % 20 !== 0) c.add(attempt({ at, lat: 3, recv: at + 3 }));
      c.add(call({ at, lat: 4, n: 1, recv: at + 4 }));
      if (i > 11_000) expect(c.pendingCalls, 'no call waits once the rate is over the cut').toBe(0);
    }
    c.flush();
    expect(calls(out)).toHaveLength(N);
    expect(c.settleCounts.overBudget).toBeGreaterThan(2_000);
  });
});
