#!/usr/bin/env node
// What the app span listener costs per span: OTLP ExportTraceServiceRequest bodies (encoded
// once, up front, with the official .proto files) are decoded by the bridge's decoder and handed
// to the join stage (index, lookup of waiting calls), as the listener does; and what an indexed
// span holds in memory (heap after a full GC, 50,000 spans held).
//
//   node --expose-gc bench/app-spans.mjs [--requests 400] [--spans 512] [--aws-share 0.3]
//
// Needs `npm run build`. Prints one JSON line.
import protobuf from 'protobufjs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = join(fileURLToPath(import.meta.url), '..', '..');
const { decodeProtobufRequest } = await import(join(ROOT, 'dist/join/otlp-trace-decoder.js'));
const { AppSpanIndex, MAX_INDEXED_SPANS } = await import(join(ROOT, 'dist/join/app-span-index.js'));
const { JoinStage, newJoinCounts } = await import(join(ROOT, 'dist/join/join-stage.js'));

const { values } = parseArgs({ options: { requests: { type: 'string', default: '400' }, spans: { type: 'string', default: '512' }, 'aws-share': { type: 'string', default: '0.3' } } });
const REQUESTS = Number(values.requests);
const SPANS = Number(values.spans);
const AWS_SHARE = Number(values['aws-share']);

const root = new protobuf.Root();
root.resolvePath = (_o, t) => join(ROOT, 'test/helpers/proto', t);
root.loadSync('opentelemetry/proto/collector/trace/v1/trace_service.proto');
root.resolveAll();
const Request = root.lookupType('opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest');

let seq = 0;
function body(awsShare) {
  const now = BigInt(Date.now()) * 1_000_000n;
  const spans = [];
  for (let i = 0; i < SPANS; i++) {
    const aws = i < SPANS * awsShare;
    spans.push({
      traceId: randomBytes(16),
      spanId: randomBytes(8),
      parentSpanId: randomBytes(8),
      name: aws ? 'DynamoDB.GetItem' : 'SELECT orders',
      kind: 3,
      startTimeUnixNano: now.toString(),
      endTimeUnixNano: (now + 3_000_000n).toString(),
      attributes: aws
        ? [
            { key: 'rpc.system', value: { stringValue: 'aws-api' } },
            { key: 'rpc.service', value: { stringValue: 'DynamoDB' } },
            { key: 'rpc.method', value: { stringValue: 'GetItem' } },
            { key: 'cloud.region', value: { stringValue: 'eu-west-1' } },
            { key: 'aws.request_id', value: { stringValue: `RID${String(seq++).padStart(12, '0')}ABCDEFGHIJKLMNOPQRSTUV` } },
            { key: 'http.status_code', value: { intValue: 200 } },
          ]
        : [
            { key: 'db.system', value: { stringValue: 'postgresql' } },
            { key: 'db.statement', value: { stringValue: 'SELECT * FROM orders WHERE id = $1' } },
            { key: 'server.address', value: { stringValue: 'db.internal' } },
          ],
    });
  }
  const res = { attributes: [{ key: 'service.name', value: { stringValue: 'shop' } }, { key: 'host.name', value: { stringValue: 'node-1' } }] };
  return Buffer.from(Request.encode(Request.fromObject({ resourceSpans: [{ resource: res, scopeSpans: [{ scope: { name: 'opentelemetry.instrumentation.botocore' }, spans }] }] })).finish());
}

// Memory per indexed span, first (before anything else is on the heap): an index filled to its bound.
let bytesPerSpan;
if (global.gc) {
  global.gc();
  const h0 = process.memoryUsage().heapUsed;
  const mem = new AppSpanIndex(3_600_000);
  while (mem.counts.held < MAX_INDEXED_SPANS) for (const s of decodeProtobufRequest(body(1)).spans) mem.add(s, 0);
  global.gc();
  bytesPerSpan = Math.round((process.memoryUsage().heapUsed - h0) / mem.counts.held);
}

const bodies = Array.from({ length: REQUESTS }, () => body(AWS_SHARE));
const sink = { write() {}, writeJoined() {} };
const index = new AppSpanIndex(30_000);
const stage = new JoinStage({ windowMs: 7_000, attemptKind: 'internal' }, index, sink, newJoinCounts());

// warm-up on other bodies
for (let i = 0; i < 20; i++) stage.appSpans(decodeProtobufRequest(body(AWS_SHARE)).spans);
const before = process.cpuUsage();
const t0 = process.hrtime.bigint();
let total = 0;
let kept = 0;
for (const b of bodies) {
  const d = decodeProtobufRequest(b);
  total += d.total;
  kept += d.spans.length;
  stage.appSpans(d.spans);
  index.expire(Date.now());
}
const cpu = process.cpuUsage(before);
const wallMs = Number(process.hrtime.bigint() - t0) / 1e6;
const cpuUs = cpu.user + cpu.system;

console.log(
  JSON.stringify({
    requests: REQUESTS,
    spansPerRequest: SPANS,
    awsShare: AWS_SHARE,
    spans: total,
    indexed: kept,
    cpuUsPerSpanReceived: +(cpuUs / total).toFixed(3),
    cpuUsPerAwsSpanIndexed: +(cpuUs / kept).toFixed(3),
    wallMs: Math.round(wallMs),
    heapBytesPerIndexedSpan: bytesPerSpan ?? 'run with --expose-gc',
    indexBoundMiB: bytesPerSpan ? +((bytesPerSpan * MAX_INDEXED_SPANS) / 2 ** 20).toFixed(1) : undefined,
  }),
);
