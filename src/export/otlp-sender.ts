import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { convertLegacyHttpOptions, createOtlpHttpExportDelegate } from '@opentelemetry/otlp-exporter-base/node-http';
import {
  JsonMetricsSerializer,
  JsonTraceSerializer,
  ProtobufMetricsSerializer,
  ProtobufTraceSerializer,
  type IExporterMetricsHelper,
  type ISerializer,
} from '@opentelemetry/otlp-transformer';
import type { Encoding, SendResult } from './spool.js';

export type Signal = 'traces' | 'metrics';

/** A request body serialized ahead of time (by the spooling exporters), with its item count. */
interface Prepared {
  body: Uint8Array;
  items: number;
}

export interface OtlpSender {
  send(body: Uint8Array, items: number): Promise<SendResult>;
  /** Waits for the request in flight, if any, then closes the HTTP agent. */
  shutdown(): Promise<void>;
}

/**
 * Sends already-serialized OTLP request bodies with the OTLP exporters' own
 * HTTP delegate (`@opentelemetry/otlp-exporter-base`): the same endpoint
 * resolution (`url` or OTEL_EXPORTER_OTLP_[TRACES_|METRICS_]ENDPOINT), headers,
 * compression, timeout, TLS files, keep-alive agent and in-timeout retries as
 * `OTLPTraceExporter`/`OTLPMetricExporter`, and the same Content-Type per
 * encoding. Only serialization moved earlier, so a body can wait in the spool
 * (memory or disk) as the exact bytes that will go on the wire.
 */
export function createOtlpSender(signal: Signal, encoding: Encoding, url?: string): OtlpSender {
  const real = serializerFor(signal, encoding) as ISerializer<unknown, unknown>;
  const serializer: ISerializer<Prepared, unknown> = {
    serializeRequest: (p) => p.body,
    deserializeResponse: (data) => real.deserializeResponse(data),
  };
  const helper: IExporterMetricsHelper<Prepared> = {
    name: signal === 'traces' ? 'span' : 'metric_data_point',
    countItems: (p) => p.items,
  };
  const delegate = createOtlpHttpExportDelegate(
    convertLegacyHttpOptions(url ? { url } : {}, signal === 'traces' ? 'TRACES' : 'METRICS', `v1/${signal}`, {
      'Content-Type': encoding === 'json' ? 'application/json' : 'application/x-protobuf',
    }),
    serializer,
    signal === 'traces' ? 'otlp_http_span_exporter' : 'otlp_http_metric_exporter',
    helper,
    undefined,
  );
  return {
    send: (body, items) => new Promise((resolve) => delegate.export({ body, items }, (r) => resolve(classify(r)))),
    shutdown: () => delegate.shutdown(),
  };
}

export function serializerFor(signal: Signal, encoding: Encoding): ISerializer<never, unknown> {
  if (signal === 'traces') return encoding === 'json' ? JsonTraceSerializer : ProtobufTraceSerializer;
  return encoding === 'json' ? JsonMetricsSerializer : ProtobufMetricsSerializer;
}

/**
 * The delegate reports an HTTP answer it will not retry as an OTLPExporterError
 * carrying the status code; everything else that fails (connection refused or
 * reset, timeout, 429/502/503/504 still failing at the end of its timeout) has
 * no status code and is worth retrying later.
 */
export function classify(r: ExportResult): SendResult {
  if (r.code === ExportResultCode.SUCCESS) return { ok: true };
  const e = r.error as (Error & { code?: unknown }) | undefined;
  const error = e?.message || String(e ?? 'export failed');
  const status = e?.name === 'OTLPExporterError' && typeof e.code === 'number' ? e.code : undefined;
  if (status === undefined || status === 408 || status === 429 || status === 502 || status === 503 || status === 504) {
    return { ok: false, kind: 'transient', error };
  }
  if (status >= 500) return { ok: false, kind: 'server_error', error: `HTTP ${status}: ${error}` };
  return { ok: false, kind: 'rejected', error: `HTTP ${status}: ${error}` };
}
