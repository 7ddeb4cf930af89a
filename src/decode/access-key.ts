/**
 * What the policy side takes from an `AccessKey` (csm-protocol.md §4: attempts only, the key id
 * that signed the request) — never the key itself:
 *  - `id`: a salted SHA-256 (16 hex) that groups the calls of one key when ClientId is empty;
 *  - `account`: the 12-digit account id the key id encodes, for resource ARNs.
 * Computed at decode (decoder.ts), the only stage that sees the raw key, so it goes no further than
 * it did before; used by the IAM-policy observer (src/policy/).
 *
 * The account decode is the documented trick (Aidan Steele 2020, Tal Be'ery 2023): after the
 * 4-character prefix (AKIA long-term, ASIA temporary) the key id is base32; bits 1..40 of the
 * decoded bytes are the account id. Only keys of the current format carry it: their 5th
 * character is Q..Z or 2..7 (the top bit set); older keys (AKIAI…, AKIAJ…) do not.
 */
import { createHash } from 'node:crypto';

export interface Principal {
  /** Salted hash of the access key id, for grouping only. */
  readonly id: string;
  /** 12 digits, when the key id encodes it. */
  readonly account?: string;
}

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

export function accountFromAccessKeyId(keyId: string): string | undefined {
  if (keyId.length < 16 || (!keyId.startsWith('AKIA') && !keyId.startsWith('ASIA'))) return undefined;
  // The first 48 bits are in characters 4..13 (10 × 5 bits = 50).
  let bits = 0n;
  for (let i = 4; i < 14; i++) {
    const v = BASE32.indexOf(keyId[i]!);
    if (v < 0) return undefined;
    bits = (bits << 5n) | BigInt(v);
  }
  const first48 = bits >> 2n;
  if ((first48 >> 47n) === 0n) return undefined; // old format: no account inside
  const account = (first48 & 0x7fffffffff80n) >> 7n;
  return account.toString().padStart(12, '0');
}

/** Keys seen: at most this many cached (then the cache starts over); a process uses a handful. */
const MAX_CACHED_KEYS = 1_024;
let cacheSalt = '';
let cache = new Map<string, Principal>();

/** The principal of a key id; cached, so an attempt costs one map read. */
export function principalOf(keyId: string, salt: string): Principal {
  if (salt !== cacheSalt) {
    cacheSalt = salt;
    cache = new Map();
  }
  let p = cache.get(keyId);
  if (p === undefined) {
    if (cache.size >= MAX_CACHED_KEYS) cache = new Map();
    const id = createHash('sha256').update('policy\0').update(salt).update('\0').update(keyId).digest('hex').slice(0, 16);
    const account = accountFromAccessKeyId(keyId);
    p = account === undefined ? { id } : { id, account };
    cache.set(keyId, p);
  }
  return p;
}
