/**
 * A real OTLP/gRPC receiver for tests: a `@grpc/grpc-js` server serving the
 * collector's `TraceService/Export` and `MetricsService/Export`, with the
 * method paths and message types taken from the official service definitions
 * in ./proto (`loadOtlpProtoRoot`). Request bodies are decoded with the same
 * strict decoder as the HTTP sink (otlp-sink.ts): a body that fails is
 * answered INVALID_ARGUMENT and recorded in `errors`.
 *
 * Plaintext, TLS (`tls: { key, cert }`) or mutual TLS (`tls.clientCa`: client
 * certificates are required and checked). `setStatus` makes it answer a gRPC
 * code instead (optionally with a RetryInfo in grpc-status-details-bin), or OK with a
 * partial success.
 */
import { Metadata, Server, ServerCredentials, status as GrpcStatus, type ServerUnaryCall, type sendUnaryData, type ServiceDefinition } from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { decodeOtlpMetrics, decodeOtlpTraces, loadOtlpProtoRoot, type SinkMetricPoint, type SinkSpan } from './otlp-sink.js';

export interface GrpcSinkRequest {
  signal: 'traces' | 'metrics';
  path: string;
  /** Incoming metadata (headers), lower-case keys, first value each. */
  metadata: Record<string, string>;
  bytes: number;
  items: number;
  /** The code answered (0 = OK). */
  code: number;
  error?: string;
}

export interface GrpcAnswer {
  code: number;
  /** With code RESOURCE_EXHAUSTED (or any): a google.rpc.RetryInfo asking to come back after this delay. */
  retryAfterMs?: number;
  /** With code OK: an Export*ServiceResponse with partial_success (the last `rejected` items are not stored). */
  partial?: { rejected: number; message: string };
}

export interface OtlpGrpcSink {
  /** host:port, e.g. 127.0.0.1:PORT (prefix with http:// or https:// for the bridge). */
  readonly address: string;
  readonly spans: SinkSpan[];
  readonly metricPoints: SinkMetricPoint[];
  readonly requests: GrpcSinkRequest[];
  readonly errors: string[];
  setStatus(answer: GrpcAnswer | ((req: GrpcSinkRequest) => GrpcAnswer)): void;
  waitFor(predicate: () => boolean, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export interface GrpcSinkOptions {
  tls?: { key: Buffer; cert: Buffer; clientCa?: Buffer };
}

const SERVICES = [
  { signal: 'traces', service: 'opentelemetry.proto.collector.trace.v1.TraceService', request: 'ExportTraceServiceRequest', rejected: 'rejectedSpans' },
  { signal: 'metrics', service: 'opentelemetry.proto.collector.metrics.v1.MetricsService', request: 'ExportMetricsServiceRequest', rejected: 'rejectedDataPoints' },
] as const;

/** google.rpc.Status { code = 1; message = 2; details = 3 (Any { type_url = 1; value = 2 }) } with one RetryInfo { retry_delay = 1 (Duration) }. */
function retryInfoStatus(code: number, message: string, delayMs: number): Buffer {
  const duration = protobuf.Writer.create()
    .uint32(8)
    .int64(Math.floor(delayMs / 1000))
    .uint32(16)
    .int32((delayMs % 1000) * 1e6)
    .finish();
  const retryInfo = protobuf.Writer.create().uint32(10).bytes(duration).finish();
  const any = protobuf.Writer.create().uint32(10).string('type.googleapis.com/google.rpc.RetryInfo').uint32(18).bytes(retryInfo).finish();
  return Buffer.from(protobuf.Writer.create().uint32(8).int32(code).uint32(18).string(message).uint32(26).bytes(any).finish());
}

export async function startOtlpGrpcSink(opts: GrpcSinkOptions = {}): Promise<OtlpGrpcSink> {
  const root = loadOtlpProtoRoot();
  const spans: SinkSpan[] = [];
  const metricPoints: SinkMetricPoint[] = [];
  const requests: GrpcSinkRequest[] = [];
  const errors: string[] = [];
  let answer: GrpcAnswer | ((req: GrpcSinkRequest) => GrpcAnswer) = { code: GrpcStatus.OK };
  const server = new Server();

  for (const s of SERVICES) {
    const service = root.lookupService(s.service);
    const method = service.methods['Export'];
    if (!method) throw new Error(`${s.service} has no Export method`);
    method.resolve();
    if (method.resolvedRequestType?.name !== s.request) throw new Error(`${s.service}/Export takes ${method.resolvedRequestType?.name}`);
    const path = `/${s.service}/${method.name}`;
    const definition: ServiceDefinition = {
      Export: {
        path,
        requestStream: false,
        responseStream: false,
        requestSerialize: (b: Buffer) => b,
        requestDeserialize: (b: Buffer) => b,
        responseSerialize: (b: Buffer) => b,
        responseDeserialize: (b: Buffer) => b,
      },
    };
    server.addService(definition, {
      Export: (call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>) => {
        const md: Record<string, string> = {};
        for (const [k, v] of Object.entries(call.metadata.getMap())) md[k] = Buffer.isBuffer(v) ? v.toString('base64') : String(v);
        const req: GrpcSinkRequest = { signal: s.signal, path, metadata: md, bytes: call.request.length, items: 0, code: GrpcStatus.OK };
        requests.push(req);
        let items: SinkSpan[] | SinkMetricPoint[];
        try {
          items = s.signal === 'traces' ? decodeOtlpTraces(call.request, 'protobuf', requests.length - 1) : decodeOtlpMetrics(call.request, 'protobuf', requests.length - 1);
        } catch (e) {
          req.code = GrpcStatus.INVALID_ARGUMENT;
          req.error = (e as Error).message;
          errors.push(`${path} #${requests.length - 1}: ${req.error}`);
          callback({ code: GrpcStatus.INVALID_ARGUMENT, details: req.error });
          return;
        }
        req.items = items.length;
        const a = typeof answer === 'function' ? answer(req) : answer;
        req.code = a.code;
        if (a.code === GrpcStatus.OK) {
          const kept = a.partial === undefined ? items : items.slice(0, Math.max(0, items.length - a.partial.rejected));
          if (s.signal === 'traces') spans.push(...(kept as SinkSpan[]));
          else metricPoints.push(...(kept as SinkMetricPoint[]));
          if (a.partial === undefined) {
            callback(null, Buffer.alloc(0)); // an empty Export*ServiceResponse
            return;
          }
          // Encoded with the official response type: partial_success { rejected_*, error_message }.
          const type = root.lookupType(`${s.service.replace(/\.\w+Service$/, '')}.${s.request.replace('Request', 'Response')}`);
          const msg = type.fromObject({ partialSuccess: { [s.rejected]: a.partial.rejected, errorMessage: a.partial.message } });
          callback(null, Buffer.from(type.encode(msg).finish()));
          return;
        }
        const metadata = new Metadata();
        const details = `test sink configured to answer ${GrpcStatus[a.code]}`;
        if (a.retryAfterMs !== undefined) metadata.set('grpc-status-details-bin', retryInfoStatus(a.code, details, a.retryAfterMs));
        callback({ code: a.code, details, metadata });
      },
    });
  }

  const credentials = opts.tls
    ? ServerCredentials.createSsl(opts.tls.clientCa ?? null, [{ private_key: opts.tls.key, cert_chain: opts.tls.cert }], opts.tls.clientCa !== undefined)
    : ServerCredentials.createInsecure();
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', credentials, (e, p) => (e ? reject(e) : resolve(p))));

  return {
    address: `127.0.0.1:${port}`,
    spans,
    metricPoints,
    requests,
    errors,
    setStatus(a) {
      answer = a;
    },
    async waitFor(predicate, timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      while (!predicate()) {
        if (Date.now() > deadline) {
          throw new Error(
            `OtlpGrpcSink.waitFor: not met within ${timeoutMs} ms; requests=${requests.length} (codes ${requests.map((r) => r.code).join(',')}), spans=${spans.length}, points=${metricPoints.length}, errors=${errors.slice(-3).join(' | ')}`,
          );
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.tryShutdown(() => resolve());
        setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 2_000).unref();
      }),
  };
}
