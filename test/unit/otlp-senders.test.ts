/**
 * The OTLP senders against real servers: a grpc-js server with the official
 * collector service definitions (test/helpers/otlp-grpc-sink.ts), an HTTPS
 * OTLP endpoint with a CA made by the test, mutual TLS included. Targets are
 * resolved from OTEL_* variables by the real resolver, as the bridge does.
 */
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { createServer as createHttp2Server } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import type { OtlpTarget } from '../../src/config/otel-env.js';
import { grpcDetails, retryInfoDelayMs } from '../../src/export/otlp-grpc-sender.js';
import { createOtlpSender, MAX_RESPONSE_BYTES } from '../../src/export/otlp-sender.js';
import { prepareResource, TraceBatch } from '../../src/export/trace-batch.js';
import type { SpanRecord } from '../../src/translate/types.js';
import { startHostileCollector, type HostileCollector } from '../helpers/hostile-collector.js';
import { startOtlpGrpcSink, type OtlpGrpcSink } from '../helpers/otlp-grpc-sink.js';
import { decodeOtlpTraces, type SinkSpan } from '../helpers/otlp-sink.js';
import { makeTestPki, type TestPki } from '../helpers/test-ca.js';
import { freePort } from '../helpers/tools.js';

/** Through the real config loader, as the bridge resolves it. */
const traces = (env: NodeJS.ProcessEnv): OtlpTarget => {
  const c = loadConfig([], env);
  if (c.kind !== 'run') throw new Error(c.kind);
  return c.otel.traces;
};

/** One encoded ExportTraceServiceRequest with `n` spans named op-0..op-n-1. */
function body(n: number): Uint8Array {
  const batch = new TraceBatch({ encoding: 'protobuf', scope: { name: 't', version: '1' }, attributeValueLengthLimit: 1024 });
  const resource = prepareResource({ 'service.name': 'sender-test' });
  const now = Date.now();
  for (let i = 0; i < n; i++) {
    const span: SpanRecord = { name: `op-${i}`, kind: 'client', startMs: now, endMs: now + 1, attributes: { i }, status: { code: 'unset' }, events: [], children: [] };
    batch.add(resource, span);
  }
  return batch.take()!;
}

let pki: TestPki;
beforeAll(() => {
  pki = makeTestPki();
});
afterAll(() => pki.remove());

describe('gRPC sender', () => {
  let sink: OtlpGrpcSink;
  afterEach(async () => sink?.close());

  it('sends the spooled body as one unary Export call, headers as metadata, gzip; the server decodes it strictly', async () => {
    sink = await startOtlpGrpcSink();
    const t = traces({
      OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc',
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://${sink.address}`,
      OTEL_EXPORTER_OTLP_HEADERS: 'x-team=blue,authorization=Bearer%20abc',
      OTEL_EXPORTER_OTLP_COMPRESSION: 'gzip',
    });
    const sender = createOtlpSender(t, 'protobuf');
    expect(await sender.send(body(3), 3)).toEqual({ ok: true });
    expect(await sender.send(body(2), 2)).toEqual({ ok: true });
    await sender.shutdown();
    expect(sink.errors).toEqual([]);
    expect(sink.spans.map((s) => s.name)).toEqual(['op-0', 'op-1', 'op-2', 'op-0', 'op-1']);
    expect(sink.requests[0]).toMatchObject({ signal: 'traces', path: '/opentelemetry.proto.collector.trace.v1.TraceService/Export', items: 3 });
    expect(sink.requests[0]!.metadata).toMatchObject({ 'x-team': 'blue', authorization: 'Bearer abc' });
  });

  it('gzip: the request carries grpc-encoding gzip and a compressed message (seen on the raw HTTP/2 stream)', async () => {
    // grpc-js servers decompress before the handler sees anything, so look at the wire with node:http2.
    const seen: { encoding: string | undefined; compressedFlag: number; spans: number }[] = [];
    const server = createHttp2Server();
    server.on('stream', (stream, headers) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const frame = Buffer.concat(chunks);
        const message = frame.subarray(5, 5 + frame.readUInt32BE(1));
        const plain = frame[0] === 1 ? gunzipSync(message) : message;
        seen.push({ encoding: headers['grpc-encoding'] as string | undefined, compressedFlag: frame[0]!, spans: decodeOtlpTraces(plain, 'protobuf').length });
        stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
        stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
        stream.end(Buffer.alloc(5)); // one uncompressed, empty ExportTraceServiceResponse
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const t = traces({
      OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc',
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      OTEL_EXPORTER_OTLP_TRACES_COMPRESSION: 'gzip',
    });
    const sender = createOtlpSender(t, 'protobuf');
    expect(await sender.send(body(4), 4)).toEqual({ ok: true });
    await sender.shutdown();
    await new Promise<void>((r) => server.close(() => r()));
    expect(seen).toEqual([{ encoding: 'gzip', compressedFlag: 1, spans: 4 }]);
  });

  it('an OK answer whose message is over MAX_RESPONSE_BYTES: delivered (the server answers only a call it accepted), read no further, said', async () => {
    let calls = 0;
    const server = createHttp2Server();
    server.on('stream', (stream) => {
      stream.on('data', () => {});
      stream.on('end', () => {
        calls++;
        stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
        stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
        const size = MAX_RESPONSE_BYTES + 1024 * 1024;
        const frame = Buffer.alloc(5 + size);
        frame.writeUInt32BE(size, 1);
        stream.end(frame);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const sender = createOtlpSender(traces({ OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc', OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }), 'protobuf');
    expect(await sender.send(body(2), 2)).toEqual({ ok: true, unread: expect.stringMatching(/^gRPC: its answer was not read: Received message larger than max/) });
    await sender.shutdown();
    await new Promise<void>((r) => server.close(() => r()));
    expect(calls).toBe(1);
  });

  it("maps the OTLP spec's retryable codes to transient, RESOURCE_EXHAUSTED only with RetryInfo, the rest to rejected", async () => {
    sink = await startOtlpGrpcSink();
    const sender = createOtlpSender(traces({ OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc', OTEL_EXPORTER_OTLP_ENDPOINT: `http://${sink.address}` }), 'protobuf');
    const kind = async (code: number, retryAfterMs?: number) => {
      sink.setStatus(retryAfterMs === undefined ? { code } : { code, retryAfterMs });
      return sender.send(body(1), 1);
    };
    for (const code of [GrpcStatus.UNAVAILABLE, GrpcStatus.CANCELLED, GrpcStatus.DEADLINE_EXCEEDED, GrpcStatus.ABORTED, GrpcStatus.OUT_OF_RANGE, GrpcStatus.DATA_LOSS]) {
      expect(await kind(code), GrpcStatus[code]).toMatchObject({ ok: false, kind: 'transient' });
    }
    expect(await kind(GrpcStatus.RESOURCE_EXHAUSTED)).toMatchObject({ ok: false, kind: 'rejected', error: expect.stringMatching(/RESOURCE_EXHAUSTED/) });
    expect(await kind(GrpcStatus.RESOURCE_EXHAUSTED, 2_500)).toMatchObject({ ok: false, kind: 'transient', retryAfterMs: 2_500 });
    for (const code of [GrpcStatus.INVALID_ARGUMENT, GrpcStatus.UNAUTHENTICATED, GrpcStatus.PERMISSION_DENIED, GrpcStatus.UNIMPLEMENTED]) {
      expect(await kind(code), GrpcStatus[code]).toMatchObject({ ok: false, kind: 'rejected' });
    }
    expect(await kind(GrpcStatus.INTERNAL)).toMatchObject({ ok: false, kind: 'server_error' });
    // A body the server cannot decode is refused (INVALID_ARGUMENT) and never retried.
    sink.setStatus({ code: GrpcStatus.OK });
    expect(await sender.send(new Uint8Array([0x0a, 0xff, 0x01]), 1)).toMatchObject({ ok: false, kind: 'rejected', error: expect.stringMatching(/INVALID_ARGUMENT/) });
    expect(sink.errors).toHaveLength(1);
    await sender.shutdown();
  });

  it('nothing listening: UNAVAILABLE, transient, within the deadline', async () => {
    const port = await freePort();
    const sender = createOtlpSender(
      traces({ OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc', OTEL_EXPORTER_OTLP_ENDPOINT: `127.0.0.1:${port}`, OTEL_EXPORTER_OTLP_INSECURE: 'true', OTEL_EXPORTER_OTLP_TIMEOUT: '2000' }),
      'protobuf',
    );
    const r = await sender.send(body(1), 1);
    expect(r).toMatchObject({ ok: false, kind: 'transient', error: expect.stringMatching(/^gRPC (UNAVAILABLE: no connection established: connect ECONNREFUSED|DEADLINE_EXCEEDED)/) });
    expect(r.ok ? '' : r.error).not.toMatch(/null|Resolution note/);
    await sender.shutdown();
  });

  it('says what happened without grpc-js\'s empty parts ("Last error: null. Resolution note: ")', () => {
    expect(grpcDetails('No connection established. Last error: null. Resolution note: ')).toBe('no connection established');
    expect(grpcDetails('No connection established. Last error: Protocol error (2026-12-06T10:31:37.485Z). Resolution note: ')).toBe('no connection established: Protocol error');
    expect(grpcDetails('No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:1. Resolution note: DNS says no')).toBe(
      'no connection established: connect ECONNREFUSED 127.0.0.1:1; DNS says no',
    );
    expect(grpcDetails('Deadline exceeded after 1.502s,Waiting for LB pick')).toBe('Deadline exceeded after 1.502s,Waiting for LB pick');
  });

  it('a JSON batch left by an http/json run cannot go over gRPC: rejected, not retried', async () => {
    sink = await startOtlpGrpcSink();
    const sender = createOtlpSender(traces({ OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc', OTEL_EXPORTER_OTLP_ENDPOINT: `http://${sink.address}` }), 'json');
    expect(await sender.send(new Uint8Array([0x7b, 0x7d]), 1)).toMatchObject({ ok: false, kind: 'rejected' });
    expect(sink.requests).toHaveLength(0);
  });

  it('TLS and mutual TLS with the test CA; a wrong CA or a missing client certificate is a TLS failure, never a crash', async () => {
    sink = await startOtlpGrpcSink({ tls: { key: pki.pem.serverKey, cert: pki.pem.serverCert, clientCa: pki.pem.ca } });
    const env = {
      OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc',
      OTEL_EXPORTER_OTLP_ENDPOINT: `https://${sink.address}`,
      OTEL_EXPORTER_OTLP_TIMEOUT: '3000',
    };
    const good = createOtlpSender(
      traces({ ...env, OTEL_EXPORTER_OTLP_CERTIFICATE: pki.files.ca, OTEL_EXPORTER_OTLP_CLIENT_KEY: pki.files.clientKey, OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE: pki.files.clientCert }),
      'protobuf',
    );
    expect(await good.send(body(2), 2)).toEqual({ ok: true });
    await good.shutdown();
    expect(sink.spans).toHaveLength(2);

    const wrongCa = createOtlpSender(
      traces({ ...env, OTEL_EXPORTER_OTLP_CERTIFICATE: pki.files.otherCa, OTEL_EXPORTER_OTLP_CLIENT_KEY: pki.files.clientKey, OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE: pki.files.clientCert }),
      'protobuf',
    );
    expect(await wrongCa.send(body(1), 1)).toMatchObject({ ok: false, kind: 'transient', tls: true });
    await wrongCa.shutdown();

    const noClientCert = createOtlpSender(traces({ ...env, OTEL_EXPORTER_OTLP_CERTIFICATE: pki.files.ca }), 'protobuf');
    expect(await noClientCert.send(body(1), 1)).toMatchObject({ ok: false, kind: 'transient' });
    await noClientCert.shutdown();
    expect(sink.spans).toHaveLength(2);
  });

  it('reads the RetryInfo delay out of grpc-status-details-bin, and nothing out of garbage', () => {
    expect(retryInfoDelayMs(Buffer.from([0x08, 0x08]))).toBeUndefined();
    expect(retryInfoDelayMs(Buffer.from([0x1a, 0xff]))).toBeUndefined();
    expect(retryInfoDelayMs(undefined)).toBeUndefined();
  });
});

describe('HTTP sender over TLS', () => {
  let server: HttpsServer | undefined;
  afterEach(async () => {
    server?.closeAllConnections();
    await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
    server = undefined;
  });

  /** An OTLP/HTTP endpoint over TLS that requires a client certificate signed by the test CA; decodes strictly. */
  async function httpsSink(requireClientCert: boolean) {
    const spans: SinkSpan[] = [];
    const errors: string[] = [];
    const clients: string[] = [];
    server = createHttpsServer({ key: pki.pem.serverKey, cert: pki.pem.serverCert, ca: pki.pem.ca, requestCert: requireClientCert, rejectUnauthorized: requireClientCert }, (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        try {
          const raw = Buffer.concat(chunks);
          const bytes = req.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw;
          spans.push(...decodeOtlpTraces(bytes, 'protobuf'));
          const peer = (req.socket as import('node:tls').TLSSocket).getPeerCertificate();
          clients.push(String(peer?.subject?.CN ?? ''));
          res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
        } catch (e) {
          errors.push((e as Error).message);
          res.writeHead(400).end();
        }
      });
    });
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', () => r()));
    return { url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`, spans, errors, clients };
  }

  it('https:// with the CA file and a client certificate (mutual TLS), gzip', async () => {
    const s = await httpsSink(true);
    const sender = createOtlpSender(
      traces({
        OTEL_EXPORTER_OTLP_ENDPOINT: s.url,
        OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE: pki.files.ca,
        OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY: pki.files.clientKey,
        OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE: pki.files.clientCert,
        OTEL_EXPORTER_OTLP_COMPRESSION: 'gzip',
      }),
      'protobuf',
    );
    expect(await sender.send(body(3), 3)).toEqual({ ok: true });
    await sender.shutdown();
    expect([s.errors, s.spans.length, s.clients]).toEqual([[], 3, ['client']]);
  });

  it('a server certificate from another CA, or no client certificate, is a TLS failure: transient, said so, no crash', async () => {
    const s = await httpsSink(true);
    const wrong = createOtlpSender(traces({ OTEL_EXPORTER_OTLP_ENDPOINT: s.url, OTEL_EXPORTER_OTLP_CERTIFICATE: pki.files.otherCa, OTEL_EXPORTER_OTLP_TIMEOUT: '2000' }), 'protobuf');
    const r = await wrong.send(body(1), 1);
    expect(r).toMatchObject({ ok: false, kind: 'transient', tls: true, error: expect.stringMatching(/^TLS: .*(certificate|CERT)/i) });
    await wrong.shutdown();
    const anonymous = createOtlpSender(traces({ OTEL_EXPORTER_OTLP_ENDPOINT: s.url, OTEL_EXPORTER_OTLP_CERTIFICATE: pki.files.ca, OTEL_EXPORTER_OTLP_TIMEOUT: '2000' }), 'protobuf');
    expect(await anonymous.send(body(1), 1)).toMatchObject({ ok: false, kind: 'transient' });
    await anonymous.shutdown();
    expect(s.spans).toHaveLength(0);
  });
});

describe('HTTP sender against an endpoint that never finishes its answer, or answers too much', () => {
  let collector: HostileCollector | undefined;
  afterEach(async () => {
    await collector?.close();
    collector = undefined;
  });
  const sender = (url: string) => createOtlpSender(traces({ OTEL_EXPORTER_OTLP_ENDPOINT: url, OTEL_EXPORTER_OTLP_TIMEOUT: '1000' }), 'protobuf');

  it('a status line dripped a byte at a time: the export timeout ends the request, a transient failure that says so', { timeout: 15_000 }, async () => {
    collector = await startHostileCollector({ kind: 'drip-status', dripMs: 200 });
    const s = sender(collector.url);
    expect(await s.send(body(2), 2)).toEqual({ ok: false, kind: 'transient', error: 'no answer within the export timeout (1000 ms; OTEL_EXPORTER_OTLP_TIMEOUT)' });
    await s.shutdown();
    expect(collector.requests).toEqual([{ path: '/v1/traces', spans: 2 }]);
  });

  it('a 200 whose body drips for ever: delivered at the timeout (a 2xx is the answer), the unread body said', { timeout: 15_000 }, async () => {
    collector = await startHostileCollector({ kind: 'drip-body', dripMs: 200 });
    const s = sender(collector.url);
    expect(await s.send(body(2), 2)).toEqual({ ok: true, unread: 'HTTP 200 (delivered), but its answer was not read: it did not arrive within the export timeout (1000 ms); a partial success in it is not counted' });
    await s.shutdown();
  });

  it('a 200 with a body over MAX_RESPONSE_BYTES: delivered once, read no further, said', { timeout: 15_000 }, async () => {
    collector = await startHostileCollector({ kind: 'huge-body', bytes: MAX_RESPONSE_BYTES + 1024 * 1024 });
    const s = sender(collector.url);
    expect(await s.send(body(3), 3)).toEqual({ ok: true, unread: `HTTP 200 (delivered), but its answer was not read: it is over ${MAX_RESPONSE_BYTES} bytes; a partial success in it is not counted` });
    expect(await s.send(body(1), 1)).toMatchObject({ ok: true });
    await s.shutdown();
    expect(collector.requests).toEqual([
      { path: '/v1/traces', spans: 3 },
      { path: '/v1/traces', spans: 1 },
    ]);
  });
});
