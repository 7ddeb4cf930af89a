import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBridge, type BridgeProcess } from '../helpers/bridge-process.js';
import { getStats, type Stats } from '../helpers/stats.js';
import { FIXTURES, readCapture } from '../helpers/captures.js';
import { startOtlpSink, type OtlpSink, type SinkSpan } from '../helpers/otlp-sink.js';
import { findTool, startMoto, type Moto } from '../helpers/tools.js';

const CLIENTS = join(import.meta.dirname, 'clients');
const PYTHON = findTool('python3');
const MOTO = findTool('moto_server');
const BOTO3_CALLS = 4;
const GO_CAPTURE = 'go_v1_sequential';
const GO_CALLS = readCapture(GO_CAPTURE).filter((l) => (JSON.parse(l.raw) as { Type: string }).Type === 'ApiCall').length;

interface Child {
  child: ChildProcess;
  /** The pid the process printed itself (a pyenv shim may stand between spawn and python). */
  pid: Promise<number>;
  out: () => string;
  err: () => string;
  exited: Promise<number | null>;
}

const children = new Set<ChildProcess>();
function run(cmd: string, args: string[], env: Record<string, string>): Child {
  const child = spawn(cmd, args, { env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let out = '';
  let err = '';
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => { children.delete(child); r(code); }));
  const pid = new Promise<number>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const first = /^(\d+)\n/.exec(out);
      if (first) resolve(Number(first[1]));
    });
    void exited.then((code) => reject(new Error(`${cmd} exited with ${code}:\n${err}`)));
  });
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  // Bounded: nothing here runs longer than a minute.
  setTimeout(() => child.kill('SIGKILL'), 60_000).unref();
  return { child, pid, out: () => out, err: () => err, exited };
}

/**
 * Process identity end to end, with real processes on loopback: the bridge
 * finds each sender's socket in /proc/net/udp, its pid via /proc/PID/fd and
 * puts process.* on that client's resource.
 */
describe.skipIf(process.platform !== 'linux' || !PYTHON || !MOTO)('process identity: real senders → bridge → OTLP resource', () => {
  let sink: OtlpSink;
  let moto: Moto;
  let bridge: BridgeProcess;
  let boto3: Child;
  let goLike: Child;
  let stats: Stats;

  beforeAll(async () => {
    sink = await startOtlpSink();
    moto = await startMoto(MOTO!);
    bridge = await startBridge(['--export-delay-ms', '200', '--metrics-interval-ms', '500', '--process-command-line', 'true'], {
      OTEL_EXPORTER_OTLP_ENDPOINT: sink.url,
    });
    const csm = { AWS_CSM_ENABLED: 'true', AWS_CSM_PORT: String(bridge.udpPort), AWS_CSM_HOST: '127.0.0.1' };
    boto3 = run(PYTHON!, [join(CLIENTS, 'identity-boto3.py'), moto.url, String(BOTO3_CALLS), '0.3'], {
      ...csm,
      AWS_CSM_CLIENT_ID: 'identity-boto3',
      AWS_ACCESS_KEY_ID: 'AKIAIOSFODNN7EXAMPLE',
      AWS_SECRET_ACCESS_KEY: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
      AWS_CONFIG_FILE: '/dev/null',
      AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
    });
    goLike = run(process.execPath, [join(CLIENTS, 'identity-socket.cjs'), join(FIXTURES, `${GO_CAPTURE}.jsonl`), String(bridge.udpPort)], {});
    const roots = (service: string) => sink.spans.filter((s) => s.parentSpanId === '' && s.resource['service.name'] === service).length;
    const hasMetrics = (service: string) => sink.metricPoints.some((p) => p.name === 'rpc.client.call.duration' && p.resource['service.name'] === service);
    await sink.waitFor(
      () => roots('identity-boto3') >= BOTO3_CALLS && roots(`corpus-${GO_CAPTURE}`) >= GO_CALLS && hasMetrics('identity-boto3'),
      45_000,
    );
    stats = await getStats(bridge);
  }, 120_000);

  afterAll(async () => {
    for (const c of children) c.kill('SIGKILL');
    await bridge?.stop('SIGTERM');
    await moto?.close();
    await sink?.close();
  });

  const spansOf = (service: string): SinkSpan[] => sink.spans.filter((s) => s.resource['service.name'] === service);

  it('a long-lived boto3 client: every span carries its pid, executable and (opted in) command line', async () => {
    const pid = await boto3.pid;
    const spans = spansOf('identity-boto3');
    expect(spans.filter((s) => s.parentSpanId === '').map((s) => s.name)).toEqual(['S3.CreateBucket', ...Array<string>(BOTO3_CALLS - 1).fill('S3.ListObjectsV2')]);
    for (const s of spans) {
      expect(s.resource['process.pid']).toBe(pid);
      expect(String(s.resource['process.executable.name'])).toMatch(/^python/);
      expect(String(s.resource['process.command_line'])).toContain('identity-boto3.py');
      expect(s.resource['container.id']).toBeUndefined(); // a host process
    }
  });

  it('a Go-style sender holding one socket: the real Go v1 capture gets the sender\'s pid and "node"', async () => {
    const pid = await goLike.pid;
    const spans = spansOf(`corpus-${GO_CAPTURE}`);
    expect(spans.filter((s) => s.parentSpanId === '')).toHaveLength(GO_CALLS);
    for (const s of spans) {
      expect(s.resource['process.pid']).toBe(pid);
      expect(s.resource['process.executable.name']).toBe('node');
    }
    expect(pid).not.toBe(await boto3.pid);
  });

  it('one tracer provider per (ClientId, process), no split; metrics per ClientId; /stats counts the lookups', () => {
    for (const service of ['identity-boto3', `corpus-${GO_CAPTURE}`]) {
      const resources = new Set(spansOf(service).map((s) => JSON.stringify(s.resource)));
      expect(resources.size, service).toBe(1);
    }
    // Metrics are per ClientId (series do not multiply per process): same service, no process attributes.
    const calls = sink.metricPoints.filter((p) => p.name === 'rpc.client.call.duration' && p.resource['service.name'] === 'identity-boto3');
    expect(calls.length).toBeGreaterThan(0);
    for (const p of calls) expect(p.resource['process.pid']).toBeUndefined();
    expect(stats.identity.resolved).toBe(2); // one socket each
    expect(stats.identity.scans).toBeGreaterThanOrEqual(1);
    expect(stats.clients.active).toBe(2); // applications (ClientIds), not their identified processes
    expect(sink.errors).toEqual([]);
  });

  it('the senders ran as scripted', async () => {
    expect(boto3.out()).toContain('done');
    expect(await boto3.exited).toBe(0);
    expect(goLike.out()).toContain(`sent ${readCapture(GO_CAPTURE).length}`);
  });
});
