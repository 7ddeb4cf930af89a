#!/usr/bin/env node
/**
 * GET /policy pollers against the datagram path (issue 16, item 6): the built CLI with a policy
 * state filled by distinct calls (clients × mapped S3/DynamoDB operations × Regions × buckets),
 * then a steady datagram stream while `--pollers` clients GET /policy back to back. Per run:
 * /healthz latency (median, max, polled every 100 ms), datagrams the kernel dropped during the
 * stream (of those sent), /policy answers, and the policy counters (stateBytes, reportBytes,
 * droppedOverBudget). Run with 0 pollers first for the baseline. No pass/fail: the figures
 * depend on the machine.
 *
 *   npm run build && node bench/policy-pollers.mjs [--pollers 8] [--fill 100000] [--rate 5000] [--seconds 20] [--dist DIR]
 *
 * --dist runs another build (an old one: git worktree + npm run build) for an A/B.
 */
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : def;
};
const POLLERS = Number(arg('pollers', 8));
const FILL = Number(arg('fill', 100_000));
const RATE = Number(arg('rate', 5_000));
const SECONDS = Number(arg('seconds', 20));
const DIST = arg('dist', new URL('../dist', import.meta.url).pathname);

const [attemptLine, callLine] = readFileSync(new URL('../test/fixtures/js_v2_sequential.jsonl', import.meta.url), 'utf8').split('\n');
const ATTEMPT = JSON.parse(JSON.parse(attemptLine).raw);
const CALL = JSON.parse(JSON.parse(callLine).raw);
const { IAM_MAP } = await import(join(DIST, 'policy', 'iam-map.data.js'));
const ops = (service, n) => IAM_MAP[service].derived.split(' ').map((o) => o.split('=')[0]).slice(0, n);
const S3 = ops('S3', 80);
const DDB = ops('DynamoDB', 40);
const REGIONS = Array.from({ length: 16 }, (_, i) => `${String.fromCharCode(97 + i)}a-west-1`);

/** Call i: a captured attempt and call, its client, operation, Region and bucket made from i. */
function pair(i) {
  const s3 = i % 3 !== 0;
  const api = s3 ? S3[Math.floor(i / 25) % S3.length] : DDB[Math.floor(i / 25) % DDB.length];
  const o = { ClientId: `bench-${i % 25}`, Service: s3 ? 'S3' : 'DynamoDB', Api: api, Region: REGIONS[(i >> 3) % REGIONS.length] };
  const at = { ...ATTEMPT, ...o, XAmznRequestId: `pp-${i}`, Timestamp: Date.now(), ...(s3 ? { Fqdn: `bucket-${i % 9973}.s3.amazonaws.com` } : {}) };
  const call = { ...CALL, ...o, Timestamp: Date.now() };
  return [Buffer.from(JSON.stringify(at)), Buffer.from(JSON.stringify(call))];
}

const child = spawn(process.execPath, [join(DIST, 'cli.js'), '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--no-ui'], {
  env: { PATH: process.env.PATH, OTEL_TRACES_EXPORTER: 'none', OTEL_METRICS_EXPORTER: 'none' },
  stdio: ['ignore', 'ignore', 'pipe'],
});
const started = await new Promise((resolve, reject) => {
  let buf = '';
  child.stderr.on('data', (d) => {
    buf += d;
    for (const line of buf.split('\n')) if (line.includes('"aws-csm-bridge started"')) resolve(JSON.parse(line));
  });
  child.on('exit', (c) => reject(new Error(`bridge exited ${c}: ${buf}`)));
});
const port = Number(started.listen[0].split(':').pop());
const admin = `http://${started.admin}`;
const udp = createSocket('udp4');
const stats = async () => (await fetch(`${admin}/stats`)).json();

/** Sends calls [from, from + n) at `rate` per second. */
async function stream(from, n, rate) {
  const t0 = performance.now();
  for (let i = from; i < from + n; i++) {
    for (const d of pair(i)) udp.send(d, port, '127.0.0.1');
    if ((i - from) % 50 === 49) {
      const due = t0 + ((i - from + 1) / rate) * 1000;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
  }
}

try {
  await stream(0, FILL, 20_000);
  await new Promise((r) => setTimeout(r, 2_000));
  const filled = await stats();
  const before = filled.datagrams;
  let stop = false;
  let answers = 0;
  const pollers = Array.from({ length: POLLERS }, async () => {
    while (!stop) {
      const r = await fetch(`${admin}/policy`);
      await r.arrayBuffer();
      answers++;
    }
  });
  const health = [];
  const healthLoop = (async () => {
    while (!stop) {
      const t = performance.now();
      await (await fetch(`${admin}/healthz`)).arrayBuffer();
      health.push(performance.now() - t);
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  await stream(FILL, RATE * SECONDS, RATE);
  stop = true;
  await Promise.all([...pollers, healthLoop]);
  await new Promise((r) => setTimeout(r, 1_000));
  const after = await stats();
  health.sort((a, b) => a - b);
  const sent = 2 * RATE * SECONDS;
  console.log(
    JSON.stringify(
      {
        dist: DIST,
        pollers: POLLERS,
        fill: FILL,
        rate: RATE,
        seconds: SECONDS,
        policyAnswers: answers,
        healthzMs: { median: +health[Math.floor(health.length / 2)]?.toFixed(1), max: +health.at(-1)?.toFixed(1), samples: health.length },
        kernelDropped: after.datagrams.kernelDropped - before.kernelDropped,
        sent,
        policy: after.policy,
        rssBytes: after.memory.rssBytes,
        peakRssBytes: after.memory.peakRssBytes,
      },
      null,
      2,
    ),
  );
} finally {
  udp.close();
  child.kill('SIGKILL');
}
