/**
 * An OTLP/HTTP "collector" that misbehaves the way a broken or hostile endpoint can, for the
 * export deadline and response bound tests: it reads each request whole (and counts the spans in
 * it), then answers
 *  - `drip-status`: the status line one byte every `dripMs`, never finishing the headers;
 *  - `drip-body`: 200 and its headers at once, then a body chunk every `dripMs`, never ending;
 *  - `huge-body`: 200 with a body of `bytes` bytes (zeros: not a response anyone can parse).
 * A drip keeps the connection busy without ever being idle, so only an overall deadline ends it.
 */
import http, { type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { decodeOtlpTraces } from './otlp-sink.js';

export type HostileMode = { kind: 'drip-status'; dripMs: number } | { kind: 'drip-body'; dripMs: number } | { kind: 'huge-body'; bytes: number };

export interface HostileCollector {
  url: string;
  /** Every request received: its path and, for /v1/traces, the spans it carried. */
  requests: { path: string; spans: number }[];
  close(): Promise<void>;
}

export async function startHostileCollector(mode: HostileMode): Promise<HostileCollector> {
  const requests: { path: string; spans: number }[] = [];
  const timers = new Set<NodeJS.Timeout>();
  const sockets = new Set<Socket>();
  const drip = (write: () => void, dripMs: number, res: ServerResponse) => {
    const t = setInterval(write, dripMs);
    timers.add(t);
    res.on('close', () => {
      clearInterval(t);
      timers.delete(t);
    });
  };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = req.url ?? '';
      requests.push({ path, spans: path === '/v1/traces' ? decodeOtlpTraces(Buffer.concat(chunks), 'protobuf').length : 0 });
      if (mode.kind === 'drip-status') {
        const status = Buffer.from('HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nX-Padding: ' + 'a'.repeat(10_000));
        let i = 0;
        drip(() => res.socket?.write(status.subarray(i, ++i)), mode.dripMs, res);
      } else if (mode.kind === 'drip-body') {
        res.writeHead(200, { 'content-type': 'application/x-protobuf' });
        res.flushHeaders();
        drip(() => res.write(Buffer.alloc(1)), mode.dripMs, res);
      } else {
        res.writeHead(200, { 'content-type': 'application/x-protobuf', 'content-length': mode.bytes });
        res.end(Buffer.alloc(mode.bytes));
      }
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        for (const t of timers) clearInterval(t);
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
