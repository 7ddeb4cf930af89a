import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { isIPv6 } from 'node:net';
import { parseProcNetUdp } from '../identity/proc-net.js';
import type { Logger } from '../log.js';

export type DatagramHandler = (bytes: Buffer, from: RemoteInfo) => void;

export interface ListenAddress {
  host: string;
  port: number;
}

/** `127.0.0.1:31000`, `[::1]:31000`, `localhost:31000`. */
export function parseHostPort(s: string): ListenAddress {
  const i = s.lastIndexOf(':');
  const host = s.slice(0, i).replace(/^\[(.*)\]$/, '$1');
  return { host, port: Number(s.slice(i + 1)) };
}

/**
 * Receive stage: one UDP socket per listen address, each datagram handed on
 * synchronously. Node reads up to 64 KiB per datagram, the IPv4 maximum.
 */
export class UdpReceiver {
  private readonly sockets: Socket[] = [];

  constructor(
    private readonly listen: readonly string[],
    private readonly receiveBufferBytes: number,
    private readonly onDatagram: DatagramHandler,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    for (const addr of this.listen) {
      const { host, port } = parseHostPort(addr);
      const socket = createSocket({ type: isIPv6(host) ? 'udp6' : 'udp4', ipv6Only: isIPv6(host) });
      socket.on('message', this.onDatagram);
      await new Promise<void>((resolve, reject) => {
        socket.once('error', (err: NodeJS.ErrnoException) => {
          socket.close();
          const hint =
            err.code === 'EADDRINUSE'
              ? ' (another process, maybe another bridge or the CloudWatch agent, already listens there; pick another --listen)'
              : err.code === 'EADDRNOTAVAIL' || err.code === 'ENOTFOUND'
                ? ' (no such local address)'
                : '';
          reject(new Error(`cannot listen on udp ${addr}: ${err.message}${hint}`));
        });
        socket.bind(port, host, () => resolve());
      });
      socket.on('error', (err) => this.log.error('udp socket error', { listen: addr, error: err.message }));
      this.applyBufferSize(socket, addr);
      this.sockets.push(socket);
    }
  }

  private applyBufferSize(socket: Socket, addr: string): void {
    try {
      socket.setRecvBufferSize(this.receiveBufferBytes);
    } catch (e) {
      this.log.warn('cannot set the UDP receive buffer', { listen: addr, wanted: this.receiveBufferBytes, error: (e as Error).message });
    }
    // Linux doubles the value and caps it at net.core.rmem_max: say what we got.
    const actual = socket.getRecvBufferSize();
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

  async close(): Promise<void> {
    await Promise.all(this.sockets.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    this.sockets.length = 0;
  }
}
