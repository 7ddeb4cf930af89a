/**
 * The decoder's hand-written fast path (src/decode/fast-validate.ts) must be indistinguishable from
 * the zod schemas it stands in front of: on real datagrams from every capture, mutated field by
 * field (wrong types, null, NaN, negatives, empty strings, deleted required fields, unknown keys,
 * .NET aliases, SessionToken), the fast validator accepts exactly what zod accepts and returns the
 * same value, and decodeDatagram gives the same result (event or reject reason and detail) with
 * and without it.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeDatagram, type DecoderOptions } from '../../src/decode/decoder.js';
import {
  FAST_API_CALL_FIELDS,
  FAST_ATTEMPT_FIELDS,
  fastValidateApiCall,
  fastValidateAttempt,
  isValidApiCall,
  isValidAttempt,
} from '../../src/decode/fast-validate.js';
import { apiCallAttemptSchema, apiCallSchema } from '../../src/decode/schema.js';
import { DEFAULT_DECODER, readCapture, scenarios } from '../helpers/captures.js';

const REAL: Record<string, unknown>[] = scenarios().flatMap((s) => readCapture(s).map((l) => JSON.parse(l.raw) as Record<string, unknown>));

const KNOWN = [...new Set([...FAST_API_CALL_FIELDS, ...FAST_ATTEMPT_FIELDS].map(([n]) => n))];
const KEYS = [
  ...KNOWN,
  'Type',
  'SessionToken',
  'AWSException',
  'AWSExceptionMessage',
  'FinalAWSException',
  'FinalAWSExceptionMessage',
  'SomeFutureField',
  'constructor',
  'toString',
];

const value: fc.Arbitrary<unknown> = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.constantFrom('', 'ApiCall', 'ApiCallAttempt', 'S3', 'Boto3/1.0', 'aws-sdk-go/1.44', '127.0.0.1:443'),
  fc.integer({ min: -5, max: 600 }),
  fc.double(),
  fc.constantFrom(0, -0, -1, 1.5, Number.NaN, Infinity, -Infinity, Number.MAX_VALUE, 1e300),
  fc.constant(null),
  fc.boolean(),
  fc.array(fc.integer(), { maxLength: 2 }),
  fc.constant({ nested: 1 }),
);

type Mutation = { op: 'set'; key: string; value: unknown } | { op: 'delete'; key: string };
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant('set' as const), key: fc.constantFrom(...KEYS), value }),
  fc.record({ op: fc.constant('delete' as const), key: fc.constantFrom(...KEYS) }),
);
const mutated = fc
  .tuple(fc.integer({ min: 0, max: REAL.length - 1 }), fc.array(mutation, { maxLength: 4 }))
  .map(([i, ms]) => {
    const o: Record<string, unknown> = { ...REAL[i] };
    for (const m of ms) {
      if (m.op === 'set') o[m.key] = m.value;
      else delete o[m.key];
    }
    return o;
  });

const OPTS: DecoderOptions[] = [
  DEFAULT_DECODER,
  { ...DEFAULT_DECODER, accessKey: 'suffix' },
  { ...DEFAULT_DECODER, accessKey: 'hash', accessKeySalt: 'salt' },
  { ...DEFAULT_DECODER, timestampSemantics: 'end', maxDatagramBytes: 1024 },
];
const SOURCE = { address: '127.0.0.1', port: 5000 };

function validators(obj: Record<string, unknown>) {
  const type = obj['Type'];
  if (type === 'ApiCall') return { fast: fastValidateApiCall(obj), zod: apiCallSchema.safeParse(obj) };
  if (type === 'ApiCallAttempt') return { fast: fastValidateAttempt(obj), zod: apiCallAttemptSchema.safeParse(obj) };
  return undefined;
}

describe('decode fast path', () => {
  it('knows exactly the fields of the zod schemas', () => {
    const names = (f: readonly (readonly [string, string])[]) => f.map(([n]) => n).sort();
    expect(names(FAST_API_CALL_FIELDS)).toEqual(Object.keys(apiCallSchema.shape).filter((k) => k !== 'Type').sort());
    expect(names(FAST_ATTEMPT_FIELDS)).toEqual(Object.keys(apiCallAttemptSchema.shape).filter((k) => k !== 'Type').sort());
  });

  it('checks every listed field by name, as its list entry says', () => {
    const valid: Record<string, Record<string, unknown>> = {
      ApiCall: { Type: 'ApiCall', Service: 'S3', Api: 'X', Timestamp: 1 },
      ApiCallAttempt: { Type: 'ApiCallAttempt', Service: 'S3', Api: 'X', Timestamp: 1 },
    };
    const cases: [string, readonly (readonly [string, string])[], (o: Record<string, unknown>) => boolean][] = [
      ['ApiCall', FAST_API_CALL_FIELDS, isValidApiCall],
      ['ApiCallAttempt', FAST_ATTEMPT_FIELDS, isValidAttempt],
    ];
    for (const [type, fields, isValid] of cases) {
      expect(isValid(valid[type]!)).toBe(true);
      for (const [name, check] of fields) {
        const withValue = (v: unknown) => isValid({ ...valid[type], [name]: v });
        const text = check === 's' || check === 'R';
        expect(withValue(true), `${type}.${name}`).toBe(false);
        expect(withValue(text ? 7 : 'x'), `${type}.${name}`).toBe(false);
        if (text) expect(withValue(''), `${type}.${name}`).toBe(check === 's');
        else {
          expect(withValue(Infinity), `${type}.${name}`).toBe(false);
          expect(withValue(-1), `${type}.${name}`).toBe(check === 'n');
        }
        if (check === 'R' || check === 'U') {
          const rest = { ...valid[type] };
          delete rest[name];
          expect(isValid(rest), `${type} without ${name}`).toBe(false);
        }
      }
    }
  });

  it('takes every real captured datagram (no zod fallback on the common shape)', () => {
    expect(REAL.length).toBeGreaterThan(300);
    for (const obj of REAL) {
      const v = validators(obj)!;
      expect(v.zod.success).toBe(true);
      expect(v.fast).toBeDefined();
      expect(v.fast).toStrictEqual(v.zod.data);
      expect(v.fast).not.toHaveProperty('SessionToken');
    }
  });

  it('accepts exactly what zod accepts, with the same value, on mutated real datagrams', () => {
    let accepted = 0;
    let rejected = 0;
    fc.assert(
      fc.property(mutated, (obj) => {
        const v = validators(obj);
        if (!v) return;
        if (v.zod.success) {
          accepted++;
          expect(v.fast).toStrictEqual(v.zod.data);
        } else {
          rejected++;
          expect(v.fast).toBeUndefined();
        }
      }),
      { numRuns: 5_000, seed: 20_260_401 },
    );
    // The mutations reach both sides of the boundary.
    expect(accepted).toBeGreaterThan(500);
    expect(rejected).toBeGreaterThan(500);
  });

  it('decodeDatagram gives identical results with and without the fast path', () => {
    fc.assert(
      fc.property(mutated, fc.constantFrom(...OPTS), (obj, opts) => {
        const bytes = Buffer.from(JSON.stringify(obj), 'utf8');
        const fast = decodeDatagram(bytes, SOURCE, 1_000, opts, 'fast');
        const zod = decodeDatagram(bytes, SOURCE, 1_000, opts, 'zod');
        expect(fast).toStrictEqual(zod);
        if (fast.ok && zod.ok) expect(JSON.stringify(fast.event)).toBe(JSON.stringify(zod.event)); // same key order too
      }),
      { numRuns: 5_000, seed: 20_260_402 },
    );
  });
});
