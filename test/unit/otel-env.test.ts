/**
 * The OTEL_* variables, resolved once (src/config/otel-env.ts) through the
 * real config loader: the specification's endpoint rules, per-signal
 * precedence, and a clear stop on every bad value.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, helpText, loadConfig } from '../../src/config/load.js';
import { OTEL_VARIABLES, type OtelSettings } from '../../src/config/otel-env.js';
import { ROOT } from '../helpers/bridge-process.js';

const otel = (env: NodeJS.ProcessEnv, argv: string[] = []): OtelSettings => {
  const c = loadConfig(argv, env);
  if (c.kind !== 'run') throw new Error(c.kind);
  return c.otel;
};
const fails = (env: NodeJS.ProcessEnv, argv: string[] = []): string => {
  try {
    otel(env, argv);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as Error).message;
  }
  throw new Error('expected a ConfigError');
};

const dir = mkdtempSync(join(tmpdir(), 'otel-env-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('OTEL_* resolution', () => {
  it('defaults: http/protobuf to localhost:4318 with the signal path; grpc to localhost:4317 without one', () => {
    const d = otel({});
    expect([d.traces.url, d.metrics.url, d.traces.protocol, d.traces.timeoutMs, d.traces.compression]).toEqual([
      'http://localhost:4318/v1/traces',
      'http://localhost:4318/v1/metrics',
      'http/protobuf',
      10_000,
      'none',
    ]);
    expect([d.tracesExporters, d.metricsExporters, d.sampler.root, d.sampler.ratio, d.sdkDisabled]).toEqual([['otlp'], ['otlp'], 'always_on', 1, false]);
    expect(d.prometheus).toEqual({ host: 'localhost', port: 9464 });
    const g = otel({ OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' });
    expect([g.traces.url, g.metrics.url, g.traces.secure]).toEqual(['http://localhost:4317', 'http://localhost:4317', false]);
  });

  it('endpoints: base + /v1/<signal>, per-signal verbatim and winning, --otlp-endpoint over all', () => {
    expect(otel({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:1/base/' }).traces.url).toBe('http://c:1/base/v1/traces');
    expect(otel({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:1' }).metrics.url).toBe('http://c:1/v1/metrics');
    const per = otel({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:1', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://t:2/custom' });
    expect([per.traces.url, per.traces.secure, per.metrics.url]).toEqual(['https://t:2/custom', true, 'http://c:1/v1/metrics']);
    const flag = otel({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://t:2/x' }, ['--otlp-endpoint', 'http://f:3']);
    expect(flag.traces.url).toBe('http://f:3/v1/traces');
  });

  it('per-signal protocol over the generic one; grpc endpoints: scheme decides TLS, else OTEL_EXPORTER_OTLP_INSECURE', () => {
    const mixed = otel({ OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_EXPORTER_OTLP_METRICS_PROTOCOL: 'grpc' });
    expect([mixed.traces.protocol, mixed.metrics.protocol, mixed.metrics.url]).toEqual(['http/json', 'grpc', 'http://localhost:4317']);
    const grpc = { OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' };
    expect(otel({ ...grpc, OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4317' }).traces).toMatchObject({ url: 'https://collector:4317', secure: true });
    expect(otel({ ...grpc, OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4317', OTEL_EXPORTER_OTLP_INSECURE: 'true' }).traces).toMatchObject({
      url: 'http://collector:4317',
      secure: false,
    });
    expect(otel({ ...grpc, OTEL_EXPORTER_OTLP_ENDPOINT: 'https://collector:4317' }).traces.secure).toBe(true);
    expect(otel({ ...grpc, OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4317', OTEL_EXPORTER_OTLP_TRACES_INSECURE: 'false' }).traces.secure).toBe(false);
    expect(fails({ ...grpc, OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4317/v1/traces' })).toMatch(/OTEL_EXPORTER_OTLP_ENDPOINT="http:\/\/c:4317\/v1\/traces": expected a gRPC endpoint .*without a path/);
  });

  it('headers (percent-decoded, per-signal merged over generic), timeout, compression', () => {
    const o = otel({
      OTEL_EXPORTER_OTLP_HEADERS: 'x-team=a%20b, x-both=generic',
      OTEL_EXPORTER_OTLP_METRICS_HEADERS: 'x-both=metrics,x-dataset=m',
      OTEL_EXPORTER_OTLP_TIMEOUT: '2500',
      OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: '700',
      OTEL_EXPORTER_OTLP_COMPRESSION: 'GZIP',
    });
    expect(o.traces.headers).toEqual({ 'x-team': 'a b', 'x-both': 'generic' });
    expect(o.metrics.headers).toEqual({ 'x-team': 'a b', 'x-both': 'metrics', 'x-dataset': 'm' });
    expect([o.traces.timeoutMs, o.metrics.timeoutMs, o.traces.compression, o.metrics.compression]).toEqual([700, 2500, 'gzip', 'gzip']);
  });

  it('sampler, exporters, temporality, histograms, SDK switch, log level, resource', () => {
    const o = otel({
      OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
      OTEL_TRACES_SAMPLER_ARG: '0.25',
      OTEL_TRACES_EXPORTER: 'none',
      OTEL_METRICS_EXPORTER: 'prometheus, otlp',
      OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE: 'Delta',
      OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION: 'base2_exponential_bucket_histogram',
      OTEL_SDK_DISABLED: 'TRUE',
      OTEL_SERVICE_NAME: 'me',
      OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment.name=prod,team=a%2Cb',
      OTEL_EXPORTER_PROMETHEUS_HOST: '[::1]',
      OTEL_EXPORTER_PROMETHEUS_PORT: '0',
    });
    expect(o.sampler).toEqual({ root: 'traceidratio', ratio: 0.25, name: 'parentbased_traceidratio' });
    expect([o.tracesExporters, o.metricsExporters, o.temporality, o.histogramAggregation, o.sdkDisabled]).toEqual([
      [],
      ['prometheus', 'otlp'],
      'delta',
      'base2_exponential_bucket_histogram',
      true,
    ]);
    expect([o.serviceName, o.resourceAttributes, o.prometheus]).toEqual(['me', { 'deployment.environment.name': 'prod', team: 'a,b' }, { host: '::1', port: 0 }]);
    expect(otel({ OTEL_TRACES_SAMPLER: 'always_off' }).sampler.ratio).toBe(0);
    // OTEL_LOG_LEVEL applies when --log-level (or its variable) does not.
    const level = (env: NodeJS.ProcessEnv, argv: string[] = []) => {
      const c = loadConfig(argv, env);
      return c.kind === 'run' ? c.config.logLevel : undefined;
    };
    expect([level({ OTEL_LOG_LEVEL: 'verbose' }), level({ OTEL_LOG_LEVEL: 'none' }), level({ OTEL_LOG_LEVEL: 'debug' }, ['--log-level', 'warn'])]).toEqual([
      'debug',
      'none',
      'warn',
    ]);
  });

  it('every bad value stops the bridge, naming the variable, its value and what is allowed; all at once', () => {
    const cases: [NodeJS.ProcessEnv, RegExp][] = [
      [{ OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'thrift' }, /OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="thrift": expected one of http\/protobuf, http\/json, grpc/],
      [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'ftp://x' }, /OTEL_EXPORTER_OTLP_ENDPOINT="ftp:\/\/x": expected an http:\/\/ or https:\/\/ URL/],
      [{ OTEL_EXPORTER_OTLP_TIMEOUT: '10s' }, /OTEL_EXPORTER_OTLP_TIMEOUT="10s": expected milliseconds/],
      [{ OTEL_EXPORTER_OTLP_COMPRESSION: 'zstd' }, /OTEL_EXPORTER_OTLP_COMPRESSION="zstd": expected one of gzip, none/],
      [{ OTEL_EXPORTER_OTLP_HEADERS: 'novalue' }, /OTEL_EXPORTER_OTLP_HEADERS="novalue": expected headers as key=value/],
      [{ OTEL_TRACES_SAMPLER: 'xray' }, /OTEL_TRACES_SAMPLER="xray": expected one of always_on, always_off, traceidratio, parentbased_always_on/],
      [{ OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '1.5' }, /OTEL_TRACES_SAMPLER_ARG="1.5": expected the share of calls to keep, a number from 0 to 1/],
      [{ OTEL_TRACES_EXPORTER: 'zipkin' }, /OTEL_TRACES_EXPORTER="zipkin": expected a comma list of otlp, console, or none \(unsupported: zipkin\)/],
      [{ OTEL_TRACES_EXPORTER: 'prometheus' }, /unsupported: prometheus/],
      [{ OTEL_METRICS_EXPORTER: 'none,otlp' }, /OTEL_METRICS_EXPORTER="none,otlp": none cannot be combined/],
      [{ OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE: 'sometimes' }, /expected one of cumulative, delta, lowmemory/],
      [{ OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION: 'summary' }, /expected one of explicit_bucket_histogram, base2_exponential_bucket_histogram/],
      [{ OTEL_EXPORTER_PROMETHEUS_PORT: '99999' }, /OTEL_EXPORTER_PROMETHEUS_PORT="99999": expected a port/],
      [{ OTEL_SDK_DISABLED: 'yes' }, /OTEL_SDK_DISABLED="yes": expected true or false/],
      [{ OTEL_LOG_LEVEL: 'loud' }, /OTEL_LOG_LEVEL="loud": expected one of none, error, warn, info, debug, verbose, all/],
      [{ OTEL_EXPORTER_OTLP_INSECURE: 'maybe' }, /OTEL_EXPORTER_OTLP_INSECURE="maybe": expected true or false/],
      [{ OTEL_RESOURCE_ATTRIBUTES: 'a=%zz' }, /OTEL_RESOURCE_ATTRIBUTES="a=%zz": expected attributes as key=value/],
      [{ OTEL_EXPORTER_OTLP_CERTIFICATE: join(dir, 'missing.pem') }, /OTEL_EXPORTER_OTLP_CERTIFICATE=".*missing.pem": cannot read the CA certificate file/],
    ];
    for (const [env, re] of cases) expect(fails(env), JSON.stringify(env)).toMatch(re);
    // The protocol also stops through the schema (it is --otlp-protocol too), naming the variable.
    expect(fails({ OTEL_EXPORTER_OTLP_PROTOCOL: 'udp' })).toMatch(/otlpProtocol \(env OTEL_EXPORTER_OTLP_PROTOCOL: got "udp"\)/);
    const both = fails({ OTEL_TRACES_SAMPLER: 'xray', OTEL_SDK_DISABLED: '1' });
    expect(both).toMatch(/OTEL_TRACES_SAMPLER/);
    expect(both).toMatch(/OTEL_SDK_DISABLED/);
  });

  it('TLS files: read at start; not PEM, or a key without its certificate, stops the bridge', () => {
    const key = join(dir, 'k.pem');
    const crt = join(dir, 'c.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', crt, '-days', '1', '-subj', '/CN=t'], {
      stdio: 'ignore',
    });
    const o = otel({ OTEL_EXPORTER_OTLP_CERTIFICATE: crt, OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY: key, OTEL_EXPORTER_OTLP_METRICS_CLIENT_CERTIFICATE: crt });
    expect(o.traces.tls.ca).toEqual(readFileSync(crt));
    expect([o.traces.tls.key, o.metrics.tls.key?.equals(readFileSync(key))]).toEqual([undefined, true]);
    const junk = join(dir, 'junk.pem');
    writeFileSync(junk, 'not a certificate');
    expect(fails({ OTEL_EXPORTER_OTLP_CLIENT_KEY: junk, OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE: crt })).toMatch(/not usable TLS material/);
    expect(fails({ OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY: key })).toMatch(/OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY=.*mutual TLS needs both/);
  });

  it('--help and docs/exporting.md list every variable', () => {
    const help = helpText('9.9.9');
    const readme = readFileSync(join(ROOT, 'docs', 'exporting.md'), 'utf8');
    for (const { name } of OTEL_VARIABLES) {
      expect(help, name).toContain(`  ${name}\n`);
      expect(readme, name).toContain(`\`${name}\``);
    }
  });
});
