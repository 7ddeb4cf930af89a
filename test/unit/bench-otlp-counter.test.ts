/**
 * The benchmark's counting receiver (bench/otlp-counter.mjs) is the measuring
 * instrument of `node bench/run.mjs --grpc`: its gRPC endpoint must take a
 * whole Export request in one flight. With the 64 KiB HTTP/2 windows grpc-js
 * servers keep by default, a ~400 KiB request needed one WINDOW_UPDATE per
 * 64 KiB, each waiting for a turn of the bridge's busy event loop, and the
 * receiver set the pace instead of the bridge.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { connect, type ClientHttp2Session } from 'node:http2';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { createOtlpSender } from '../../src/export/otlp-sender.js';
import { prepareResource, TraceBatch } from '../../src/export/trace-batch.js';
import type { SpanRecord } from '../../src/translate/types.js';

const COUNTER = fileURLToPath(new URL('../../bench/otlp-counter.mjs', import.meta.url));
/** What the bridge sends at 100k datagrams/s: ~1,000 spans, ~400 KiB per Export request. */
const REQUEST_BYTES = 400 * 1024;

let counter: ChildProcess | undefined;
let session: ClientHttp2Session | undefined;
afterEach(() => {
  session?.destroy();
  counter?.kill('SIGKILL');
  counter = session = undefined;
});

async function startCounter(): Promise<{ port: number; grpcPort: number }> {
  counter = spawn(process.execPath, [COUNTER, '--grpc'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const [line] = (await once(createInterface({ input: counter.stdout! }), 'line')) as [string];
  return JSON.parse(line) as { port: number; grpcPort: number };
}

function spans(n: number): Uint8Array {
  const batch = new TraceBatch({ encoding: 'protobuf', scope: { name: 'bench-counter-test', version: '1' }, attributeValueLengthLimit: 1024 });
  const resource = prepareResource({ 'service.name': 'bench-counter-test' });
  const now = Date.now();
  for (let i = 0; i < n; i++) {
    const span: SpanRecord = { name: `op-${i}`, kind: 'client', startMs: now, endMs: now + 1, attributes: { 'aws.padding': 'x'.repeat(400) }, status: { code: 'unset' }, events: [], children: [] };
    batch.add(resource, span);
  }
  return batch.take()!;
}

describe('bench/otlp-counter.mjs --grpc', () => {
  it('advertises stream and connection windows larger than an Export request', async () => {
    const { grpcPort } = await startCounter();
    session = connect(`http://127.0.0.1:${grpcPort}`);
    const [settings] = (await once(session, 'remoteSettings')) as [{ initialWindowSize: number }];
    expect(settings.initialWindowSize).toBeGreaterThan(REQUEST_BYTES);
    // The connection window grows by the server's WINDOW_UPDATE on stream 0, right after its SETTINGS.
    for (let i = 0; i < 100 && session.state.remoteWindowSize! <= REQUEST_BYTES; i++) await new Promise((r) => setTimeout(r, 20));
    expect(session.state.remoteWindowSize).toBeGreaterThan(REQUEST_BYTES);
  });

  it('counts the spans of an Export request sent by the bridge gRPC sender', async () => {
    const { port, grpcPort } = await startCounter();
    const c = loadConfig([], { OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc', OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${grpcPort}` });
    if (c.kind !== 'run') throw new Error(c.kind);
    const sender = createOtlpSender(c.otel.traces, 'protobuf');
    const body = spans(1000);
    expect(body.byteLength).toBeGreaterThan(REQUEST_BYTES);
    expect(await sender.send(body, 1000)).toEqual({ ok: true });
    await sender.shutdown();
    const count = (await (await fetch(`http://127.0.0.1:${port}/count`)).json()) as { spans: number; traceRequests: number; bytes: number; badRequests: number };
    expect(count).toMatchObject({ spans: 1000, traceRequests: 1, bytes: body.byteLength, badRequests: 0 });
  });

  it('splits the send→arrival latency by the second a call was sent in, so a cold start shows apart from the steady state', async () => {
    const { port } = await startCounter();
    // Request ids as bench/gen.c and bench/send.py write them: b<seq, 15 digits>-<send monotonic ns, 19 digits>.
    const now = process.hrtime.bigint();
    const sentAgoMs = [3000, 3000, 1500, 500, 500, 500];
    const batch = new TraceBatch({ encoding: 'protobuf', scope: { name: 'bench-counter-test', version: '1' }, attributeValueLengthLimit: 1024 });
    const resource = prepareResource({ 'service.name': 'bench-counter-test' });
    sentAgoMs.forEach((ago, i) => {
      const requestId = `b${String(i + 1).padStart(15, '0')}-${String(now - BigInt(ago) * 1_000_000n).padStart(19, '0')}`;
      batch.add(resource, { name: 'S3.ListBuckets', kind: 'client', startMs: 0, endMs: 1, attributes: { 'aws.request_id': requestId }, status: { code: 'unset' }, events: [], children: [] });
    });
    const res = await fetch(`http://127.0.0.1:${port}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/x-protobuf' }, body: batch.take()! });
    expect(res.status).toBe(200);
    type Summary = { calls: number; p50: number; p99: number; max: number };
    const count = (await (await fetch(`http://127.0.0.1:${port}/count`)).json()) as { timedRoots: number; latencyBySend: { afterFirstSecond: Summary; bySecond: ({ second: number } & Summary)[] } };
    expect(count.timedRoots).toBe(6);
    const { bySecond, afterFirstSecond } = count.latencyBySend;
    expect(bySecond.map((s) => [s.second, s.calls])).toEqual([[0, 2], [1, 1], [2, 3]]);
    expect(bySecond[0]!.p99).toBeGreaterThanOrEqual(3000);
    expect(afterFirstSecond.calls).toBe(4);
    expect(afterFirstSecond.max).toBeGreaterThanOrEqual(1500);
    expect(afterFirstSecond.max).toBeLessThan(3000);
    expect(afterFirstSecond.p50).toBeGreaterThanOrEqual(500);
    expect(afterFirstSecond.p50).toBeLessThan(1500);
  });
});
