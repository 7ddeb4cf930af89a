#!/usr/bin/env node
// Cold start at full rate, build against build (issue 20): each run starts the bridge and hits it
// at once with RATE datagrams/s for DURATION s (bench/run.mjs --idle 0: the first datagram comes
// right after the start line, V8 has compiled nothing but the warm-up), then reads end-to-end loss
// (spans at the OTLP counter against the spans the sent calls make), kernel and ring drops, peak
// RSS and CPU per datagram. Builds alternate within a round (the order flips every round), and
// each round also measures the raw node:dgram receiver (the platform's limit). Then idle: every
// build started with no traffic, RSS after --idle-s and --idle-long-s, next to Node's own floor
// (`node -e 'setTimeout(() => {}, 1e9)'`) measured at the same time.
//
//   node bench/coldstart.mjs [--runs 5 (0: idle only)] [--rate 100000] [--duration 20] [--build DIR]...
//                            [--idle-s 20] [--idle-long-s 300] [--no-raw] [--sender gen|python]
//                            [--label L] [--out FILE]
//
// --build DIR: another checkout to compare (built: DIR/dist/cli.js, and DIR/build/Release for its
// recvmmsg receiver), e.g. `git worktree add /tmp/old 5a952ec && cd /tmp/old && npm ci && npm run
// build`. This checkout is always measured. The sender (--sender, passed to bench/run.mjs) is a
// separate process on core 0 sending real botocore pairs, whole pairs every 1 ms: gen (default) is
// bench/gen.c, sendmmsg; python is bench/send.py, one socket.sendto per datagram as an SDK sends.
// The bridge is pinned to core 1. Loss target (issue 20): <= 0.1 % in every run, default
// net.core.rmem_max, an independent sender.
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, '..');

function parseArgs(argv) {
  const o = { runs: 5, rate: 100_000, durationS: 20, builds: [ROOT], idleS: 20, idleLongS: 300, raw: true, sender: 'gen', label: '', out: undefined };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--runs') o.runs = Number(next());
    else if (a === '--rate') o.rate = Number(next().replace(/k$/i, '000'));
    else if (a === '--duration') o.durationS = Number(next());
    else if (a === '--build') o.builds.push(resolve(next()));
    else if (a === '--idle-s') o.idleS = Number(next());
    else if (a === '--idle-long-s') o.idleLongS = Number(next());
    else if (a === '--no-raw') o.raw = false;
    else if (a === '--sender') o.sender = next();
    else if (a === '--label') o.label = next();
    else if (a === '--out') o.out = next();
    else if (a === '--help' || a === '-h') {
      process.stdout.write(readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n').slice(1, 21).map((l) => l.replace(/^\/\/ ?/, '')).join('\n') + '\n');
      process.exit(0);
    } else throw new Error(`unknown flag ${a}`);
  }
  if (!(o.runs >= 0 && o.runs <= 20)) throw new Error('--runs must be 0-20 (0: the idle measurement only)');
  if (!['gen', 'python'].includes(o.sender)) throw new Error(`--sender must be gen or python, got ${o.sender}`);
  if (!(o.idleLongS === 0 || o.idleLongS > o.idleS)) throw new Error('--idle-long-s must be 0 (off) or more than --idle-s');
  return o;
}

const cliOf = (build) => join(build, 'dist', 'cli.js');
const nameOf = (build) => (build === ROOT ? 'this' : build);
const round = (x, d) => Math.round(x * 10 ** d) / 10 ** d;
const median = (xs) => {
  const s = xs.filter((x) => typeof x === 'number').sort((a, b) => a - b);
  if (s.length === 0) return null;
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** One bench/run.mjs invocation; its result file. */
function runBench(args, tmp, tag) {
  const out = join(tmp, `${tag}.json`);
  execFileSync(process.execPath, [join(HERE, 'run.mjs'), ...args, '--out', out], { stdio: ['ignore', 'ignore', 'inherit'] });
  return JSON.parse(readFileSync(out, 'utf8'));
}

function loadRun(build, o, tmp, tag) {
  const r = runBench(['--rates', String(o.rate), '--duration', String(o.durationS), '--no-raw', '--idle', '0', '--sender', o.sender, '--cli', cliOf(build)], tmp, tag);
  const b = r.bridge[0];
  return {
    build: nameOf(build),
    sent: b.sent,
    received: b.received,
    lossPct: b.spanLossPct,
    datagramLossPct: b.datagramLossPct,
    kernelDrops: b.kernelDrops,
    kernelDropsFirstSecond: b.kernelDropsFirstSecond,
    ringDropped: b.ringDropped ?? null,
    peakRssMb: b.peakRssMb,
    rssSamplesMb: b.rssSamplesMb,
    cpuUsPerDatagram: b.cpuSecondsPerMillion,
    p99Ms: b.latencyMs?.p99 ?? null,
    // Calls sent after the first second: is the whole run's p99 the cold start's backlog?
    p99FirstSecondMs: b.latencyBySend?.bySecond[0]?.p99 ?? null,
    p99AfterFirstSecondMs: b.latencyBySend?.afterFirstSecond.p99 ?? null,
  };
}

function rawRun(o, tmp, tag) {
  const r = runBench(['--rates', String(o.rate), '--duration', String(o.durationS), '--no-bridge', '--sender', o.sender], tmp, tag);
  return { cpuUsPerDatagram: r.raw[0].cpuSecondsPerMillion, lossPct: r.raw[0].lossPct };
}

function rssMb(pid) {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? round(Number(m[1]) / 1024, 1) : null;
}

/** Every build idle (no traffic) and Node's floor, side by side: RSS after idleS and idleLongS. */
async function idleRun(o) {
  const kids = [];
  const counter = spawn(process.execPath, [join(HERE, 'otlp-counter.mjs')], { stdio: ['ignore', 'pipe', 'ignore'] });
  kids.push(counter);
  try {
    const port = await new Promise((res, rej) => {
      let buf = '';
      counter.stdout.on('data', (d) => {
        buf += d.toString();
        const line = buf.split('\n').find((l) => l.includes('"port"'));
        if (line) res(JSON.parse(line).port);
      });
      counter.once('exit', () => rej(new Error('otlp-counter exited')));
    });
    const procs = [{ name: 'node floor', child: spawn(process.execPath, ['-e', 'setTimeout(() => {}, 1e9)'], { stdio: 'ignore' }) }];
    for (const build of o.builds) {
      const child = spawn(process.execPath, [cliOf(build), '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--otlp-endpoint', `http://127.0.0.1:${port}`], { stdio: ['ignore', 'ignore', 'ignore'] });
      procs.push({ name: nameOf(build), child });
    }
    for (const p of procs) kids.push(p.child);
    await sleep(o.idleS * 1000);
    const rows = procs.map((p) => ({ process: p.name, [`rssMbAt${o.idleS}s`]: rssMb(p.child.pid) }));
    if (o.idleLongS > 0) {
      await sleep((o.idleLongS - o.idleS) * 1000);
      procs.forEach((p, i) => (rows[i][`rssMbAt${o.idleLongS}s`] = rssMb(p.child.pid)));
    }
    return rows;
  } finally {
    for (const k of kids) if (k.exitCode === null) k.kill('SIGTERM');
  }
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const tmp = join(tmpdir(), `csm-coldstart-${process.pid}`);
  mkdirSync(tmp, { recursive: true });
  const load = [];
  const raw = [];
  try {
    for (let i = 0; i < o.runs; i++) {
      const order = i % 2 === 0 ? o.builds : [...o.builds].reverse();
      for (const [j, build] of order.entries()) {
        const r = { run: i + 1, ...loadRun(build, o, tmp, `run${i}-${j}`) };
        load.push(r);
        process.stderr.write(`coldstart ${JSON.stringify(r)}\n`);
      }
      if (o.raw) {
        const r = { run: i + 1, ...rawRun(o, tmp, `raw${i}`) };
        raw.push(r);
        process.stderr.write(`raw ${JSON.stringify(r)}\n`);
      }
    }
    const idle = await idleRun(o);
    const summary = o.builds.map((b) => {
      const rs = load.filter((r) => r.build === nameOf(b));
      return {
        build: nameOf(b),
        runsWithin0_1Pct: `${rs.filter((r) => r.lossPct <= 0.1).length} of ${rs.length}`,
        lossPct: rs.map((r) => r.lossPct),
        peakRssMb: rs.map((r) => r.peakRssMb),
        cpuUsPerDatagram: rs.map((r) => r.cpuUsPerDatagram),
        medianCpuUsPerDatagram: median(rs.map((r) => r.cpuUsPerDatagram)),
      };
    });
    const result = { when: new Date().toISOString(), label: o.label, options: o, load, raw, idle, summary, rawMedianCpuUsPerDatagram: median(raw.map((r) => r.cpuUsPerDatagram)) };
    const out = o.out ?? join(HERE, 'results', `${result.when.replace(/[:.]/g, '-')}-coldstart${o.label ? `-${o.label}` : ''}.json`);
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);

    process.stdout.write(`\nCold start, ${o.rate}/s for ${o.durationS} s, sender ${o.sender} (loss = spans missing at the OTLP counter)\n`);
    process.stdout.write('| run | build | loss % | kernel drops (1st s) | ring drops | peak RSS MB | CPU µs/datagram |\n|---|---|---|---|---|---|---|\n');
    for (const r of load)
      process.stdout.write(`| ${r.run} | ${r.build} | ${r.lossPct} | ${r.kernelDrops} (${r.kernelDropsFirstSecond}) | ${r.ringDropped ?? 'n/a'} | ${r.peakRssMb} | ${r.cpuUsPerDatagram} |\n`);
    if (raw.length) process.stdout.write(`\nraw node:dgram receiver, CPU µs/datagram: ${raw.map((r) => r.cpuUsPerDatagram).join(', ')}\n`);
    process.stdout.write('\nIdle RSS (no traffic)\n');
    for (const r of idle) process.stdout.write(`${JSON.stringify(r)}\n`);
    process.stdout.write(`\nsummary: ${JSON.stringify(summary, null, 1)}\nresults: ${out}\n`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((e) => {
  process.stderr.write(`coldstart failed: ${e.stack ?? e}\n`);
  process.exit(1);
});
