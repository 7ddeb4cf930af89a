/**
 * One precedence rule for every setting that has both a flag and an environment variable
 * (issue 18.4): flag > environment (a per-signal OTel variable > a generic one) > config file >
 * default. Table-driven through the real loader: for each setting, every combination of its
 * layers, and for the protocol every assignment of values to them, so no layer can win by
 * sharing a value with the one that should have.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { DEFAULT_CONFIG } from '../../src/config/schema.js';

const dir = mkdtempSync(join(tmpdir(), 'csm-precedence-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

type Signal = 'traces' | 'metrics';
/** One place a value can come from; `signal`: a per-signal variable sets only that signal. */
interface Layer {
  kind: 'flag' | 'env' | 'file';
  /** flag name, variable name or YAML key */
  name: string;
  signal?: Signal;
}
interface Setting {
  name: string;
  /** Highest precedence first: the rule under test, written as data. */
  layers: Layer[];
  /** The values a layer may take (never empty: an empty variable is an unset one). */
  values: string[];
  /** The effective value the bridge uses for a signal (the same for both when not per signal). */
  read: (c: ReturnType<typeof load>, signal: Signal) => string;
  default: string;
}

const load = (argv: string[], env: NodeJS.ProcessEnv) => {
  const c = loadConfig(argv, env);
  if (c.kind !== 'run') throw new Error(c.kind);
  return c;
};
const host = (url: string) => new URL(url).hostname;

const SETTINGS: Setting[] = [
  {
    name: 'otlpProtocol',
    layers: [
      { kind: 'flag', name: '--otlp-protocol' },
      { kind: 'env', name: 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL', signal: 'traces' },
      { kind: 'env', name: 'OTEL_EXPORTER_OTLP_METRICS_PROTOCOL', signal: 'metrics' },
      { kind: 'env', name: 'OTEL_EXPORTER_OTLP_PROTOCOL' },
      { kind: 'file', name: 'otlpProtocol' },
    ],
    values: ['http/protobuf', 'http/json', 'grpc'],
    read: (c, s) => c.otel[s].protocol,
    default: 'http/protobuf',
  },
  {
    name: 'otlpEndpoint',
    layers: [
      { kind: 'flag', name: '--otlp-endpoint' },
      { kind: 'env', name: 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', signal: 'traces' },
      { kind: 'env', name: 'OTEL_EXPORTER_OTLP_METRICS_ENDPOINT', signal: 'metrics' },
      { kind: 'env', name: 'AWS_CSM_BRIDGE_OTLP_ENDPOINT' },
      { kind: 'env', name: 'OTEL_EXPORTER_OTLP_ENDPOINT' },
      { kind: 'file', name: 'otlpEndpoint' },
    ],
    // Each layer its own host: which one won is read off the URL.
    values: [],
    read: (c, s) => host(c.otel[s].url),
    default: 'localhost',
  },
  {
    name: 'logLevel',
    layers: [
      { kind: 'flag', name: '--log-level' },
      { kind: 'env', name: 'AWS_CSM_BRIDGE_LOG_LEVEL' },
      { kind: 'env', name: 'OTEL_LOG_LEVEL' },
      { kind: 'file', name: 'logLevel' },
    ],
    values: ['debug', 'warn', 'error'],
    read: (c) => c.config.logLevel,
    default: 'info',
  },
  ...(
    [
      ['exportDelayMs', '--export-delay-ms', 'OTEL_BSP_SCHEDULE_DELAY'],
      ['exportBatchSize', '--export-batch-size', 'OTEL_BSP_MAX_EXPORT_BATCH_SIZE'],
      ['metricsIntervalMs', '--metrics-interval-ms', 'OTEL_METRIC_EXPORT_INTERVAL'],
      ['semconvStabilityOptIn', '--semconv-stability-opt-in', 'OTEL_SEMCONV_STABILITY_OPT_IN'],
    ] as const
  ).map(
    ([key, flag, variable]): Setting => ({
      name: key,
      layers: [
        { kind: 'flag', name: flag },
        { kind: 'env', name: variable },
        { kind: 'file', name: key },
      ],
      values: key === 'semconvStabilityOptIn' ? ['rpc', 'rpc/dup', 'other'] : [String(DEFAULT_CONFIG[key]), '2000', '3000', '4000'],
      read: (c) => String(c.config[key]),
      default: String(DEFAULT_CONFIG[key]),
    }),
  ),
];

/** Every subset of the layers, and for each every assignment of `values` (distinct hosts for endpoints). */
function* cases(s: Setting): Generator<Map<Layer, string>> {
  for (let mask = 0; mask < 1 << s.layers.length; mask++) {
    const present = s.layers.filter((_, i) => mask & (1 << i));
    if (s.values.length === 0) {
      yield new Map(present.map((l) => [l, `http://${l.name.toLowerCase().replace(/[^a-z]/g, '')}.test:4318`]));
      continue;
    }
    const base = s.values.length;
    // n written in base `values.length`: digit i is the value of the i-th present layer.
    for (let n = 0; n < base ** present.length; n++) {
      yield new Map(present.map((l, i) => [l, s.values[Math.floor(n / base ** i) % base]!]));
    }
  }
}

/** The expected winner: the first present layer (highest precedence) that applies to the signal. */
function expected(s: Setting, given: Map<Layer, string>, signal: Signal): string {
  for (const l of s.layers) {
    const v = given.get(l);
    if (v !== undefined && (l.signal === undefined || l.signal === signal)) return s.values.length === 0 ? host(v) : v;
  }
  return s.default;
}

describe('flags > environment (per-signal > generic) > file > defaults, for every setting with a flag and a variable', () => {
  it.each(SETTINGS)('$name', (s) => {
    let checked = 0;
    for (const given of cases(s)) {
      const argv: string[] = [];
      const env: NodeJS.ProcessEnv = {};
      const yaml: string[] = [];
      for (const [l, v] of given) {
        if (l.kind === 'flag') argv.push(`${l.name}=${v}`);
        else if (l.kind === 'env') env[l.name] = v;
        else yaml.push(`${l.name}: ${/^\d+$/.test(v) ? v : JSON.stringify(v)}`);
      }
      if (yaml.length > 0) {
        const file = join(dir, `${s.name}.yaml`);
        writeFileSync(file, `${yaml.join('\n')}\n`);
        argv.push('--config', file);
      }
      const c = load(argv, env);
      for (const signal of ['traces', 'metrics'] as const) {
        const what = `${s.name} ${signal}: ${JSON.stringify([...given].map(([l, v]) => `${l.name}=${v}`))}`;
        expect(s.read(c, signal), what).toBe(expected(s, given, signal));
      }
      checked++;
    }
    expect(checked).toBeGreaterThanOrEqual(1 << s.layers.length);
  });
});
