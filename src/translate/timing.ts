/**
 * Span times from CSM's (otel-mapping.md §1.8): which end a Timestamp marks, latencies that
 * may be missing or bad, and children kept inside their parent. Every time is an epoch-ms
 * number derived from the events themselves, never from a clock.
 */
import type { CsmAttempt } from '../decode/types.js';
import type { SpanRecord } from './types.js';

/** A latency usable for timing: missing, negative or non-finite counts as 0. */
export function latencyMs(x: number | undefined): number {
  return x !== undefined && Number.isFinite(x) && x > 0 ? x : 0;
}

/** A latency usable as a metric value (seconds), or undefined when not reported. */
export function latencySeconds(x: number | undefined): number | undefined {
  return x !== undefined && Number.isFinite(x) && x >= 0 ? x / 1000 : undefined;
}

/** Start/end of an attempt: Go v1 stamps the end, everyone else the start. */
export function attemptWindow(a: CsmAttempt): { start: number; end: number } {
  const lat = latencyMs(a.attemptLatency);
  const start = a.timestampMarksEnd ? a.timestamp - lat : a.timestamp;
  return { start, end: start + lat };
}

function clamp(x: number, lo: number, hi: number): number {
  return x < lo ? lo : x > hi ? hi : x;
}

/** Move a span (and its events) inside [lo, hi], so rounding never draws a child outside its parent. */
export function clampSpan(span: SpanRecord, lo: number, hi: number): void {
  span.startMs = clamp(span.startMs, lo, hi);
  span.endMs = clamp(span.endMs, span.startMs, hi);
  for (const e of span.events) e.timeMs = clamp(e.timeMs, span.startMs, span.endMs);
}
