import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { formatHostPort, splitHostPort } from '../net/address.js';
import { bindPolicyError, httpBindPolicyError } from '../receive/source-filter.js';
import { ConfigError } from './error.js';
import { byPrecedence, resolveOtelEnv, type OtelSettings, type SettingLayer } from './otel-env.js';
import { configSchema, OPTIONS, type Config, type Kind, type OptionKey } from './schema.js';
import { flagName, HELP_TOPICS, type HelpTopic } from './help.js';

export { ConfigError };
export { helpText } from './help.js';

/** `record FILE` / `replay FILE` / `policy FILE`; absent: run the bridge. */
export type Subcommand = { name: 'record' | 'replay' | 'policy'; file: string };

/** `otel`: the OTEL_* variables, resolved once (otel-env.ts); nothing else reads them. */
export type Command = { kind: 'help'; topic: HelpTopic } | { kind: 'version' } | { kind: 'run'; config: Config; otel: OtelSettings; subcommand?: Subcommand };

/** A value as given, where (for messages) and in which layer (for the precedence rule). */
type Source = { desc: string; raw: unknown; layer: Exclude<SettingLayer, 'default'> };
type Layer = Partial<Record<OptionKey, Source>>;

const KEYS = Object.keys(OPTIONS) as OptionKey[];
const FLAGS = new Map(KEYS.map((k) => [flagName(k), k]));
/** Short spellings: `replay FILE --speed N`. */
const ALIASES = new Map<string, OptionKey>([
  ['--speed', 'replaySpeed'],
  ['--client', 'policyClient'],
  ['--fails-only', 'policyFailsOnly'],
  ['--include-possible', 'policyIncludePossible'],
]);
const SUBCOMMANDS = new Set(['record', 'replay', 'policy']);
/** Every flag a typo may have meant. */
const FLAG_NAMES = [
  ...FLAGS.keys(),
  ...ALIASES.keys(),
  ...KEYS.filter((k) => OPTIONS[k].kind === 'bool').map((k) => `--no-${flagName(k).slice(2)}`),
  '--config',
  '--help',
  '--version',
];

/** Flags > environment (per-signal OTel variables > generic ones) > config file > defaults, for every setting. */
export function loadConfig(argv: readonly string[], env: NodeJS.ProcessEnv): Command {
  const { flags, configPath, command, subcommand } = parseArgv(argv);
  if (command) return command;
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
    // A value of the wrong type: say what the setting takes, not zod's "expected number, received string".
    const message = issue.code === 'invalid_type' && key in OPTIONS ? `takes ${takes(key as OptionKey)}` : issue.message;
    return `  ${key}${got}: ${message}`;
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
        ...(config.appOtlpHttp !== undefined ? [{ what: 'app span listener', host: splitHostPort(config.appOtlpHttp)?.host ?? config.appOtlpHttp, setting: '--app-otlp-http' }] : []),
        ...(config.appOtlpGrpc !== undefined ? [{ what: 'app span listener', host: splitHostPort(config.appOtlpGrpc)?.host ?? config.appOtlpGrpc, setting: '--app-otlp-grpc' }] : []),
        ...(prometheus ? [{ what: 'Prometheus endpoint', host: otel.prometheus.host, setting: 'OTEL_EXPORTER_PROMETHEUS_HOST' }] : []),
      ],
      config.allowRemoteHttp,
    )
  );
}

function parseArgv(argv: readonly string[]): { flags: Layer; configPath?: string; command?: Command; subcommand?: Subcommand } {
  const flags: Layer = {};
  let configPath: string | undefined;
  let subName: Subcommand['name'] | undefined;
  let subFile: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (arg === '--help' || arg === '-h' || arg.startsWith('--help=')) {
      // --help [TOPIC] / --help=TOPIC: a group, all, or otel; alone the overview.
      const next = arg.startsWith('--help=') ? arg.slice(7) : argv[i + 1];
      const topic = next === undefined || next.startsWith('-') ? 'overview' : next;
      if (topic !== 'overview' && !HELP_TOPICS.includes(topic as HelpTopic)) {
        throw new ConfigError(`no help topic "${topic}".${didYouMean(topic, HELP_TOPICS)} The topics: ${HELP_TOPICS.join(', ')}.`);
      }
      return { flags, command: { kind: 'help', topic: topic as HelpTopic } };
    }
    if (arg === '--version' || arg === '-v') return { flags, command: { kind: 'version' } };
    if (!arg.startsWith('-') || arg === '-') {
      if (subName === undefined && SUBCOMMANDS.has(arg)) subName = arg as Subcommand['name'];
      else if (subName !== undefined && subFile === undefined) subFile = arg;
      else throw new ConfigError(`unexpected argument "${arg}".${didYouMean(arg, [...SUBCOMMANDS])} Run with --help to see the commands and every setting.`);
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
    if (!key) throw new ConfigError(`unknown argument "${arg}".${didYouMean(name, FLAG_NAMES)} Run with --help to see every setting.`);
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

/** The bridge's own environment variables begin with this; any other of them is refused (envLayer). */
const ENV_PREFIX = 'AWS_CSM_BRIDGE_';

/** Every AWS_CSM_BRIDGE_* variable the bridge reads (a setting's, or the config file's path). */
const ENV_NAMES: readonly string[] = ['AWS_CSM_BRIDGE_CONFIG', ...KEYS.flatMap((k) => OPTIONS[k].env.filter((n) => n.startsWith(ENV_PREFIX)))];

function envLayer(env: NodeJS.ProcessEnv): Layer {
  // A mistyped variable would otherwise be ignored without a word, as an unknown flag or key is not.
  for (const name of Object.keys(env)) {
    if (name.startsWith(ENV_PREFIX) && !ENV_NAMES.includes(name)) {
      throw new ConfigError(`unknown environment variable ${name}.${didYouMean(name, ENV_NAMES)} Run with --help to see every setting and its variable.`);
    }
  }
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
    // yaml is loaded only for a config file: 1-2 MB a bridge without one does not keep (BENCHMARKS.md, "Idle memory").
    const { parse } = createRequire(import.meta.url)('yaml') as typeof import('yaml');
    doc = parse(text);
  } catch (e) {
    throw new ConfigError(`config file ${path} is not valid YAML: ${(e as Error).message}`);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new ConfigError(`config file ${path} must be a mapping of setting: value`);
  const layer: Layer = {};
  for (const [k, v] of Object.entries(doc)) {
    if (!(k in OPTIONS)) {
      throw new ConfigError(`config file ${path}: unknown key "${k}".${didYouMean(k, KEYS)} The keys are the flags' names in camelCase (--attempt-hold-ms: attemptHoldMs); --help lists them.`);
    }
    const key = k as OptionKey;
    const kind = OPTIONS[key].kind;
    // A single address is accepted where a list is expected; a quoted number or one with a unit ("5s") where a number is.
    const raw = typeof v !== 'string' ? v : kind === 'list' ? [v] : fromString(kind, v);
    layer[key] = { desc: `file ${path}`, raw, layer: 'file' };
  }
  return layer;
}

/** Units a duration in milliseconds (`ms` kind) or a size in bytes (`bytes` kind) may be written with. */
const UNITS: Record<'ms' | 'bytes', Record<string, number>> = {
  ms: { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 },
  bytes: { b: 1, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3 },
};

/** What a setting takes, for the message when a value is not one. */
function takes(k: OptionKey): string {
  const o: { kind: Kind; schema: { safeParse(v: unknown): { success: boolean; data?: unknown } } } = OPTIONS[k];
  const d = o.schema.safeParse(undefined);
  const example = d.success && typeof d.data === 'number' ? d.data : 100;
  switch (o.kind) {
    case 'int':
      return `a whole number, e.g. ${example}`;
    case 'ms':
      return 'milliseconds as a whole number, e.g. 5000, or with a unit: 5s, 2m, 1h, 250ms';
    case 'bytes':
      return 'bytes as a whole number, e.g. 65536, or with a unit: 64KiB, 8MiB, 1GiB';
    case 'number':
      return `a number, e.g. ${example}`;
    case 'bool':
      return 'true or false';
    case 'list':
      return 'a list (comma-separated, or the flag repeated)';
    case 'string':
      return 'text';
  }
}

/** A flag's or variable's text as the kind's value; left as text when it is not one (the schema then says what is wrong). */
function fromString(kind: Kind, v: string): unknown {
  const t = v.trim();
  switch (kind) {
    case 'int':
      return /^-?\d+$/.test(t) ? Number(t) : v;
    case 'ms':
    case 'bytes': {
      if (/^-?\d+$/.test(t)) return Number(t);
      const m = /^(\d+(?:\.\d+)?)\s*([a-z]+)$/i.exec(t);
      const unit = m ? UNITS[kind][m[2]!.toLowerCase()] : undefined;
      // 1.5s is 1500; 1.0001s is not a whole number of milliseconds and stays text (refused).
      const n = m && unit !== undefined ? Number(m[1]) * unit : NaN;
      return Number.isInteger(n) ? n : v;
    }
    case 'number':
      return /^-?(\d+\.?\d*|\.\d+)$/.test(t) ? Number(t) : v;
    case 'bool':
      return /^(1|true|yes|on)$/i.test(t) ? true : /^(0|false|no|off)$/i.test(t) ? false : v;
    case 'list':
      return v.split(',').map((s) => s.trim()).filter((s) => s !== '');
    case 'string':
      return v;
  }
}

/** Typos worth a suggestion: at most this many edits, and fewer than a third of the word. */
const MAX_SUGGESTION_EDITS = 3;

/** ` Did you mean X?` for the nearest of `candidates` to a mistyped `word`, or '' when none is near. */
function didYouMean(word: string, candidates: readonly string[]): string {
  // Compared without case and separators, so --attemptHoldMs finds --attempt-hold-ms and attempt-hold-ms finds attemptHoldMs.
  const norm = (s: string) => s.toLowerCase().replace(/[-_]/g, '');
  const w = norm(word);
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = editDistance(w, norm(c));
    if (d < bestD) [best, bestD] = [c, d];
  }
  const limit = Math.min(MAX_SUGGESTION_EDITS, Math.floor(w.replace(/^-+/, '').length / 3));
  return best !== undefined && bestD <= limit ? ` Did you mean ${best}?` : '';
}

/** Levenshtein distance, adjacent swaps counting one edit (the optimal string alignment distance). */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1);
    }
  }
  return d[a.length]![b.length]!;
}
