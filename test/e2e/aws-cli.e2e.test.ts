import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBridge, type BridgeProcess } from '../helpers/bridge-process.js';
import { startOtlpSink, type OtlpSink, type SinkSpan } from '../helpers/otlp-sink.js';
import { findTool, runAwsCli, startMoto, type Moto } from '../helpers/tools.js';

const AWS = findTool('aws');
const MOTO = findTool('moto_server');
const SESSION_TOKEN = `FwoGZXIvYXdzEBYaDCLI-e2e-token-${process.pid}-must-never-leave`;

/**
 * The real aws CLI (botocore) against moto_server, with CSM on: one CLI
 * process per command, one source port each, as users run it.
 */
describe.skipIf(!AWS || !MOTO)('real aws CLI + moto_server → bridge → OTLP (protobuf)', () => {
  let sink: OtlpSink;
  let moto: Moto;
  let bridge: BridgeProcess;
  const exits: Record<string, number> = {};
  let exitCode: number | null;

  const aws = async (name: string, args: string[]) => {
    exits[name] = await runAwsCli(AWS!, args, { csmPort: bridge.udpPort, clientId: 'cli-e2e', endpoint: moto.url, sessionToken: SESSION_TOKEN });
  };

  beforeAll(async () => {
    sink = await startOtlpSink();
    moto = await startMoto(MOTO!);
    bridge = await startBridge(['--export-delay-ms', '200', '--metrics-interval-ms', '500'], {
      OTEL_EXPORTER_OTLP_ENDPOINT: sink.url,
    });
    const bucket = ['--bucket', 'csm-e2e', '--create-bucket-configuration', 'LocationConstraint=us-west-2'];
    await aws('create', ['s3api', 'create-bucket', ...bucket]);
    await aws('create-again', ['s3api', 'create-bucket', ...bucket]); // 409 BucketAlreadyOwnedByYou
    await aws('head-missing', ['s3api', 'head-object', '--bucket', 'csm-e2e', '--key', 'missing.txt']); // 404
    await aws('describe-missing', ['dynamodb', 'describe-table', '--table-name', 'nope']); // 400
    await aws('whoami', ['sts', 'get-caller-identity']);
    await sink.waitFor(() => sink.spans.filter((s) => s.parentSpanId === '').length >= 5, 30_000);
    exitCode = await bridge.stop('SIGTERM');
  }, 180_000);

  afterAll(async () => {
    await bridge?.stop('SIGKILL');
    await moto?.close();
    await sink?.close();
  });

  const roots = () => sink.spans.filter((s) => s.parentSpanId === '');
  const one = (name: string, pred: (s: SinkSpan) => boolean = () => true) => {
    const r = roots().filter((s) => s.name === name && pred(s));
    expect(r, name).toHaveLength(1);
    return r[0]!;
  };
  const children = (p: SinkSpan) => sink.spans.filter((s) => s.parentSpanId === p.spanId);

  it('the CLI commands ran as scripted', () => {
    expect(exits).toEqual({ create: 0, 'create-again': 255, 'head-missing': 255, 'describe-missing': 255, whoami: 0 });
  });

  it('every call is one span with exactly its attempts under it', () => {
    expect(sink.errors).toEqual([]);
    expect(roots().map((s) => s.name).sort()).toEqual(['DynamoDB.DescribeTable', 'S3.CreateBucket', 'S3.CreateBucket', 'S3.HeadObject', 'STS.GetCallerIdentity']);
    for (const r of roots()) {
      expect(r.resource['service.name']).toBe('cli-e2e');
      const kids = children(r);
      expect(kids).toHaveLength(1);
      expect(kids[0]!.traceId).toBe(r.traceId);
      expect(kids[0]!.attributes['server.address']).toBe('127.0.0.1');
      expect(kids[0]!.attributes['server.port']).toBe(Number(new URL(moto.url).port));
    }
    expect(sink.spans).toHaveLength(10);
  });

  it('errors: 409, 404 and 400 are ERROR with the service error code', () => {
    const ok = one('S3.CreateBucket', (s) => s.status.code === 0);
    expect(ok.attributes['http.response.status_code']).toBe(200);
    const dup = one('S3.CreateBucket', (s) => s.status.code === 2);
    expect(dup.attributes['http.response.status_code']).toBe(409);
    expect(dup.attributes['error.type']).toBe('BucketAlreadyOwnedByYou');
    expect(dup.events.map((e) => e.attributes['exception.type'])).toEqual(['BucketAlreadyOwnedByYou']);
    const head = one('S3.HeadObject');
    expect([head.status.code, head.attributes['http.response.status_code'], head.attributes['error.type']]).toEqual([2, 404, '404']);
    const ddb = one('DynamoDB.DescribeTable');
    expect([ddb.status.code, ddb.attributes['http.response.status_code'], ddb.attributes['error.type']]).toEqual([2, 400, 'ResourceNotFoundException']);
    expect(String(ddb.status.message)).toContain('nope');
    const sts = one('STS.GetCallerIdentity');
    expect(sts.status.code).toBe(0);
    expect(typeof sts.attributes['aws.request_id']).toBe('string');
  });

  it('metrics and shutdown', () => {
    const calls = sink.latestMetric('rpc.client.call.duration');
    expect(calls.reduce((n, p) => n + p.count!, 0)).toBe(5);
    expect(calls.filter((p) => p.attributes['error.type'] !== undefined).reduce((n, p) => n + p.count!, 0)).toBe(3);
    expect(exitCode).toBe(0);
  });

  it('the session token never leaves the bridge', () => {
    const everything = Buffer.concat(sink.requests.flatMap((r) => [r.bytes, r.decodedBytes]));
    expect(everything.includes(SESSION_TOKEN)).toBe(false);
    expect(everything.includes('AKIAIOSFODNN7EXAMPLE')).toBe(false);
    expect(bridge.stderr()).not.toContain(SESSION_TOKEN);
  });
});
