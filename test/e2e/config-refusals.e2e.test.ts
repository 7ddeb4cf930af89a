/**
 * Every configuration refusal exits 2, whichever stage finds it (issue 18.3): the shipped
 * systemd unit has RestartPreventExitStatus=2, so a refusal that exits 1 is restarted every
 * 2 s forever. The real CLI, each refusal once; a port another process holds stays 1
 * (test/e2e/cli.e2e.test.ts), since a restart may succeed.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT, runCli } from '../helpers/bridge-process.js';

const dir = mkdtempSync(join(tmpdir(), 'csm-refusals-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
/** A regular file: no directory can be made under it (ENOTDIR), whatever the user's rights. */
const aFile = join(dir, 'a-file');
writeFileSync(aFile, 'x');
const LOOPBACK = ['--listen', '127.0.0.1:0', '--admin', 'off', '--no-ui'];

const cases: { name: string; args: string[]; env?: Record<string, string>; says: RegExp }[] = [
  // The three of the issue: listener policy.
  { name: '--admin 0.0.0.0:31001 without --allow-remote-http', args: ['--listen', '127.0.0.1:0', '--admin', '0.0.0.0:31001', '--no-ui'], says: /refusing to serve the admin listener on non-loopback address 0\.0\.0\.0 \(--admin\).*--allow-remote-http/ },
  { name: 'AWS_CSM_HOST=0.0.0.0 without a source allow-list', args: ['--admin', 'off', '--no-ui'], env: { AWS_CSM_HOST: '0.0.0.0', AWS_CSM_PORT: '0' }, says: /refusing to listen on non-loopback UDP address 0\.0\.0\.0:0/ },
  {
    name: 'OTEL_EXPORTER_PROMETHEUS_HOST=0.0.0.0 without --allow-remote-http',
    args: LOOPBACK,
    env: { OTEL_METRICS_EXPORTER: 'prometheus', OTEL_EXPORTER_PROMETHEUS_HOST: '0.0.0.0', OTEL_EXPORTER_PROMETHEUS_PORT: '0' },
    says: /the Prometheus endpoint on non-loopback address 0\.0\.0\.0 \(OTEL_EXPORTER_PROMETHEUS_HOST\)/,
  },
  { name: '--app-otlp-http 0.0.0.0:0 without --allow-remote-http', args: [...LOOPBACK, '--app-otlp-http', '0.0.0.0:0'], says: /the app span listener on non-loopback address 0\.0\.0\.0 \(--app-otlp-http\)/ },
  { name: '--listen [::]:0 without a source allow-list', args: ['--listen', '[::]:0', '--admin', 'off', '--no-ui'], says: /non-loopback UDP address \[::\]:0/ },
  { name: 'record FILE refuses a non-loopback listener too', args: ['record', join(dir, 'r.jsonl'), '--listen', '0.0.0.0:0', '--admin', 'off', '--no-ui'], says: /refusing to listen/ },
  // Values and address parsing.
  { name: 'an address without a port', args: ['--listen', '127.0.0.1', '--admin', 'off'], says: /listen .*expected HOST:PORT/ },
  { name: 'a port above 65535', args: ['--admin', '127.0.0.1:70000'], says: /admin .*port must be 0-65535/ },
  { name: 'a bad CIDR', args: ['--listen', '0.0.0.0:0', '--allow-source', '10.0.0.0/33'], says: /allowSource .*expected an IPv4 or IPv6 address or CIDR/ },
  { name: 'a value out of range', args: ['--max-clients', '0'], says: /maxClients .*got 0/ },
  { name: 'an unknown flag', args: ['--no-such-flag'], says: /unknown argument "--no-such-flag"/ },
  { name: 'a mistyped AWS_CSM_BRIDGE_ variable', args: LOOPBACK, env: { AWS_CSM_BRIDGE_ADMN: 'off' }, says: /unknown environment variable AWS_CSM_BRIDGE_ADMN\. Did you mean AWS_CSM_BRIDGE_ADMIN\?/ },
  { name: 'a flag without its value', args: ['--listen'], says: /--listen needs a value/ },
  { name: 'a subcommand without its FILE', args: ['replay'], says: /replay needs a FILE/ },
  { name: 'a bad OpenTelemetry variable', args: LOOPBACK, env: { OTEL_EXPORTER_OTLP_ENDPOINT: 'localhost:4318' }, says: /OTEL_EXPORTER_OTLP_ENDPOINT="localhost:4318": expected an http/ },
  // Files a setting names, checked at start.
  { name: 'a config file that is not there', args: ['--config', join(dir, 'missing.yaml')], says: /cannot read config file/ },
  { name: 'a TLS file that is not there', args: LOOPBACK, env: { OTEL_EXPORTER_OTLP_CERTIFICATE: join(dir, 'missing.pem') }, says: /cannot read the CA certificate file/ },
  { name: 'a spool directory that cannot be made', args: [...LOOPBACK, '--spool-dir', join(aFile, 'spool')], says: /cannot use the spool directory .*a-file\/spool.*ENOTDIR/ },
  { name: 'a policy file that cannot be read', args: [...LOOPBACK, '--policy-file', dir], says: /policy file/ },
  { name: 'a recording file that cannot be opened', args: ['record', join(aFile, 'r.jsonl'), ...LOOPBACK], says: /cannot open the recording file .*a-file\/r\.jsonl/ },
  { name: 'a recording to replay that is not there', args: ['replay', join(dir, 'missing.jsonl'), '--no-ui'], says: /cannot replay .*missing\.jsonl/ },
  { name: 'policy FILE that is not there', args: ['policy', join(dir, 'missing.jsonl')], says: /cannot read .*missing\.jsonl/ },
];

describe('every configuration refusal exits 2 (the systemd unit does not restart on 2)', () => {
  it.each(cases)('$name', async ({ args, env, says }) => {
    const r = await runCli(args, env);
    expect(r.stderr).toMatch(says);
    expect(r.code, r.stderr).toBe(2);
  });
});

describe('a refusal found when the sockets open', () => {
  it('udpReceiver recvmmsg where the addon is not built exits 2 (auto would fall back to dgram)', () => {
    // The built CLI without build/Release: what an install without a compiler has.
    const bare = join(dir, 'no-addon');
    cpSync(join(ROOT, 'dist'), join(bare, 'dist'), { recursive: true });
    cpSync(join(ROOT, 'package.json'), join(bare, 'package.json'));
    symlinkSync(join(ROOT, 'node_modules'), join(bare, 'node_modules'));
    const r = spawnSync(process.execPath, [join(bare, 'dist', 'cli.js'), ...LOOPBACK, '--udp-receiver', 'recvmmsg'], { encoding: 'utf8', timeout: 20_000 });
    expect(r.stderr).toMatch(/udpReceiver is recvmmsg but the recvmmsg addon is not built/);
    expect(r.status, r.stderr).toBe(2);
  });
});
