import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

/**
 * The standard OpenTelemetry environment variables (the SDK configuration
 * and OTLP exporter specifications), resolved once into typed settings.
 *
 * Nothing else in the bridge reads an OTEL_* variable: the OTLP senders, the
 * sampler, the exporter selection, the Prometheus endpoint and the resources
 * get their values from `OtelSettings`. That keeps one set of rules (the
 * spec's, written out below) instead of each library applying its own, and
 * lets a bad value stop the bridge at start with a message naming the
 * variable, its value and what is allowed, instead of being ignored at the
 * first export. Empty means unset, as the spec says.
 *
 * `OTEL_VARIABLES` is the list `--help` shows and the docs/exporting.md table is checked
 * against.
 */

export type OtlpProtocol = 'http/protobuf' | 'http/json' | 'grpc';
export type Signal = 'traces' | 'metrics';
export type TemporalityPreference = 'cumulative' | 'delta' | 'lowmemory';
export type HistogramAggregation = 'explicit_bucket_histogram' | 'base2_exponential_bucket_histogram';
export type TracesExporter = 'otlp' | 'console';
export type MetricsExporter = 'otlp' | 'prometheus' | 'console';
export type RootSampler = 'always_on' | 'always_off' | 'traceidratio';
export type OtelLogLevel = 'none' | 'error' | 'warn' | 'info' | 'debug';

/** Client TLS material, read from the files the variables name (PEM). */
export interface TlsFiles {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

/** Where and how one signal is sent over OTLP. */
export interface OtlpTarget {
  signal: Signal;
  protocol: OtlpProtocol;
  /**
   * http/*: the URL POSTed to (base + `/v1/<signal>`, or the per-signal variable as is).
   * grpc: `http://host:port` (plaintext) or `https://host:port` (TLS); no path.
   */
  url: string;
  /** TLS: https://, or gRPC without a scheme and without OTEL_EXPORTER_OTLP_INSECURE=true. */
  secure: boolean;
  headers: Record<string, string>;
  timeoutMs: number;
  compression: 'gzip' | 'none';
  tls: TlsFiles;
}

export interface OtelSettings {
  traces: OtlpTarget;
  metrics: OtlpTarget;
  /** OTEL_TRACES_EXPORTER; empty = none (metrics only: no span is encoded). */
  tracesExporters: TracesExporter[];
  /** OTEL_METRICS_EXPORTER; empty = none. */
  metricsExporters: MetricsExporter[];
  temporality: TemporalityPreference;
  histogramAggregation: HistogramAggregation;
  /** OTEL_TRACES_SAMPLER (the parentbased_* forms act as their root: every CSM call is a root). */
  sampler: { root: RootSampler; ratio: number; name: string };
  prometheus: { host: string; port: number };
  /** OTEL_SDK_DISABLED=true: receive and count, export nothing. */
  sdkDisabled: boolean;
  /** OTEL_LOG_LEVEL, mapped onto the bridge's levels; undefined when unset. */
  logLevel: OtelLogLevel | undefined;
  /** OTEL_SERVICE_NAME; undefined when unset. */
  serviceName: string | undefined;
  /** OTEL_RESOURCE_ATTRIBUTES, percent-decoded. */
  resourceAttributes: Record<string, string>;
}

/** Where a setting's value came from: the precedence rule needs it. */
export type SettingLayer = 'flag' | 'env' | 'file' | 'default';

/** The config settings that OTel variables also set (flag, env, file or default values). */
export interface OtelOverrides {
  /** --otlp-endpoint: a base URL for both signals. */
  otlpEndpoint?: string | undefined;
  /** --otlp-protocol (its generic variable OTEL_EXPORTER_OTLP_PROTOCOL is the schema's). */
  otlpProtocol: OtlpProtocol;
  /** Where each came from (the loader knows); absent means a flag: a value given here wins. */
  from?: { otlpEndpoint?: SettingLayer; otlpProtocol?: SettingLayer };
}

/**
 * The one precedence rule, for every setting that has both a flag and OpenTelemetry
 * variables: flag > per-signal variable > generic variable > config file > default. A
 * setting's own variable (AWS_CSM_BRIDGE_*, or the generic OTel one the schema reads)
 * comes in `setting` as layer 'env', ahead of `generic`, the generic OTel variable the
 * schema does not read.
 */
export function byPrecedence<T>(setting: { value: T; from: SettingLayer }, perSignal: T | undefined, generic: T | undefined): T {
  if (setting.from === 'flag') return setting.value;
  if (perSignal !== undefined) return perSignal;
  if (setting.from === 'env' || generic === undefined) return setting.value;
  return generic;
}

export const DEFAULT_HTTP_ENDPOINT = 'http://localhost:4318';
export const DEFAULT_GRPC_ENDPOINT = 'http://localhost:4317';
export const DEFAULT_TIMEOUT_MS = 10_000;
export const DEFAULT_PROMETHEUS_HOST = 'localhost';
export const DEFAULT_PROMETHEUS_PORT = 9464;

const PROTOCOLS: readonly OtlpProtocol[] = ['http/protobuf', 'http/json', 'grpc'];
const SAMPLERS = ['always_on', 'always_off', 'traceidratio', 'parentbased_always_on', 'parentbased_always_off', 'parentbased_traceidratio'] as const;
const LOG_LEVELS: Record<string, OtelLogLevel> = { none: 'none', error: 'error', warn: 'warn', info: 'info', debug: 'debug', verbose: 'debug', all: 'debug' };

/** Every variable resolved here, for `--help` and docs/exporting.md (a test checks both list each one). */
export const OTEL_VARIABLES: readonly { name: string; help: string }[] = [
  { name: 'OTEL_EXPORTER_OTLP_ENDPOINT', help: `OTLP base URL. http/*: /v1/traces and /v1/metrics are appended (default ${DEFAULT_HTTP_ENDPOINT}); grpc: scheme://host:port, no path (default ${DEFAULT_GRPC_ENDPOINT}). --otlp-endpoint overrides every endpoint variable.` },
  { name: 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', help: 'Traces URL, used as is (http/*: the full URL; grpc: scheme://host:port).' },
  { name: 'OTEL_EXPORTER_OTLP_METRICS_ENDPOINT', help: 'Metrics URL, used as is.' },
  { name: 'OTEL_EXPORTER_OTLP_PROTOCOL', help: 'http/protobuf (default), http/json or grpc; also --otlp-protocol.' },
  { name: 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL', help: 'Per-signal protocol, over OTEL_EXPORTER_OTLP_PROTOCOL.' },
  { name: 'OTEL_EXPORTER_OTLP_METRICS_PROTOCOL', help: 'Per-signal protocol, over OTEL_EXPORTER_OTLP_PROTOCOL.' },
  { name: 'OTEL_EXPORTER_OTLP_HEADERS', help: 'key=value,key2=value2 (values percent-decoded): HTTP headers, or gRPC metadata.' },
  { name: 'OTEL_EXPORTER_OTLP_TRACES_HEADERS', help: 'Per-signal headers, merged over OTEL_EXPORTER_OTLP_HEADERS.' },
  { name: 'OTEL_EXPORTER_OTLP_METRICS_HEADERS', help: 'Per-signal headers, merged over OTEL_EXPORTER_OTLP_HEADERS.' },
  { name: 'OTEL_EXPORTER_OTLP_TIMEOUT', help: `Milliseconds one export request may take (gRPC: its deadline); default ${DEFAULT_TIMEOUT_MS}.` },
  { name: 'OTEL_EXPORTER_OTLP_TRACES_TIMEOUT', help: 'Per-signal timeout.' },
  { name: 'OTEL_EXPORTER_OTLP_METRICS_TIMEOUT', help: 'Per-signal timeout.' },
  { name: 'OTEL_EXPORTER_OTLP_COMPRESSION', help: 'gzip or none (default).' },
  { name: 'OTEL_EXPORTER_OTLP_TRACES_COMPRESSION', help: 'Per-signal compression.' },
  { name: 'OTEL_EXPORTER_OTLP_METRICS_COMPRESSION', help: 'Per-signal compression.' },
  { name: 'OTEL_EXPORTER_OTLP_CERTIFICATE', help: 'PEM file of the CA(s) trusted for the server certificate (https:// and secure gRPC); default the system CAs.' },
  { name: 'OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE', help: 'Per-signal CA file.' },
  { name: 'OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE', help: 'Per-signal CA file.' },
  { name: 'OTEL_EXPORTER_OTLP_CLIENT_KEY', help: 'PEM file of the client private key (mutual TLS); needs the client certificate.' },
  { name: 'OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY', help: 'Per-signal client key.' },
  { name: 'OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY', help: 'Per-signal client key.' },
  { name: 'OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE', help: 'PEM file of the client certificate chain (mutual TLS); needs the client key.' },
  { name: 'OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE', help: 'Per-signal client certificate.' },
  { name: 'OTEL_EXPORTER_OTLP_METRICS_CLIENT_CERTIFICATE', help: 'Per-signal client certificate.' },
  { name: 'OTEL_EXPORTER_OTLP_INSECURE', help: 'gRPC only, for an endpoint without http:// or https://: true = plaintext; default false (TLS).' },
  { name: 'OTEL_EXPORTER_OTLP_TRACES_INSECURE', help: 'Per-signal insecure.' },
  { name: 'OTEL_EXPORTER_OTLP_METRICS_INSECURE', help: 'Per-signal insecure.' },
  { name: 'OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE', help: 'cumulative (default; what Prometheus-style backends need), delta or lowmemory.' },
  { name: 'OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION', help: 'explicit_bucket_histogram (default) or base2_exponential_bucket_histogram.' },
  { name: 'OTEL_TRACES_EXPORTER', help: 'Comma list of otlp (default), console (JSON lines on stdout) or none (metrics only: no span is encoded).' },
  { name: 'OTEL_METRICS_EXPORTER', help: 'Comma list of otlp (default), prometheus (a scrape endpoint), console or none.' },
  { name: 'OTEL_EXPORTER_PROMETHEUS_HOST', help: `Address of the Prometheus scrape endpoint (default ${DEFAULT_PROMETHEUS_HOST}); a non-loopback address needs --allow-remote-http.` },
  { name: 'OTEL_EXPORTER_PROMETHEUS_PORT', help: `Port of the Prometheus scrape endpoint (default ${DEFAULT_PROMETHEUS_PORT}).` },
  { name: 'OTEL_TRACES_SAMPLER', help: 'always_on, always_off, traceidratio or parentbased_* of those (default parentbased_always_on); decided per call, see --sample-keep. Metrics always count every call.' },
  { name: 'OTEL_TRACES_SAMPLER_ARG', help: 'traceidratio: the share of calls kept, 0..1 (default 1).' },
  { name: 'OTEL_SDK_DISABLED', help: 'true: receive, show the live view and /stats, export nothing.' },
  { name: 'OTEL_LOG_LEVEL', help: 'none, error, warn, info, debug (verbose and all = debug): the log level when --log-level is not set.' },
  { name: 'OTEL_SERVICE_NAME', help: "service.name of the bridge's own resource (self-metrics)." },
  { name: 'OTEL_RESOURCE_ATTRIBUTES', help: "key=value,... added to the bridge's resource and to every client's resource." },
];

/** Collects every problem, so one start shows them all, each once (a generic variable is read for both signals). */
class Problems {
  readonly list: string[] = [];
  add(name: string, value: string, allowed: string): void {
    const line = `${name}=${JSON.stringify(value)}: ${allowed}`;
    if (!this.list.includes(line)) this.list.push(line);
  }
}

/**
 * Resolves the OTEL_* variables of `env`. Throws `Error` listing every bad value (the
 * caller wraps it in its ConfigError); reads the TLS files the variables name.
 */
export function resolveOtelEnv(env: NodeJS.ProcessEnv, overrides: OtelOverrides): OtelSettings {
  const p = new Problems();
  const get = (name: string): string | undefined => {
    const v = env[name]?.trim();
    return v === undefined || v === '' ? undefined : v;
  };
  const oneOf = <T extends string>(name: string, allowed: readonly T[], fallback: T, lower = true): T => {
    const v = get(name);
    if (v === undefined) return fallback;
    const x = (lower ? v.toLowerCase() : v) as T;
    if (allowed.includes(x)) return x;
    p.add(name, v, `expected one of ${allowed.join(', ')}`);
    return fallback;
  };
  const bool = (name: string): boolean | undefined => {
    const v = get(name);
    if (v === undefined) return undefined;
    if (/^true$/i.test(v)) return true;
    if (/^false$/i.test(v)) return false;
    p.add(name, v, 'expected true or false');
    return undefined;
  };

  const target = (signal: Signal): OtlpTarget => {
    const S = signal.toUpperCase();
    const perSignal = (what: string) => `OTEL_EXPORTER_OTLP_${S}_${what}`;
    const generic = (what: string) => `OTEL_EXPORTER_OTLP_${what}`;
    /** The per-signal variable, else the generic one: [name, value]. */
    const pick = (what: string): [string, string] | undefined => {
      for (const name of [perSignal(what), generic(what)]) {
        const v = get(name);
        if (v !== undefined) return [name, v];
      }
      return undefined;
    };

    const protocolVar = perSignal('PROTOCOL');
    const signalProtocol = get(protocolVar) === undefined ? undefined : oneOf(protocolVar, PROTOCOLS, overrides.otlpProtocol);
    const protocol = byPrecedence({ value: overrides.otlpProtocol, from: overrides.from?.otlpProtocol ?? 'flag' }, signalProtocol, undefined);
    const grpc = protocol === 'grpc';

    // Endpoint: a per-signal variable is used as is; a base URL (http: + /v1/<signal>) otherwise.
    type Endpoint = { url: string; from: string; isBase: boolean };
    const settingFrom = overrides.otlpEndpoint === undefined ? 'default' : (overrides.from?.otlpEndpoint ?? 'flag');
    const settingName = { flag: '--otlp-endpoint', env: 'AWS_CSM_BRIDGE_OTLP_ENDPOINT', file: 'otlpEndpoint (config file)', default: '' }[settingFrom];
    const named = (name: string, isBase: boolean): Endpoint | undefined => {
      const v = get(name);
      return v === undefined ? undefined : { url: v, from: name, isBase };
    };
    const chosen = byPrecedence<Endpoint | undefined>(
      { value: overrides.otlpEndpoint === undefined ? undefined : { url: overrides.otlpEndpoint, from: settingName, isBase: true }, from: settingFrom },
      named(perSignal('ENDPOINT'), false),
      named(generic('ENDPOINT'), true),
    );
    const base = (b: string) => (grpc ? b : `${b}${b.endsWith('/') ? '' : '/'}v1/${signal}`);
    let url = chosen === undefined ? (grpc ? DEFAULT_GRPC_ENDPOINT : `${DEFAULT_HTTP_ENDPOINT}/v1/${signal}`) : chosen.isBase ? base(chosen.url) : chosen.url;
    const from = chosen?.from ?? '';
    const raw = chosen?.url ?? url;
    const insecureVar = get(perSignal('INSECURE')) !== undefined ? perSignal('INSECURE') : generic('INSECURE');
    const insecure = bool(insecureVar) ?? false;
    let secure = false;
    if (grpc) {
      // gRPC endpoints may omit the scheme (host:port); then OTEL_EXPORTER_OTLP_INSECURE decides.
      const m = /^(https?):\/\/(.*)$/i.exec(url);
      const rest = m ? m[2]! : url;
      secure = m ? m[1]!.toLowerCase() === 'https' : !insecure;
      let parsed: URL | undefined;
      try {
        parsed = new URL(`http://${rest}`);
      } catch {
        parsed = undefined;
      }
      if (!parsed || parsed.hostname === '' || (parsed.pathname !== '/' && parsed.pathname !== '') || parsed.search || parsed.hash) {
        p.add(from || 'endpoint', raw, 'expected a gRPC endpoint [http://|https://]host:port, without a path (e.g. http://localhost:4317)');
      } else {
        url = `${secure ? 'https' : 'http'}://${parsed.host}`;
        if (parsed.port === '') url += secure ? ':443' : ':80';
      }
    } else {
      let parsed: URL | undefined;
      try {
        parsed = new URL(url);
      } catch {
        parsed = undefined;
      }
      if (!parsed || (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')) {
        p.add(from || 'endpoint', raw, 'expected an http:// or https:// URL (e.g. http://localhost:4318)');
      } else {
        url = parsed.href;
        secure = parsed.protocol === 'https:';
      }
    }

    // Headers: generic, then per-signal over them.
    const headers: Record<string, string> = {};
    for (const name of [generic('HEADERS'), perSignal('HEADERS')]) {
      const v = get(name);
      if (v !== undefined) Object.assign(headers, parseKeyValues(name, v, p, 'header'));
    }

    const t = pick('TIMEOUT');
    let timeoutMs = DEFAULT_TIMEOUT_MS;
    if (t) {
      if (/^\d+$/.test(t[1]) && Number(t[1]) > 0 && Number(t[1]) <= 3_600_000) timeoutMs = Number(t[1]);
      else p.add(t[0], t[1], 'expected milliseconds, an integer from 1 to 3600000');
    }

    const c = pick('COMPRESSION');
    const compression = c ? oneOf(c[0], ['gzip', 'none'] as const, 'none') : 'none';

    const tls: TlsFiles = {};
    const file = (what: string, kind: string): Buffer | undefined => {
      const f = pick(what);
      if (!f) return undefined;
      try {
        return readFileSync(f[1]);
      } catch (e) {
        p.add(f[0], f[1], `cannot read the ${kind} file: ${(e as Error).message}`);
        return undefined;
      }
    };
    const ca = file('CERTIFICATE', 'CA certificate');
    const key = file('CLIENT_KEY', 'client key');
    const cert = file('CLIENT_CERTIFICATE', 'client certificate');
    if (ca) tls.ca = ca;
    if (key) tls.key = key;
    if (cert) tls.cert = cert;
    const keySet = pick('CLIENT_KEY');
    const certSet = pick('CLIENT_CERTIFICATE');
    if ((keySet === undefined) !== (certSet === undefined)) {
      const [name, value] = (keySet ?? certSet)!;
      p.add(name, value, `mutual TLS needs both ${generic('CLIENT_KEY')} and ${generic('CLIENT_CERTIFICATE')} (or their ${S} forms)`);
    } else if ((ca || key || cert) && (key !== undefined) === (cert !== undefined)) {
      // Not PEM, or a key that does not match its certificate: say so now, not at the first export.
      try {
        // node:tls only when there are TLS files to check (a bridge without them does not keep it loaded).
        const { createSecureContext } = createRequire(import.meta.url)('node:tls') as typeof import('node:tls');
        createSecureContext({ ...(ca ? { ca } : {}), ...(key ? { key } : {}), ...(cert ? { cert } : {}) });
      } catch (e) {
        const [name, value] = pick(ca && !key ? 'CERTIFICATE' : 'CLIENT_CERTIFICATE') ?? ['', ''];
        p.add(name, value, `not usable TLS material (PEM expected; the key must match the certificate): ${(e as Error).message}`);
      }
    }
    return { signal, protocol, url, secure, headers, timeoutMs, compression, tls };
  };

  const traces = target('traces');
  const metrics = target('metrics');

  const exporters = <T extends string>(name: string, allowed: readonly T[]): T[] => {
    const v = get(name);
    if (v === undefined) return ['otlp' as T];
    const items = v.split(',').map((s) => s.trim().toLowerCase()).filter((s) => s !== '');
    const bad = items.filter((s) => s !== 'none' && !allowed.includes(s as T));
    if (bad.length > 0) {
      p.add(name, v, `expected a comma list of ${allowed.join(', ')}, or none (unsupported: ${bad.join(', ')})`);
      return ['otlp' as T];
    }
    if (items.includes('none')) {
      if (items.length > 1) p.add(name, v, 'none cannot be combined with an exporter');
      return [];
    }
    return [...new Set(items)] as T[];
  };
  const tracesExporters = exporters<TracesExporter>('OTEL_TRACES_EXPORTER', ['otlp', 'console']);
  const metricsExporters = exporters<MetricsExporter>('OTEL_METRICS_EXPORTER', ['otlp', 'prometheus', 'console']);

  const samplerName = oneOf('OTEL_TRACES_SAMPLER', SAMPLERS, 'parentbased_always_on');
  const root = samplerName.replace(/^parentbased_/, '') as RootSampler;
  let ratio = 1;
  const arg = get('OTEL_TRACES_SAMPLER_ARG');
  if (root === 'traceidratio' && arg !== undefined) {
    const n = /^(\d+(\.\d*)?|\.\d+)(e-?\d+)?$/i.test(arg) ? Number(arg) : NaN;
    if (Number.isFinite(n) && n >= 0 && n <= 1) ratio = n;
    else p.add('OTEL_TRACES_SAMPLER_ARG', arg, 'expected the share of calls to keep, a number from 0 to 1 (e.g. 0.1)');
  }
  if (root === 'always_off') ratio = 0;

  const promPortText = get('OTEL_EXPORTER_PROMETHEUS_PORT');
  let promPort = DEFAULT_PROMETHEUS_PORT;
  if (promPortText !== undefined) {
    if (/^\d{1,5}$/.test(promPortText) && Number(promPortText) <= 65535) promPort = Number(promPortText);
    else p.add('OTEL_EXPORTER_PROMETHEUS_PORT', promPortText, 'expected a port, 0-65535');
  }
  const promHost = (get('OTEL_EXPORTER_PROMETHEUS_HOST') ?? DEFAULT_PROMETHEUS_HOST).replace(/^\[(.*)\]$/, '$1');
  if (/[\s/[\]]/.test(promHost) || (promHost.includes(':') && !/^[0-9a-f:.]+$/i.test(promHost))) {
    p.add('OTEL_EXPORTER_PROMETHEUS_HOST', promHost, 'expected a host name or an IP address (IPv6 with or without brackets)');
  }

  const logText = get('OTEL_LOG_LEVEL');
  let logLevel: OtelLogLevel | undefined;
  if (logText !== undefined) {
    logLevel = LOG_LEVELS[logText.toLowerCase()];
    if (!logLevel) p.add('OTEL_LOG_LEVEL', logText, `expected one of ${Object.keys(LOG_LEVELS).join(', ')}`);
  }

  const resText = get('OTEL_RESOURCE_ATTRIBUTES');
  const resourceAttributes = resText === undefined ? {} : parseKeyValues('OTEL_RESOURCE_ATTRIBUTES', resText, p, 'attribute');

  const settings: OtelSettings = {
    traces,
    metrics,
    tracesExporters,
    metricsExporters,
    temporality: oneOf('OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE', ['cumulative', 'delta', 'lowmemory'] as const, 'cumulative'),
    histogramAggregation: oneOf(
      'OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION',
      ['explicit_bucket_histogram', 'base2_exponential_bucket_histogram'] as const,
      'explicit_bucket_histogram',
    ),
    sampler: { root, ratio, name: samplerName },
    prometheus: { host: promHost, port: promPort },
    sdkDisabled: bool('OTEL_SDK_DISABLED') ?? false,
    logLevel,
    serviceName: get('OTEL_SERVICE_NAME'),
    resourceAttributes,
  };
  if (p.list.length > 0) throw new Error(p.list.join('\n'));
  return settings;
}

/**
 * `key=value,key2=value2` as the spec writes headers and resource attributes:
 * whitespace around entries trimmed, values (and keys) percent-decoded.
 */
function parseKeyValues(name: string, text: string, p: Problems, what: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const entry of text.split(',')) {
    if (entry.trim() === '') continue;
    const eq = entry.indexOf('=');
    const k = eq < 0 ? '' : decode(entry.slice(0, eq).trim());
    const v = eq < 0 ? undefined : decode(entry.slice(eq + 1).trim());
    if (k === undefined || k === '' || v === undefined) {
      p.add(name, text, `expected ${what}s as key=value,key2=value2 (percent-encode "," and "=" in values); cannot read "${entry.trim()}"`);
      continue;
    }
    out[k] = v;
  }
  return out;
}

function decode(s: string): string | undefined {
  try {
    return decodeURIComponent(s);
  } catch {
    return undefined;
  }
}

/** The export target as shown to a person (started log, live view). */
export function describeTargets(o: OtelSettings, prometheusAddress?: string): string {
  if (o.sdkDisabled) return 'none (OTEL_SDK_DISABLED=true)';
  const parts: string[] = [];
  const otlp = (t: OtlpTarget) => `${t.url} (${t.protocol})`;
  const both = o.tracesExporters.includes('otlp') && o.metricsExporters.includes('otlp');
  const base = (t: OtlpTarget) => (t.protocol === 'grpc' ? t.url : t.url.replace(new RegExp(`/v1/${t.signal}$`), ''));
  if (both && o.traces.protocol === o.metrics.protocol && base(o.traces) === base(o.metrics)) {
    // The usual case: one collector for both signals.
    parts.push(`${base(o.traces)} (${o.traces.protocol})`);
  } else {
    if (o.tracesExporters.includes('otlp')) parts.push(`traces ${otlp(o.traces)}`);
    if (o.metricsExporters.includes('otlp')) parts.push(`metrics ${otlp(o.metrics)}`);
  }
  if (o.tracesExporters.includes('console')) parts.push('traces console');
  if (o.metricsExporters.includes('console')) parts.push('metrics console');
  if (o.metricsExporters.includes('prometheus')) {
    parts.push(`prometheus ${prometheusAddress ?? (o.prometheus.host.includes(':') ? `[${o.prometheus.host}]` : o.prometheus.host) + ':' + o.prometheus.port}`);
  }
  return parts.length > 0 ? parts.join(', ') : 'none';
}
