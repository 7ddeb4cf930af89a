import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { formatHostPort, splitHostPort } from '../net/address.js';
import { bindPolicyError, httpBindPolicyError } from '../receive/source-filter.js';
import { ConfigError } from './error.js';
import { byPrecedence, OTEL_VARIABLES, resolveOtelEnv, type OtelSettings, type SettingLayer } from './otel-env.js';
import { configSchema, OPTIONS, type Config, type OptionKey } from './schema.js';

export { ConfigError };

/** `record FILE` / `replay FILE` / `policy FILE`; absent: run the bridge. */
export type Subcommand = { name: 'record' | 'replay' | 'policy'; file: string };

/** `otel`: the OTEL_* variables, resolved once (otel-env.ts); nothing else reads them. */
export type Command = { kind: 'help' } | { kind: 'version' } | { kind: 'run'; config: Config; otel: OtelSettings; subcommand?: Subcommand };

/** A value as given, where (for messages) and in which layer (for the precedence rule). */
type Source = { desc: string; raw: unknown; layer: 'flag' | 'env' | 'file' };
type Layer = Partial<Record<OptionKey, Source>>;

const KEYS = Object.keys(OPTIONS) as OptionKey[];
const flagName = (k: string) => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
const FLAGS = new Map(KEYS.map((k) => [flagName(k), k]));
/** Short spellings: `replay FILE --speed N`. */
const ALIASES = new Map<string, OptionKey>([
  ['--speed', 'replaySpeed'],
  ['--client', 'policyClient'],
  ['--fails-only', 'policyFailsOnly'],
  ['--include-possible', 'policyIncludePossible'],
]);
const SUBCOMMANDS = new Set(['record', 'replay', 'policy']);

/** Flags > environment (per-signal OTel variables > generic ones) > config file > defaults, for every setting. */
export function loadConfig(argv: readonly string[], env: NodeJS.ProcessEnv): Command {
  const { flags, configPath, command, subcommand } = parseArgv(argv);
  if (command) return { kind: command };
  const file = configPath ?? env['AWS_CSM_BRIDGE_CONFIG'];
  const merged: Layer = { ...(file ? fileLayer(file) : {}), ...envLayer(env), ...flags };
  const layerOf = (k: OptionKey): SettingLayer => merged[k]?.layer ?? 'default';
  const input: Record<string, unknown> = {};
  for (const [k, s] of Object.entries(merged)) input[k] = s.raw;
  const r = configSchema.safeParse(input);
  if (r.success) {
    const config = r.data;
    let otel: OtelSettings;
    try {
      otel = resolveOtelEnv(env, {
        otlpEndpoint: config.otlpEndpoint,
        otlpProtocol: config.otlpProtocol,
        from: { otlpEndpoint: layerOf('otlpEndpoint'), otlpProtocol: layerOf('otlpProtocol') },
      });
    } catch (e) {
      const lines = (e as Error).message.split('\n').map((l) => `  ${l}`);
      throw new ConfigError(`invalid OpenTelemetry environment:\n${lines.join('\n')}\nRun with --help to see every variable.`);
    }
    // OTEL_LOG_LEVEL is the generic variable of --log-level (AWS_CSM_BRIDGE_LOG_LEVEL its own).
    config.logLevel = byPrecedence({ value: config.logLevel, from: layerOf('logLevel') }, undefined, otel.logLevel);
    // Replay and policy open no listener; the bridge and record open them all.
    const refusal = subcommand?.name === 'replay' || subcommand?.name === 'policy' ? undefined : listenerRefusal(config, otel);
    if (refusal !== undefined) throw new ConfigError(refusal);
    return subcommand ? { kind: 'run', config, otel, subcommand } : { kind: 'run', config, otel };
  }
  const lines = r.error.issues.map((issue) => {
    const key = String(issue.path[0] ?? '');
    const src = merged[key as OptionKey];
    const got = src ? ` (${src.desc}: got ${JSON.stringify(src.raw)})` : '';
    return `  ${key}${got}: ${issue.message}`;
  });
  throw new ConfigError(`invalid configuration:\n${lines.join('\n')}\nRun with --help to see every setting.`);
}

/** Why the listeners this configuration opens break the bind policy (src/receive/source-filter.ts), or undefined. */
function listenerRefusal(config: Config, otel: OtelSettings): string | undefined {
  const prometheus = !otel.sdkDisabled && otel.metricsExporters.includes('prometheus');
  return (
    bindPolicyError(config.listen, config.allowSource, config.allowAnySource) ??
    httpBindPolicyError(
      [
        ...(config.admin === 'off' ? [] : [{ what: 'admin listener', host: splitHostPort(config.admin)?.host ?? config.admin, setting: '--admin' }]),
        ...(prometheus ? [{ what: 'Prometheus endpoint', host: otel.prometheus.host, setting: 'OTEL_EXPORTER_PROMETHEUS_HOST' }] : []),
      ],
      config.allowRemoteHttp,
    )
  );
}

function parseArgv(argv: readonly string[]): { flags: Layer; configPath?: string; command?: 'help' | 'version'; subcommand?: Subcommand } {
  const flags: Layer = {};
  let configPath: string | undefined;
  let subName: Subcommand['name'] | undefined;
  let subFile: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (arg === '--help' || arg === '-h') return { flags, command: 'help' };
    if (arg === '--version' || arg === '-v') return { flags, command: 'version' };
    if (!arg.startsWith('-') || arg === '-') {
      if (subName === undefined && SUBCOMMANDS.has(arg)) subName = arg as Subcommand['name'];
      else if (subName !== undefined && subFile === undefined) subFile = arg;
      else throw new ConfigError(`unexpected argument "${arg}". Run with --help to see the commands and every setting.`);
      continue;
    }
    // `--no-ui`: a switch set to false.
    const negated = arg.startsWith('--no-') ? FLAGS.get(`--${arg.slice(5)}`) : undefined;
    if (negated !== undefined && OPTIONS[negated].kind === 'bool') {
      flags[negated] = { desc: arg, raw: false, layer: 'flag' };
      continue;
    }
    const eq = arg.indexOf('=');
    const name = eq > 0 ? arg.slice(0, eq) : arg;
    const takeValue = (): string => {
      if (eq > 0) return arg.slice(eq + 1);
      const v = argv[++i];
      if (v === undefined) throw new ConfigError(`${name} needs a value. Run with --help to see every setting.`);
      return v;
    };
    if (name === '--config') {
      configPath = takeValue();
      continue;
    }
    const key = FLAGS.get(name) ?? ALIASES.get(name);
    if (!key) throw new ConfigError(`unknown argument "${arg}". Run with --help to see every setting.`);
    const o = OPTIONS[key];
    // A switch may stand alone: `--allow-any-source` means true.
    const next = argv[i + 1];
    const value = o.kind === 'bool' && eq < 0 && (next === undefined || next.startsWith('--')) ? 'true' : takeValue();
    const prev = flags[key];
    flags[key] =
      o.kind === 'list'
        ? // Repeatable, and a comma list as in the environment: --sample-keep errors,retries.
          { desc: name, raw: [...((prev?.raw as string[] | undefined) ?? []), ...(fromString('list', value) as string[])], layer: 'flag' }
        : { desc: name, raw: fromString(o.kind, value), layer: 'flag' };
  }
  if (subName !== undefined && subFile === undefined) {
    throw new ConfigError(`${subName} needs a FILE: aws-csm-bridge ${subName} FILE [--SETTING VALUE ...]. Run with --help.`);
  }
  const subcommand = subName !== undefined && subFile !== undefined ? { subcommand: { name: subName, file: subFile } } : {};
  return configPath === undefined ? { flags, ...subcommand } : { flags, configPath, ...subcommand };
}

function envLayer(env: NodeJS.ProcessEnv): Layer {
  const layer: Layer = {};
  for (const key of KEYS) {
    for (const name of OPTIONS[key].env) {
      const v = env[name];
      if (v !== undefined && v !== '') {
        layer[key] = { desc: `env ${name}`, raw: fromString(OPTIONS[key].kind, v), layer: 'env' };
        break;
      }
    }
  }
  // The SDKs' own variables, so one export serves the app and the bridge.
  const host = env['AWS_CSM_HOST'];
  const port = env['AWS_CSM_PORT'];
  if (host || port) {
    layer.listen = { desc: 'env AWS_CSM_HOST/AWS_CSM_PORT', raw: [formatHostPort(host || '127.0.0.1', port || '31000')], layer: 'env' };
  }
  return layer;
}

function fileLayer(path: string): Layer {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError(`cannot read config file ${path}: ${(e as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    throw new ConfigError(`config file ${path} is not valid YAML: ${(e as Error).message}`);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new ConfigError(`config file ${path} must be a mapping of setting: value`);
  const layer: Layer = {};
  for (const [k, v] of Object.entries(doc)) {
    if (!(k in OPTIONS)) {
      throw new ConfigError(`config file ${path}: unknown key "${k}". Allowed keys: ${KEYS.join(', ')}`);
    }
    const key = k as OptionKey;
    // A single address is accepted where a list is expected.
    layer[key] = { desc: `file ${path}`, raw: OPTIONS[key].kind === 'list' && typeof v === 'string' ? [v] : v, layer: 'file' };
  }
  return layer;
}

function fromString(kind: 'string' | 'int' | 'number' | 'bool' | 'list', v: string): unknown {
  switch (kind) {
    case 'int':
      return /^-?\d+$/.test(v.trim()) ? Number(v.trim()) : v;
    case 'number':
      return /^-?(\d+\.?\d*|\.\d+)$/.test(v.trim()) ? Number(v.trim()) : v;
    case 'bool':
      return /^(1|true|yes|on)$/i.test(v) ? true : /^(0|false|no|off)$/i.test(v) ? false : v;
    case 'list':
      return v.split(',').map((s) => s.trim()).filter((s) => s !== '');
    case 'string':
      return v;
  }
}

export function helpText(version: string): string {
  const rows = KEYS.map((k) => {
    const o: { help: string; env: readonly string[]; schema: { parse(v: unknown): unknown }; defaultText?: string } = OPTIONS[k];
    let def: unknown;
    try {
      def = o.schema.parse(undefined);
    } catch {
      def = undefined;
    }
    const shown = o.defaultText ?? (def === undefined ? undefined : Array.isArray(def) ? def.join(',') : String(def));
    const meta = [shown === undefined ? undefined : `default ${shown}`, o.env.length ? `env ${o.env.join(', ')}` : undefined, `file key ${k}`]
      .filter(Boolean)
      .join('; ');
    return `  ${flagName(k)} VALUE\n      ${o.help}\n      (${meta})`;
  });
  return `aws-csm-bridge ${version}
Receives AWS SDK Client-Side Monitoring (CSM) datagrams and exports them as
OpenTelemetry traces and metrics over OTLP (HTTP or gRPC) or a Prometheus endpoint.

Usage: aws-csm-bridge [--config FILE] [--SETTING VALUE ...]
       aws-csm-bridge record FILE [--SETTING VALUE ...]
       aws-csm-bridge replay FILE [--speed N] [--SETTING VALUE ...]
       aws-csm-bridge policy FILE [--client ID] [--fails-only] [--include-possible]

Commands:
  (none)         Run the bridge. On a terminal it shows the live view (calls per
                 Service.Api, latencies, errors, export health; q or Ctrl-C quits);
                 with --no-ui, or when stdout is not a terminal, JSON logs on stderr.
  record FILE    Run the bridge and also append every received datagram to FILE
                 (JSON lines: recv_ns, src, raw; SessionToken removed), up to
                 --record-max-bytes.
  replay FILE    Feed a recording (or a test/fixtures capture) through decode,
                 correlate, translate and export, keeping the recorded sources and
                 gaps (divided by --speed; 0 = at once), then flush and exit.
  policy FILE    Print the least-privilege IAM policy of each application in a
                 recording or capture (JSON, keyed by client); with --client ID
                 exactly one policy document. Unmapped calls, left-out possible
                 actions and AccessDenied explanations go to stderr. The running
                 bridge serves the same as GET /policy[?client=ID].

Turn CSM on in an application: AWS_CSM_ENABLED=true (and AWS_CSM_PORT if not 31000).
Precedence: flags > environment > config file (YAML, same keys) > defaults.
The standard OpenTelemetry variables (below) are honoured; a bad value stops
the bridge with a message naming it.

Options:
  --config FILE
      YAML config file (env AWS_CSM_BRIDGE_CONFIG); see config/aws-csm-bridge.example.yaml.
${rows.join('\n')}
  --help, --version

OpenTelemetry environment variables (empty = unset):
${OTEL_VARIABLES.map((v) => `  ${v.name}\n      ${v.help}`).join('\n')}
`;
}
