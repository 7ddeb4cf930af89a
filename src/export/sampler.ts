/**
 * Which calls become spans (OTEL_TRACES_SAMPLER / _ARG and --sample-keep).
 *
 * Decided once per translated call, so a call's whole tree (the call span and
 * its attempts) is kept or dropped together. Metrics are recorded before this
 * decision and never depend on it: they always count 100 % of calls.
 *
 * The bridge sees a whole call before exporting it, so it can do what
 * otherwise takes a Collector's tail sampler: with sampling on, calls that
 * failed, were retried or were slower than a threshold are kept whatever the
 * ratio says (`--sample-keep errors,retries,slow:2000ms`; default errors and
 * retries; `none` = the ratio alone). The kept share of plain calls follows
 * the sampler; the rare calls worth looking at are all there. The trade-off:
 * the spans of a backend are no longer a uniform sample, so counting calls
 * from spans over-counts failures; count from the metrics instead.
 *
 * The `parentbased_*` samplers act as their root sampler: every CSM call is the
 * root of its own trace. The draw is random per call (an injected source),
 * not derived from the trace id: nobody else samples these traces, so the
 * cross-service consistency a trace-id ratio buys does not apply, and the ids
 * are only made when the call is encoded, after this decision.
 */
import type { RootSampler } from '../config/otel-env.js';
import type { SpanRecord, Translation } from '../translate/types.js';
import { CSM_ATTEMPT_COUNT } from '../translate/keys.js';

export interface KeepRules {
  errors: boolean;
  retries: boolean;
  /** Calls at least this slow (ms) are kept; undefined: no slow rule. */
  slowMs: number | undefined;
}

/** Why a call was kept (or not). */
export type SampleOutcome = 'sampled' | 'error' | 'retry' | 'slow' | 'dropped';

export interface SamplerOptions {
  root: RootSampler;
  /** The share of plain calls kept, 0..1 (always_on = 1, always_off = 0). */
  ratio: number;
  keep: KeepRules;
  /** Uniform in [0, 1); Math.random by default. */
  random?: () => number;
}

/** `--sample-keep` values (checked by the schema): errors, retries, slow:2000ms / slow:2s, none. */
export function parseKeepRules(list: readonly string[]): KeepRules {
  const rules: KeepRules = { errors: false, retries: false, slowMs: undefined };
  for (const item of list) {
    if (item === 'errors') rules.errors = true;
    else if (item === 'retries') rules.retries = true;
    else {
      const m = /^slow:(\d+)(ms|s)$/.exec(item);
      if (m) rules.slowMs = Number(m[1]) * (m[2] === 's' ? 1000 : 1);
    }
  }
  return rules;
}

export class CallSampler {
  private readonly random: () => number;
  /** always_on: nothing to decide, every call is kept (the fast path). */
  readonly keepsAll: boolean;

  constructor(private readonly opts: SamplerOptions) {
    this.random = opts.random ?? Math.random;
    this.keepsAll = opts.ratio >= 1;
  }

  decide(t: Translation): SampleOutcome {
    if (this.keepsAll) return 'sampled';
    const k = this.opts.keep;
    const span = t.span;
    if (k.errors && failed(span)) return 'error';
    if (k.retries && retried(span)) return 'retry';
    if (k.slowMs !== undefined && span.endMs - span.startMs >= k.slowMs) return 'slow';
    return this.opts.ratio > 0 && this.random() < this.opts.ratio ? 'sampled' : 'dropped';
  }
}

/** The call (or orphan attempt) ended in an error. */
function failed(span: SpanRecord): boolean {
  return span.status.code === 'error';
}

/** More than one attempt: what the SDK counted, or what arrived. */
function retried(span: SpanRecord): boolean {
  const n = span.attributes[CSM_ATTEMPT_COUNT];
  return (typeof n === 'number' && n > 1) || span.children.length > 1;
}
