/**
 * The app span listeners under bad input, on a real bridge process with real sockets: every
 * refusal is the OTLP answer for it and is counted; memory stays bounded; the CSM datagram path
 * goes on untouched while the listener is flooded.
 */
import { Client, credentials, status as GrpcStatus } from '@grpc/grpc-js';
import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { connect } from 'node:net';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_BODY_BYTES, MAX_INFLATED_BYTES } from '../../src/join/app-listener.js';
import { MAX_INDEXED_SPANS } from '../../src/join/app-span-index.js';
import { protobufRequest, type FixtureSpan } from '../helpers/app-spans.js';
import { startBridge, type BridgeProcess } from '../helpers/bridge-process.js';
import { loadOtlpProtoRoot } from '../helpers/otlp-sink.js';
import { getStats } from '../helpers/stats.js';
import { freePort, sendUdp } from '../helpers/tools.js';

describe('app span listeners: hostile input', () => {
  let bridge: BridgeProcess;
  let http: string;
  let grpc: string;

  beforeAll(async () => {
    const [h, g] = [await freePort(), await freePort()];
    http = `http://127.0.0.1:${h}/v1/traces`;
    grpc = `127.0.0.1:${g}`;
    bridge = await startBridge(['--app-otlp-http', `127.0.0.1:${h}`, '--app-otlp-grpc', grpc], { OTEL_TRACES_EXPORTER: 'none', OTEL_METRICS_EXPORTER: 'none' });
  });
  afterAll(async () => {
    await bridge?.stop();
  });

  const post = (body: Buffer | string, headers: Record<string, string>) => fetch(http, { method: 'POST', body, headers });

  it('answers malformed protobuf and JSON with 400 and a Status, counted', async () => {
    const a = await post(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0x0f, 1, 2]), { 'content-type': 'application/x-protobuf' });
    expect(a.status).toBe(400);
    expect(Buffer.from(await a.arrayBuffer()).toString()).toContain('not an OTLP ExportTraceServiceRequest');
    const b = await post('{"resourceSpans": 7', { 'content-type': 'application/json' });
    expect(b.status).toBe(400);
    expect(((await b.json()) as { message: string }).message).toMatch(/not JSON/);
    expect((await getStats(bridge)).appSpans.rejected.malformed).toBe(2);
  });

  it('refuses a wrong content type or encoding with 415', async () => {
    expect((await post('x', { 'content-type': 'text/plain' })).status).toBe(415);
    expect((await post('x', { 'content-type': 'application/x-protobuf', 'content-encoding': 'br' })).status).toBe(415);
    expect((await getStats(bridge)).appSpans.rejected.unsupported_media_type).toBe(2);
  });

  it(`refuses bodies over ${MAX_BODY_BYTES} bytes, and gzip bombs past ${MAX_INFLATED_BYTES} inflated, with 413`, async () => {
    // The answer comes before the body is read (the client may still be writing when the connection closes).
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(http, { method: 'POST', headers: { 'content-type': 'application/x-protobuf', 'content-length': MAX_BODY_BYTES + 1 } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end(Buffer.alloc(MAX_BODY_BYTES + 1));
    });
    expect(status).toBe(413);
    const bomb = gzipSync(Buffer.alloc(64 * 1024 * 1024)); // 64 MiB of zeros in ~64 KiB
    expect(bomb.length).toBeLessThan(MAX_BODY_BYTES);
    expect((await post(bomb, { 'content-type': 'application/x-protobuf', 'content-encoding': 'gzip' })).status).toBe(413);
    const s = await getStats(bridge);
    expect(s.appSpans.rejected.too_large).toBe(2);
    expect(s.memory.rssBytes).toBeLessThan(s.memory.ceilingBytes);
  });

  it('drops a client that never finishes its headers (slowloris)', async () => {
    const closed = await new Promise<boolean>((resolve) => {
      const port = Number(new URL(http).port);
      const sock = connect(port, '127.0.0.1', () => sock.write('POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: app'));
      sock.on('close', () => resolve(true));
      sock.on('error', () => undefined);
      setTimeout(() => {
        sock.destroy();
        resolve(false);
      }, 15_000).unref();
    });
    expect(closed).toBe(true);
    expect((await getStats(bridge)).appSpans.rejected.timeout).toBeGreaterThanOrEqual(1);
  }, 20_000);

  it('answers malformed gRPC requests INVALID_ARGUMENT', async () => {
    const client = new Client(grpc, credentials.createInsecure());
    const code = await new Promise<number>((resolve) =>
      client.makeUnaryRequest(
        '/opentelemetry.proto.collector.trace.v1.TraceService/Export',
        (b: Buffer) => b,
        (b: Buffer) => b,
        Buffer.from([0x0a, 0x05, 0x01]),
        (err) => resolve(err?.code ?? GrpcStatus.OK),
      ),
    );
    client.close();
    expect(code).toBe(GrpcStatus.INVALID_ARGUMENT);
  });

  it('a flood of app spans: the index stays bounded, the excess is refused as partial success, CSM datagrams are all taken meanwhile', async () => {
    const type = loadOtlpProtoRoot().lookupType('opentelemetry.proto.collector.trace.v1.ExportTraceServiceResponse');
    const before = await getStats(bridge);
    const batch = 5_000;
    let refused = 0;
    let sent = 0;
    for (let i = 0; sent < MAX_INDEXED_SPANS + 2 * batch; i++) {
      const spans: FixtureSpan[] = Array.from({ length: batch }, (_, k) => ({
        traceId: randomBytes(16),
        spanId: randomBytes(8),
        name: 'DynamoDB.GetItem',
        kind: 3,
        startMs: Date.now(),
        endMs: Date.now() + 1,
        attributes: { 'rpc.system': 'aws-api', 'aws.request_id': `FLOOD-${i}-${k}` },
      }));
      const udp = sendUdp(bridge.udpPort, JSON.stringify({ Version: 1, Type: 'ApiCall', ClientId: 'flood', Service: 'S3', Api: 'ListBuckets', Timestamp: Date.now(), AttemptCount: 0, Latency: 1 }));
      const r = await post(protobufRequest(spans), { 'content-type': 'application/x-protobuf' });
      await udp;
      expect(r.status).toBe(200);
      const answer = type.toObject(type.decode(Buffer.from(await r.arrayBuffer())), { longs: Number }) as { partialSuccess?: { rejectedSpans: number; errorMessage: string } };
      refused += answer.partialSuccess?.rejectedSpans ?? 0;
      sent += batch;
    }
    const s = await getStats(bridge);
    expect(s.appSpans.index.held).toBeLessThanOrEqual(MAX_INDEXED_SPANS);
    expect(refused).toBe(sent - (s.appSpans.index.indexed - before.appSpans.index.indexed));
    expect(refused).toBeGreaterThanOrEqual(2 * batch);
    expect(s.appSpans.refused - before.appSpans.refused).toBe(refused);
    expect(s.datagrams.accepted - before.datagrams.accepted).toBe(sent / batch);
    expect(s.memory.rssBytes).toBeLessThan(s.memory.ceilingBytes);
  }, 60_000);
});
