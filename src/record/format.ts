/**
 * The recording format, the same as the captures in test/fixtures: one JSON
 * object per line, `{"recv_ns", "src", "raw"}` plus optional `"scenario"`,
 * `"sdk"`, and `"enc": "base64"` when `raw` holds bytes that are not UTF-8.
 *
 * Redaction (what `recordLine` writes):
 *  - a datagram that parses as a JSON object: every `SessionToken` key (any
 *    case, `Session_Token` too, at any depth) is deleted and the object is
 *    re-serialised; an object without one is written byte for byte;
 *  - anything else (not JSON, JSON that is not an object, not UTF-8) cannot be
 *    parsed to find the key, so it is written as is only when neither its text
 *    nor its JSON-unescaped text contains "token" (any case); otherwise it is
 *    skipped and counted. The bridge rejects such datagrams anyway; recording
 *    the harmless ones keeps `rejected` counts reproducible on replay.
 */
import { parseSource } from '../net/address.js';

export interface CaptureLine {
  /** Receive wall clock, ns since the epoch (exact: read from the text, not via a double). */
  recvNs: bigint;
  /** "ip:port", "[v6]:port" also accepted. */
  src: string;
  raw: Buffer;
  scenario?: string;
  sdk?: string;
}

export type Redacted = { ok: true; raw: string; enc?: 'base64'; redacted: boolean } | { ok: false; reason: 'may_hold_token' };

const TOKEN_KEY = /^session_?token$/i;
const TOKEN_TEXT = /token/i;

/** Deletes SessionToken keys in place, at any depth; true when one was found. */
function stripTokens(v: unknown, depth = 0): boolean {
  if (depth > 32 || typeof v !== 'object' || v === null) return false;
  let found = false;
  if (Array.isArray(v)) {
    for (const x of v) found = stripTokens(x, depth + 1) || found;
    return found;
  }
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (TOKEN_KEY.test(k)) {
      delete o[k];
      found = true;
    } else found = stripTokens(o[k], depth + 1) || found;
  }
  return found;
}

export function redact(bytes: Buffer): Redacted {
  const text = bytes.toString('utf8');
  const utf8 = Buffer.byteLength(text, 'utf8') === bytes.length && !text.includes('\ufffd');
  let parsed: unknown;
  let isJson = false;
  if (utf8) {
    try {
      parsed = JSON.parse(text);
      isJson = true;
    } catch {
      /* not JSON */
    }
  }
  if (isJson && typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) {
    const found = stripTokens(parsed);
    return found ? { ok: true, raw: JSON.stringify(parsed), redacted: true } : { ok: true, raw: text, redacted: false };
  }
  const unescaped = isJson ? JSON.stringify(parsed) : '';
  if (TOKEN_TEXT.test(utf8 ? text : bytes.toString('latin1')) || TOKEN_TEXT.test(unescaped)) return { ok: false, reason: 'may_hold_token' };
  return utf8 ? { ok: true, raw: text, redacted: false } : { ok: true, raw: bytes.toString('base64'), enc: 'base64', redacted: false };
}

/** One line of the file, with its newline. `recv_ns` is written as an exact integer. */
export function formatLine(recvNs: bigint, src: string, r: { raw: string; enc?: 'base64' }): string {
  const enc = r.enc ? `,"enc":"${r.enc}"` : '';
  return `{"recv_ns":${recvNs},"src":${JSON.stringify(src)},"raw":${JSON.stringify(r.raw)}${enc}}\n`;
}

/** The integer after "recv_ns", up to its end: `1e30` is not read as 1. At most 20 digits, so a hostile run of digits costs nothing. */
const RECV_NS = /"recv_ns"\s*:\s*(\d{1,20})\s*[,}]/;
/**
 * Largest receive time accepted: an int64 of nanoseconds (year 2262), what an OTLP timestamp
 * holds. Beyond it the replayer's clock has no meaning (10^30 spun its expiry catch-up for 11 minutes).
 */
export const MAX_RECV_NS = 2n ** 63n - 1n;

/** Parses one non-empty line; throws with a short reason. */
export function parseLine(line: string): CaptureLine {
  const o = JSON.parse(line) as Record<string, unknown>;
  if (typeof o !== 'object' || o === null || Array.isArray(o)) throw new Error('not a JSON object');
  const { src, raw, enc, scenario, sdk } = o;
  if (typeof src !== 'string') throw new Error('no "src" string');
  if (typeof raw !== 'string') throw new Error('no "raw" string');
  // recv_ns exceeds 2^53: take its digits from the text so no nanoseconds are lost.
  const m = RECV_NS.exec(line);
  const n = o['recv_ns'];
  let recvNs: bigint;
  if (m?.[1]) recvNs = BigInt(m[1]);
  else if (typeof n === 'number' && Number.isFinite(n)) recvNs = BigInt(Math.trunc(n));
  else throw new Error('no "recv_ns" integer');
  if (recvNs < 0n || recvNs > MAX_RECV_NS) throw new Error(`"recv_ns" ${typeof n === 'number' ? n : recvNs} is out of range: 0 to ${MAX_RECV_NS} (ns since 1970)`);
  parseSource(src);
  const out: CaptureLine = { recvNs, src, raw: enc === 'base64' ? Buffer.from(raw, 'base64') : Buffer.from(raw, 'utf8') };
  if (typeof scenario === 'string') out.scenario = scenario;
  if (typeof sdk === 'string') out.sdk = sdk;
  return out;
}
