import { ChannelCredentials, Client, Metadata, status as Status, type ServiceError } from '@grpc/grpc-js';
import type { OtlpTarget } from '../config/otel-env.js';
import { protoFields } from './otlp/protobuf-reader.js';
import type { OtlpSender } from './otlp-sender.js';
import { MAX_RESPONSE_BYTES, partialSuccessOf } from './partial-success.js';
import type { SendResult } from './spool.js';

/**
 * OTLP/gRPC: one unary call per spooled request body to the collector's
 * `TraceService/Export` or `MetricsService/Export`.
 *
 * The body already is the serialized `Export*ServiceRequest` (the same bytes
 * http/protobuf POSTs), so the call's serializer passes it through and no
 * proto file is loaded at run time. `@grpc/grpc-js` is the client the OTel
 * gRPC exporters use: pure JavaScript, TLS and mutual TLS, metadata, gzip,
 * deadlines. One channel per signal, kept open (HTTP/2, reconnects by itself).
 *
 * Outcomes follow the OTLP specification's retryable codes: UNAVAILABLE,
 * CANCELLED, DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE, DATA_LOSS, and
 * RESOURCE_EXHAUSTED only when the server sent a RetryInfo (its delay is
 * honoured) are `transient` (the spool retries them without limit); UNKNOWN
 * and INTERNAL are `server_error` (the analogue of an HTTP 500: retried a few
 * times, then rejected); every other code (INVALID_ARGUMENT, UNAUTHENTICATED,
 * UNIMPLEMENTED, RESOURCE_EXHAUSTED without RetryInfo, ...) is `rejected`.
 * An OK answer may carry a partial success (partial-success.ts); an answer message over
 * MAX_RESPONSE_BYTES is delivered, unread.
 */
const METHODS = {
  traces: '/opentelemetry.proto.collector.trace.v1.TraceService/Export',
  metrics: '/opentelemetry.proto.collector.metrics.v1.MetricsService/Export',
} as const;

const RETRYABLE = new Set<number>([Status.CANCELLED, Status.DEADLINE_EXCEEDED, Status.ABORTED, Status.OUT_OF_RANGE, Status.UNAVAILABLE, Status.DATA_LOSS]);
const SERVER_ERROR = new Set<number>([Status.UNKNOWN, Status.INTERNAL]);
/** grpc-js CompressionAlgorithms: identity 0, deflate 1, gzip 2. */
const GZIP = 2;
const RETRY_INFO_TYPE = 'type.googleapis.com/google.rpc.RetryInfo';

const passThrough = (b: Uint8Array): Buffer => Buffer.from(b.buffer, b.byteOffset, b.byteLength);
const keepBytes = (b: Buffer): Buffer => b;

export function createGrpcSender(target: OtlpTarget): OtlpSender {
  const host = new URL(target.url).host;
  const credentials = target.secure
    ? ChannelCredentials.createSsl(target.tls.ca ?? null, target.tls.key ?? null, target.tls.cert ?? null)
    : ChannelCredentials.createInsecure();
  const client = new Client(host, credentials, {
    ...(target.compression === 'gzip' ? { 'grpc.default_compression_algorithm': GZIP } : {}),
    'grpc.max_receive_message_length': MAX_RESPONSE_BYTES,
    'grpc.primary_user_agent': 'aws-csm-bridge',
  });
  const metadata = new Metadata();
  for (const [k, v] of Object.entries(target.headers)) metadata.set(k.toLowerCase(), v);
  const method = METHODS[target.signal];
  const inflight = new Set<Promise<SendResult>>();

  const send = (body: Uint8Array, items: number): Promise<SendResult> => {
    const p = new Promise<SendResult>((resolve) => {
      try {
        client.makeUnaryRequest(method, passThrough, keepBytes, body, metadata.clone(), { deadline: Date.now() + target.timeoutMs }, (err, response) => {
          if (err && isOversizedAnswer(err)) return resolve({ ok: true, unread: `gRPC: its answer was not read: ${grpcDetails(err.details)}; a partial success in it is not counted` });
          if (err) return resolve(classifyGrpc(err));
          const partial = partialSuccessOf(target.signal, 'protobuf', response, { body, items });
          resolve(partial === undefined ? { ok: true } : { ok: true, partial });
        });
      } catch (e) {
        // e.g. the channel was closed: nothing went out.
        resolve({ ok: false, kind: 'transient', error: `gRPC: ${(e as Error).message}` });
      }
    });
    inflight.add(p);
    void p.finally(() => inflight.delete(p));
    return p;
  };
  return {
    send,
    async shutdown() {
      await Promise.all(inflight);
      client.close();
    },
  };
}

/** A failed call as the spool sees it. */
export function classifyGrpc(err: ServiceError): SendResult {
  const name = Status[err.code] ?? String(err.code);
  const detail = err.details || err.message;
  const error = `gRPC ${name}: ${grpcDetails(detail)}`;
  const tls = isTlsFailure(detail);
  if (RETRYABLE.has(err.code)) return { ok: false, kind: 'transient', error, ...(tls ? { tls } : {}) };
  if (err.code === Status.RESOURCE_EXHAUSTED) {
    const delay = retryInfoDelayMs(err.metadata?.get('grpc-status-details-bin')[0]);
    return delay === undefined ? { ok: false, kind: 'rejected', error } : { ok: false, kind: 'transient', error, retryAfterMs: delay };
  }
  if (SERVER_ERROR.has(err.code)) return { ok: false, kind: 'server_error', error };
  return { ok: false, kind: 'rejected', error };
}

/**
 * grpc-js's words for a call that found no connection, without what says nothing: it reads
 * "No connection established. Last error: null. Resolution note: " before any attempt failed,
 * and stamps each error with its time (the log line has one).
 */
export function grpcDetails(detail: string): string {
  const m = /^No connection established\. Last error: (.*)\. Resolution note: (.*)$/s.exec(detail);
  if (!m) return detail;
  const said = [m[1]!, m[2]!]
    .map((x) => x.replace(/^Error: /, '').replace(/ \(\d{4}-\d\d-\d\dT[\d:.]+Z\)/, '').trim())
    .filter((x) => x !== '' && x !== 'null' && x !== 'undefined');
  return said.length > 0 ? `no connection established: ${said.join('; ')}` : 'no connection established';
}

/**
 * grpc-js refuses a response message over MAX_RESPONSE_BYTES itself (RESOURCE_EXHAUSTED, said by
 * this client, not the server). A server sends its response message only for a call it accepted,
 * so the request was delivered, like an HTTP 2xx with a body too large to read.
 */
function isOversizedAnswer(err: ServiceError): boolean {
  return err.code === Status.RESOURCE_EXHAUSTED && /^Received message larger than max/.test(err.details);
}

/** grpc-js reports a failed handshake as UNAVAILABLE with the TLS library's words in the details. */
function isTlsFailure(detail: string): boolean {
  return /certificate|SSL|TLS|handshake|self.signed|CERT_/i.test(detail);
}

/**
 * The RetryInfo delay in `grpc-status-details-bin` (a google.rpc.Status:
 * 3 = repeated Any details; Any: 1 = type_url, 2 = value; RetryInfo: 1 =
 * retry_delay; Duration: 1 = seconds, 2 = nanos), or undefined when absent or
 * unreadable.
 */
export function retryInfoDelayMs(statusBytes: unknown): number | undefined {
  if (!(statusBytes instanceof Uint8Array)) return undefined;
  try {
    for (const [field, any] of protoFields(statusBytes)) {
      if (field !== 3 || !(any instanceof Uint8Array)) continue;
      let typeUrl = '';
      let value: Uint8Array | undefined;
      for (const [f, v] of protoFields(any)) {
        if (f === 1 && v instanceof Uint8Array) typeUrl = Buffer.from(v).toString('utf8');
        if (f === 2 && v instanceof Uint8Array) value = v;
      }
      if (typeUrl !== RETRY_INFO_TYPE || !value) continue;
      let ms = 0;
      for (const [f, duration] of protoFields(value)) {
        if (f !== 1 || !(duration instanceof Uint8Array)) continue;
        for (const [g, n] of protoFields(duration)) {
          if (g === 1 && typeof n === 'number') ms += n * 1000;
          if (g === 2 && typeof n === 'number') ms += n / 1e6;
        }
      }
      return Math.round(ms);
    }
  } catch {
    return undefined;
  }
  return undefined;
}
