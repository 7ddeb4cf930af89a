#!/usr/bin/env node
/**
 * Stop-time bench: how long SIGINT takes when no collector ever answered (the Quick start's
 * default situation), and how long a second SIGINT takes to end the process.
 *
 *   npm run build && node bench/stop-time.mjs [--cli dist/cli.js] [--calls 50] [--runs 3] [--spool-dir DIR] [-- extra flags]
 *
 * Each run starts the built CLI with its defaults (shutdown timeout 10 s) and an OTLP endpoint on
 * a loopback port nothing listens on, sends `calls` real captured aws-sdk JS v2 attempt + call
 * pairs, waits until their spans are in the export spool, then:
 *   single: one SIGINT, time until the process has exited;
 *   double: SIGINT, 300 ms later a second SIGINT, time from the second until exit.
 * Prints the figures as JSON and exits 1 when a single stop takes longer than STOP_BOUND_MS (a
 * user at a terminal expects an answer in about a second; the bound leaves room for a busy machine).
 * Every child is killed at exit; every wait is bounded.
 */
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, jsV2CallPair } from './common.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const CLI = arg('cli', join(ROOT, 'dist/cli.js'));
const CALLS = Number(arg('calls', '50'));
const RUNS = Math.min(20, Number(arg('runs', '3')));
const SPOOL_DIR = arg('spool-dir', '');
const EXTRA = process.argv.includes('--') ? process.argv.slice(process.argv.indexOf('--') + 1) : [];
/** A single stop slower than this fails the bench. */
const STOP_BOUND_MS = 2_500;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const { ATTEMPT, CALL } = jsV2CallPair();

const children = new Set();
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

async function startBridge() {
  const closed = await freePort();
  const args = [CLI, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--otlp-endpoint', `http://127.0.0.1:${closed}`, ...(SPOOL_DIR ? ['--spool-dir', SPOOL_DIR] : []), ...EXTRA];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  children.add(child);
  const exited = new Promise((r) => child.once('exit', (code) => r({ code, at: performance.now() })));
  let err = '';
  const started = await new Promise((resolve, reject) => {
    child.stderr.on('data', (d) => {
      err += d;
      for (const l of err.split('\n')) {
        try {
          const r = JSON.parse(l);
          if (r.msg === 'aws-csm-bridge started') resolve(r);
        } catch {}
      }
    });
    void exited.then(({ code }) => reject(new Error(`bridge exited ${code}: ${err}`)));
    setTimeout(() => reject(new Error('no start in 20 s')), 20_000).unref();
  });
  return { child, started, exited, stderr: () => err };
}

async function spoolCalls(b) {
  const udpPort = Number(b.started.listen[0].split(':').pop());
  const udp = createSocket('udp4');
  for (let i = 0; i < CALLS; i++) {
    const a = { ...ATTEMPT, XAmznRequestId: `stop-${i}`, Timestamp: ATTEMPT.Timestamp + i * 3 };
    const c = { ...CALL, Timestamp: CALL.Timestamp + i * 3 };
    udp.send(JSON.stringify(a), udpPort, '127.0.0.1');
    udp.send(JSON.stringify(c), udpPort, '127.0.0.1');
  }
  await sleep(50);
  udp.close();
  const admin = `http://${b.started.admin}`;
  for (let i = 0; i < 100; i++) {
    const s = await (await fetch(`${admin}/stats`)).json();
    if (s.spool.queuedSpans >= 2 * CALLS) return s;
    await sleep(100);
  }
  throw new Error('spans did not reach the spool in 10 s');
}

const single = [];
const double = [];
/** SIGINT, then the exit (killed after 30 s): its code and when it came. */
async function signalAndWait(b) {
  b.child.kill('SIGINT');
  const kill = setTimeout(() => b.child.kill('SIGKILL'), 30_000);
  const exit = await b.exited;
  clearTimeout(kill);
  children.delete(b.child);
  return exit;
}

for (let run = 0; run < RUNS; run++) {
  {
    const b = await startBridge();
    await spoolCalls(b);
    const t0 = performance.now();
    const { code, at } = await signalAndWait(b);
    single.push({ ms: Math.round(at - t0), code });
  }
  {
    const b = await startBridge();
    await spoolCalls(b);
    b.child.kill('SIGINT');
    await sleep(300);
    const t0 = performance.now();
    const { code, at } = await signalAndWait(b);
    double.push({ msAfterSecond: Math.round(at - t0), code });
  }
}
const worst = Math.max(...single.map((s) => s.ms));
console.log(JSON.stringify({ cli: CLI, calls: CALLS, spoolDir: SPOOL_DIR || null, single, double, worstSingleMs: worst, boundMs: STOP_BOUND_MS }, null, 2));
process.exit(worst <= STOP_BOUND_MS ? 0 : 1);
