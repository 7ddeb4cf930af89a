/**
 * `--help`, generated from the one schema (OPTIONS, GROUPS) and the OTel variable list: no
 * second list of settings to drift. Grouped, what a newcomer needs first; each value named
 * by what it is (HOST:PORT, MS, an enum's values); every line within HELP_WIDTH columns, the
 * width of a default terminal.
 */
import { z } from 'zod';
import { OTEL_VARIABLES } from './otel-env.js';
import { GROUPS, OPTIONS, type Group, type OptionKey } from './schema.js';

export const HELP_WIDTH = 80;
/** Where an option's description starts, under its flag. */
const DESCRIPTION_INDENT = 6;

const KEYS = Object.keys(OPTIONS) as OptionKey[];

/** `attemptHoldMs` → `--attempt-hold-ms`. */
export const flagName = (k: string) => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;

/** `text` in lines of at most `width` columns, each indented by `indent` (a word longer than a line keeps its own). */
function wrap(text: string, indent: number, width = HELP_WIDTH): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/).filter((w) => w !== '')) {
    if (line !== '' && indent + line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line === '' ? word : `${line} ${word}`;
  }
  if (line !== '') lines.push(line);
  return lines.map((l) => ' '.repeat(indent) + l);
}

/** What the value of a flag is, as the usage line names it; '' for a switch. */
function valueName(k: OptionKey): string {
  const o: { kind: string; value?: string; schema: z.ZodType } = OPTIONS[k];
  if (o.kind === 'bool') return '';
  if (o.value !== undefined) return o.value;
  let s: z.ZodType = o.schema;
  while (s instanceof z.ZodDefault || s instanceof z.ZodOptional) s = s.unwrap() as z.ZodType;
  if (s instanceof z.ZodEnum) return (s.options as string[]).join('|');
  return { ms: 'MS', bytes: 'BYTES', int: 'N', number: 'N', string: 'TEXT', list: 'LIST' }[o.kind] ?? 'VALUE';
}

/** The default as --help says it, with its unit in a readable size (300000 (5m)). */
function defaultText(k: OptionKey): string | undefined {
  const o: { kind: string; schema: z.ZodType; defaultText?: string } = OPTIONS[k];
  if (o.defaultText !== undefined) return o.defaultText;
  const r = o.schema.safeParse(undefined);
  const d: unknown = r.success ? r.data : undefined;
  if (d === undefined) return undefined;
  if (Array.isArray(d)) return d.length === 0 ? 'none' : d.join(',');
  if (typeof d === 'number' && o.kind === 'ms' && d >= 1000) {
    const [n, unit] = d % 3_600_000 === 0 ? [d / 3_600_000, 'h'] : d % 60_000 === 0 ? [d / 60_000, 'm'] : [d / 1000, 's'];
    return `${d} (${n}${unit})`;
  }
  if (typeof d === 'number' && o.kind === 'bytes' && d >= 1024 && d % 1024 === 0) {
    const [n, unit] = d % 1024 ** 2 === 0 ? [d / 1024 ** 2, 'MiB'] : [d / 1024, 'KiB'];
    return `${d} (${n}${unit})`;
  }
  return d === '' ? '""' : String(d);
}

function optionLines(k: OptionKey): string[] {
  const o = OPTIONS[k];
  const value = valueName(k);
  const d = defaultText(k);
  // A switch is off unless given: only a switch that is on by default says so.
  const showDefault = d !== undefined && !(o.kind === 'bool' && d === 'false');
  const text = [o.help, showDefault ? `Default ${d}.` : '', o.env.length ? `Env ${o.env.join(', ')}.` : ''].join(' ');
  return [`  ${flagName(k)}${value ? ` ${value}` : ''}`, ...wrap(text, DESCRIPTION_INDENT)];
}

/** `items` side by side, two spaces apart, in lines of at most HELP_WIDTH columns. */
function pack(items: readonly string[], indent = 2): string[] {
  const lines: string[] = [];
  let line = '';
  for (const item of items) {
    if (line !== '' && indent + line.length + 2 + item.length > HELP_WIDTH) {
      lines.push(line);
      line = item;
    } else line = line === '' ? item : `${line}  ${item}`;
  }
  if (line !== '') lines.push(line);
  return lines.map((l) => ' '.repeat(indent) + l);
}

const genericOf = (name: string) => name.replace(/_(TRACES|METRICS)_/, '_');
/** The OTel variables by family: a generic one with its _TRACES_ / _METRICS_ forms. */
function otelFamilies(): { v: (typeof OTEL_VARIABLES)[number]; forms: (typeof OTEL_VARIABLES)[number][] }[] {
  const names = new Set(OTEL_VARIABLES.map((v) => v.name));
  return OTEL_VARIABLES.filter((v) => genericOf(v.name) === v.name || !names.has(genericOf(v.name))).map((v) => ({
    v,
    forms: OTEL_VARIABLES.filter((f) => f.name !== v.name && genericOf(f.name) === v.name),
  }));
}

const OTEL_TITLE = 'OpenTelemetry environment variables';

function otelLines(): string[] {
  return [
    ...wrap('Empty means unset; a bad value stops the bridge. The _TRACES_ and _METRICS_ forms set one signal, over the generic variable.', 2),
    ...otelFamilies().flatMap(({ v, forms }) => {
      // Per-signal forms that say more than "per-signal X" add their sentence.
      const more = forms.filter((f) => !/^Per-signal /.test(f.help)).map((f) => f.help);
      return [`  ${v.name}`, ...forms.map((f) => `  ${f.name}`), ...wrap([v.help, ...more].join(' '), DESCRIPTION_INDENT)];
    }),
  ];
}
function commandLines(): string[] {
  const COLUMN = 17;
  const commands: [string, string][] = [
    ['(none)', 'Run the bridge. On a terminal it shows the live view (calls per Service.Api, latencies, errors, export health; q or Ctrl-C quits); with --no-ui, or when stdout is not a terminal, JSON logs on stderr.'],
    ['record FILE', 'Run the bridge and also append every received datagram to FILE (JSON lines: recv_ns, src, raw; SessionToken removed), up to --record-max-bytes.'],
    ['replay FILE', 'Feed a recording (or a test/fixtures capture) through decode, correlate, translate and export, keeping the recorded sources and gaps (divided by --speed; 0 = at once), then flush and exit.'],
    ['policy FILE', 'Print the least-privilege IAM policy of each application in a recording or capture (JSON, keyed by client); with --client ID exactly one policy document. Unmapped calls, left-out possible actions and AccessDenied explanations go to stderr. The running bridge serves the same as GET /policy[?client=ID].'],
  ];
  return commands.flatMap(([name, text]) => {
    const [first, ...rest] = wrap(text, COLUMN);
    return [`  ${name.padEnd(COLUMN - 2)}${first!.slice(COLUMN)}`, ...rest];
  });
}

/** What `--help TOPIC` shows: `overview` (plain --help), `all`, one settings group, or `otel`. */
export type HelpTopic = 'overview' | 'all' | Group | 'otel';
export const HELP_TOPICS: readonly HelpTopic[] = ['all', ...(Object.keys(GROUPS) as Group[]), 'otel'];

const groupTitle = (g: Group) => `${GROUPS[g].title} (--help ${g}):`;

function groupLines(g: Group, full: boolean): string[] {
  const keys = KEYS.filter((k) => OPTIONS[k].group === g);
  const intro = GROUPS[g].intro;
  if (!full) return ['', groupTitle(g), ...pack(keys.map((k) => `${flagName(k)}${valueName(k) ? ` ${valueName(k)}` : ''}`))];
  return ['', groupTitle(g), ...(intro ? wrap(intro, 2) : []), ...keys.flatMap(optionLines)];
}

/**
 * `--help`: usage, the commands, the settings a newcomer needs first in full and every other
 * group by its flags; `--help all` explains every setting and variable, `--help GROUP` one group.
 */
export function helpText(version: string, topic: HelpTopic = 'all'): string {
  const groups = Object.keys(GROUPS) as Group[];
  const otel = topic === 'overview' ? ['', `${OTEL_TITLE} (--help otel):`, ...pack(otelFamilies().map(({ v }) => v.name))] : ['', `${OTEL_TITLE}:`, ...otelLines()];
  if (topic === 'otel') return [...otel.slice(1), ''].join('\n');
  if (topic !== 'overview' && topic !== 'all') return [...groupLines(topic, true).slice(1), ''].join('\n');
  return [
    `aws-csm-bridge ${version}`,
    ...wrap('Receives AWS SDK Client-Side Monitoring (CSM) datagrams and exports them as OpenTelemetry traces and metrics over OTLP (HTTP or gRPC), or serves them to Prometheus.', 0),
    '',
    'Usage: aws-csm-bridge [--SETTING VALUE ...]',
    '       aws-csm-bridge record FILE [--SETTING VALUE ...]',
    '       aws-csm-bridge replay FILE [--speed N] [--SETTING VALUE ...]',
    '       aws-csm-bridge policy FILE [--client ID] [--fails-only]',
    '                                  [--include-possible]',
    `       aws-csm-bridge --help [all|${HELP_TOPICS.filter((t) => t !== 'all').join('|')}]`.length <= HELP_WIDTH
      ? `       aws-csm-bridge --help [all|${HELP_TOPICS.filter((t) => t !== 'all').join('|')}]`
      : '       aws-csm-bridge --help [all|GROUP]',
    '       aws-csm-bridge --version',
    '',
    'Commands:',
    ...commandLines(),
    '',
    'Settings:',
    ...wrap(
      'Flags > environment variables (a per-signal OTel variable > a generic one) > the config file > defaults. --config FILE (env AWS_CSM_BRIDGE_CONFIG) reads a YAML file whose keys are the flags in camelCase (--attempt-hold-ms: attemptHoldMs); see config/aws-csm-bridge.example.yaml. A switch alone means true, --no-SWITCH false. MS also takes a unit (5s, 2m), BYTES too (64KiB, 8MiB).',
      2,
    ),
    ...groups.flatMap((g) => groupLines(g, topic === 'all' || g === 'start')),
    ...otel,
    ...(topic === 'overview' ? ['', ...wrap('aws-csm-bridge --help all explains every setting and variable; --help GROUP one group.', 0)] : []),
    '',
  ].join('\n');
}
