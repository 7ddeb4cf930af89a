/**
 * Choosing exporters with the standard variables, through the built CLI: OTEL_SDK_DISABLED,
 * OTEL_TRACES_EXPORTER=none (metrics only over OTLP), console (OTLP/JSON lines on stdout) next to
 * otlp, OTEL_LOG_LEVEL, and exponential histograms, each checked at the strict OTLP sink.
 */
import { createSocket, type Socket } from 'node:dgram';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { runCli, startBridge, type BridgeProcess } from '../helpers/bridge-process.js';
import { readCapture } from '../helpers/captures.js';
import { decodeOtlpMetrics, decodeOtlpTraces, startOtlpSink, type OtlpSink } from '../helpers/otlp-sink.js';
import { waitStats } from '../helpers/stats.js';

const capture = readCapture('js_v2_sequential');
let udp: Socket;
let sink: OtlpSink;
const bridges: BridgeProcess[] = [];
beforeAll(async () => {
  udp = createSocket('udp4');
  await new Promise<void>((r) => udp.bind(0, '127.0.0.1', () => r()));
});
afterAll(() => udp.close());
beforeEach(async () => {
  sink = await startOtlpSink();
});
afterEach(async () => {
  for (const b of bridges.splice(0)) await b.stop('SIGKILL');
  await sink.close();
});

const start = async (env: Record<string, string>, args: string[] = []) => {
  const b = await startBridge(['--export-delay-ms', '100', '--metrics-interval-ms', '300', ...args], { OTEL_EXPORTER_OTLP_ENDPOINT: sink.url, ...env });
  bridges.push(b);
  return b;
};
/** The capture's datagrams (JS v2: calls with their attempts), sent as recorded. */
async function replayCapture(b: BridgeProcess): Promise<number> {
  for (const d of capture) await new Promise<void>((res, rej) => udp.send(d.raw, b.udpPort, '127.0.0.1', (e) => (e ? rej(e) : res())));
  return capture.filter((d) => (JSON.parse(d.raw) as { Type: string }).Type === 'ApiCall').length;
}
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('exporter selection', () => {
  it('OTEL_SDK_DISABLED=true: receives and counts, exports nothing, and says so once', async () => {
    const b = await start({ OTEL_SDK_DISABLED: 'true' });
    const calls = await replayCapture(b);
    const s = await waitStats(b, (x) => x.events.calls === calls, 'calls counted');
    await pause(1_000); // several export intervals
    expect(sink.requests).toHaveLength(0);
    expect([s.spans.created, s.sampling.kept, s.spool.queuedMetricExports]).toEqual([0, 0, 0]);
    expect(b.started['export']).toBe('none (OTEL_SDK_DISABLED=true)');
    expect(b.logs.filter((l) => String(l['msg']).startsWith('OTEL_SDK_DISABLED=true'))).toHaveLength(1);
    expect(await b.stop()).toBe(0);
  });

  it('OTEL_TRACES_EXPORTER=none: metrics only, no span encoded, metrics count every call', async () => {
    const b = await start({ OTEL_TRACES_EXPORTER: 'none' });
    const calls = await replayCapture(b);
    await sink.waitFor(() => sink.latestMetric('rpc.client.call.duration').reduce((n, p) => n + (p.count ?? 0), 0) === calls);
    const s = await waitStats(b, (x) => x.events.calls === calls, 'calls counted');
    expect([s.spans.created, s.sampling.kept, s.sampling.sampledOut]).toEqual([0, 0, 0]);
    expect(sink.requests.filter((r) => r.path === '/v1/traces')).toHaveLength(0);
    expect(sink.errors).toEqual([]);
    expect(b.started['otlpEndpoint'], 'no OTLP span endpoint is named when spans do not go there').toBeUndefined();
    expect(await b.stop()).toBe(0);
  });

  it('OTEL_TRACES_EXPORTER=console: spans written to stdout are counted as exported', async () => {
    const b = await start({ OTEL_TRACES_EXPORTER: 'console' });
    const calls = await replayCapture(b);
    const s = await waitStats(b, (x) => x.events.calls === calls && x.spans.created > 0 && x.spans.exported === x.spans.created, 'console spans counted as exported');
    expect(s.spans.failed + s.spans.dropped).toBe(0);
    expect(b.started['otlpEndpoint']).toBeUndefined();
    expect(await b.stop()).toBe(0);
    const roots = b.stdout().trim().split('\n').filter((l) => l.includes('"resourceSpans"')).flatMap((l) => decodeOtlpTraces(Buffer.from(l), 'json')).filter((x) => x.parentSpanId === '');
    expect(roots).toHaveLength(calls);
  });

  it('console next to otlp: the same spans as OTLP/JSON lines on stdout; metrics on stdout too', async () => {
    const b = await start({ OTEL_TRACES_EXPORTER: 'otlp,console', OTEL_METRICS_EXPORTER: 'console' });
    const calls = await replayCapture(b);
    await sink.waitFor(() => sink.spans.filter((s) => s.parentSpanId === '').length === calls);
    await pause(700);
    const s = await waitStats(b, (x) => x.spans.exported === x.spans.created, 'spans exported once over OTLP');
    expect(s.spans.exported, 'console spans are not counted a second time').toBe(sink.spans.length);
    expect(await b.stop()).toBe(0);
    const lines = b.stdout().trim().split('\n').map((l) => Buffer.from(l));
    const spans = lines.filter((l) => l.includes('"resourceSpans"')).flatMap((l) => decodeOtlpTraces(l, 'json'));
    const points = lines.filter((l) => l.includes('"resourceMetrics"')).flatMap((l) => decodeOtlpMetrics(l, 'json'));
    expect(spans.map((s) => s.name).sort()).toEqual(sink.spans.map((s) => s.name).sort());
    expect(points.some((p) => p.name === 'rpc.client.call.duration')).toBe(true);
    // Console only for metrics: nothing went to the OTLP metrics endpoint.
    expect(sink.requests.filter((r) => r.path === '/v1/metrics')).toHaveLength(0);
  });

  it('OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION=base2_exponential_bucket_histogram: exponential histograms, same counts', async () => {
    const b = await start({ OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION: 'base2_exponential_bucket_histogram' });
    const calls = await replayCapture(b);
    await sink.waitFor(() => sink.latestMetric('rpc.client.call.duration').reduce((n, p) => n + (p.count ?? 0), 0) === calls);
    const durations = sink.latestMetric('rpc.client.call.duration');
    expect(durations.every((p) => p.type === 'exponentialHistogram' && p.unit === 's')).toBe(true);
    expect(durations.every((p) => (p.scale ?? -99) >= -10 && p.positive!.bucketCounts.length > 0)).toBe(true);
    // Counters stay sums.
    expect(sink.latestMetric('csm.call.retries').every((p) => p.type === 'sum')).toBe(true);
    expect(sink.errors).toEqual([]);
    expect(await b.stop()).toBe(0);
  });

  it('exponential histograms draw on the same series budget: beyond --max-metric-series, the overflow series', async () => {
    const b = await start({ OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION: 'base2_exponential_bucket_histogram' }, ['--max-metric-series', '100']);
    // 150 APIs of one client: several instruments each, far more series than the budget.
    const apis = 150;
    const t = Date.now() - 60_000;
    for (let i = 0; i < apis; i++) {
      const common = { Version: 1, Service: 'DynamoDB', Api: `Op${i}`, Region: 'us-east-1', ClientId: 'series-budget', UserAgent: 'aws-sdk-nodejs/2.1693.0 linux/v20.20.2 promise' };
      const attempt = { ...common, Type: 'ApiCallAttempt', Timestamp: t + i * 10 + 1, AttemptLatency: 5, Fqdn: 'dynamodb.us-east-1.amazonaws.com', HttpStatusCode: 200, XAmznRequestId: `r${i}` };
      const call = { ...common, Type: 'ApiCall', Timestamp: t + i * 10, Latency: 7, AttemptCount: 1, FinalHttpStatusCode: 200, MaxRetriesExceeded: 0 };
      for (const d of [attempt, call]) await new Promise<void>((res, rej) => udp.send(JSON.stringify(d), b.udpPort, '127.0.0.1', (e) => (e ? rej(e) : res())));
    }
    const s = await waitStats(b, (x) => x.events.calls === apis && x.metricPoints.overflowed > 0, 'calls counted, points folded');
    await sink.waitFor(() => sink.latestMetric('rpc.client.call.duration').reduce((n, p) => n + (p.count ?? 0), 0) === apis);
    const durations = sink.latestMetric('rpc.client.call.duration');
    const overflow = durations.filter((p) => p.attributes['otel.metric.overflow'] === true);
    expect(overflow).toHaveLength(1);
    expect(overflow[0]!.type).toBe('exponentialHistogram');
    // Every call is counted, in its own series or in the overflow one; the series stay within the budget.
    expect(durations.length - 1).toBeLessThan(100);
    expect(overflow[0]!.count).toBeGreaterThanOrEqual(apis - 100);
    expect(s.metricPoints.overflowed).toBeGreaterThan(0);
    expect(sink.errors).toEqual([]);
    expect(await b.stop()).toBe(0);
  });

  it('OTEL_LOG_LEVEL=debug sets the log level; --log-level wins over it', async () => {
    const verbose = await start({ OTEL_LOG_LEVEL: 'debug' });
    expect(verbose.logs.some((l) => l['level'] === 'debug' && l['msg'] === 'warm-up done')).toBe(true);
    const plain = await start({ OTEL_LOG_LEVEL: 'debug' }, ['--log-level', 'info']);
    expect(plain.logs.some((l) => l['level'] === 'debug')).toBe(false);
  });
});

describe('every listener under one policy: loopback unless opted in', () => {
  it('a non-loopback admin listener or Prometheus endpoint needs --allow-remote-http', async () => {
    const admin = await runCli(['--listen', '127.0.0.1:0', '--admin', '0.0.0.0:0', '--no-ui']);
    expect(admin.code).toBe(2);
    expect(admin.stderr).toMatch(/refusing to serve the admin listener on non-loopback address 0\.0\.0\.0 \(--admin\).*--allow-remote-http/);
    const prom = await runCli(['--listen', '127.0.0.1:0', '--admin', 'off', '--no-ui'], { OTEL_METRICS_EXPORTER: 'prometheus', OTEL_EXPORTER_PROMETHEUS_HOST: '0.0.0.0', OTEL_EXPORTER_PROMETHEUS_PORT: '0' });
    expect(prom.code).toBe(2);
    expect(prom.stderr).toMatch(/the Prometheus endpoint on non-loopback address 0\.0\.0\.0 \(OTEL_EXPORTER_PROMETHEUS_HOST\)/);
    // Opted in, it starts (and is stopped at once).
    const b = await start({ OTEL_METRICS_EXPORTER: 'prometheus', OTEL_EXPORTER_PROMETHEUS_HOST: '0.0.0.0', OTEL_EXPORTER_PROMETHEUS_PORT: '0' }, ['--allow-remote-http']);
    expect(String(b.started['prometheus'])).toMatch(/^0\.0\.0\.0:\d+$/);
    // Stopped at once after its start line: the signal handler is already there (it flushes and exits 0).
    expect(await b.stop()).toBe(0);
  });
});
