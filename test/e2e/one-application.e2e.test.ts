import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBridge, type BridgeProcess } from '../helpers/bridge-process.js';
import { startFakeS3, type FakeS3 } from '../helpers/fake-s3.js';
import { startOtlpSink, type OtlpSink } from '../helpers/otlp-sink.js';
import { getStats, type Stats } from '../helpers/stats.js';
import { findTool, runAwsCli } from '../helpers/tools.js';

const AWS = findTool('aws');
const QUICK_RUNS = 6;

/**
 * One application, one identity: short-lived `aws` commands under one AWS_CSM_CLIENT_ID. Some
 * are identified from /proc (one that retries lives long enough), most exit before the lookup
 * (the /proc scan runs at most once a second). Either way they are one policy subject and one
 * active client.
 */
describe.skipIf(process.platform !== 'linux' || !AWS)('one ClientId, many short-lived aws CLI processes: one application', () => {
  let sink: OtlpSink;
  let fake: FakeS3;
  let slow: FakeS3;
  let bridge: BridgeProcess;
  let stats: Stats;
  let policy: { clients: { label: string; client: string; process?: string; policy: { Statement: { Action: string[] }[] } }[] };
  const exits: number[] = [];

  beforeAll(async () => {
    sink = await startOtlpSink();
    fake = await startFakeS3({ 'GET /': [200], 'HEAD /one-app-bucket/k': [200] });
    // 503, 503, 200 with standard retries: this process lives on for seconds after its first datagram.
    slow = await startFakeS3({ 'GET /': [503, 503, 200] });
    bridge = await startBridge(['--no-ui', '--export-delay-ms', '200', '--metrics-interval-ms', '500'], { OTEL_EXPORTER_OTLP_ENDPOINT: sink.url });
    const aws = async (endpoint: string, args: string[]) =>
      exits.push(await runAwsCli(AWS!, args, { csmPort: bridge.udpPort, clientId: 'one-app', endpoint, env: { AWS_RETRY_MODE: 'standard' } }));
    await aws(slow.url, ['s3api', 'list-buckets']);
    for (let i = 0; i < QUICK_RUNS; i++) await aws(fake.url, i % 2 ? ['s3api', 'head-object', '--bucket', 'one-app-bucket', '--key', 'k'] : ['s3api', 'list-buckets']);
    await sink.waitFor(() => sink.spans.filter((s) => s.parentSpanId === '').length >= QUICK_RUNS + 1, 30_000);
    stats = await getStats(bridge);
    policy = (await (await fetch(`${bridge.adminUrl}/policy`)).json()) as typeof policy;
  }, 180_000);

  afterAll(async () => {
    await bridge?.stop('SIGTERM');
    await fake?.close();
    await slow?.close();
    await sink?.close();
  });

  it('the runs included identified and unidentified processes (else this test proves nothing)', () => {
    expect(exits).toEqual(Array<number>(QUICK_RUNS + 1).fill(0));
    const roots = sink.spans.filter((s) => s.parentSpanId === '');
    expect(roots.every((s) => s.resource['service.name'] === 'one-app')).toBe(true);
    const identified = new Set(roots.map((s) => s.resource['process.pid']).filter((p) => p !== undefined));
    expect(identified.size).toBeGreaterThanOrEqual(1);
    expect(roots.filter((s) => s.resource['process.pid'] === undefined).length).toBeGreaterThanOrEqual(1);
    expect(stats.identity.resolved).toBeGreaterThanOrEqual(1);
    expect(stats.identity.unresolved).toBeGreaterThanOrEqual(1);
  });

  it('one policy subject for the ClientId, with every call\'s actions', () => {
    const mine = policy.clients.filter((c) => c.client === 'one-app');
    expect(mine.map((c) => c.label)).toEqual([`one-app [${mine[0]?.process}]`]);
    expect(mine[0]!.process).toMatch(/^python/);
    expect(mine[0]!.policy.Statement.flatMap((s) => s.Action).sort()).toEqual(['s3:GetObject', 's3:ListAllMyBuckets']);
  });

  it('/stats counts one active client: the application, not its processes', () => {
    expect(stats.clients).toMatchObject({ active: 1, overflowed: 0 });
  });
});
