#!/usr/bin/env node
/**
 * Soak: runs the built bridge (dist/cli.js) for a bounded time with a mixed stream
 * (real captured datagram pairs with fresh timestamps + 10 % garbage) against a
 * local OTLP/HTTP receiver that answers 503 on a schedule, and prints what
 * happened: datagrams sent, spans exported, rejects by reason, drops, RSS over
 * time, crashes (exit codes). Everything is loopback; every process it starts is
 * stopped at the end (and on SIGINT).
 *
 *   node bench/soak.mjs [--minutes N | --seconds N] [--rate DATAGRAMS_PER_S]
 *                       [--outage-every-s 120] [--outage-s 30] [--sample-s 10] [--max-datagrams N]
 *
 * Defaults: 10 minutes, 1000 datagrams/s, 503 for 30 s every 2 minutes.
 * Needs `npm run build` first. Prints one JSON summary line at the end.
 */
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { readFileSync, readdirSync } from 'node:fs';
import http from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const arg = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? Number(args[i + 1]) : def;
};
const durationMs = args.includes('--seconds') ? arg('seconds', 600) * 1000 : arg('minutes', 10) * 60_000;
const rate = arg('rate', 1000);
const outageEveryMs = arg('outage-every-s', 120) * 1000;
const outageMs = arg('outage-s', 30) * 1000;
const sampleMs = arg('sample-s', 10) * 1000;
const maxDatagrams = arg('max-datagrams', Infinity);

// ---------------------------------------------------------------- datagrams: real pairs from the captures
const FIX = join(ROOT, 'test', 'fixtures');
const groups = []; // each: the datagrams of one call (attempts then ApiCall), timestamps relative to the first
for (const f of readdirSync(FIX).filter((n) => n.endsWith('.jsonl'))) {
  const lines = readFileSync(join(FIX, f), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l).raw);
  const truth = JSON.parse(readFileSync(join(FIX, f.replace('.jsonl', '.truth.json')), 'utf8'));
  const calls = truth.calls ?? (truth.commands ?? []).flatMap((c) => c.calls);
  for (const c of calls) {
    if (c.api_call_line === null) continue;
    const objs = [...c.attempt_lines, c.api_call_line].map((i) => JSON.parse(lines[i]));
    // Ruby sends the call first: keep the SDK's own order.
    const order = objs[0].UserAgent?.startsWith('aws-sdk-ruby') ? [objs.at(-1), ...objs.slice(0, -1)] : objs;
    const t0 = Math.min(...objs.map((o) => o.Timestamp));
    groups.push(order.map((o) => ({ o, dt: o.Timestamp - t0 })));
  }
}
const GARBAGE = [
  () => Buffer.from('not json {'),
  () => Buffer.from('[1,2,3]'),
  () => Buffer.from(JSON.stringify({ Type: 'Heartbeat', Service: 'S3', Api: 'X', Timestamp: Date.now() })),
  () => Buffer.from(JSON.stringify({ Type: 'ApiCall', Api: 'X', Timestamp: Date.now() })),
  () => Buffer.from(JSON.stringify({ Version: 2, Type: 'ApiCall', Service: 'S3', Api: 'X', Timestamp: Date.now() })),
  () => Buffer.from(JSON.stringify({ Type: 'ApiCallAttempt', Service: 'S3', Api: 'X', Timestamp: Date.now(), AttemptLatency: -5 })),
  () => Buffer.alloc(0),
  () => Buffer.from(Array.from({ length: 64 }, () => Math.floor(Math.random() * 256))),
];

// ---------------------------------------------------------------- OTLP receiver failing on a schedule
const sinkStart = Date.now();
const sink = { requests: 0, ok: 0, failed: 0, spans: 0, spanBytes: 0 };
const inOutage = () => (Date.now() - sinkStart) % outageEveryMs >= outageEveryMs - outageMs;
const server = http.createServer((req, res) => {
  let n = 0;
  req.on('data', (d) => (n += d.length));
  req.on('end', () => {
    sink.requests++;
    if (inOutage()) {
      sink.failed++;
      res.writeHead(503, { 'retry-after': '1' }).end();
      return;
    }
    sink.ok++;
    if (req.url === '/v1/traces') sink.spanBytes += n;
    res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
  });
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const sinkUrl = `http://127.0.0.1:${server.address().port}`;

// ---------------------------------------------------------------- the bridge
const crashes = [];
let bridge;
let udpPort;
let adminUrl;
async function startBridge() {
  const child = spawn(process.execPath, [join(ROOT, 'dist', 'cli.js'), '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--otlp-endpoint', sinkUrl, '--metrics-interval-ms', '5000'], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { PATH: process.env.PATH ?? '' },
  });
  let buf = '';
  const logCounts = {};
  const started = await new Promise((resolve, reject) => {
    child.stderr.on('data', (d) => {
      buf += d.toString();
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        try {
          const rec = JSON.parse(line);
          logCounts[`${rec.level}: ${rec.msg}`] = (logCounts[`${rec.level}: ${rec.msg}`] ?? 0) + 1;
          if (rec.msg === 'aws-csm-bridge started') resolve(rec);
        } catch {
          logCounts['non-JSON stderr line'] = (logCounts['non-JSON stderr line'] ?? 0) + 1;
        }
      }
    });
    child.on('exit', (code, signal) => reject(new Error(`bridge exited ${code ?? signal} before starting`)));
    setTimeout(() => reject(new Error('bridge did not start in 20 s')), 20_000).unref();
  });
  child.on('exit', (code, signal) => {
    if (!stopping) crashes.push({ at: Date.now() - sinkStart, code, signal });
  });
  bridge = { child, logCounts };
  const l = started.listen[0];
  udpPort = Number(l.slice(l.lastIndexOf(':') + 1));
  adminUrl = `http://${started.admin}`;
}
let stopping = false;
const stopAll = async () => {
  stopping = true;
  if (bridge && bridge.child.exitCode === null) {
    bridge.child.kill('SIGTERM');
    const t = setTimeout(() => bridge.child.kill('SIGKILL'), 15_000);
    await new Promise((r) => (bridge.child.exitCode !== null ? r() : bridge.child.once('exit', r)));
    clearTimeout(t);
  }
};
process.on('SIGINT', () => void stopAll().then(() => process.exit(130)));
await startBridge();

const rssMb = (pid) => {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Math.round(Number(m[1]) / 1024) : null;
  } catch {
    return null;
  }
};
const getStats = async () => {
  try {
    return await (await fetch(`${adminUrl}/stats`)).json();
  } catch {
    return undefined;
  }
};

// ---------------------------------------------------------------- drive
const sock = createSocket('udp4');
await new Promise((r) => sock.bind(0, '127.0.0.1', r));
const sent = { total: 0, valid: 0, garbage: 0, sendErrors: 0 };
const samples = [];
const t0 = Date.now();
let nextSample = t0;
let owed = 0;
let lastTick = t0;
let gi = 0;
process.stderr.write(`soak: ${durationMs / 1000} s at ${rate}/s, OTLP 503 for ${outageMs / 1000} s every ${outageEveryMs / 1000} s, ${groups.length} real calls as templates\n`);
while (Date.now() - t0 < durationMs && sent.total < maxDatagrams) {
  const now = Date.now();
  owed += ((now - lastTick) * rate) / 1000;
  lastTick = now;
  while (owed >= 1 && sent.total < maxDatagrams) {
    let batch;
    if (Math.random() < 0.1) {
      batch = [GARBAGE[Math.floor(Math.random() * GARBAGE.length)]()];
      sent.garbage++;
    } else {
      const g = groups[gi++ % groups.length];
      const base = Date.now();
      batch = g.map(({ o, dt }) => Buffer.from(JSON.stringify({ ...o, Timestamp: base + dt, ClientId: `soak-${o.ClientId ?? ''}` })));
      sent.valid += batch.length;
    }
    for (const b of batch) {
      sock.send(b, udpPort, '127.0.0.1', (e) => e && sent.sendErrors++);
      sent.total++;
      owed--;
    }
  }
  if (now >= nextSample) {
    nextSample += sampleMs;
    const st = await getStats();
    const s = { t: Math.round((now - t0) / 1000), rssMb: rssMb(bridge.child.pid), outage: inOutage(), sent: sent.total, received: st?.datagrams.received, exported: st?.spans.exported, failed: st?.spans.failed, dropped: st?.spans.dropped, pending: st?.correlation.pendingAttempts };
    samples.push(s);
    process.stderr.write(`${JSON.stringify(s)}\n`);
  }
  await new Promise((r) => setTimeout(r, 5));
}
// drain: let the last outage pass (if any) and the queues flush, then stop gracefully
await new Promise((r) => setTimeout(r, 3_000));
const final = await getStats();
const rssEnd = rssMb(bridge.child.pid);
await stopAll();
const exitCode = bridge.child.exitCode;
sock.close();
server.close();
server.closeAllConnections();

const sum = (o) => Object.values(o ?? {}).reduce((a, b) => a + b, 0);
const summary = {
  seconds: Math.round((Date.now() - t0) / 1000),
  rate,
  sent,
  received: final?.datagrams.received,
  lostInKernel: final ? sent.total - final.datagrams.received : null,
  accepted: final?.datagrams.accepted,
  rejected: final?.datagrams.rejected,
  rejectedTotal: sum(final?.datagrams.rejected),
  dropped: final?.datagrams.dropped,
  correlation: final?.correlation,
  spans: final?.spans,
  metricExports: final?.metricExports,
  memory: final?.memory,
  otlpReceiver: sink,
  rssMb: { samples: samples.map((s) => [s.t, s.rssMb]), max: Math.max(...samples.map((s) => s.rssMb ?? 0)), end: rssEnd },
  crashes,
  exitCode,
  logs: bridge.logCounts,
};
process.stdout.write(`${JSON.stringify(summary)}\n`);
process.exit(crashes.length || exitCode !== 0 ? 1 : 0);
