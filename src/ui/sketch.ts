/**
 * A fixed-size latency sketch: log-scale histogram buckets, 8 per power of two
 * (each bucket spans ≈ 9 %), from 1 ms to 2^24 ms (≈ 4.7 h), plus a bucket for
 * 0 ms. Memory is constant whatever the traffic; percentiles are exact to the
 * bucket, reported as the bucket's geometric midpoint (clamped to the observed
 * min / max), so the error is under 5 %.
 */
const PER_OCTAVE = 8;
const OCTAVES = 24;
export const SKETCH_BUCKETS = 1 + PER_OCTAVE * OCTAVES + 1;

export class LatencySketch {
  private readonly counts = new Uint32Array(SKETCH_BUCKETS);
  count = 0;
  min = Infinity;
  max = -Infinity;

  add(ms: number): void {
    this.addToBucket(bucketOf(ms), ms);
  }

  /** add(ms) with bucketOf(ms) already known (one value added to several sketches). */
  addToBucket(bucket: number, ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) return;
    this.counts[bucket]!++;
    this.count++;
    if (ms < this.min) this.min = ms;
    if (ms > this.max) this.max = ms;
  }

  merge(o: LatencySketch): void {
    for (let i = 0; i < SKETCH_BUCKETS; i++) this.counts[i]! += o.counts[i]!;
    this.count += o.count;
    if (o.min < this.min) this.min = o.min;
    if (o.max > this.max) this.max = o.max;
  }

  reset(): void {
    this.counts.fill(0);
    this.count = 0;
    this.min = Infinity;
    this.max = -Infinity;
  }

  /** q in [0, 1]; undefined when empty. */
  quantile(q: number): number | undefined {
    return this.quantileSince(q, undefined, 0);
  }

  /**
   * q in [0, 1] of what was added since `base` was copied from this sketch (copyCounts) when it
   * held `baseCount` values; undefined when nothing was. Clamped to the whole sketch's min / max.
   */
  quantileSince(q: number, base: Uint32Array | undefined, baseCount: number): number | undefined {
    const n = this.count - baseCount;
    if (n <= 0) return undefined;
    const rank = Math.max(1, Math.ceil(q * n));
    let seen = 0;
    for (let i = 0; i < SKETCH_BUCKETS; i++) {
      seen += this.counts[i]! - (base === undefined ? 0 : base[i]!);
      if (seen >= rank) return Math.min(this.max, Math.max(this.min, midpoint(i)));
    }
    return this.max;
  }

  /** The bucket counts into `into` (SKETCH_BUCKETS long), for quantileSince. */
  copyCounts(into: Uint32Array): void {
    into.set(this.counts);
  }
}

export function bucketOf(ms: number): number {
  if (ms < 1) return 0;
  const i = 1 + Math.floor(Math.log2(ms) * PER_OCTAVE);
  return i >= SKETCH_BUCKETS ? SKETCH_BUCKETS - 1 : i;
}

function midpoint(i: number): number {
  if (i === 0) return 0;
  const lo = 2 ** ((i - 1) / PER_OCTAVE);
  const hi = 2 ** (i / PER_OCTAVE);
  return Math.sqrt(lo * hi);
}
