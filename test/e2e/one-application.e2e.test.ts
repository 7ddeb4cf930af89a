import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBridge, type BridgeProcess } from '../helpers/bridge-process.js';
import { startFakeS3, type FakeS3 } from '../helpers/fake-s3.js';
import { startOtlpSink, type OtlpSink } from '../helpers/otlp-sink.js';
import { getStats, type Stats } from '../helpers/stats.js';
import { findTool, runAwsCli } from '../helpers/tools.js';

const AWS = findTool('aws');
/** Concurrent `aws` commands per round, and rounds at most (until both identification outcomes were seen). */
const PER_ROUND = 3;
const MAX_ROUNDS = 5;

/**
 * One application, one identity: short-lived `aws` commands under one AWS_CSM_CLIENT_ID. Some
 * are identified from /proc, others exit before the lookup (the /proc scan runs at most once a
 * second: of commands ending together, the first is found, the others are gone). Either way
 * they are one policy subject and one active client.
 */
describe.skipIf(process.platform !== 'linux' || !AWS)('one ClientId, many short-lived aws CLI processes: one application', () => {
  let sink: OtlpSink;
  let fake: FakeS3;
  let bridge: BridgeProcess;
  let stats: Stats;
  let policy: { clients: { label: string; client: string; process?: string; policy: { Statement: { Action: string[] }[] } }[] };
  const exits: number[] = [];

  beforeAll(async () => {
    sink = await startOtlpSink();
    fake = await startFakeS3({ 'GET /': [200], 'HEAD /one-app-bucket/k': [200] });
    bridge = await startBridge(['--no-ui', '--export-delay-ms', '200', '--metrics-interval-ms', '500'], { OTEL_EXPORTER_OTLP_ENDPOINT: sink.url });
    const aws = async (args: string[]) => exits.push(await runAwsCli(AWS!, args, { csmPort: bridge.udpPort, clientId: 'one-app', endpoint: fake.url }));
    const calls = [['s3api', 'list-buckets'], ['s3api', 'head-object', '--bucket', 'one-app-bucket', '--key', 'k']];
    for (let round = 0; round < MAX_ROUNDS; round++) {
      await Promise.all(Array.from({ length: PER_ROUND }, (_, i) => aws(calls[i % 2]!)));
      await sink.waitFor(() => sink.spans.filter((s) => s.parentSpanId === '').length >= exits.length, 30_000);
      stats = await getStats(bridge);
      if (stats.identity.resolved > 0 && stats.identity.unresolved > 0) break;
    }
    policy = (await (await fetch(`${bridge.adminUrl}/policy`)).json()) as typeof policy;
  }, 180_000);

  afterAll(async () => {
    await bridge?.stop('SIGTERM');
    await fake?.close();
    await sink?.close();
  });

  it('the runs included identified and unidentified processes (else this test proves nothing)', () => {
    expect(exits.length).toBeGreaterThanOrEqual(PER_ROUND);
    expect(exits.every((code) => code === 0)).toBe(true);
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
