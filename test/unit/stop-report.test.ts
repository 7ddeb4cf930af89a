import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { newStats, type Stats } from '../../src/stats.js';
import { collectorOf, flushPlan, quitLine, stoppedLine, stoppingLine, terminalLine, UNANSWERED_FLUSH_MS } from '../../src/stop-report.js';

const NOW = 1_000_000;

/** Stats after `spans` spans were made, with the endpoint's newest outcomes. */
function stats(p: { ok?: number | null; err?: number | null; exported?: number } = {}): Stats {
  const s = newStats(0);
  s.lastExportOkAt.traces = p.ok ?? null;
  if (p.err != null) s.lastExportError.traces = { at: p.err, message: 'connect ECONNREFUSED 127.0.0.1:4318' };
  s.spans.exported = p.exported ?? 0;
  return s;
}

describe('the final flush: short when the endpoint is not answering', () => {
  it('never answered (nothing tried yet, or every try failed): UNANSWERED_FLUSH_MS', () => {
    for (const s of [stats(), stats({ err: NOW - 5 })]) {
      expect(flushPlan(s, NOW, 10_000)).toEqual({ deadlineAt: NOW + UNANSWERED_FLUSH_MS, endpoint: 'never answered' });
    }
  });

  it('answered before, failing now: UNANSWERED_FLUSH_MS', () => {
    expect(flushPlan(stats({ ok: NOW - 60_000, err: NOW - 5 }), NOW, 10_000)).toEqual({ deadlineAt: NOW + UNANSWERED_FLUSH_MS, endpoint: 'is not answering' });
  });

  it('answering: the shutdown timeout less the margin to say what is left', () => {
    expect(flushPlan(stats({ ok: NOW - 5, err: NOW - 60_000 }), NOW, 10_000)).toEqual({ deadlineAt: NOW + 9_000, endpoint: 'answering' });
    // A shutdown timeout shorter than the bound is never lengthened.
    expect(flushPlan(stats(), NOW, 500).deadlineAt).toBe(NOW + 450);
  });
});

describe('what a terminal is told', () => {
  const COLLECTOR = 'http://localhost:4318';

  it('the collector is the OTLP base URL, none without an OTLP exporter', () => {
    const otel = (env: Record<string, string>) => {
      const c = loadConfig([], env);
      if (c.kind !== 'run') throw new Error(c.kind);
      return c.otel;
    };
    expect(collectorOf(otel({}))).toBe('http://localhost:4318');
    expect(collectorOf(otel({ OTEL_TRACES_EXPORTER: 'console', OTEL_METRICS_EXPORTER: 'none' }))).toBeUndefined();
    expect(collectorOf(otel({ OTEL_SDK_DISABLED: 'true' }))).toBeUndefined();
  });

  it('stopping: the bound, why, and that a second Ctrl-C quits at once', () => {
    expect(stoppingLine({ deadlineAt: NOW + 1_000, endpoint: 'never answered' }, NOW, COLLECTOR)).toBe('stopping within 1.0 s (the collector never answered); Ctrl-C again quits now');
    expect(stoppingLine({ deadlineAt: NOW + 1_000, endpoint: 'is not answering' }, NOW, COLLECTOR)).toBe('stopping within 1.0 s (the collector is not answering); Ctrl-C again quits now');
    expect(stoppingLine({ deadlineAt: NOW + 9_000, endpoint: 'answering' }, NOW, COLLECTOR)).toBe('stopping within 9.0 s (sending what waits); Ctrl-C again quits now');
    expect(stoppingLine({ deadlineAt: NOW + 1_000, endpoint: 'never answered' }, NOW, undefined)).toBe('stopping; Ctrl-C again quits now');
    // Within a terminal's 80 columns.
    expect(stoppingLine({ deadlineAt: NOW + 1_000, endpoint: 'is not answering' }, NOW, COLLECTOR).length).toBeLessThanOrEqual(80);
  });

  it('memory spool, collector never answered: exported, not delivered, and the --spool-dir hint', () => {
    const s = stats({ exported: 1204 });
    s.spans.dropped = 22;
    s.spool.lostSpans = 22;
    s.spool.lostMetricExports = 1;
    expect(stoppedLine(s, 1_040, COLLECTOR, undefined)).toBe(
      'stopped in 1.0 s: 1,204 spans exported, 22 spans and 1 metric export not delivered (the collector at http://localhost:4318 never answered) — use --spool-dir to keep them',
    );
  });

  it('disk spool: what it keeps for the next start, no hint', () => {
    const s = stats({ ok: NOW - 60_000, err: NOW - 5 });
    s.spool.queuedSpans = s.spool.onDiskSpans = 300;
    s.spool.queuedMetricExports = s.spool.onDiskMetricExports = 2;
    expect(stoppedLine(s, 1_000, COLLECTOR, '/var/spool/csm')).toBe(
      'stopped in 1.0 s: 0 spans exported, 300 spans and 2 metric exports kept in /var/spool/csm for the next start (the collector at http://localhost:4318 is not answering)',
    );
  });

  it('everything delivered: no reason, no hint', () => {
    expect(stoppedLine(stats({ ok: NOW, exported: 1 }), 120, COLLECTOR, undefined)).toBe('stopped in 0.1 s: 1 span exported');
  });

  it('second Ctrl-C: what is still only in memory is not delivered', () => {
    const s = stats();
    s.spool.queuedSpans = 40;
    s.spool.onDiskSpans = 10;
    expect(quitLine(s)).toBe('quit at once: 30 spans not delivered (10 spans stay in the spool directory)');
    expect(quitLine(stats())).toBe('quit at once: nothing was waiting');
  });

  it('log records during the stop: one short line; the undelivered summary is left to the stopped line', () => {
    expect(terminalLine('{"time":"t","level":"warn","msg":"spool directory error","op":"write"}\n')).toBe('warning: spool directory error\n');
    expect(terminalLine('{"time":"t","level":"info","msg":"policy file written"}\n')).toBe('policy file written\n');
    expect(terminalLine('{"time":"t","level":"error","msg":"OTLP endpoint unavailable at shutdown","keptOnDisk":{},"lost":{}}\n')).toBeUndefined();
    expect(terminalLine('{"time":"t","level":"error","msg":"x\\u001b[2Jy"}\n')).toBe('error: x [2Jy\n');
  });
});
