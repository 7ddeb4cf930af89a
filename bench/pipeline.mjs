#!/usr/bin/env node
/**
 * In-process cost of the stages: decode → correlate → translate → encode
 * (TraceBatch + MetricAggregator, what export does per call), on real
 * captured botocore pairs (unique request id and timestamp per call), without
 * sockets or HTTP, through the bridge's own Pipeline with the shipped
 * defaults (`translate` and `encode`; `decode` and `correlate` time those
 * stages alone). Says how much of the per-datagram budget (10 µs at 100k
 * datagrams/s on one core) the stages use; the rest is UDP receive (the raw
 * baseline of bench/run.mjs) and sending.
 *
 *   npm run build && node bench/pipeline.mjs [--calls 200000] [--repeat 5] [--dist DIR]
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

const argText = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : def;
};
const arg = (name, def) => Number(argText(name, def));
const CALLS = arg('calls', 200_000);
const REPEAT = arg('repeat', 5);
// --dist DIR: measure another build, e.g. a copy of dist/ from before a change kept in the repo (its imports
// resolve from node_modules), run alternately with this one.
const DIST = argText('dist', undefined);
const distUrl = DIST === undefined ? new URL('../dist/', import.meta.url) : pathToFileURL(`${DIST.replace(/\/+$/, '')}/`);
const { decodeDatagram } = await import(new URL('decode/decoder.js', distUrl).href);
const { Correlator } = await import(new URL('correlate/correlator.js', distUrl).href);
const { translate } = await import(new URL('translate/translate.js', distUrl).href);
// Builds from before translate was split kept the instruments in translate.js.
const { METRIC_INSTRUMENTS } = await import(new URL('translate/instruments.js', distUrl).href).catch(() => import(new URL('translate/translate.js', distUrl).href));
const { newStats } = await import(new URL('stats.js', distUrl).href);
const { createLogger } = await import(new URL('log.js', distUrl).href);
// The bridge's own Pipeline and shipped defaults; a build from before they existed (--dist) gets the same wiring by hand.
const { Pipeline, pipelineOptions } = await import(new URL('pipeline.js', distUrl).href).catch(() => ({}));
const { DEFAULT_CONFIG } = await import(new URL('config/schema.js', distUrl).href);
const { TraceBatch, prepareResource } = await import(new URL('export/trace-batch.js', distUrl).href);
const { MetricAggregator } = await import(new URL('export/metric-aggregator.js', distUrl).href);

// Single-attempt botocore calls: attempt line then its ApiCall line.
const lines = readFileSync(new URL('../test/fixtures/boto3_threads_standard.jsonl', import.meta.url), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
const truth = JSON.parse(readFileSync(new URL('../test/fixtures/boto3_threads_standard.truth.json', import.meta.url), 'utf8'));
const pairs = truth.calls
  .filter((c) => c.attempt_lines.length === 1)
  .map((c) => [JSON.parse(lines[c.attempt_lines[0]].raw), JSON.parse(lines[c.api_call_line].raw)]);

// Pre-built datagrams (the generator's work is not measured).
const t0 = Date.now();
const datagrams = [];
for (let i = 0; i < CALLS; i++) {
  const [a, c] = pairs[i % pairs.length];
  const ts = t0 + i;
  datagrams.push(Buffer.from(JSON.stringify({ ...a, Timestamp: ts, XAmznRequestId: `b${i}` })));
  datagrams.push(Buffer.from(JSON.stringify({ ...c, Timestamp: ts - 1 })));
}
const src = { address: '127.0.0.1', port: 40000 };
const options = pipelineOptions
  ? pipelineOptions(DEFAULT_CONFIG, '')
  : {
      allowSource: [],
      decoder: { maxDatagramBytes: 65535, accessKey: 'drop', accessKeySalt: '', timestampSemantics: 'auto' },
      correlator: { attemptHoldMs: 300_000, callHoldMs: 3_000, maxPending: 100_000, toleranceMs: 50 },
      translate: { attemptSpanKind: 'client', rpcSemconv: 'old', jsInstrumentationKeys: false },
    };

/** What the stage hands on: nothing (translate), or what export does per call (encode). */
function sinkFor(stage, counts) {
  if (stage !== 'encode') return { write: () => counts.translated++ };
  const batch = new TraceBatch({ encoding: 'protobuf', scope: { name: 'bench', version: '0' }, attributeValueLengthLimit: 1024 });
  const resource = prepareResource({ 'service.name': 'bench' });
  const metrics = new MetricAggregator({ instruments: METRIC_INSTRUMENTS, scope: { name: 'bench', version: '0' }, temporality: () => 1, cardinalityLimit: 500 });
  return {
    write: (_c, t) => {
      counts.translated++;
      batch.add(resource, t.span);
      metrics.record(t.metrics);
      if (batch.spans >= 1024) counts.sink += batch.take().length;
    },
  };
}

/** A pipeline for `stage`: decode alone, decode → correlate, or the whole Pipeline with a sink. */
function build(stage, counts) {
  if (stage === 'decode') return { ingest: (b, from, at) => decodeDatagram(b, from, at, options.decoder), flush() {} };
  if (stage === 'correlate' || !Pipeline) {
    const sink = stage === 'correlate' ? undefined : sinkFor(stage, counts);
    const correlator = new Correlator(options.correlator, (c) => (sink ? sink.write(c, translate(c, options.translate)) : counts.translated++));
    return {
      ingest: (b, from, at) => {
        const r = decodeDatagram(b, from, at, options.decoder);
        if (r.ok) correlator.add(r.event);
      },
      flush: () => correlator.flush(),
    };
  }
  return new Pipeline(options, sinkFor(stage, counts), newStats(0), createLogger('error', () => {}));
}

function run(stage) {
  const counts = { translated: 0, sink: 0 };
  const p = build(stage, counts);
  const start = process.hrtime.bigint();
  for (let i = 0; i < datagrams.length; i++) p.ingest(datagrams[i], src, t0 + (i >> 1));
  p.flush();
  const ns = Number(process.hrtime.bigint() - start);
  return { stage, usPerDatagram: ns / 1000 / datagrams.length, ...counts };
}

const results = {};
for (const stage of ['decode', 'correlate', 'translate', 'encode']) {
  const runs = [];
  for (let r = 0; r < REPEAT; r++) runs.push(run(stage).usPerDatagram);
  runs.sort((a, b) => a - b);
  results[stage] = { medianUsPerDatagram: Number(runs[Math.floor(runs.length / 2)].toFixed(2)), runs: runs.map((x) => Number(x.toFixed(2))) };
}
console.log(JSON.stringify({ calls: CALLS, datagrams: datagrams.length, node: process.version, cumulative: results }, null, 2));
console.log('\nstage (cumulative)   µs per datagram (median)');
for (const [k, v] of Object.entries(results)) console.log(`${k.padEnd(20)} ${v.medianUsPerDatagram}`);
