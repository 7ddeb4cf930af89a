/**
 * Security, end to end through the built CLI: the bind policy (non-loopback
 * needs an allow-list or an explicit opt-out), the source allow-list, and
 * SessionToken / AccessKey never leaving the process in any byte it writes.
 */
import { randomUUID } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { runCli, startBridge, type BridgeProcess } from '../helpers/bridge-process.js';
import { waitStats } from '../helpers/stats.js';
import { startOtlpSink, type OtlpSink } from '../helpers/otlp-sink.js';

let cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const f of cleanup.reverse()) await f();
  cleanup = [];
});

async function udpFrom(address: string): Promise<Socket> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, address, () => r()));
  cleanup.push(() => new Promise<void>((r) => s.close(() => r())));
  return s;
}

const send = (s: Socket, payload: string | Buffer, port: number) =>
  new Promise<void>((resolve, reject) => s.send(payload, port, '127.0.0.1', (e) => (e ? reject(e) : resolve())));


async function bridgeWithSink(args: string[], env: Record<string, string> = {}): Promise<{ bridge: BridgeProcess; sink: OtlpSink }> {
  const sink = await startOtlpSink();
  cleanup.push(() => sink.close());
  const bridge = await startBridge(['--otlp-endpoint', sink.url, '--export-delay-ms', '50', ...args], env);
  cleanup.push(() => bridge.stop('SIGKILL'));
  return { bridge, sink };
}

const now = () => Date.now();
const attempt = (extra: Record<string, unknown> = {}) =>
  JSON.stringify({ Version: 1, ClientId: 'sec-test', Type: 'ApiCallAttempt', Service: 'STS', Api: 'GetCallerIdentity', Timestamp: now(), AttemptLatency: 4, HttpStatusCode: 200, UserAgent: 'Boto3/1.34.0 botocore/1.34.0', Region: 'us-east-1', ...extra });
const call = (extra: Record<string, unknown> = {}) =>
  JSON.stringify({ Version: 1, ClientId: 'sec-test', Type: 'ApiCall', Service: 'STS', Api: 'GetCallerIdentity', Timestamp: now() - 1, Latency: 6, AttemptCount: 1, FinalHttpStatusCode: 200, UserAgent: 'Boto3/1.34.0 botocore/1.34.0', Region: 'us-east-1', ...extra });

describe('bind policy', () => {
  it('refuses a non-loopback UDP address without --allow-source or --allow-any-source, with a message saying what to do', async () => {
    const r = await runCli(['--listen', '0.0.0.0:0', '--admin', 'off']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('refusing to listen on non-loopback UDP address 0.0.0.0:0');
    expect(r.stderr).toContain('--allow-source CIDR');
    expect(r.stderr).toContain('--allow-any-source');
    const v6 = await runCli(['--listen', '[::]:0', '--admin', 'off']);
    expect([v6.code, v6.stderr]).toEqual([2, expect.stringContaining('refusing to listen on non-loopback UDP address [::]:0')]);
    const bad = await runCli(['--listen', '0.0.0.0:0', '--allow-source', '10.0.0.0/33']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('allowSource (--allow-source: got ["10.0.0.0/33"]): expected an IPv4 or IPv6 address or CIDR');
  });

  it('starts on 0.0.0.0 with --allow-any-source (a switch) or with --allow-source', async () => {
    for (const extra of [['--allow-any-source'], ['--allow-source', '127.0.0.0/8', '--allow-source', '::1/128']]) {
      const b = await startBridge(['--listen', '0.0.0.0:0', ...extra, '--otlp-endpoint', 'http://127.0.0.1:9']);
      expect((b.started['listen'] as string[]).some((l) => l.startsWith('0.0.0.0:'))).toBe(true);
      expect(await b.stop('SIGKILL')).toBe(null);
    }
  });
});

describe('source allow-list', () => {
  it('--allow-source 127.0.0.2/32: datagrams from 127.0.0.1 are dropped and counted, from 127.0.0.2 they pass', async () => {
    const { bridge, sink } = await bridgeWithSink(['--allow-source', '127.0.0.2/32']);
    const outside = await udpFrom('127.0.0.1');
    const inside = await udpFrom('127.0.0.2');
    for (let i = 0; i < 25; i++) await send(outside, i % 2 ? attempt({ ClientId: 'outsider' }) : call({ ClientId: 'outsider' }), bridge.udpPort);
    await send(outside, 'garbage from outside', bridge.udpPort);
    await send(inside, attempt(), bridge.udpPort);
    await send(inside, call(), bridge.udpPort);
    const s = await waitStats(bridge, (x) => x.datagrams.received >= 28, 'every datagram read');
    expect(s.datagrams).toMatchObject({ received: 28, accepted: 2, dropped: { source_not_allowed: 26 } });
    expect(Object.values(s.datagrams.rejected).reduce((a: number, b) => a + (b as number), 0)).toBe(0);
    await sink.waitFor(() => sink.spans.length >= 2);
    expect(await bridge.stop()).toBe(0);
    expect(sink.spans.map((x) => x.name).sort()).toEqual(['STS.GetCallerIdentity', 'STS.GetCallerIdentity attempt']);
    expect(sink.spans.every((x) => x.resource['service.name'] === 'sec-test')).toBe(true);
    expect(bridge.logs.some((l) => l['msg'] === 'dropped a datagram from a source outside --allow-source' && l['from'] === '127.0.0.1')).toBe(true);
    // visible in the self-metrics too
    await Promise.resolve();
    const dropped = sink.latestMetric('csm.bridge.datagrams', { 'csm.outcome': 'source_not_allowed' });
    expect(dropped.map((p) => p.value)).toEqual([26]);
  });
});

describe('secrets never leave the process', () => {
  it('a unique SessionToken (and the AccessKey, by default) appears in no byte of stdout, stderr, OTLP bodies or /stats', async () => {
    const marker = `LEAKCHECK${randomUUID().replace(/-/g, '')}`;
    // Shaped like a real STS token: long base64 with the marker inside.
    const token = `IQoJb3JpZ2luX2VjE${marker}${'A'.repeat(300)}/+x==`;
    const accessKey = `ASIA${marker.slice(9, 25).toUpperCase()}`;
    const { bridge, sink } = await bridgeWithSink(['--log-level', 'debug', '--metrics-interval-ms', '200', '--call-hold-ms', '100']);
    const s = await udpFrom('127.0.0.1');
    const datagrams: (string | Buffer)[] = [
      // valid attempt + call (the normal botocore case: token and key on every attempt)
      attempt({ SessionToken: token, AccessKey: accessKey }),
      call({ SessionToken: token }),
      // valid but orphaned / incomplete
      attempt({ SessionToken: token, AccessKey: accessKey, Api: 'AssumeRole' }),
      call({ SessionToken: token, Api: 'GetSessionToken', AttemptCount: 3, UserAgent: 'aws-sdk-ruby3/3.1' }),
      // invalid in every way the decoder rejects, each carrying the token
      attempt({ SessionToken: token, HttpStatusCode: 'two hundred' }), // bad_field
      attempt({ SessionToken: token, Version: 2 }), // bad_field
      attempt({ SessionToken: token, Service: undefined }), // missing_field
      attempt({ SessionToken: token, Type: 'Heartbeat' }), // unknown_type
      attempt({ SessionToken: { nested: [token] } }), // token as an odd type: valid, stripped
      attempt({ SessionToken: token, Timestamp: 1e300 }), // bad_field (range)
      JSON.stringify([token]), // not_object
      `{"Type":"ApiCallAttempt","SessionToken":"${token}"`, // malformed_json (truncated)
      `${attempt({ SessionToken: token })}\u0000trailing`, // malformed_json
      Buffer.from(attempt({ SessionToken: token, Pad: 'p'.repeat(64_000) })), // valid, 64 KB
    ];
    for (const d of datagrams) await send(s, d, bridge.udpPort);
    const st = await waitStats(bridge, (x) => x.datagrams.received >= datagrams.length, 'every datagram read');
    expect(st.datagrams.received).toBe(datagrams.length);
    const statsText = JSON.stringify(st);
    const health = await (await fetch(`${bridge.adminUrl}/healthz`)).text();
    await sink.waitFor(() => sink.spans.length >= 3 && sink.metricPoints.length > 0);
    expect(await bridge.stop()).toBe(0); // flushes the attempt still waiting for its call
    expect(sink.errors).toEqual([]);
    expect(st.datagrams.accepted).toBe(6);
    expect(sink.spans).toHaveLength(6);
    const everything = [
      ['stdout', Buffer.from(bridge.stdout())],
      ['stderr', Buffer.from(bridge.stderr())],
      ['/stats', Buffer.from(statsText)],
      ['/healthz', Buffer.from(health)],
      ...sink.requests.map((r, i) => [`OTLP ${r.path} #${i}`, r.decodedBytes] as const),
    ] as const;
    expect(sink.requests.length).toBeGreaterThan(1);
    for (const [where, bytes] of everything) {
      expect(bytes.includes(marker), `SessionToken marker in ${where}`).toBe(false);
      expect(bytes.includes(accessKey), `AccessKey in ${where}`).toBe(false);
      expect(bytes.includes('IQoJb3JpZ2luX2VjE'), `token prefix in ${where}`).toBe(false);
    }
    // The rejects were logged (so the scan above looked at real reject lines).
    expect(bridge.logs.filter((l) => l['msg'] === 'rejected CSM datagram').length).toBeGreaterThanOrEqual(4);
  });
});
