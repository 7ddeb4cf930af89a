/**
 * Sampling that keeps what matters, end to end: real aws-sdk v2 calls (plain, retried after a
 * 503, failed with a 404) mixed with synthetic CSM datagrams (plain, failed with a 500, slow)
 * through a bridge run with OTEL_TRACES_SAMPLER=traceidratio, OTEL_TRACES_SAMPLER_ARG=0.1 and
 * --sample-keep errors,retries,slow:2000ms, to the strict OTLP sink. About 10 % of the plain
 * calls become traces, every failed, retried and slow call does, whole (call span and
 * attempts), and the metrics count every call.
 */
import { execFile } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBridge, type BridgeProcess } from '../helpers/bridge-process.js';
import { startFakeS3, type FakeS3 } from '../helpers/fake-s3.js';
import { startOtlpSink, type OtlpSink, type SinkSpan } from '../helpers/otlp-sink.js';
import { waitStats, type Stats } from '../helpers/stats.js';

const run = promisify(execFile);
const CLIENT = join(import.meta.dirname, 'clients', 'js-v2-calls.cjs');
const RATIO = 0.1;
const SDK = { plain: 300, retried: 20, failed: 20 };
const SYNTH = { plain: 2_000, failed: 100, slow: 50 };
const ALL_CALLS = SDK.plain + SDK.retried + SDK.failed + SYNTH.plain + SYNTH.failed + SYNTH.slow;

/** A synthetic call (attempt + ApiCall, JS v2 shapes) of one kind; Api names tell the kinds apart. */
function synthetic(i: number, kind: 'plain' | 'failed' | 'slow'): string[] {
  const t = Date.now() - 60_000 + i * 10;
  const api = kind === 'plain' ? 'ListBuckets' : kind === 'failed' ? 'PutObject' : 'GetObject';
  const latency = kind === 'slow' ? 5_000 : 23;
  const status = kind === 'failed' ? 500 : 200;
  const common = { Version: 1, Service: 'S3', Api: api, Region: 'us-east-1', ClientId: 'sampling-synth', UserAgent: 'aws-sdk-nodejs/2.1693.0 linux/v20.20.2 promise' };
  const attempt = {
    ...common,
    Type: 'ApiCallAttempt',
    Timestamp: t + 2,
    AttemptLatency: latency - 6,
    Fqdn: 's3.amazonaws.com',
    HttpStatusCode: status,
    XAmznRequestId: `synth-${kind}-${i}`,
    ...(kind === 'failed' ? { AwsException: 'InternalError', AwsExceptionMessage: 'We encountered an internal error' } : {}),
  };
  const call = {
    ...common,
    Type: 'ApiCall',
    Timestamp: t,
    Latency: latency,
    AttemptCount: 1,
    FinalHttpStatusCode: status,
    MaxRetriesExceeded: 0,
    ...(kind === 'failed' ? { FinalAwsException: 'InternalError', FinalAwsExceptionMessage: 'We encountered an internal error' } : {}),
  };
  return [JSON.stringify(attempt), JSON.stringify(call)];
}

describe('sampling: traceidratio 0.1 with --sample-keep errors,retries,slow:2000ms, real SDK traffic mixed with synthetic calls', () => {
  let sink: OtlpSink;
  let s3: FakeS3;
  let bridge: BridgeProcess;
  let udp: Socket;
  let stats: Stats;
  let sdkOut: { plain: number; retried: number; failed: number; unexpected: string[] };

  beforeAll(async () => {
    sink = await startOtlpSink();
    s3 = await startFakeS3({
      'GET /': [200],
      // Each retried call: a 503 (SlowDown), then a 200.
      'GET /b/retried': Array.from({ length: 2 * SDK.retried }, (_, i) => (i % 2 === 0 ? 503 : 200)),
      'HEAD /b/missing': [404],
    });
    bridge = await startBridge(['--sample-keep', 'errors,retries,slow:2000ms', '--export-delay-ms', '200', '--metrics-interval-ms', '500', '--attempt-hold-ms', '600000'], {
      OTEL_EXPORTER_OTLP_ENDPOINT: sink.url,
      OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
      OTEL_TRACES_SAMPLER_ARG: String(RATIO),
    });
    const sdk = run(process.execPath, [CLIENT, s3.url, String(SDK.plain), String(SDK.retried), String(SDK.failed)], {
      env: {
        PATH: process.env['PATH'] ?? '',
        AWS_CSM_ENABLED: 'true',
        AWS_CSM_PORT: String(bridge.udpPort),
        AWS_CSM_CLIENT_ID: 'sampling-sdk',
        AWS_ACCESS_KEY_ID: 'AKIASAMPLINGE2E00000',
        AWS_SECRET_ACCESS_KEY: 'sampling-e2e-secret',
        AWS_SDK_JS_SUPPRESS_MAINTENANCE_MODE_MESSAGE: '1',
      },
      timeout: 60_000,
    });
    udp = createSocket('udp4');
    const kinds = [
      ...Array.from({ length: SYNTH.plain }, () => 'plain' as const),
      ...Array.from({ length: SYNTH.failed }, () => 'failed' as const),
      ...Array.from({ length: SYNTH.slow }, () => 'slow' as const),
    ];
    for (let i = 0; i < kinds.length; i++) {
      const k = kinds[(i * 7919) % kinds.length]!; // spread the kinds over the run
      for (const d of synthetic(i, k)) await new Promise<void>((res, rej) => udp.send(d, bridge.udpPort, '127.0.0.1', (e) => (e ? rej(e) : res())));
      if (i % 100 === 99) await new Promise((r) => setTimeout(r, 2));
    }
    sdkOut = JSON.parse((await sdk).stdout.trim()) as typeof sdkOut;
    stats = await waitStats(bridge, (s) => s.sampling.kept + s.sampling.sampledOut === ALL_CALLS && s.spans.exported === s.spans.created, 'every call decided and exported', 60_000);
    await sink.waitFor(() => callCounts().total === ALL_CALLS, 20_000);
  }, 120_000);

  afterAll(async () => {
    udp?.close();
    await bridge?.stop('SIGTERM');
    await s3?.close();
    await sink?.close();
  });

  /** rpc.client.call.duration counts of the newest metric export, per client. */
  function callCounts(): { total: number; byClient: Record<string, number> } {
    const byClient: Record<string, number> = {};
    for (const client of ['sampling-sdk', 'sampling-synth']) {
      const points = sink.metricPoints.filter((p) => p.name === 'rpc.client.call.duration' && p.resource['service.name'] === client);
      const latest = Math.max(-1, ...points.map((p) => p.requestIndex));
      byClient[client] = points.filter((p) => p.requestIndex === latest).reduce((n, p) => n + (p.count ?? 0), 0);
    }
    return { total: Object.values(byClient).reduce((a, b) => a + b, 0), byClient };
  }

  const roots = (client: string, name: string): SinkSpan[] =>
    sink.spans.filter((s) => s.parentSpanId === '' && s.resource['service.name'] === client && s.name === name);

  it('the SDK made the calls the test scripted', () => {
    expect(sdkOut).toEqual({ ...SDK, unexpected: [] });
  });

  it('every failed, retried and slow call is kept, with all its attempts', () => {
    expect(sink.errors).toEqual([]);
    expect(roots('sampling-sdk', 'S3.HeadObject')).toHaveLength(SDK.failed);
    expect(roots('sampling-sdk', 'S3.GetObject')).toHaveLength(SDK.retried);
    expect(roots('sampling-synth', 'S3.PutObject')).toHaveLength(SYNTH.failed);
    expect(roots('sampling-synth', 'S3.GetObject')).toHaveLength(SYNTH.slow);
    // A kept call is kept whole: the retried ones have both attempts under them.
    for (const r of roots('sampling-sdk', 'S3.GetObject')) {
      expect(sink.spans.filter((s) => s.parentSpanId === r.spanId && s.traceId === r.traceId)).toHaveLength(2);
    }
    // No orphan attempts: a dropped call takes its attempts with it.
    const spanIds = new Set(sink.spans.map((s) => s.spanId));
    expect(sink.spans.filter((s) => s.parentSpanId !== '' && !spanIds.has(s.parentSpanId))).toEqual([]);
  });

  it(`about ${RATIO * 100} % of the plain calls are kept`, () => {
    const kept = roots('sampling-sdk', 'S3.ListBuckets').length + roots('sampling-synth', 'S3.ListBuckets').length;
    const plain = SDK.plain + SYNTH.plain;
    // Binomial(2300, 0.1): mean 230, sd 14.4; the bounds are more than 5 sd away.
    expect(kept / plain).toBeGreaterThan(0.065);
    expect(kept / plain).toBeLessThan(0.135);
    expect(stats.sampling.keptBy.sampled).toBe(kept);
    expect(stats.sampling.sampledOut).toBe(plain - kept);
  });

  it('/stats counts what was kept, why, and what was sampled out', () => {
    expect(stats.sampling.kept + stats.sampling.sampledOut).toBe(ALL_CALLS);
    expect(stats.sampling.keptBy.error).toBe(SDK.failed + SYNTH.failed);
    expect(stats.sampling.keptBy.retry).toBe(SDK.retried);
    expect(stats.sampling.keptBy.slow).toBe(SYNTH.slow);
    expect(stats.spans.created).toBe(sink.spans.length);
  });

  it('the metrics count every call, sampled or not', () => {
    expect(callCounts().byClient).toEqual({
      'sampling-sdk': SDK.plain + SDK.retried + SDK.failed,
      'sampling-synth': SYNTH.plain + SYNTH.failed + SYNTH.slow,
    });
  });
});
