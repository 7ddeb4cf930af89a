/**
 * Datagram text is chosen by whoever can send to the port (issue 16, item 2): two AccessDenied
 * calls of one client, naming `kms:Decrypt` on `arn:a*a*a*a*a*a*b` and on `arn:` + 300 `a`s,
 * made the policy builder match the two patterns against each other with a backtracking regex
 * (`*` → `.*`): minutes of one event-loop turn, so /policy, /healthz, UDP intake and SIGTERM all
 * waited for good. Here the built CLI gets those two datagrams over real UDP; the policy must
 * answer and the bridge stop on SIGTERM, each within a few seconds (the old build fails fast on
 * the aborted request instead of hanging the run).
 *
 * The same for a sender's /proc/PID/cmdline, which it chooses too: a run of empty arguments
 * before a last one made `/\0+$/` quadratic in the run, on the event loop.
 */
import { spawn } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startBridge, type BridgeProcess } from '../helpers/bridge-process.js';
import { startOtlpSink } from '../helpers/otlp-sink.js';
import { getStats } from '../helpers/stats.js';
import { findTool } from '../helpers/tools.js';

/** What a hung bridge gets to answer a request or to stop: well above a healthy one's few ms. */
const ANSWER_MS = 8_000;

let cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const f of cleanup.reverse()) await f();
  cleanup = [];
});

const PYTHON = findTool('python3');
const STARS = 'arn:a*a*a*a*a*a*b';
const LONG = `arn:${'a'.repeat(300)}`;
const CLIENT = 'hostile-policy';

const message = (resource: string) =>
  `User: arn:aws:iam::123456789012:user/x is not authorized to perform: kms:Decrypt on resource: ${resource} because no identity-based policy allows the kms:Decrypt action`;

/** One denied S3 GetObject (attempt, then its ApiCall) whose message names kms:Decrypt on `resource`. */
function deniedCall(resource: string, at: number): string[] {
  const common = { Version: 1, ClientId: CLIENT, Service: 'S3', Api: 'GetObject', Region: 'us-east-1', UserAgent: 'Boto3/1.34.0 botocore/1.34.0' };
  return [
    JSON.stringify({ ...common, Type: 'ApiCallAttempt', Timestamp: at, AttemptLatency: 4, Fqdn: 'b.s3.us-east-1.amazonaws.com', HttpStatusCode: 403, AwsException: 'AccessDenied', AwsExceptionMessage: message(resource) }),
    JSON.stringify({ ...common, Type: 'ApiCall', Timestamp: at - 1, Latency: 6, AttemptCount: 1, FinalHttpStatusCode: 403, FinalAwsException: 'AccessDenied', FinalAwsExceptionMessage: message(resource) }),
  ];
}

async function udp(): Promise<Socket> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  cleanup.push(() => new Promise<void>((r) => s.close(() => r())));
  return s;
}

const send = (s: Socket, payload: string, port: number) =>
  new Promise<void>((resolve, reject) => s.send(payload, port, '127.0.0.1', (e) => (e ? reject(e) : resolve())));

/** GET with a deadline: a bridge whose event loop is stuck never answers, and the test must not wait for it. */
async function get(url: string): Promise<{ status: number; body: any }> {
  const r = await fetch(url, { signal: AbortSignal.timeout(ANSWER_MS) });
  return { status: r.status, body: await r.json() };
}

/** A bridge that exports to a real sink, with the two denied calls sent and observed by its policy stage. */
async function bridgeWithDenials(args: string[]): Promise<BridgeProcess> {
  const sink = await startOtlpSink();
  cleanup.push(() => sink.close());
  const bridge = await startBridge(['--otlp-endpoint', sink.url, '--export-delay-ms', '50', ...args]);
  cleanup.push(() => bridge.stop('SIGKILL'));
  const s = await udp();
  const now = Date.now();
  for (const d of [...deniedCall(STARS, now), ...deniedCall(LONG, now + 50)]) await send(s, d, bridge.udpPort);
  const deadline = Date.now() + 20_000;
  while ((await getStats(bridge)).policy.observed < 2) {
    if (Date.now() > deadline) throw new Error(`the two calls were not observed:\n${bridge.stderr().slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return bridge;
}

/** The resources of `action` in a policy document, whatever the statement grouping. */
function resourcesOf(doc: { Statement: { Action: string[]; Resource: string | string[] }[] }, action: string): string[] {
  const st = doc.Statement.find((s) => s.Action.includes(action));
  return st === undefined ? [] : ([] as string[]).concat(st.Resource).sort();
}

describe('hostile resource patterns in AccessDenied messages (issue 16, item 2)', () => {
  it('GET /policy answers with both kms:Decrypt resources, /healthz still answers, SIGTERM stops the bridge', async () => {
    const bridge = await bridgeWithDenials([]);
    const one = await get(`${bridge.adminUrl}/policy?client=${CLIENT}`);
    expect(one.status).toBe(200);
    // Neither pattern covers the other (`arn:a…a` does not end in `b`): both stay.
    expect(resourcesOf(one.body, 'kms:Decrypt')).toEqual([LONG, STARS].sort());
    const all = await get(`${bridge.adminUrl}/policy`);
    expect(all.body.clients.map((c: any) => c.client)).toContain(CLIENT);
    expect((await get(`${bridge.adminUrl}/healthz`)).status).toBe(200);
    expect(await bridge.stop('SIGTERM', ANSWER_MS)).toBe(0);
  });

  it('with --policy-file the write needs no request: the file holds both resources and SIGTERM stops the bridge', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'csm-hostile-'));
    cleanup.push(async () => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'policy.json');
    const bridge = await bridgeWithDenials(['--policy-file', file, '--policy-write-delay-ms', '100']);
    const deadline = Date.now() + ANSWER_MS;
    while ((await get(`${bridge.adminUrl}/stats`)).body.policy.fileWrites < 1) {
      if (Date.now() > deadline) throw new Error('the policy file was not written');
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(await bridge.stop('SIGTERM', ANSWER_MS)).toBe(0);
    const saved = JSON.parse(readFileSync(file, 'utf8'));
    // Keyed by label: `client [process]` when the sender (this test) was identified.
    const label = Object.keys(saved.policies).find((k) => k === CLIENT || k.startsWith(`${CLIENT} [`));
    expect(resourcesOf(saved.policies[label!], 'kms:Decrypt')).toEqual([LONG, STARS].sort());
  });
});

describe('a sender with a hostile command line (issue 16: /proc text is the sender\'s choice too)', () => {
  /**
   * Empty arguments before a last one: one run of NULs in /proc/PID/cmdline. The kernel takes up
   * to 6 MiB of arguments when the stack limit allows, so python3 raises it and execs the sender
   * with 600,000 (the old build blocked the bridge for minutes); without python3, node spawns it
   * with the 200,000 that fit under the default limit (about 30 s on the busy test machine).
   */
  const EMPTY_ARGS = PYTHON ? 600_000 : 200_000;
  const EXEC_WITH_ROOM = `
import os, resource, sys
soft, hard = resource.getrlimit(resource.RLIMIT_STACK)
room = 256 << 20
resource.setrlimit(resource.RLIMIT_STACK, (room if hard == resource.RLIM_INFINITY else min(room, hard), hard))
os.execv(sys.argv[2], [sys.argv[2], '-e', sys.argv[3], sys.argv[4], *([''] * int(sys.argv[1])), 'last'])
`;
  /** Sends one call (attempt + ApiCall) from a socket it keeps open, so that the bridge can find it in /proc. */
  const SENDER = `
    const s = require('node:dgram').createSocket('udp4');
    const port = Number(process.argv[1]);
    const common = { Version: 1, ClientId: 'long-cmdline', Service: 'STS', Api: 'GetCallerIdentity', Region: 'us-east-1' };
    const now = Date.now();
    const a = JSON.stringify({ ...common, Type: 'ApiCallAttempt', Timestamp: now, AttemptLatency: 4, HttpStatusCode: 200 });
    const c = JSON.stringify({ ...common, Type: 'ApiCall', Timestamp: now - 1, Latency: 6, AttemptCount: 1, FinalHttpStatusCode: 200 });
    s.bind(0, '127.0.0.1', () => s.send(a, port, '127.0.0.1', () => s.send(c, port, '127.0.0.1', () => console.log('sent'))));
    setTimeout(() => process.exit(0), 30000);
  `;

  it('its spans carry the command line within seconds, /healthz answers, SIGTERM stops the bridge', async () => {
    const sink = await startOtlpSink();
    cleanup.push(() => sink.close());
    const bridge = await startBridge(['--otlp-endpoint', sink.url, '--export-delay-ms', '50', '--process-command-line', 'true']);
    cleanup.push(() => bridge.stop('SIGKILL'));
    const port = String(bridge.udpPort);
    const child = PYTHON
      ? spawn(PYTHON, ['-c', EXEC_WITH_ROOM, String(EMPTY_ARGS), process.execPath, SENDER, port], { stdio: ['ignore', 'pipe', 'inherit'] })
      : spawn(process.execPath, ['-e', SENDER, port, ...Array<string>(EMPTY_ARGS).fill(''), 'last'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise<void>((r) => child.on('exit', () => r()));
    cleanup.push(async () => {
      child.kill('SIGKILL');
      await exited;
    });
    await new Promise<void>((resolve, reject) => {
      child.stdout!.on('data', (d: Buffer) => d.toString().includes('sent') && resolve());
      void exited.then(() => reject(new Error('the sender exited before sending')));
    });
    await sink.waitFor(() => sink.spans.some((x) => x.resource['service.name'] === 'long-cmdline'), ANSWER_MS);
    const span = sink.spans.find((x) => x.resource['service.name'] === 'long-cmdline')!;
    expect(String(span.resource['process.command_line'])).toMatch(new RegExp(`^${process.execPath.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} -e `));
    expect((await get(`${bridge.adminUrl}/healthz`)).status).toBe(200);
    expect(await bridge.stop('SIGTERM', ANSWER_MS)).toBe(0);
  }, 60_000);
});
