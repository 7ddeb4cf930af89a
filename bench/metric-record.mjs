#!/usr/bin/env node
/**
 * Cost of recording one translated call's metric points: SDK instruments
 * (Histogram.record / Counter.add, as otel-exporter's createInstruments() did)
 * versus MetricAggregator.record (src/export/metric-aggregator.ts), on the
 * translations of every call of the real captures in test/fixtures, cycled.
 * Both with cardinality limit 500 and cumulative temporality; a collect every
 * `--collect-every` calls (default 50 000, i.e. a 60 s interval at ~800 calls/s
 * per client would be fewer; it only keeps the delta maps honest).
 *
 *   npm run build && node bench/metric-record.mjs [--calls 200000] [--repeat 5] [--fresh] [--dist ../dist]
 */
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { join, resolve } from 'node:path';
import { MeterProvider, MetricReader, AggregationTemporality } from '@opentelemetry/sdk-metrics';

const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : def;
};
const CALLS = Number(arg('calls', 200_000));
const REPEAT = Number(arg('repeat', 5));
const COLLECT_EVERY = Number(arg('collect-every', 50_000));
/** Fresh attribute strings per call (as decode produces them: no cached string hashes), not the same 128 objects cycled. */
const FRESH = process.argv.includes('--fresh');
const here = fileURLToPath(new URL('.', import.meta.url));
const dist = resolve(here, arg('dist', '../dist'));
const load = (p) => import(pathToFileURL(join(dist, p)).href);
const { decodeDatagram } = await load('decode/decoder.js');
const { translate } = await load('translate/translate.js');
// Builds from before translate was split kept the instruments in translate.js.
const { METRIC_INSTRUMENTS } = await load('translate/instruments.js').catch(() => load('translate/translate.js'));
const { MetricAggregator } = await load('export/metric-aggregator.js');

// Every call (and orphan attempt) of every capture, paired by the ground truth.
const fixtures = join(here, '../test/fixtures');
const decodeOpts = { maxDatagramBytes: 65535, accessKey: 'drop', accessKeySalt: '', timestampSemantics: 'auto' };
const translateOpts = { attemptSpanKind: 'client', rpcSemconv: 'old', jsInstrumentationKeys: false };
const translations = [];
for (const f of readdirSync(fixtures).filter((x) => x.endsWith('.jsonl')).sort()) {
  const lines = readFileSync(join(fixtures, f), 'utf8').split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l));
  const events = lines.map((l) => {
    const i = l.src.lastIndexOf(':');
    const r = decodeDatagram(Buffer.from(l.raw, 'utf8'), { address: l.src.slice(0, i), port: Number(l.src.slice(i + 1)) }, Math.floor(l.recv_ns / 1e6), decodeOpts);
    return r.ok ? r.event : undefined;
  });
  const t = JSON.parse(readFileSync(join(fixtures, f.replace(/\.jsonl$/, '.truth.json')), 'utf8'));
  for (const tc of t.calls ?? (t.commands ?? []).flatMap((c) => c.calls)) {
    const attempts = tc.attempt_lines.map((l) => events[l]).filter((e) => e?.type === 'ApiCallAttempt').sort((x, y) => x.timestamp - y.timestamp);
    const c = tc.api_call_line === null ? undefined : events[tc.api_call_line];
    if (c?.type === 'ApiCall') translations.push(translate({ kind: 'call', call: c, attempts, missingAttempts: Math.max(0, (c.attemptCount ?? 0) - attempts.length) }, translateOpts));
    else for (const a of attempts) translations.push(translate({ kind: 'orphan', attempt: a, reason: 'ttl_expired' }, translateOpts));
  }
}
/** With --fresh, every call of a run gets its own deep copy (JSON round trip), made before timing. */
const callMetrics = () =>
  FRESH
    ? Array.from({ length: CALLS }, (_, i) => JSON.parse(JSON.stringify(translations[i % translations.length].metrics)))
    : Array.from({ length: CALLS }, (_, i) => translations[i % translations.length].metrics);
const pointsPerCall = translations.reduce((s, t) => s + t.metrics.length, 0) / translations.length;

class ManualReader extends MetricReader {
  async onShutdown() {}
  async onForceFlush() {}
}
const temporality = () => AggregationTemporality.CUMULATIVE;

function sdk() {
  const reader = new ManualReader({ aggregationTemporalitySelector: temporality, cardinalitySelector: () => 500 });
  const meter = new MeterProvider({ readers: [reader] }).getMeter('aws-csm-bridge', '0');
  const m = new Map();
  for (const i of METRIC_INSTRUMENTS) {
    m.set(
      i.name,
      i.kind === 'histogram'
        ? meter.createHistogram(i.name, { unit: i.unit, description: i.description, ...(i.buckets ? { advice: { explicitBucketBoundaries: i.buckets } } : {}) })
        : meter.createCounter(i.name, { unit: i.unit, description: i.description }),
    );
  }
  return {
    record(points) {
      for (const p of points) {
        const inst = m.get(p.instrument);
        if (!inst) continue;
        if ('record' in inst) inst.record(p.value, p.attributes);
        else inst.add(p.value, p.attributes);
      }
    },
    collect: () => reader.collect(),
  };
}

function aggregator() {
  const agg = new MetricAggregator({ instruments: METRIC_INSTRUMENTS, scope: { name: 'aws-csm-bridge', version: '0' }, temporality, cardinalityLimit: 500 });
  const reader = new ManualReader({ aggregationTemporalitySelector: temporality, metricProducers: [agg] });
  new MeterProvider({ readers: [reader] });
  return { record: (p) => agg.record(p), collect: () => reader.collect(), series: () => agg.series };
}

async function run(make) {
  const calls = callMetrics();
  const side = make();
  let collectNs = 0;
  let recordNs = 0;
  let start = process.hrtime.bigint();
  for (let i = 0; i < CALLS; i++) {
    side.record(calls[i]);
    if ((i + 1) % COLLECT_EVERY === 0) {
      const t = process.hrtime.bigint();
      recordNs += Number(t - start);
      await side.collect();
      start = process.hrtime.bigint();
      collectNs += Number(start - t);
    }
  }
  recordNs += Number(process.hrtime.bigint() - start);
  return { usPerCall: recordNs / 1000 / CALLS, msPerCollect: collectNs / 1e6 / Math.max(1, Math.floor(CALLS / COLLECT_EVERY)) };
}

const results = {};
for (const [name, make] of [
  ['sdk-instruments', sdk],
  ['metric-aggregator', aggregator],
]) {
  const runs = [];
  for (let r = 0; r < REPEAT; r++) runs.push(await run(make));
  const med = (k) => runs.map((x) => x[k]).sort((a, b) => a - b)[Math.floor(runs.length / 2)];
  results[name] = {
    medianUsPerCall: Number(med('usPerCall').toFixed(3)),
    medianMsPerCollect: Number(med('msPerCollect').toFixed(2)),
    runsUsPerCall: runs.map((x) => Number(x.usPerCall.toFixed(3))),
  };
}
const series = new Set(translations.flatMap((t) => t.metrics.map((p) => p.instrument + JSON.stringify(p.attributes)))).size;
console.log(JSON.stringify({ calls: CALLS, fresh: FRESH, distinctTranslations: translations.length, pointsPerCall: Number(pointsPerCall.toFixed(2)), series, node: process.version, results }, null, 2));
console.log('\n                     µs per call (median)   ms per collect (median)');
for (const [k, v] of Object.entries(results)) console.log(`${k.padEnd(22)} ${String(v.medianUsPerCall).padEnd(22)} ${v.medianMsPerCollect}`);
