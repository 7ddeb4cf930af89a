/**
 * AWS calls inside the application's own trace, end to end with real parts: a Node application
 * with aws-sdk v2 (CSM on) and the real @opentelemetry/instrumentation-aws-sdk 0.50.0, its spans
 * exported with the SDK's default BatchSpanProcessor timing to the bridge's app span listener
 * (http/protobuf, then gRPC); calls against moto_server and against an endpoint that answers
 * 503, 503, then 200. What arrives at the strict OTLP sink is checked: every app SDK span that
 * carries a request id has its CSM attempts below it, in its trace, under the app's resource;
 * the retried call shows its three attempts; a call the app did not trace arrives standalone
 * once the join window has passed. The bridge runs its shipped defaults (addresses aside).
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBridge, type BridgeProcess } from '../helpers/bridge-process.js';
import { startFakeS3, type FakeS3 } from '../helpers/fake-s3.js';
import { startOtlpSink, type OtlpSink, type SinkSpan } from '../helpers/otlp-sink.js';
import { getStats, type Stats } from '../helpers/stats.js';
import { findTool, freePort, startMoto, type Moto } from '../helpers/tools.js';

const run = promisify(execFile);
const APP = join(import.meta.dirname, 'clients', 'js-v2-traced.cjs');
const CLIENT_ID = 'traced-app-csm';

interface AppSpanLine {
  span: string;
  traceId: string;
  spanId: string;
  kind: number;
  requestId: string | null;
  endMs: number;
}

describe.each(['http', 'grpc'] as const)('app traces joined over OTLP/%s', (protocol) => {
  const moto_server = findTool('moto_server');
  let sink: OtlpSink;
  let moto: Moto;
  let scripted: FakeS3;
  let bridge: BridgeProcess;
  let appSpans: AppSpanLine[];
  let calls: { call: string; ok: boolean }[];
  let stats: Stats;
  /** When each joined span first showed at the sink (ms since epoch), by span id. */
  const seenAt = new Map<string, number>();

  beforeAll(async () => {
    if (moto_server === undefined) return;
    sink = await startOtlpSink();
    moto = await startMoto(moto_server);
    scripted = await startFakeS3({ 'GET /': [503, 503, 200] });
    const appPort = await freePort();
    const flag = protocol === 'http' ? '--app-otlp-http' : '--app-otlp-grpc';
    bridge = await startBridge([flag, `127.0.0.1:${appPort}`], { OTEL_EXPORTER_OTLP_ENDPOINT: sink.url });
    const endpoint = protocol === 'http' ? `http://127.0.0.1:${appPort}/v1/traces` : `http://127.0.0.1:${appPort}`;
    const watch = setInterval(() => {
      for (const s of sink.spans) if (!seenAt.has(s.spanId)) seenAt.set(s.spanId, Date.now());
    }, 50);
    try {
      const { stdout } = await run(process.execPath, [APP, protocol, endpoint, moto.url, scripted.url], {
        env: {
          PATH: process.env['PATH'] ?? '',
          AWS_CSM_ENABLED: 'true',
          AWS_CSM_PORT: String(bridge.udpPort),
          AWS_CSM_CLIENT_ID: CLIENT_ID,
          AWS_ACCESS_KEY_ID: 'AKIAIOSFODNN7EXAMPLE',
          AWS_SECRET_ACCESS_KEY: 'e2e-secret',
          AWS_SDK_JS_SUPPRESS_MAINTENANCE_MODE_MESSAGE: '1',
        },
        timeout: 40_000,
      });
      const lines = stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
      appSpans = lines.filter((l) => 'span' in l) as unknown as AppSpanLine[];
      calls = lines.filter((l) => 'call' in l) as unknown as { call: string; ok: boolean }[];
      const sdkSpans = appSpans.filter((s) => s.requestId !== null);
      // Every joined call, and the untraced one standalone (after the join window).
      await sink.waitFor(
        () =>
          sdkSpans.every((a) => sink.spans.some((s) => s.parentSpanId === a.spanId)) &&
          sink.spans.some((s) => s.parentSpanId === '' && s.name === 'S3.ListBuckets'),
        30_000,
      );
      stats = await getStats(bridge);
    } finally {
      clearInterval(watch);
    }
  }, 90_000);

  afterAll(async () => {
    await bridge?.stop();
    await Promise.all([sink?.close(), moto?.close(), scripted?.close()]);
  });

  it('every app SDK span with a request id has its CSM attempts below it, in its trace, under its resource', () => {
    if (moto_server === undefined) return;
    expect(calls.map((c) => [c.call, c.ok])).toEqual([
      ['CreateBucket', true],
      ['PutObject', true],
      ['GetObject', true],
      ['ListObjects', true],
      ['HeadMissing', false],
      ['ListBucketsRetried', true],
      ['Untraced', true],
    ]);
    const sdkSpans = appSpans.filter((s) => s.kind === 2 /* CLIENT in the JS API enum */ && s.span.startsWith('S3.'));
    expect(sdkSpans.map((s) => s.span)).toEqual(['S3.CreateBucket', 'S3.PutObject', 'S3.GetObject', 'S3.ListObjects', 'S3.HeadObject', 'S3.ListBuckets']);
    const withId = sdkSpans.filter((s) => s.requestId !== null);
    expect(withId.length).toBeGreaterThanOrEqual(5);
    for (const app of withId) {
      const below = sink.spans.filter((s) => s.parentSpanId === app.spanId);
      expect(below.length, app.span).toBeGreaterThan(0);
      for (const s of below) {
        expect(s.traceId).toBe(app.traceId);
        expect(s.resource['service.name']).toBe('traced-app');
        expect(s.kind).toBe(1); // INTERNAL: the default for attempts below an app span
        expect(s.attributes['csm.join']).toBe('request_id');
        expect(s.flags & 0x301).toBe(0x301); // sampled, with a remote parent
      }
      // The final attempt carries the id the app recorded, and the call-level facts.
      const last = below[below.length - 1]!;
      expect(last.attributes['aws.request_id']).toBe(app.requestId);
      expect(last.attributes['csm.client_id']).toBe(CLIENT_ID);
      expect(last.attributes['csm.attempt_count']).toBe(below.length);
    }
    // No second span of the same call in the app's trace: nothing the bridge sent there is a root.
    const appTraces = new Set(withId.map((a) => a.traceId));
    expect(sink.spans.filter((s) => appTraces.has(s.traceId) && s.parentSpanId === '')).toEqual([]);
    expect(stats.join.joined).toBe(withId.length);
    console.log(
      `[app-join ${protocol}] joined ${withId.length} of ${withId.length} app SDK spans with an id; ` +
        `export latency after the app span ended (ms): ${withId.map((a) => Math.round(seenAt.get(sink.spans.find((s) => s.parentSpanId === a.spanId)!.spanId)! - a.endMs)).join(', ')}`,
    );
  });

  it('the retried call shows its three attempts (503, 503, 200) below the app span', () => {
    if (moto_server === undefined) return;
    const app = appSpans.find((s) => s.span === 'S3.ListBuckets' && s.requestId !== null)!;
    const below = sink.spans.filter((s) => s.parentSpanId === app.spanId).sort((a, b) => Number(a.startTimeUnixNano - b.startTimeUnixNano));
    expect(below.map((s) => s.attributes['http.response.status_code'])).toEqual([503, 503, 200]);
    expect(below.map((s) => s.attributes['http.request.resend_count'])).toEqual([undefined, 1, 2]);
    expect(below[2]!.attributes['aws.request_id']).toBe(app.requestId);
    expect(below[2]!.attributes['csm.attempt_count']).toBe(3);
    expect(scripted.requestIds.get('GET /')!.slice(0, 3)).toEqual(below.map((s) => s.attributes['aws.request_id']));
  });

  it('a call the app did not trace arrives standalone, after the join window', () => {
    if (moto_server === undefined) return;
    const roots = sink.spans.filter((s: SinkSpan) => s.parentSpanId === '');
    expect(roots.map((s) => [s.name, s.resource['service.name']])).toEqual([['S3.ListBuckets', CLIENT_ID]]);
    expect(sink.spans.filter((s) => s.parentSpanId === roots[0]!.spanId).length).toBe(1);
    expect(stats.join.expiredUnjoined).toBe(1);
    expect(stats.appSpans.kept).toBeGreaterThanOrEqual(6);
    expect(stats.appSpans.rejected).toEqual({ malformed: 0, too_large: 0, unsupported_media_type: 0, not_found: 0, timeout: 0 });
  });
});
