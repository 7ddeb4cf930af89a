/**
 * An attempt no ApiCall claimed (hold expired, pending cap, shutdown) → a root span of its own
 * (otel-mapping.md §1.9): it carries what its missing parent would have carried.
 */
import { ATTR_USER_AGENT_ORIGINAL } from './semconv.js';
import type { Correlated } from '../correlate/types.js';
import type { CsmAttempt } from '../decode/types.js';
import { translateAttempt } from './attempt.js';
import { nonEmpty, rpcAttributes, type TranslateOptions } from './attributes.js';
import { CSM_CLIENT_ID, CSM_ORPHAN, CSM_ORPHAN_REASON } from './keys.js';
import { operationOf } from './names.js';
import type { Attributes, Translation } from './types.js';

export type OrphanReason = Extract<Correlated, { kind: 'orphan' }>['reason'];

export function translateOrphan(a: CsmAttempt, reason: OrphanReason, opts: TranslateOptions): Translation {
  const op = operationOf(a);
  // The position among the call's attempts is unknown, so the attempt number
  // is set only when the SDK sent one (some Go v1 releases).
  const r = translateAttempt(a, a.attemptNumber, op, opts);
  // A root span: no parent carries the RPC identity, user agent or client id,
  // so they go on the orphan itself.
  const attributes: Attributes = { ...rpcAttributes(op, opts), ...r.span.attributes };
  const userAgent = nonEmpty(a.userAgent);
  if (userAgent !== undefined) attributes[ATTR_USER_AGENT_ORIGINAL] = userAgent;
  attributes[CSM_CLIENT_ID] = a.clientId;
  attributes[CSM_ORPHAN] = true;
  attributes[CSM_ORPHAN_REASON] = reason;
  // §2.1: orphans feed csm.attempt.duration only.
  return { clientId: a.clientId, span: { ...r.span, attributes }, metrics: r.metrics };
}
