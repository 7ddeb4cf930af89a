import { describe, expect, it } from 'vitest';
import {
  attemptEnd,
  attemptStart,
  callEnd,
  callStart,
  delayModel,
  finalMatches,
  gapDelay,
  gapFits,
  LN_CUE_BROKEN,
  logBurst,
  logFirstOffset,
  logGap,
  logLastCues,
  logLastOffset,
  logRetried,
  retryMode,
  retryProfile,
  WIDE_SHARE,
  type RetryProfile,
} from '../../src/correlate/retry-models.js';
import { chainLogLikelihood, topChains, type TimedAttempt, type TimedCall } from '../../src/correlate/scoring.js';
import type { CsmApiCall, CsmAttempt, SdkFamily } from '../../src/decode/types.js';
import { decodeCapture, readTruth, scenarios } from '../helpers/captures.js';
import { apiCall, apiCallAttempt } from '../helpers/events.js';

const profile = (sdk: SdkFamily, mode: RetryProfile['mode'], dynamodb = false): RetryProfile => ({ sdk, mode, dynamodb });
const failed = (status = 500, awsException?: string): CsmAttempt =>
  apiCallAttempt({ service: 'DynamoDB', api: 'DescribeTable', timestamp: 0, attemptLatency: 5, httpStatusCode: status, ...(awsException ? { awsException } : {}) });

describe('retry models: SDK and mode from the UserAgent (sdk-retry-models.md §3)', () => {
  it('botocore: cfg/retry-mode, else the m/ letters (UserAgent cut at 256), else unknown', () => {
    expect(retryMode('botocore', 'Boto3/1.43.11 md/Botocore#1.43.11 m/b,D,g cfg/retry-mode#legacy Botocore/1.43.11')).toBe('legacy');
    expect(retryMode('botocore', 'aws-cli/1.45.11 m/N,E cfg/retry-mode#standard botocore/1.43.11')).toBe('standard');
    expect(retryMode('botocore', 'Boto3/1.43.11 m/F,P,b cfg/retry-mode#adaptive')).toBe('adaptive');
    expect(retryMode('botocore', 'Boto3/1.43.11 ua/2.1 m/Z,E,b,g,N,P')).toBe('standard');
    expect(retryMode('botocore', 'Boto3/1.43.11 ua/2.1 os/linux#6.18 UUUUUUUUUUUU')).toBe('unknown');
  });

  it('Ruby, PHP, .NET: m/E or m/F, none = legacy; JS v2, Go v1, Java v1: their one (default) model', () => {
    expect(retryMode('ruby-v3', 'aws-sdk-ruby3/3.168.1 ruby/3.1.2 x86_64-linux-gnu aws-sdk-s3/1.117.2')).toBe('legacy');
    expect(retryMode('ruby-v3', 'aws-sdk-ruby3/3.201.0 ruby/3.3 m/E,D')).toBe('standard');
    expect(retryMode('dotnet', 'aws-sdk-dotnet-coreclr/3.7 m/F')).toBe('adaptive');
    expect(retryMode('php-v3', 'aws-sdk-php/3.300.0')).toBe('legacy');
    expect(retryMode('js-v2', 'aws-sdk-nodejs/2.1693.0 linux/v20.20.2 promise')).toBe('legacy');
    expect(retryMode('go-v1', 'aws-sdk-go/1.44.133 (go1.19.8; linux; amd64)')).toBe('legacy');
    expect(retryMode('java-v1', 'aws-sdk-java/1.12.500')).toBe('legacy');
    expect(retryMode('unknown', 'something/1.0')).toBe('unknown');
  });

  it('profiles know DynamoDB (its own bases) and are cached per UserAgent', () => {
    const c = apiCall({ service: 'DynamoDB', api: 'DescribeTable', timestamp: 0, userAgent: 'Boto3/1 cfg/retry-mode#legacy' });
    expect(retryProfile(c)).toEqual({ sdk: 'botocore', mode: 'legacy', dynamodb: true });
    expect(retryProfile(c)).toBe(retryProfile({ ...c }));
  });
});

describe('retry models: event → [start, end] (§1)', () => {
  it('start-stamped SDKs add the latency; Go v1 stamps ends and subtracts it', () => {
    const a = apiCallAttempt({ service: 'S3', api: 'GetObject', timestamp: 1000, attemptLatency: 40 });
    expect([attemptStart(a), attemptEnd(a)]).toEqual([1000, 1040]);
    const g = { ...a, timestampMarksEnd: true, sdk: 'go-v1' as const };
    expect([attemptStart(g), attemptEnd(g)]).toEqual([960, 1000]);
    const c = apiCall({ service: 'S3', api: 'GetObject', timestamp: 1000, latency: 100 });
    expect([callStart(c), callEnd(c)]).toEqual([1000, 1100]);
    expect([callStart({ ...c, timestampMarksEnd: true }), callEnd({ ...c, timestampMarksEnd: true })]).toEqual([900, 1000]);
    // No latency: the far side stays open.
    expect(callEnd({ ...c, latency: undefined })).toBe(Infinity);
    expect(callStart({ ...c, latency: undefined, timestampMarksEnd: true })).toBe(-Infinity);
  });
});

describe('retry models: the delay before retry k (§2), per SDK', () => {
  const d = (p: RetryProfile, k: number, prev = failed()) => delayModel(p, k, prev);

  it('botocore legacy: DynamoDB exactly 50·2^(k-1) ms, other services rand()·2^(k-1) s', () => {
    expect(d(profile('botocore', 'legacy', true), 1)).toEqual([{ w: 1, lo: 50, hi: 50 }]);
    expect(d(profile('botocore', 'legacy', true), 3)).toEqual([{ w: 1, lo: 200, hi: 200 }]);
    expect(d(profile('botocore', 'legacy'), 3)).toEqual([{ w: 1, lo: 0, hi: 4000 }]);
  });

  it('botocore standard/adaptive: rand()·min(2^(k-1), 20) s', () => {
    expect(d(profile('botocore', 'standard'), 2)).toEqual([{ w: 1, lo: 0, hi: 2000 }]);
    expect(d(profile('botocore', 'adaptive'), 8)).toEqual([{ w: 1, lo: 0, hi: 20_000 }]);
  });

  it('JS v2: rand()·2^(k-1)·base, base 100 (DynamoDB 50)', () => {
    expect(d(profile('js-v2', 'legacy', true), 3)).toEqual([{ w: 1, lo: 0, hi: 200 }]);
    expect(d(profile('js-v2', 'legacy'), 1)).toEqual([{ w: 1, lo: 0, hi: 100 }]);
  });

  it('Go v1: 2^(k-1)·U[m, 2m), m 30 (DynamoDB 50), 500 after throttling codes and 429/502/503/504', () => {
    expect(d(profile('go-v1', 'legacy'), 1, failed(500))).toEqual([{ w: 1, lo: 30, hi: 60 }]);
    expect(d(profile('go-v1', 'legacy', true), 2, failed(500))).toEqual([{ w: 1, lo: 100, hi: 200 }]);
    expect(d(profile('go-v1', 'legacy', true), 1, failed(503))).toEqual([{ w: 1, lo: 500, hi: 1000 }]);
    expect(d(profile('go-v1', 'legacy', true), 3, failed(400, 'ThrottlingException'))).toEqual([{ w: 1, lo: 2000, hi: 4000 }]);
    expect(d(profile('go-v1', 'legacy'), 12, failed(503))).toEqual([{ w: 1, lo: 150_000, hi: 300_000 }]);
  });

  it('Ruby legacy exactly 0.3·2^(k-1) s (DynamoDB 50·2^(k-1) ms); standard min(rand()·2^(k-1), 20) s', () => {
    expect(d(profile('ruby-v3', 'legacy'), 3)).toEqual([{ w: 1, lo: 1200, hi: 1200 }]);
    expect(d(profile('ruby-v3', 'legacy', true), 2)).toEqual([{ w: 1, lo: 100, hi: 100 }]);
    expect(d(profile('ruby-v3', 'standard'), 2)).toEqual([{ w: 1, lo: 0, hi: 2000 }]);
  });

  it('Java v1: full jitter below min(100·2^(k-1), 20000) (DynamoDB 25); throttling [c/2, c], standard allowed', () => {
    expect(d(profile('java-v1', 'legacy'), 2)).toEqual([{ w: 1, lo: 0, hi: 200 }]);
    expect(d(profile('java-v1', 'legacy', true), 1)).toEqual([{ w: 1, lo: 0, hi: 25 }]);
    expect(d(profile('java-v1', 'legacy'), 2, failed(400, 'ThrottlingException'))).toEqual([
      { w: 0.8, lo: 500, hi: 1000 },
      { w: 0.2, lo: 0, hi: 200 },
    ]);
  });

  it('PHP: shifted, G_1 ≈ 0 and G_k holds d_(k-1)', () => {
    const p = profile('php-v3', 'legacy');
    expect(gapDelay(p, 1, failed())).toEqual([{ w: 1, lo: 0, hi: 0 }]);
    expect(gapDelay(p, 3, failed())).toEqual(delayModel(p, 2, failed()));
    expect(delayModel(p, 2, failed())).toEqual([{ w: 1, lo: 0, hi: 200 }]);
  });

  it('.NET legacy exactly 100·4^k ms (cap 30 s), DynamoDB 50·2^(k-1); unknown SDK: no model (wide only)', () => {
    expect(d(profile('dotnet', 'legacy'), 1)).toEqual([{ w: 1, lo: 400, hi: 400 }]);
    expect(d(profile('dotnet', 'legacy'), 4)).toEqual([{ w: 1, lo: 25_600, hi: 25_600 }]);
    expect(d(profile('dotnet', 'legacy'), 5)).toEqual([{ w: 1, lo: 30_000, hi: 30_000 }]);
    expect(d(profile('unknown', 'unknown'), 1)).toBeUndefined();
  });
});

describe('retry models: gap densities', () => {
  const p = profile('botocore', 'legacy', true);
  it('an exact delay is a narrow peak: inside it is far more probable than 30 ms off, which is still finite', () => {
    const inside = logGap(p, 1, failed(), 51);
    expect(inside).toBeGreaterThan(Math.log(0.1));
    const off = logGap(p, 1, failed(), 80);
    expect(off).toBeLessThan(inside - 5);
    expect(Number.isFinite(off)).toBe(true);
    expect(Number.isFinite(logGap(p, 1, failed(), -500))).toBe(true);
  });

  it('full jitter: the density is 1/B inside [0, B) and falls to the wide share beyond', () => {
    const js = profile('js-v2', 'legacy', true);
    expect(logGap(js, 1, failed(), 10)).toBeCloseTo(logGap(js, 1, failed(), 40), 6);
    expect(Math.exp(logGap(js, 1, failed(), 25))).toBeGreaterThan(0.8 / 65);
    expect(logGap(js, 1, failed(), 5_000)).toBeLessThan(Math.log(WIDE_SHARE) - 8);
  });

  it('Go: the lower bound is hard in practice (below it only the tails), windows of successive k do not overlap', () => {
    const go = profile('go-v1', 'legacy', true);
    const prev = failed(500);
    expect(gapFits(go, 1, prev, 60)).toBe(true);
    expect(gapFits(go, 1, prev, 20)).toBe(false);
    expect(gapFits(go, 2, prev, 60)).toBe(false);
    expect(logGap(go, 1, prev, 60) - logGap(go, 1, prev, 20)).toBeGreaterThan(5);
  });

  it('an unknown mode keeps its modes but more room for the wide bound; an unknown SDK gets the wide bound only', () => {
    const unknownMode = profile('botocore', 'unknown', true);
    expect(logGap(unknownMode, 1, failed(), 51)).toBeGreaterThan(logGap(unknownMode, 1, failed(), 400));
    expect(logGap(unknownMode, 1, failed(), 3_000)).toBeGreaterThan(logGap(p, 1, failed(), 3_000));
    const none = profile('unknown', 'unknown');
    expect(logGap(none, 1, failed(), 10)).toBeCloseTo(logGap(none, 1, failed(), 15_000), 6);
    expect(Number.isFinite(logGap(none, 1, failed(), 299_000))).toBe(true);
  });
});

describe('retry models: offsets and hard cues (§1, §4)', () => {
  it('first attempt 0-1 ms after its call (Go -1..1); later only by a tail, Ruby a long one', () => {
    const bc = profile('botocore', 'legacy');
    expect(logFirstOffset(bc, 0)).toBeCloseTo(logFirstOffset(bc, 1), 9);
    expect(logFirstOffset(bc, -1)).toBeLessThan(logFirstOffset(bc, 0) - 1);
    expect(logFirstOffset(profile('go-v1', 'legacy'), -1)).toBeCloseTo(logFirstOffset(profile('go-v1', 'legacy'), 0), 9);
    expect(logFirstOffset(bc, 100)).toBeLessThan(logFirstOffset(bc, 0) - 8);
    expect(logFirstOffset(profile('ruby-v3', 'legacy'), 120)).toBeGreaterThan(logFirstOffset(bc, 120) + 5);
  });

  it('last attempt ends with its call; JS v2 may end a few ms after it; PHP ends d_(n-1) early', () => {
    const bc = profile('botocore', 'legacy');
    expect(logLastOffset(bc, 0, 1, undefined)).toBeGreaterThan(logLastOffset(bc, 20, 1, undefined) + 3);
    expect(logLastOffset(profile('js-v2', 'legacy'), -6, 1, undefined)).toBeGreaterThan(logLastOffset(bc, -6, 1, undefined));
    const php = profile('php-v3', 'legacy');
    expect(logLastOffset(php, 150, 3, failed())).toBeCloseTo(logGap(php, 3, failed(), 150), 9);
  });

  it('Ruby: the last attempt ends −1, 0 or 1 ms before its call as likely (wall-clock stamps, monotonic latencies: the captures)', () => {
    const rb = profile('ruby-v3', 'legacy');
    expect(logLastOffset(rb, -1, 1, undefined)).toBeCloseTo(logLastOffset(rb, 1, 1, undefined), 9);
    expect(logLastOffset(rb, 0, 1, undefined)).toBeCloseTo(logLastOffset(rb, 1, 1, undefined), 9);
    expect(logLastOffset(rb, 3, 1, undefined)).toBeLessThan(logLastOffset(rb, 1, 1, undefined) - 2);
  });

  it('no offset is impossible, for any SDK, from 50 ms early to 10 s late (Go had none at 5-6 ms)', () => {
    const sdks: SdkFamily[] = ['botocore', 'js-v2', 'go-v1', 'ruby-v3', 'java-v1', 'php-v3', 'dotnet', 'unknown'];
    for (const sdk of sdks) {
      const p = profile(sdk, 'legacy');
      for (let d = -50; d <= 10_000; d += d < 200 ? 1 : 97) {
        expect(Number.isFinite(logFirstOffset(p, d)), `${sdk} first offset ${d}`).toBe(true);
        expect(Number.isFinite(logLastOffset(p, d, 1, undefined)), `${sdk} last offset ${d}`).toBe(true);
      }
    }
  });

  it('the last attempt carries the final outcome (exception families either way), Go the request id', () => {
    const c = apiCall({ service: 'S3', api: 'GetObject', timestamp: 0, finalHttpStatusCode: 404, finalAwsException: 'NoSuchKey' });
    const a = apiCallAttempt({ service: 'S3', api: 'GetObject', timestamp: 0, httpStatusCode: 404, sdkException: 'NoSuchKey' });
    expect(finalMatches(c, a)).toBe(true);
    expect(logLastCues(c, a)).toBe(0);
    expect(logLastCues(c, { ...a, httpStatusCode: 200 })).toBe(LN_CUE_BROKEN);
    expect(logLastCues({ ...c, xAmznRequestId: 'r1' }, { ...a, xAmznRequestId: 'r2' })).toBe(LN_CUE_BROKEN);
  });

  it('attempts before the last failed retryably; a success is a broken cue, a 404 unlikely, a throttle normal', () => {
    expect(logRetried(failed(503))).toBe(0);
    expect(logRetried(failed(400, 'ThrottlingException'))).toBe(0);
    expect(logRetried(failed(404, 'NotFound'))).toBeCloseTo(Math.log(0.05), 9);
    expect(logRetried({ ...failed(200), awsException: undefined })).toBe(LN_CUE_BROKEN);
  });

  it("Ruby's burst: the next datagram after the one before it is most likely; other SDKs carry no cue", () => {
    expect(logBurst('ruby-v3', 1)).toBeGreaterThan(logBurst('ruby-v3', 3));
    expect(logBurst('ruby-v3', -2)).toBeLessThan(logBurst('ruby-v3', 5));
    expect(logBurst('botocore', 7)).toBe(0);
  });
});

describe('retry models: every true chain of every shared capture', () => {
  for (const sc of scenarios()) {
    it(`${sc}: finite likelihood, every gap inside its SDK's window, and the best chain alone is never far better than the truth`, () => {
      const ev = decodeCapture(sc).map((d) => d.event);
      for (const t of readTruth(sc)) {
        if (t.api_call_line === null) continue;
        const c = ev[t.api_call_line] as CsmApiCall;
        const call: TimedCall = { ev: c, start: callStart(c), end: callEnd(c), want: c.attemptCount ?? 1, seq: t.api_call_line };
        const chain: TimedAttempt[] = t.attempt_lines
          .map((l) => ({ ev: ev[l] as CsmAttempt, start: attemptStart(ev[l] as CsmAttempt), end: attemptEnd(ev[l] as CsmAttempt), seq: l }))
          .sort((a, b) => a.start - b.start);
        const ll = chainLogLikelihood(call, chain);
        expect(Number.isFinite(ll), `call line ${t.api_call_line}`).toBe(true);
        const p = retryProfile(c);
        for (let k = 1; k < chain.length; k++) {
          const G = chain[k]!.start - chain[k - 1]!.end;
          expect(gapFits(p, k, chain[k - 1]!.ev, G), `call line ${t.api_call_line}: gap ${k} = ${G} ms`).toBe(true);
        }
        // Among its own attempts only, the DP finds the truth (or one as probable).
        const best = topChains(call, chain, 1)[0]!;
        expect(best.ll, `call line ${t.api_call_line}`).toBeGreaterThanOrEqual(ll - 1e-9);
      }
    });
  }
});
