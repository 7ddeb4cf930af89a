/**
 * A translated CSM call, joined to the application's own span of it → the spans to export
 * inside the application's trace (docs/app-traces.md). Pure.
 *
 * - The attempts hang directly below the app's SDK span: same trace id, the app span as their
 *   parent. The bridge's own call span is not exported: the app span *is* the logical call
 *   (semconv RPC: one span covering all retries), and a second one would be the duplication the
 *   ecosystem suppresses (../shared/app-trace-join.md §2).
 * - The call-level facts CSM alone knows (attempt count, retries exhausted, the call's final
 *   exception, missing or ambiguous attempts, the ClientId) go onto the last attempt span under
 *   the keys a standalone call span uses, so one query finds them either way. Metrics are
 *   recorded from the call as always.
 * - An attempt the app already has as a span of its own (Ruby's INTERNAL `Handler.NetHttp`, an
 *   HTTP span with a captured request-id header) is not exported again; the other attempts hang
 *   beside it, under its parent.
 * - Attempt kind: INTERNAL by default (the AWS SDKs' own attempt layers are INTERNAL; CLIENT
 *   children of a CLIENT span are counted twice by span metrics and service graphs), CLIENT with
 *   `--app-join-attempt-kind client`.
 */
import { ATTR_USER_AGENT_ORIGINAL } from '../translate/semconv.js';
import type { Correlated } from '../correlate/types.js';
import type { CsmAttempt } from '../decode/types.js';
import { nonEmpty, requestIdOf } from '../translate/attributes.js';
import {
  CSM_ATTEMPT_COUNT,
  CSM_ATTEMPTS_MISSING,
  CSM_CLIENT_ID,
  CSM_MATCH_AMBIGUOUS_ATTEMPTS,
  CSM_MAX_RETRIES_EXCEEDED,
  CSM_SUCCEEDED_ON_LAST_ALLOWED_ATTEMPT,
} from '../translate/keys.js';
import type { RemoteParent } from '../export/otlp/span-serializer.js';
import type { Attributes, SpanRecord, Translation } from '../translate/types.js';
import type { AppSpan } from './app-span.js';

/** `csm.join` on every joined span: how it was joined. */
export const CSM_JOIN = 'csm.join';
export const CSM_JOIN_REQUEST_ID = 'request_id';

/** Keys of the call span copied onto the last attempt: what only the call knows. */
const CALL_FACTS: readonly string[] = [
  CSM_CLIENT_ID,
  CSM_ATTEMPT_COUNT,
  CSM_MAX_RETRIES_EXCEEDED,
  CSM_SUCCEEDED_ON_LAST_ALLOWED_ATTEMPT,
  CSM_ATTEMPTS_MISSING,
  CSM_MATCH_AMBIGUOUS_ATTEMPTS,
  ATTR_USER_AGENT_ORIGINAL,
];

/** Where joined spans go: the app's trace, below one of its spans, under the app's resource. */
export interface JoinedTree {
  /** The app span the spans hang below (the SDK call span, or an attempt span's parent). */
  readonly parent: RemoteParent;
  /** The app span the call joined (its resource is the spans' resource). */
  readonly app: AppSpan;
  /** The attempt spans to export (possibly none: the app had every attempt already). */
  readonly spans: SpanRecord[];
}

/** Every request id of a call's attempts, per attempt (and the call's own, Go v1), for the index. */
export function attemptIds(c: Correlated): string[][] {
  const attempts: readonly CsmAttempt[] = c.kind === 'call' ? c.attempts : [c.attempt];
  const out: string[][] = [];
  for (const a of attempts) {
    const ids: string[] = [];
    const id = requestIdOf(a);
    if (id !== undefined) ids.push(id);
    const ext = nonEmpty(a.xAmzId2);
    if (ext !== undefined) ids.push(ext);
    out.push(ids);
  }
  if (c.kind === 'call') {
    const own = requestIdOf(c.call);
    if (own !== undefined && out.length > 0 && !out[out.length - 1]!.includes(own)) out[out.length - 1]!.push(own);
  }
  return out;
}

/**
 * The joined spans, given the app span found for the call (`call`, a logical span; or undefined)
 * and, per attempt, the attempt-level app span found for it. undefined when nothing joins.
 */
export function joinedTree(
  t: Translation,
  call: AppSpan | undefined,
  attemptLevel: readonly (AppSpan | undefined)[],
  kind: 'client' | 'internal',
): JoinedTree | undefined {
  const sibling = attemptLevel.find((s) => s !== undefined && s.parentSpanId.length === 8);
  const app = call ?? sibling;
  if (app === undefined) return undefined;
  const parentSpanId = call !== undefined ? call.spanId : sibling!.parentSpanId;
  // An orphan attempt is its own root; a call's attempts are its children.
  const attempts = t.span.children.length > 0 ? t.span.children : [t.span];
  const spans: SpanRecord[] = [];
  for (let i = 0; i < attempts.length; i++) {
    if (attemptLevel[i] !== undefined) continue; // the app has this attempt already
    const a = attempts[i]!;
    spans.push({ ...a, kind, attributes: { ...a.attributes, [CSM_JOIN]: CSM_JOIN_REQUEST_ID }, children: [] });
  }
  const last = spans[spans.length - 1];
  if (last !== undefined && t.span.children.length > 0) {
    const facts: Attributes = {};
    for (const k of CALL_FACTS) if (t.span.attributes[k] !== undefined) facts[k] = t.span.attributes[k]!;
    Object.assign(last.attributes, facts);
    // The call's own failure (ApiCallTimeout, an SDK error after the last attempt) when the attempt has none.
    if (last.events.length === 0 && t.span.events.length > 0) last.events = [...t.span.events];
  }
  return { parent: { traceId: app.traceId, spanId: parentSpanId, traceState: app.traceState }, app, spans };
}
