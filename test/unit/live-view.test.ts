import { describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG } from '../../src/config/schema.js';
import type { Correlated } from '../../src/correlate/types.js';
import { newStats } from '../../src/stats.js';
import { createLogger } from '../../src/log.js';
import { Pipeline, pipelineOptions } from '../../src/pipeline.js';
import { translate } from '../../src/translate/translate.js';
import type { Translation } from '../../src/translate/types.js';
import { isThrottle, OTHER_ROW, RateRing, ViewModel } from '../../src/ui/model.js';
import { clean, exportHealth, KEEP_ORDER, render, table, type Header } from '../../src/ui/render.js';
import { bucketOf, LatencySketch, SKETCH_BUCKETS } from '../../src/ui/sketch.js';
import { parseSource, readCapture, scenarios } from '../helpers/captures.js';

const OPTS = pipelineOptions(DEFAULT_CONFIG, '').translate;

/** Every capture through the bridge's Pipeline with the shipped defaults, fed to one model. */
function modelOf(names: string[]): { model: ViewModel; outs: Correlated[] } {
  const model = new ViewModel();
  const outs: Correlated[] = [];
  for (const s of names) {
    const sink = { write: (c: Correlated, t: Translation) => (outs.push(c), model.add(c, t, 1_000_000)) };
    const p = new Pipeline(pipelineOptions(DEFAULT_CONFIG, ''), sink, newStats(0), createLogger('error', () => {}));
    for (const l of readCapture(s)) p.ingest(Buffer.from(l.raw), parseSource(l.src), Math.floor(l.recv_ns / 1e6));
    p.flush();
  }
  return { model, outs };
}

const header: Header = { version: '9.9.9', listen: ['127.0.0.1:31000'], target: 'http://localhost:4318 (http/protobuf)', extra: [], datagramsPerSec: 2, spansPerSec: 1 };

describe('latency sketch', () => {
  it('percentiles within the bucket error (< 5 %) of the exact ones', () => {
    const sk = new LatencySketch();
    const xs: number[] = [];
    for (let i = 1; i <= 10_000; i++) {
      const v = Math.round(1 + ((i * 7919) % 5000) ** 1.3 / 10); // spread over 1 ms .. ~6 s
      xs.push(v);
      sk.add(v);
    }
    xs.sort((a, b) => a - b);
    for (const q of [0.5, 0.95, 0.99]) {
      const exact = xs[Math.ceil(q * xs.length) - 1]!;
      expect(Math.abs(sk.quantile(q)! - exact) / exact).toBeLessThan(0.05);
    }
    expect(sk.quantile(1)).toBe(xs[xs.length - 1]);
  });

  it('constant size: huge and zero latencies land in the end buckets', () => {
    expect(bucketOf(0)).toBe(0);
    expect(bucketOf(1e12)).toBe(SKETCH_BUCKETS - 1);
    const sk = new LatencySketch();
    sk.add(0);
    sk.add(NaN);
    sk.add(-5);
    expect(sk.count).toBe(1);
    expect(sk.quantile(0.5)).toBe(0);
    expect(new LatencySketch().quantile(0.5)).toBeUndefined();
  });
});

describe('rate ring', () => {
  it('averages the last 10 s and forgets older seconds', () => {
    const r = new RateRing();
    for (let s = 0; s < 10; s++) for (let i = 0; i < 5; i++) r.add(s * 1000 + 10);
    expect(r.rate(9_999)).toBeCloseTo(5, 1);
    expect(r.rate(25_000)).toBe(0);
  });
});

describe('view model on the real captures', () => {
  it('one row per Service.Api with the calls, errors and retries of the captures', () => {
    const { model, outs } = modelOf(['cli_moto_basic', 'cli_connrefused']);
    const calls = outs.filter((c) => c.kind === 'call');
    expect(model.calls).toBe(calls.length);
    const byName = new Map<string, number>();
    for (const c of calls) if (c.kind === 'call') byName.set(`${c.call.service}.${c.call.api}`, (byName.get(`${c.call.service}.${c.call.api}`) ?? 0) + 1);
    for (const [name, n] of byName) expect(model.rows.get(name)?.calls, name).toBe(n);
    // cli_connrefused: every call failed after retries.
    const refused = calls.filter((c) => c.kind === 'call' && c.attempts.some((a) => a.sdkException));
    expect(refused.length).toBeGreaterThan(0);
    const sum = (f: (r: { errors: number; retries: number }) => number) => [...model.rows.values()].reduce((a, r) => a + f(r), 0);
    expect(sum((r) => r.errors)).toBe(calls.filter((c) => c.kind === 'call' && translate(c, OPTS).span.status.code === 'error').length);
    expect(sum((r) => r.retries)).toBe(calls.reduce((a, c) => a + (c.kind === 'call' ? Math.max(0, (c.call.attemptCount ?? c.attempts.length) - 1) : 0), 0));
    expect(model.failed.length).toBeGreaterThan(0);
    expect(model.failed.length).toBeLessThanOrEqual(model.limits.maxFailed);
    // Sorted by calls.
    const sorted = model.sortedRows().map((r) => r.calls);
    expect([...sorted].sort((a, b) => b - a)).toEqual(sorted);
  });

  it('throttles are counted per throttled attempt (cli_fake_retries has throttling responses)', () => {
    const { model, outs } = modelOf(['cli_fake_retries']);
    let want = 0;
    for (const c of outs) {
      if (c.kind !== 'call') continue;
      for (const a of translate(c, OPTS).span.children) if (isThrottle(a.attributes['error.type'], a.attributes['http.response.status_code'])) want++;
    }
    expect(want).toBeGreaterThan(0);
    expect([...model.rows.values()].reduce((a, r) => a + r.throttles, 0)).toBe(want);
  });

  it('rows are capped: beyond maxRows everything goes to one "(other)" row', () => {
    const model = new ViewModel({ maxRows: 3, maxFailed: 2, maxLogs: 2 });
    const { outs } = modelOf(['cli_moto_basic']);
    for (const c of outs) model.add(c, translate(c, OPTS), 0);
    expect(model.rows.size).toBe(3);
    expect(model.rows.has(OTHER_ROW)).toBe(true);
    expect([...model.rows.values()].reduce((a, r) => a + r.calls, 0)).toBe(model.calls);
    expect(model.failed.length).toBeLessThanOrEqual(2);
    for (let i = 0; i < 5; i++) model.log(0, 'warn', `line ${i}`);
    expect(model.logs.map((l) => l.text)).toEqual(['line 3', 'line 4']);
  });
});

describe('render', () => {
  it('shows the rows, the failed calls and the export health, cut to the width', () => {
    const { model } = modelOf(scenarios());
    const stats = newStats(0);
    stats.spans.failed = 12;
    stats.lastExportError.traces = { at: 5_000, message: 'connect ECONNREFUSED 127.0.0.1:9' };
    const lines = render(model, stats, header, 120, 50, 1_000_000);
    const text = lines.join('\n');
    expect(lines.length).toBeLessThanOrEqual(50);
    for (const l of lines) expect(l.length).toBeLessThanOrEqual(120);
    expect(text).toContain('FAILING');
    expect(text).toContain('ECONNREFUSED');
    expect(text).toMatch(/^S3\.CreateBucket +\d+/m);
    expect(text).toContain('RECENT FAILED CALLS');
    // Names are shown whole (up to 35 characters), the longest one included.
    const longest = [...model.rows.keys()].sort((a, b) => b.length - a.length)[0]!;
    expect(longest.length).toBeGreaterThan(16);
    const shownRows = lines.filter((l) => /^\S+\.\S+ +\d+ /.test(l)).map((l) => l.split(' ')[0]);
    for (const n of shownRows) expect(model.rows.has(n!), n).toBe(true);
    const small = render(model, stats, header, 120, 24, 1_000_000);
    expect(small.length).toBeLessThanOrEqual(24);
    expect(small.join('\n')).toMatch(/… \d+ more rows/);
  });

  it('fits the width: the least useful columns go first as it shrinks, and come back as it grows', () => {
    const { model } = modelOf(scenarios());
    const names = [...model.rows.keys()];
    const titlesAt = (w: number) => {
      const [head, ...rows] = table(model.sortedRows(), names, w, 1_000_000);
      // The header fits; so do the rows up to LAST ERROR's text (render's line() cuts that to the width).
      expect(head!.length).toBeLessThanOrEqual(w);
      const errorAt = head!.includes('LAST ERROR') ? head!.indexOf('LAST ERROR') : head!.length;
      expect(errorAt + (head!.includes('LAST ERROR') ? 12 : 0)).toBeLessThanOrEqual(w);
      for (const l of rows) expect(l.slice(0, errorAt).trimEnd().length, `${w}: ${l}`).toBeLessThanOrEqual(errorAt);
      return head!.match(/SERVICE\.API|CALLS\/S|CALLS|P\d\d ms|ERR%|RETRIES|THROTTLES|LAST ERROR/g) ?? [];
    };
    const all = ['SERVICE.API', 'CALLS', 'CALLS/S', 'P50 ms', 'P95 ms', 'P99 ms', 'ERR%', 'RETRIES', 'THROTTLES', 'LAST ERROR'];
    expect(titlesAt(200)).toEqual(all);
    // 80 columns (names up to 22 characters): the errors, the retries, the tail latency and the throttles stay.
    expect(Math.max(...names.map((n) => n.length))).toBe(22);
    expect(titlesAt(80)).toEqual(['SERVICE.API', 'CALLS', 'P95 ms', 'ERR%', 'RETRIES', 'THROTTLES', 'LAST ERROR']);
    // The longest name shown whole (36) takes the room of the throttles and P95.
    expect(table(model.sortedRows(), ['S'.repeat(36)], 80, 1_000_000)[0]).toMatch(/^SERVICE\.API +CALLS +ERR% +RETRIES  LAST ERROR$/);
    // Narrower still: never more columns at a smaller width (no column comes and goes).
    let previous = titlesAt(40);
    for (let w = 41; w <= 200; w++) {
      const now = titlesAt(w);
      for (const t of previous) expect(now, `${w}`).toContain(t);
      previous = now;
    }
    expect(KEEP_ORDER.slice(-3)).toEqual(['rate', 'p50', 'p99']);
  });

  it('80x24: every line within 80 columns, the keys on the last line', () => {
    const { model } = modelOf(scenarios());
    const lines = render(model, newStats(0), { ...header, policyKey: true }, 80, 24, 1_000_000);
    expect(lines).toHaveLength(24);
    for (const l of lines) expect(l.length).toBeLessThanOrEqual(80);
    expect(lines[23]).toBe('keys: q quit   p IAM policy');
    expect(lines.join('\n')).toMatch(/^SERVICE\.API +CALLS +P95 ms +ERR% +RETRIES +THROTTLES +LAST ERROR$/m);
    expect(lines.join('\n')).toMatch(/^DynamoDB\.DescribeTable +252 +\d+ +14\.3 +300 +140  ThrottlingExce$/m);
    // Without the policy pane, no p key.
    expect(render(model, newStats(0), header, 80, 24, 1_000_000)[23]).toBe('keys: q quit');
  });

  it("says which calls were joined into applications' traces, once the join has done anything, within 80 columns", () => {
    const { model } = modelOf(scenarios());
    const stats = newStats(0);
    expect(render(model, stats, header, 80, 24, 1_000_000).join('\n')).not.toMatch(/^join /m);
    Object.assign(stats.join, { joined: 12, waiting: 3, expiredUnjoined: 1 });
    const lines = render(model, stats, header, 80, 24, 1_000_000);
    expect(lines.find((l) => l.startsWith('join '))).toBe('join     12 calls joined into app traces, 3 waiting, 1 not joined in time');
    for (const l of lines) expect(l.length).toBeLessThanOrEqual(80);
  });

  it('health: failing only while the newest outcome of a signal is a failure', () => {
    const s = newStats(0);
    expect(exportHealth(s).health).toBe('waiting');
    s.lastExportOkAt.traces = 10;
    expect(exportHealth(s).health).toBe('ok');
    s.lastExportError.metrics = { at: 11, message: 'x' };
    expect(exportHealth(s)).toEqual({ health: 'failing', lastError: { signal: 'metrics', at: 11, message: 'x' } });
    s.lastExportOkAt.metrics = 12;
    expect(exportHealth(s).health).toBe('ok');
  });

  it('wire text cannot put escapes on the terminal', () => {
    expect(clean('S3\x1b[2J.List\r\nBuckets\x9b31m')).toBe('S3 [2J.List  Buckets 31m');
    const model = new ViewModel();
    model.log(0, 'warn', 'evil \x1b]0;title\x07 line');
    const lines = render(model, newStats(0), header, 100, 30, 0);
    for (const l of lines) expect(l).not.toMatch(/[\x00-\x1f\x7f-\x9f]/);
    expect(lines.join('\n')).toContain('evil  ]0;title  line');
  });
});
