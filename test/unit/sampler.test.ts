/** The sampler (src/export/sampler.ts) on translated calls built by the real translator. */
import { describe, expect, it } from 'vitest';
import { CallSampler, parseKeepRules } from '../../src/export/sampler.js';
import type { SpanRecord, Translation } from '../../src/translate/types.js';

function call(o: { failed?: boolean; attempts?: number; ms?: number } = {}): Translation {
  const span = (name: string, children: SpanRecord[]): SpanRecord => ({
    name,
    kind: 'client',
    startMs: 1_000,
    endMs: 1_000 + (o.ms ?? 20),
    attributes: { 'csm.attempt_count': o.attempts ?? 1 },
    status: o.failed ? { code: 'error', message: 'x' } : { code: 'unset' },
    events: [],
    children,
  });
  const attempts = Array.from({ length: o.attempts ?? 1 }, () => span('S3.GetObject attempt', []));
  return { clientId: 'c', span: span('S3.GetObject', attempts), metrics: [] };
}
const keepDefault = parseKeepRules(['errors', 'retries']);
/** A fixed sequence of draws. */
const draws = (...xs: number[]) => {
  let i = 0;
  return () => xs[i++ % xs.length]!;
};

describe('CallSampler', () => {
  it('always_on keeps everything without drawing', () => {
    const s = new CallSampler({ root: 'always_on', ratio: 1, keep: keepDefault, random: () => { throw new Error('drew'); } });
    expect(s.keepsAll).toBe(true);
    expect(s.decide(call())).toBe('sampled');
  });

  it('traceidratio: a draw below the ratio keeps a plain call', () => {
    const s = new CallSampler({ root: 'traceidratio', ratio: 0.25, keep: keepDefault, random: draws(0.1, 0.3, 0.2499, 0.25) });
    expect([s.decide(call()), s.decide(call()), s.decide(call()), s.decide(call())]).toEqual(['sampled', 'dropped', 'sampled', 'dropped']);
  });

  it('errors and retries are kept whatever the draw; slow:N from N ms on; none = the ratio alone', () => {
    const never = () => 0.999;
    const s = new CallSampler({ root: 'traceidratio', ratio: 0.01, keep: parseKeepRules(['errors', 'retries', 'slow:2s']), random: never });
    expect(s.decide(call({ failed: true }))).toBe('error');
    expect(s.decide(call({ attempts: 3 }))).toBe('retry');
    expect(s.decide(call({ ms: 2_000 }))).toBe('slow');
    expect(s.decide(call({ ms: 1_999 }))).toBe('dropped');
    const none = new CallSampler({ root: 'traceidratio', ratio: 0.01, keep: parseKeepRules(['none']), random: never });
    expect([none.decide(call({ failed: true })), none.decide(call({ attempts: 3 }))]).toEqual(['dropped', 'dropped']);
  });

  it('always_off keeps only what the keep rules name (default: errors and retries)', () => {
    const s = new CallSampler({ root: 'always_off', ratio: 0, keep: keepDefault, random: () => 0 });
    expect([s.decide(call()), s.decide(call({ failed: true })), s.decide(call({ attempts: 2 }))]).toEqual(['dropped', 'error', 'retry']);
  });

  it('parses the keep rules', () => {
    expect(parseKeepRules(['slow:1500ms'])).toEqual({ errors: false, retries: false, slowMs: 1500 });
    expect(parseKeepRules(['errors', 'slow:3s'])).toEqual({ errors: true, retries: false, slowMs: 3000 });
  });

  it('a ratio of 0.1 keeps about a tenth of many plain calls (Math.random)', () => {
    const s = new CallSampler({ root: 'traceidratio', ratio: 0.1, keep: keepDefault });
    let kept = 0;
    for (let i = 0; i < 20_000; i++) if (s.decide(call()) === 'sampled') kept++;
    // Binomial(20000, 0.1): sd 42; bounds 7 sd away.
    expect(kept).toBeGreaterThan(1_700);
    expect(kept).toBeLessThan(2_300);
  });
});
