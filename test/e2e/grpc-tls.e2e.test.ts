/**
 * OTLP/gRPC and TLS end to end: real aws-sdk v2 calls → the bridge (configured only through the
 * standard OTEL_* variables) → a real grpc-js server with the official collector service
 * definitions, decoding strictly (test/helpers/otlp-grpc-sink.ts); then over TLS with a CA made
 * by the test, mutual TLS included, for gRPC and for http/protobuf (the strict HTTP sink behind
 * a TLS listener that requires a client certificate). A wrong certificate is a counted export
 * error, never a crash.
 */
import { execFile } from 'node:child_process';
import net from 'node:net';
import { join } from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startBridge, type BridgeProcess } from '../helpers/bridge-process.js';
import { startFakeS3, type FakeS3 } from '../helpers/fake-s3.js';
import { startOtlpGrpcSink, type OtlpGrpcSink } from '../helpers/otlp-grpc-sink.js';
import { startOtlpSink, type OtlpSink, type SinkMetricPoint, type SinkSpan } from '../helpers/otlp-sink.js';
import { getStats, waitStats } from '../helpers/stats.js';
import { makeTestPki, type TestPki } from '../helpers/test-ca.js';
import { freePort } from '../helpers/tools.js';

const run = promisify(execFile);
const CLIENT = join(import.meta.dirname, 'clients', 'js-v2-client.cjs');

let s3: FakeS3;
let pki: TestPki;
const bridges: BridgeProcess[] = [];
beforeAll(async () => {
  pki = makeTestPki();
  s3 = await startFakeS3({ 'GET /': [503, 200], 'PUT /taken': [409], 'HEAD /b1/missing': [404] });
});
afterAll(async () => {
  await s3?.close();
  pki?.remove();
});
afterEach(async () => {
  for (const b of bridges.splice(0)) await b.stop('SIGKILL');
});

const start = async (env: Record<string, string>, args: string[] = []) => {
  const b = await startBridge(['--export-delay-ms', '200', '--metrics-interval-ms', '500', '--attempt-hold-ms', '600000', ...args], env);
  bridges.push(b);
  return b;
};

/** The client's four calls (2 × ListBuckets, CreateBucket, HeadObject), sent to `b`. */
async function sdkCalls(b: BridgeProcess, clientId: string): Promise<void> {
  await run(process.execPath, [CLIENT, s3.url, `http://127.0.0.1:${await freePort()}`], {
    env: {
      PATH: process.env['PATH'] ?? '',
      AWS_CSM_ENABLED: 'true',
      AWS_CSM_PORT: String(b.udpPort),
      AWS_CSM_CLIENT_ID: clientId,
      AWS_ACCESS_KEY_ID: 'AKIAGRPCE2ETEST00000',
      AWS_SECRET_ACCESS_KEY: 'grpc-e2e-secret',
      AWS_SDK_JS_SUPPRESS_MAINTENANCE_MODE_MESSAGE: '1',
    },
    timeout: 30_000,
  });
}

const roots = (spans: SinkSpan[]) => spans.filter((s) => s.parentSpanId === '').map((s) => s.name).sort();
/** The newest cumulative count of rpc.client.call.duration, over every series. */
const callCount = (points: SinkMetricPoint[]) => {
  const latest = Math.max(-1, ...points.filter((p) => p.name === 'rpc.client.call.duration').map((p) => p.requestIndex));
  return points.filter((p) => p.name === 'rpc.client.call.duration' && p.requestIndex === latest).reduce((n, p) => n + (p.count ?? 0), 0);
};

describe('OTLP/gRPC', () => {
  let sink: OtlpGrpcSink;
  afterEach(async () => sink?.close());

  it('OTEL_EXPORTER_OTLP_PROTOCOL=grpc: spans and metrics of real SDK calls arrive, headers as metadata, gzip', async () => {
    sink = await startOtlpGrpcSink();
    const b = await start({
      OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc',
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://${sink.address}`,
      OTEL_EXPORTER_OTLP_HEADERS: 'x-tenant=e2e',
      OTEL_EXPORTER_OTLP_METRICS_HEADERS: 'x-dataset=csm-metrics',
      OTEL_EXPORTER_OTLP_COMPRESSION: 'gzip',
    });
    expect(b.started['export']).toBe(`http://${sink.address} (grpc)`);
    await sdkCalls(b, 'grpc-e2e');
    await sink.waitFor(() => roots(sink.spans).length === 4 && callCount(sink.metricPoints) === 4);
    expect(sink.errors).toEqual([]);
    expect(roots(sink.spans)).toEqual(['S3.CreateBucket', 'S3.HeadObject', 'S3.ListBuckets', 'S3.ListBuckets']);
    expect(sink.spans.filter((s) => s.parentSpanId !== '')).toHaveLength(7); // the attempts
    expect(sink.spans.every((s) => s.resource['service.name'] === 'grpc-e2e')).toBe(true);
    const traces = sink.requests.filter((r) => r.signal === 'traces');
    const metrics = sink.requests.filter((r) => r.signal === 'metrics');
    expect(traces.every((r) => r.metadata['x-tenant'] === 'e2e' && r.metadata['x-dataset'] === undefined)).toBe(true);
    expect(metrics.every((r) => r.metadata['x-tenant'] === 'e2e' && r.metadata['x-dataset'] === 'csm-metrics')).toBe(true);
    const s = await waitStats(b, (x) => x.spans.exported === 11, 'exported counted');
    expect([s.spans.failed, s.spans.dropped, s.spool.retries]).toEqual([0, 0, 0]);
    expect(await b.stop()).toBe(0);
  });

  it('UNAVAILABLE and RESOURCE_EXHAUSTED with RetryInfo are retried until delivered; RESOURCE_EXHAUSTED without it is a refusal, counted', async () => {
    sink = await startOtlpGrpcSink();
    let n = 0;
    // The first trace requests: UNAVAILABLE, then RESOURCE_EXHAUSTED asking to retry in 200 ms; then OK.
    sink.setStatus((r) => (r.signal !== 'traces' ? { code: 0 } : ++n === 1 ? { code: 14 } : n === 2 ? { code: 8, retryAfterMs: 200 } : { code: 0 }));
    const b = await start({ OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc', OTEL_EXPORTER_OTLP_ENDPOINT: `http://${sink.address}` });
    await sdkCalls(b, 'grpc-retry');
    await sink.waitFor(() => roots(sink.spans).length === 4);
    // (The fake S3 answered 503 once, in the first test: from then on ListBuckets takes one attempt, 10 spans a run.)
    let s = await waitStats(b, (x) => x.spans.created >= 10 && x.spans.exported === x.spans.created, 'delivered after retries');
    expect([s.spool.retries, s.spans.failed, s.spans.dropped]).toEqual([2, 0, 0]);
    expect(s.lastExportError.traces?.message).toMatch(/RESOURCE_EXHAUSTED/);

    sink.setStatus((r) => (r.signal === 'traces' ? { code: 8 } : { code: 0 }));
    await sdkCalls(b, 'grpc-retry');
    const before = s.spans.exported;
    s = await waitStats(b, (x) => x.spans.created > before && x.spans.failed === x.spans.created - before, 'refused');
    expect([s.spans.exported, s.spool.queuedSpans]).toEqual([before, 0]);
    expect(await b.stop()).toBe(0);
  });
});

describe('TLS', () => {
  it('gRPC over TLS with mutual TLS (per-signal certificate variables for metrics)', async () => {
    const sink = await startOtlpGrpcSink({ tls: { key: pki.pem.serverKey, cert: pki.pem.serverCert, clientCa: pki.pem.ca } });
    try {
      const b = await start({
        OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc',
        OTEL_EXPORTER_OTLP_ENDPOINT: `https://${sink.address}`,
        OTEL_EXPORTER_OTLP_CERTIFICATE: pki.files.ca,
        OTEL_EXPORTER_OTLP_CLIENT_KEY: pki.files.clientKey,
        OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE: pki.files.clientCert,
        OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE: pki.files.ca,
        OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY: pki.files.clientKey,
        OTEL_EXPORTER_OTLP_METRICS_CLIENT_CERTIFICATE: pki.files.clientCert,
      });
      await sdkCalls(b, 'grpc-mtls');
      await sink.waitFor(() => roots(sink.spans).length === 4 && callCount(sink.metricPoints) === 4);
      expect(sink.errors).toEqual([]);
      const s = await getStats(b);
      expect([s.spool.tlsErrors, s.spans.failed]).toEqual([0, 0]);
      expect(await b.stop()).toBe(0);
    } finally {
      await sink.close();
    }
  });

  it('gRPC: a server certificate from another CA is a counted TLS export error; the bridge keeps running and says why', async () => {
    const sink = await startOtlpGrpcSink({ tls: { key: pki.pem.serverKey, cert: pki.pem.serverCert } });
    try {
      const b = await start({
        OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc',
        OTEL_EXPORTER_OTLP_ENDPOINT: `https://${sink.address}`,
        OTEL_EXPORTER_OTLP_CERTIFICATE: pki.files.otherCa,
        OTEL_EXPORTER_OTLP_TIMEOUT: '2000',
      }, ['--shutdown-timeout-ms', '1000']); // the endpoint never works: do not wait for it at exit
      await sdkCalls(b, 'grpc-wrong-ca');
      const s = await waitStats(b, (x) => x.spool.tlsErrors >= 1 && x.spans.created >= 10 && x.spool.queuedSpans === x.spans.created, 'TLS failures counted');
      expect(s.lastExportError.traces?.message).toMatch(/certificate|SSL|TLS/i);
      expect([s.spans.exported, s.spans.failed, s.internalErrors]).toEqual([0, 0, 0]);
      expect((await fetch(`${b.adminUrl}/healthz`)).status).toBe(200);
      expect(sink.requests).toHaveLength(0);
      await waitFor(() => b.logs.some((l) => String(l['msg']).startsWith('TLS with the OTLP endpoint failed')));
      expect(await b.stop('SIGTERM')).toBe(0);
    } finally {
      await sink.close();
    }
  });

  describe('http/protobuf over https:// (the strict HTTP sink behind a TLS listener that requires a client certificate)', () => {
    let sink: OtlpSink;
    let front: tls.Server;
    let url: string;
    const clients: string[] = [];
    beforeAll(async () => {
      sink = await startOtlpSink();
      const sinkPort = Number(new URL(sink.url).port);
      front = tls.createServer({ key: pki.pem.serverKey, cert: pki.pem.serverCert, ca: pki.pem.ca, requestCert: true, rejectUnauthorized: true }, (socket) => {
        clients.push(String(socket.getPeerCertificate().subject?.CN ?? ''));
        const back = net.connect(sinkPort, '127.0.0.1');
        socket.pipe(back).pipe(socket);
        socket.on('error', () => back.destroy());
        back.on('error', () => socket.destroy());
      });
      front.on('tlsClientError', () => {});
      await new Promise<void>((r) => front.listen(0, '127.0.0.1', () => r()));
      url = `https://127.0.0.1:${(front.address() as net.AddressInfo).port}`;
    });
    afterAll(async () => {
      await new Promise<void>((r) => front.close(() => r()));
      await sink.close();
    });

    it('mutual TLS: everything arrives, decoded strictly', async () => {
      const b = await start({
        OTEL_EXPORTER_OTLP_ENDPOINT: url,
        OTEL_EXPORTER_OTLP_CERTIFICATE: pki.files.ca,
        OTEL_EXPORTER_OTLP_CLIENT_KEY: pki.files.clientKey,
        OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE: pki.files.clientCert,
      });
      await sdkCalls(b, 'https-mtls');
      await sink.waitFor(() => roots(sink.spans.filter((s) => s.resource['service.name'] === 'https-mtls')).length === 4);
      expect(sink.errors).toEqual([]);
      expect(clients.length).toBeGreaterThan(0);
      expect(new Set(clients)).toEqual(new Set(['client']));
      expect(await b.stop()).toBe(0);
    });

    it('no client certificate: the server refuses the handshake; counted, said, no crash', async () => {
      const b = await start({ OTEL_EXPORTER_OTLP_ENDPOINT: url, OTEL_EXPORTER_OTLP_CERTIFICATE: pki.files.ca, OTEL_EXPORTER_OTLP_TIMEOUT: '2000' }, ['--shutdown-timeout-ms', '1000']);
      await sdkCalls(b, 'https-anonymous');
      const s = await waitStats(b, (x) => x.spool.retries >= 1 && x.spans.created >= 10 && x.spool.queuedSpans === x.spans.created, 'refused handshakes counted');
      expect(s.lastExportError.traces).not.toBeNull();
      expect([s.spans.exported, s.internalErrors]).toEqual([0, 0]);
      expect(sink.spans.filter((x) => x.resource['service.name'] === 'https-anonymous')).toHaveLength(0);
      expect(await b.stop('SIGTERM')).toBe(0);
    });

    it('a missing certificate file stops the bridge at start, naming the variable', async () => {
      const { runCli } = await import('../helpers/bridge-process.js');
      const r = await runCli(['--listen', '127.0.0.1:0', '--admin', 'off'], { OTEL_EXPORTER_OTLP_ENDPOINT: url, OTEL_EXPORTER_OTLP_CERTIFICATE: join(pki.dir, 'nope.pem') });
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/OTEL_EXPORTER_OTLP_CERTIFICATE=".*nope.pem": cannot read the CA certificate file/);
    });
  });
});

async function waitFor(cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met');
    await new Promise((r) => setTimeout(r, 50));
  }
}
