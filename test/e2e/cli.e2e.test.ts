import { createSocket } from 'node:dgram';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseHostPort } from '../../src/net/address.js';
import { runCli, startBridge } from '../helpers/bridge-process.js';
import { waitStats } from '../helpers/stats.js';
import { freePort } from '../helpers/tools.js';

describe('the CLI as a user meets it', () => {
  it('--help lists every setting with its flag, env var and default; --version prints the version', async () => {
    const help = await runCli(['--help']);
    expect(help.code).toBe(0);
    for (const s of ['--listen', '--admin', '--attempt-hold-ms', 'AWS_CSM_HOST', 'OTEL_EXPORTER_OTLP_PROTOCOL', 'Default 127.0.0.1:31000', 'AWS_CSM_ENABLED=true']) {
      expect(help.stdout).toContain(s);
    }
    const v = await runCli(['--version']);
    expect([v.code, v.stdout.trim()]).toEqual([0, '0.1.0']);
  });

  it('bad settings exit 2 with a message naming the key, the value and what is allowed', async () => {
    const r = await runCli(['--timestamp-semantics', 'middle']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('timestampSemantics (--timestamp-semantics: got "middle")');
    expect(r.stderr).toContain('"auto"|"start"|"end"');
    const env = await runCli([], { AWS_CSM_BRIDGE_MAX_PENDING: 'lots' });
    expect(env.code).toBe(2);
    expect(env.stderr).toContain('maxPending (env AWS_CSM_BRIDGE_MAX_PENDING: got "lots")');
    const unknown = await runCli(['--no-such-flag']);
    expect([unknown.code, unknown.stderr]).toEqual([2, expect.stringContaining('unknown argument "--no-such-flag"')]);
  });

  it('the config file is validated by the same schema, and flags > env > file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'csm-bridge-'));
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'listen: 127.0.0.1:31000\nattemptHoldMs: -1\n');
    const r = await runCli(['--config', bad]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`attemptHoldMs (file ${bad}: got -1)`);
    writeFileSync(bad, 'lisen: 127.0.0.1:31000\n');
    const typo = await runCli(['--config', bad]);
    expect(typo.stderr).toContain('unknown key "lisen"');

    const good = join(dir, 'good.yaml');
    const [filePort, envPort] = [await freePort(), await freePort()];
    writeFileSync(good, `listen: 127.0.0.1:${filePort}\nadmin: "off"\nlogLevel: info\n`);
    // env beats file:
    const a = await startBridgeRaw(['--config', good], { AWS_CSM_PORT: String(envPort) });
    expect(a.listen).toEqual([`127.0.0.1:${envPort}`]);
    expect(a.admin).toBe('off');
    // file alone:
    const b = await startBridgeRaw(['--config', good], {});
    expect(b.listen).toEqual([`127.0.0.1:${filePort}`]);
  });

  it('listens on IPv4 and IPv6 loopback at once and counts datagrams from both', async () => {
    const bridge = await startBridge(['--listen', '[::1]:0', '--shutdown-timeout-ms', '1000'], { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:9', OTEL_EXPORTER_OTLP_TIMEOUT: '500' });
    try {
      const listen = bridge.started['listen'] as string[];
      expect(listen).toHaveLength(2);
      const v6 = listen.find((l) => l.startsWith('[::1]'))!;
      const v6port = parseHostPort(v6).port;
      const payload = JSON.stringify({ Version: 1, Type: 'ApiCallAttempt', Service: 'S3', Api: 'ListBuckets', Timestamp: Date.now(), AttemptLatency: 3 });
      for (const [type, host, port] of [['udp4', '127.0.0.1', bridge.udpPort], ['udp6', '::1', v6port]] as const) {
        const s = createSocket(type);
        await new Promise<void>((res) => s.send(payload, port, host, () => res()));
        s.close();
      }
      const stats = await waitStats(bridge, (s) => s.datagrams.accepted === 2, 'both datagrams accepted', 5_000);
      expect(stats.datagrams.accepted).toBe(2);
      expect(stats.correlation.pendingAttempts).toBe(2);
      expect((await fetch(`${bridge.adminUrl}/nope`)).status).toBe(404);
    } finally {
      expect(await bridge.stop('SIGINT')).toBe(0);
    }
  });

  it('a port already in use is a clear error, not a crash', async () => {
    const s = createSocket('udp4');
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
    const r = await runCli(['--listen', `127.0.0.1:${s.address().port}`, '--admin', 'off']);
    s.close();
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('cannot listen on udp');
    expect(r.stderr).toContain('already listens there');
  });
});

/** Starts the CLI with exactly these args (no test addresses) and returns where it listens. */
async function startBridgeRaw(args: string[], env: Record<string, string>): Promise<{ listen: string[]; admin: string }> {
  const b = await startBridge(args, env, false);
  await b.stop('SIGKILL');
  return { listen: b.started['listen'] as string[], admin: b.started['admin'] as string };
}

describe('losses before the bridge reads a datagram', () => {
  it('are counted: datagrams the kernel dropped on a full receive buffer appear in /stats', async () => {
    const bridge = await startBridge(['--receive-buffer-bytes', '65536', '--shutdown-timeout-ms', '1000'], { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:9', OTEL_EXPORTER_OTLP_TIMEOUT: '500' });
    const sender = createSocket('udp4');
    const payload = Buffer.from(JSON.stringify({ Version: 1, Type: 'ApiCallAttempt', Service: 'S3', Api: 'ListBuckets', Timestamp: Date.now(), AttemptLatency: 3, Fqdn: 'x'.repeat(400) }));
    const SENT = 3_000;
    try {
      // A stopped process reads nothing: the ~128 KiB buffer fills and the kernel drops the rest.
      bridge.child.kill('SIGSTOP');
      for (let i = 0; i < SENT; i++) await new Promise<void>((res) => sender.send(payload, bridge.udpPort, '127.0.0.1', () => res()));
      bridge.child.kill('SIGCONT');
      const stats = await waitStats(bridge, (s) => s.datagrams.received + s.datagrams.kernelDropped === SENT, 'every datagram read or dropped', 5_000);
      expect(stats.datagrams.kernelDropped).toBeGreaterThan(0);
      expect(stats.datagrams.received + stats.datagrams.kernelDropped).toBe(SENT);
      expect(stats.datagrams.accepted).toBe(stats.datagrams.received);
    } finally {
      sender.close();
      bridge.child.kill('SIGCONT');
      await bridge.stop('SIGTERM');
    }
  });
});
