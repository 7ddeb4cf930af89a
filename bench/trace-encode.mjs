#!/usr/bin/env node
/**
 * Cost per span of the trace export encoding: TraceBatch (direct OTLP encoder,
 * src/export/trace-batch.ts) vs the SDK path (Tracer.startSpan / addEvent / end as
 * otel-exporter.ts write() does, then otlp-transformer's ProtobufTraceSerializer),
 * on translated real botocore calls (boto3_threads_standard capture). Median of
 * --repeat runs, each over --calls calls, bodies taken every --batch spans.
 *
 * The SDK figure leaves out BatchSpanProcessor (a synchronous collector stands in
 * for it), so it is a lower bound of the SDK path's cost.
 *
 *   npm run build && node bench/trace-encode.mjs [--calls 50000] [--repeat 5] [--batch 512] [--dist DIR] [--sdk 0]
 *
 * --dist DIR measures another build (e.g. a copy of dist/ from before a change), run alternately
 * with this one; --sdk 0 leaves out the SDK reference runs (the slow half) for such A/B runs.
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { millisToHrTime } from '@opentelemetry/core';
import { JsonTraceSerializer, ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { defaultResource, resourceFromAttributes } from '@opentelemetry/resources';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';

const argText = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : def;
};
const arg = (name, def) => Number(argText(name, def));
const DIST = argText('dist', undefined);
const distUrl = DIST === undefined ? new URL('../dist/', import.meta.url) : pathToFileURL(`${DIST.replace(/\/+$/, '')}/`);
const { decodeDatagram } = await import(new URL('decode/decoder.js', distUrl).href);
const { translate } = await import(new URL('translate/translate.js', distUrl).href);
const { prepareResource, TraceBatch } = await import(new URL('export/trace-batch.js', distUrl).href);
const CALLS = arg('calls', 50_000);
const REPEAT = arg('repeat', 5);
const BATCH = arg('batch', 512);
const SDK = arg('sdk', 1) !== 0;

// Translated calls of the capture (every call with its attempts), with unique timestamps.
const fixture = (f) => new URL(`../test/fixtures/${f}`, import.meta.url);
const lines = readFileSync(fixture('boto3_threads_standard.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
const truth = JSON.parse(readFileSync(fixture('boto3_threads_standard.truth.json'), 'utf8'));
const src = { address: '127.0.0.1', port: 40000 };
const decodeOpts = { maxDatagramBytes: 65535, accessKey: 'drop', accessKeySalt: '', timestampSemantics: 'auto' };
const translateOpts = { attemptSpanKind: 'client', rpcSemconv: 'old', jsInstrumentationKeys: false };
const decode = (raw, i) => {
  const r = decodeDatagram(Buffer.from(JSON.stringify({ ...JSON.parse(raw), Timestamp: JSON.parse(raw).Timestamp + i })), src, Date.now(), decodeOpts);
  if (!r.ok) throw new Error(`decode: ${r.reason}`);
  return r.event;
};
const calls = truth.calls.filter((c) => c.api_call_line !== null);
const trees = [];
for (let i = 0; i < CALLS; i++) {
  const c = calls[i % calls.length];
  const call = decode(lines[c.api_call_line].raw, i);
  const attempts = c.attempt_lines.map((l) => decode(lines[l].raw, i)).sort((x, y) => x.timestamp - y.timestamp);
  trees.push(translate({ kind: 'call', call, attempts, missingAttempts: 0 }, translateOpts).span);
}
const SPANS = trees.reduce((n, t) => n + 1 + t.children.length, 0);

const resource = defaultResource().merge(resourceFromAttributes({ 'service.name': 'bench', 'process.pid': 1234 }));
const scope = { name: 'aws-csm-bridge', version: '0.1.0' };

function runBatch(encoding) {
  const prepared = prepareResource(resource.attributes, resource.schemaUrl);
  const b = new TraceBatch({ encoding, scope, attributeValueLengthLimit: 1024 });
  let bytes = 0;
  const start = process.hrtime.bigint();
  for (let i = 0; i < trees.length; i++) {
    b.add(prepared, trees[i]);
    if (b.spans >= BATCH) bytes += b.take().length;
  }
  const last = b.take();
  if (last) bytes += last.length;
  const total = Number(process.hrtime.bigint() - start);
  return { all: total / 1000 / SPANS, bytes };
}

function runSdk(encoding) {
  const ended = [];
  const provider = new NodeTracerProvider({
    resource,
    spanLimits: { attributeValueLengthLimit: 1024 },
    spanProcessors: [{ onStart() {}, onEnd: (s) => ended.push(s), forceFlush: async () => {}, shutdown: async () => {} }],
  });
  const tracer = provider.getTracer(scope.name, scope.version);
  const serializer = encoding === 'json' ? JsonTraceSerializer : ProtobufTraceSerializer;
  const hr = (ms) => millisToHrTime(ms);
  const kindOf = (s) => (s.kind === 'internal' ? SpanKind.INTERNAL : SpanKind.CLIENT);
  const finish = (span, rec) => {
    for (const e of rec.events) span.addEvent(e.name, e.attributes, hr(e.timeMs));
    if (rec.status.code === 'error') span.setStatus(rec.status.message ? { code: SpanStatusCode.ERROR, message: rec.status.message } : { code: SpanStatusCode.ERROR });
    span.end(hr(rec.endMs));
  };
  let bytes = 0;
  const start = process.hrtime.bigint();
  for (let i = 0; i < trees.length; i++) {
    const rec = trees[i];
    const root = tracer.startSpan(rec.name, { kind: kindOf(rec), startTime: hr(rec.startMs), attributes: rec.attributes }, ROOT_CONTEXT);
    const ctx = trace.setSpan(ROOT_CONTEXT, root);
    for (const child of rec.children) {
      finish(tracer.startSpan(child.name, { kind: kindOf(child), startTime: hr(child.startMs), attributes: child.attributes }, ctx), child);
    }
    finish(root, rec);
    if (ended.length >= BATCH) bytes += serializer.serializeRequest(ended.splice(0)).length;
  }
  if (ended.length) bytes += serializer.serializeRequest(ended.splice(0)).length;
  const total = Number(process.hrtime.bigint() - start);
  return { all: total / 1000 / SPANS, bytes };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const results = {};
for (const [name, fn] of [
  ['traceBatch.protobuf', () => runBatch('protobuf')],
  ['sdk.protobuf', SDK && (() => runSdk('protobuf'))],
  ['traceBatch.json', () => runBatch('json')],
  ['sdk.json', SDK && (() => runSdk('json'))],
]) {
  if (!fn) continue;
  fn(); // warm-up
  const runs = [];
  let bytes = 0;
  for (let r = 0; r < REPEAT; r++) {
    const x = fn();
    runs.push(x.all);
    bytes = x.bytes;
  }
  results[name] = { usPerSpan: +median(runs).toFixed(3), runs: runs.map((x) => +x.toFixed(3)), bytesPerSpan: +(bytes / SPANS).toFixed(1) };
}
console.log(JSON.stringify({ node: process.version, calls: CALLS, spans: SPANS, batch: BATCH, repeat: REPEAT, results }, null, 2));
