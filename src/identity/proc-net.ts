/**
 * Parsing of Linux /proc text for process identity: /proc/net/udp and
 * /proc/net/udp6 (which socket inode owns a local address:port), fd links
 * (`socket:[INODE]`) and /proc/PID/cgroup (container id). Pure functions,
 * no I/O, so they are tested on sample text.
 */

/** One socket row of /proc/net/udp or /proc/net/udp6. */
export interface UdpSocketRow {
  /** Canonical text: dotted quad for IPv4, full lowercase hex groups for IPv6 (IPv4-mapped kept as IPv6). */
  localAddress: string;
  localPort: number;
  remoteAddress: string;
  remotePort: number;
  uid: number;
  inode: number;
  /** Datagrams the kernel dropped for this socket (receive buffer full); 0 when the column is absent. */
  drops: number;
}

/**
 * /proc/net/udp prints an IPv4 address as 8 hex digits of the 32-bit value
 * in host byte order (little-endian on x86/arm64): 127.0.0.1 is 0100007F.
 * IPv6 is four such 32-bit words, each in host byte order.
 */
export function decodeProcAddress(hex: string, littleEndian = true): string | undefined {
  if (!/^[0-9A-Fa-f]+$/.test(hex)) return undefined;
  const word = (h: string): number[] => {
    const b = [0, 2, 4, 6].map((i) => parseInt(h.slice(i, i + 2), 16));
    return littleEndian ? b.reverse() : b;
  };
  if (hex.length === 8) return word(hex).join('.');
  if (hex.length === 32) {
    const bytes = [0, 8, 16, 24].flatMap((i) => word(hex.slice(i, i + 8)));
    const groups: string[] = [];
    for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
    return groups.join(':');
  }
  return undefined;
}

/** Parses the whole text of /proc/net/udp or /proc/net/udp6; malformed rows are skipped. */
export function parseProcNetUdp(text: string, littleEndian = true): UdpSocketRow[] {
  const rows: UdpSocketRow[] = [];
  for (const line of text.split('\n')) {
    // "  sl  local_address rem_address   st tx_queue:rx_queue tr:tm->when retrnsmt   uid  timeout inode ref pointer drops"
    const f = line.trim().split(/\s+/);
    if (f.length < 10 || !/^\d+:$/.test(f[0]!)) continue;
    const local = splitHexAddr(f[1]!, littleEndian);
    const remote = splitHexAddr(f[2]!, littleEndian);
    const uid = Number(f[7]);
    const inode = Number(f[9]);
    if (!local || !remote || !Number.isInteger(uid) || !Number.isInteger(inode)) continue;
    const drops = Number(f[12] ?? 0);
    rows.push({
      localAddress: local.address,
      localPort: local.port,
      remoteAddress: remote.address,
      remotePort: remote.port,
      uid,
      inode,
      drops: Number.isInteger(drops) ? drops : 0,
    });
  }
  return rows;
}

function splitHexAddr(s: string, littleEndian: boolean): { address: string; port: number } | undefined {
  const i = s.indexOf(':');
  if (i < 0) return undefined;
  const address = decodeProcAddress(s.slice(0, i), littleEndian);
  const port = parseInt(s.slice(i + 1), 16);
  if (address === undefined || !/^[0-9A-Fa-f]{4}$/.test(s.slice(i + 1))) return undefined;
  return { address, port };
}

/** IPv4 → 4 bytes; IPv6 (`::` compression, embedded IPv4) → 16 bytes; else undefined. */
export function addressBytes(address: string): number[] | undefined {
  const a = address.replace(/^\[(.*)\]$/, '$1').replace(/%.*$/, '');
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(a);
  if (v4) {
    const b = v4.slice(1).map(Number);
    return b.every((n) => n <= 255) ? b : undefined;
  }
  if (!a.includes(':')) return undefined;
  let tail: number[] = [];
  let s = a;
  const embedded = /^(.*:)(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})$/.exec(a);
  if (embedded) {
    const b = addressBytes(embedded[2]!);
    if (!b) return undefined;
    tail = b;
    // "::ffff:" keeps its "::"; "64:ff9b:0:0:0:0:" drops the separator before the IPv4 part.
    s = embedded[1]!.endsWith('::') ? embedded[1]! : embedded[1]!.slice(0, -1);
  }
  const halves = s.split('::');
  if (halves.length > 2) return undefined;
  const groups = (h: string) => (h === '' ? [] : h.split(':'));
  const head = groups(halves[0]!);
  const rest = halves.length === 2 ? groups(halves[1]!) : [];
  const want = (16 - tail.length) / 2;
  const missing = want - head.length - rest.length;
  if (halves.length === 1 ? missing !== 0 : missing < 0) return undefined;
  const all = [...head, ...Array<string>(missing).fill('0'), ...rest];
  const out: number[] = [];
  for (const g of all) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
    const n = parseInt(g, 16);
    out.push(n >> 8, n & 0xff);
  }
  return [...out, ...tail];
}

/** Maps an IPv4-mapped IPv6 address (::ffff:a.b.c.d) to its 4 bytes; other addresses unchanged. */
function unmapped(b: number[]): number[] {
  if (b.length === 16 && b.slice(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff) return b.slice(12);
  return b;
}

const isWildcard = (b: number[]) => b.every((x) => x === 0);

/**
 * The inode of the socket a datagram came from: the row bound to the
 * source port whose local address is the source address (or ::ffff: of it),
 * else one bound to the wildcard address (an unconnected socket that was
 * auto-bound by sendto, as botocore's is). Undefined when none or when the
 * wildcard match is ambiguous.
 */
export function findSocketInode(rows: readonly UdpSocketRow[], address: string, port: number): number | undefined {
  const src = addressBytes(address);
  if (!src) return undefined;
  const want = unmapped(src).join('.');
  const wildcard: number[] = [];
  for (const r of rows) {
    if (r.localPort !== port || r.inode === 0) continue;
    const b = addressBytes(r.localAddress);
    if (!b) continue;
    if (unmapped(b).join('.') === want) return r.inode;
    if (isWildcard(b) && !wildcard.includes(r.inode)) wildcard.push(r.inode);
  }
  return wildcard.length === 1 ? wildcard[0] : undefined;
}

/** `socket:[12345]` → 12345 (the target of a /proc/PID/fd link). */
export function socketInodeOfLink(link: string): number | undefined {
  const m = /^socket:\[(\d+)\]$/.exec(link);
  return m ? Number(m[1]) : undefined;
}

/**
 * The container id in /proc/PID/cgroup: the 64-hex id Docker, containerd,
 * CRI-O and Podman put in the cgroup path (`/docker/<id>`,
 * `docker-<id>.scope`, `cri-containerd-<id>.scope`, `crio-<id>.scope`,
 * `libpod-<id>.scope`, `/kubepods/.../<id>`). Undefined when absent (a
 * host process, or cgroup v2 with a private cgroup namespace: "0::/").
 */
export function containerIdFromCgroup(text: string): string | undefined {
  for (const line of text.split('\n')) {
    const path = line.slice(line.indexOf(':', line.indexOf(':') + 1) + 1);
    const ids = path.match(/(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])/g);
    if (ids) return ids[ids.length - 1];
  }
  return undefined;
}

/** Field 22 of /proc/PID/stat (start time in clock ticks since boot): tells a reused pid apart. */
export function startTimeFromStat(text: string): string | undefined {
  // comm (field 2) is in parentheses and may hold spaces or ')': split after the last ')'.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state), so field 22 is rest[19].
  const v = rest[19];
  return v !== undefined && /^\d+$/.test(v) ? v : undefined;
}

/**
 * /proc/PID/cmdline: NUL-separated arguments → one space-joined string, its first `max`
 * characters. The trailing NULs go by a loop: `/\0+$/` rescans every run of NULs (empty
 * arguments, which the sender chooses) from each of its positions, quadratic in the run. Only
 * what is kept is converted: a command line may be megabytes.
 */
export function commandLineFromProc(raw: string, max = Infinity): string {
  let end = raw.length;
  while (end > 0 && raw.charCodeAt(end - 1) === 0) end--;
  return raw.slice(0, Math.min(end, max)).replaceAll('\0', ' ');
}
