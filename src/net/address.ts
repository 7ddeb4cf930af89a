/**
 * The one address type and the one `host:port` parser. Listen addresses, admin addresses,
 * datagram sources and the `src` of recordings all use `HOST:PORT` with IPv6 in brackets
 * (`127.0.0.1:31000`, `[::1]:31000`, `localhost:31000`).
 */

/** Where a datagram came from: the sender's IP address and port. */
export interface Source {
  address: string;
  port: number;
}

export interface HostPort {
  /** Without brackets. */
  host: string;
  port: number;
}

/** Splits `HOST:PORT` at the last colon and drops IPv6 brackets. Undefined when there is no `:PORT`. */
export function splitHostPort(s: string): HostPort | undefined {
  const i = s.lastIndexOf(':');
  if (i <= 0) return undefined;
  const portText = s.slice(i + 1);
  if (!/^\d{1,5}$/.test(portText)) return undefined;
  return { host: s.slice(0, i).replace(/^\[(.*)\]$/, '$1'), port: Number(portText) };
}

/** `HOST:PORT` of a setting the config schema already checked; throws on anything else. */
export function parseHostPort(s: string): HostPort {
  const hp = splitHostPort(s);
  if (hp === undefined || hp.port > 65535) throw new Error(`expected HOST:PORT, with IPv6 in brackets, got "${s}"`);
  return hp;
}

/** `HOST:PORT`, an IPv6 address in brackets. */
export function formatHostPort(host: string, port: number | string): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** `HOST:PORT` → Source, or throws saying what is wrong (recordings, test captures). */
export function parseSource(src: string): Source {
  const hp = splitHostPort(src);
  if (hp === undefined || hp.port > 65535) throw new Error(`bad src "${src}" (want ip:port)`);
  return { address: hp.host, port: hp.port };
}

/** The host name of a Host header (`name`, `name:port`, `[v6]`, `[v6]:port`), or undefined when it is none of these. */
export function hostName(header: string): string | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+))(?::\d{1,5})?$/.exec(header);
  return m ? (m[1] ?? m[2]) : undefined;
}
