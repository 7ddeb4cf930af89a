#!/usr/bin/env node
/**
 * Outage bench: how much does the export spool hold for an outage, and how fast does it drain?
 *
 *   npm run build && node bench/outage.mjs [--rate 1000] [--seconds 60] [--protocol http/protobuf|http/json] [--spool-dir DIR]
 *
 * Starts the built CLI with the OTLP endpoint down (nothing listening), sends `rate` calls/s
 * (a real captured aws-sdk JS v2 ApiCallAttempt + ApiCall pair, unique request id per call) for
 * `seconds`, samples /stats and the bridge's RSS, then starts a minimal OTLP/HTTP receiver on the
 * endpoint port (answers 200 with an empty body, counts bytes) and measures the drain. Prints
 * bytes/span, RSS/span and the extrapolation to a 5-minute outage at 1,000 calls/s (600k spans).
 * Everything is bounded: the run, the drain wait (120 s) and the child process (killed at exit).
 */
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, jsV2CallPair } from './common.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const RATE = Number(arg('rate', '1000'));
const SECONDS = Math.min(600, Number(arg('seconds', '60')));
const PROTOCOL = arg('protocol', 'http/protobuf');
const SPOOL_DIR = arg('spool-dir', '');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const { ATTEMPT, CALL } = jsV2CallPair();

const otlpPort = await freePort();
const args = [
  join(ROOT, 'dist/cli.js'),
  '--listen', '127.0.0.1:0',
  '--admin', '127.0.0.1:0',
  '--otlp-endpoint', `http://127.0.0.1:${otlpPort}`,
  '--otlp-protocol', PROTOCOL,
  '--spool-max-bytes', String(4 * 1024 ** 3),
  '--memory-ceiling-mb', '0',
  '--log-level', 'info',
  ...(SPOOL_DIR ? ['--spool-dir', SPOOL_DIR] : []),
];
const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
process.on('exit', () => child.kill('SIGKILL'));
let started;
let err = '';
await new Promise((resolve, reject) => {
  child.stderr.on('data', (d) => {
    err += d;
    for (const l of err.split('\n')) {
      try {
        const r = JSON.parse(l);
        if (r.msg === 'aws-csm-bridge started') {
          started = r;
          resolve();
        }
      } catch {}
    }
  });
  child.on('exit', (c) => reject(new Error(`bridge exited ${c}: ${err}`)));
  setTimeout(() => reject(new Error('no start in 20 s')), 20_000).unref();
});
const udpPort = Number(started.listen[0].split(':').pop());
const admin = `http://${started.admin}`;
const stats = async () => (await fetch(`${admin}/stats`)).json();
const rss = () => {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
};

const rss0 = rss();
const udp = createSocket('udp4');
const t0 = Date.now();
let sent = 0;
const total = RATE * SECONDS;
const samples = [];
let nextSample = t0;
while (sent < total) {
  const due = Math.min(total, Math.floor(((Date.now() - t0) / 1000) * RATE));
  while (sent < due) {
    const i = sent++;
    const shift = i * 3;
    const a = { ...ATTEMPT, XAmznRequestId: `bench-${i}`, Timestamp: ATTEMPT.Timestamp + shift };
    const c = { ...CALL, Timestamp: CALL.Timestamp + shift };
    udp.send(JSON.stringify(a), udpPort, '127.0.0.1');
    udp.send(JSON.stringify(c), udpPort, '127.0.0.1');
  }
  if (Date.now() >= nextSample) {
    const s = await stats();
    samples.push({ t: Math.round((Date.now() - t0) / 1000), sent, accepted: s.datagrams.accepted, queuedSpans: s.spool.queuedSpans, queuedBytes: s.spool.queuedBytes, rssMiB: +(rss() / 2 ** 20).toFixed(1) });
    nextSample += 10_000;
  }
  await sleep(5);
}
// Let the last batches reach the spool.
let s;
for (let i = 0; i < 100; i++) {
  s = await stats();
  if (s.spans.created === 2 * total && s.spool.queuedSpans + s.spans.dropped === 2 * total) break;
  await sleep(100);
}
const rss1 = rss();
const outage = {
  callsSent: total,
  datagramsAccepted: s.datagrams.accepted,
  datagramsReceived: s.datagrams.received,
  spansCreated: s.spans.created,
  queuedSpans: s.spool.queuedSpans,
  queuedMetricExports: s.spool.queuedMetricExports,
  queuedBytes: s.spool.queuedBytes,
  droppedSpans: s.spans.dropped,
  bytesPerSpan: +(s.spool.queuedBytes / s.spool.queuedSpans).toFixed(1),
  rssStartMiB: +(rss0 / 2 ** 20).toFixed(1),
  rssEndMiB: +(rss1 / 2 ** 20).toFixed(1),
  rssPerSpanBytes: +((rss1 - rss0) / s.spool.queuedSpans).toFixed(1),
};

// The collector comes back: a minimal OTLP/HTTP receiver.
let bodyBytes = 0;
let requests = 0;
const server = http.createServer((req, res) => {
  req.on('data', (d) => (bodyBytes += d.length));
  req.on('end', () => {
    requests++;
    res.writeHead(200, { 'content-type': req.headers['content-type'] ?? 'application/x-protobuf' });
    res.end(req.headers['content-type']?.includes('json') ? '{}' : '');
  });
});
await new Promise((r) => server.listen(otlpPort, '127.0.0.1', r));
const d0 = Date.now();
for (let i = 0; i < 1200; i++) {
  s = await stats();
  if (s.spool.queuedSpans === 0) break;
  await sleep(100);
}
const drainMs = Date.now() - d0;
const drain = { drainMs, spansExported: s.spans.exported, left: s.spool.queuedSpans, requests, bodyBytes, spansPerSecond: Math.round(s.spans.exported / (drainMs / 1000)) };
const FIVE_MIN = 600_000;
const extrapolation = {
  spansFor5MinAt1000CallsPerSecond: FIVE_MIN,
  spoolBytes: Math.round(outage.bytesPerSpan * FIVE_MIN),
  spoolMiB: +((outage.bytesPerSpan * FIVE_MIN) / 2 ** 20).toFixed(0),
  rssGrowthMiB: +((outage.rssPerSpanBytes * FIVE_MIN) / 2 ** 20).toFixed(0),
  drainSeconds: +(FIVE_MIN / drain.spansPerSecond).toFixed(1),
};
console.log(JSON.stringify({ rate: RATE, seconds: SECONDS, protocol: PROTOCOL, spoolDir: SPOOL_DIR || null, samples, outage, drain, extrapolation }, null, 2));
child.kill('SIGTERM');
await new Promise((r) => child.once('exit', r));
server.close();
udp.close();
process.exit(0);
