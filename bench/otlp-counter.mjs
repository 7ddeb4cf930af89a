// A light OTLP/HTTP receiver for the benchmark: counts spans in protobuf ExportTraceServiceRequest
// bodies by walking the wire format (no full decode), and, for every root span whose
// aws.request_id was written by bench/gen.c ("b<seq>-<send monotonic ns>"), records the
// datagram-send → span-arrival latency in a 1 ms histogram, also by the second it was sent in
// (latencyBySend: a cold start apart from the steady state). /v1/metrics is accepted and counted.
// With --grpc it also serves OTLP/gRPC (TraceService/Export, MetricsService/Export, grpc-js,
// raw bodies counted the same way) on a second port.
// Prints {"port":N} (and "grpcPort") on stdout once listening; GET /count returns the totals.
import http from 'node:http';
import { Server, ServerCredentials } from '@grpc/grpc-js';
import { gunzipSync } from 'node:zlib';
import { createRequire } from 'node:module';

const HIST_MS = 120_000; // latencies above 120 s land in the last bucket
const hist = new Uint32Array(HIST_MS + 1);
// The same latencies split by when they were sent (the sender's monotonic clock), in 100 ms
// slices, so a cold start's backlog shows apart from the steady state. Bounded: SLICES_MAX slices
// (2 minutes of sending), each a histogram up to SLICE_HIST_MS (above lands in its last bucket).
const SLICE_NS = 100_000_000n;
const SLICES_MAX = 1200;
const SLICE_HIST_MS = 5_000;
const bySlice = new Map();
const state = { spans: 0, rootSpans: 0, timedRoots: 0, traceRequests: 0, metricRequests: 0, badRequests: 0, bytes: 0 };
// Seq numbers of timed roots already seen, as a bitmap (bounded: 2^27 calls), to count duplicates.
let seen = new Uint8Array(1 << 16);
let duplicates = 0;
const REQUEST_ID_KEY = Buffer.from('aws.request_id');

function varint(buf, pos) {
  let v = 0;
  let shift = 0;
  for (;;) {
    const b = buf[pos++];
    if (b === undefined) throw new Error('truncated varint');
    v += (b & 0x7f) * 2 ** shift;
    if (b < 0x80) return [v, pos];
    shift += 7;
    if (shift > 63) throw new Error('bad varint');
  }
}

/** Calls fn(field, wireType, start, end) for each field of the message in buf[start, end). */
function fields(buf, start, end, fn) {
  let pos = start;
  while (pos < end) {
    let key;
    [key, pos] = varint(buf, pos);
    const field = Math.floor(key / 8);
    const wt = key & 7;
    if (wt === 0) {
      const s = pos;
      [, pos] = varint(buf, pos);
      fn(field, wt, s, pos);
    } else if (wt === 1) {
      fn(field, wt, pos, pos + 8);
      pos += 8;
    } else if (wt === 5) {
      fn(field, wt, pos, pos + 4);
      pos += 4;
    } else if (wt === 2) {
      let len;
      [len, pos] = varint(buf, pos);
      if (pos + len > end) throw new Error('truncated field');
      fn(field, wt, pos, pos + len);
      pos += len;
    } else throw new Error(`wire type ${wt}`);
  }
  if (pos !== end) throw new Error('overrun');
}

function onSpan(buf, s, e, arrivalNs) {
  state.spans++;
  let parent = false;
  let requestId;
  fields(buf, s, e, (f, wt, a, b) => {
    if (f === 4 && wt === 2 && b > a) parent = true;
    else if (f === 9 && wt === 2 && requestId === undefined) {
      // KeyValue { key = 1; value = 2 (AnyValue { string_value = 1 }) }
      let isKey = false;
      let valueStart = -1;
      let valueEnd = -1;
      fields(buf, a, b, (kf, kwt, ka, kb) => {
        if (kf === 1 && kwt === 2) isKey = kb - ka === REQUEST_ID_KEY.length && buf.compare(REQUEST_ID_KEY, 0, REQUEST_ID_KEY.length, ka, kb) === 0;
        else if (kf === 2 && kwt === 2) {
          valueStart = ka;
          valueEnd = kb;
        }
      });
      if (isKey && valueStart >= 0) {
        fields(buf, valueStart, valueEnd, (vf, vwt, va, vb) => {
          if (vf === 1 && vwt === 2) requestId = buf.toString('latin1', va, vb);
        });
      }
    }
  });
  if (parent) return;
  state.rootSpans++;
  if (requestId === undefined || requestId.length !== 36 || requestId[0] !== 'b') return;
  const seq = Number(requestId.slice(1, 16));
  const sentNs = BigInt(requestId.slice(17));
  if (seq < 2 ** 27) {
    if (seq >> 3 >= seen.length) {
      const bigger = new Uint8Array(Math.min(2 ** 24, Math.max(seen.length * 2, (seq >> 3) + 1)));
      bigger.set(seen);
      seen = bigger;
    }
    if (seen[seq >> 3] & (1 << (seq & 7))) duplicates++;
    else seen[seq >> 3] |= 1 << (seq & 7);
  }
  state.timedRoots++;
  const ms = Number((arrivalNs - sentNs) / 1_000_000n);
  hist[Math.max(0, Math.min(HIST_MS, ms))]++;
  const slice = Number(sentNs / SLICE_NS);
  let h = bySlice.get(slice);
  if (h === undefined && bySlice.size < SLICES_MAX) bySlice.set(slice, (h = new Uint32Array(SLICE_HIST_MS + 1)));
  if (h !== undefined) h[Math.max(0, Math.min(SLICE_HIST_MS, ms))]++;
}

function countTraces(buf, arrivalNs) {
  fields(buf, 0, buf.length, (f, wt, a, b) => {
    if (f !== 1 || wt !== 2) return; // ResourceSpans
    fields(buf, a, b, (rf, rwt, ra, rb) => {
      if (rf !== 2 || rwt !== 2) return; // ScopeSpans
      fields(buf, ra, rb, (sf, swt, sa, sb) => {
        if (sf === 2 && swt === 2) onSpan(buf, sa, sb, arrivalNs);
      });
    });
  });
}

function percentile(p, h = hist) {
  const total = h.reduce((x, y) => x + y, 0);
  if (total === 0) return null;
  const want = Math.ceil(total * p);
  let acc = 0;
  for (let i = 0; i < h.length; i++) {
    acc += h[i];
    if (acc >= want) return i;
  }
  return h.length - 1;
}

/** Histograms of the calls sent in each second since the first call was sent (slices merged). */
function bySendSecond() {
  const slices = [...bySlice.keys()].sort((a, b) => a - b);
  const seconds = [];
  for (const sl of slices) {
    const i = Math.floor((sl - slices[0]) / 10);
    seconds[i] ??= new Uint32Array(SLICE_HIST_MS + 1);
    const h = bySlice.get(sl);
    for (let j = 0; j < h.length; j++) seconds[i][j] += h[j];
  }
  return seconds;
}

const summary = (h) => ({ calls: h.reduce((x, y) => x + y, 0), p50: percentile(0.5, h), p99: percentile(0.99, h), max: percentile(1, h) });

/** Per second of sending: how many timed calls and their p50/p99/max in ms; and all after the first second merged. */
function latencyBySend() {
  const seconds = bySendSecond();
  const after = new Uint32Array(SLICE_HIST_MS + 1);
  for (const h of seconds.slice(1)) if (h) for (let j = 0; j < h.length; j++) after[j] += h[j];
  return { afterFirstSecond: summary(after), bySecond: Array.from(seconds, (h, second) => ({ second, ...summary(h ?? new Uint32Array(1)) })) };
}

const server = http.createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/count') {
    const body = JSON.stringify({
      ...state,
      duplicates,
      latencyMs: { p50: percentile(0.5), p90: percentile(0.9), p99: percentile(0.99), max: percentile(1) },
      latencyBySend: latencyBySend(),
      cpuSeconds: (process.cpuUsage().user + process.cpuUsage().system) / 1e6,
    });
    res.writeHead(200, { 'content-type': 'application/json' }).end(body);
    return;
  }
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const arrivalNs = process.hrtime.bigint();
    let buf = Buffer.concat(chunks);
    state.bytes += buf.length;
    try {
      if (req.headers['content-encoding'] === 'gzip') buf = gunzipSync(buf);
      if (req.url === '/v1/traces') {
        if (!String(req.headers['content-type']).includes('protobuf')) throw new Error('bench counts protobuf only');
        state.traceRequests++;
        countTraces(buf, arrivalNs);
      } else if (req.url === '/v1/metrics') state.metricRequests++;
      else throw new Error(`unknown path ${req.url}`);
    } catch (e) {
      state.badRequests++;
      res.writeHead(400).end(String(e.message));
      return;
    }
    // An empty ExportTraceServiceResponse / ExportMetricsServiceResponse.
    res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
  });
});
server.keepAliveTimeout = 60_000;

/**
 * HTTP/2 receive window of the gRPC endpoint (stream and connection). grpc-js servers keep Node's
 * default 64 KiB, so the bridge could put only 64 KiB of a ~400 KiB Export request on the wire per
 * turn of its event loop (each WINDOW_UPDATE waits for the next turn): at 100k datagrams/s a
 * request took ~20 ms instead of ~3, the spool backed up and the instrument, not the bridge, set
 * the pace. A Collector (grpc-go) grows its window by BDP estimation; this one starts large.
 */
const GRPC_WINDOW_BYTES = 8 * 1024 * 1024;

/** grpc-js has no server option for the window: widen the settings of the HTTP/2 server it creates. */
function withWideWindows(create) {
  const http2 = createRequire(import.meta.url)('node:http2');
  const original = http2.createServer;
  http2.createServer = (options, ...rest) => {
    const server = original.call(http2, { ...options, settings: { ...options?.settings, initialWindowSize: GRPC_WINDOW_BYTES } }, ...rest);
    server.on('session', (session) => session.setLocalWindowSize(GRPC_WINDOW_BYTES));
    return server;
  };
  return create().finally(() => (http2.createServer = original));
}

/** OTLP/gRPC: the request body is the same ExportTraceServiceRequest bytes http/protobuf POSTs. */
function startGrpc() {
  const grpc = new Server();
  const raw = (path) => ({
    Export: { path, requestStream: false, responseStream: false, requestSerialize: (b) => b, requestDeserialize: (b) => b, responseSerialize: (b) => b, responseDeserialize: (b) => b },
  });
  grpc.addService(raw('/opentelemetry.proto.collector.trace.v1.TraceService/Export'), {
    Export: (call, done) => {
      const arrivalNs = process.hrtime.bigint();
      state.bytes += call.request.length;
      try {
        state.traceRequests++;
        countTraces(call.request, arrivalNs);
      } catch (e) {
        state.badRequests++;
        done({ code: 3, details: String(e.message) });
        return;
      }
      done(null, Buffer.alloc(0));
    },
  });
  grpc.addService(raw('/opentelemetry.proto.collector.metrics.v1.MetricsService/Export'), {
    Export: (call, done) => {
      state.bytes += call.request.length;
      state.metricRequests++;
      done(null, Buffer.alloc(0));
    },
  });
  return withWideWindows(() => new Promise((resolve, reject) => grpc.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, port) => (e ? reject(e) : resolve(port)))));
}

const grpcPort = process.argv.includes('--grpc') ? await startGrpc() : undefined;
server.listen(0, '127.0.0.1', () => process.stdout.write(`${JSON.stringify({ port: server.address().port, ...(grpcPort ? { grpcPort } : {}) })}\n`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
process.on('disconnect', () => process.exit(0));
