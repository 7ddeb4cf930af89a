/**
 * Pure rendering of the live view: model + counters → screen lines, each cut
 * to the terminal width. Everything that came off the wire (names, error
 * types, messages, client ids) goes through `clean`, so a datagram cannot put
 * terminal escapes on the screen.
 *
 * The table fits the terminal's width (80 columns and up): columns are added in
 * the order of their usefulness (KEEP_ORDER) while they fit, so as the width
 * shrinks the least useful go first; the keys are on the screen's last line.
 */
import type { Stats } from '../stats.js';
import type { Row, ViewModel } from './model.js';

export interface Header {
  version: string;
  listen: string[];
  admin?: string;
  target: string;
  /** Extra status lines (recording, replay progress). */
  extra: string[];
  /** Rates measured by the view from successive counter samples. */
  datagramsPerSec: number;
  spansPerSec: number;
  /** The p key shows the IAM policy pane. */
  policyKey?: boolean;
}

export type ExportHealth = 'ok' | 'failing' | 'waiting';

/** Per signal: failing when its newest outcome is a failure; ok when it is a success. */
export function exportHealth(stats: Stats): { health: ExportHealth; lastError?: { signal: string; at: number; message: string } } {
  let health: ExportHealth = 'waiting';
  let lastError: { signal: string; at: number; message: string } | undefined;
  for (const signal of ['traces', 'metrics'] as const) {
    const okAt = stats.lastExportOkAt[signal];
    const err = stats.lastExportError[signal];
    if (err && (!lastError || err.at > lastError.at)) lastError = { signal, at: err.at, message: err.message };
    if (err && (okAt === null || err.at >= okAt)) health = 'failing';
    else if (okAt !== null && health === 'waiting') health = 'ok';
  }
  return lastError ? { health, lastError } : { health };
}

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
/** Removes control characters (ESC, CR, LF, C1, bidi overrides) so wire text cannot drive the terminal. */
export function clean(s: string): string {
  return s.replace(CONTROL, ' ');
}

const pad = (s: string, n: number) => (s.length >= n ? s.slice(0, n) : s + ' '.repeat(n - s.length));
const lpad = (s: string, n: number) => (s.length >= n ? s.slice(0, n) : ' '.repeat(n - s.length) + s);
/** A number is never cut: a wider value shifts its row rather than show other digits. */
const lpadWhole = (s: string, n: number) => (s.length >= n ? ` ${s}` : ' '.repeat(n - s.length) + s);
const clock = (ms: number) => new Date(ms).toISOString().slice(11, 19);
const num = (n: number | undefined) => (n === undefined ? '-' : n >= 100 ? String(Math.round(n)) : n >= 10 ? n.toFixed(1) : n.toFixed(2));
const rate = (n: number) => (n >= 100 ? String(Math.round(n)) : n.toFixed(1));

export function render(model: ViewModel, stats: Stats, h: Header, width: number, height: number, nowMs: number): string[] {
  const W = Math.max(40, width);
  const out: string[] = [];
  const line = (s: string) => out.push(s.length > W ? s.slice(0, W) : s);

  const eh = exportHealth(stats);
  line(`aws-csm-bridge ${h.version} · live view   ${clock(nowMs)} UTC`);
  line(`listen   udp ${h.listen.join(', ')}   admin ${h.admin ?? 'off'}`);
  // /stats's words: what got through, what waits, what is lost; failed attempts are retried (what they tried waits in queued).
  const attempts = stats.spans.failedAttempts + stats.metricExports.failedAttempts;
  line(`export   ${clean(h.target)}   ${eh.health.toUpperCase()}${attempts > 0 ? `   ${attempts} failed attempts, retried` : ''}`);
  const sp = stats.spans;
  line(`         spans ${sp.exported} exported, ${sp.queued} queued, ${sp.lost} lost`);
  const me = stats.metricExports;
  if (me.created + me.queued + stats.spool.recoveredMetricExports > 0) line(`         metric exports ${me.succeeded} exported, ${me.queued} queued, ${me.lost} lost`);
  if (eh.lastError) line(`         last export error ${clock(eh.lastError.at)} ${eh.lastError.signal}: ${clean(eh.lastError.message)}`);
  const rejected = Object.values(stats.datagrams.rejected).reduce((a, b) => a + b, 0);
  line(
    `intake   ${rate(h.datagramsPerSec)} datagrams/s (${stats.datagrams.received} received, ${rejected} rejected)   ${rate(h.spansPerSec)} spans/s   calls ${model.calls}   orphans ${model.orphans}   pending ${stats.correlation.pendingAttempts} attempts, ${stats.correlation.pendingCalls} calls`,
  );
  // The join with applications' traces (--app-otlp-http/-grpc): shown once it has done anything.
  const j = stats.join;
  if (j.joined + j.waiting + j.expiredUnjoined + stats.appSpans.requests > 0) {
    line(`join     ${j.joined} calls joined into app traces, ${j.waiting} waiting, ${j.expiredUnjoined} not joined in time`);
  }
  for (const e of h.extra) line(e);
  line('');

  // Budget: logs and failed calls get what they need up to a cap; the table gets the rest (at
  // least 3 rows), the keys the last line.
  const logLines = model.logs.length ? model.logs.length + 1 : 0;
  const failedLines = model.failed.length ? Math.min(model.failed.length, 8) + 2 : 0;
  const rowsRoom = Math.max(3, height - out.length - 2 - failedLines - logLines - 1);

  const rows = model.sortedRows();
  const shown = rows.length > rowsRoom ? rows.slice(0, rowsRoom - 1) : rows;
  for (const l of table(shown, [...model.rows.keys()], W, nowMs)) line(l);
  if (rows.length > shown.length) line(`… ${rows.length - shown.length} more rows`);
  if (rows.length === 0) line('(no calls yet: set AWS_CSM_ENABLED=true and AWS_CSM_PORT in the application\'s environment)');

  if (model.failed.length) {
    line('');
    line('RECENT FAILED CALLS (newest first)');
    const room = Math.max(1, height - out.length - logLines);
    for (const f of model.failed.slice(-Math.min(8, room)).reverse()) {
      const status = f.status === undefined ? '' : ` ${f.status}`;
      const type = f.errorType === String(f.status) ? '' : ` ${clean(f.errorType)}`;
      const attempts = `${f.attempts} attempt${f.attempts === 1 ? '' : 's'}`;
      const client = f.clientId ? ` [${clean(f.clientId)}]` : '';
      line(`${clock(f.at)}  ${clean(f.name)}${client}${status}${type}  ${attempts}  ${f.latencyMs} ms  ${clean(f.message)}`);
    }
  }
  if (model.logs.length) {
    line('LOG (newest last)');
    for (const l of model.logs) line(`${clock(l.at)} ${l.level.padEnd(5)} ${clean(l.text)}`);
  }
  return withFooter(out, `q quit${h.policyKey ? '   p IAM policy' : ''}`, W, height);
}

/** `body` cut or padded to height - 1 lines, then the keys on the last line. */
export function withFooter(body: string[], keys: string, width: number, height: number): string[] {
  const room = Math.max(0, height - 1);
  const lines = body.slice(0, room);
  while (lines.length < room) lines.push('');
  const footer = `keys: ${keys}`;
  lines.push(footer.length > width ? footer.slice(0, width) : footer);
  return lines;
}

/** A numeric column of the table: its title, width (title and value right-aligned) and cell. */
interface Column {
  title: string;
  width: number;
  cell: (r: Row, nowMs: number) => string;
}

const COLUMNS = {
  calls: { title: 'CALLS', width: 8, cell: (r) => String(r.calls) },
  rate: { title: 'CALLS/S', width: 8, cell: (r, now) => rate(r.rate.rate(now)) },
  p50: { title: 'P50 ms', width: 8, cell: (r) => num(r.latency.quantile(0.5)) },
  p95: { title: 'P95 ms', width: 8, cell: (r) => num(r.latency.quantile(0.95)) },
  p99: { title: 'P99 ms', width: 8, cell: (r) => num(r.latency.quantile(0.99)) },
  errPct: { title: 'ERR%', width: 7, cell: (r) => (r.calls ? ((100 * r.errors) / r.calls).toFixed(1) : '0.0') },
  retries: { title: 'RETRIES', width: 8, cell: (r) => String(r.retries) },
  throttles: { title: 'THROTTLES', width: 10, cell: (r) => String(r.throttles) },
} satisfies Record<string, Column>;
type ColumnKey = keyof typeof COLUMNS | 'lastError';

/** Left to right on the screen. */
const SCREEN_ORDER: readonly ColumnKey[] = ['calls', 'rate', 'p50', 'p95', 'p99', 'errPct', 'retries', 'throttles', 'lastError'];
/**
 * Most useful first: the table takes columns in this order while they fit (the name always). A
 * failing call's error, retries and a tail latency say what is wrong; the rate, the median and
 * P99 are the first to go (the intake line has the rates, P95 stands for the tail).
 */
export const KEEP_ORDER: readonly ColumnKey[] = ['calls', 'errPct', 'lastError', 'retries', 'p95', 'throttles', 'rate', 'p50', 'p99'];
/** The LAST ERROR column's least width (it takes what is left); the failed calls below show errors whole. */
const LAST_ERROR_MIN = 12;
const LAST_ERROR_GAP = 2;
const NAME_MIN = 16;
const NAME_MAX = 36;

/** The header and one line per row, with the columns that fit `width`. */
export function table(rows: readonly Row[], names: readonly string[], width: number, nowMs: number): string[] {
  const nameW = Math.max(NAME_MIN, Math.min(NAME_MAX, Math.max(0, ...names.map((k) => k.length + 1))));
  const chosen = new Set<ColumnKey>();
  let used = nameW;
  for (const key of KEEP_ORDER) {
    const w = key === 'lastError' ? LAST_ERROR_GAP + LAST_ERROR_MIN : COLUMNS[key].width;
    if (used + w > width) break;
    chosen.add(key);
    used += w;
  }
  const columns = SCREEN_ORDER.filter((k) => chosen.has(k));
  const numeric = columns.filter((k): k is keyof typeof COLUMNS => k !== 'lastError').map((k) => COLUMNS[k]);
  const error = chosen.has('lastError') ? ' '.repeat(LAST_ERROR_GAP) : undefined;
  const head = `${pad('SERVICE.API', nameW)}${numeric.map((c) => lpad(c.title, c.width)).join('')}${error !== undefined ? `${error}LAST ERROR` : ''}`;
  return [
    head,
    ...rows.map(
      (r) =>
        `${pad(clean(r.name), nameW)}${numeric.map((c) => lpadWhole(c.cell(r, nowMs), c.width)).join('')}${error !== undefined ? `${error}${r.lastError ? clean(r.lastError.text) : ''}` : ''}`,
    ),
  ];
}
