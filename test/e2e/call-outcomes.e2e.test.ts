import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, startBridge, type BridgeProcess } from '../helpers/bridge-process.js';
import { startFakeS3, type FakeS3 } from '../helpers/fake-s3.js';
import { startOtlpSink, type OtlpSink, type SinkSpan } from '../helpers/otlp-sink.js';
import { getStats, type Stats } from '../helpers/stats.js';
import { findTool, freePort, runAwsCli } from '../helpers/tools.js';

const AWS = findTool('aws');

/**
 * What a call's outcome says, with the real aws CLI (botocore, standard retries: 3 attempts)
 * against scripted loopback endpoints: a call that succeeded on its third attempt is not
 * "given up" (botocore still sends MaxRetriesExceeded=1), a call whose three attempts all
 * failed is; and a call no service answered (a closed port) stays out of the IAM policy.
 */
describe.skipIf(!AWS)('call outcomes: retried successes, give-ups, calls no service answered (real aws CLI)', () => {
  let sink: OtlpSink;
  let ok: FakeS3;
  let down: FakeS3;
  let closedPort: number;
  let bridge: BridgeProcess;
  let dir: string;
  let recording: string;
  let stats: Stats;
  let live: { outcomes: unknown; noAnswer: number };
  const exits: Record<string, number> = {};

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'csm-outcomes-'));
    recording = join(dir, 'calls.jsonl');
    sink = await startOtlpSink();
    ok = await startFakeS3({ 'GET /': [503, 503, 200], 'PUT /outcome-bucket': [200], 'HEAD /outcome-bucket/present': [200], 'HEAD /outcome-bucket/missing': [404] });
    down = await startFakeS3({ 'GET /': [503] });
    closedPort = await freePort();
    bridge = await startBridge(['record', recording, '--no-ui', '--export-delay-ms', '200', '--metrics-interval-ms', '500'], { OTEL_EXPORTER_OTLP_ENDPOINT: sink.url });
    const aws = async (name: string, clientId: string, endpoint: string, args: string[]) => {
      exits[name] = await runAwsCli(AWS!, args, { csmPort: bridge.udpPort, clientId, endpoint, env: { AWS_RETRY_MODE: 'standard' } });
    };
    await aws('retried-ok', 'outcomes', ok.url, ['s3api', 'list-buckets']);
    await aws('given-up', 'outcomes', down.url, ['s3api', 'list-buckets']);
    await aws('create', 'outcomes', ok.url, ['s3api', 'create-bucket', '--bucket', 'outcome-bucket']);
    await aws('head', 'outcomes', ok.url, ['s3api', 'head-object', '--bucket', 'outcome-bucket', '--key', 'present']);
    await aws('head-missing', 'outcomes', ok.url, ['s3api', 'head-object', '--bucket', 'outcome-bucket', '--key', 'missing']);
    const closed = `http://127.0.0.1:${closedPort}`;
    await aws('refused-list', 'no-answer', closed, ['s3api', 'list-buckets']);
    await aws('refused-put', 'no-answer', closed, ['s3api', 'put-object', '--bucket', 'outcome-bucket', '--key', 'k']);
    await sink.waitFor(
      () => sink.spans.filter((s) => s.parentSpanId === '').length >= 7 && sink.metricPoints.some((p) => p.name === 'csm.call.max_retries_exceeded' && p.resource['service.name'] === 'no-answer'),
      60_000,
    );
    stats = await getStats(bridge);
    const outcomes = await fetch(`${bridge.adminUrl}/policy?client=outcomes`);
    const noAnswer = await fetch(`${bridge.adminUrl}/policy?client=no-answer`);
    live = { outcomes: await outcomes.json(), noAnswer: noAnswer.status };
    expect(await bridge.stop('SIGTERM')).toBe(0);
  }, 180_000);

  afterAll(async () => {
    await bridge?.stop('SIGKILL');
    await ok?.close();
    await down?.close();
    await sink?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const roots = () => sink.spans.filter((s) => s.parentSpanId === '');
  const children = (p: SinkSpan) => sink.spans.filter((s) => s.parentSpanId === p.spanId);
  const onPort = (url: string) => (s: SinkSpan) => s.attributes['server.port'] === Number(new URL(url).port);
  const one = (name: string, pred: (s: SinkSpan) => boolean) => {
    const r = roots().filter((s) => s.name === name && pred(s));
    expect(r, name).toHaveLength(1);
    return r[0]!;
  };
  const actionsOf = (doc: any): string[] => doc.Statement.flatMap((s: { Action: string[] }) => s.Action).sort();

  it('the CLI commands ran as scripted', () => {
    expect(exits).toEqual({ 'retried-ok': 0, 'given-up': 255, create: 0, head: 0, 'head-missing': 255, 'refused-list': 255, 'refused-put': 255 });
    expect(ok.requestIds.get('GET /')).toHaveLength(3);
    expect(down.requestIds.get('GET /')).toHaveLength(3);
  });

  it('503, 503, 200: OK after 3 attempts, not given up; the SDK\'s flag says the success came on the last allowed attempt', () => {
    const s = one('S3.ListBuckets', onPort(ok.url));
    expect(s.status.code).toBe(0);
    expect(s.attributes['http.response.status_code']).toBe(200);
    expect(s.attributes['csm.attempt_count']).toBe(3);
    expect(children(s).map((c) => c.attributes['http.response.status_code'])).toEqual([503, 503, 200]);
    expect(s.attributes['csm.max_retries_exceeded']).toBeUndefined();
    expect(s.attributes['csm.succeeded_on_last_allowed_attempt']).toBe(true);
  });

  it('503 three times, and a closed port three times: given up', () => {
    const s = one('S3.ListBuckets', onPort(down.url));
    expect([s.status.code, s.attributes['http.response.status_code'], s.attributes['error.type']]).toEqual([2, 503, 'SlowDown']);
    expect(s.attributes['csm.max_retries_exceeded']).toBe(true);
    expect(s.attributes['csm.succeeded_on_last_allowed_attempt']).toBeUndefined();
    for (const name of ['S3.ListBuckets', 'S3.PutObject']) {
      const r = one(name, (x) => x.resource['service.name'] === 'no-answer');
      expect([r.status.code, r.attributes['csm.attempt_count'], r.attributes['csm.max_retries_exceeded']]).toEqual([2, 3, true]);
    }
  });

  it('the csm.call.max_retries_exceeded metric counts the give-ups only', () => {
    // Each ClientId exports its own metrics: the latest (cumulative) export of each.
    const latest = (service: string) => {
      const of = sink.metricPoints.filter((p) => p.name === 'csm.call.max_retries_exceeded' && p.resource['service.name'] === service);
      const last = Math.max(...of.map((p) => p.requestIndex));
      return of.filter((p) => p.requestIndex === last).map((p) => [p.attributes['rpc.method'], p.attributes['error.type'], p.value]);
    };
    expect(latest('outcomes')).toEqual([['ListBuckets', 'SlowDown', 1]]);
    expect(latest('no-answer').sort()).toEqual([['ListBuckets', 'EndpointConnectionError', 1], ['PutObject', 'EndpointConnectionError', 1]]);
  });

  it('calls no service answered stay out of the policy, counted; the answered ones are in it', () => {
    expect(actionsOf(live.outcomes)).toEqual(['s3:CreateBucket', 's3:GetObject', 's3:ListAllMyBuckets']);
    expect(live.noAnswer).toBe(404);
    expect(stats.policy).toMatchObject({ observed: 7, unanswered: 2 });
  });

  it('policy FILE --fails-only: the failed calls that reached a service; notes only for calls in the output; the unanswered ones named', async () => {
    const r = await runCli(['policy', recording, '--fails-only']);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(Object.keys(out)).toEqual(['outcomes']);
    // The given-up ListBuckets and the 404 HeadObject failed; CreateBucket succeeded.
    expect(actionsOf(out['outcomes'])).toEqual(['s3:GetObject', 's3:ListAllMyBuckets']);
    const noted = [...r.stderr.matchAll(/^outcomes: (\S+) may also need/gm)].map((m) => m[1]);
    expect(noted).toEqual(['S3.HeadObject']);
    expect(r.stderr).not.toMatch(/no-answer/);
    expect(r.stderr).toMatch(/^note: 2 calls left out: no service answered .*: S3\.ListBuckets ×1, S3\.PutObject ×1$/m);
  });
});
