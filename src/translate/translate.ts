/**
 * translate: one correlated ApiCall (or orphan attempt) → span tree + metric points, as plain
 * records (otel-mapping.md §1, §2). The orchestrator; one file per aspect:
 *
 * - `call.ts`, `attempt.ts`, `orphan.ts`: the three things correlation hands on;
 * - `attributes.ts`: attribute groups several of them write (RPC identity, request ids,
 *   endpoint, error.type, the base of the csm.* metric points);
 * - `error-type.ts` (§1.6, §1.7), `timing.ts` (§1.8), `names.ts` (§1.2);
 * - `keys.ts` (attribute keys without a semconv constant), `instruments.ts` (the metric
 *   instruments, shared with export), `types.ts` (the records).
 *
 * Pure: no I/O, no clock, no shared mutable state but a bounded memo of normalised names
 * (`namesOf`), which never changes an output.
 */
import type { Correlated } from '../correlate/types.js';
import type { TranslateOptions } from './attributes.js';
import { translateCall } from './call.js';
import { translateOrphan } from './orphan.js';
import type { Translation } from './types.js';

export type { TranslateOptions } from './attributes.js';

/** Turn one correlated call (with its attempts) or one orphan attempt into span records and metric points. */
export function translate(c: Correlated, opts: TranslateOptions): Translation {
  return c.kind === 'call' ? translateCall(c.call, c.attempts, c.missingAttempts, opts, c.ambiguous) : translateOrphan(c.attempt, c.reason, opts);
}
