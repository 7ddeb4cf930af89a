/**
 * The install steps at the top of config/aws-csm-bridge.service, run as written from this
 * checkout (after npm ci, as they say), with the system's directories moved under a temporary
 * one and without sudo; systemctl and journalctl are left out (no systemd here). Then the unit's
 * ExecStart with its environment: the installed copy must start with the recvmmsg receiver and
 * serve what an installed bridge serves (its web page, GET /policy with the IAM data), and stop
 * with 0 on SIGTERM. Copying the wrong files, or an `npm ci` that needs what is not copied,
 * fails here (it did: the steps once ran the install script, whose file was not copied).
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT, startBridge, type BridgeProcess } from '../helpers/bridge-process.js';
import { sendCalls } from '../helpers/call-sender.js';
import { startOtlpSink, type OtlpSink } from '../helpers/otlp-sink.js';
import { waitStats } from '../helpers/stats.js';

const run = promisify(execFile);
const UNIT = readFileSync(join(ROOT, 'config/aws-csm-bridge.service'), 'utf8');
const ADDON = join(ROOT, 'build/Release/udp_batch.node');

/** The header's command lines (`#   cmd`), up to the unit's first section. */
function installSteps(): string[] {
  const header = UNIT.slice(0, UNIT.indexOf('\n['));
  return header
    .split('\n')
    .filter((l) => /^# {3}\S/.test(l))
    .map((l) => l.slice(4).replace(/\s+\(JSON lines\)$/, ''));
}

describe.skipIf(!existsSync(ADDON) && !process.env['CI'])('the systemd unit\'s install steps, run as written', () => {
  const dir = mkdtempSync(join(tmpdir(), 'csm-systemd-'));
  /** The system's paths the steps and the unit name, under `dir`. */
  const paths: [string, string][] = [
    ['/etc/systemd/system/', join(dir, 'etc/systemd/system/')],
    ['/etc/default/aws-csm-bridge', join(dir, 'etc/default/aws-csm-bridge')],
    ['/etc/aws-csm-bridge', join(dir, 'etc/aws-csm-bridge')],
    ['/opt/aws-csm-bridge', join(dir, 'opt/aws-csm-bridge')],
  ];
  const local = (s: string) => paths.reduce((acc, [from, to]) => acc.split(from).join(to), s);
  let sink: OtlpSink | undefined;
  let bridge: BridgeProcess | undefined;

  afterAll(async () => {
    await bridge?.stop('SIGKILL');
    await sink?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('installs a copy that starts with the recvmmsg receiver, serves the web page and GET /policy, and stops with 0', async () => {
    // What a Debian host has before the steps.
    mkdirSync(join(dir, 'etc/default'), { recursive: true });
    mkdirSync(join(dir, 'etc/systemd/system'), { recursive: true });
    const steps = installSteps();
    expect(steps.some((s) => /npm ci/.test(s))).toBe(true);
    for (const step of steps) {
      if (/\b(systemctl|journalctl)\b/.test(step)) continue;
      const cmd = local(step).replace(/\bsudo /g, '');
      // The npm cache filled by this checkout's own npm ci serves the production dependencies.
      const r = await run('sh', ['-c', cmd], {
        cwd: ROOT,
        env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '', npm_config_prefer_offline: 'true', npm_config_audit: 'false', npm_config_fund: 'false' },
        timeout: 120_000,
      }).catch((e: { code: number; stderr: string }) => e);
      expect('code' in r && r.code !== 0 ? `${step}\n${r.stderr}` : '', step).toBe('');
    }
    expect(existsSync(join(dir, 'etc/systemd/system/aws-csm-bridge.service'))).toBe(true);

    // ExecStart, with the unit's Environment= and its EnvironmentFile (the OTLP endpoint made local,
    // and ephemeral ports instead of the config file's 31000/31001).
    const exec = local(/^ExecStart=(.*)$/m.exec(UNIT)![1]!).split(' ');
    const env: Record<string, string> = {};
    for (const m of UNIT.matchAll(/^Environment=(\w+)=(.*)$/gm)) env[m[1]!] = m[2]!;
    const envFile = /^EnvironmentFile=-?(.*)$/m.exec(UNIT)![1]!;
    for (const line of readFileSync(local(envFile), 'utf8').split('\n')) {
      const m = /^(\w+)=(.*)$/.exec(line);
      if (m) env[m[1]!] = m[2]!;
    }
    expect(env['OTEL_EXPORTER_OTLP_ENDPOINT']).toBeDefined();
    sink = await startOtlpSink();
    Object.assign(env, { OTEL_EXPORTER_OTLP_ENDPOINT: sink.url, AWS_CSM_PORT: '0', AWS_CSM_BRIDGE_ADMIN: '127.0.0.1:0' });
    expect(exec[1]).toBe(join(dir, 'opt/aws-csm-bridge/dist/cli.js'));
    bridge = await startBridge(exec.slice(2), env, false, exec[1]);
    expect(bridge.started['udpReceiver']).toBe('recvmmsg');

    const page = await fetch(`${bridge.adminUrl}/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('aws-csm-bridge');
    await sendCalls('systemd-install', bridge.udpPort, 1);
    await waitStats(bridge, (s) => s.policy.observed >= 1, 'the call observed by the policy');
    const policy = (await (await fetch(`${bridge.adminUrl}/policy`)).json()) as { clients: { policy: { Statement: unknown[] } }[] };
    expect(policy.clients[0]!.policy.Statement.length).toBeGreaterThan(0);
    expect(await bridge.stop('SIGTERM')).toBe(0);
  }, 180_000);
});
