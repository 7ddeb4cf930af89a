// The two UDP receivers (src/receive/udp-receiver.ts): node:dgram and the recvmmsg addon
// (native/udp_batch.c) must hand the pipeline the same (bytes, address, port) sequences.
import { createSocket, type Socket } from 'node:dgram';
import { resolveOtelEnv } from '../../src/config/otel-env.js';
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { Bridge } from '../../src/bridge.js';
import { configSchema } from '../../src/config/schema.js';
import { createLogger } from '../../src/log.js';
import { parseHostPort } from '../../src/net/address.js';
import { loadBatchAddon } from '../../src/receive/batch-socket.js';
import { UdpReceiver, type UdpReceiverKind } from '../../src/receive/udp-receiver.js';

const { addon, why } = loadBatchAddon();

describe('the recvmmsg addon', () => {
  // CI must exercise the recvmmsg receiver, not silently fall back to dgram.
  it.runIf(process.platform === 'linux' && !!process.env['CI'])('loads on Linux in CI', () => {
    expect(why, 'build/Release/udp_batch.node must be built in CI (npm ci runs node-gyp: needs g++, make, python3)').toBeUndefined();
    expect(addon).toBeDefined();
  });
});

const MODES: ('dgram' | 'recvmmsg')[] = addon ? ['dgram', 'recvmmsg'] : ['dgram'];

interface Got {
  bytes: Buffer;
  address: string;
  port: number;
}

const logLines: string[] = [];
const log = createLogger('debug', (l) => void logLines.push(l));

const open: { close(): Promise<void> | void }[] = [];
afterEach(async () => {
  for (const o of open.splice(0)) await o.close();
});

async function receiver(mode: UdpReceiverKind, listen: string[], onEach?: (g: Got, r: UdpReceiver) => void) {
  const got: Got[] = [];
  const r: UdpReceiver = new UdpReceiver(
    listen,
    4 * 1024 * 1024,
    (bytes, from) => {
      // The recvmmsg view is only valid during the call: copy, as any keeper must.
      const g = { bytes: Buffer.from(bytes), address: from.address, port: from.port };
      got.push(g);
      onEach?.(g, r);
    },
    log,
    mode,
  );
  await r.start();
  open.push(r);
  return { r, got };
}

async function sender(type: 'udp4' | 'udp6'): Promise<Socket> {
  const s = createSocket(type);
  await new Promise<void>((res) => s.bind(0, type === 'udp4' ? '127.0.0.1' : '::1', () => res()));
  open.push({ close: () => new Promise<void>((res) => s.close(() => res())) });
  return s;
}

const send = (s: Socket, b: Buffer, to: string) => {
  const { host, port } = parseHostPort(to);
  return new Promise<void>((res, rej) => s.send(b, port, host, (e) => (e ? rej(e) : res())));
};

async function until(cond: () => boolean, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Comparable cheaply (vitest compares Buffers element by element: slow for 64 KiB ones). */
const flat = (gs: Got[]) => gs.map((g) => ({ bytes: g.bytes.toString('base64'), address: g.address, port: g.port }));
const b64 = (bs: Buffer[]) => bs.map((b) => b.toString('base64'));

/** A payload that says which datagram it is, then random bytes. */
function payload(seq: number, size: number): Buffer {
  const b = randomBytes(size);
  if (size >= 4) b.writeUInt32BE(seq, 0);
  return b;
}

describe.each([
  { family: 'IPv4', type: 'udp4' as const, listen: '127.0.0.1:0', from: '127.0.0.1', sizes: [1, 470, 9000, 65507] },
  { family: 'IPv6', type: 'udp6' as const, listen: '[::1]:0', from: '::1', sizes: [1, 470, 9000, 65507, 65527] },
])('over $family loopback', ({ type, listen, from, sizes }) => {
  it('both receivers hand on identical (bytes, address, port) sequences, sizes up to the UDP maximum', async () => {
    const a = await sender(type);
    const b = await sender(type);
    const sent: Got[] = [];
    let seq = 0;
    for (let rep = 0; rep < 3; rep++)
      for (const size of sizes)
        for (const s of [a, b]) sent.push({ bytes: payload(seq++, size), address: from, port: s.address().port });

    const results: Record<string, Got[]> = {};
    for (const mode of MODES) {
      const { r, got } = await receiver(mode, [listen]);
      expect(r.receiver).toBe(mode);
      const to = r.addresses()[0]!;
      for (const d of sent) await send(d.port === a.address().port ? a : b, d.bytes, to);
      await until(() => got.length >= sent.length);
      results[mode] = got;
      expect(got.map((g) => g.bytes.length)).toEqual(sent.map((d) => d.bytes.length));
      expect(flat(got)).toEqual(flat(sent));
      await r.close();
    }
    if (results['recvmmsg']) expect(flat(results['recvmmsg'])).toEqual(flat(results['dgram']!));
  });

  it.each(MODES)('%s: a burst of 1000 (many batches) arrives complete and in order', async (mode) => {
    const s = await sender(type);
    const { r, got } = await receiver(mode, [listen]);
    const to = r.addresses()[0]!;
    const sent = Array.from({ length: 1000 }, (_, i) => payload(i, 200 + (i % 7) * 100));
    // Not awaited one by one: the loop does not turn, so the datagrams queue up in the socket.
    await Promise.all(sent.map((b) => send(s, b, to)));
    await until(() => got.length >= sent.length);
    expect(b64(got.map((g) => g.bytes))).toEqual(b64(sent));
    expect(new Set(got.map((g) => `${g.address}:${g.port}`))).toEqual(new Set([`${from}:${s.address().port}`]));
    expect(r.kernelDrops()).toBe(0);
  });
});

describe.runIf(!!addon)('the recvmmsg receiver decodes an ASCII batch at once', () => {
  it('the text handed with a datagram is its bytes decoded; a batch with a non-ASCII datagram has none', async () => {
    const texts: (string | undefined)[] = [];
    const bytesAsText: string[] = [];
    const r = new UdpReceiver(['127.0.0.1:0'], 4 * 1024 * 1024, (bytes, _from, _at, text) => void (texts.push(text), bytesAsText.push(bytes.toString('utf8'))), log, 'recvmmsg');
    await r.start();
    open.push(r);
    const s = await sender('udp4');
    const to = r.addresses()[0]!;
    // ASCII (JSON as the SDKs send it) with one UTF-8 datagram in the middle: queued together, read in a few batches.
    const sent = Array.from({ length: 300 }, (_, i) => Buffer.from(JSON.stringify({ Type: 'ApiCall', i, Message: i === 150 ? 'Zugriff verweigert: Schlüssel' : 'Access Denied' })));
    await Promise.all(sent.map((b) => send(s, b, to)));
    await until(() => texts.length >= sent.length);
    expect(bytesAsText).toEqual(sent.map((b) => b.toString('utf8')));
    for (let i = 0; i < texts.length; i++) if (texts[i] !== undefined) expect(texts[i]).toBe(bytesAsText[i]);
    expect(texts[150]).toBeUndefined();
    // the burst came in batches of more than one: most datagrams came with their text
    expect(texts.filter((t) => t !== undefined).length).toBeGreaterThan(sent.length / 2);
  });
});

describe.each(MODES)('the %s receiver', (mode) => {
  it('listens on port 0 over IPv4 and IPv6 and reports the bound ports', async () => {
    const { r } = await receiver(mode, ['127.0.0.1:0', '[::1]:0']);
    const [v4, v6] = r.addresses();
    expect(v4).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(v6).toMatch(/^\[::1\]:\d+$/);
    expect(parseHostPort(v4!).port).toBeGreaterThan(0);
    expect(parseHostPort(v6!).port).toBeGreaterThan(0);
    expect(r.kernelDrops()).toBe(0);
    await r.close();
    expect(r.kernelDrops()).toBeUndefined();
    await r.close(); // twice is fine
  });

  it('a port in use is the friendly EADDRINUSE error', async () => {
    const taken = await sender('udp4');
    await expect(receiver(mode, [`127.0.0.1:${taken.address().port}`])).rejects.toThrow(
      new RegExp(`^cannot listen on udp 127\\.0\\.0\\.1:${taken.address().port}: bind EADDRINUSE 127\\.0\\.0\\.1:${taken.address().port}.*already listens there`),
    );
  });

  it('an address that is not local is the friendly EADDRNOTAVAIL error', async () => {
    await expect(receiver(mode, ['192.0.2.1:0'])).rejects.toThrow(/EADDRNOTAVAIL.*no such local address/);
  });

  it('a host name is resolved like node:dgram does', async () => {
    const { r } = await receiver(mode, ['localhost:0']);
    expect(r.addresses()[0]).toMatch(/^127\.0\.0\.1:\d+$/);
  });

  it('close() from inside the handler during a flood: nothing more is handed on, nothing crashes', async () => {
    const s = await sender('udp4');
    let afterClose = 0;
    let closed = false;
    const { r, got } = await receiver(mode, ['127.0.0.1:0'], (_g, rec) => {
      if (closed) afterClose++;
      else if (got.length === 100) {
        closed = true;
        void rec.close();
      }
    });
    const { port } = parseHostPort(r.addresses()[0]!);
    let flooding = true;
    const flood = (async () => {
      while (flooding) {
        await Promise.all(Array.from({ length: 200 }, (_, i) => new Promise<void>((res) => s.send(payload(i, 300), port, '127.0.0.1', () => res()))));
        await new Promise((res) => setImmediate(res));
      }
    })();
    await until(() => closed);
    await new Promise((res) => setTimeout(res, 200));
    flooding = false;
    await flood;
    expect(got.length).toBe(100);
    expect(afterClose).toBe(0);
    await r.close();
  });
});

describe.runIf(!!addon)('BatchSocket (the addon itself)', () => {
  it('reads a queued burst in batches of at most MAX_BATCH, one call per batch', async () => {
    const A = addon!;
    const s = await sender('udp4');
    const counts: number[] = [];
    let received = 0;
    const sock = new A.BatchSocket('127.0.0.1', 0, false, 4 * 1024 * 1024, (count, updates) => {
      counts.push(count);
      received += count;
      if (counts.length === 1) expect(updates).toEqual([expect.any(Number), '127.0.0.1']);
      else expect(updates).toBeUndefined(); // one sender: its address string is made once
      for (let i = 0; i < count; i++) {
        expect(sock.meta[i * A.META_FIELDS]).toBe(100);
        expect(sock.meta[i * A.META_FIELDS + 1]).toBe(s.address().port);
      }
    }, () => {});
    open.push(sock);
    const { port, family } = sock.address();
    expect(family).toBe('IPv4');
    expect(sock.recvBufferSize()).toBeGreaterThanOrEqual(65536);
    expect(sock.rcvbufError).toBeNull();
    await Promise.all(Array.from({ length: 500 }, (_, i) => new Promise<void>((res) => s.send(payload(i, 100), port, '127.0.0.1', () => res()))));
    await until(() => received >= 500);
    expect(received).toBe(500);
    expect(Math.max(...counts)).toBe(A.MAX_BATCH);
    expect(counts.length).toBeLessThan(500 / 8);
    sock.close();
    sock.close();
    expect(() => sock.address()).toThrow(/EBADF/);
  });

  it('keeps the address table right with more senders than cache slots', async () => {
    const A = addon!;
    const { r, got } = await receiver('recvmmsg', ['127.0.0.1:0']);
    const { port } = parseHostPort(r.addresses()[0]!);
    // 127.0.0.0/8 is all loopback: bind senders on many distinct source addresses.
    const n = A.ADDR_CACHE + 40;
    const sent: Got[] = [];
    const socks: Socket[] = [];
    for (let i = 0; i < n; i++) {
      const host = `127.0.${1 + (i >> 8)}.${i & 255 || 1}`;
      const s = createSocket('udp4');
      await new Promise<void>((res) => s.bind(0, host, () => res()));
      open.push({ close: () => new Promise<void>((res) => s.close(() => res())) });
      socks.push(s);
    }
    for (let round = 0; round < 2; round++)
      for (const s of socks) {
        const b = payload(sent.length, 50);
        sent.push({ bytes: b, address: s.address().address, port: s.address().port });
        s.send(b, port, '127.0.0.1');
      }
    await until(() => got.length >= sent.length);
    expect(flat(got)).toEqual(flat(sent));
  });
});

describe.runIf(!!addon)('the bridge with the recvmmsg receiver', () => {
  it('gives datagram taps their own copy of each datagram (the receive buffer is reused)', async () => {
    const config = configSchema.parse({ listen: ['127.0.0.1:0'], admin: 'off', udpReceiver: 'recvmmsg', processIdentity: 'off', otlpEndpoint: 'http://127.0.0.1:9' });
    const bridge = new Bridge(config, log, 'test', resolveOtelEnv({}, config));
    const kept: Buffer[] = [];
    bridge.tapDatagrams((bytes) => kept.push(bytes));
    const { listen } = await bridge.start();
    open.push({ close: () => bridge.stop(Date.now() + 1_000) });
    const s = await sender('udp4');
    const { port } = parseHostPort(listen[0]!);
    const sent = Array.from({ length: 300 }, (_, i) => payload(i, 64 + i));
    await Promise.all(sent.map((b) => new Promise<void>((res) => s.send(b, port, '127.0.0.1', () => res()))));
    await until(() => kept.length >= sent.length);
    expect(b64(kept)).toEqual(b64(sent));
    expect(bridge.stats.datagrams.received).toBe(300);
  });
});
