/**
 * Pure rendering of the live view: model + counters → screen lines, each cut
 * to the terminal width. Everything that came off the wire (names, error
 * types, messages, client ids) goes through `clean`, so a datagram cannot put
 * terminal escapes on the screen.
 */
import type { Stats } from '../stats.js';
import type { ViewModel } from './model.js';

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
const clock = (ms: number) => new Date(ms).toISOString().slice(11, 19);
const num = (n: number | undefined) => (n === undefined ? '-' : n >= 100 ? String(Math.round(n)) : n >= 10 ? n.toFixed(1) : n.toFixed(2));
const rate = (n: number) => (n >= 100 ? String(Math.round(n)) : n.toFixed(1));

export function render(model: ViewModel, stats: Stats, h: Header, width: number, height: number, nowMs: number): string[] {
  const W = Math.max(40, width);
  const out: string[] = [];
  const line = (s: string) => out.push(s.length > W ? s.slice(0, W) : s);

  const eh = exportHealth(stats);
  line(`aws-csm-bridge ${h.version} · live view   ${clock(nowMs)} UTC   q or Ctrl-C to quit${h.policyKey ? '   p: IAM policy' : ''}`);
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
  for (const e of h.extra) line(e);
  line('');

  // Budget: logs and failed calls get what they need up to a cap; the table gets the rest (at least 3 rows).
  const logLines = model.logs.length ? model.logs.length + 1 : 0;
  const failedLines = model.failed.length ? Math.min(model.failed.length, 8) + 2 : 0;
  const rowsRoom = Math.max(3, height - out.length - 2 - failedLines - logLines);

  const nameW = Math.max(16, Math.min(36, Math.max(0, ...[...model.rows.keys()].map((k) => k.length + 1))));
  line(
    `${pad('SERVICE.API', nameW)}${lpad('CALLS', 8)}${lpad('CALLS/S', 9)}${lpad('P50 ms', 9)}${lpad('P95 ms', 9)}${lpad('P99 ms', 9)}${lpad('ERR%', 7)}${lpad('RETRIES', 9)}${lpad('THROTTLES', 11)}  LAST ERROR`,
  );
  const rows = model.sortedRows();
  const shown = rows.length > rowsRoom ? rows.slice(0, rowsRoom - 1) : rows;
  for (const r of shown) {
    const errPct = r.calls ? ((100 * r.errors) / r.calls).toFixed(1) : '0.0';
    line(
      `${pad(clean(r.name), nameW)}${lpad(String(r.calls), 8)}${lpad(rate(r.rate.rate(nowMs)), 9)}${lpad(num(r.latency.quantile(0.5)), 9)}${lpad(num(r.latency.quantile(0.95)), 9)}${lpad(num(r.latency.quantile(0.99)), 9)}${lpad(errPct, 7)}${lpad(String(r.retries), 9)}${lpad(String(r.throttles), 11)}  ${r.lastError ? clean(r.lastError.text) : ''}`,
    );
  }
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
  return out.slice(0, Math.max(1, height));
}
