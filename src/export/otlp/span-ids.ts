/**
 * Trace and span ids: random bytes drawn from a pooled buffer (one crypto.randomFillSync per
 * 4 KiB instead of one per id), never all zero (an invalid id in OTLP and W3C trace context:
 * such a draw is skipped).
 *
 * The serializers write ids straight into their output; the source of random bytes can be
 * injected so tests get the same ids from two batches.
 */
import { randomFillSync } from 'node:crypto';

const POOL_BYTES = 4096;
export const TRACE_ID_BYTES = 16;
export const SPAN_ID_BYTES = 8;
/** A tree's trace id and its root's span id (nextTree). */
export const TREE_ID_BYTES = TRACE_ID_BYTES + SPAN_ID_BYTES;

export class SpanIds {
  private readonly pool = new Uint8Array(POOL_BYTES);
  private pos = POOL_BYTES;

  constructor(private readonly randomFill: (buf: Uint8Array) => void = (b) => randomFillSync(b)) {}

  /** A new tree's ids into `dst`: its trace id at 0, its root's span id at TRACE_ID_BYTES. */
  nextTree(dst: Uint8Array): void {
    this.next(dst, 0, TRACE_ID_BYTES);
    this.nextSpanId(dst, TRACE_ID_BYTES);
  }

  /** A span id into `dst` at `off`. */
  nextSpanId(dst: Uint8Array, off: number): void {
    this.next(dst, off, SPAN_ID_BYTES);
  }

  /** Fills `len` bytes of `dst` at `off` with a random id that is not all zero. */
  private next(dst: Uint8Array, off: number, len: number): void {
    const pool = this.pool;
    for (;;) {
      if (this.pos + len > POOL_BYTES) {
        this.randomFill(pool);
        this.pos = 0;
      }
      const p = this.pos;
      this.pos = p + len;
      let any = 0;
      for (let i = 0; i < len; i++) any |= dst[off + i] = pool[p + i]!;
      if (any !== 0) return;
    }
  }
}
