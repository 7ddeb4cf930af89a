/**
 * Metrics only, straight to Prometheus (no Collector): real aws-sdk v2 calls → the bridge with
 * OTEL_METRICS_EXPORTER=prometheus and OTEL_TRACES_EXPORTER=none → a real Prometheus (Debian's
 * package) scraping the bridge every second → PromQL over Prometheus's HTTP API returns the
 * calls made. Every query of config/grafana-dashboard.json returns data against it, and
 * config/prometheus-rules.yml passes promtool's check and its unit tests.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, startBridge, type BridgeProcess } from '../helpers/bridge-process.js';
import { startFakeS3, type FakeS3 } from '../helpers/fake-s3.js';
import { PROMETHEUS, PROMTOOL, startPrometheus, type PrometheusServer, type PromSample } from '../helpers/prometheus.js';
import { getStats } from '../helpers/stats.js';
import { freePort } from '../helpers/tools.js';

const run = promisify(execFile);
const CLIENT = join(import.meta.dirname, 'clients', 'js-v2-client.cjs');
const CLIENT_ID = 'prom-e2e';

const value = (r: PromSample[]) => r.reduce((n, s) => n + Number(s.value[1]), 0);
const byLabel = (r: PromSample[], label: string) => Object.fromEntries(r.map((s) => [s.metric[label], Number(s.value[1])]));

describe.skipIf(!PROMETHEUS)('real aws-sdk v2 → bridge (metrics only) → Prometheus endpoint → real Prometheus', () => {
  let s3: FakeS3;
  let bridge: BridgeProcess;
  let prom: PrometheusServer;
  let scrape: string;

  beforeAll(async () => {
    s3 = await startFakeS3({
      'GET /': [503, 200], // SlowDown (a throttle), retried once, then succeeds
      'PUT /taken': [409],
      'HEAD /b1/missing': [404],
    });
    const port = await freePort();
    bridge = await startBridge(['--metrics-interval-ms', '500', '--attempt-hold-ms', '600000'], {
      OTEL_METRICS_EXPORTER: 'prometheus',
      OTEL_TRACES_EXPORTER: 'none',
      OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1',
      OTEL_EXPORTER_PROMETHEUS_PORT: String(port),
      // Nothing must go to OTLP in this mode: a closed port would show up as export errors.
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${await freePort()}`,
    });
    scrape = String(bridge.started['prometheus']);
    expect(scrape).toBe(`127.0.0.1:${port}`);
    prom = await startPrometheus([scrape]);
    await runClient();
  }, 90_000);

  /** The client's four calls (test/e2e/clients/js-v2-client.cjs). */
  const runClient = async () =>
    run(process.execPath, [CLIENT, s3.url, `http://127.0.0.1:${await freePort()}`], {
      env: {
        PATH: process.env['PATH'] ?? '',
        AWS_CSM_ENABLED: 'true',
        AWS_CSM_PORT: String(bridge.udpPort),
        AWS_CSM_CLIENT_ID: CLIENT_ID,
        AWS_ACCESS_KEY_ID: 'AKIAPROMETHEUSE2E000',
        AWS_SECRET_ACCESS_KEY: 'prometheus-e2e-secret',
        AWS_SDK_JS_SUPPRESS_MAINTENANCE_MODE_MESSAGE: '1',
      },
      timeout: 30_000,
    });

  afterAll(async () => {
    await bridge?.stop('SIGTERM');
    await prom?.stop();
    await s3?.close();
  });

  it('Prometheus scrapes the bridge, and PromQL returns the calls made, per Service.Api', async () => {
    const calls = await prom.waitFor(`sum by (rpc_method) (rpc_client_call_duration_count{service_name="${CLIENT_ID}"})`, (r) => value(r) === 4);
    // ListBuckets twice (one against a closed port), CreateBucket (409), HeadObject (404).
    expect(byLabel(calls, 'rpc_method')).toEqual({ ListBuckets: 2, CreateBucket: 1, HeadObject: 1 });
    const targets = await prom.targets();
    expect(targets.map((t) => [t.scrapeUrl, t.health])).toEqual([[`http://${scrape}/metrics`, 'up']]);
    // Failed calls carry error.type; the one retried after SlowDown did not fail.
    const failed = await prom.query(`sum by (rpc_method) (rpc_client_call_duration_count{service_name="${CLIENT_ID}",error_type!=""})`);
    expect(byLabel(failed, 'rpc_method')).toEqual({ ListBuckets: 1, CreateBucket: 1, HeadObject: 1 });
    // 2 + 1 + 1 + 3 attempts; 1 + 2 retries; one attempt throttled (SlowDown).
    expect(value(await prom.query(`sum(csm_attempt_duration_count{service_name="${CLIENT_ID}"})`))).toBe(7);
    expect(value(await prom.query(`sum(csm_call_retries_total{service_name="${CLIENT_ID}"})`))).toBe(3);
    expect(value(await prom.query(`sum(csm_attempt_duration_count{service_name="${CLIENT_ID}",error_type="SlowDown"})`))).toBe(1);
    // The bridge's own health is there too.
    expect(value(await prom.query('sum(csm_bridge_datagrams_total{csm_outcome="accepted"})'))).toBe(11);
  });

  it('metrics only: no span was encoded, nothing was sent to OTLP', async () => {
    const s = await getStats(bridge);
    expect([s.spans.created, s.sampling.kept, s.sampling.sampledOut, s.spool.queuedSpans, s.spool.queuedMetricExports]).toEqual([0, 0, 0, 0, 0]);
    expect([s.spool.retries, s.lastExportError.traces, s.lastExportError.metrics]).toEqual([0, null, null]);
  });

  it('every query of the Grafana dashboard runs on the real Prometheus and returns data', async () => {
    const dashboard = JSON.parse(readFileSync(join(ROOT, 'config', 'grafana-dashboard.json'), 'utf8')) as {
      panels: { title: string; targets?: { expr: string }[] }[];
    };
    const queries = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ title: p.title, expr: t.expr })));
    expect(queries.length).toBeGreaterThanOrEqual(15);
    // Grafana's variables, as Grafana would substitute them (All applications; a rate window with several scrapes).
    const substitute = (e: string) => e.replaceAll('$__rate_interval', '1m').replaceAll('$service', '.*');
    // rate() needs the counters to grow between two scrapes: the same calls again, now that the first ones were scraped.
    await runClient();
    await prom.waitFor(`sum(rpc_client_call_duration_count{service_name="${CLIENT_ID}"})`, (r) => value(r) === 8);
    await prom.waitFor(`sum(rate(rpc_client_call_duration_count{service_name="${CLIENT_ID}"}[1m]))`, (r) => value(r) > 0);
    const empty: string[] = [];
    for (const q of queries) {
      const r = await prom.query(substitute(q.expr));
      if (r.length === 0 || r.every((s) => s.value[1] === 'NaN')) empty.push(`${q.title}: ${q.expr}`);
    }
    expect(empty).toEqual([]);
  });

  it('the alert rules load in Prometheus\'s checker and their expressions run on live data', async () => {
    const rules = readFileSync(join(ROOT, 'config', 'prometheus-rules.yml'), 'utf8');
    const exprs = [...rules.matchAll(/expr: \|\n((?: {10}.*\n)+)|expr: (.+)\n/g)].map((m) => (m[1] ?? m[2]!).trim());
    expect(exprs).toHaveLength(4);
    for (const e of exprs) await prom.query(e); // throws on a bad query
  });
});

describe.skipIf(!PROMTOOL)('config/prometheus-rules.yml', () => {
  it('passes promtool check rules and promtool test rules', async () => {
    const dir = join(ROOT, 'config');
    const check = await run(PROMTOOL!, ['check', 'rules', 'prometheus-rules.yml'], { cwd: dir });
    expect(check.stdout).toMatch(/SUCCESS: 4 rules found/);
    const test = await run(PROMTOOL!, ['test', 'rules', 'prometheus-rules.test.yml'], { cwd: dir });
    expect(test.stdout).toMatch(/SUCCESS/);
  });
});
