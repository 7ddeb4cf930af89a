/**
 * The policy state's bounds and the policy file's safety, on their own: the observer's byte
 * budget (against the real heap), the service's shared, sliced report builds, and the file's
 * reading and writing on real files (symlinks, devices, modes). The same with the built CLI as
 * another user sees it: test/e2e/policy-file.e2e.test.ts.
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Correlated } from '../../src/correlate/types.js';
import type { CsmApiCall, CsmAttempt } from '../../src/decode/types.js';
import { createLogger } from '../../src/log.js';
import { PolicyBuilder } from '../../src/policy/document.js';
import { MAX_CALLS_PER_SUBJECT, PolicyObserver } from '../../src/policy/observer.js';
import { MAX_POLICY_FILE_BYTES, PolicyFileError, policyFileParts, readPolicyFile, writePolicyFile } from '../../src/policy/policy-file.js';
import { PolicyService } from '../../src/policy/policy-service.js';
import { newStats } from '../../src/stats.js';

const base = { timestamp: 1, timestampMarksEnd: false, sdk: 'botocore' as const, source: { address: '127.0.0.1', port: 1 }, receivedAt: 1 };
/** A call as decode makes it: its strings fresh from JSON.parse (what the observer keeps). */
function call(clientId: string, service: string, api: string, o: Partial<CsmApiCall> = {}, a: Partial<CsmAttempt> = {}): Correlated {
  const fresh = JSON.parse(JSON.stringify({ clientId, service, api })) as { clientId: string; service: string; api: string };
  const httpStatusCode = o.finalHttpStatusCode ?? 200;
  const attempt: CsmAttempt = { ...base, type: 'ApiCallAttempt', ...fresh, region: 'eu-west-1', httpStatusCode, ...a };
  return { kind: 'call', call: { ...base, type: 'ApiCall', ...fresh, region: 'eu-west-1', finalHttpStatusCode: httpStatusCode, ...o }, attempts: [attempt], missingAttempts: 0 };
}
const denied = (i: number) => ({
  finalHttpStatusCode: 403,
  finalAwsException: 'AccessDenied',
  finalAwsExceptionMessage: `User: arn:aws:iam::123456789012:user/${'u'.repeat(100)} is not authorized to perform: kms:Decrypt on resource: arn:aws:kms:eu-west-1:123456789012:key/${i}${'k'.repeat(150)} because no identity-based policy allows the kms:Decrypt action`,
});

const gc: () => void = (() => {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
})();
const heapUsed = () => {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
};

describe('the policy state is bounded in bytes', () => {
  it('a flood of distinct calls, scopes, denials and clients stops at the budget, every refusal counted', () => {
    const budget = 256 * 1024;
    const o = new PolicyObserver(undefined, budget);
    let sent = 0;
    for (let i = 0; i < 2_000; i++, sent++) o.observe(call(`client-${i % 40}-${'c'.repeat(200)}`, 'DynamoDB', `Op${i}${'x'.repeat(200)}`));
    for (let i = 0; i < 2_000; i++, sent++) o.observe(call('app', 'S3', 'GetObject', denied(i), { serverAddress: `bucket-${i % 30}.s3.amazonaws.com` }));
    const c = o.counters;
    expect(c.observed).toBe(sent);
    expect(o.stateBytes).toBeLessThanOrEqual(budget);
    expect(c.stateBytes).toBe(o.stateBytes);
    expect(c.maxStateBytes).toBe(budget);
    expect(c.droppedOverBudget).toBeGreaterThan(0);
    expect(c.droppedOverBudget).toBe(c.droppedSubjects + c.droppedCalls + c.droppedScopes + c.droppedDenials);
    // Every distinct call is either kept or counted.
    const kept = o.state().subjects.reduce((n, s) => n + s.calls.filter((r) => r.service === 'DynamoDB').length, 0);
    const ddbRefused = 2_000 - kept;
    expect(ddbRefused).toBeGreaterThan(0);
    expect(c.droppedCalls + c.droppedSubjects).toBeGreaterThanOrEqual(ddbRefused);
  });

  it('the estimate is not below what the state really takes on the heap (V8, strings from JSON.parse)', () => {
    const o = new PolicyObserver(undefined, 1e12);
    const before = heapUsed();
    for (let i = 0; i < 20_000; i++) o.observe(call(`c${i % 200}`, 'S3', `Op${i % 900}${'y'.repeat(i % 200)}`, i % 7 === 0 ? denied(i) : {}, { serverAddress: `b${i}.s3.amazonaws.com`, region: `eu-west-${i % 3}` }));
    const taken = heapUsed() - before;
    expect(o.stateBytes).toBeGreaterThan(1_000_000);
    expect(taken).toBeLessThanOrEqual(o.stateBytes);
    expect(o.state().subjects.length).toBe(200);
  });

  it('loading a file (merge) stays within the budget too, counted', () => {
    const big = new PolicyObserver(undefined, 1e12);
    for (let i = 0; i < 3_000; i++) big.observe(call(`c${i % 3}`, 'SQS', `Op${i}`));
    const small = new PolicyObserver(undefined, 64 * 1024);
    small.merge(JSON.parse(JSON.stringify(big.state())));
    expect(small.stateBytes).toBeLessThanOrEqual(64 * 1024);
    expect(small.counters.droppedCalls).toBeGreaterThan(0);
    const c = small.counters;
    expect(c.droppedOverBudget).toBe(c.droppedSubjects + c.droppedCalls + c.droppedScopes + c.droppedDenials);
  });

  it('the shape caps still hold under a large budget', () => {
    const o = new PolicyObserver(undefined, 1e12);
    for (let i = 0; i < MAX_CALLS_PER_SUBJECT + 3; i++) o.observe(call('c', 'S3', `Op${i}`));
    expect(o.counters.droppedCalls).toBe(3);
    expect(o.counters.droppedOverBudget).toBe(0);
  });
});

describe('GET /policy and the file: reports built once, in slices, for what changed', () => {
  const quiet = createLogger('none');
  afterEach(() => vi.restoreAllMocks());

  it('concurrent requests share one build; an unchanged state is not built again; a change rebuilds only its subject', async () => {
    const stats = newStats(0);
    const svc = new PolicyService({ writeDelayMs: 1_000 }, stats.policy, quiet);
    for (let i = 0; i < 6; i++) svc.observe(call(`c${i}`, 'SQS', 'SendMessage'));
    const report = vi.spyOn(PolicyBuilder.prototype, 'report');
    // Turns of the event loop taken by others (datagrams) while the build runs.
    let turns = 0;
    let on = true;
    const spin = () => {
      turns++;
      if (on) setImmediate(spin);
    };
    setImmediate(spin);
    const answers = await Promise.all(Array.from({ length: 8 }, () => svc.allJson()));
    on = false;
    expect(report).toHaveBeenCalledTimes(6);
    expect(turns).toBeGreaterThanOrEqual(6);
    const all = JSON.parse(answers[0]!.toString());
    expect(all.clients.map((c: { label: string }) => c.label)).toEqual(['c0', 'c1', 'c2', 'c3', 'c4', 'c5']);
    for (const a of answers) expect(a.equals(answers[0]!)).toBe(true);
    // Nothing changed: no build.
    await svc.allJson();
    expect(report).toHaveBeenCalledTimes(6);
    // One subject changed (a count): only it is built again, and the answer says so.
    svc.observe(call('c3', 'SQS', 'SendMessage'));
    const again = JSON.parse((await svc.allJson()).toString());
    expect(report).toHaveBeenCalledTimes(7);
    expect(again.counters.observed).toBe(7);
    expect(stats.policy.reportBytes).toBeGreaterThan(0);
  });

  it('the reports kept between requests stay within the budget; beyond it they are built again, the answer whole', async () => {
    const stats = newStats(0);
    const svc = new PolicyService({ writeDelayMs: 1_000, maxReportBytes: 4 * 1024 }, stats.policy, quiet);
    for (let i = 0; i < 12; i++) svc.observe(call(`c${i}`, 'DynamoDB', 'Query'));
    const report = vi.spyOn(PolicyBuilder.prototype, 'report');
    const first = JSON.parse((await svc.allJson()).toString());
    expect(first.clients).toHaveLength(12);
    expect(stats.policy.reportBytes).toBeGreaterThan(0);
    expect(stats.policy.reportBytes).toBeLessThanOrEqual(4 * 1024);
    const builtFirst = report.mock.calls.length;
    expect(builtFirst).toBe(12);
    const second = JSON.parse((await svc.allJson()).toString());
    expect(second.clients).toEqual(first.clients);
    // Those not kept were built again; the kept ones were not.
    expect(report.mock.calls.length - builtFirst).toBeGreaterThan(0);
    expect(report.mock.calls.length - builtFirst).toBeLessThan(12);
  });

  it('GET /policy?client=ID: requests for one client at one state share one build', async () => {
    const svc = new PolicyService({ writeDelayMs: 1_000 }, newStats(0).policy, quiet);
    svc.observe(call('c1', 'SQS', 'SendMessage'));
    svc.observe(call('c2', 'SQS', 'SendMessage'));
    const report = vi.spyOn(PolicyBuilder.prototype, 'report');
    const answers = await Promise.all(Array.from({ length: 8 }, () => svc.one('c1')));
    expect(report).toHaveBeenCalledTimes(1);
    expect(answers.every((a) => a === answers[0] && a?.client === 'c1')).toBe(true);
    expect(await svc.one('nobody')).toBeUndefined();
    svc.observe(call('c1', 'DynamoDB', 'Query'));
    expect((await svc.one('c1'))!.policy.Statement.flatMap((st) => st.Action).sort()).toEqual(['dynamodb:Query', 'sqs:SendMessage']);
    expect(report).toHaveBeenCalledTimes(2);
  });

  it('the answer is what JSON.stringify makes of the reports, and a request after a change never gets the older build', async () => {
    const stats = newStats(0);
    const svc = new PolicyService({ writeDelayMs: 1_000 }, stats.policy, quiet);
    svc.observe(call('a', 'DynamoDB', 'Query'));
    const first = svc.allJson();
    svc.observe(call('b', 'SQS', 'SendMessage'));
    const second = svc.allJson();
    const [one, two] = [JSON.parse((await first).toString()), JSON.parse((await second).toString())];
    expect(one.clients.length).toBeGreaterThanOrEqual(1);
    expect(two.clients.map((c: { label: string }) => c.label)).toEqual(['a', 'b']);
    const reports = await new PolicyBuilder().reports(svc.observer.state());
    expect(two.clients).toEqual(JSON.parse(JSON.stringify(reports)));
  });
});

describe('the policy file on disk', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'csm-policy-state-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const subjectsOf = (o: PolicyObserver) => o.entries();

  it('its text is exactly JSON.stringify(body, null, 2), written part by part, and reads back', async () => {
    const o = new PolicyObserver();
    o.observe(call('app', 'S3', 'GetObject', {}, { serverAddress: 'b.s3.amazonaws.com' }));
    o.observe(call('other "quoted"\n', 'SQS', 'SendMessage', denied(1)));
    const reports = await new PolicyBuilder().reports(o.state());
    const policies = Object.fromEntries(reports.map((r) => [r.label, r.policy]));
    const expected = `${JSON.stringify({ generatedBy: 'aws-csm-bridge', note: 'policies are rebuilt from "observed" at every write; only "observed" is read back', policies, observed: o.state() }, null, 2)}\n`;
    const parts = [...policyFileParts(reports.map((r) => [r.label, JSON.stringify(r.policy, null, 2).replaceAll('\n', '\n    ')] as const), subjectsOf(o))];
    expect(parts.join('')).toBe(expected);
    expect([...policyFileParts([], [])].join('')).toBe(`${JSON.stringify({ generatedBy: 'aws-csm-bridge', note: 'policies are rebuilt from "observed" at every write; only "observed" is read back', policies: {}, observed: { version: 1, subjects: [] } }, null, 2)}\n`);
    const file = join(dir, 'policy.json');
    await writePolicyFile(file, parts);
    expect(readFileSync(file, 'utf8')).toBe(expected);
    expect(readPolicyFile(file)).toEqual(o.state());
    expect(readdirSync(dir)).toEqual(['policy.json']);
  });

  it('a link planted at the temporary name fails the write: the link target and the policy file are untouched', async () => {
    const file = join(dir, 'policy.json');
    writeFileSync(file, 'previous');
    const target = join(dir, 'victim');
    writeFileSync(target, 'secret', { mode: 0o600 });
    symlinkSync(target, join(dir, '.policy.json.guessed.tmp'));
    await expect(writePolicyFile(file, ['{}\n'], () => 'guessed')).rejects.toThrow(/EEXIST/);
    expect(readFileSync(target, 'utf8')).toBe('secret');
    expect(readFileSync(file, 'utf8')).toBe('previous');
    // A dangling link too (O_EXCL: the name exists).
    rmSync(target);
    await expect(writePolicyFile(file, ['{}\n'], () => 'guessed')).rejects.toThrow(/EEXIST/);
    expect(existsSync(target)).toBe(false);
  });

  it('a link at the policy path itself is replaced by the rename, not written through', async () => {
    const target = join(dir, 'victim');
    writeFileSync(target, 'secret', { mode: 0o600 });
    const file = join(dir, 'policy.json');
    symlinkSync(target, file);
    await writePolicyFile(file, ['{}\n']);
    expect(readFileSync(target, 'utf8')).toBe('secret');
    expect(readFileSync(file, 'utf8')).toBe('{}\n');
  });

  it('a write over the bound fails before it renames, and leaves nothing behind', async () => {
    const file = join(dir, 'policy.json');
    const chunk = 'x'.repeat(16 * 1024 * 1024);
    const parts = function* () {
      for (let n = 0; n <= MAX_POLICY_FILE_BYTES / chunk.length; n++) yield chunk;
    };
    await expect(writePolicyFile(file, parts())).rejects.toThrow(/over .* bytes/);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('refuses at start: a device, a link, a file over the bound, a directory others can write (unless sticky), a missing directory', () => {
    const refused = (path: string) => {
      try {
        readPolicyFile(path);
      } catch (e) {
        expect(e).toBeInstanceOf(PolicyFileError);
        return (e as Error).message;
      }
      throw new Error(`${path} was accepted`);
    };
    expect(refused('/dev/zero')).toMatch(/\/dev\/zero is not a regular file/);
    const real = join(dir, 'real.json');
    const link = join(dir, 'link.json');
    writeFileSync(real, '{}');
    symlinkSync(real, link);
    expect(refused(link)).toMatch(/is a symbolic link/);
    const big = join(dir, 'big.json');
    writeFileSync(big, '');
    truncateSync(big, MAX_POLICY_FILE_BYTES + 1); // sparse: no disk used
    expect(refused(big)).toMatch(/over the \d+ a policy file of this bridge can be/);
    const open = join(dir, 'open');
    mkdirSync(open);
    chmodSync(open, 0o777);
    expect(refused(join(open, 'p.json'))).toMatch(/which other users can write and which is not sticky.*chmod \+t/);
    const group = join(dir, 'group');
    mkdirSync(group);
    chmodSync(group, 0o770);
    expect(refused(join(group, 'p.json'))).toMatch(/mode 0770/);
    // The parent others can write makes its child unsafe too.
    mkdirSync(join(open, 'inner'), { mode: 0o700 });
    expect(refused(join(open, 'inner', 'p.json'))).toMatch(/not sticky/);
    expect(refused(join(dir, 'nope', 'p.json'))).toMatch(/create it/);
    // Sticky and world-writable (like /tmp): fine, and no file yet is no state yet.
    chmodSync(open, 0o1777);
    expect(readPolicyFile(join(open, 'p.json'))).toBeUndefined();
  });
});
