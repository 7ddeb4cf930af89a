#!/usr/bin/env node
// The web view in a real browser under load: Debian's chromium (headless, puppeteer-core) keeps
// GET / of a bridge open while `npm run bench` drives it, and says what the page costs and
// whether it keeps up. Like bench/web-viewers.mjs, run it beside the bench with a fixed admin
// address (the bench starts a bridge per rate; the page reconnects by itself):
//
//   node bench/web-view-browser.mjs --admin 127.0.0.1:31999 --seconds 40 &
//   node bench/run.mjs --rates 20000 --duration 30 --no-raw -- --admin 127.0.0.1:31999
//
// (20,000 datagrams/s of the bench's single-attempt calls are 10,000 calls/s.) Alternate runs
// with and without the page to see what it costs the bridge. Every 5 s it prints one JSON line:
//   updates   – how often the page's summary line changed (the bridge sends one update a second);
//   lagDatagrams – the most datagrams /stats counted that the page did not show yet;
//   busyPct   – the page's main thread busy (CDP TaskDuration over wall time);
//   heapMb, nodes – the page's JS heap and DOM size, which must stay flat.
// The browser runs on core 0 (`taskset`, when present), with the sender, away from the bridge.
import { execFileSync } from 'node:child_process';
import puppeteer from 'puppeteer-core';
import { flag } from './common.mjs';

const admin = flag('--admin', '127.0.0.1:31001');
const seconds = Number(flag('--seconds', '40'));
const REPORT_MS = 5_000;
const SAMPLE_MS = 250;
const CONNECT_TRIES = 120;

const which = (tool) => {
  try {
    return execFileSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).trim();
  } catch {
    return '';
  }
};
const chromium = flag('--chromium', which('chromium'));
if (!chromium) {
  process.stderr.write('web-view-browser: chromium not found (apt-get install chromium, or --chromium PATH)\n');
  process.exit(2);
}
// This process and so the browser it starts (children inherit the affinity) on core 0.
if (which('taskset')) execFileSync('taskset', ['-a', '-c', '-p', '0', String(process.pid)], { stdio: 'ignore' });

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const round = (x, d = 1) => Math.round(x * 10 ** d) / 10 ** d;

async function received() {
  try {
    const s = await (await fetch(`http://${admin}/stats`)).json();
    return s.datagrams.received;
  } catch {
    return null;
  }
}

const browser = await puppeteer.launch({ executablePath: chromium, args: ['--no-sandbox'], headless: true });
const stopAll = async () => {
  await browser.close().catch(() => {});
  process.exit(0);
};
process.on('SIGINT', stopAll);
process.on('SIGTERM', stopAll);

const page = await browser.newPage();
let loaded = false;
for (let i = 0; i < CONNECT_TRIES && !loaded; i++) {
  try {
    await page.goto(`http://${admin}/`, { waitUntil: 'load', timeout: 2_000 });
    loaded = true;
  } catch {
    await sleep(500);
  }
}
if (!loaded) {
  process.stderr.write(`web-view-browser: no web view at http://${admin}/ after ${CONNECT_TRIES} tries\n`);
  await browser.close();
  process.exit(1);
}

const metric = (m, name) => m.metrics.find((x) => x.name === name)?.value ?? 0;
const cdp = await page.createCDPSession();
await cdp.send('Performance.enable');
let last = await cdp.send('Performance.getMetrics');
let lastAt = Date.now();
let lastSummary = '';
let updates = 0;
let lagMax = 0;
const end = Date.now() + seconds * 1000;
let nextReport = Date.now() + REPORT_MS;
const all = [];
while (Date.now() < end) {
  await sleep(SAMPLE_MS);
  const summary = await page.$eval('#summary', (el) => el.textContent ?? '').catch(() => '');
  if (summary && summary !== lastSummary) {
    updates++;
    lastSummary = summary;
  }
  const shown = Number((/([\d,]+) datagrams/.exec(summary)?.[1] ?? '').replace(/,/g, ''));
  const counted = await received();
  if (counted !== null && Number.isFinite(shown) && counted >= shown) lagMax = Math.max(lagMax, counted - shown);
  if (Date.now() >= nextReport) {
    const m = await cdp.send('Performance.getMetrics');
    const now = Date.now();
    const line = {
      at: new Date(now).toISOString(),
      admin,
      updates,
      lagDatagrams: lagMax,
      busyPct: round((100 * (metric(m, 'TaskDuration') - metric(last, 'TaskDuration'))) / ((now - lastAt) / 1000)),
      scriptPct: round((100 * (metric(m, 'ScriptDuration') - metric(last, 'ScriptDuration'))) / ((now - lastAt) / 1000)),
      heapMb: round(metric(m, 'JSHeapUsedSize') / 2 ** 20),
      nodes: metric(m, 'Nodes'),
    };
    all.push(line);
    process.stdout.write(`${JSON.stringify(line)}\n`);
    last = m;
    lastAt = now;
    updates = 0;
    lagMax = 0;
    nextReport = now + REPORT_MS;
  }
}
await browser.close();
