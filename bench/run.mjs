#!/usr/bin/env node
// Throughput benchmark: the built bridge (dist/cli.js) against the platform limit (a Node dgram
// receiver that only counts), at fixed datagram rates, loopback only. See BENCHMARKS.md.
//
//   node bench/run.mjs [--quick] [--rates 10000,100000] [--duration 20] [--repeat 3]
//                      [--repeat-rate 100000] [--idle 10] [--no-raw] [--no-bridge]
//                      [--cpu-prof DIR] [--node-arg ARG]... [--cli dist/cli.js] [--label L] [--out FILE]
//                      [--grpc] [--env NAME=VALUE]... [--stdout-dir DIR] [--sender gen|python]
//                      [-- extra bridge flags...]
//
// --grpc: the bridge exports over OTLP/gRPC (the counter serves grpc-js too) instead of http/protobuf.
// --env: environment for the bridge, e.g. --env OTEL_TRACES_SAMPLER=traceidratio --env OTEL_TRACES_SAMPLER_ARG=0.1.
// --sender: gen (default) is bench/gen.c, sendmmsg batches of up to 256; python is bench/send.py, an
// independent sender that sends as an SDK does (socket.sendto, one datagram per call). Same
// templates, pacing, request ids and output line, so loss and latency are read the same way.
//
// Processes: the bridge (or the raw receiver) is pinned to core 1 (`taskset -c 1`, when present);
// the sender (--sender) and the OTLP counting receiver run on core 0.
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, '..');
let CLI = join(ROOT, 'dist', 'cli.js');
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
const HAS_TASKSET = (() => {
  try {
    execFileSync('taskset', ['-c', '0', 'true']);
    return cpus().length >= 2;
  } catch {
    return false;
  }
})();

// ---------------------------------------------------------------------------------------------
// Flags

function parseArgs(argv) {
  const o = {
    rates: [10_000, 25_000, 50_000, 100_000, 150_000, 200_000],
    durationS: 20,
    repeat: 1,
    repeatRate: 100_000,
    idleS: 10,
    raw: true,
    bridge: true,
    cpuProf: undefined,
    out: undefined,
    fixture: 'boto3_threads_standard',
    bridgeArgs: [],
    nodeArgs: [],
    grpc: false,
    env: {},
    label: '',
    sender: 'gen',
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--') {
      o.bridgeArgs = argv.slice(i + 1);
      break;
    } else if (a === '--quick') {
      o.rates = [10_000, 100_000];
      o.durationS = 5;
      o.idleS = 3;
    } else if (a === '--rates') o.rates = next().split(',').map((s) => Number(s.replace(/k$/i, '000')));
    else if (a === '--duration') o.durationS = Number(next());
    else if (a === '--repeat') o.repeat = Number(next());
    else if (a === '--repeat-rate') o.repeatRate = Number(next().replace(/k$/i, '000'));
    else if (a === '--idle') o.idleS = Number(next());
    else if (a === '--no-raw') o.raw = false;
    else if (a === '--no-bridge') o.bridge = false;
    else if (a === '--cpu-prof') o.cpuProf = next();
    else if (a === '--out') o.out = next();
    else if (a === '--fixture') o.fixture = next();
    else if (a === '--label') o.label = next();
    else if (a === '--node-arg') o.nodeArgs.push(next());
    else if (a === '--grpc') o.grpc = true;
    else if (a === '--stdout-dir') o.stdoutDir = next();
    else if (a === '--sender') o.sender = next();
    else if (a === '--env') {
      const kv = next();
      const eq = kv.indexOf('=');
      if (eq <= 0) throw new Error(`--env wants NAME=VALUE, got ${kv}`);
      o.env[kv.slice(0, eq)] = kv.slice(eq + 1);
    }
    else if (a === '--cli') CLI = next();
    else if (a === '--help' || a === '-h') {
      process.stdout.write(readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n').slice(1, 17).map((l) => l.replace(/^\/\/ ?/, '')).join('\n') + '\n');
      process.exit(0);
    } else throw new Error(`unknown flag ${a}`);
  }
  for (const r of o.rates) if (!(r > 0 && r <= 1_000_000)) throw new Error(`bad rate ${r}`);
  if (!(o.durationS > 0 && o.durationS <= 900)) throw new Error('--duration must be 1-900 s (a 10-minute run checks that RSS stays flat)');
  if (!(o.repeat >= 1 && o.repeat <= 10)) throw new Error('--repeat must be 1-10');
  if (!(o.idleS >= 0 && o.idleS <= 60)) throw new Error('--idle must be 0-60 s');
  if (!['gen', 'python'].includes(o.sender)) throw new Error(`--sender must be gen or python, got ${o.sender}`);
  return o;
}

// ---------------------------------------------------------------------------------------------
// Processes (all tracked, all killed on exit)

const children = new Set();
process.on('exit', () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));

function pinned(core, cmd, args) {
  return HAS_TASKSET ? ['taskset', ['-c', String(core), cmd, ...args]] : [cmd, args];
}

function start(core, cmd, args, opts = {}) {
  const [c, a] = pinned(core, cmd, args);
  const child = spawn(c, a, { stdio: ['pipe', 'pipe', 'pipe'], ...opts });
  children.add(child);
  child.on('exit', () => children.delete(child));
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr += d.toString();
    if (stderr.length > 1_000_000) stderr = stderr.slice(-500_000);
  });
  child.stderrText = () => stderr;
  return child;
}

/** Resolves with the first stdout / stderr line that parses as JSON and matches `pred`. */
function waitLine(child, stream, pred, timeoutMs = 20_000) {
  return new Promise((resolve, reject) => {
    let buf = '';
    const t = setTimeout(() => reject(new Error(`no start line in ${timeoutMs} ms: ${child.stderrText?.() ?? ''}`)), timeoutMs);
    const onData = (d) => {
      buf += d.toString();
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        try {
          const rec = JSON.parse(line);
          if (pred(rec)) {
            clearTimeout(t);
            child[stream].off('data', onData);
            resolve(rec);
            return;
          }
        } catch {
          /* not JSON */
        }
      }
    };
    child[stream].on('data', onData);
    child.once('exit', (code) => reject(new Error(`exited with ${code} before starting: ${child.stderrText?.() ?? ''}`)));
  });
}

function stop(child, timeoutMs = 20_000) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => {
    const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(t);
      resolve(code);
    });
    child.kill('SIGTERM');
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// /proc readings

function procCpuSeconds(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / CLK_TCK; // utime, stime (fields 14, 15)
}

function procStatusKb(pid, key) {
  const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

/** Kernel drops on the UDP socket bound to `port` (the "drops" column of /proc/net/udp). */
function udpDrops(port) {
  const hex = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  let drops = 0;
  for (const line of readFileSync('/proc/net/udp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[1]?.endsWith(hex)) drops += Number(f[f.length - 1]);
  }
  return drops;
}

// ---------------------------------------------------------------------------------------------
// Load: templates from a real capture, replayed by the sender (the C generator or bench/send.py)

/** The sender's command and leading arguments; both take HOST PORT RATE DURATION_MS TEMPLATE_FILE. */
function senderCommand(sender) {
  return sender === 'python' ? ['python3', [join(HERE, 'send.py')]] : [buildGenerator(), []];
}

function buildGenerator() {
  const src = join(HERE, 'gen.c');
  const hash = createHash('sha256').update(readFileSync(src)).digest('hex').slice(0, 12);
  const dir = join(tmpdir(), 'aws-csm-bridge-bench');
  const bin = join(dir, `gen-${hash}`);
  if (!existsSync(bin)) {
    mkdirSync(dir, { recursive: true });
    execFileSync(process.env.CC ?? 'cc', ['-O2', '-Wall', '-o', bin, src], { stdio: 'inherit' });
  }
  return bin;
}

/**
 * Single-attempt calls (one ApiCallAttempt + its ApiCall) from a real capture, one per distinct
 * Service.Api, with placeholders for the timestamp (per pair) and a unique request id.
 */
function writeTemplates(fixture) {
  const dir = join(ROOT, 'test', 'fixtures');
  const lines = readFileSync(join(dir, `${fixture}.jsonl`), 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));
  const truth = JSON.parse(readFileSync(join(dir, `${fixture}.truth.json`), 'utf8'));
  const calls = truth.calls ?? truth.commands.flatMap((c) => c.calls);
  const seen = new Set();
  const groups = [];
  for (const c of calls) {
    if (c.api_call_line === null || c.attempt_lines.length !== 1) continue;
    const call = JSON.parse(lines[c.api_call_line].raw);
    const attempt = JSON.parse(lines[c.attempt_lines[0]].raw);
    if (call.AttemptCount !== 1) continue;
    const key = `${call.Service}.${call.Api}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const tsCall = call.Timestamp;
    const placeholder = 1111111111111;
    const tsAttempt = attempt.Timestamp - tsCall;
    attempt.Timestamp = placeholder;
    call.Timestamp = placeholder;
    delete attempt.XAmzRequestId;
    attempt.XAmznRequestId = 'R'.repeat(36);
    const fill = (o) => JSON.stringify(o).replace(`"Timestamp":${placeholder}`, '"Timestamp":TTTTTTTTTTTTT');
    groups.push([`${tsAttempt}\t${fill(attempt)}`, `0\t${fill(call)}`].join('\n'));
    if (groups.length === 8) break;
  }
  if (groups.length === 0) throw new Error(`no single-attempt calls in ${fixture}`);
  const file = join(tmpdir(), 'aws-csm-bridge-bench', `templates-${fixture}.txt`);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, `${groups.join('\n\n')}\n`);
  const bytes = groups.flatMap((g) => g.split('\n').map((l) => l.length - l.indexOf('\t') - 1));
  return { file, groups: groups.length, spansPerGroup: 2, avgBytes: Math.round(bytes.reduce((a, b) => a + b, 0) / bytes.length) };
}

async function runGenerator(gen, port, rate, durationS, templates) {
  const child = start(0, gen[0], [...gen[1], '127.0.0.1', String(port), String(rate), String(Math.round(durationS * 1000)), templates.file]);
  const res = await waitLine(child, 'stdout', (r) => 'sent' in r, durationS * 1000 + 30_000);
  await stop(child);
  return res;
}

// ---------------------------------------------------------------------------------------------
// One raw-baseline run

async function runRaw(gen, rate, o, templates) {
  const rx = start(1, process.execPath, [join(HERE, 'raw-receiver.mjs'), String(8 * 1024 * 1024)]);
  const { port } = await waitLine(rx, 'stdout', (r) => 'port' in r);
  const cpu0 = procCpuSeconds(rx.pid);
  const drops0 = udpDrops(port);
  const g = await runGenerator(gen, port, rate, o.durationS, templates);
  await sleep(500);
  rx.stdin.write('count\n');
  const { received } = await waitLine(rx, 'stdout', (r) => 'received' in r);
  const cpu = procCpuSeconds(rx.pid) - cpu0;
  const kernelDrops = udpDrops(port) - drops0;
  rx.stdin.end();
  await stop(rx);
  return {
    rate,
    ...(o.grpc ? { protocol: 'grpc' } : {}),
    sent: g.sent,
    achievedRate: Math.round(g.sent / (g.elapsedMs / 1000)),
    received,
    kernelDrops,
    lossPct: pct(g.sent - received, g.sent),
    cpuSecondsPerMillion: round(cpu / (received / 1e6), 3),
    cpuUtilisation: round(cpu / (g.elapsedMs / 1000), 3),
  };
}

// ---------------------------------------------------------------------------------------------
// One bridge run

async function getJson(url) {
  const r = await fetch(url);
  return r.json();
}

async function runBridge(gen, rate, o, templates, measureIdle) {
  const counter = start(0, process.execPath, [join(HERE, 'otlp-counter.mjs'), ...(o.grpc ? ['--grpc'] : [])]);
  const { port: otlpPort, grpcPort } = await waitLine(counter, 'stdout', (r) => 'port' in r);
  const exportArgs = o.grpc
    ? ['--otlp-protocol', 'grpc', '--otlp-endpoint', `http://127.0.0.1:${grpcPort}`]
    : ['--otlp-endpoint', `http://127.0.0.1:${otlpPort}`];
  const countUrl = `http://127.0.0.1:${otlpPort}/count`;
  const nodeArgs = [...o.nodeArgs];
  if (o.cpuProf) {
    mkdirSync(o.cpuProf, { recursive: true });
    nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${o.cpuProf}`, `--cpu-prof-name=bridge-${rate}-${Date.now()}.cpuprofile`);
  }
  const bridge = start(
    1,
    process.execPath,
    [...nodeArgs, CLI, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', ...exportArgs, ...o.bridgeArgs],
    { env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...o.env } },
  );
  // The bridge's stdout (V8's --trace-gc lines go there) is kept only with --stdout-dir; it is
  // always read, so a chatty flag cannot fill the pipe and stall the bridge.
  if (o.stdoutDir) {
    mkdirSync(o.stdoutDir, { recursive: true });
    bridge.stdout.pipe(createWriteStream(join(o.stdoutDir, `bridge-${rate}-${Date.now()}.stdout`)));
  } else bridge.stdout.resume();
  const started = await waitLine(bridge, 'stderr', (r) => r.msg === 'aws-csm-bridge started');
  const listen = started.listen[0];
  const udpPort = Number(listen.slice(listen.lastIndexOf(':') + 1));
  const statsUrl = `http://${started.admin}/stats`;

  let idle;
  if (measureIdle && o.idleS > 0) {
    await sleep(1000); // let start-up work settle
    const c0 = procCpuSeconds(bridge.pid);
    await sleep(o.idleS * 1000);
    idle = { seconds: o.idleS, cpuSeconds: round(procCpuSeconds(bridge.pid) - c0, 3) };
  }

  const cpu0 = procCpuSeconds(bridge.pid);
  const drops0 = udpDrops(udpPort);
  // RSS over the load (about 30 samples), to see whether it stays flat.
  const rssSamplesMb = [];
  const sampleEveryMs = Math.max(1000, Math.round((o.durationS * 1000) / 30));
  const sampler = setInterval(() => rssSamplesMb.push(round(procStatusKb(bridge.pid, 'VmRSS') / 1024, 1)), sampleEveryMs);
  // Kernel drops in the first second of load: a cold process (code not yet optimised by V8) meeting
  // the full rate at once; the rest of the run shows the steady state.
  let kernelDropsFirstSecond = null;
  const firstSecond = setTimeout(() => (kernelDropsFirstSecond = udpDrops(udpPort) - drops0), 1000);
  const g = await runGenerator(gen, udpPort, rate, o.durationS, templates).finally(() => {
    clearInterval(sampler);
    clearTimeout(firstSecond);
  });
  const kernelDrops = udpDrops(udpPort) - drops0;
  const cpuLoad = procCpuSeconds(bridge.pid) - cpu0;

  // Drain: wait until everything created is exported (or failed/dropped) and the counter has it.
  const drainStart = Date.now();
  let stats;
  let count;
  let last = -1;
  let stableSince = Date.now();
  for (;;) {
    [stats, count] = await Promise.all([getJson(statsUrl), getJson(countUrl)]);
    const sp = stats.spans;
    const settled = sp.created === sp.exported + sp.failed + sp.dropped && count.spans >= sp.exported && stats.correlation.pendingAttempts === 0;
    if (settled && stats.datagrams.received >= g.sent - kernelDrops - (stats.datagrams.ringDropped ?? 0)) break;
    if (count.spans !== last) {
      last = count.spans;
      stableSince = Date.now();
    }
    if (Date.now() - stableSince > 10_000 || Date.now() - drainStart > 60_000) break;
    await sleep(250);
  }
  const drainS = (Date.now() - drainStart) / 1000;
  const cpuTotal = procCpuSeconds(bridge.pid) - cpu0;
  const peakRssMb = round(procStatusKb(bridge.pid, 'VmHWM') / 1024, 1);
  await stop(bridge);
  await stop(counter);

  const expectedSpans = g.groups * templates.spansPerGroup;
  // With sampling (--env OTEL_TRACES_SAMPLER=...), sampled-out calls have no spans: `lost` counts
  // spans missing beyond what the bridge says it created, so sampling is not loss.
  const lost = (stats.sampling?.sampledOut ? stats.spans.created : expectedSpans) - count.spans;
  const rej = Object.values(stats.datagrams.rejected).reduce((a, b) => a + b, 0);
  const counted = kernelDrops + (stats.datagrams.ringDropped ?? 0) + rej + stats.spans.dropped + stats.spans.failed; // losses the bridge/kernel account for
  return {
    rate,
    ...(o.grpc ? { protocol: 'grpc' } : {}),
    ...(stats.sampling?.sampledOut ? { sampling: { keptCalls: stats.sampling.kept, sampledOutCalls: stats.sampling.sampledOut } } : {}),
    sent: g.sent,
    achievedRate: Math.round(g.sent / (g.elapsedMs / 1000)),
    received: stats.datagrams.received,
    kernelDrops,
    // Read off the socket but dropped because the recvmmsg receiver's ring was full (null: a build without the ring).
    ringDropped: stats.datagrams.ringDropped ?? null,
    kernelDropsFirstSecond,
    // Loss after the first second of load (steady state), when the run is longer than that.
    steadyLossPct: kernelDropsFirstSecond === null ? null : pct(kernelDrops - kernelDropsFirstSecond, g.sent),
    rejected: rej,
    spansExpected: expectedSpans,
    spansCreated: stats.spans.created,
    spansExported: stats.spans.exported,
    spansDropped: stats.spans.dropped,
    spansFailed: stats.spans.failed,
    spansAtReceiver: count.spans,
    duplicates: count.duplicates,
    datagramLossPct: pct(g.sent - stats.datagrams.received, g.sent),
    spanLossPct: pct(lost, expectedSpans),
    lossAccountedFor: lost <= 0 || counted > 0,
    pendingAttemptsAfter: stats.correlation.pendingAttempts,
    orphaned: stats.correlation.orphaned,
    // per datagram the bridge actually read (kernel drops cost it nothing)
    cpuSecondsPerMillion: round(cpuTotal / (Math.max(1, stats.datagrams.received) / 1e6), 3),
    cpuUtilisationDuringLoad: round(cpuLoad / (g.elapsedMs / 1000), 3),
    peakRssMb,
    rssSamplesMb,
    // Flat = the last third of the load holds no more than the first third (medians).
    rssGrowthMb: rssGrowth(rssSamplesMb),
    latencyMs: count.latencyMs,
    // The same by the second the calls were sent in: a cold start's backlog apart from the steady state.
    latencyBySend: count.latencyBySend,
    timedCalls: count.timedRoots,
    drainSeconds: round(drainS, 1),
    traceRequests: count.traceRequests,
    receiverCpuSeconds: round(count.cpuSeconds, 2),
    ...(idle ? { idle } : {}),
  };
}

// ---------------------------------------------------------------------------------------------

function rssGrowth(samples) {
  if (samples.length < 3) return null;
  const third = Math.floor(samples.length / 3);
  return round(median(samples.slice(-third)) - median(samples.slice(0, third)), 1);
}
const pct = (a, b) => (b === 0 ? 0 : round((100 * a) / b, 3));
const round = (x, d) => Math.round(x * 10 ** d) / 10 ** d;
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

function table(rows, cols) {
  const w = cols.map(([h, f]) => Math.max(h.length, ...rows.map((r) => String(f(r)).length)));
  const line = (cells) => cells.map((c, i) => String(c).padStart(w[i])).join('  ');
  return [line(cols.map(([h]) => h)), ...rows.map((r) => line(cols.map(([, f]) => f(r))))].join('\n');
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  if (o.bridge && !existsSync(CLI)) throw new Error('dist/cli.js missing: run npm run build first (npm run bench does)');
  const gen = senderCommand(o.sender);
  const templates = writeTemplates(o.fixture);
  const machine = {
    nproc: cpus().length,
    cpuModel: /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? 'unknown',
    node: process.version,
    taskset: HAS_TASKSET,
    loadavgAtStart: readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).map(Number),
    rmemMax: Number(readFileSync('/proc/sys/net/core/rmem_max', 'utf8')),
  };
  process.stderr.write(`bench: ${JSON.stringify({ ...o, machine, templates })}\n`);

  const plan = [...o.rates.map((r) => ({ rate: r, rep: 0 }))];
  for (let k = 1; k < o.repeat; k++) plan.push({ rate: o.repeatRate, rep: k });
  const raw = [];
  const bridge = [];
  let first = true;
  for (const { rate, rep } of plan) {
    if (o.raw) {
      const r = { ...(await runRaw(gen, rate, o, templates)), rep };
      raw.push(r);
      process.stderr.write(`raw    ${JSON.stringify(r)}\n`);
    }
    if (o.bridge) {
      const b = { ...(await runBridge(gen, rate, o, templates, first)), rep };
      first = false;
      bridge.push(b);
      process.stderr.write(`bridge ${JSON.stringify(b)}\n`);
    }
  }

  // The sustained rate: the highest rate with <= 0.1 % span loss (bridge) / datagram loss (raw).
  const sustained = (rows, loss) => Math.max(0, ...rows.filter((r) => loss(r) <= 0.1).map((r) => r.rate));
  const summary = {
    rawSustainedRate: o.raw ? sustained(raw, (r) => r.lossPct) : null,
    bridgeSustainedRate: o.bridge ? sustained(bridge, (r) => r.spanLossPct) : null,
    rawCapacityPerCoreSecond: o.raw ? Math.round(1e6 / median(raw.map((r) => r.cpuSecondsPerMillion))) : null,
    bridgeCapacityPerCoreSecond: o.bridge ? Math.round(1e6 / median(bridge.map((r) => r.cpuSecondsPerMillion))) : null,
  };
  if (o.raw && o.bridge) {
    summary.ratioSustained = summary.rawSustainedRate ? round(summary.bridgeSustainedRate / summary.rawSustainedRate, 3) : null;
    summary.ratioCpuCapacity = round(summary.bridgeCapacityPerCoreSecond / summary.rawCapacityPerCoreSecond, 3);
  }
  if (o.repeat > 1 && o.bridge) {
    const reps = bridge.filter((r) => r.rate === o.repeatRate);
    summary.repeatRate = o.repeatRate;
    summary.repeats = reps.length;
    summary.median = {
      spanLossPct: median(reps.map((r) => r.spanLossPct)),
      steadyLossPct: median(reps.map((r) => r.steadyLossPct ?? NaN)),
      cpuSecondsPerMillion: median(reps.map((r) => r.cpuSecondsPerMillion)),
      peakRssMb: median(reps.map((r) => r.peakRssMb)),
      p50Ms: median(reps.map((r) => r.latencyMs.p50 ?? NaN)),
      p99Ms: median(reps.map((r) => r.latencyMs.p99 ?? NaN)),
    };
  }

  const result = { when: new Date().toISOString(), label: o.label, options: o, machine, templates, raw, bridge, summary };
  const out = o.out ?? join(HERE, 'results', `${result.when.replace(/[:.]/g, '-')}${o.label ? `-${o.label}` : ''}.json`);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);

  if (raw.length) {
    process.stdout.write('\nRaw baseline (Node dgram receiver that only counts, 1 core)\n');
    process.stdout.write(
      table(raw, [
        ['rate/s', (r) => r.rate],
        ['sent', (r) => r.sent],
        ['received', (r) => r.received],
        ['loss %', (r) => r.lossPct],
        ['CPU s/M', (r) => r.cpuSecondsPerMillion],
        ['CPU util', (r) => r.cpuUtilisation],
      ]) + '\n',
    );
  }
  if (bridge.length) {
    process.stdout.write(`\nBridge (dist/cli.js, 1 core, OTLP/HTTP protobuf to a counting receiver; sender ${o.sender})\n`);
    process.stdout.write(
      table(bridge, [
        ['rate/s', (r) => r.rate],
        ['sent', (r) => r.sent],
        ['received', (r) => r.received],
        ['kernel drop', (r) => r.kernelDrops],
        ['of them 1st s', (r) => r.kernelDropsFirstSecond ?? '-'],
        ['spans exp', (r) => r.spansExpected],
        ['spans rcvd', (r) => r.spansAtReceiver],
        ['span drop', (r) => r.spansDropped],
        ['loss %', (r) => r.spanLossPct],
        ['after 1st s %', (r) => r.steadyLossPct ?? '-'],
        ['CPU s/M', (r) => r.cpuSecondsPerMillion],
        ['CPU util', (r) => r.cpuUtilisationDuringLoad],
        ['RSS MB', (r) => r.peakRssMb],
        ['p50 ms', (r) => r.latencyMs.p50 ?? '-'],
        ['p99 ms', (r) => r.latencyMs.p99 ?? '-'],
        ['pending', (r) => r.pendingAttemptsAfter],
      ]) + '\n',
    );
    const idle = bridge.find((r) => r.idle)?.idle;
    if (idle) process.stdout.write(`idle: ${idle.cpuSeconds} CPU s over ${idle.seconds} s\n`);
  }
  process.stdout.write(`\nsummary: ${JSON.stringify(summary)}\nresults: ${out}\n`);
}

main().then(
  () => process.exit(0),
  (e) => {
    process.stderr.write(`bench failed: ${e.stack ?? e}\n`);
    process.exit(1);
  },
);
