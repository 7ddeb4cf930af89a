import { isAscii } from 'node:buffer';
import { createSocket, type Socket } from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { readFileSync } from 'node:fs';
import { isIP, isIPv6 } from 'node:net';
import { ConfigError } from '../config/error.js';
import { parseProcNetUdp } from '../identity/proc-net.js';
import type { Logger } from '../log.js';
import { parseHostPort, type Source } from '../net/address.js';
import { BUILD_HINT, loadBatchAddon, type BatchAddon } from './batch-socket.js';

/**
 * Called once per datagram, synchronously. With the recvmmsg receiver `bytes` is a view into a
 * buffer the next batch overwrites: it is only valid during the call (copy it to keep it).
 */
export type DatagramHandler = (bytes: Buffer, from: Source, receivedAt: number, text?: string) => void;

/** The udpReceiver setting: auto = recvmmsg when the addon is built (Linux), else node:dgram. */
export type UdpReceiverKind = 'auto' | 'recvmmsg' | 'dgram';

/** One bound socket, whichever the receiver. */
interface OpenSocket {
  address(): { address: string; port: number; family: string };
  /** Datagrams the receiver's own ring dropped (recvmmsg receiver; 0 for node:dgram). */
  ringDropped(): number;
  close(): Promise<void>;
}

/** SO_RCVBUF is an int. */
const MAX_RCVBUF = 2 ** 31 - 1;

/**
 * Receive stage: one UDP socket per listen address, each datagram handed on synchronously.
 * Two implementations: `recvmmsg` (Linux, native/udp_batch.c: a reader thread reads up to 64
 * datagrams per syscall into a bounded ring, handed to JS in batches, one JS call per batch) and
 * `dgram` (node:dgram, one syscall, Buffer and callback per datagram). Both read up to 64 KiB per datagram, the UDP maximum.
 */
export class UdpReceiver {
  private readonly sockets: OpenSocket[] = [];
  private mode: 'recvmmsg' | 'dgram' | undefined;

  constructor(
    private readonly listen: readonly string[],
    private readonly receiveBufferBytes: number,
    private readonly onDatagram: DatagramHandler,
    private readonly log: Logger,
    private readonly kind: UdpReceiverKind = 'auto',
  ) {}

  /** The receiver in use (after start). */
  get receiver(): 'recvmmsg' | 'dgram' | undefined {
    return this.mode;
  }

  async start(): Promise<void> {
    const addon = this.chooseAddon();
    this.mode = addon ? 'recvmmsg' : 'dgram';
    try {
      for (const addr of this.listen) {
        this.sockets.push(addon ? await this.openBatch(addon, addr) : await this.openDgram(addr));
      }
    } catch (e) {
      await this.close();
      throw e;
    }
  }

  private chooseAddon(): BatchAddon | undefined {
    if (this.kind === 'dgram') return undefined;
    const { addon, why } = loadBatchAddon();
    if (addon) return addon;
    // Asked for by name: a configuration the bridge cannot honour (exit 2), not a fallback.
    if (this.kind === 'recvmmsg') throw new ConfigError(`udpReceiver is recvmmsg but ${why}: ${BUILD_HINT}`);
    this.log.info('UDP receiver: node:dgram (udpReceiver auto)', { why });
    return undefined;
  }

  private listenError(addr: string, err: NodeJS.ErrnoException): Error {
    const hint =
      err.code === 'EADDRINUSE'
        ? ' (another process, maybe another bridge or the CloudWatch agent, already listens there; pick another --listen)'
        : err.code === 'EADDRNOTAVAIL' || err.code === 'ENOTFOUND'
          ? ' (no such local address)'
          : '';
    return new Error(`cannot listen on udp ${addr}: ${err.message}${hint}`);
  }

  private async openDgram(addr: string): Promise<OpenSocket> {
    const { host, port } = parseHostPort(addr);
    const socket: Socket = createSocket({ type: isIPv6(host) ? 'udp6' : 'udp4', ipv6Only: isIPv6(host) });
    const handler = this.onDatagram;
    socket.on('message', (bytes: Buffer, from: Source) => handler(bytes, from, Date.now()));
    await new Promise<void>((resolve, reject) => {
      socket.once('error', (err: NodeJS.ErrnoException) => {
        socket.close();
        reject(this.listenError(addr, err));
      });
      socket.bind(port, host, () => resolve());
    });
    socket.on('error', (err) => this.log.error('udp socket error', { listen: addr, error: err.message }));
    let setError: Error | undefined;
    try {
      socket.setRecvBufferSize(Math.min(this.receiveBufferBytes, MAX_RCVBUF));
    } catch (e) {
      setError = e as Error;
    }
    this.checkBufferSize(addr, setError, socket.getRecvBufferSize());
    return {
      address: () => socket.address(),
      ringDropped: () => 0,
      close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
    };
  }

  private async openBatch(addon: BatchAddon, addr: string): Promise<OpenSocket> {
    const { host, port } = parseHostPort(addr);
    const ipv6 = isIPv6(host);
    let ip = host;
    if (!isIP(host)) {
      // node:dgram resolves a name the same way (udp4: family 4).
      try {
        ip = (await lookup(host, { family: 4 })).address;
      } catch (e) {
        throw this.listenError(addr, e as NodeJS.ErrnoException);
      }
    }
    const { META_FIELDS, ADDR_CACHE } = addon;
    const handler = this.onDatagram;
    // Address slot → string, kept in step with the addon's cache by the batches' updates.
    const addresses: string[] = new Array<string>(ADDR_CACHE).fill('');
    let data: Buffer | undefined;
    let meta: Int32Array | undefined;
    let closed = false;
    const onBatch = (count: number, updates: (number | string)[] | undefined): void => {
      if (updates !== undefined) for (let i = 0; i + 1 < updates.length; i += 2) addresses[updates[i] as number] = updates[i + 1] as string;
      const d = data!;
      const m = meta!;
      // One receive time per batch (read within a fraction of a millisecond): a clock read per datagram was 1 % of the path.
      const receivedAt = Date.now();
      const text = batchText(d, m, count, META_FIELDS);
      const lo = count > 0 ? m[3]! : 0;
      // `closed`: a handler that closes the receiver gets no more datagrams, not even this batch's rest.
      for (let i = 0, f = 0; i < count && !closed; i++, f += META_FIELDS) {
        const slot = m[f + 2]!;
        const off = m[f + 3]!;
        const len = m[f]!;
        handler(d.subarray(off, off + len), { address: slot >= 0 ? addresses[slot]! : '', port: m[f + 1]! }, receivedAt, text?.slice(off - lo, off - lo + len));
      }
    };
    const onError = (err: NodeJS.ErrnoException): void =>
      this.log.warnLimited(`udp-recv:${err.code ?? 'error'}`, 'udp receive error', { listen: addr, error: err.message });
    let socket;
    try {
      socket = new addon.BatchSocket(ip, port, ipv6, Math.min(this.receiveBufferBytes, MAX_RCVBUF), onBatch, onError);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      // The same text node:dgram gives: "bind EADDRINUSE 127.0.0.1:31000".
      if (err.syscall && err.code) err.message = `${err.syscall} ${err.code} ${ip}:${port}`;
      throw this.listenError(addr, err);
    }
    data = Buffer.from(socket.buffer);
    meta = socket.meta;
    const s = socket;
    this.checkBufferSize(addr, s.rcvbufError ?? undefined, s.recvBufferSize());
    return {
      address: () => s.address(),
      ringDropped: () => s.ringDropped(),
      close: () => {
        closed = true;
        s.close();
        return Promise.resolve();
      },
    };
  }

  private checkBufferSize(addr: string, setError: Error | undefined, actual: number): void {
    if (setError) this.log.warn('cannot set the UDP receive buffer', { listen: addr, wanted: this.receiveBufferBytes, error: setError.message });
    // Linux doubles the value and caps it at net.core.rmem_max: say what we got.
    if (actual < this.receiveBufferBytes) {
      this.log.warn('UDP receive buffer smaller than configured; raise net.core.rmem_max to avoid drops under bursts', {
        listen: addr,
        wanted: this.receiveBufferBytes,
        actual,
      });
    }
  }

  /** The bound addresses (ports resolved when 0 was asked for). */
  addresses(): string[] {
    return this.sockets.map((s) => {
      const a = s.address();
      return a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
    });
  }

  /**
   * Datagrams the kernel dropped on these sockets because the receive buffer
   * was full (Linux; 0 elsewhere). Reads /proc, so call it from a timer or an
   * admin request, never per datagram. Matched by port within the family's
   * table: the bridge owns the port on its address. Undefined once closed.
   */
  kernelDrops(): number | undefined {
    if (this.sockets.length === 0) return undefined;
    let total = 0;
    for (const [family, file] of [['IPv4', '/proc/net/udp'], ['IPv6', '/proc/net/udp6']] as const) {
      const ports = new Set(this.sockets.map((s) => s.address()).filter((a) => a.family === family).map((a) => a.port));
      if (ports.size === 0) continue;
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch {
        continue;
      }
      for (const row of parseProcNetUdp(text)) if (ports.has(row.localPort)) total += row.drops;
    }
    return total;
  }

  /**
   * Datagrams read from these sockets but dropped because the recvmmsg receiver's ring was full
   * (the JS thread fell more than the ring behind); 0 with node:dgram. Undefined once closed.
   */
  ringDrops(): number | undefined {
    if (this.sockets.length === 0) return undefined;
    let total = 0;
    for (const s of this.sockets) total += s.ringDropped();
    return total;
  }

  async close(): Promise<void> {
    const sockets = this.sockets.splice(0);
    await Promise.all(sockets.map((s) => s.close()));
  }
}

/**
 * The batch's datagrams as one string, when they lie back to back in the ring and are all ASCII
 * (CSM datagrams are, but for exception messages): one decode for the batch instead of a Buffer
 * toString per datagram (2 % of the datagram path), each datagram then a slice of it (JSON.parse
 * copies what it keeps, so a slice does not hold the batch's text). Otherwise undefined: each
 * datagram is decoded from its bytes as UTF-8.
 */
function batchText(d: Buffer, m: Int32Array, count: number, fields: number): string | undefined {
  if (count < 2) return undefined;
  const lo = m[3]!;
  let end = lo;
  for (let i = 0, f = 0; i < count; i++, f += fields) {
    if (m[f + 3] !== end) return undefined; // wrapped around the ring's end
    end += m[f]!;
  }
  const region = d.subarray(lo, end);
  return isAscii(region) ? region.toString('latin1') : undefined;
}
