/**
 * Sending one spooled OTLP request body: over HTTP (here) or gRPC (otlp-grpc-sender.ts).
 * The HTTP request is made here, not through the OTLP exporters' HTTP delegate: its timeout
 * measures only silence on the socket (an endpoint that dripped its answer held a request for
 * ever), and it reports a 2xx answer with an oversized body as a failure without its status (the
 * same batch was delivered again and again, never counted).
 */
import { Agent as HttpAgent, request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { createRequire } from 'node:module';
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import {
  JsonMetricsSerializer,
  JsonTraceSerializer,
  ProtobufMetricsSerializer,
  ProtobufTraceSerializer,
  type ISerializer,
} from '@opentelemetry/otlp-transformer';
import type { OtlpTarget, Signal } from '../config/otel-env.js';
import { MAX_RESPONSE_BYTES, partialSuccessOf, type PartialSuccess } from './partial-success.js';
import type { Encoding, SendResult } from './spool.js';

export type { Signal };

const gzipAsync = promisify(gzip);

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
  if (encoding === 'protobuf') return lazyGrpcSender(target);
  return {
    send: () => Promise.resolve({ ok: false, kind: 'rejected', error: 'an OTLP/JSON batch (spooled by an earlier run with http/json) cannot be sent over gRPC' }),
    shutdown: () => Promise.resolve(),
  };
}

/**
 * The gRPC sender, its module (and @grpc/grpc-js) imported by the first send: a bridge that
 * exports over HTTP never loads the gRPC client (bench/module-cost.mjs).
 */
function lazyGrpcSender(target: OtlpTarget): OtlpSender {
  let sender: Promise<OtlpSender> | undefined;
  const get = (): Promise<OtlpSender> => (sender ??= import('./otlp-grpc-sender.js').then((m) => m.createGrpcSender(target)));
  return {
    send: async (body, items) => {
      try {
        return await (await get()).send(body, items);
      } catch (e) {
        // The client could not be made (createGrpcSender threw): nothing went out.
        return { ok: false, kind: 'transient', error: `gRPC: ${(e as Error).message}` };
      }
    },
    shutdown: async () => {
      if (sender) await (await sender.catch(() => undefined))?.shutdown();
    },
  };
}

export { MAX_RESPONSE_BYTES };
/** Longest part of a refusal's body kept in its error message. */
const MAX_ERROR_BODY_CHARS = 200;
/**
 * Retries inside one export's timeout of an answer that says "try later" (429/502/503/504) or a
 * dropped connection, as the OTLP exporters' RetryingTransport does them: at most
 * IN_TIMEOUT_RETRIES, backoff from FIRST_RETRY_MS times RETRY_FACTOR up to MAX_RETRY_MS, ±RETRY_JITTER,
 * or the server's Retry-After; never past the timeout. The spool retries after that, with its own backoff.
 */
const IN_TIMEOUT_RETRIES = 5;
const FIRST_RETRY_MS = 1_000;
const RETRY_FACTOR = 1.5;
const MAX_RETRY_MS = 5_000;
const RETRY_JITTER = 0.2;
const RETRYABLE_STATUS = new Set([429, 502, 503, 504]);
const RETRYABLE_NETWORK = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN', 'ENOTFOUND', 'ENETUNREACH', 'EHOSTUNREACH']);
const USER_AGENT = 'aws-csm-bridge';

/** One HTTP request's end: an answer (its body unless `unread` says why not), or no answer. */
export type HttpAttempt =
  | { kind: 'answer'; status: number; statusMessage: string; retryAfter: string | undefined; body: Buffer | undefined; unread?: 'too_large' | 'timeout' | 'cut' }
  | { kind: 'error'; error: Error & { code?: unknown }; timedOut: boolean };

/**
 * OTLP/HTTP: one POST per spooled request body, on a keep-alive agent with the TLS files
 * (as the OTLP exporters' agent factory makes it), the headers, gzip, the same Content-Type per encoding
 * as `OTLPTraceExporter`/`OTLPMetricExporter`.
 *
 * The timeout (OTEL_EXPORTER_OTLP_TIMEOUT) bounds the whole export, retries included, however the
 * endpoint behaves: an endpoint that drips its answer a byte at a time is cut off at the deadline
 * (a socket timeout would only measure silence). A 2xx status means delivered, even when the
 * answer's body does not arrive in time or exceeds MAX_RESPONSE_BYTES (read no further): the batch
 * counts as exported, with a warning that its partial success could not be read.
 */
function createHttpSender(target: OtlpTarget, encoding: Encoding): OtlpSender {
  const headers = { ...target.headers, 'Content-Type': encoding === 'json' ? 'application/json' : 'application/x-protobuf', 'User-Agent': USER_AGENT };
  const { ca, cert, key } = target.tls;
  const url = new URL(target.url);
  // node's agents directly (@opentelemetry/otlp-exporter-base's factory does only this, and loading it kept its whole exporter base in memory);
  // node:https (and node:tls) only for an https endpoint.
  const https = url.protocol === 'https:' ? (createRequire(import.meta.url)('node:https') as typeof import('node:https')) : undefined;
  const agent = https ? new https.Agent({ keepAlive: true, ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}) }) : new HttpAgent({ keepAlive: true });
  const send = https ? https.request : httpRequest;
  const inflight = new Set<Promise<SendResult>>();

  const exportOnce = async (body: Uint8Array, items: number): Promise<SendResult> => {
    const deadlineAt = Date.now() + target.timeoutMs;
    const payload = target.compression === 'gzip' ? await gzipAsync(body) : body;
    const reqHeaders: Record<string, string | number> = { ...headers, 'Content-Length': payload.byteLength };
    if (target.compression === 'gzip') reqHeaders['Content-Encoding'] = 'gzip';
    const options = { method: 'POST', headers: reqHeaders, agent };
    let backoff = FIRST_RETRY_MS;
    for (let retry = 0; ; retry++) {
      const a = await postOnce((cb) => send(url, options, cb), payload, deadlineAt);
      const r = httpOutcome(a, target.timeoutMs, (response) => partialSuccessOf(target.signal, encoding, response, { body, items }));
      if (r.ok || retry >= IN_TIMEOUT_RETRIES || !retryableInTimeout(a)) return r;
      const wait = (a.kind === 'answer' ? retryAfterMs(a.retryAfter) : undefined) ?? Math.min(backoff * (1 + (Math.random() * 2 - 1) * RETRY_JITTER), MAX_RETRY_MS);
      backoff *= RETRY_FACTOR;
      if (wait > deadlineAt - Date.now()) return r;
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  };
  return {
    send: (body, items) => {
      const p = exportOnce(body, items).catch((e: Error): SendResult => ({ ok: false, kind: 'transient', error: e.message }));
      inflight.add(p);
      void p.finally(() => inflight.delete(p));
      return p;
    },
    async shutdown() {
      await Promise.all(inflight);
      agent.destroy();
    },
  };
}

/** One POST, ended at `deadlineAt` whatever the endpoint does; the answer's body read up to MAX_RESPONSE_BYTES. */
export function postOnce(request: (onResponse: (res: IncomingMessage) => void) => ClientRequest, payload: Uint8Array, deadlineAt: number): Promise<HttpAttempt> {
  return new Promise((resolve) => {
    let done = false;
    const finish = (a: HttpAttempt) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(a);
    };
    let atDeadline = () => finish({ kind: 'error', error: Object.assign(new Error('no answer'), { code: 'ETIMEDOUT' }), timedOut: true });
    const req = request((res) => {
      const status = res.statusCode ?? 0;
      const retryAfter = res.headers['retry-after'];
      const unread = (why: 'too_large' | 'timeout' | 'cut'): HttpAttempt => ({ kind: 'answer', status, statusMessage: res.statusMessage ?? '', retryAfter, body: undefined, unread: why });
      atDeadline = () => finish(unread('timeout'));
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size <= MAX_RESPONSE_BYTES) {
          chunks.push(chunk);
          return;
        }
        finish(unread('too_large'));
        req.destroy();
      });
      res.on('end', () => finish({ kind: 'answer', status, statusMessage: res.statusMessage ?? '', retryAfter, body: Buffer.concat(chunks) }));
      res.on('error', () => finish(unread('cut')));
      res.on('aborted', () => finish(unread('cut')));
    });
    const timer = setTimeout(() => {
      atDeadline();
      req.destroy();
    }, Math.max(0, deadlineAt - Date.now()));
    req.on('error', (error) => finish({ kind: 'error', error, timedOut: false }));
    req.end(payload);
  });
}

/** What one POST means to the spool; `partialOf` reads a complete 2xx answer's body. */
export function httpOutcome(a: HttpAttempt, timeoutMs: number, partialOf: (body: Uint8Array) => PartialSuccess | undefined): SendResult {
  if (a.kind === 'error') {
    const code = typeof a.error.code === 'string' ? a.error.code : undefined;
    if (a.timedOut) return { ok: false, kind: 'transient', error: `no answer within the export timeout (${timeoutMs} ms; OTEL_EXPORTER_OTLP_TIMEOUT)` };
    if (code && TLS_ERROR.test(code)) return { ok: false, kind: 'transient', error: `TLS: ${a.error.message} (${code})`, tls: true };
    return { ok: false, kind: 'transient', error: a.error.message || code || 'export failed' };
  }
  const { status } = a;
  if (status >= 200 && status < 300) {
    if (a.unread === undefined) {
      const partial = a.body && a.body.byteLength > 0 ? partialOf(a.body) : undefined;
      return partial === undefined ? { ok: true } : { ok: true, partial };
    }
    const why = { too_large: `it is over ${MAX_RESPONSE_BYTES} bytes`, timeout: `it did not arrive within the export timeout (${timeoutMs} ms)`, cut: 'the connection closed' }[a.unread];
    return { ok: true, unread: `HTTP ${status} (delivered), but its answer was not read: ${why}; a partial success in it is not counted` };
  }
  const said = a.unread === undefined && a.body && a.body.byteLength > 0 ? `: ${a.body.toString('utf8', 0, Math.min(a.body.byteLength, MAX_ERROR_BODY_CHARS * 4)).replace(/\s+/g, ' ').slice(0, MAX_ERROR_BODY_CHARS)}` : '';
  const error = `HTTP ${status}${a.statusMessage ? ` ${a.statusMessage}` : ''}${said}`;
  if (status === 408 || RETRYABLE_STATUS.has(status)) return { ok: false, kind: 'transient', error };
  if (status >= 500) return { ok: false, kind: 'server_error', error };
  return { ok: false, kind: 'rejected', error };
}

function retryableInTimeout(a: HttpAttempt): boolean {
  if (a.kind === 'answer') return RETRYABLE_STATUS.has(a.status);
  return !a.timedOut && typeof a.error.code === 'string' && RETRYABLE_NETWORK.has(a.error.code);
}

/** Retry-After in seconds or as an HTTP date, in ms (the OTLP exporters' reading); undefined when absent or unreadable. */
function retryAfterMs(header: string | undefined): number | undefined {
  if (header === undefined) return undefined;
  const seconds = Number.parseInt(header, 10);
  if (Number.isInteger(seconds)) return Math.max(0, seconds * 1000);
  const at = new Date(header).getTime();
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

export function serializerFor(signal: Signal, encoding: Encoding): ISerializer<never, unknown> {
  if (signal === 'traces') return encoding === 'json' ? JsonTraceSerializer : ProtobufTraceSerializer;
  return encoding === 'json' ? JsonMetricsSerializer : ProtobufMetricsSerializer;
}

/** Node's codes for a failed TLS handshake or certificate check (the server's, or ours refused). */
const TLS_ERROR = /^(ERR_SSL_|ERR_TLS_|CERT_|UNABLE_TO_|DEPTH_ZERO_SELF_SIGNED_CERT$|SELF_SIGNED_CERT_IN_CHAIN$|EPROTO$|HOSTNAME_MISMATCH$)/;
