/**
 * Span and event times as the OTel SDK turns them into HrTime: core's millisToHrTime (epoch
 * ms → [seconds, nanoseconds]) and SpanImpl.end's clamp of an end before the start. Both
 * wire encodings take their times from here, so both round the same way the SDK does.
 */

/** [start s, start ns, end s, end ns] of the span being written (reused: nothing allocated per span). */
export const spanTimes = new Float64Array(4);

/** Epoch ms → spanTimes, the end clamped to the start as SpanImpl.end does. */
export function splitSpanTimes(startMs: number, endMs: number): void {
  // hrSeconds / hrNanos written out: this runs inside the span writers, past V8's inlining budget
  const ss = Math.trunc(startMs / 1000);
  const sn = Math.round((startMs % 1000) * 1e6);
  let es = Math.trunc(endMs / 1000);
  let en = Math.round((endMs % 1000) * 1e6);
  if ((en - sn < 0 ? es - ss - 1 : es - ss) < 0) {
    es = ss;
    en = sn;
  }
  spanTimes[0] = ss;
  spanTimes[1] = sn;
  spanTimes[2] = es;
  spanTimes[3] = en;
}

/** millisToHrTime(ms)[0] */
export function hrSeconds(ms: number): number {
  return Math.trunc(ms / 1000);
}

/** millisToHrTime(ms)[1] */
export function hrNanos(ms: number): number {
  return Math.round((ms % 1000) * 1e6);
}
