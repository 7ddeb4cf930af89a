import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A tiny scripted S3 endpoint (path-style) on loopback: each "METHOD /path"
 * answers the statuses of its script in turn (the last one repeats), with S3
 * style XML errors and request-id headers, so a real SDK sees retries and
 * service errors deterministically.
 */
export interface FakeS3 {
  url: string;
  /** Request ids answered, in order, per route. */
  requestIds: Map<string, string[]>;
  close(): Promise<void>;
}

const ERROR_CODES: Record<number, string> = {
  400: 'InvalidRequest',
  403: 'AccessDenied',
  404: 'NoSuchKey',
  409: 'BucketAlreadyExists',
  500: 'InternalError',
  503: 'SlowDown',
};

export async function startFakeS3(script: Record<string, number[]>): Promise<FakeS3> {
  const served = new Map<string, number>();
  const requestIds = new Map<string, string[]>();
  let n = 0;
  const server: Server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const route = `${req.method} ${(req.url ?? '/').split('?')[0]}`;
      const statuses = script[route] ?? [404];
      const i = served.get(route) ?? 0;
      served.set(route, i + 1);
      const status = statuses[Math.min(i, statuses.length - 1)]!;
      const id = `FAKEREQ${String(++n).padStart(6, '0')}`;
      requestIds.set(route, [...(requestIds.get(route) ?? []), id]);
      const headers = { 'x-amz-request-id': id, 'x-amz-id-2': `id2-${id}`, 'content-type': 'application/xml' };
      if (status >= 300) {
        const code = ERROR_CODES[status] ?? 'Error';
        const body = req.method === 'HEAD' ? '' : `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>scripted ${status} for ${route}</Message><RequestId>${id}</RequestId></Error>`;
        res.writeHead(status, { ...headers, 'content-length': Buffer.byteLength(body) });
        res.end(body);
        return;
      }
      const body =
        route === 'GET /'
          ? '<?xml version="1.0" encoding="UTF-8"?><ListAllMyBucketsResult><Owner><ID>owner</ID><DisplayName>me</DisplayName></Owner><Buckets><Bucket><Name>b1</Name><CreationDate>2026-01-01T00:00:00.000Z</CreationDate></Bucket></Buckets></ListAllMyBucketsResult>'
          : '';
      res.writeHead(status, { ...headers, 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requestIds,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
