import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { createOtlpHttpExportDelegate, httpAgentFactoryFromOptions } from '@opentelemetry/otlp-exporter-base/node-http';
import {
  JsonMetricsSerializer,
  JsonTraceSerializer,
  ProtobufMetricsSerializer,
  ProtobufTraceSerializer,
  type IExporterMetricsHelper,
  type ISerializer,
} from '@opentelemetry/otlp-transformer';
import type { OtlpTarget, Signal } from '../config/otel-env.js';
import { createGrpcSender } from './otlp-grpc-sender.js';
import { partialSuccessOf, type PartialSuccess } from './partial-success.js';
import type { Encoding, SendResult } from './spool.js';

export type { Signal };

/** Sends one already-serialized OTLP request body; the spool owns retries across calls. */
export interface OtlpSender {
  send(body: Uint8Array, items: number): Promise<SendResult>;
  /** Waits for the request in flight, if any, then closes the connection(s). */
  shutdown(): Promise<void>;
}

/**
 * The sender for a target's protocol. `encoding` is the stored body's: a
 * spool file from a run with another protocol is sent with its own
 * Content-Type over HTTP; a JSON body cannot go over gRPC (rejected, counted).
 */
export function createOtlpSender(target: OtlpTarget, encoding: Encoding): OtlpSender {
  if (target.protocol !== 'grpc') return createHttpSender(target, encoding);
  if (encoding === 'protobuf') return createGrpcSender(target);
  return {
    send: () => Promise.resolve({ ok: false, kind: 'rejected', error: 'an OTLP/JSON batch (spooled by an earlier run with http/json) cannot be sent over gRPC' }),
    shutdown: () => Promise.resolve(),
  };
}

/** A request body serialized ahead of time (by the spooling exporters), with its item count. */
interface Prepared {
  body: Uint8Array;
  items: number;
}

/**
 * OTLP/HTTP through the OTLP exporters' own HTTP delegate
 * (`@opentelemetry/otlp-exporter-base`), given every option explicitly from
 * the resolved settings (so it reads no environment): keep-alive agent with
 * the TLS files, headers, gzip, timeout and its in-timeout retries on
 * 429/502/503/504 and network errors, the same Content-Type per encoding as
 * `OTLPTraceExporter`/`OTLPMetricExporter`. Only serialization moved earlier,
 * so a body can wait in the spool as the exact bytes that go on the wire.
 */
function createHttpSender(target: OtlpTarget, encoding: Encoding): OtlpSender {
  // The delegate hands a 2xx answer's body to the serializer, then calls back at once (same tick):
  // the partial success read here belongs to the export whose callback comes next.
  let partial: PartialSuccess | undefined;
  const serializer: ISerializer<Prepared, unknown> = {
    serializeRequest: (p) => p.body,
    deserializeResponse: (data) => {
      partial = partialSuccessOf(target.signal, encoding, data);
      // Nothing for the delegate's own handler, which would only log it through the OTel diag logger.
      return {};
    },
  };
  const helper: IExporterMetricsHelper<Prepared> = {
    name: target.signal === 'traces' ? 'span' : 'metric_data_point',
    countItems: (p) => p.items,
  };
  const headers = { ...target.headers, 'Content-Type': encoding === 'json' ? 'application/json' : 'application/x-protobuf' };
  const { ca, cert, key } = target.tls;
  const delegate = createOtlpHttpExportDelegate(
    {
      url: target.url,
      headers: () => Promise.resolve({ ...headers }),
      compression: target.compression,
      timeoutMillis: target.timeoutMs,
      // The spool sends one request at a time; the delegate's bound only needs to admit it.
      concurrencyLimit: 2,
      agentFactory: httpAgentFactoryFromOptions({ keepAlive: true, ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}) }),
    },
    serializer,
    target.signal === 'traces' ? 'otlp_http_span_exporter' : 'otlp_http_metric_exporter',
    helper,
    undefined,
  );
  return {
    send: (body, items) =>
      new Promise((resolve) => {
        partial = undefined;
        delegate.export({ body, items }, (r) => {
          const result = classify(r);
          resolve(result.ok && partial !== undefined ? { ok: true, partial } : result);
          partial = undefined;
        });
      }),
    shutdown: () => delegate.shutdown(),
  };
}

export function serializerFor(signal: Signal, encoding: Encoding): ISerializer<never, unknown> {
  if (signal === 'traces') return encoding === 'json' ? JsonTraceSerializer : ProtobufTraceSerializer;
  return encoding === 'json' ? JsonMetricsSerializer : ProtobufMetricsSerializer;
}

/** Node's codes for a failed TLS handshake or certificate check (the server's, or ours refused). */
const TLS_ERROR = /^(ERR_SSL_|ERR_TLS_|CERT_|UNABLE_TO_|DEPTH_ZERO_SELF_SIGNED_CERT$|SELF_SIGNED_CERT_IN_CHAIN$|EPROTO$|HOSTNAME_MISMATCH$)/;

/**
 * The delegate reports an HTTP answer it will not retry as an OTLPExporterError
 * carrying the status code; everything else that fails (connection refused or
 * reset, timeout, 429/502/503/504 still failing at the end of its timeout, a
 * TLS failure) has no status code and is worth retrying later: a certificate
 * can be fixed on either side without a restart, and the batch waits in the
 * spool meanwhile (counted in spool.tlsErrors, said in lastExportError).
 */
export function classify(r: ExportResult): SendResult {
  if (r.code === ExportResultCode.SUCCESS) return { ok: true };
  const e = r.error as (Error & { code?: unknown }) | undefined;
  const error = e?.message || String(e ?? 'export failed');
  const status = e?.name === 'OTLPExporterError' && typeof e.code === 'number' ? e.code : undefined;
  if (typeof e?.code === 'string' && TLS_ERROR.test(e.code)) return { ok: false, kind: 'transient', error: `TLS: ${error} (${e.code})`, tls: true };
  if (status === undefined || status === 408 || status === 429 || status === 502 || status === 503 || status === 504) {
    return { ok: false, kind: 'transient', error };
  }
  if (status >= 500) return { ok: false, kind: 'server_error', error: `HTTP ${status}: ${error}` };
  return { ok: false, kind: 'rejected', error: `HTTP ${status}: ${error}` };
}
