/**
 * The export counters tell one story, in /stats, the live view and the shutdown line: the built
 * bridge, real CSM datagrams over UDP, a collector that is down (nothing listening) or a real
 * sink. Every span and metric export is in exactly one place:
 * created + recovered = exported + queued + lost; failed attempts are retried and lose nothing.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { render } from '../../src/ui/render.js';
import { ViewModel } from '../../src/ui/model.js';
import { startBridge, type BridgeProcess } from '../helpers/bridge-process.js';
import { startCallSender, type CallSender } from '../helpers/call-sender.js';
import { startOtlpSink, type OtlpSink } from '../helpers/otlp-sink.js';
import { waitStats, type Stats } from '../helpers/stats.js';
import { freePort } from '../helpers/tools.js';


const ARGS = ['--export-delay-ms', '100', '--export-batch-size', '200', '--metrics-interval-ms', '500', '--log-level', 'info', '--shutdown-timeout-ms', '2000'];
const ENV = { OTEL_EXPORTER_OTLP_TIMEOUT: '500' };

const bridges: BridgeProcess[] = [];
let sink: OtlpSink | undefined;
let sender: CallSender;
beforeAll(async () => {
  sender = await startCallSender('counters');
});
afterAll(() => sender.close());
afterEach(async () => {
  for (const b of bridges.splice(0)) await b.stop('SIGKILL');
  await sink?.close();
  sink = undefined;
});

/** created + recovered = exported + queued + lost, and lost = failed + dropped, for spans and metric exports. */
function expectIdentity(s: Stats): void {
  expect(s.spans.created + s.spool.recoveredSpans).toBe(s.spans.exported + s.spans.queued + s.spans.lost);
  expect(s.spans.lost).toBe(s.spans.failed + s.spans.dropped);
  expect(s.metricExports.created + s.spool.recoveredMetricExports).toBe(s.metricExports.succeeded + s.metricExports.queued + s.metricExports.lost);
  expect(s.metricExports.lost).toBe(s.metricExports.failed + s.metricExports.dropped);
}

/** The live view's export lines for these counters. */
function viewLines(s: Stats): string {
  return render(new ViewModel(), s, { version: 't', listen: [], target: 'http://collector', extra: [], datagramsPerSec: 0, spansPerSec: 0 }, 200, 40, Date.now())
    .filter((l) => /^export|^ {9}(spans|metric exports)/.test(l))
    .join('\n');
}

describe('export counters: what waits, what failed, what was lost', () => {
  it('collector down: /stats and the view say queued and failed attempts, and the shutdown line lost, with the same numbers', async () => {
    const port = await freePort();
    const b = await startBridge(['--otlp-endpoint', `http://127.0.0.1:${port}`, ...ARGS], ENV);
    bridges.push(b);
    await sender.send(b.udpPort, 11);
    const s = await waitStats(
      b,
      (x) => x.spans.created === 22 && x.spans.failedAttempts >= 1 && x.metricExports.created >= 2 && x.metricExports.failedAttempts >= 1,
      'spans and metric exports waiting, attempts failed',
    );
    expect([s.spans.exported, s.spans.queued, s.spans.lost]).toEqual([0, 22, 0]);
    expect([s.metricExports.succeeded, s.metricExports.lost]).toEqual([0, 0]);
    expect(s.metricExports.queued).toBe(s.metricExports.created);
    expect(s.spans.failedAttempts + s.metricExports.failedAttempts).toBe(s.spool.retries);
    expectIdentity(s);
    const view = viewLines(s);
    expect(view).toMatch(/FAILING {3}\d+ failed attempts, retried/);
    expect(view).toContain('spans 0 exported, 22 queued, 0 lost');
    expect(view).toMatch(new RegExp(`metric exports 0 exported, ${s.metricExports.queued} queued, 0 lost`));

    expect(await b.stop()).toBe(0);
    const line = b.logs.find((l) => String(l['msg']).startsWith('OTLP endpoint unavailable at shutdown'));
    expect(line, b.stderr()).toBeDefined();
    const stopped = b.logs.find((l) => l['msg'] === 'stopped')!['stats'] as Stats;
    // The shutdown line's lost is /stats's lost; nothing waits any more (a memory spool).
    expect(line!['lost']).toEqual({ spans: stopped.spans.lost, metricExports: stopped.metricExports.lost });
    expect(line!['lostAtShutdown']).toEqual({ spans: stopped.spool.lostSpans, metricExports: stopped.spool.lostMetricExports });
    expect([stopped.spans.lost, stopped.spans.queued, stopped.metricExports.queued]).toEqual([22, 0, 0]);
    expect(stopped.metricExports.lost).toBe(stopped.metricExports.created);
    expect(stopped.metricExports.lost).toBeGreaterThan(0);
    expectIdentity(stopped);
  });

  it('collector up: everything created is exported, nothing queued, lost or failed', async () => {
    sink = await startOtlpSink();
    const b = await startBridge(['--otlp-endpoint', sink.url, ...ARGS], ENV);
    bridges.push(b);
    await sender.send(b.udpPort, 11);
    const s = await waitStats(b, (x) => x.spans.exported === 22 && x.metricExports.succeeded >= 2 && x.metricExports.queued === 0, 'all delivered');
    expect([s.spans.created, s.spans.queued, s.spans.lost, s.spans.failedAttempts]).toEqual([22, 0, 0, 0]);
    expect([s.metricExports.succeeded, s.metricExports.lost, s.metricExports.failedAttempts]).toEqual([s.metricExports.created, 0, 0]);
    expectIdentity(s);
    expect(sink.spans.filter((x) => String(x.attributes['aws.request_id']).startsWith('counters-'))).toHaveLength(22);
    const view = viewLines(s);
    expect(view).toMatch(/^export .* OK$/m);
    expect(view).toContain('spans 22 exported, 0 queued, 0 lost');
  });
});
