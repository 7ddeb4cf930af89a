import { readFileSync } from 'node:fs';
import { readdir, readFile, readlink } from 'node:fs/promises';
import { basename } from 'node:path';
import type { Logger } from '../log.js';
import {
  commandLineFromProc,
  containerIdFromCgroup,
  findSocketInode,
  parseProcNetUdp,
  socketInodeOfLink,
  startTimeFromStat,
  type UdpSocketRow,
} from './proc-net.js';

/** Who sent a datagram: a local process, as resource attributes. */
export interface ProcessIdentity {
  /** Stable text for provider keys: pid, start time, executable, container (and command line when on). */
  readonly key: string;
  readonly pid: number;
  /** process.pid, process.executable.name, container.id, process.command_line (opt-in). */
  readonly attributes: Readonly<Record<string, string | number>>;
  /** False once the process has exited (or its pid belongs to another process now). */
  alive(): boolean;
}

export type IdentityMode = 'auto' | 'on' | 'off';

export interface IdentityOptions {
  /** auto: loopback sources only; on: every source (the socket must be in this network namespace); off. */
  mode: IdentityMode;
  /** Add process.command_line (may hold secrets). */
  commandLine: boolean;
  procRoot?: string;
  /** How long a resolved (or unresolvable) source address:port is trusted. */
  ttlMs?: number;
  negativeTtlMs?: number;
  /** Cached sources (LRU); also caps pids and inodes kept. */
  maxEntries?: number;
  /** Least time between two scans of /proc/*\/fd. */
  minScanIntervalMs?: number;
  /** Longest a lookup waits for a resolution before the call is exported without identity. */
  maxWaitMs?: number;
  /** Bounds on one scan. */
  maxPidsPerScan?: number;
  maxLinksPerScan?: number;
  /** Injected for tests; defaults to node:fs/promises. */
  fs?: ProcFs;
}

export interface ProcFs {
  readFile(path: string): Promise<string>;
  readdir(path: string): Promise<string[]>;
  readlink(path: string): Promise<string>;
  readFileSync(path: string): string;
}

export interface IdentityCounters {
  /** Sources (address:port) resolved to a process / not resolved (socket gone, no permission, not local). */
  resolved: number;
  unresolved: number;
  /** Full scans of /proc/*\/fd. */
  scans: number;
}

const realFs: ProcFs = {
  readFile: (p) => readFile(p, 'utf8'),
  readdir: (p) => readdir(p),
  readlink: (p) => readlink(p),
  readFileSync: (p) => readFileSync(p, 'utf8'),
};

type Resolution = ProcessIdentity | undefined;

interface Entry {
  value: Resolution;
  /** Epoch ms after which the entry is resolved again. */
  expires: number;
  /** Queued or being resolved. */
  pending: boolean;
  /** Lookups waiting for the result (made only when a caller waits). */
  waiters?: ((v: Resolution) => void)[];
  address: string;
  port: number;
}

const LOOPBACK = /^(127\.|::1$|::ffff:127\.|0:0:0:0:0:0:0:1$)/i;
const MAX_COMMAND_LINE = 1024;

/**
 * Resolves the sender of a datagram on this host to its process:
 * source (address, port) → socket inode (/proc/net/udp, udp6) → pid (the
 * /proc/PID/fd link `socket:[INODE]`) → comm/exe, cgroup, cmdline.
 *
 * Off the datagram path: `lookup` is a map read; a new source only queues
 * work, done asynchronously in batches (one read of the udp tables per
 * batch; a scan of /proc/*\/fd only for inodes not cached, at most once per
 * `minScanIntervalMs`). Everything cached is bounded (LRU + TTL). Best
 * effort: a socket closed right after sending (JS v2, Ruby) is gone before
 * it can be looked up, and processes of other users cannot be inspected
 * without root/CAP_SYS_PTRACE (one warning).
 */
export class ProcessIdentityResolver {
  private readonly sources = new Map<string, Entry>();
  private readonly inodePid = new Map<number, { pid: number; expires: number }>();
  private readonly pidIdentity = new Map<number, { identity: ProcessIdentity | undefined; expires: number }>();
  private readonly queue = new Map<string, Entry>();
  /** The most recently used source, always last in `sources` (the LRU order), so it needs no touch. */
  private newest: Entry | undefined;
  private running = false;
  private disabled: boolean;
  private closed = false;
  private lastScanAt = -Infinity;
  private warnedDenied = false;
  /** Processes whose fd directory the last scan could not read. */
  private deniedSoFar = 0;
  private readonly fs: ProcFs;
  private readonly root: string;
  private readonly ttlMs: number;
  private readonly negativeTtlMs: number;
  private readonly maxEntries: number;
  private readonly minScanIntervalMs: number;
  private readonly maxWaitMs: number;
  private readonly maxPidsPerScan: number;
  private readonly maxLinksPerScan: number;
  private idle: Promise<void> = Promise.resolve();

  constructor(
    private readonly opts: IdentityOptions,
    private readonly log: Logger,
    /** Incremented in place (the bridge passes its /stats object). */
    readonly counters: IdentityCounters = { resolved: 0, unresolved: 0, scans: 0 },
  ) {
    this.fs = opts.fs ?? realFs;
    this.root = (opts.procRoot ?? '/proc').replace(/\/+$/, '');
    this.ttlMs = opts.ttlMs ?? 60_000;
    this.negativeTtlMs = opts.negativeTtlMs ?? 30_000;
    this.maxEntries = opts.maxEntries ?? 4_096;
    this.minScanIntervalMs = opts.minScanIntervalMs ?? 1_000;
    this.maxWaitMs = opts.maxWaitMs ?? 2_000;
    this.maxPidsPerScan = opts.maxPidsPerScan ?? 32_768;
    this.maxLinksPerScan = opts.maxLinksPerScan ?? 200_000;
    this.disabled = opts.mode === 'off';
  }

  /** Whether a source is looked up at all (mode, loopback). */
  applies(address: string): boolean {
    return !this.disabled && (this.opts.mode === 'on' || LOOPBACK.test(address));
  }

  /**
   * The identity of a source: the cached value (possibly undefined), or a
   * promise while it is being resolved (settles within `maxWaitMs`). A new
   * or expired source is queued for resolution. O(1) apart from that.
   */
  lookup(address: string, port: number): Resolution | Promise<Resolution> {
    const now = Date.now();
    const n = this.newest;
    if (n !== undefined && n.port === port && n.address === address && !n.pending && n.expires > now && !this.disabled) return n.value;
    if (!this.applies(address)) return undefined;
    const key = `${address}|${port}`;
    const e = this.sources.get(key);
    if (e && !e.pending && e.expires > now) {
      // LRU: most recently used last.
      this.sources.delete(key);
      this.sources.set(key, e);
      this.newest = e;
      return e.value;
    }
    const entry = e?.pending ? e : this.enqueue(key, address, port);
    if (!entry.pending) return entry.value;
    return withTimeout(new Promise<Resolution>((r) => (entry.waiters ??= []).push(r)), this.maxWaitMs);
  }

  /**
   * The datagram path: starts resolving a new (or expired) source, nothing
   * else. No promise or timer is made for the caller. `now`: the datagram's receive time (a
   * clock read per datagram cost more than the rest of this).
   */
  observe(address: string, port: number, now = Date.now()): void {
    const n = this.newest;
    // Most datagrams come from the source of the one before: no key, no map.
    if (n !== undefined && n.port === port && n.address === address && (n.pending || n.expires > now) && !this.disabled) return;
    if (!this.applies(address)) return;
    const key = `${address}|${port}`;
    const e = this.sources.get(key);
    if (e && (e.pending || e.expires > now)) return;
    this.enqueue(key, address, port);
  }

  /** Resolves when the work queued so far is done (tests, shutdown). */
  settled(): Promise<void> {
    return this.idle;
  }

  close(): void {
    this.closed = true;
    for (const e of this.queue.values()) this.finish(e, undefined, 0);
    this.queue.clear();
  }

  private enqueue(key: string, address: string, port: number): Entry {
    const entry: Entry = { value: undefined, expires: 0, pending: true, address, port };
    this.sources.delete(key);
    this.sources.set(key, entry);
    this.newest = entry;
    while (this.sources.size > this.maxEntries) {
      const oldest = this.sources.keys().next().value as string;
      const old = this.sources.get(oldest);
      this.sources.delete(oldest);
      if (old?.pending) this.finish(old, undefined, 0);
    }
    if (this.queue.size >= this.maxEntries) {
      // A flood of new source ports (JS v2, Ruby) between two batches: these go unresolved.
      this.finish(entry, undefined, this.negativeTtlMs);
      return entry;
    }
    this.queue.set(key, entry);
    if (!this.running) {
      this.running = true;
      this.idle = new Promise<void>((done) => setImmediate(() => void this.drain().finally(done)));
    }
    return entry;
  }

  private async drain(): Promise<void> {
    try {
      while (this.queue.size > 0 && !this.closed) {
        const batch = [...this.queue.values()];
        this.queue.clear();
        await this.resolveBatch(batch);
      }
    } catch (e) {
      this.log.warnLimited('identity', 'process identity lookup failed', { error: (e as Error).message });
    } finally {
      for (const e of this.queue.values()) this.finish(e, undefined, this.negativeTtlMs);
      this.queue.clear();
      this.running = false;
    }
  }

  private async resolveBatch(batch: Entry[]): Promise<void> {
    const rows = await this.udpRows();
    if (!rows) {
      for (const e of batch) this.finish(e, undefined, this.negativeTtlMs);
      return;
    }
    const now = Date.now();
    const inodes = new Map<Entry, number>();
    const unknown = new Set<number>();
    for (const e of batch) {
      const inode = findSocketInode(rows, e.address, e.port);
      if (inode === undefined) continue;
      inodes.set(e, inode);
      const c = this.inodePid.get(inode);
      if (!c || c.expires <= now) unknown.add(inode);
    }
    if (unknown.size > 0) await this.scan(unknown, rows);
    let missed = false;
    for (const e of batch) {
      const inode = inodes.get(e);
      const pid = inode === undefined ? undefined : this.inodePid.get(inode)?.pid;
      if (inode !== undefined && pid === undefined) missed = true;
      const identity = pid === undefined ? undefined : await this.identityOf(pid);
      this.finish(e, identity, identity ? this.ttlMs : this.negativeTtlMs);
    }
    if (missed && this.deniedSoFar > 0 && !this.warnedDenied) {
      this.warnedDenied = true;
      this.log.warn(
        'process identity: some senders cannot be resolved because /proc/PID/fd of processes of other users is not readable; run the bridge as the applications\' user, or as root / with CAP_SYS_PTRACE, or set --process-identity off',
        { unreadableProcesses: this.deniedSoFar },
      );
    }
  }

  /** Both udp tables; undefined (and identity off, one warning) when /proc/net/udp cannot be read. */
  private async udpRows(): Promise<UdpSocketRow[] | undefined> {
    const read = (p: string) => this.fs.readFile(`${this.root}/net/${p}`).then(parseProcNetUdp, () => undefined);
    const [v4, v6] = await Promise.all([read('udp'), read('udp6')]);
    if (!v4 && !v6) {
      if (!this.disabled) {
        this.disabled = true;
        this.log.warn('process identity is off: cannot read /proc/net/udp (not Linux, or /proc not mounted or not permitted)', {
          procRoot: this.root,
        });
      }
      return undefined;
    }
    return [...(v4 ?? []), ...(v6 ?? [])];
  }

  /**
   * One pass over /proc/PID/fd (newest pids first: a sender that just
   * started is likely among them), recording which pid holds each UDP socket
   * inode; stops once every wanted inode is found. Rate-limited.
   */
  private async scan(wanted: Set<number>, rows: readonly UdpSocketRow[]): Promise<void> {
    const wait = this.lastScanAt + this.minScanIntervalMs - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, Math.min(wait, this.minScanIntervalMs)).unref());
    if (this.closed) return;
    this.lastScanAt = Date.now();
    this.counters.scans++;
    const udpInodes = new Set(rows.map((r) => r.inode));
    let pids: number[];
    try {
      pids = (await this.fs.readdir(this.root)).filter((n) => /^\d+$/.test(n)).map(Number);
    } catch {
      return;
    }
    pids.sort((a, b) => b - a);
    const expires = Date.now() + this.ttlMs;
    const found = new Set<number>();
    let links = 0;
    let denied = 0;
    for (const pid of pids.slice(0, this.maxPidsPerScan)) {
      if (found.size === wanted.size || links >= this.maxLinksPerScan || this.closed) break;
      let fds: string[];
      try {
        fds = await this.fs.readdir(`${this.root}/${pid}/fd`);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'EACCES' || code === 'EPERM') denied++;
        continue;
      }
      for (let i = 0; i < fds.length && links < this.maxLinksPerScan; i += 256) {
        const chunk = fds.slice(i, i + 256);
        links += chunk.length;
        const targets = await Promise.all(chunk.map((fd) => this.fs.readlink(`${this.root}/${pid}/fd/${fd}`).catch(() => '')));
        for (const t of targets) {
          const inode = socketInodeOfLink(t);
          if (inode === undefined || !udpInodes.has(inode)) continue;
          if (wanted.has(inode)) found.add(inode);
          this.inodePid.delete(inode);
          this.inodePid.set(inode, { pid, expires });
        }
      }
    }
    this.deniedSoFar = denied;
    trim(this.inodePid, this.maxEntries);
  }

  private async identityOf(pid: number): Promise<ProcessIdentity | undefined> {
    const now = Date.now();
    const c = this.pidIdentity.get(pid);
    if (c && c.expires > now) return c.identity;
    const dir = `${this.root}/${pid}`;
    const [comm, exe, cgroup, stat, cmdline] = await Promise.all([
      this.fs.readFile(`${dir}/comm`).catch(() => undefined),
      this.fs.readlink(`${dir}/exe`).catch(() => undefined),
      this.fs.readFile(`${dir}/cgroup`).catch(() => undefined),
      this.fs.readFile(`${dir}/stat`).catch(() => undefined),
      this.opts.commandLine ? this.fs.readFile(`${dir}/cmdline`).catch(() => undefined) : undefined,
    ]);
    let identity: ProcessIdentity | undefined;
    if (stat !== undefined) {
      // Semantic conventions: the base name of /proc/PID/exe; comm (15 characters) when exe is unreadable.
      const executable = exe ? basename(exe.replace(/ \(deleted\)$/, '')) : comm?.trim();
      const containerId = cgroup === undefined ? undefined : containerIdFromCgroup(cgroup);
      const commandLine = cmdline === undefined ? undefined : commandLineFromProc(cmdline, MAX_COMMAND_LINE);
      const attributes: Record<string, string | number> = { 'process.pid': pid };
      if (executable) attributes['process.executable.name'] = executable;
      if (commandLine) attributes['process.command_line'] = commandLine;
      if (containerId) attributes['container.id'] = containerId;
      const started = startTimeFromStat(stat) ?? '';
      const statPath = `${dir}/stat`;
      const fs = this.fs;
      identity = {
        key: JSON.stringify([pid, started, executable ?? '', containerId ?? '', commandLine ?? '']),
        pid,
        attributes,
        alive() {
          try {
            return startTimeFromStat(fs.readFileSync(statPath)) === started;
          } catch {
            return false;
          }
        },
      };
    }
    this.pidIdentity.delete(pid);
    this.pidIdentity.set(pid, { identity, expires: now + this.ttlMs });
    trim(this.pidIdentity, this.maxEntries);
    return identity;
  }

  private finish(e: Entry, value: Resolution, ttl: number): void {
    if (!e.pending) return;
    e.value = value;
    e.expires = Date.now() + ttl;
    e.pending = false;
    const waiters = e.waiters;
    delete e.waiters;
    if (value) this.counters.resolved++;
    else this.counters.unresolved++;
    if (waiters) for (const w of waiters) w(value);
  }
}

function trim<K, V>(m: Map<K, V>, max: number): void {
  while (m.size > max) m.delete(m.keys().next().value as K);
}

function withTimeout<T>(p: Promise<T | undefined>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<undefined>((r) => {
      timer = setTimeout(() => r(undefined), ms);
      timer.unref();
    }),
  ]).finally(() => clearTimeout(timer));
}
