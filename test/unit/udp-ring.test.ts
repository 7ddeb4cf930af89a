// The recvmmsg receiver's reader thread and its bounded ring (native/udp_batch.c): while the JS
// thread cannot run (a cold start, a GC pause; here: blocked in a synchronous child process that
// sends the burst), the reader thread keeps draining the socket into the ring, up to its bounds;
// what finds the ring full is dropped and counted (ringDropped, in /stats next to kernelDropped).
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { Bridge } from '../../src/bridge.js';
import { resolveOtelEnv } from '../../src/config/otel-env.js';
import { configSchema } from '../../src/config/schema.js';
import { createLogger } from '../../src/log.js';
import { parseHostPort } from '../../src/net/address.js';
import { loadBatchAddon } from '../../src/receive/batch-socket.js';
import { UdpReceiver } from '../../src/receive/udp-receiver.js';
import type { Stats } from '../../src/stats.js';

const { addon } = loadBatchAddon();
const log = createLogger('error', () => {});

const open: { close(): Promise<void> | void }[] = [];
afterEach(async () => {
  for (const o of open.splice(0)) await o.close();
});

/**
 * Sends `count` datagrams of `size` bytes to 127.0.0.1:`port` from a child process, `perTick` every
 * 2 ms, and returns only when it is done: this (the JS) thread is blocked all along, as in a long
 * GC pause. Paced so that the reader thread keeps up on a busy machine (the kernel drops little).
 */
function sendBlocking(port: number, count: number, size: number, perTick: number): void {
  const code = `
    const s = require('node:dgram').createSocket('udp4');
    const b = Buffer.alloc(${size}, 120);
    let sent = 0, done = 0;
    const tick = () => {
      for (let i = 0; i < ${perTick} && sent < ${count}; i++, sent++)
        s.send(b, ${port}, '127.0.0.1', () => { if (++done === ${count}) s.close(); });
      if (sent < ${count}) setTimeout(tick, 2);
    };
    tick();`;
  execFileSync(process.execPath, ['-e', code], { stdio: 'ignore', timeout: 60_000 });
}

async function until(cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function ringReceiver(rcvbuf: number) {
  let received = 0;
  let bytes = 0;
  const r = new UdpReceiver(['127.0.0.1:0'], rcvbuf, (b) => ((received += 1), (bytes += b.length)), log, 'recvmmsg');
  await r.start();
  open.push(r);
  const port = parseHostPort(r.addresses()[0]!).port;
  return { r, port, counts: () => ({ received, bytes }) };
}

describe.runIf(!!addon)('the recvmmsg receiver ring', () => {
  it('absorbs a burst sent while the JS thread is blocked, up to RING_DATAGRAMS; the rest is counted as ring drops', async () => {
    const A = addon!;
    // The kernel's socket buffer holds ~3,500 of these: what arrives beyond it was read by the
    // reader thread while this thread was blocked.
    const { r, port, counts } = await ringReceiver(4 * 1024 * 1024);
    const SENT = A.RING_DATAGRAMS + 40_000;
    sendBlocking(port, SENT, 100, 200);
    await until(() => counts().received + r.ringDrops()! + r.kernelDrops()! >= SENT);
    const kernel = r.kernelDrops()!;
    expect(counts().received + r.ringDrops()! + kernel).toBe(SENT);
    // Nothing was drained during the burst: the ring held exactly its bound, the rest was dropped there.
    expect(counts().received).toBe(Math.min(A.RING_DATAGRAMS, SENT - kernel));
    expect(r.ringDrops()).toBeGreaterThan(0);
  });

  it('holds at most RING_BYTES of datagram bytes', async () => {
    const A = addon!;
    const SIZE = 60_000;
    const { r, port, counts } = await ringReceiver(4 * 1024 * 1024);
    const SENT = Math.ceil((1.5 * A.RING_BYTES) / SIZE);
    sendBlocking(port, SENT, SIZE, 10);
    await until(() => counts().received + r.ringDrops()! + r.kernelDrops()! >= SENT);
    const kernel = r.kernelDrops()!;
    expect(counts().received + r.ringDrops()! + kernel).toBe(SENT);
    expect(counts().received).toBe(Math.min(Math.floor(A.RING_BYTES / SIZE), SENT - kernel));
    expect(counts().bytes).toBeLessThanOrEqual(A.RING_BYTES);
    expect(r.ringDrops()).toBeGreaterThan(0);
  });

  it('stops and joins its reader thread on close: no thread or descriptor left after 40 open/close cycles', async () => {
    const threads = () => Number(/^Threads:\s+(\d+)/m.exec(readFileSync('/proc/self/status', 'utf8'))![1]);
    const fds = () => readdirSync('/proc/self/fd').length;
    const before = { threads: threads(), fds: fds() };
    for (let i = 0; i < 40; i++) {
      const { r, port, counts } = await ringReceiver(65_536);
      expect(threads()).toBe(before.threads + 1); // the reader thread runs while open
      sendBlocking(port, 10, 50, 10);
      await until(() => counts().received === 10);
      await r.close();
      open.pop();
    }
    expect(threads()).toBe(before.threads);
    expect(fds()).toBe(before.fds);
  });
});

describe.runIf(!!addon)('the bridge with the recvmmsg receiver', () => {
  it('counts ring drops in /stats (datagrams.ringDropped), next to kernelDropped, outside received', async () => {
    const A = addon!;
    const config = configSchema.parse({
      listen: ['127.0.0.1:0'],
      admin: '127.0.0.1:0',
      udpReceiver: 'recvmmsg',
      receiveBufferBytes: 4 * 1024 * 1024,
      processIdentity: 'off',
      otlpEndpoint: 'http://127.0.0.1:9',
    });
    const bridge = new Bridge(config, log, 'test', resolveOtelEnv({}, config));
    const { listen, admin } = await bridge.start();
    open.push({ close: () => bridge.stop(Date.now() + 1_000) });
    const SENT = A.RING_DATAGRAMS + 40_000;
    sendBlocking(parseHostPort(listen[0]!).port, SENT, 80, 200);
    const stats = async () => (await (await fetch(`http://${admin}/stats`)).json()) as Stats;
    let s = await stats();
    const end = Date.now() + 20_000;
    while (s.datagrams.received + s.datagrams.ringDropped + s.datagrams.kernelDropped < SENT && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 50));
      s = await stats();
    }
    expect(s.datagrams.received + s.datagrams.ringDropped + s.datagrams.kernelDropped).toBe(SENT);
    expect(s.datagrams.ringDropped).toBeGreaterThan(0);
    expect(s.datagrams.received).toBe(Math.min(A.RING_DATAGRAMS, SENT - s.datagrams.kernelDropped));
  });
});
