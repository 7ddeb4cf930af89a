#!/usr/bin/env node
/**
 * Export latency of correlation's settle wait: replays captures in real time through an
 * in-process Bridge driven as the live one is (datagrams ingested at their recorded spacing with
 * the wall clock as receive time, expire() every 100 ms, OTLP/JSON to a local sink that notes when
 * each call span arrives), and prints datagram→collector latency of the call spans (arrival minus
 * ingest of the ApiCall datagram, export batching included) with /stats correlation.joint.
 *
 *   npm run build && node bench/settle-latency.mjs [--dist DIR] [--settle MS] [capture ...]
 *   (default captures: the five storms in test/fixtures)
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { pathToFileURL } from 'node:url';

const args = process.argv.slice(2);
const opt = (name) => {
  const i = args.indexOf(`--${name}`);
  if (i < 0) return undefined;
  const v = args[i + 1];
  args.splice(i, 2);
  return v;
};
const DIST = opt('dist');
const SETTLE = opt('settle');
const captures = args.length > 0 ? args : ['boto3_storm_legacy', 'boto3_storm_standard', 'go_v1_storm', 'js_v2_storm', 'ruby_v3_storm'];
const distUrl = DIST === undefined ? new URL('../dist/', import.meta.url) : pathToFileURL(`${DIST.replace(/\/+$/, '')}/`);
const { Bridge } = await import(new URL('bridge.js', distUrl).href);
const { DEFAULT_CONFIG } = await import(new URL('config/schema.js', distUrl).href);
const { createLogger } = await import(new URL('log.js', distUrl).href);
const { resolveOtelEnv } = await import(new URL('config/otel-env.js', distUrl).href);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function run(capture) {
  const lines = readFileSync(new URL(`../test/fixtures/${capture}.jsonl`, import.meta.url), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const arrivals = [];
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const t = Date.now();
      if (req.url === '/v1/traces') {
        for (const rs of JSON.parse(Buffer.concat(chunks).toString()).resourceSpans ?? []) {
          for (const ss of rs.scopeSpans ?? []) for (const s of ss.spans ?? []) if (!s.parentSpanId) arrivals.push({ t, end: Number(BigInt(s.endTimeUnixNano) / 1_000_000n), name: s.name });
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${server.address().port}`;
  const config = { ...DEFAULT_CONFIG, admin: 'off', otlpEndpoint: url, otlpProtocol: 'http/json', processIdentity: 'off', ...(SETTLE === undefined ? {} : { matchSettleMs: Number(SETTLE) }) };
  const otel = resolveOtelEnv({}, { otlpEndpoint: url, otlpProtocol: 'http/json' });
  const bridge = new Bridge(config, createLogger('error', () => {}), 'bench', otel, 'replay');
  await bridge.start();
  const timer = setInterval(() => bridge.expire(Date.now()), 100);
  const first = BigInt(lines[0].recv_ns);
  const wall0 = Date.now() + 200;
  const fedAt = [];
  for (const l of lines) {
    const wait = wall0 + Number(BigInt(l.recv_ns) - first) / 1e6 - Date.now();
    if (wait > 1) await sleep(wait);
    const i = l.src.lastIndexOf(':');
    const now = Date.now();
    fedAt.push(now);
    bridge.ingest(Buffer.from(l.raw), { address: l.src.slice(0, i), port: Number(l.src.slice(i + 1)) }, now);
  }
  await sleep(3_000);
  clearInterval(timer);
  await bridge.stop(Date.now() + 5_000);
  server.close();
  // Call spans matched to their ApiCall datagram by name and end (twins end together and were ingested together).
  const calls = lines
    .map((l, i) => ({ i, r: JSON.parse(l.raw) }))
    .filter((x) => x.r.Type === 'ApiCall')
    .map((x) => ({ fed: fedAt[x.i], end: (x.r.UserAgent ?? '').startsWith('aws-sdk-go/') ? x.r.Timestamp : x.r.Timestamp + (x.r.Latency ?? 0), name: `${x.r.Service}.${x.r.Api}`, used: false }));
  const lat = [];
  for (const a of arrivals) {
    let best;
    for (const c of calls) {
      if (c.used || c.name !== a.name || Math.abs(c.end - a.end) > 3) continue;
      if (!best || Math.abs(c.end - a.end) < Math.abs(best.end - a.end)) best = c;
    }
    if (best) {
      best.used = true;
      lat.push(a.t - best.fed);
    }
  }
  lat.sort((x, y) => x - y);
  const q = (p) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))];
  const joint = bridge.snapshot().correlation.joint;
  console.log(`${capture.padEnd(22)} settle ${config.matchSettleMs} ms  call spans ${lat.length}/${calls.length}  datagram→collector p50 ${q(0.5)} ms  p99 ${q(0.99)} ms  max ${lat.at(-1)} ms  joint ${JSON.stringify(joint)}`);
}

for (const c of captures) await run(c);
