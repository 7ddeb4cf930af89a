import { describe, expect, it } from 'vitest';
import type { Correlated } from '../../src/correlate/types.js';
import type { CsmApiCall, CsmAttempt } from '../../src/decode/types.js';
import { accountFromAccessKeyId, principalOf } from '../../src/decode/access-key.js';
import { isDenied, parseDenial } from '../../src/policy/denial.js';
import { PolicyBuilder } from '../../src/policy/document.js';
import { answered, MAX_CALLS_PER_SUBJECT, MAX_SUBJECTS, PolicyObserver } from '../../src/policy/observer.js';
import { notes, runPolicyCommand } from '../../src/policy/policy-command.js';
import { DEFAULT_CONFIG } from '../../src/config/schema.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const KEY = 'AKIARZPUZDIKAAEXAMPL'; // encodes 123456789012
const base = { timestamp: 1, timestampMarksEnd: false, sdk: 'botocore' as const, source: { address: '127.0.0.1', port: 1 }, receivedAt: 1 };
function call(service: string, api: string, o: Partial<CsmApiCall> = {}, a: Partial<CsmAttempt> = {}): Correlated {
  const clientId = o.clientId ?? 'app';
  // A service answered (an HTTP status) unless the test says otherwise.
  const httpStatusCode = o.finalHttpStatusCode ?? 200;
  const attempt: CsmAttempt = { ...base, type: 'ApiCallAttempt', clientId, service, api, region: 'eu-west-1', principal: principalOf(KEY, 's'), httpStatusCode, ...a };
  return { kind: 'call', call: { ...base, type: 'ApiCall', clientId, service, api, region: 'eu-west-1', ...o }, attempts: [attempt], missingAttempts: 0 };
}
const actionsOf = (doc: { Statement: { Action: string[]; Resource: string | string[] }[] }) =>
  Object.fromEntries(doc.Statement.flatMap((s) => s.Action.map((a) => [a, ([] as string[]).concat(s.Resource)])));

describe('access key → account', () => {
  it('decodes current-format key ids (the published examples) and refuses old ones', () => {
    expect(accountFromAccessKeyId('ASIAY34FZKBOKMUTVV7A')).toBe('609629065308');
    expect(accountFromAccessKeyId(KEY)).toBe('123456789012');
    expect(accountFromAccessKeyId('AKIAIOSFODNN7EXAMPLE')).toBeUndefined(); // old format: no account inside
    expect(accountFromAccessKeyId('AKIA0000')).toBeUndefined();
    expect(accountFromAccessKeyId('XXXXRZPUZDIKAAEXAMPL')).toBeUndefined();
    expect(accountFromAccessKeyId('AKIA!!!!!!!!!!!!!!!!')).toBeUndefined();
  });

  it('the principal is a salted hash, never the key', () => {
    const p = principalOf(KEY, 'salt-a');
    expect(p.id).toMatch(/^[0-9a-f]{16}$/);
    expect(JSON.stringify(p)).not.toContain(KEY);
    expect(principalOf(KEY, 'salt-b').id).not.toBe(p.id);
  });
});

describe('AccessDenied messages', () => {
  it('IAM-style: action, resource, implicit deny', () => {
    const d = parseDenial(
      'User: arn:aws:iam::123456789012:user/jane is not authorized to perform: dynamodb:GetItem on resource: arn:aws:dynamodb:us-east-1:123456789012:table/Music because no identity-based policy allows the dynamodb:GetItem action',
    );
    expect(d).toEqual({ action: 'dynamodb:GetItem', resource: 'arn:aws:dynamodb:us-east-1:123456789012:table/Music', reason: 'no identity-based policy allows it', explicitDeny: false });
  });

  it('explicit denies are told apart', () => {
    const d = parseDenial(
      'User: arn:aws:sts::123456789012:assumed-role/app/i-1 is not authorized to perform: s3:PutObject on resource: "arn:aws:s3:::logs/a.txt" with an explicit deny in a service control policy',
    );
    expect(d).toMatchObject({ action: 's3:PutObject', resource: 'arn:aws:s3:::logs/a.txt', explicitDeny: true, reason: 'explicit deny in a service control policy' });
  });

  it('SNS AuthorizationError with an upper-case prefix; KMS behind S3; Lambda, STS, ECR wording', () => {
    expect(parseDenial('User: arn:aws:iam::123456789012:user/x is not authorized to perform: SNS:Publish on resource: arn:aws:sns:us-east-1:123456789012:t').action).toBe('sns:Publish');
    expect(isDenied('AuthorizationError', 403)).toBe(true);
    expect(
      parseDenial('User: arn:aws:iam::1:user/x is not authorized to perform: kms:Decrypt on resource: arn:aws:kms:eu-west-1:1:key/abcd because no identity-based policy allows the kms:Decrypt action').action,
    ).toBe('kms:Decrypt');
    expect(parseDenial('User: arn:aws:sts::1:assumed-role/r/s is not authorized to perform: lambda:InvokeFunction on resource: arn:aws:lambda:us-east-1:1:function:f because no resource-based policy allows the lambda:InvokeFunction action')).toMatchObject({ action: 'lambda:InvokeFunction', reason: 'no resource-based policy allows it' });
    expect(parseDenial('User: arn:aws:iam::1:user/x is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::1:role/r').action).toBe('sts:AssumeRole');
    expect(parseDenial("User: arn:aws:iam::1:user/x is not authorized to perform: ecr:GetAuthorizationToken on resource: * because no identity-based policy allows the ecr:GetAuthorizationToken action")).toMatchObject({ action: 'ecr:GetAuthorizationToken' });
  });

  it('messages that name no action: S3 plain, HEAD 403, EC2 encoded', () => {
    expect(parseDenial('Access Denied')).toEqual({ explicitDeny: false });
    expect(isDenied('403', 403)).toBe(true);
    expect(isDenied(undefined, 403)).toBe(true);
    expect(isDenied('NoSuchKey', 404)).toBe(false);
    expect(parseDenial('You are not authorized to perform this operation. Encoded authorization failure message: AbCdEf123')).toEqual({ explicitDeny: false });
    expect(isDenied('UnauthorizedOperation', 403)).toBe(true);
  });

  it('the 512-character cut: a cut name or resource is not reported; anything else never throws', () => {
    const tail = ' is not authorized to perform: dynamodb:Get';
    const head = 'User: arn:aws:iam::123456789012:user/' + 'x'.repeat(512 - 37 - tail.length) + tail;
    expect(head.length).toBe(512);
    expect(parseDenial(head).action).toBeUndefined();
    const res = ('User: arn:aws:iam::1:user/x is not authorized to perform: s3:GetObject on resource: arn:aws:s3:::b/' + 'k'.repeat(600)).slice(0, 512);
    expect(parseDenial(res)).toEqual({ action: 's3:GetObject', explicitDeny: false });
    for (const junk of ['', 'not authorized to perform:', 'on resource: arn:', '\u0000'.repeat(3000), undefined]) expect(() => parseDenial(junk)).not.toThrow();
  });
});

describe('policy observation and documents', () => {
  it('scopes ARNs by Region, the decoded account and the S3 bucket of a virtual-hosted Fqdn', async () => {
    const o = new PolicyObserver();
    o.observe(call('DynamoDB', 'Query'));
    o.observe(call('S3', 'GetObject', {}, { serverAddress: 'my-bucket.s3.eu-west-1.amazonaws.com' }));
    o.observe(call('S3', 'ListObjectsV2', {}, { serverAddress: 'my-bucket.s3.eu-west-1.amazonaws.com' }));
    o.observe(call('S3', 'ListBuckets', {}, { serverAddress: 's3.eu-west-1.amazonaws.com' }));
    o.observe(call('STS', 'GetCallerIdentity'));
    const [r] = await new PolicyBuilder().reports(o.state());
    expect(actionsOf(r!.policy)).toEqual({
      'dynamodb:Query': ['arn:aws:dynamodb:eu-west-1:123456789012:table/*'],
      's3:GetObject': ['arn:aws:s3:::my-bucket/*'],
      's3:ListBucket': ['arn:aws:s3:::my-bucket'],
      's3:ListAllMyBuckets': ['*'],
    });
  });

  it('one policy per ClientId, split by program; an empty ClientId is grouped by key hash; unmapped calls are reported, not guessed', async () => {
    const o = new PolicyObserver();
    const py = { attributes: { 'process.executable.name': 'python3', 'process.pid': 10 } };
    o.observe(call('SQS', 'SendMessageBatch'), py);
    o.observe(call('SQS', 'SendMessage', { clientId: 'other' }));
    o.observe(call('Lambda', 'Invoke', { clientId: '' }, { clientId: '' }));
    o.observe(call('Not A Service', 'DoIt'), py);
    const b = new PolicyBuilder();
    const reports = await b.reports(o.state());
    expect(reports.map((r) => r.label)).toEqual(['app [python3]', expect.stringMatching(/^key:[0-9a-f]{16}$/), 'other']);
    expect(actionsOf(reports[0]!.policy)).toEqual({ 'sqs:SendMessage': ['arn:aws:sqs:eu-west-1:123456789012:*'] });
    expect(reports[0]!.unmapped).toEqual([{ call: 'Not A Service.DoIt', calls: 1, failed: 0 }]);
    expect(actionsOf(reports[1]!.policy)).toEqual({ 'lambda:InvokeFunction': ['arn:aws:lambda:eu-west-1:123456789012:function:*'] });
    expect(b.select(o.state(), 'app').length).toBe(1);
  });

  it('a ClientId\'s calls from an unidentified process go with its only known program; with several known they stay apart', async () => {
    const py = { attributes: { 'process.executable.name': 'python3.11', 'process.pid': 10 } };
    const node = { attributes: { 'process.executable.name': 'node', 'process.pid': 11 } };
    const o = new PolicyObserver();
    // Unidentified first (the order must not matter), then identified.
    o.observe(call('S3', 'ListBuckets', { finalHttpStatusCode: 200 }, { serverAddress: 'a-bucket.s3.amazonaws.com' }));
    o.observe(call('S3', 'PutObject', { finalHttpStatusCode: 403, finalAwsException: 'AccessDenied', finalAwsExceptionMessage: 'Access Denied' }));
    o.observe(call('S3', 'ListBuckets', { finalHttpStatusCode: 200 }), py);
    o.observe(call('SQS', 'SendMessage', { clientId: 'other' }), node);
    const folded = o.state().subjects;
    expect(folded.map((s) => [s.client, s.process])).toEqual([['app', 'python3.11'], ['other', 'node']]);
    expect(folded[0]!.calls.map((c) => [c.api, c.calls, c.failed, c.scopes.length])).toEqual([['ListBuckets', 2, 0, 2], ['PutObject', 1, 1, 1]]);
    expect(folded[0]!.denials).toMatchObject([{ api: 'PutObject', calls: 1 }]);
    const reports = await new PolicyBuilder().reports(o.state());
    expect(reports.map((r) => r.label)).toEqual(['app [python3.11]', 'other [node]']);
    // A second program of the same ClientId: which one made the unidentified calls is unknown.
    o.observe(call('S3', 'ListBuckets'), node);
    expect(o.state().subjects.map((s) => [s.client, s.process])).toEqual([['app', undefined], ['app', 'node'], ['app', 'python3.11'], ['other', 'node']]);
  });

  it('a denial naming another service is a dependent permission in the policy; explicit denies and unnamed denials are reported', async () => {
    const o = new PolicyObserver();
    const denied = (message: string, code = 'AccessDenied') => ({ finalHttpStatusCode: 403, finalAwsException: code, finalAwsExceptionMessage: message });
    o.observe(call('S3', 'GetObject', denied('User: arn:aws:iam::123456789012:user/a is not authorized to perform: kms:Decrypt on resource: arn:aws:kms:eu-west-1:123456789012:key/k1 because no identity-based policy allows the kms:Decrypt action'), { serverAddress: 'b.s3.amazonaws.com' }));
    o.observe(call('DynamoDB', 'PutItem', denied('User: arn:aws:iam::123456789012:user/a is not authorized to perform: dynamodb:PutItem on resource: arn:aws:dynamodb:eu-west-1:123456789012:table/T with an explicit deny in an identity-based policy', 'AccessDeniedException')));
    o.observe(call('EC2', 'DescribeInstances', denied('You are not authorized to perform this operation. Encoded authorization failure message: zzz', 'UnauthorizedOperation')));
    o.observe(call('SQS', 'ListQueues'));
    const b = new PolicyBuilder();
    const [r] = await b.reports(o.state());
    expect(actionsOf(r!.policy)['kms:Decrypt']).toEqual(['arn:aws:kms:eu-west-1:123456789012:key/k1']);
    expect(r!.missing).toEqual([
      { call: 'DynamoDB.PutItem', action: 'dynamodb:PutItem', resource: 'arn:aws:dynamodb:eu-west-1:123456789012:table/T', reason: 'explicit deny in an identity-based policy', explicitDeny: true, dependent: false, named: true, calls: 1 },
      { call: 'EC2.DescribeInstances', action: 'ec2:DescribeInstances', explicitDeny: false, dependent: false, named: false, calls: 1 },
      { call: 'S3.GetObject', action: 'kms:Decrypt', resource: 'arn:aws:kms:eu-west-1:123456789012:key/k1', reason: 'no identity-based policy allows it', explicitDeny: false, dependent: true, named: true, calls: 1 },
    ]);
    expect(notes(r!, false).join('\n')).toMatch(/explicit deny in an identity-based policy: an Allow will not fix this/);
    // --fails-only: the failed calls only (ListQueues succeeded).
    const fails = await b.report(o.state().subjects, 'app', { failsOnly: true });
    expect(Object.keys(actionsOf(fails.policy)).sort()).toEqual(['dynamodb:PutItem', 'ec2:DescribeInstances', 'kms:Decrypt', 's3:GetObject']);
  });

  it('a denial naming an action iam-data does not have is never printed as one', async () => {
    const o = new PolicyObserver();
    o.observe(call('S3', 'GetObject', { finalAwsException: 'AccessDenied', finalAwsExceptionMessage: 'is not authorized to perform: made-up:Thing on resource: arn:aws:s3:::b' }));
    const [r] = await new PolicyBuilder().reports(o.state());
    expect(JSON.stringify(r)).not.toContain('made-up');
    expect(r!.missing).toMatchObject([{ action: 's3:GetObject', named: false }]);
  });

  it('parameter-dependent actions: listed beside the policy, in it with includePossible', async () => {
    const o = new PolicyObserver();
    o.observe(call('DynamoDB', 'TransactWriteItems'));
    const b = new PolicyBuilder();
    const plain = await b.report(o.state().subjects, 'app');
    expect(plain.policy.Statement).toEqual([]);
    expect(plain.possible).toEqual([{ call: 'DynamoDB.TransactWriteItems', actions: ['dynamodb:ConditionCheckItem', 'dynamodb:DeleteItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem'] }]);
    const all = await b.report(o.state().subjects, 'app', { includePossible: true });
    expect(Object.keys(actionsOf(all.policy)).length).toBe(4);
  });

  it('a call no service answered (no HTTP status on any attempt) proves no permission: counted, left out', async () => {
    const refused = { sdkException: 'EndpointConnectionError', httpStatusCode: undefined };
    const o = new PolicyObserver();
    o.observe(call('S3', 'ListBuckets', { finalSdkException: 'EndpointConnectionError' }, refused));
    o.observe({ kind: 'orphan', attempt: (call('SQS', 'ListQueues', {}, refused) as { attempts: CsmAttempt[] }).attempts[0]!, reason: 'ttl_expired' });
    expect(o.counters).toMatchObject({ observed: 2, unanswered: 2, subjects: 0 });
    expect(o.state().subjects).toEqual([]);
    // Answered on some attempt (a 503 then a refused connection), or attempts unseen: it counts.
    const first503 = call('S3', 'ListBuckets', { finalSdkException: 'EndpointConnectionError' }, refused) as Extract<Correlated, { kind: 'call' }>;
    const retried: Correlated = { ...first503, attempts: [{ ...first503.attempts[0]!, httpStatusCode: 503, sdkException: undefined }, first503.attempts[0]!] };
    expect(answered(retried)).toBe(true);
    expect(answered({ ...first503, missingAttempts: 1 })).toBe(true);
    o.observe(retried);
    const [r] = await new PolicyBuilder().reports(o.state());
    expect(Object.keys(actionsOf(r!.policy))).toEqual(['s3:ListAllMyBuckets']);
  });

  it('is bounded: subjects and calls beyond the caps are counted, not kept', () => {
    const o = new PolicyObserver();
    for (let i = 0; i < MAX_SUBJECTS + 5; i++) o.observe(call('SQS', 'SendMessage', { clientId: `c${i}` }));
    for (let i = 0; i < MAX_CALLS_PER_SUBJECT + 7; i++) o.observe(call('S3', `Op${i}`, { clientId: 'c0' }));
    expect(o.counters.subjects).toBe(MAX_SUBJECTS);
    expect(o.counters.droppedSubjects).toBe(5);
    expect(o.counters.droppedCalls).toBe(8); // c0 already had SQS.SendMessage
    expect(o.state().subjects.length).toBe(MAX_SUBJECTS);
  });

  it('state → merge round-trips (what the policy file does across a restart)', () => {
    const a = new PolicyObserver();
    a.observe(call('S3', 'PutObject', {}, { serverAddress: 'x.s3.amazonaws.com' }));
    a.observe(call('S3', 'PutObject', { finalAwsException: 'AccessDenied', finalAwsExceptionMessage: 'Access Denied', finalHttpStatusCode: 403 }));
    const b = new PolicyObserver();
    b.merge(JSON.parse(JSON.stringify(a.state())));
    expect(b.state()).toEqual(a.state());
    b.merge(a.state());
    expect(b.state().subjects[0]!.calls[0]!.calls).toBe(4);
  });
});

describe('policy FILE: the note on calls no service answered', () => {
  it('names at most 20 Service.Api, sums the rest; the answered call is the only one in the policy', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'csm-unanswered-'));
    try {
      const lines: string[] = [];
      const line = (t: number, raw: object) => `{"recv_ns":${BigInt(t) * 1_000_000n},"src":"127.0.0.1:40000","raw":${JSON.stringify(JSON.stringify(raw))}}`;
      const common = { Version: 1, ClientId: 'refused', Service: 'S3', Region: 'us-east-1' };
      for (let i = 0; i < 25; i++) {
        const t = 1_800_000_000_000 + i * 100;
        const refused = i < 24;
        const api = refused ? `Op${String(i).padStart(2, '0')}` : 'ListBuckets';
        const outcome = refused ? { SdkException: 'EndpointConnectionError' } : { HttpStatusCode: 200 };
        lines.push(line(t, { ...common, Type: 'ApiCallAttempt', Api: api, Timestamp: t, AttemptLatency: 1, ...outcome }));
        lines.push(line(t + 2, { ...common, Type: 'ApiCall', Api: api, Timestamp: t, Latency: 2, AttemptCount: 1, ...(refused ? { FinalSdkException: 'EndpointConnectionError' } : { FinalHttpStatusCode: 200 }) }));
      }
      const file = join(dir, 'r.jsonl');
      writeFileSync(file, `${lines.join('\n')}\n`);
      let out = '';
      let err = '';
      expect(await runPolicyCommand(file, { ...DEFAULT_CONFIG }, (x) => (out += x), (x) => (err += x))).toBe(0);
      expect(Object.keys(actionsOf((JSON.parse(out) as Record<string, never>)['refused']!))).toEqual(['s3:ListAllMyBuckets']);
      const note = err.split('\n').find((l) => l.startsWith('note: 24 calls left out: no service answered'));
      expect(note).toBeDefined();
      expect(note!.match(/S3\.Op\d\d ×1/g)).toHaveLength(20);
      expect(note).toMatch(/S3\.Op19 ×1, other calls ×4$/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
