/**
 * The web view (GET / on the admin listener, src/admin/web/) in a real headless browser
 * (Debian's chromium, driven by puppeteer-core), fed by real SDK traffic: the aws CLI against
 * moto_server, and aws-sdk v2 against a local S3 that answers 503, 503, then 200. Then hostile
 * datagrams (markup in ClientId and exception messages, credentials), a viewer that never reads
 * its updates, and a bridge restart under the open page.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, startBridge, type BridgeProcess } from '../helpers/bridge-process.js';
import { startFakeS3, type FakeS3 } from '../helpers/fake-s3.js';
import { startOtlpSink, type OtlpSink } from '../helpers/otlp-sink.js';
import { getStats, waitStats } from '../helpers/stats.js';
import { findTool, freePort, runAwsCli, sendUdp, startMoto, type Moto } from '../helpers/tools.js';

const run = promisify(execFile);
// The callbacks given to page.evaluate / waitForFunction / $$eval run in the page (puppeteer sends
// their source); the tests' tsconfig has no DOM types, so what they touch is typed loosely here.
declare const document: any;
declare const window: any;
type HTMLElement = any;
type HTMLInputElement = any;
type HTMLCanvasElement = any;
const CHROMIUM = findTool('chromium');
const AWS = findTool('aws');
const MOTO = findTool('moto_server');
const JS_CLIENT = join(import.meta.dirname, 'clients', 'js-v2-client.cjs');
const TRACE_URL = 'http://localhost:16686/trace/{traceId}';

const SESSION_TOKEN = `IQoJb3JpZ2luX2VjE-web-view-session-token-${process.pid}`;
const ACCESS_KEY = 'ASIAWEBVIEWTESTKEY77';
const SECRET_KEY = 'web-view-secret-key-never-sent-to-a-page';
/** Markup an attacker puts into datagrams: shown as text, never run. */
const XSS_CLIENT = '<img src=x onerror="window.__xss=1;alert(1)">';
const XSS_MESSAGE = '<script>window.__xss=2;alert(2)</script><img src=x onerror="window.__xss=3">';

const jsEnv = (csmPort: number) => ({
  PATH: process.env['PATH'] ?? '',
  AWS_CSM_ENABLED: 'true',
  AWS_CSM_PORT: String(csmPort),
  AWS_CSM_CLIENT_ID: 'js-web',
  AWS_ACCESS_KEY_ID: ACCESS_KEY,
  AWS_SECRET_ACCESS_KEY: SECRET_KEY,
  AWS_SESSION_TOKEN: SESSION_TOKEN,
  AWS_SDK_JS_SUPPRESS_MAINTENANCE_MODE_MESSAGE: '1',
});

/** One call (an attempt and its ApiCall), as botocore sends them. */
function callDatagrams(p: { clientId: string; service: string; api: string; status: number; exception?: string; message?: string; extra?: Record<string, unknown> }): string[] {
  const t = Date.now() - 50;
  const base = { Version: 1, ClientId: p.clientId, Service: p.service, Api: p.api, Region: 'us-east-1', UserAgent: 'aws-cli/1.32.0 botocore/1.34.0', ...p.extra };
  const failed = p.exception !== undefined;
  return [
    JSON.stringify({ ...base, Type: 'ApiCallAttempt', Timestamp: t, AttemptLatency: 20, HttpStatusCode: p.status, Fqdn: 's3.amazonaws.com', XAmzRequestId: `RID${randomBytes(4).toString('hex')}`, ...(failed ? { AwsException: p.exception, AwsExceptionMessage: p.message } : {}) }),
    JSON.stringify({ ...base, Type: 'ApiCall', Timestamp: t, AttemptCount: 1, Latency: 25, FinalHttpStatusCode: p.status, MaxRetriesExceeded: 0, ...(failed ? { FinalAwsException: p.exception, FinalAwsExceptionMessage: p.message } : {}) }),
  ];
}

describe('the web view in a real browser', () => {
  let sink: OtlpSink;
  let moto: Moto | undefined;
  let s3: FakeS3;
  let bridge: BridgeProcess;
  let adminPort: number;
  let browser: Browser;
  let page: Page;
  const consoleErrors: string[] = [];
  const dialogs: string[] = [];
  let bridgeArgs: string[];

  beforeAll(async () => {
    if (!CHROMIUM) return;
    sink = await startOtlpSink();
    s3 = await startFakeS3({ 'GET /': [503, 503, 200], 'PUT /taken': [409], 'HEAD /b1/missing': [404] });
    if (MOTO) moto = await startMoto(MOTO);
    adminPort = await freePort();
    bridgeArgs = ['--listen', '127.0.0.1:0', '--admin', `127.0.0.1:${adminPort}`, '--no-ui', '--trace-url-template', TRACE_URL, '--export-delay-ms', '200'];
    bridge = await startBridge([...bridgeArgs, '--app-otlp-http', '127.0.0.1:0', '--app-join-window-ms', '30000'], { OTEL_EXPORTER_OTLP_ENDPOINT: sink.url }, false);
    browser = await puppeteer.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
    page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 800 });
    page.on('console', (m: any) => {
      if (m.type() === 'error') consoleErrors.push(m.text());
    });
    page.on('pageerror', (e: any) => consoleErrors.push(`pageerror: ${(e as Error).message}`));
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
    const res = await page.goto(`${bridge.adminUrl}/`);
    expect(res?.status()).toBe(200);
    await page.waitForFunction(() => document.getElementById('status')?.textContent === 'live', { timeout: 10_000 });

    // Real SDK traffic: aws-sdk v2 (ListBuckets retried 503, 503 → 200) and the aws CLI against moto.
    await run(process.execPath, [JS_CLIENT, s3.url, `http://127.0.0.1:${await freePort()}`], { env: jsEnv(bridge.udpPort), timeout: 30_000 });
    await postAppSpan();
    if (AWS && moto) {
      for (const args of [['s3api', 'create-bucket', '--bucket', 'web-view-bucket'], ['s3api', 'list-buckets'], ['sts', 'get-caller-identity']]) {
        expect(await runAwsCli(AWS, args, { csmPort: bridge.udpPort, clientId: 'cli-web', endpoint: moto.url, region: 'us-east-1', sessionToken: SESSION_TOKEN })).toBe(0);
      }
    }
  }, 120_000);

  /** The application's own span of the retried ListBuckets (by its last request id): the call joins the app's trace. */
  let traceId = '';
  async function postAppSpan(): Promise<void> {
    // The app's own span of the retried ListBuckets (by its last request id): the call joins the app's trace.
    const ids = s3.requestIds.get('GET /')!;
    traceId = randomBytes(16).toString('hex');
    const now = Date.now();
    const appUrl = `http://${(bridge.started['appOtlp'] as string[])[0]}/v1/traces`;
    const span = {
      traceId,
      spanId: randomBytes(8).toString('hex'),
      name: 'S3.ListBuckets',
      kind: 3,
      startTimeUnixNano: `${(now - 5_000) * 1e6}`,
      endTimeUnixNano: `${now * 1e6}`,
      attributes: [
        { key: 'rpc.system', value: { stringValue: 'aws-api' } },
        { key: 'aws.request_id', value: { stringValue: ids[ids.length - 1] } },
      ],
    };
    const post = await fetch(appUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ resourceSpans: [{ resource: { attributes: [] }, scopeSpans: [{ scope: { name: 'app' }, spans: [span] }] }] }) });
    expect(post.status).toBe(200);
  }

  afterAll(async () => {
    await browser?.close();
    await bridge?.stop('SIGKILL');
    await moto?.close();
    await s3?.close();
    await sink?.close();
  });

  const it_ = CHROMIUM ? it : it.skip;
  /** The table's rows as the page shows them. */
  const tableRows = (): Promise<string[][]> =>
    page.$$eval('#rows tbody tr', (trs: any) => trs.map((tr: any) => Array.from(tr.querySelectorAll('td'), (td: any) => td.textContent ?? '')));

  it_('serves the page with a CSP that allows no inline script, and its files from the package', async () => {
    // The start log says where the page is.
    expect(bridge.started['webView']).toBe(`${bridge.adminUrl}/`);
    const r = await fetch(`${bridge.adminUrl}/`);
    const csp = r.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain('unsafe-inline');
    const html = await r.text();
    // No inline script or style: every script and style is a file of the admin listener.
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    expect(html).not.toMatch(/<style|style=/);
    for (const src of [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m: any) => m[1]!)) {
      expect(src.startsWith('/'), src).toBe(true);
      expect((await fetch(`${bridge.adminUrl}${src}`)).status, src).toBe(200);
    }
  });

  it_('a page under another name (DNS rebinding) gets neither the page nor the event stream', async () => {
    for (const path of ['/', '/web/events', '/web/history', '/web/app.js']) {
      const status = await new Promise<number>((resolve, reject) => {
        const r = request({ host: '127.0.0.1', port: adminPort, path, headers: { host: `rebound.example:${adminPort}` } }, (res) => {
          res.resume();
          resolve(res.statusCode!);
        });
        r.on('error', reject);
        r.end();
      });
      expect(status, path).toBe(421);
    }
  });

  it_('the table shows the SDKs\' calls, per client and Service.Api', async () => {
    const want = [['js-web', 'S3.ListBuckets'], ['js-web', 'S3.CreateBucket'], ['js-web', 'S3.HeadObject']];
    if (AWS && moto) want.push(['cli-web', 'S3.CreateBucket'], ['cli-web', 'S3.ListBuckets'], ['cli-web', 'STS.GetCallerIdentity']);
    await page.waitForFunction(
      (want: string[][]) => {
        const rows = Array.from(document.querySelectorAll('#rows tbody tr'), (tr: any) => Array.from(tr.querySelectorAll('td'), (td: any) => td.textContent));
        return want.every(([c, n]) => rows.some((r) => r[0] === c && r[1] === n));
      },
      { timeout: 15_000 },
      want,
    );
    const rows = await tableRows();
    // js-web's ListBuckets: the retried call and the one to a closed port (3 attempts each: 4 retries), the latter failed.
    const lb = rows.find((r) => r[0] === 'js-web' && r[1] === 'S3.ListBuckets')!;
    expect(lb[3]).toBe('2'); // calls
    expect(lb[6]).toBe('50.0'); // error %
    expect(lb[7]).toBe('4'); // retries
    expect(lb[8]).toBe('2'); // throttles: the two 503 SlowDown
    const cb = rows.find((r) => r[0] === 'js-web' && r[1] === 'S3.CreateBucket')!;
    expect(cb[9]).toContain('BucketAlreadyExists');
    // Filtering and grouping.
    await page.type('#filter', 'headobject');
    expect((await tableRows()).map((r) => r[1])).toEqual(['S3.HeadObject']);
    await page.$eval('#filter', (e: any) => ((e as HTMLInputElement).value = ''));
    await page.$eval('#filter', (e: any) => e.dispatchEvent(new Event('input')));
    await page.select('#group', 'api');
    const perApi = await tableRows();
    expect(perApi.filter((r) => r[1] === 'S3.ListBuckets')).toHaveLength(1);
    await page.select('#group', 'client');
    // Sorting by calls, most first.
    await page.click('#rows th[data-sort="calls"]');
    const calls = (await tableRows()).map((r) => Number(r[3]));
    expect(calls).toEqual([...calls].sort((a, b) => b - a));
  });

  it_('the retried call\'s waterfall shows its three attempts, the gaps between them, statuses and request ids; joined, it links its trace', async () => {
    const ids = s3.requestIds.get('GET /')!;
    expect(ids).toHaveLength(3);
    await waitStats(bridge, (s) => s.join.joined >= 1, 'the retried call joined', 15_000);

    // The feed entry of the retried ListBuckets: 3 attempts, ended 200.
    const li = await page.waitForFunction(
      () =>
        Array.from(document.querySelectorAll('#feed li')).find((li: any) => {
          const t = Array.from(li.querySelectorAll('span'), (s: any) => s.textContent);
          return t[1] === 'js-web' && t[2] === 'S3.ListBuckets' && t[3] === '3 attempts' && t[5] === '200';
        }),
      { timeout: 15_000 },
    );
    await (li as unknown as { click(): Promise<void> }).click();
    await page.waitForSelector('#waterfall .wf-attempt');
    const wf = await page.$eval('#waterfall', (w: any) => ({
      attempts: Array.from(w.querySelectorAll('.wf-attempt'), (b: any) => ({ left: parseFloat((b as HTMLElement).style.left), width: parseFloat((b as HTMLElement).style.width), bad: b.classList.contains('bad') })),
      gaps: Array.from(w.querySelectorAll('.wf-gap'), (g: any) => ({ left: parseFloat((g as HTMLElement).style.left), width: parseFloat((g as HTMLElement).style.width) })),
      labels: Array.from(w.querySelectorAll('.wf-label'), (l: any) => l.textContent),
      requestIds: Array.from(w.querySelectorAll('.wf-detail'), (d: any) => d.querySelector('.rid')?.textContent),
      link: w.querySelector('.wf-trace a')?.getAttribute('href'),
      linkText: w.querySelector('.wf-trace a')?.textContent,
    }));
    expect(wf.attempts).toHaveLength(3);
    expect(wf.attempts.map((a) => a.bad)).toEqual([true, true, false]);
    expect(wf.gaps).toHaveLength(2);
    // On the call's time axis, in order: attempt, gap, attempt, gap, attempt (each position is rounded to 0.01 %).
    for (let i = 0; i < 2; i++) {
      expect(wf.gaps[i]!.left).toBeGreaterThanOrEqual(wf.attempts[i]!.left + wf.attempts[i]!.width - 0.02);
      expect(wf.attempts[i + 1]!.left).toBeGreaterThanOrEqual(wf.gaps[i]!.left + wf.gaps[i]!.width - 0.02);
    }
    expect(wf.labels.filter((l: any) => l?.startsWith('backoff'))).toHaveLength(2);
    expect(wf.labels.filter((l: any) => l?.startsWith('#')).map((l: any) => l!.slice(0, 5))).toEqual(['#1503', '#2503', '#3200']);
    // Each attempt's request id, as the endpoint answered them.
    expect(wf.requestIds).toEqual(ids.map((id) => `request id ${id}`));
    expect(wf.linkText).toBe(traceId);
    expect(wf.link).toBe(`http://localhost:16686/trace/${traceId}`);
    if (process.env['UPDATE_SCREENSHOT']) {
      await new Promise((r) => setTimeout(r, 6_000)); // a few chart points more
      writeFileSync(join(ROOT, 'docs', 'web-view.png'), await page.screenshot({ type: 'png' }));
    }
  });

  it_('the charts have points', async () => {
    // uPlot draws on canvas: the calls/s line's colour is on the first chart once it has points.
    await page.waitForFunction(
      () => {
        const c = document.querySelector('#charts .chart canvas') as HTMLCanvasElement | null;
        if (!c) return false;
        const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 0; i < d.length; i += 4) if (Math.abs(d[i]! - 0x25) < 40 && Math.abs(d[i + 1]! - 0x63) < 40 && Math.abs(d[i + 2]! - 0xeb) < 40 && d[i + 3]! > 128) n++;
        return n > 20;
      },
      { timeout: 20_000 },
    );
    expect(await page.$$eval('#charts .uplot', (c: any) => c.length)).toBe(3);
    const history = (await (await fetch(`${bridge.adminUrl}/web/history`)).json()) as { t: number[]; callsPerSec: number[] };
    expect(history.callsPerSec.some((v) => v > 0)).toBe(true);
  });

  it_('the policy of each application is the one /policy has', async () => {
    const all = (await (await fetch(`${bridge.adminUrl}/policy`)).json()) as { clients: { label: string; policy: unknown }[] };
    expect(all.clients.length).toBeGreaterThanOrEqual(AWS && moto ? 2 : 1);
    await page.click('#refresh-policy');
    await page.waitForFunction((n: number) => document.querySelectorAll('#policy-select option').length === n, { timeout: 10_000 }, all.clients.length);
    for (const c of all.clients) {
      await page.select('#policy-select', c.label);
      expect(await page.$eval('#policy-text', (p: any) => p.textContent)).toBe(JSON.stringify(c.policy, null, 2));
    }
    await page.click('#copy-policy');
    await page.waitForFunction(() => document.getElementById('policy-note')?.textContent === 'copied', { timeout: 5_000 });
  });

  it_('markup in a ClientId and an exception message is shown as text and never runs', async () => {
    for (const d of callDatagrams({ clientId: XSS_CLIENT, service: 'S3', api: 'GetObject', status: 403, exception: 'AccessDenied', message: XSS_MESSAGE, extra: { AccessKey: ACCESS_KEY, SessionToken: SESSION_TOKEN } })) {
      await sendUdp(bridge.udpPort, d);
    }
    await page.waitForFunction((c: string) => Array.from(document.querySelectorAll('#rows td.client')).some((td: any) => td.textContent === c), { timeout: 15_000 }, XSS_CLIENT);
    const row = (await tableRows()).find((r) => r[0] === XSS_CLIENT)!;
    expect(row[9]).toBe(`AccessDenied: ${XSS_MESSAGE}`);
    // Its waterfall shows the message as text too.
    await page.$$eval('#feed li', (lis: any, c: string) => (lis.find((li: any) => li.querySelectorAll('span')[1]?.textContent === c) as HTMLElement).click(), XSS_CLIENT);
    expect(await page.$eval('#waterfall .wf-message', (m: any) => m.textContent)).toBe(XSS_MESSAGE);
    await new Promise((r) => setTimeout(r, 1_500)); // another update and render
    const seen = await page.evaluate(() => ({
      xss: (window as unknown as { __xss?: number }).__xss,
      imgs: document.querySelectorAll('img').length,
      inlineScripts: document.querySelectorAll('script:not([src])').length,
      scripts: Array.from(document.querySelectorAll('script'), (s: any) => s.getAttribute('src')),
      handlers: Array.from(document.querySelectorAll('*')).filter((e: any) => Array.from(e.attributes).some((a: any) => a.name.startsWith('on'))).length,
    }));
    expect(seen).toEqual({ xss: undefined, imgs: 0, inlineScripts: 0, scripts: ['/web/uPlot.iife.min.js', '/web/app.js'], handlers: 0 });
    expect(dialogs).toEqual([]);
    expect(consoleErrors).toEqual([]);
  });

  it_('no access key, session token or secret reaches the page', async () => {
    // What the page has, and what the event stream sends for two seconds.
    const html = await page.content();
    const ac = new AbortController();
    const r = await fetch(`${bridge.adminUrl}/web/events`, { signal: ac.signal });
    let stream = '';
    const reader = r.body!.getReader();
    const until = Date.now() + 2_000;
    while (Date.now() < until) {
      const { value, done } = await Promise.race([reader.read(), new Promise<{ value: undefined; done: false }>((res) => setTimeout(() => res({ value: undefined, done: false }), 500))]);
      if (done) break;
      if (value) stream += Buffer.from(value).toString();
    }
    ac.abort();
    expect(stream).toContain('event: init');
    for (const secret of [ACCESS_KEY, SESSION_TOKEN, SECRET_KEY]) {
      expect(html).not.toContain(secret);
      expect(stream).not.toContain(secret);
    }
  });

  it_('a viewer that stops reading is dropped and counted; the datagram path counts every datagram', async () => {
    const before = await getStats(bridge);
    // A raw socket asks for the updates and never reads them.
    const raw: Socket = connect(adminPort, '127.0.0.1');
    await new Promise<void>((r) => raw.once('connect', () => r()));
    raw.write(`GET /web/events HTTP/1.1\r\nHost: 127.0.0.1:${adminPort}\r\n\r\n`);
    raw.pause();
    raw.on('error', () => {});
    await waitStats(bridge, (s) => s.web.viewers === before.web.viewers + 1, 'the raw viewer connected', 5_000);
    // Big updates: 200 rows of each table with long last errors, and a full feed, every second.
    const s = createSocket('udp4');
    let sent = 0;
    const long = 'm'.repeat(280);
    let dropped = false;
    const deadline = Date.now() + 75_000;
    while (!dropped && Date.now() < deadline) {
      for (let i = 0; i < 200; i++, sent += 2) {
        const n = sent / 2;
        for (const d of callDatagrams({ clientId: `slow-${n % 70}-${'c'.repeat(80)}`, service: `Svc${n % 50}`, api: `Op${n % 5}`, status: 400, exception: 'ValidationException', message: `${long} ${n}` })) {
          s.send(d, bridge.udpPort, '127.0.0.1');
        }
      }
      await new Promise((r) => setTimeout(r, 200));
      dropped = (await getStats(bridge)).web.slowViewersDropped > before.web.slowViewersDropped;
    }
    s.close();
    raw.destroy();
    expect(dropped, 'the raw viewer was dropped').toBe(true);
    const after = await waitStats(bridge, (x) => x.datagrams.received - before.datagrams.received >= sent, 'every datagram received', 20_000);
    expect(after.datagrams.received - before.datagrams.received).toBe(sent);
    expect(after.datagrams.accepted - before.datagrams.accepted).toBe(sent);
    expect(after.datagrams.kernelDropped).toBe(before.datagrams.kernelDropped);
    expect(after.web.slowViewersDropped).toBe(before.web.slowViewersDropped + 1);
    // The page, which reads, was not dropped.
    expect(after.web.viewers).toBe(before.web.viewers);
    expect(await page.$eval('#status', (e: any) => e.textContent)).toBe('live');
  }, 120_000);

  it_('the page reconnects by itself when the bridge restarts', async () => {
    const startedBefore = await page.$eval('#summary', (e: any) => e.textContent);
    expect(await bridge.stop('SIGTERM')).toBe(0);
    await page.waitForFunction(() => document.getElementById('status')?.textContent === 'reconnecting…', { timeout: 10_000 });
    bridge = await startBridge(bridgeArgs, { OTEL_EXPORTER_OTLP_ENDPOINT: sink.url }, false);
    await page.waitForFunction(
      (before: string) => document.getElementById('status')?.textContent === 'live' && document.getElementById('summary')?.textContent !== before,
      { timeout: 15_000 },
      startedBefore,
    );
    // Live data from the new bridge.
    for (const d of callDatagrams({ clientId: 'after-restart', service: 'SQS', api: 'SendMessage', status: 200 })) await sendUdp(bridge.udpPort, d);
    await page.waitForFunction(() => Array.from(document.querySelectorAll('#rows td.client')).some((td: any) => td.textContent === 'after-restart'), { timeout: 15_000 });
  }, 60_000);
});
