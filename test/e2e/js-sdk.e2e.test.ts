import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBridge, type BridgeProcess } from '../helpers/bridge-process.js';
import { waitStats, type Stats } from '../helpers/stats.js';
import { startFakeS3, type FakeS3 } from '../helpers/fake-s3.js';
import { freePort, sendUdp } from '../helpers/tools.js';
import { startOtlpSink, type OtlpSink, type SinkSpan } from '../helpers/otlp-sink.js';

const run = promisify(execFile);
const CLIENT = join(import.meta.dirname, 'clients', 'js-v2-client.cjs');
const SESSION_TOKEN = `IQoJb3JpZ2luX2VjE-e2e-session-token-${process.pid}-never-export-me`;
const ACCESS_KEY = 'ASIAE2ETESTKEY987654';

const attr = (s: SinkSpan, k: string) => s.attributes[k];

describe.each(['http/protobuf', 'http/json'] as const)('real aws-sdk v2 → bridge → OTLP %s', (protocol) => {
  let sink: OtlpSink;
  let s3: FakeS3;
  let bridge: BridgeProcess;
  let clientOutput: { name: string; ok: boolean; code?: string; statusCode?: number; retryCount?: number }[];
  let exitCode: number | null;
  let statsBeforeStop: Stats;
  let healthBeforeStop: number;

  beforeAll(async () => {
    sink = await startOtlpSink();
    s3 = await startFakeS3({
      'GET /': [503, 200], // retried once, then succeeds
      'PUT /taken': [409], // a service error, not retried
      'HEAD /b1/missing': [404],
    });
    bridge = await startBridge(['--export-delay-ms', '200', '--metrics-interval-ms', '500', '--attempt-hold-ms', '600000'], {
      OTEL_EXPORTER_OTLP_ENDPOINT: sink.url,
      OTEL_EXPORTER_OTLP_PROTOCOL: protocol,
    });
    const { stdout } = await run(process.execPath, [CLIENT, s3.url, `http://127.0.0.1:${await freePort()}`], {
      env: {
        PATH: process.env['PATH'] ?? '',
        AWS_CSM_ENABLED: 'true',
        AWS_CSM_PORT: String(bridge.udpPort),
        AWS_CSM_CLIENT_ID: 'js-e2e',
        AWS_ACCESS_KEY_ID: ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY: 'e2e-secret-key-never-export',
        AWS_SESSION_TOKEN: SESSION_TOKEN,
        AWS_SDK_JS_SUPPRESS_MAINTENANCE_MODE_MESSAGE: '1',
      },
      timeout: 30_000,
    });
    clientOutput = stdout.trim().split('\n').map((l) => JSON.parse(l));
    await sink.waitFor(() => sink.spans.filter((s) => s.parentSpanId === '').length >= 4);

    // Garbage and an attempt that will never get its ApiCall (exported at shutdown).
    await sendUdp(bridge.udpPort, 'this is not json');
    await sendUdp(bridge.udpPort, JSON.stringify({ Version: 1, Type: 'Telemetry', Service: 'S3', Api: 'X', Timestamp: Date.now() }));
    await sendUdp(
      bridge.udpPort,
      JSON.stringify({
        Version: 1, Type: 'ApiCallAttempt', ClientId: 'js-e2e', Service: 'SQS', Api: 'SendMessage', Timestamp: Date.now(),
        AttemptLatency: 12, HttpStatusCode: 200, SessionToken: SESSION_TOKEN,
      }),
    );
    // Wait until the bridge has counted them all before reading /stats.
    statsBeforeStop = await waitStats(bridge, (s) => s.datagrams.received >= 14, 'every datagram read', 5_000);
    healthBeforeStop = (await fetch(`${bridge.adminUrl}/healthz`)).status;
    exitCode = await bridge.stop('SIGTERM');
  });

  afterAll(async () => {
    await bridge?.stop('SIGKILL');
    await s3?.close();
    await sink?.close();
  });

  const roots = () => sink.spans.filter((s) => s.parentSpanId === '' && s.attributes['csm.orphan'] !== true);
  const root = (name: string) => {
    const r = roots().filter((s) => s.name === name);
    expect(r, `exactly one ${name} span`).toHaveLength(1);
    return r[0]!;
  };
  const children = (p: SinkSpan) =>
    sink.spans.filter((s) => s.parentSpanId === p.spanId).sort((a, b) => Number(a.startTimeUnixNano - b.startTimeUnixNano));

  it('the client saw what the endpoint scripted', () => {
    expect(clientOutput).toEqual([
      { name: 'ListBuckets', ok: true },
      expect.objectContaining({ name: 'CreateBucket', ok: false, statusCode: 409 }),
      expect.objectContaining({ name: 'HeadObject', ok: false, statusCode: 404 }),
      expect.objectContaining({ name: 'DeadListBuckets', ok: false }),
    ]);
  });

  it('decodes every OTLP request strictly, in the chosen encoding', () => {
    expect(sink.errors).toEqual([]);
    expect(sink.requests.length).toBeGreaterThan(0);
    const want = protocol === 'http/json' ? 'json' : 'protobuf';
    expect(sink.requests.every((r) => r.encoding === want)).toBe(true);
  });

  it('one parent span per call, exactly its attempts as children, same trace', () => {
    expect(roots().map((s) => s.name).sort()).toEqual(['S3.CreateBucket', 'S3.HeadObject', 'S3.ListBuckets', 'S3.ListBuckets']);
    const all = roots().flatMap((r) => children(r));
    // 2 (retry) + 1 + 1 + 3 (closed port, maxRetries 2)
    expect(all).toHaveLength(7);
    for (const r of roots()) {
      expect(r.kind).toBe(3); // CLIENT
      expect(r.resource['service.name']).toBe('js-e2e');
      expect(r.scope.name).toBe('aws-csm-bridge');
      for (const c of children(r)) {
        expect(c.traceId).toBe(r.traceId);
        expect(c.name).toBe(`${r.name} attempt`);
        expect(c.startTimeUnixNano).toBeGreaterThanOrEqual(r.startTimeUnixNano);
        expect(c.endTimeUnixNano).toBeLessThanOrEqual(r.endTimeUnixNano);
      }
      expect(children(r).length).toBe(attr(r, 'csm.attempt_count'));
    }
  });

  it('a 503 retried to success: two attempts, the failed one ERROR, the call UNSET', () => {
    const call = roots().find((s) => s.name === 'S3.ListBuckets' && attr(s, 'csm.attempt_count') === 2)!;
    expect(call).toBeDefined();
    expect(call.status.code).toBe(0);
    expect(attr(call, 'http.response.status_code')).toBe(200);
    expect(attr(call, 'rpc.system')).toBe('aws-api');
    expect(attr(call, 'rpc.service')).toBe('S3');
    expect(attr(call, 'rpc.method')).toBe('ListBuckets');
    expect(attr(call, 'cloud.region')).toBe('us-west-2');
    expect(attr(call, 'csm.client_id')).toBe('js-e2e');
    expect(attr(call, 'error.type')).toBeUndefined();
    expect(attr(call, 'aws.request_id')).toBe(s3.requestIds.get('GET /')![1]);
    const [first, second] = children(call);
    expect(first!.status.code).toBe(2);
    expect(attr(first!, 'http.response.status_code')).toBe(503);
    expect(attr(first!, 'error.type')).toBe('SlowDown');
    expect(attr(first!, 'csm.attempt.number')).toBe(1);
    expect(first!.events.map((e) => [e.name, e.attributes['exception.type']])).toEqual([['exception', 'SlowDown']]);
    expect(attr(first!, 'aws.request_id')).toBe(s3.requestIds.get('GET /')![0]);
    expect(second!.status.code).toBe(0);
    expect(attr(second!, 'http.response.status_code')).toBe(200);
    expect(attr(second!, 'http.request.resend_count')).toBe(1);
    expect(attr(second!, 'csm.attempt.number')).toBe(2);
    expect(attr(second!, 'server.address')).toBe('127.0.0.1');
  });

  it('a 409 and a 404 are ERROR calls with error.type and one exception event', () => {
    const create = root('S3.CreateBucket');
    expect(create.status.code).toBe(2);
    expect(attr(create, 'error.type')).toBe('BucketAlreadyExists');
    expect(attr(create, 'http.response.status_code')).toBe(409);
    expect(create.events.filter((e) => e.name === 'exception')).toHaveLength(1);
    const head = root('S3.HeadObject');
    expect(head.status.code).toBe(2);
    expect(attr(head, 'error.type')).toBe('NotFound');
    expect(attr(head, 'http.response.status_code')).toBe(404);
  });

  it('connection refused: three failed attempts, the call failed with the SDK error', () => {
    const dead = roots().find((s) => s.name === 'S3.ListBuckets' && attr(s, 'csm.attempt_count') === 3)!;
    expect(dead).toBeDefined();
    expect(dead.status.code).toBe(2);
    expect(attr(dead, 'error.type')).toBe('UnknownEndpoint');
    expect(attr(dead, 'http.response.status_code')).toBeUndefined();
    expect(children(dead).every((c) => c.status.code === 2 && attr(c, 'error.type') === 'UnknownEndpoint')).toBe(true);
  });

  it('an attempt without its call is exported at shutdown as an orphan', () => {
    const orphans = sink.spans.filter((s) => s.attributes['csm.orphan'] === true);
    expect(orphans.map((s) => [s.name, s.parentSpanId, attr(s, 'csm.orphan_reason')])).toEqual([['SQS.SendMessage attempt', '', 'shutdown']]);
  });

  it('metrics totals match the calls', () => {
    const calls = sink.latestMetric('rpc.client.call.duration');
    const byMethod = new Map<string, number>();
    for (const p of calls) byMethod.set(String(p.attributes['rpc.method']), (byMethod.get(String(p.attributes['rpc.method'])) ?? 0) + p.count!);
    expect(Object.fromEntries(byMethod)).toEqual({ ListBuckets: 2, CreateBucket: 1, HeadObject: 1 });
    expect(calls.every((p) => p.unit === 's' && p.resource['service.name'] === 'js-e2e')).toBe(true);
    const failed = calls.filter((p) => p.attributes['error.type'] !== undefined).reduce((n, p) => n + p.count!, 0);
    expect(failed).toBe(3);
    const retries = sink.latestMetric('csm.call.retries').reduce((n, p) => n + p.value!, 0);
    expect(retries).toBe(1 + 2);
    const attempts = sink.latestMetric('csm.attempt.duration').reduce((n, p) => n + p.count!, 0);
    expect(attempts).toBe(7 + 1); // + the orphan
  });

  it('bridge self-metrics arrive under the bridge resource', () => {
    const d = sink.latestMetric('csm.bridge.datagrams');
    expect(d.every((p) => p.resource['service.name'] === 'aws-csm-bridge')).toBe(true);
    const by = Object.fromEntries(d.map((p) => [p.attributes['csm.outcome'], p.value]));
    expect(by['accepted']).toBe(12);
    expect(by['malformed_json']).toBe(1);
    expect(by['unknown_type']).toBe(1);
  });

  it('/healthz and /stats describe the run; SIGTERM exits 0', () => {
    expect(healthBeforeStop).toBe(200);
    expect(statsBeforeStop.datagrams).toMatchObject({ received: 14, accepted: 12, rejected: { malformed_json: 1, unknown_type: 1 } });
    expect(statsBeforeStop.events).toEqual({ calls: 4, attempts: 8 });
    expect(statsBeforeStop.correlation).toMatchObject({ matched: 7, missingAttempts: 0, pendingAttempts: 1, pendingCalls: 0 });
    expect(exitCode).toBe(0);
  });

  it('never lets the session token, the secret key or the access key out', () => {
    const everything = Buffer.concat(sink.requests.flatMap((r) => [r.bytes, r.decodedBytes]));
    expect(everything.includes(SESSION_TOKEN)).toBe(false);
    expect(everything.includes('e2e-secret-key-never-export')).toBe(false);
    expect(everything.includes(ACCESS_KEY)).toBe(false);
    expect(bridge.stderr()).not.toContain(SESSION_TOKEN);
    expect(bridge.stdout()).not.toContain(SESSION_TOKEN);
  });
});
