/**
 * What a broken or hostile OTLP endpoint can do to the bridge's export, end to end: the built
 * CLI, real CSM datagrams over UDP, a real HTTP endpoint that drips its answer, answers too much,
 * or answers partial successes with counts that cannot be true. Every export still ends within
 * the export timeout, and /stats counts what was sent, delivered, failed and rejected truthfully.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startBridge, type BridgeProcess } from '../helpers/bridge-process.js';
import { startCallSender, type CallSender } from '../helpers/call-sender.js';
import { startHostileCollector, type HostileCollector } from '../helpers/hostile-collector.js';
import { startOtlpSink, type OtlpSink } from '../helpers/otlp-sink.js';
import { getStats, waitStats } from '../helpers/stats.js';


const BASE_ARGS = ['--export-delay-ms', '100', '--export-batch-size', '200', '--metrics-interval-ms', '1000', '--log-level', 'info'];
const ENV = { OTEL_EXPORTER_OTLP_TIMEOUT: '1000' };

const bridges: BridgeProcess[] = [];
let collector: HostileCollector | undefined;
let sink: OtlpSink | undefined;
let sender: CallSender;
beforeAll(async () => {
  sender = await startCallSender('hostile');
});
afterAll(() => sender.close());
afterEach(async () => {
  for (const b of bridges.splice(0)) await b.stop('SIGKILL');
  await collector?.close();
  await sink?.close();
  collector = undefined;
  sink = undefined;
});
const start = async (endpoint: string) => {
  const b = await startBridge(['--otlp-endpoint', endpoint, ...BASE_ARGS], ENV);
  bridges.push(b);
  return b;
};

describe('export deadline and answer bound (OTLP/HTTP)', () => {
  it('a collector that drips its status line: each export ends at OTEL_EXPORTER_OTLP_TIMEOUT, counted as a retry, said in lastExportError', async () => {
    collector = await startHostileCollector({ kind: 'drip-status', dripMs: 300 });
    const b = await start(collector.url);
    await sender.send(b.udpPort, 20);
    const tracesTried = () => collector!.requests.filter((r) => r.path === '/v1/traces').length;
    // The same batch is tried again (the retry policy), each time cut off by the deadline.
    const s = await waitStats(b, (x) => x.spool.retries >= 2 && x.lastExportError.traces !== null && tracesTried() >= 2, 'two timed-out span exports', 20_000);
    expect(s.lastExportError.traces!.message).toBe('no answer within the export timeout (1000 ms; OTEL_EXPORTER_OTLP_TIMEOUT)');
    expect(s.spans.exported).toBe(0);
    expect(s.spool.queuedSpans).toBe(40);
  });

  it('a collector that answers 200 with a body over 4 MiB: every batch counted as exported once, none sent twice, a warning', async () => {
    collector = await startHostileCollector({ kind: 'huge-body', bytes: 5 * 1024 * 1024 });
    const b = await start(collector.url);
    await sender.send(b.udpPort, 50);
    const s = await waitStats(b, (x) => x.spans.created === 100 && x.spans.exported === 100, 'all 100 spans exported', 20_000);
    expect([s.spans.failed, s.spool.queuedSpans, s.spool.retries]).toEqual([0, 0, 0]);
    const traces = collector.requests.filter((r) => r.path === '/v1/traces');
    expect(traces.reduce((n, r) => n + r.spans, 0)).toBe(100);
    expect(b.logs.some((l) => l['msg'] === 'the OTLP endpoint accepted spans but its answer was not read')).toBe(true);
  });
});

describe('partial success counts the endpoint cannot mean (negative int64, more than was sent)', () => {
  it('spans: 10^15 rejected counts the spans sent; data points: -1 rejected counts none; the log says no such number', async () => {
    sink = await startOtlpSink({ partial: ({ path }) => (path === '/v1/traces' ? { rejected: 1e15, message: 'too many' } : { rejected: -1, message: 'negative' }) });
    const b = await start(sink.url);
    await sender.send(b.udpPort, 10);
    const s = await waitStats(b, (x) => x.spans.created === 20 && x.spans.failed === 20 && x.metricExports.succeeded >= 2, 'the partial answers counted', 20_000);
    expect(s.spans.exported).toBe(0);
    expect(s.metricPoints.rejected).toBe(0);
    expect(b.stderr()).not.toMatch(/18446744073709552000|1000000000000000/);
    expect((await getStats(b)).metricPoints.rejected).toBe(0);
  });
});
