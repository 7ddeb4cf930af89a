import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, ROOT, runCli, startBridge, type BridgeProcess } from '../helpers/bridge-process.js';
import { findTool, startMoto, type Moto } from '../helpers/tools.js';

const run = promisify(execFile);
const AWS = findTool('aws');
const MOTO = findTool('moto_server');
const PYTHON = findTool('python3');
/** A current-format access key id that encodes moto's account, 123456789012 (src/policy/access-key.ts). */
const ACCESS_KEY = 'AKIARZPUZDIKAAEXAMPL';
const ACCOUNT = '123456789012';

const sdkEnv = (csmPort: number, clientId: string) => ({
  PATH: process.env['PATH'] ?? '',
  HOME: process.env['HOME'] ?? '',
  AWS_CSM_ENABLED: 'true',
  AWS_CSM_PORT: String(csmPort),
  AWS_CSM_CLIENT_ID: clientId,
  AWS_ACCESS_KEY_ID: ACCESS_KEY,
  AWS_SECRET_ACCESS_KEY: 'policy-e2e-secret-never-export',
  AWS_DEFAULT_REGION: 'us-east-1',
  AWS_CONFIG_FILE: '/dev/null',
  AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
  AWS_SDK_JS_SUPPRESS_MAINTENANCE_MODE_MESSAGE: '1',
});

const BOTO3 = `
import boto3, sys
e = sys.argv[1]
d = boto3.client("dynamodb", endpoint_url=e, region_name="us-east-1")
d.create_table(TableName="t", KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
  AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST")
d.put_item(TableName="t", Item={"k": {"S": "1"}})
d.transact_get_items(TransactItems=[{"Get": {"TableName": "t", "Key": {"k": {"S": "1"}}}}])
q = boto3.client("sqs", endpoint_url=e, region_name="us-east-1")
u = q.create_queue(QueueName="pq")["QueueUrl"]
q.send_message_batch(QueueUrl=u, Entries=[{"Id": "1", "MessageBody": "x"}])
`;
const JS = `
const AWS = require('aws-sdk');
const o = { endpoint: process.argv[1], region: 'us-east-1' };
(async () => {
  await new AWS.DynamoDB(o).listTables().promise();
  await new AWS.STS(o).getCallerIdentity().promise();
  await new AWS.Lambda(o).listFunctions().promise().catch(() => {});
  setTimeout(() => process.exit(0), 300);
})();
`;

type Doc = { Version: string; Statement: { Effect: string; Action: string[]; Resource: string | string[] }[] };
/** action → resources, whatever the statement grouping. */
const actions = (d: Doc) => {
  const out: Record<string, string[]> = {};
  for (const s of d.Statement) for (const a of s.Action) out[a] = ([] as string[]).concat(s.Resource).sort();
  return out;
};
const getJson = async (url: string) => {
  const r = await fetch(url);
  return { status: r.status, body: (await r.json()) as any };
};

describe.skipIf(!AWS || !MOTO || !PYTHON)('IAM policies from real clients (aws CLI, boto3, JS v2 against moto_server), recorded and live', () => {
  let moto: Moto;
  let bridge: BridgeProcess;
  let dir: string;
  let policyFile: string;
  let recording: string;
  const policies: Record<string, Doc> = {};
  let all: any;
  let afterHup: any;
  let exitCode: number | null;

  const aws = (port: number, args: string[]) =>
    run(AWS!, [...args, '--endpoint-url', moto.url], { env: sdkEnv(port, 'policy-cli'), timeout: 60_000 }).then(
      () => 0,
      (e: { code: number }) => e.code,
    );
  const policyOf = async (b: BridgeProcess, client: string) => (await getJson(`${b.adminUrl}/policy?client=${encodeURIComponent(client)}`)).body as Doc;
  const waitFor = async (pred: () => Promise<boolean>, ms = 20_000) => {
    const end = Date.now() + ms;
    while (!(await pred())) {
      if (Date.now() > end) throw new Error('timed out');
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'csm-policy-'));
    policyFile = join(dir, 'policy.json');
    recording = join(dir, 'calls.jsonl');
    moto = await startMoto(MOTO!);
    bridge = await startBridge(['record', recording, '--policy-file', policyFile, '--policy-write-delay-ms', '200', '--no-ui']);
    const p = bridge.udpPort;
    expect(await aws(p, ['s3', 'ls'])).toBe(0);
    expect(await aws(p, ['s3api', 'create-bucket', '--bucket', 'pol'])).toBe(0);
    expect(await aws(p, ['s3api', 'head-object', '--bucket', 'pol', '--key', 'missing'])).toBe(255); // 404: still counts
    expect(await aws(p, ['sts', 'get-caller-identity'])).toBe(0);
    await run(PYTHON!, ['-c', BOTO3, moto.url], { env: sdkEnv(p, 'policy-boto3'), timeout: 60_000 });
    await run(process.execPath, ['-e', JS, moto.url], { env: sdkEnv(p, 'policy-js'), cwd: ROOT, timeout: 30_000 });
    await waitFor(async () => {
      const b = (await getJson(`${bridge.adminUrl}/policy`)).body;
      const calls = b.clients.reduce((n: number, c: any) => n + c.policy.Statement.length, 0);
      return b.counters.observed >= 12 && calls > 0;
    });
    await new Promise((r) => setTimeout(r, 500));
    all = (await getJson(`${bridge.adminUrl}/policy`)).body;
    for (const c of ['policy-cli', 'policy-boto3', 'policy-js']) policies[c] = await policyOf(bridge, c);
    bridge.child.kill('SIGHUP');
    // Written now, or already by the write timer (the log says which).
    await waitFor(async () => bridge.logs.some((l) => l['msg'] === 'policy file written (SIGHUP)' || String(l['msg']).startsWith('SIGHUP: the policy file is up to date')));
    afterHup = JSON.parse(readFileSync(policyFile, 'utf8'));
    exitCode = await bridge.stop('SIGTERM');
  }, 180_000);

  afterAll(async () => {
    await bridge?.stop('SIGKILL');
    await moto?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('aws CLI: s3 ls → s3:ListAllMyBuckets, head-object → s3:GetObject, sts get-caller-identity → nothing', () => {
    expect(actions(policies['policy-cli']!)).toEqual({
      's3:ListAllMyBuckets': ['*'],
      's3:CreateBucket': ['arn:aws:s3:::*'],
      's3:GetObject': ['arn:aws:s3:::*/*'],
    });
  });

  it('boto3: ARNs carry the Region and the account decoded from the access key id; batches and transactions map to single actions', () => {
    expect(actions(policies['policy-boto3']!)).toEqual({
      'dynamodb:CreateTable': [`arn:aws:dynamodb:us-east-1:${ACCOUNT}:table/*`],
      'dynamodb:PutItem': [`arn:aws:dynamodb:us-east-1:${ACCOUNT}:table/*`],
      'dynamodb:GetItem': [`arn:aws:dynamodb:us-east-1:${ACCOUNT}:table/*`],
      'sqs:CreateQueue': [`arn:aws:sqs:us-east-1:${ACCOUNT}:*`],
      'sqs:SendMessage': [`arn:aws:sqs:us-east-1:${ACCOUNT}:*`],
    });
  });

  it('JS v2: a failed call counts; STS needs nothing', () => {
    expect(actions(policies['policy-js']!)).toEqual({
      'dynamodb:ListTables': ['*'],
      'lambda:ListFunctions': ['*'],
    });
  });

  it('GET /policy lists every client (split by process), the mapping provenance and the counters; the access key is never shown', () => {
    expect([...new Set(all.clients.map((c: any) => c.client))].sort()).toEqual(['policy-boto3', 'policy-cli', 'policy-js']);
    // Process identity is on (auto, loopback): where the sender was found in time (a short-lived
    // CLI process may be gone first), its program splits the client's policy.
    for (const c of all.clients) expect(c.label).toBe(c.process === undefined ? c.client : `${c.client} [${c.process}]`);
    expect(all.mapping.sources.iamData).toMatch(/^0\.\d+\.\d+$/);
    expect(all.counters.droppedCalls).toBe(0);
    expect(JSON.stringify(all)).not.toContain(ACCESS_KEY);
    expect(readFileSync(policyFile, 'utf8')).not.toContain(ACCESS_KEY);
  });

  it('SIGHUP wrote the policy file at once; SIGTERM flushed and exited 0', () => {
    expect(Object.keys(afterHup.policies).sort()).toEqual(all.clients.map((c: any) => c.label).sort());
    expect(exitCode).toBe(0);
  });

  it('policy FILE on the recording gives the same policy as the live bridge', async () => {
    const r = await runCli(['policy', recording, '--client', 'policy-cli']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual(policies['policy-cli']);
    const every = await runCli(['policy', recording]);
    expect(Object.keys(JSON.parse(every.stdout)).sort()).toEqual(['policy-boto3', 'policy-cli', 'policy-js']);
    const missing = await runCli(['policy', recording, '--client', 'nobody']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/no client "nobody" .*"policy-cli"/);
    const unreadable = await runCli(['policy', join(dir, 'nope.jsonl')]);
    expect(unreadable.code).toBe(2);
    expect(unreadable.stderr).toMatch(/cannot read .*nope\.jsonl/);
  });

  it('--policy-file accumulates across a restart', async () => {
    const again = await startBridge(['--policy-file', policyFile, '--policy-write-delay-ms', '200', '--no-ui']);
    try {
      const before = await policyOf(again, 'policy-cli');
      expect(before).toEqual(policies['policy-cli']);
      expect(await aws(again.udpPort, ['s3api', 'list-objects-v2', '--bucket', 'pol'])).toBe(0);
      await waitFor(async () => 's3:ListBucket' in actions(await policyOf(again, 'policy-cli')));
      const unknown = await getJson(`${again.adminUrl}/policy?client=nobody`);
      expect(unknown.status).toBe(404);
      expect(unknown.body.clients.some((l: string) => l.startsWith('policy-cli'))).toBe(true);
    } finally {
      expect(await again.stop('SIGTERM')).toBe(0);
    }
    const saved = JSON.parse(readFileSync(policyFile, 'utf8'));
    const cli = Object.entries(saved.policies).filter(([k]) => k.startsWith('policy-cli'));
    expect(cli.some(([, d]) => actions(d as Doc)['s3:ListBucket']?.[0] === 'arn:aws:s3:::*')).toBe(true);
  });

  it('a corrupt policy file stops the bridge with exit 2 naming the file, and is left as it was', async () => {
    const bad = join(dir, 'corrupt.json');
    writeFileSync(bad, '{"observed": {"version": 1, "subjects": [ {"client": 7');
    const child = spawn(process.execPath, [CLI, '--listen', '127.0.0.1:0', '--admin', 'off', '--no-ui', '--policy-file', bad], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const code = await new Promise<number | null>((r) => child.on('exit', r));
    expect(code).toBe(2);
    expect(err).toContain(bad);
    expect(readFileSync(bad, 'utf8')).toBe('{"observed": {"version": 1, "subjects": [ {"client": 7');
  });
});
