import { BlockList, isIPv4, isIPv6 } from 'node:net';
import { hostName, splitHostPort } from '../net/address.js';

/**
 * Who may send CSM datagrams (issue 3: bind policy and source allow-list).
 *
 * CSM is unauthenticated UDP: whoever can reach the socket can put spans into
 * the backend under any service name. On a loopback address only this host can
 * send, so that is the default and needs nothing else. Binding anything else
 * (0.0.0.0, ::, a LAN or pod address) must come with either a source
 * allow-list (`--allow-source CIDR`, repeatable) or the explicit opt-out
 * `--allow-any-source`; `bindPolicyError` says why the bridge refuses to start
 * otherwise. With an allow-list, datagrams from other sources are dropped
 * (and counted) before they are decoded, whatever the bind address.
 */

/** A parsed `ADDRESS[/PREFIX]`; a bare address means /32 (IPv4) or /128 (IPv6). */
export interface Cidr {
  family: 'ipv4' | 'ipv6';
  address: string;
  prefix: number;
}

/** Parses an IPv4 or IPv6 CIDR, or returns undefined. IPv4-mapped IPv6 (`::ffff:10.0.0.0/104`) is read as IPv4. */
export function parseCidr(text: string): Cidr | undefined {
  const s = text.trim();
  const slash = s.indexOf('/');
  const addr = (slash < 0 ? s : s.slice(0, slash)).replace(/^\[(.*)\]$/, '$1');
  const prefixText = slash < 0 ? undefined : s.slice(slash + 1);
  if (prefixText !== undefined && !/^\d{1,3}$/.test(prefixText)) return undefined;
  if (isIPv4(addr)) {
    const prefix = prefixText === undefined ? 32 : Number(prefixText);
    return prefix <= 32 ? { family: 'ipv4', address: addr, prefix } : undefined;
  }
  if (isIPv6(addr)) {
    const prefix = prefixText === undefined ? 128 : Number(prefixText);
    if (prefix > 128) return undefined;
    const v4 = mappedV4(addr);
    if (v4 !== undefined && prefix >= 96) return { family: 'ipv4', address: v4, prefix: prefix - 96 };
    return { family: 'ipv6', address: addr, prefix };
  }
  return undefined;
}

/** `::ffff:1.2.3.4` → `1.2.3.4` (how a dual-stack socket shows IPv4 peers). */
function mappedV4(address: string): string | undefined {
  const m = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address);
  return m && isIPv4(m[1]!) ? m[1] : undefined;
}

export class SourceFilter {
  private readonly list = new BlockList();

  /** `cidrs` must be valid (the config schema checks them with `parseCidr`). */
  constructor(readonly cidrs: readonly string[]) {
    for (const text of cidrs) {
      const c = parseCidr(text);
      if (!c) throw new Error(`not an IPv4 or IPv6 CIDR: ${JSON.stringify(text)}`);
      this.list.addSubnet(c.address, c.prefix, c.family);
    }
  }

  /** Whether a datagram from `address` (as node:dgram reports it) may pass. */
  allows(address: string): boolean {
    const v4 = address.includes(':') ? mappedV4(address) : address;
    if (v4 !== undefined) return this.list.check(v4, 'ipv4');
    // Zone ids (fe80::1%eth0) are not part of the address BlockList knows.
    const pct = address.indexOf('%');
    return this.list.check(pct < 0 ? address : address.slice(0, pct), 'ipv6');
  }
}

/**
 * An HTTP request's Host header that a web page rebound to this host (DNS rebinding) cannot send:
 * absent (browsers always send one) or a loopback name. The admin listener and the Prometheus
 * endpoint answer only these unless --allow-remote-http.
 */
export function isLoopbackHostHeader(header: string | undefined): boolean {
  return header === undefined || isLoopbackHost(hostName(header) ?? '');
}

/** True for addresses only this host can reach: 127.0.0.0/8, ::1, ::ffff:127.x.y.z and `localhost`. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  if (h === 'localhost' || h === 'ip6-localhost' || h === 'ip6-loopback') return true;
  const v4 = isIPv4(h) ? h : mappedV4(h);
  if (v4 !== undefined) return v4.startsWith('127.');
  if (isIPv6(h)) return h === '::1' || /^(0{1,4}:){7}0{0,3}1$/.test(h) || h === '0:0:0:0:0:0:0:1';
  return false;
}

/**
 * Why the bridge must not start with these listen addresses, or undefined when it may:
 * a non-loopback UDP address needs an allow-list or the explicit opt-out.
 */
export function bindPolicyError(listen: readonly string[], allowSource: readonly string[], allowAnySource: boolean): string | undefined {
  if (allowSource.length > 0 || allowAnySource) return undefined;
  const open = listen.filter((addr) => !isLoopbackHost(splitHostPort(addr)?.host ?? addr));
  if (open.length === 0) return undefined;
  return (
    `refusing to listen on non-loopback UDP address ${open.join(', ')} without a source allow-list: ` +
    'CSM datagrams are unauthenticated, so anyone who can reach the port could write spans. ' +
    'Add --allow-source CIDR (repeatable, e.g. --allow-source 10.0.0.0/8 --allow-source fd00::/8; env AWS_CSM_BRIDGE_ALLOW_SOURCE) ' +
    'or, if the network is trusted, --allow-any-source (env AWS_CSM_BRIDGE_ALLOW_ANY_SOURCE=true).'
  );
}

/**
 * The same rule for the HTTP listeners (the admin listener, the Prometheus endpoint): loopback
 * unless `allowRemoteHttp`. They answer anyone who can connect, without authentication, with the
 * bridge's counters, client names and metrics. Returns why the bridge must not start, or undefined.
 */
export function httpBindPolicyError(listeners: readonly { what: string; host: string; setting: string }[], allowRemoteHttp: boolean): string | undefined {
  if (allowRemoteHttp) return undefined;
  const open = listeners.filter((l) => !isLoopbackHost(l.host));
  if (open.length === 0) return undefined;
  return (
    `refusing to serve ${open.map((l) => `the ${l.what} on non-loopback address ${l.host} (${l.setting})`).join(' and ')}: ` +
    'it answers anyone who can connect, without authentication. Bind a loopback address, or, on a network you trust, ' +
    'add --allow-remote-http (env AWS_CSM_BRIDGE_ALLOW_REMOTE_HTTP=true).'
  );
}
