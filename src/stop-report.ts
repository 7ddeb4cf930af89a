/**
 * How long the final flush may wait, and what the stop tells a person at a terminal.
 *
 * A request to an OTLP endpoint that refuses connections is retried inside the sender for its
 * whole timeout (10 s), so a stop that waits for the shutdown timeout while no collector answers
 * keeps a user at a terminal waiting 9 s for nothing (the Quick start's default situation). When
 * the endpoint is not answering, the flush gets UNANSWERED_FLUSH_MS: what a disk spool holds stays
 * there for the next start; what was only in memory is lost, counted, and said.
 *
 * On a terminal the stop is told in human lines (this file); the JSON records (with the 2.5 KB
 * stats) are for logs, so they are written as today when stderr is not a terminal. Pure: stats
 * and clock in, lines out.
 */
import type { OtelSettings } from './config/otel-env.js';
import type { Stats } from './stats.js';
import { clean, exportHealth } from './ui/render.js';

/** The final flush's bound when the OTLP endpoint never answered or its newest export failed. */
export const UNANSWERED_FLUSH_MS = 1_000;
/** The export spool stops this long (or a tenth of the timeout) before the hard deadline, so the bridge can still say what it could not deliver. */
const SAY_WHAT_IS_LEFT_MS = 1_000;

/** answering: the newest export outcome is a success; otherwise why the flush is cut short. */
export type EndpointState = 'answering' | 'never answered' | 'is not answering';

export interface FlushPlan {
  /** When the export spools stop trying (epoch ms). */
  deadlineAt: number;
  endpoint: EndpointState;
}

export function endpointState(stats: Stats): EndpointState {
  if (exportHealth(stats).health === 'ok') return 'answering';
  return stats.lastExportOkAt.traces === null && stats.lastExportOkAt.metrics === null ? 'never answered' : 'is not answering';
}

/** The spools' deadline: the shutdown timeout less a margin, or UNANSWERED_FLUSH_MS when the endpoint is not answering. */
export function flushPlan(stats: Stats, now: number, shutdownTimeoutMs: number): FlushPlan {
  const endpoint = endpointState(stats);
  const full = now + shutdownTimeoutMs - Math.min(SAY_WHAT_IS_LEFT_MS, Math.floor(shutdownTimeoutMs / 10));
  return { deadlineAt: endpoint === 'answering' ? full : Math.min(full, now + UNANSWERED_FLUSH_MS), endpoint };
}

/** Where OTLP goes, for the human lines (the base URL, as the live view shows it); undefined without an OTLP exporter. */
export function collectorOf(otel: OtelSettings): string | undefined {
  if (otel.sdkDisabled) return undefined;
  const t = otel.tracesExporters.includes('otlp') ? otel.traces : otel.metricsExporters.includes('otlp') ? otel.metrics : undefined;
  return t && t.url.replace(new RegExp(`/v1/${t.signal}$`), '');
}

const count = (n: number) => n.toLocaleString('en-US');
const plural = (n: number, one: string, many: string) => `${count(n)} ${n === 1 ? one : many}`;
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** Not delivered and not on disk: refused, dropped, lost at exit, or still only in memory. */
function undelivered(s: Stats): { spans: number; metricExports: number } {
  const sp = s.spool;
  return {
    spans: s.spans.failed + s.spans.dropped + Math.max(0, sp.queuedSpans - sp.onDiskSpans),
    metricExports: s.metricExports.failed + sp.droppedMetricExports + sp.lostMetricExports + Math.max(0, sp.queuedMetricExports - sp.onDiskMetricExports),
  };
}

function both(spans: number, metricExports: number): string {
  if (metricExports === 0) return plural(spans, 'span', 'spans');
  return `${plural(spans, 'span', 'spans')} and ${plural(metricExports, 'metric export', 'metric exports')}`;
}

function why(endpoint: EndpointState, collector: string | undefined): string {
  if (!collector || endpoint === 'answering') return '';
  return ` (the collector at ${collector} ${endpoint})`;
}

/** The first signal's line (within 80 columns): how long the flush may take, and that a second Ctrl-C quits at once. */
export function stoppingLine(plan: FlushPlan, now: number, collector: string | undefined): string {
  const within = `stopping within ${seconds(Math.max(0, plan.deadlineAt - now))}`;
  const flush = !collector ? 'stopping' : plan.endpoint === 'answering' ? `${within} (sending what waits)` : `${within} (the collector ${plan.endpoint})`;
  return `${flush}; Ctrl-C again quits now`;
}

/** After the flush: what was exported, what the spool directory keeps, what is lost, and why (the endpoint as it is now). */
export function stoppedLine(s: Stats, tookMs: number, collector: string | undefined, spoolDir: string | undefined): string {
  const lost = undelivered(s);
  const kept = { spans: s.spool.onDiskSpans, metricExports: s.spool.onDiskMetricExports };
  const parts = [`${plural(s.spans.exported, 'span', 'spans')} exported`];
  if (kept.spans + kept.metricExports > 0) parts.push(`${both(kept.spans, kept.metricExports)} kept in ${spoolDir ?? 'the spool directory'} for the next start`);
  if (lost.spans + lost.metricExports > 0) parts.push(`${both(lost.spans, lost.metricExports)} not delivered`);
  const troubled = kept.spans + kept.metricExports + lost.spans + lost.metricExports > 0;
  const lostAtExit = s.spool.lostSpans + s.spool.lostMetricExports > 0;
  const hint = lostAtExit && !spoolDir ? ' — use --spool-dir to keep them' : '';
  return `stopped in ${seconds(tookMs)}: ${parts.join(', ')}${troubled ? why(endpointState(s), collector) : ''}${hint}`;
}

/** The second signal's line: what the exit leaves undelivered. */
export function quitLine(s: Stats): string {
  return leftLine('quit at once', s);
}

/** The hard deadline passed (a stage hung): the exit does not wait any longer. */
export function timedOutLine(s: Stats, shutdownTimeoutMs: number): string {
  return leftLine(`stopped after ${seconds(shutdownTimeoutMs)} without finishing the flush`, s);
}

function leftLine(what: string, s: Stats): string {
  const lost = undelivered(s);
  const kept = s.spool.onDiskSpans + s.spool.onDiskMetricExports;
  const left = lost.spans + lost.metricExports > 0 ? `${both(lost.spans, lost.metricExports)} not delivered` : 'nothing was waiting';
  return `${what}: ${left}${kept > 0 ? ` (${both(s.spool.onDiskSpans, s.spool.onDiskMetricExports)} stay in the spool directory)` : ''}`;
}

/**
 * A JSON log record written while a terminal is told about the stop, as one short human line;
 * undefined for the shutdown summary of what could not be delivered (the stopped line says it).
 */
export function terminalLine(jsonLine: string): string | undefined {
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(jsonLine) as Record<string, unknown>;
  } catch {
    return jsonLine;
  }
  if ('keptOnDisk' in rec && 'lost' in rec) return undefined;
  const level = String(rec['level'] ?? 'info');
  return `${level === 'info' ? '' : `${level === 'warn' ? 'warning' : level}: `}${clean(String(rec['msg']))}\n`;
}
