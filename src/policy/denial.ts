/**
 * AccessDenied explains itself: what a denied call's FinalAwsException / FinalAwsExceptionMessage
 * say is missing. The real formats (iam-policy-notes.md):
 *  - IAM-style services (code AccessDenied / AccessDeniedException; also S3 within an account):
 *    `User: arn:… is not authorized to perform: dynamodb:GetItem on resource: arn:… because no
 *    identity-based policy allows the dynamodb:GetItem action` — or `… with an explicit deny in
 *    a service control policy` (an Allow will not fix that);
 *  - SNS `AuthorizationError`: `… is not authorized to perform: SNS:Publish on resource: …`
 *    (the prefix's case varies);
 *  - S3 plain `Access Denied`, a bodiless HEAD 403 (`403` / `Forbidden`), EC2
 *    `UnauthorizedOperation` with an encoded message: no action named, so the call's own mapped
 *    actions are what is missing (`named: false`).
 * SDKs cut messages at 512 characters: a cut action or resource is not reported as one (the
 * action is validated against iam-data later; a resource running into the cut is dropped).
 *
 * The message is any text a local sender likes: only its first MESSAGE_READ characters are read,
 * and every pattern below is linear in them (no nested or adjacent overlapping repeats; the one
 * lazy repeat is bounded by MAX_POLICY_KIND), so a message costs O(MESSAGE_READ) whatever it holds.
 */

export interface Denial {
  /** `prefix:Action` as the message names it (prefix lower-cased), or undefined when it names none. */
  action?: string;
  /** The resource ARN the message names, when it is whole. */
  resource?: string;
  /** `explicit deny in a service control policy`, `no identity-based policy allows …`: short, from the message. */
  reason?: string;
  explicitDeny: boolean;
}

/** Error codes that mean "not authorized" (a 403 without a code too). */
const DENIED_CODES = new Set([
  'AccessDenied',
  'AccessDeniedException',
  'AuthorizationError',
  'AuthorizationErrorException',
  'UnauthorizedOperation',
  'UnauthorizedException',
  'UnauthorizedAccess',
  'NotAuthorized',
  'NotAuthorizedException',
  'Forbidden',
  'ForbiddenException',
  'AccessDeniedFault',
]);

/** SDKs cut every *ExceptionMessage at this length (csm-protocol.md §4). */
const MESSAGE_CUT = 512;
/** What is read of a message: an uncut one (Go, Ruby, PHP do not cut) is as long as a datagram. */
const MESSAGE_READ = 4 * MESSAGE_CUT;
/** The longest policy kind read (`a service control policy` is 24 characters): bounds the lazy repeat. */
const MAX_POLICY_KIND = 48;

const PERFORM = /not authorized to perform:?\s+([A-Za-z0-9][A-Za-z0-9-]*):([A-Za-z0-9*]+)(?=[\s,.;"]|$)/i;
const ON_RESOURCE = /\bon resource:?\s+"?(arn:[^\s"]+)("?)/i;
// `[a-z- ]` also matches the text before it: unbounded, every `with an explicit deny in a ` of a
// long message would rescan the rest of it (quadratic).
const EXPLICIT = new RegExp(`with an explicit deny in (an? [a-z- ]{1,${MAX_POLICY_KIND - 3}}?policy)`, 'i');
const IMPLICIT = new RegExp(`because no ([a-z- ]{1,${MAX_POLICY_KIND - 6}}?policy) allows`, 'i');

export function isDenied(code: string | undefined, status: number | undefined): boolean {
  if (code !== undefined && DENIED_CODES.has(code)) return true;
  // Bodiless HEAD 403: botocore reports code "403", JS v2 "Forbidden".
  return status === 403 && (code === undefined || code === '403');
}

/** Parses a denied call's message; never throws, whatever the text. */
export function parseDenial(message: string | undefined): Denial {
  const text = typeof message === 'string' ? message.slice(0, MESSAGE_READ) : '';
  const out: Denial = { explicitDeny: false };
  const p = PERFORM.exec(text);
  if (p) {
    // A name running into the end of a cut message may itself be cut.
    const end = p.index + p[0].length;
    if (!(text.length >= MESSAGE_CUT && end >= text.length)) out.action = `${p[1]!.toLowerCase()}:${p[2]!}`;
  }
  const r = ON_RESOURCE.exec(text);
  if (r) {
    const end = r.index + r[0].length;
    const cut = text.length >= MESSAGE_CUT && end >= text.length;
    // The ARN runs to a space or a closing quote; one that ends at a cut message is not whole.
    if (!cut) out.resource = withoutTrailingPunctuation(r[1]!);
  }
  const e = EXPLICIT.exec(text);
  if (e) {
    out.explicitDeny = true;
    out.reason = `explicit deny in ${e[1]!.toLowerCase()}`;
  } else {
    const i = IMPLICIT.exec(text);
    if (i) out.reason = `no ${i[1]!.toLowerCase()} allows it`;
  }
  return out;
}

/** The ARN without the sentence's `.`, `,` or `;` after it (a loop: `/[.,;]+$/` is quadratic on a long run of them). */
function withoutTrailingPunctuation(arn: string): string {
  let end = arn.length;
  for (let c = arn.charCodeAt(end - 1); c === 0x2e || c === 0x2c || c === 0x3b; c = arn.charCodeAt(end - 1)) end--;
  return end === arn.length ? arn : arn.slice(0, end);
}
