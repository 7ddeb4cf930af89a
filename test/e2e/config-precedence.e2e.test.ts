/**
 * Flags beat environment variables, per-signal ones included (issue 18.4), as a user meets
 * it: `--otlp-protocol grpc` with OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=http/json left in the
 * environment sent traces over http/json and metrics over gRPC. The real CLI, a real gRPC
 * sink, real CSM datagrams. (Every combination: test/unit/config-precedence.test.ts.)
 */
import { createSocket } from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { startBridge, type BridgeProcess } from '../helpers/bridge-process.js';
import { startOtlpGrpcSink, type OtlpGrpcSink } from '../helpers/otlp-grpc-sink.js';

let sink: OtlpGrpcSink | undefined;
let bridge: BridgeProcess | undefined;
afterEach(async () => {
  await bridge?.stop('SIGKILL');
  await sink?.close();
});

describe('flags > environment, through the CLI', () => {
  it('--otlp-protocol grpc beats OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=http/json: both signals arrive over gRPC', async () => {
    sink = await startOtlpGrpcSink();
    bridge = await startBridge(
      ['--otlp-protocol', 'grpc', '--otlp-endpoint', `http://${sink.address}`, '--export-delay-ms', '100', '--metrics-interval-ms', '300', '--no-ui'],
      { OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/json', OTEL_EXPORTER_OTLP_METRICS_PROTOCOL: 'http/json' },
    );
    expect([bridge.started['otlpProtocol'], bridge.started['export']]).toEqual(['grpc', `http://${sink.address} (grpc)`]);
    const now = Date.now();
    const s = createSocket('udp4');
    for (const d of [
      { Version: 1, Type: 'ApiCallAttempt', ClientId: 'precedence', Service: 'S3', Api: 'ListBuckets', Timestamp: now, AttemptLatency: 3, HttpStatusCode: 200 },
      { Version: 1, Type: 'ApiCall', ClientId: 'precedence', Service: 'S3', Api: 'ListBuckets', Timestamp: now, AttemptCount: 1, Latency: 4, FinalHttpStatusCode: 200 },
    ]) {
      await new Promise<void>((res) => s.send(JSON.stringify(d), bridge!.udpPort, '127.0.0.1', () => res()));
    }
    s.close();
    await sink.waitFor(() => sink!.spans.some((x) => x.name === 'S3.ListBuckets') && sink!.requests.some((r) => r.signal === 'metrics'), 15_000);
    expect(sink.errors).toEqual([]);
    expect(sink.spans.find((x) => x.parentSpanId === '')?.resource['service.name']).toBe('precedence');
  });
});
