/**
 * The admin listener and the signals under a hostile local user, through the built CLI with
 * real sockets (node:net for requests no HTTP client would send): request targets `new URL`
 * throws on, Host names of a rebound web page, piles of half-sent requests, a process out of
 * file descriptors, and SIGHUP while the bridge is still starting. The bridge must stay up,
 * answer /healthz, keep reading datagrams and exporting them, and count what it refused.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { createSocket } from 'node:dgram';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { ADMIN_HEADERS_TIMEOUT_MS, ADMIN_MAX_CONNECTIONS } from '../../src/admin/server.js';
import { CLI, startBridge, type BridgeProcess } from '../helpers/bridge-process.js';
import { getStats, waitStats } from '../helpers/stats.js';
import { startOtlpSink, type OtlpSink } from '../helpers/otlp-sink.js';

let cleanup: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.reverse()) await f();
  cleanup = [];
});

async function bridgeWithSink(args: string[] = []): Promise<{ bridge: BridgeProcess; sink: OtlpSink }> {
  const sink = await startOtlpSink();
  cleanup.push(() => sink.close());
  const bridge = await startBridge(['--otlp-endpoint', sink.url, '--export-delay-ms', '50', '--no-ui', ...args]);
  cleanup.push(() => bridge.stop('SIGKILL'));
  return { bridge, sink };
}

const adminPort = (b: BridgeProcess) => Number(new URL(b.adminUrl).port);

/** Opens a TCP connection to the admin listener (every socket is destroyed after the test). */
function open(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => resolve(s));
    s.on('error', reject);
    cleanup.push(() => void s.destroy());
  });
}

interface RawAnswer {
  status: number;
  body: string;
}

/** Sends `request` as is on a new connection and reads until the server closes it (bounded). */
async function raw(port: number, request: string, timeoutMs = 10_000): Promise<RawAnswer> {
  const s = await open(port);
  return new Promise((resolve, reject) => {
    let text = '';
    const t = setTimeout(() => reject(new Error(`no complete answer in ${timeoutMs} ms to ${JSON.stringify(request)}: ${JSON.stringify(text)}`)), timeoutMs);
    s.on('data', (d: Buffer) => (text += d.toString('latin1')));
    s.on('error', (e) => {
      clearTimeout(t);
      reject(e);
    });
    s.on('close', () => {
      clearTimeout(t);
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? NaN);
      resolve({ status, body: text.slice(text.indexOf('\r\n\r\n') + 4) });
    });
    s.write(request);
  });
}

const get = (port: number, target: string, host = `127.0.0.1:${port}`) => raw(port, `GET ${target} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);

const call = (clientId: string, i: number) =>
  JSON.stringify({ Version: 1, ClientId: clientId, Type: 'ApiCall', Service: 'STS', Api: 'GetCallerIdentity', Timestamp: Date.now() - 1, Latency: 6, AttemptCount: 1, FinalHttpStatusCode: 200, Region: 'us-east-1', UserAgent: `Boto3/1.34.0 botocore/1.34.0 n/${i}` });
const attempt = (clientId: string, i: number) =>
  JSON.stringify({ Version: 1, ClientId: clientId, Type: 'ApiCallAttempt', Service: 'STS', Api: 'GetCallerIdentity', Timestamp: Date.now(), AttemptLatency: 4, HttpStatusCode: 200, Region: 'us-east-1', UserAgent: `Boto3/1.34.0 botocore/1.34.0 n/${i}` });

/** n calls of one attempt each, from one socket (a call and its attempts share their source). */
async function sendCalls(b: BridgeProcess, clientId: string, n: number): Promise<void> {
  const s = createSocket('udp4');
  const send = (payload: string) => new Promise<void>((resolve, reject) => s.send(payload, b.udpPort, '127.0.0.1', (e) => (e ? reject(e) : resolve())));
  try {
    for (let i = 0; i < n; i++) {
      await send(attempt(clientId, i));
      await send(call(clientId, i));
    }
  } finally {
    s.close();
  }
}

const openFds = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;

/** Polls `cond` every 50 ms for at most `timeoutMs`; throws naming `what`. */
async function until(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('request targets new URL() throws on', () => {
  // Each threw TypeError: Invalid URL out of the request handler, and the process died with its queue.
  const TARGETS = ['//', '//[', '//:', '//a:b@', '//%zz', '///', '//x:99999'];

  it('GET // and the like are answered 404; the bridge keeps its calls, exports them and stops with 0', async () => {
    const { bridge, sink } = await bridgeWithSink(['--export-delay-ms', '60000']);
    const port = adminPort(bridge);
    // Held in the batch (60 s delay) while the requests come: a crash would lose them.
    await sendCalls(bridge, 'hostile-path', 20);
    await waitStats(bridge, (s) => s.spans.created >= 40, 'the calls translated');
    for (const target of TARGETS) {
      const a = await get(port, target);
      expect([target, a.status]).toEqual([target, 404]);
      expect(JSON.parse(a.body)).toMatchObject({ error: 'not found' });
    }
    // The query is still read (URLSearchParams does not throw on a bad escape either).
    expect((await get(port, '/stats?%zz')).status).toBe(200);
    expect((await get(port, '/healthz')).status).toBe(200);
    expect(bridge.child.exitCode).toBe(null);
    expect(await bridge.stop('SIGTERM')).toBe(0);
    expect(sink.spans.filter((s) => s.name === 'STS.GetCallerIdentity').length).toBeGreaterThanOrEqual(20);
    expect(bridge.logs.some((l) => l['msg'] === 'stopped')).toBe(true);
  });
});

describe('malformed requests', () => {
  it('are answered 400 (431 for oversized headers), counted in admin.badRequests; the bridge answers the next', async () => {
    const { bridge } = await bridgeWithSink();
    const port = adminPort(bridge);
    const BAD: [string, number][] = [
      ['BREW /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n', 400],
      [`GET /healthz HTTP/1.1\r\nHost: localhost\r\nX: ${'a'.repeat(20_000)}\r\n\r\n`, 431],
      ['\x00\x01\x02\x03garbage\r\n\r\n', 400],
      ['\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03', 400], // a TLS ClientHello
      ['POST /stats HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello', 400],
    ];
    for (const [request, status] of BAD) expect([request.slice(0, 20), (await raw(port, request)).status]).toEqual([request.slice(0, 20), status]);
    expect((await get(port, '/healthz')).status).toBe(200);
    expect((await getStats(bridge)).admin.badRequests).toBe(BAD.length);
  });
});

describe('Host header (DNS rebinding)', () => {
  const FOREIGN = ['evil.example', 'evil.example:31001', '127.0.0.1.nip.io', 'localhost.evil.example', '10.0.0.1', '[::2]', '[fe80::1]:31001', '0.0.0.0'];
  const LOOPBACK = ['localhost', 'LOCALHOST:31001', '127.0.0.1', '127.5.6.7:80', '[::1]', '[::1]:31001'];

  it('without --allow-remote-http only loopback names are answered: every route answers 421 to others, counted', async () => {
    const { bridge } = await bridgeWithSink();
    const port = adminPort(bridge);
    let refused = 0;
    for (const host of FOREIGN)
      for (const target of ['/healthz', '/stats', '/policy', '/', '//', '/nope']) {
        const a = await get(port, target, host);
        expect([host, target, a.status]).toEqual([host, target, 421]);
        const body = JSON.parse(a.body) as { error: string };
        expect(body.error).toContain('is not a loopback name');
        expect(body.error).toContain('--allow-remote-http');
        expect(a.body).not.toContain('datagrams');
        refused++;
      }
    // Any method: a POST from a page is refused the same way.
    expect((await raw(port, `POST /stats HTTP/1.1\r\nHost: evil.example\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`)).status).toBe(421);
    refused++;
    for (const host of LOOPBACK) expect([host, (await get(port, '/healthz', host)).status]).toEqual([host, 200]);
    const s = await getStats(bridge);
    expect(s.admin.rejectedHosts).toBe(refused);
    expect(await bridge.stop()).toBe(0);
  });

  it('--allow-remote-http answers any Host', async () => {
    const { bridge } = await bridgeWithSink(['--allow-remote-http']);
    const port = adminPort(bridge);
    for (const host of FOREIGN) expect([host, (await get(port, '/healthz', host)).status]).toEqual([host, 200]);
    expect((await getStats(bridge)).admin.rejectedHosts).toBe(0);
  });

  it('the Prometheus endpoint too: without --allow-remote-http it answers loopback names only (421, counted); with it, any', async () => {
    const env = { OTEL_METRICS_EXPORTER: 'prometheus', OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1', OTEL_EXPORTER_PROMETHEUS_PORT: '0' };
    for (const allowRemote of [false, true]) {
      const bridge = await startBridge(['--otlp-endpoint', 'http://127.0.0.1:9', '--no-ui', ...(allowRemote ? ['--allow-remote-http'] : [])], env);
      cleanup.push(() => bridge.stop('SIGKILL'));
      const port = Number(String(bridge.started['prometheus']).split(':').pop());
      for (const host of FOREIGN) {
        const a = await get(port, '/metrics', host);
        expect([host, a.status]).toEqual([host, allowRemote ? 200 : 421]);
        if (allowRemote) expect(a.body).toContain('target_info');
        else {
          expect(a.body).toContain('is not a loopback name');
          expect(a.body).not.toContain('target_info');
        }
      }
      for (const host of LOOPBACK) {
        const a = await get(port, '/metrics', host);
        expect([host, a.status]).toEqual([host, 200]);
        expect(a.body).toContain('target_info');
      }
      const s = await getStats(bridge);
      expect(s.prometheus.rejectedHosts).toBe(allowRemote ? 0 : FOREIGN.length);
      expect(s.admin.rejectedHosts).toBe(0);
      expect(await bridge.stop()).toBe(0);
    }
  });
});

/** A request cut before the end of its headers, as a slowloris client leaves it. */
const PARTIAL = 'GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ';

describe('connections: a cap and timeouts', () => {
  it(`${ADMIN_MAX_CONNECTIONS * 6} half-sent requests hold at most ${ADMIN_MAX_CONNECTIONS} connections; /healthz answers at once; the excess is counted`, async () => {
    const { bridge } = await bridgeWithSink();
    const port = adminPort(bridge);
    const pid = bridge.child.pid!;
    const before = openFds(pid);
    const n = ADMIN_MAX_CONNECTIONS * 6;
    const closed: Promise<void>[] = [];
    for (let i = 0; i < n; i++) {
      const s = await open(port);
      s.write(PARTIAL);
      closed.push(new Promise((r) => s.on('close', () => r())));
    }
    // The bridge closes all but its cap, and holds no more descriptors than that (and a few of its own, e.g. an export connection).
    await Promise.race([Promise.all(closed.slice(0, n - ADMIN_MAX_CONNECTIONS)), new Promise((r) => setTimeout(r, 15_000))]);
    expect(openFds(pid) - before).toBeLessThanOrEqual(ADMIN_MAX_CONNECTIONS + 4);
    // The held ones are the newest: /healthz gets a slot while they wait for their headers to time out.
    expect((await get(port, '/healthz')).status).toBe(200);
    const s = await getStats(bridge);
    expect(s.admin.evictedConnections + s.admin.refusedConnections).toBeGreaterThanOrEqual(n - ADMIN_MAX_CONNECTIONS);
    expect(bridge.child.exitCode).toBe(null);
  });

  it('a client that sends its headers a byte a second is cut off by the headers timeout (408), counted', async () => {
    const { bridge } = await bridgeWithSink();
    const s = await open(adminPort(bridge));
    let answer = '';
    s.on('data', (d: Buffer) => (answer += d.toString('latin1')));
    const closed = new Promise<void>((r) => s.on('close', () => r()));
    s.write(PARTIAL);
    // Never idle, so only a timeout on the headers as a whole ends it (node's default: 60 s, checked every 30 s).
    const drip = setInterval(() => s.writable && s.write('a'), 1_000);
    cleanup.push(() => clearInterval(drip));
    const limit = ADMIN_HEADERS_TIMEOUT_MS + 5_000;
    const cut = await Promise.race([closed.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), limit))]);
    expect(cut, `connection still open after ${limit} ms`).toBe(true);
    expect(answer).toMatch(/^HTTP\/1\.1 408 /);
    expect((await getStats(bridge)).admin.timedOut).toBeGreaterThanOrEqual(1);
  });

  it('out of file descriptors: the bridge stays up, datagrams are still read and exported, /healthz answers once the held connections time out, the failures are counted', async () => {
    const { bridge, sink } = await bridgeWithSink();
    const port = adminPort(bridge);
    const pid = bridge.child.pid!;
    // A handful of descriptors above what the bridge holds now, far fewer than the cap.
    const limit = openFds(pid) + 8;
    await promisify(execFile)('prlimit', [`--pid=${pid}`, `--nofile=${limit}:${limit}`]);
    const n = 300;
    for (let i = 0; i < n; i++) {
      const s = await open(port).catch(() => undefined);
      s?.on('error', () => {});
      s?.write(PARTIAL);
    }
    // Datagrams need no descriptor: they are read meanwhile.
    await sendCalls(bridge, 'hostile-fds', 10);
    // Several memory checks (every 500 ms) read /proc/self/stat with no descriptor left.
    await new Promise((r) => setTimeout(r, 2_000));
    expect(bridge.child.exitCode, bridge.stderr().slice(-2000)).toBe(null);
    // With no descriptor left, libuv accepts and drops new connections (node never sees them).
    // At the latest when the held connections time out (ADMIN_HEADERS_TIMEOUT_MS) and give their descriptors back.
    await until(async () => (await raw(port, `GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`, 2_000).catch(() => ({ status: 0 }))).status === 200, '/healthz to answer', ADMIN_HEADERS_TIMEOUT_MS + 20_000);
    const s = await waitStats(bridge, (x) => x.datagrams.received >= 20, 'the datagrams read');
    // The RSS readings failed (EMFILE) and were counted; the held connections were cut off by the headers timeout.
    expect(s.memory.readErrors).toBeGreaterThan(0);
    expect(s.admin.timedOut).toBeGreaterThan(0);
    // Export needs a descriptor too: it gets one once the held connections time out.
    await sink.waitFor(() => sink.spans.filter((x) => x.name === 'STS.GetCallerIdentity').length >= 10, 30_000);
    expect(bridge.child.exitCode).toBe(null);
    expect(await bridge.stop('SIGTERM')).toBe(0);
  });
});

describe('SIGHUP while starting', () => {
  /** True once `pid` catches SIGHUP (bit 0 of SigCgt in /proc/PID/status). */
  const catchesHangup = (pid: number) => {
    try {
      const mask = /^SigCgt:\s+([0-9a-f]+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
      return mask !== undefined && (BigInt(`0x${mask}`) & 1n) === 1n;
    } catch {
      return false;
    }
  };

  it('from the first moment it catches SIGHUP until it has started, SIGHUPs are logged, not fatal; after, SIGHUP writes the policy file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'csm-hup-'));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const policyFile = join(dir, 'policy.json');
    const child = spawn(process.execPath, [CLI, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--otlp-endpoint', 'http://127.0.0.1:9', '--no-ui', '--policy-file', policyFile], {
      env: { PATH: process.env['PATH'] ?? '' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    cleanup.push(() => void child.kill('SIGKILL'));
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((r) => child.on('exit', (code, signal) => r(code ?? (signal ? -1 : null))));
    const msgs = () =>
      stderr
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => String((JSON.parse(l) as { msg: unknown }).msg));
    const pid = child.pid!;
    // Polled every millisecond: the modules load in about 0.1-0.3 s after the handler is installed.
    for (const deadline = Date.now() + 20_000; !catchesHangup(pid) && child.exitCode === null; ) {
      if (Date.now() > deadline) throw new Error(`no SIGHUP handler after 20 s:\n${stderr}`);
      await new Promise((r) => setTimeout(r, 1));
    }
    // SIGHUPs every 10 ms from then until the bridge says it started.
    let sent = 0;
    while (child.exitCode === null && !msgs().includes('aws-csm-bridge started')) {
      child.kill('SIGHUP');
      sent++;
      await new Promise((r) => setTimeout(r, 10));
      if (sent > 3_000) throw new Error(`not started after 30 s:\n${stderr}`);
    }
    expect(child.exitCode, stderr).toBe(null);
    const started = msgs().indexOf('aws-csm-bridge started');
    // At least one arrived before the start, and it was said what it did.
    expect(msgs().slice(0, started)).toContain('SIGHUP while starting: nothing observed yet, so no policy file to write');
    // Once started, SIGHUP means what it meant: the policy file is written (or already holds the policy, said so).
    // (The writes of the last SIGHUPs before it may still be under way: the count settles first.)
    const answered = () => msgs().filter((m) => m === 'policy file written (SIGHUP)' || m.startsWith('SIGHUP: the policy file is up to date')).length;
    let seen = -1;
    await until(async () => {
      const now = answered();
      if (now === seen) return true;
      seen = now;
      await new Promise((r) => setTimeout(r, 500));
      return false;
    }, 'the answers to the SIGHUPs sent while starting');
    child.kill('SIGHUP');
    await until(() => answered() === seen + 1, 'the answer to a SIGHUP after the start');
    expect(msgs()).toContain('policy file written (SIGHUP)');
    expect(JSON.parse(readFileSync(policyFile, 'utf8'))).toHaveProperty('policies');
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  });

  it('a SIGHUP whose write fails says so (before: "policy file written (SIGHUP)" right after "could not write the policy file")', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'csm-hup-'));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const { bridge } = await bridgeWithSink(['--policy-file', join(dir, 'policy.json')]);
    // The directory goes away under the running bridge: the write cannot succeed.
    rmSync(dir, { recursive: true, force: true });
    bridge.child.kill('SIGHUP');
    await until(() => bridge.logs.some((l) => String(l['msg']).startsWith('SIGHUP: the policy file was not written')), 'the SIGHUP answer');
    expect(bridge.logs.map((l) => l['msg'])).not.toContain('policy file written (SIGHUP)');
    expect((await getStats(bridge)).policy.fileErrors).toBeGreaterThanOrEqual(1);
    expect(bridge.child.exitCode).toBe(null);
  });
});
