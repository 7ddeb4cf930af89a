/**
 * Retry models: how each SDK spaces the attempts of one call, as log-densities
 * (`sdk-retry-models.md`, read from each SDK's source).
 *
 * CSM has no call id, so under concurrency the only evidence that links an
 * attempt to its call is *when* it happened: the first attempt starts just
 * after the call, the last ends with it, and between a failed attempt and the
 * next the SDK sleeps a delay drawn from a documented distribution: exact for
 * botocore-DynamoDB legacy, Ruby legacy and .NET legacy, bounded from below
 * for Go v1 (and Java throttling), full jitter from zero elsewhere. Scoring a
 * candidate chain by how probable its SDK makes it separates twin calls where
 * the model is sharp, and says honestly where it is not.
 *
 * Nothing here is "impossible": a model can be wrong (custom backoff, the
 * 2026 opt-in retries, a GC pause), so every density keeps a small share for
 * a wide upper bound (`WIDE_SHARE`), and an SDK or mode that cannot be told
 * from the UserAgent gets that wide bound alone. Log-densities are per ms.
 */
import type { CsmApiCall, CsmAttempt, CsmEvent, SdkFamily } from '../decode/types.js';

// ---------------------------------------------------------------- §1: [start, end] of an event

/** Start of an attempt: Go v1 stamps the end (start = Timestamp − AttemptLatency). */
export function attemptStart(a: CsmAttempt): number {
  return a.timestampMarksEnd ? a.timestamp - (a.attemptLatency ?? 0) : a.timestamp;
}

export function attemptEnd(a: CsmAttempt): number {
  return a.timestampMarksEnd ? a.timestamp : a.timestamp + (a.attemptLatency ?? 0);
}

/** Start of a call; an unknown latency leaves the far side open. */
export function callStart(c: CsmApiCall): number {
  if (!c.timestampMarksEnd) return c.timestamp;
  return c.latency === undefined ? -Infinity : c.timestamp - c.latency;
}

export function callEnd(c: CsmApiCall): number {
  if (c.timestampMarksEnd) return c.timestamp;
  return c.latency === undefined ? Infinity : c.timestamp + c.latency;
}

// ---------------------------------------------------------------- §3: SDK and retry mode

/** `legacy` also names the only model of SDKs that have one (JS v2, Go v1). */
export type RetryMode = 'legacy' | 'standard' | 'adaptive' | 'unknown';

/** What the delay model of a call depends on besides `k` and the previous attempt. */
export interface RetryProfile {
  sdk: SdkFamily;
  mode: RetryMode;
  /** DynamoDB has its own bases in botocore, JS v2, Go v1, Ruby, Java, PHP and .NET. */
  dynamodb: boolean;
}

/** `m/` feature letters of the SDK user-agent 2.1 format: D legacy, E standard, F adaptive. */
function modeFromMetrics(ua: string): RetryMode | undefined {
  const m = /(?:^|\s)m\/([A-Za-z0-9+,-]*)/.exec(ua);
  if (m === null) return undefined;
  const letters = m[1]!.split(',');
  if (letters.includes('F')) return 'adaptive';
  if (letters.includes('E')) return 'standard';
  if (letters.includes('D')) return 'legacy';
  return undefined;
}

/** The retry mode a call's UserAgent announces (§3). */
export function retryMode(sdk: SdkFamily, userAgent: string | undefined): RetryMode {
  const ua = userAgent ?? '';
  switch (sdk) {
    case 'botocore': {
      const m = /cfg\/retry-mode#(legacy|standard|adaptive)/.exec(ua);
      // CSM cuts UserAgent at 256 characters: the cfg/ part is often gone, the m/ letters less often.
      return m !== null ? (m[1] as RetryMode) : (modeFromMetrics(ua) ?? 'unknown');
    }
    case 'ruby-v3':
    case 'php-v3':
    case 'dotnet':
      // Newer cores add the letters; none means the default (legacy).
      return modeFromMetrics(ua) ?? 'legacy';
    case 'js-v2':
    case 'go-v1':
      return 'legacy';
    case 'java-v1':
      // Not in CSM: legacy is the default, standard is allowed for (see `delayModel`).
      return 'legacy';
    default:
      return 'unknown';
  }
}

const PROFILE_CACHE_MAX = 512;
const profileCache = new Map<string, RetryProfile>();

/** The profile of a call (cached per SDK, service and UserAgent: the UserAgent is parsed once). */
export function retryProfile(e: CsmEvent): RetryProfile {
  const key = `${e.sdk}\u0000${e.service}\u0000${e.userAgent ?? ''}`;
  let p = profileCache.get(key);
  if (p === undefined) {
    if (profileCache.size >= PROFILE_CACHE_MAX) profileCache.clear();
    p = { sdk: e.sdk, mode: retryMode(e.sdk, e.userAgent), dynamodb: e.service === 'DynamoDB' || e.service === 'dynamodb' };
    profileCache.set(key, p);
  }
  return p;
}

// ---------------------------------------------------------------- §2: the delay before retry k

/** A share `w` of a uniform delay on [lo, hi] ms (lo = hi: an exact delay). */
export interface DelayPart {
  w: number;
  lo: number;
  hi: number;
}

/** The longest gap a model considers (the attempt hold is 5 minutes by default). */
const MAX_GAP_MS = 300_000;
/** The wide upper bound of an unknown model: full jitter below 20 s·2^(k−1), at most MAX_GAP_MS. */
function wideBound(k: number): number {
  return Math.min(MAX_GAP_MS, 20_000 * 2 ** Math.min(k - 1, 16));
}
/** Share of every known model left to the wide bound: custom backoffs, the 2026 opt-in, pauses. */
export const WIDE_SHARE = 1e-3;
/** A known SDK whose mode is not in its UserAgent: its modes, and this much more for the wide bound. */
const UNKNOWN_MODE_WIDE_SHARE = 0.05;

const THROTTLE_CODES: ReadonlySet<string> = new Set([
  'Throttling', 'ThrottlingException', 'ThrottledException', 'RequestThrottledException', 'TooManyRequestsException',
  'ProvisionedThroughputExceededException', 'TransactionInProgressException', 'RequestLimitExceeded',
  'BandwidthLimitExceeded', 'LimitExceededException', 'RequestThrottled', 'SlowDown', 'PriorRequestNotComplete',
  'EC2ThrottledException',
]);

function isThrottle(a: CsmAttempt): boolean {
  return (a.awsException !== undefined && THROTTLE_CODES.has(a.awsException)) ||
    (a.sdkException !== undefined && THROTTLE_CODES.has(a.sdkException));
}

/** Go v1's DefaultRetryer takes the throttle delay for throttle codes and these statuses. */
function goThrottled(a: CsmAttempt): boolean {
  const s = a.httpStatusCode;
  return isThrottle(a) || s === 429 || s === 502 || s === 503 || s === 504;
}

const exact = (d: number): DelayPart[] => [{ w: 1, lo: d, hi: d }];
const jitter = (hi: number): DelayPart[] => [{ w: 1, lo: 0, hi }];
const pow2 = (k: number): number => 2 ** Math.min(k - 1, 30);

/**
 * The SDK's delay d_k (ms) before retry k (k = 1: the first retry), after an
 * attempt that failed like `prev`, in the SDK's own terms (§2); undefined:
 * the wide bound only.
 */
export function delayModel(p: RetryProfile, k: number, prev: CsmAttempt): DelayPart[] | undefined {
  const ddb = p.dynamodb;
  switch (p.sdk) {
    case 'botocore':
      if (p.mode === 'legacy') return ddb ? exact(50 * pow2(k)) : jitter(1000 * pow2(k));
      if (p.mode === 'standard' || p.mode === 'adaptive') return jitter(1000 * Math.min(pow2(k), 20));
      // Mode cut off the UserAgent: either.
      return [
        ...(ddb ? exact(50 * pow2(k)) : jitter(1000 * pow2(k))).map((x) => ({ ...x, w: 0.5 })),
        { w: 0.5, lo: 0, hi: 1000 * Math.min(pow2(k), 20) },
      ];
    case 'js-v2':
      return jitter((ddb ? 50 : 100) * pow2(k));
    case 'go-v1': {
      if (k > 30) return [{ w: 1, lo: 150_000, hi: 300_000 }];
      const m = goThrottled(prev) ? 500 : ddb ? 50 : 30;
      const lo = pow2(k) * m;
      return lo >= 300_000 ? [{ w: 1, lo: 150_000, hi: 300_000 }] : [{ w: 1, lo, hi: 2 * lo }];
    }
    case 'ruby-v3':
      if (p.mode === 'legacy') return exact((ddb ? 50 : 300) * pow2(k));
      return jitter(Math.min(1000 * pow2(k), 20_000));
    case 'java-v1': {
      const base = ddb ? 25 : 100;
      const full = jitter(Math.min(base * pow2(k), 20_000));
      if (!isThrottle(prev) && prev.httpStatusCode !== 429) return full;
      const c = Math.min(500 * pow2(k), 20_000);
      // Legacy throttling waits [c/2, c]; standard (allowed: not in CSM) full jitter.
      return [{ w: 0.8, lo: c / 2, hi: c }, { w: 0.2, lo: 0, hi: full[0]!.hi }];
    }
    case 'php-v3':
      // Shifted (see `gapDelay`): this is d_k itself.
      if (p.mode === 'legacy') {
        if (ddb) return k === 1 ? exact(0) : [{ w: 0.5, lo: 50 * pow2(k - 1), hi: 50 * pow2(k - 1) }, { w: 0.5, lo: 0, hi: 100 * pow2(k) }];
        return jitter(Math.min(20_000, 100 * pow2(k)));
      }
      return jitter(Math.min(1000 * 2 ** Math.min(k, 30), 20_000));
    case 'dotnet':
      if (p.mode === 'legacy') return exact(ddb ? 50 * pow2(k) : Math.min(100 * 4 ** Math.min(k, 8), 30_000));
      return jitter(Math.min(1000 * pow2(k), 20_000));
    default:
      return undefined;
  }
}

/**
 * The delay that shows as gap G_k (start of attempt k+1 − end of attempt k).
 * PHP stamps an attempt before its retry sleep, so its G_k holds d_(k−1) and
 * G_1 ≈ 0 (its last attempt ends d_(n−1) before the call does).
 */
export function gapDelay(p: RetryProfile, k: number, prev: CsmAttempt): DelayPart[] | undefined {
  if (p.sdk === 'php-v3') return k === 1 ? exact(0) : delayModel(p, k - 1, prev);
  return delayModel(p, k, prev);
}

/**
 * Measurement noise around a delay: timestamps and latencies are whole ms
 * (truncated: ±2–3 ms), plus the SDK's own work between the sleep and the next
 * stamp (re-signing, parsing; more under load).
 */
const EARLY_SLACK_MS = 3;
function lateSlack(sdk: SdkFamily, hi: number): number {
  // JS v2's gap holds event-loop lag; Ruby re-signs (and may refresh credentials); .NET timers tick at ~15.6 ms.
  const base = sdk === 'js-v2' ? 10 : sdk === 'ruby-v3' ? 8 : sdk === 'dotnet' ? 16 : 5;
  return base + hi * 0.02;
}
/** Beyond the slack, a short exponential tail (a GC or scheduling pause), both sides. */
const TAIL_SHARE_LATE = 0.02;
const TAIL_SHARE_EARLY = 0.005;
const TAIL_EARLY_SCALE_MS = 2;

/** ln of a uniform-plus-tails density on [lo, hi] widened by slack, at x (per ms). */
function softUniform(x: number, lo: number, hi: number, early: number, late: number, lateScale: number): number {
  const a = lo - early;
  const b = hi + late;
  const core = 1 - TAIL_SHARE_LATE - TAIL_SHARE_EARLY;
  if (x >= a && x <= b) return core / (b - a);
  if (x > b) return (TAIL_SHARE_LATE / lateScale) * Math.exp(-(x - b) / lateScale);
  return (TAIL_SHARE_EARLY / TAIL_EARLY_SCALE_MS) * Math.exp(-(a - x) / TAIL_EARLY_SCALE_MS);
}

/** Density of the wide bound for gap k, at G. */
function wideDensity(k: number, G: number): number {
  const B = wideBound(k);
  return softUniform(G, 0, B, EARLY_SLACK_MS, 0.01 * B, 0.1 * B);
}

/** ln density of observing gap `G` ms before retry `k` after `prev`, under the call's profile. */
export function logGap(p: RetryProfile, k: number, prev: CsmAttempt, G: number): number {
  const parts = p.sdk === 'unknown' ? undefined : gapDelay(p, k, prev);
  if (parts === undefined) return Math.log(wideDensity(k, G));
  let d = 0;
  for (const part of parts) {
    const late = lateSlack(p.sdk, part.hi);
    d += part.w * softUniform(G, part.lo, part.hi, EARLY_SLACK_MS, late, Math.max(10, 0.05 * part.hi));
  }
  const wide = p.mode === 'unknown' ? UNKNOWN_MODE_WIDE_SHARE : WIDE_SHARE;
  return Math.log((1 - wide) * d + wide * wideDensity(k, G));
}

/** True when G lies inside the model's own window (its slack included): what "fits the model" means in tests. */
export function gapFits(p: RetryProfile, k: number, prev: CsmAttempt, G: number): boolean {
  const parts = p.sdk === 'unknown' ? undefined : gapDelay(p, k, prev);
  if (parts === undefined) return G >= -EARLY_SLACK_MS && G <= wideBound(k);
  return parts.some((x) => G >= x.lo - EARLY_SLACK_MS && G <= x.hi + lateSlack(p.sdk, x.hi));
}

// ---------------------------------------------------------------- §1: first and last offsets

/**
 * An offset of whole (truncated) ms: `inner` of the mass on the `width` values
 * from `lo` (what "0–1 ms" looks like after truncation: two values; three
 * where both ends are truncated), `outer` spread over the rest of the length
 * of [−3, late] (late + 3 − width ms), an
 * exponential tail of `scale` ms after it holding what is left but `early`,
 * and `early` before −3 (clock rounding only; 3 ms scale); as ln density. No
 * value is impossible.
 */
function logOffsetDensity(d: number, lo: number, width: number, inner: number, outer: number, late: number, scale: number, early: number): number {
  if (d >= lo && d <= lo + width - 1) return Math.log(inner / width);
  if (d >= -EARLY_SLACK_MS && d <= late) return Math.log(outer / (EARLY_SLACK_MS + late - width));
  // In ln units: the tails' exponentials would underflow to 0 seconds away.
  if (d > late) return Math.log((1 - inner - outer - early) / scale) - (d - late) / scale;
  return Math.log(early / 3) + (d + EARLY_SLACK_MS) / 3;
}

/**
 * Where "0–1 ms after" lands once truncated: a start-stamped SDK stamps the
 * attempt after the call on one clock (0 or 1); Go derives both starts by
 * subtracting a truncated latency from a truncated end (−1 … 1).
 */
function innerLo(p: RetryProfile): number {
  return p.sdk === 'go-v1' || p.sdk === 'unknown' ? -1 : 0;
}

/**
 * ln density of the first attempt starting `d` ms after its call: 0–1 ms
 * measured (p99 ≤ 7 ms), Ruby up to ~170 ms (it stamps after signing and
 * credential refresh); before the call only by clock rounding.
 */
export function logFirstOffset(p: RetryProfile, d: number): number {
  // Go: three values, −1 … 1 (both starts are derived from truncated ends and latencies).
  if (p.sdk === 'go-v1' || p.sdk === 'unknown') return logOffsetDensity(d, -1, 3, 0.8, 0.12, EARLY_SLACK_MS, 10, 0.002);
  if (p.sdk === 'ruby-v3') return logOffsetDensity(d, innerLo(p), 2, 0.5, 0.1, EARLY_SLACK_MS, 80, 0.002);
  return logOffsetDensity(d, innerLo(p), 2, 0.8, 0.12, EARLY_SLACK_MS, 10, 0.002);
}

/**
 * ln density of the last attempt ending `e` ms before its call ends: 0–1 ms
 * measured; JS v2 up to ~10 ms after (it repeats a previous AttemptLatency when
 * a retry got no response); Ruby a few ms either way (wall-clock stamps,
 * monotonic latencies). PHP's last attempt ends d_(n−1) early (shifted).
 */
export function logLastOffset(p: RetryProfile, e: number, n: number, prevOfLast: CsmAttempt | undefined): number {
  if (p.sdk === 'php-v3' && n > 1 && prevOfLast !== undefined) return logGap(p, n, prevOfLast, e);
  // Ruby, measured on the 67 captured calls: −1 ms 19 %, 0 ms 43 %, 1 ms 25 %, 2 ms 7 %, 3–6 ms 4 %.
  if (p.sdk === 'ruby-v3' || p.sdk === 'unknown') return logOffsetDensity(e, -1, 3, 0.85, 0.12, 7, 5, 0.02);
  if (p.sdk === 'js-v2') return logOffsetDensity(e, -1, 2, 0.8, 0.12, EARLY_SLACK_MS, 5, 0.05);
  return logOffsetDensity(e, 0, 2, 0.8, 0.12, EARLY_SLACK_MS, 5, 0.01);
}

// ---------------------------------------------------------------- §4: hard cues

/** ln probability of a cue the SDK guarantees being broken (a dropped event, a clock jump). */
export const LN_CUE_BROKEN = Math.log(1e-4);
/** ln probability per attempt the call counted (AttemptCount) but the chain lacks. */
export const LN_MISSING_ATTEMPT = -20;

export function succeeded(a: CsmAttempt): boolean {
  return a.httpStatusCode !== undefined && a.httpStatusCode >= 200 && a.httpStatusCode < 300 &&
    a.awsException === undefined && a.sdkException === undefined;
}

/** A 4xx the SDKs do not retry (bad request, not found, access denied …): unlikely before a retry. */
function notRetryable(a: CsmAttempt): boolean {
  const s = a.httpStatusCode;
  if (s === undefined || s < 400 || s >= 500 || s === 429 || s === 408) return false;
  if (isThrottle(a)) return false;
  // Expired credentials and clock skew are retried after a refresh.
  const x = `${a.awsException ?? ''} ${a.sdkException ?? ''}`;
  return !/Expired|Skew|RequestTimeTooSkewed|IDPCommunication|InvalidSignature|Timeout/i.test(x);
}

/** ln probability that `a` was followed by a retry (every attempt but the last failed, retryably). */
export function logRetried(a: CsmAttempt): number {
  if (succeeded(a)) return LN_CUE_BROKEN;
  return notRetryable(a) ? Math.log(0.05) : 0;
}

/** The call's Final* fields are its last attempt's (exception families compared either way: Ruby swaps them). */
export function finalMatches(c: CsmApiCall, a: CsmAttempt): boolean {
  if (c.finalHttpStatusCode !== a.httpStatusCode) return false;
  const x1 = c.finalAwsException;
  const x2 = c.finalSdkException;
  const y1 = a.awsException;
  const y2 = a.sdkException;
  return (x1 === y1 && x2 === y2) || (x1 === y2 && x2 === y1);
}

/** ln probability of the cues tying `a` as the last attempt to `c`: final outcome, Go's request id. */
export function logLastCues(c: CsmApiCall, a: CsmAttempt): number {
  let ll = finalMatches(c, a) ? 0 : LN_CUE_BROKEN;
  // Go v1: the ApiCall's request id is its final attempt's (one without a response repeats the previous id).
  if (c.xAmznRequestId !== undefined && a.xAmznRequestId !== c.xAmznRequestId) ll += LN_CUE_BROKEN;
  if (c.xAmzRequestId !== undefined && a.xAmzRequestId !== c.xAmzRequestId) ll += LN_CUE_BROKEN;
  return ll;
}

/** ln probability of the cues tying any attempt `a` at position `pos` (1-based) to `c`. */
export function logAttemptCues(c: CsmApiCall, a: CsmAttempt, pos: number): number {
  let ll = a.userAgent === c.userAgent ? 0 : LN_CUE_BROKEN;
  // Some Go v1 releases number attempts.
  if (a.attemptNumber !== undefined && a.attemptNumber !== pos) ll += LN_CUE_BROKEN;
  return ll;
}

/**
 * Ruby sends a call's datagrams as one burst at call end, the ApiCall first
 * and then attempts 1..N back to back: ln probability that an attempt arrives
 * `d` datagrams after the one before it in its chain (the ApiCall for the
 * first). Threads may interleave their bursts, so later is only less likely;
 * earlier is rare. Other SDKs: no cue (0).
 */
export function logBurst(sdk: SdkFamily, d: number): number {
  if (sdk !== 'ruby-v3') return 0;
  if (d === 1) return Math.log(0.7);
  if (d > 1) return Math.log(0.29 * 0.5) + (d - 2) * Math.log(0.5);
  return Math.log(0.01);
}
