/**
 * The listeners for the applications' spans (`--app-otlp-http`, `--app-otlp-grpc`): an OTLP
 * receiver that keeps only what the join needs and forwards nothing (docs/app-traces.md).
 *
 * It sits on a branch of the user's Collector fan-out, and a slow fan-out branch slows the
 * Collector (its fan-out consumer is synchronous): so it answers at once, from memory, and
 * never waits on the bridge's export. Every bound is named and every refusal counted, and said
 * the way OTLP says it: 400 / INVALID_ARGUMENT for a body that does not decode, 413 for one over
 * MAX_BODY_BYTES (compressed) or MAX_INFLATED_BYTES (inflated: a gzip bomb stops there), 415 for
 * a content type or encoding OTLP/HTTP does not have, partial success (rejected_spans) for spans
 * the full index refused. Slow or stuck clients meet header and request timeouts and a
 * connection cap.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { gunzipSync } from 'node:zlib';
import type { Logger } from '../log.js';
import { parseHostPort } from '../net/address.js';
import type { AppSpan } from './app-span.js';
import { decodeJsonRequest, decodeProtobufRequest, DecodeError, type DecodedSpans } from './otlp-trace-decoder.js';

/** A request body larger than this (as sent) is refused: the Collector's own batches stay below 4 MiB by default. */
export const MAX_BODY_BYTES = 4 * 1024 * 1024;
/** A gzip body inflating past this is refused (and inflating stops there). */
export const MAX_INFLATED_BYTES = 16 * 1024 * 1024;
/** Open connections at most (a node-local Collector keeps a few). */
export const MAX_CONNECTIONS = 64;
/** Time to send the headers / the whole request. */
export const HEADERS_TIMEOUT_MS = 5_000;
export const REQUEST_TIMEOUT_MS = 10_000;
const KEEP_ALIVE_TIMEOUT_MS = 5_000;
/** How often node:http checks those timeouts (its default, 30 s, would let a stuck client hold a connection that long). */
const TIMEOUT_CHECK_EVERY_MS = 1_000;

const TRACES_PATH = '/v1/traces';
const GRPC_EXPORT = '/opentelemetry.proto.collector.trace.v1.TraceService/Export';

export interface AppListenerCounts {
  /** Export requests answered OK (possibly with a partial success). */
  requests: number;
  /** Spans in them, all kinds. */
  spans: number;
  /** Of those, kept for the join (AWS SDK spans with a request id). */
  kept: number;
  /** Spans the full index refused (answered as partial success). */
  refused: number;
  /** Spans of the bridge's own instrumentation scope (a Collector loop), ignored. */
  ownSpans: number;
  /** Requests refused, by reason. */
  rejected: { malformed: number; too_large: number; unsupported_media_type: number; not_found: number; timeout: number };
}

export function newAppListenerCounts(): AppListenerCounts {
  return { requests: 0, spans: 0, kept: 0, refused: 0, ownSpans: 0, rejected: { malformed: 0, too_large: 0, unsupported_media_type: 0, not_found: 0, timeout: 0 } };
}

/** Where decoded spans go (the join stage); returns how many it refused. */
export type AppSpanConsumer = (spans: readonly AppSpan[]) => { refused: number };

/** The outcome of one Export request's body, whatever the transport. */
function accept(decoded: DecodedSpans, consume: AppSpanConsumer, counts: AppListenerCounts): number {
  counts.requests++;
  counts.spans += decoded.total;
  counts.ownSpans += decoded.ownSpans;
  counts.kept += decoded.spans.length;
  const { refused } = decoded.spans.length > 0 ? consume(decoded.spans) : { refused: 0 };
  counts.refused += refused;
  return refused;
}

const REFUSED_MESSAGE = 'aws-csm-bridge: app-span index full (the bridge keeps app spans for the join only, bounded)';

// ExportTraceServiceResponse { ExportTracePartialSuccess partial_success = 1 { int64 rejected_spans = 1; string error_message = 2 } }
function protobufResponse(refused: number): Buffer {
  if (refused === 0) return Buffer.alloc(0);
  const msg = Buffer.from(REFUSED_MESSAGE);
  const inner = Buffer.concat([Buffer.from([0x08]), varint(refused), Buffer.from([0x12]), varint(msg.length), msg]);
  return Buffer.concat([Buffer.from([0x0a]), varint(inner.length), inner]);
}

// google.rpc.Status { int32 code = 1; string message = 2 }
function protobufStatus(code: number, message: string): Buffer {
  const msg = Buffer.from(message.slice(0, 300));
  return Buffer.concat([Buffer.from([0x08]), varint(code), Buffer.from([0x12]), varint(msg.length), msg]);
}

function varint(v: number): Buffer {
  const out: number[] = [];
  while (v >= 0x80) {
    out.push((v % 128) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return Buffer.from(out);
}

const GRPC_INVALID_ARGUMENT = 3;

/** OTLP/HTTP `POST /v1/traces`, protobuf or JSON, gzip or not. */
export class AppHttpListener {
  private server: Server | undefined;

  constructor(
    private readonly listen: string,
    private readonly consume: AppSpanConsumer,
    private readonly counts: AppListenerCounts,
    private readonly log: Logger,
  ) {}

  async start(): Promise<string> {
    const { host, port } = parseHostPort(this.listen);
    const server = createServer(
      { headersTimeout: HEADERS_TIMEOUT_MS, requestTimeout: REQUEST_TIMEOUT_MS, keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS, connectionsCheckingInterval: TIMEOUT_CHECK_EVERY_MS },
      (req, res) => {
      try {
        this.handle(req, res);
      } catch (e) {
        this.log.warnLimited('app-otlp', 'app span request failed', { error: (e as Error).message });
        if (!res.headersSent) res.writeHead(500).end();
      }
      },
    );
    server.maxConnections = MAX_CONNECTIONS;
    server.on('timeout', () => this.counts.rejected.timeout++);
    server.on('clientError', (_e, socket) => {
      this.counts.rejected.timeout++;
      socket.destroy();
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e: Error) => reject(new Error(`cannot start the app span listener (--app-otlp-http) on ${this.listen}: ${e.message}`)));
      server.listen(port, host, () => resolve());
    });
    this.server = server;
    const a = server.address();
    return a && typeof a !== 'string' ? (a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`) : this.listen;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '').split('?')[0];
    if (path !== TRACES_PATH) {
      this.counts.rejected.not_found++;
      res.writeHead(404, { 'content-type': 'text/plain' }).end(`only POST ${TRACES_PATH}\n`);
      req.resume();
      return;
    }
    if (req.method !== 'POST') {
      res.writeHead(405, { allow: 'POST' }).end();
      req.resume();
      return;
    }
    const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    const json = type === 'application/json';
    const encoding = (req.headers['content-encoding'] ?? 'identity').toLowerCase();
    if ((!json && type !== 'application/x-protobuf') || (encoding !== 'gzip' && encoding !== 'identity')) {
      this.counts.rejected.unsupported_media_type++;
      this.refuse(res, 415, json, `unsupported ${type !== 'application/x-protobuf' && !json ? `content type ${type || '(none)'}: use application/x-protobuf or application/json` : `content encoding ${encoding}: use gzip or none`}`);
      req.resume();
      return;
    }
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > MAX_BODY_BYTES) return this.tooLarge(req, res, json);
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        req.removeAllListeners('data');
        this.tooLarge(req, res, json);
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (size > MAX_BODY_BYTES) return;
      let body = Buffer.concat(chunks, size);
      if (encoding === 'gzip') {
        try {
          body = gunzipSync(body, { maxOutputLength: MAX_INFLATED_BYTES });
        } catch (e) {
          if (e instanceof RangeError || (e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') return this.tooLarge(req, res, json);
          this.counts.rejected.malformed++;
          return this.refuse(res, 400, json, `not gzip: ${(e as Error).message}`);
        }
      }
      let decoded: DecodedSpans;
      try {
        decoded = json ? decodeJsonRequest(body.toString('utf8')) : decodeProtobufRequest(body);
      } catch (e) {
        if (!(e instanceof DecodeError)) throw e;
        this.counts.rejected.malformed++;
        return this.refuse(res, 400, json, `not an OTLP ExportTraceServiceRequest: ${e.message}`);
      }
      const refused = accept(decoded, this.consume, this.counts);
      if (json) {
        const answer = refused === 0 ? {} : { partialSuccess: { rejectedSpans: String(refused), errorMessage: REFUSED_MESSAGE } };
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
      } else res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end(protobufResponse(refused));
    });
  }

  private tooLarge(req: IncomingMessage, res: ServerResponse, json: boolean): void {
    this.counts.rejected.too_large++;
    this.refuse(res, 413, json, `body over ${MAX_BODY_BYTES} bytes, or over ${MAX_INFLATED_BYTES} inflated`);
    // The rest of the body is read and discarded, so the client sees the answer rather than a
    // reset; a client that keeps sending past twice the bound is cut off.
    let discarded = 0;
    req.on('data', (c: Buffer) => {
      discarded += c.length;
      if (discarded > 2 * MAX_BODY_BYTES) req.socket.destroy();
    });
    req.resume();
  }

  private refuse(res: ServerResponse, code: number, json: boolean, message: string): void {
    if (res.headersSent) return;
    if (json) res.writeHead(code, { 'content-type': 'application/json' }).end(JSON.stringify({ code: GRPC_INVALID_ARGUMENT, message }));
    else res.writeHead(code, { 'content-type': 'application/x-protobuf' }).end(protobufStatus(GRPC_INVALID_ARGUMENT, message));
  }

  async close(): Promise<void> {
    const s = this.server;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}

/** OTLP/gRPC `TraceService/Export` (@grpc/grpc-js, loaded only when this listener is configured). */
export class AppGrpcListener {
  private server: import('@grpc/grpc-js').Server | undefined;

  constructor(
    private readonly listen: string,
    private readonly consume: AppSpanConsumer,
    private readonly counts: AppListenerCounts,
  ) {}

  async start(): Promise<string> {
    const grpc = await import('@grpc/grpc-js');
    const { host, port } = parseHostPort(this.listen);
    const server = new grpc.Server({
      // grpc-js checks this on the inflated message too: a gzip bomb stops at the bound.
      'grpc.max_receive_message_length': MAX_BODY_BYTES,
      'grpc.max_concurrent_streams': MAX_CONNECTIONS,
    });
    const passThrough = (b: Buffer): Buffer => b;
    server.addService(
      {
        export: {
          path: GRPC_EXPORT,
          requestStream: false,
          responseStream: false,
          requestSerialize: passThrough,
          requestDeserialize: passThrough,
          responseSerialize: passThrough,
          responseDeserialize: passThrough,
        },
      },
      {
        export: (call: import('@grpc/grpc-js').ServerUnaryCall<Buffer, Buffer>, callback: import('@grpc/grpc-js').sendUnaryData<Buffer>) => {
          let decoded: DecodedSpans;
          try {
            decoded = decodeProtobufRequest(call.request);
          } catch (e) {
            this.counts.rejected.malformed++;
            callback({ code: grpc.status.INVALID_ARGUMENT, details: `not an OTLP ExportTraceServiceRequest: ${(e as Error).message}` });
            return;
          }
          callback(null, protobufResponse(accept(decoded, this.consume, this.counts)));
        },
      },
    );
    const bindHost = host.includes(':') ? `[${host}]` : host;
    const bound = await new Promise<number>((resolve, reject) =>
      server.bindAsync(`${bindHost}:${port}`, grpc.ServerCredentials.createInsecure(), (e, p) =>
        e ? reject(new Error(`cannot start the app span listener (--app-otlp-grpc) on ${this.listen}: ${e.message}`)) : resolve(p),
      ),
    );
    this.server = server;
    return `${bindHost}:${bound}`;
  }

  async close(): Promise<void> {
    const s = this.server;
    if (!s) return;
    await new Promise<void>((resolve) => s.tryShutdown(() => resolve()));
    s.forceShutdown();
  }
}
