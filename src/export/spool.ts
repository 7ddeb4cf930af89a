import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { constants as zlib, gunzipSync, gzipSync } from 'node:zlib';

/**
 * A bounded spool of serialized OTLP request bodies between the span batch /
 * metric readers and the OTLP endpoint.
 *
 * `push()` accepts a batch at once (so nothing queues in front of it while
 * the endpoint is away and UDP intake never waits); one sender
 * loop sends the oldest batch first, and retries it with capped exponential
 * backoff while the endpoint is unreachable or answers "try later". The
 * bound is in bytes of request body: when a new batch does not fit, the
 * oldest batches are dropped (never the one in flight) and counted.
 *
 * Storage: memory by default; with `dir`, every batch is a file written
 * atomically (tmp + rename), the in-memory index only holds names and sizes,
 * and files left by an earlier run are sent first at the next start.
 * Delivery is at least once: a batch whose request was in flight at exit is
 * sent again at the next start.
 *
 * A batch that arrives behind a backlog (GZIP_WHEN_WAITING batches already
 * queued) is stored gzipped: OTLP bodies of CSM spans repeat the same keys and
 * values, so an outage holds several times more calls in the same bound. A
 * healthy endpoint pays nothing: at 100k datagrams/s a batch often arrives while
 * the previous request is in flight, and gzipping those cost 2.5 % of the CPU.
 */

export type Encoding = 'protobuf' | 'json';

/** A backlog of this many batches means the endpoint is down or slow: later batches are gzipped. */
export const GZIP_WHEN_WAITING = 4;

export type SendResult =
  | { ok: true }
  /**
   * transient: unreachable, timed out, 429/502/503/504 after the inner retries: retry, no limit
   * (the spool bound limits what waits). server_error: another 5xx: retried a few times, then
   * rejected, so one batch the endpoint chokes on cannot block the queue for ever. rejected: the
   * endpoint refused this request (4xx): retrying the same bytes cannot help.
   */
  | { ok: false; kind: 'transient' | 'server_error' | 'rejected'; error: string };

export type Sender = (body: Uint8Array, encoding: Encoding, items: number) => Promise<SendResult>;

export type DropReason = 'spool_full' | 'unreadable' | 'shutdown';

/** What the spool reports; the owner turns it into counters and logs. */
export interface SpoolEvents {
  queued(itemsDelta: number, bytesDelta: number): void;
  delivered(items: number): void;
  rejected(items: number, error: string): void;
  dropped(items: number, reason: DropReason): void;
  retrying(error: string, delayMs: number): void;
  recovered(items: number, bytes: number, batches: number): void;
  diskError(op: string, error: string): void;
}

export interface SpoolOptions {
  maxBytes: number;
  /** Disk spool directory (created if missing); memory when absent. */
  dir?: string | undefined;
  send: Sender;
  events: SpoolEvents;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** Attempts for a batch the endpoint answers with a non-retryable 5xx before it is rejected. */
  maxServerErrorAttempts?: number;
  /** Batches already queued from which a new one is stored gzipped (default GZIP_WHEN_WAITING; Infinity: never). */
  gzipWhenWaiting?: number;
}

interface Entry {
  seq: number;
  items: number;
  /** Stored size (compressed when `gzipped`): what the bound counts. */
  bytes: number;
  encoding: Encoding;
  gzipped: boolean;
  /** Memory spool, or a disk spool whose write failed. */
  body: Uint8Array | undefined;
  file: string | undefined;
  serverErrors: number;
}

const FILE_RE = /^(\d{12})-(\d+)\.(pb|json)(\.gz)?$/;
const TMP_SUFFIX = '.tmp';
const LOCK = '.lock';

export class Spool {
  private readonly queue: Entry[] = [];
  private bytes = 0;
  private items = 0;
  private nextSeq = 1;
  private inflight: Entry | undefined;
  private running = false;
  private closed = false;
  private failures = 0;
  private sleepTimer: NodeJS.Timeout | undefined;
  private wakeUp: (() => void) | undefined;
  private readonly idleWaiters = new Set<() => void>();
  private readonly lockFile: string | undefined;
  private readonly initialBackoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly maxServerErrorAttempts: number;

  constructor(private readonly opts: SpoolOptions) {
    this.initialBackoffMs = opts.initialBackoffMs ?? 500;
    this.maxBackoffMs = opts.maxBackoffMs ?? 5_000;
    this.maxServerErrorAttempts = opts.maxServerErrorAttempts ?? 5;
    if (opts.dir) {
      mkdirSync(opts.dir, { recursive: true, mode: 0o700 });
      this.lockFile = lockDir(opts.dir);
      this.recover(opts.dir);
    }
    this.kick();
  }

  get queuedItems(): number {
    return this.items;
  }

  get queuedBytes(): number {
    return this.bytes;
  }

  get queuedBatches(): number {
    return this.queue.length;
  }

  get onDisk(): boolean {
    return this.opts.dir !== undefined;
  }

  /** Takes a serialized request; never blocks, never throws. */
  push(body: Uint8Array, items: number, encoding: Encoding): void {
    const ev = this.opts.events;
    if (this.closed) {
      ev.dropped(items, 'shutdown');
      return;
    }
    // A backlog: this batch will wait too, store it compressed (level 1: ~1 ms per 100 KiB).
    const gzipped = this.queue.length >= (this.opts.gzipWhenWaiting ?? GZIP_WHEN_WAITING);
    if (gzipped) body = gzipSync(body, { level: zlib.Z_BEST_SPEED });
    const size = body.byteLength;
    if (size > this.opts.maxBytes) {
      ev.dropped(items, 'spool_full');
      return;
    }
    // Oldest first, never the batch in flight (so only that one batch can take the spool past its bound).
    while (this.bytes + size > this.opts.maxBytes) {
      const victim = this.queue.find((e) => e !== this.inflight);
      if (!victim) break;
      this.remove(victim);
      ev.dropped(victim.items, 'spool_full');
    }
    // The serializer may return a view into a larger buffer: keep only the bytes that are counted.
    if (!this.opts.dir && body.buffer.byteLength > size) body = body.slice();
    const entry: Entry = { seq: this.nextSeq++, items, bytes: size, encoding, gzipped, body, file: undefined, serverErrors: 0 };
    if (this.opts.dir) {
      const name = `${String(entry.seq).padStart(12, '0')}-${items}.${encoding === 'json' ? 'json' : 'pb'}${gzipped ? '.gz' : ''}`;
      const file = join(this.opts.dir, name);
      try {
        writeFileSync(file + TMP_SUFFIX, body, { mode: 0o600 });
        renameSync(file + TMP_SUFFIX, file);
        entry.file = file;
        entry.body = undefined;
      } catch (e) {
        // Disk full or gone: keep the batch in memory (same bound) rather than lose it.
        rmSync(file + TMP_SUFFIX, { force: true });
        ev.diskError('write', (e as Error).message);
      }
    }
    this.queue.push(entry);
    this.bytes += size;
    this.items += items;
    ev.queued(items, size);
    this.kick();
  }

  /**
   * Tries to send everything before `deadlineAt` (epoch ms), cutting a backoff wait short.
   * Resolves true when the spool is empty, false at the deadline.
   */
  drain(deadlineAt: number): Promise<boolean> {
    this.wake();
    this.kick();
    if (this.queue.length === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const finish = (v: boolean) => {
        clearTimeout(timer);
        this.idleWaiters.delete(check);
        resolve(v);
      };
      const check = () => {
        if (this.queue.length === 0) finish(true);
      };
      this.idleWaiters.add(check);
      const timer = setTimeout(() => finish(this.queue.length === 0), Math.max(0, deadlineAt - Date.now()));
    });
  }

  /**
   * Stops sending. A disk spool keeps its files (and the one in flight) for the next start;
   * a memory spool's content is gone: `queuedItems` says how much.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.wake();
    if (this.lockFile) rmSync(this.lockFile, { force: true });
  }

  private kick(): void {
    if (this.running || this.closed || this.queue.length === 0) return;
    this.running = true;
    void this.run().finally(() => {
      this.running = false;
      // A push during the last await may have found `running` still true.
      this.kick();
    });
  }

  private async run(): Promise<void> {
    const ev = this.opts.events;
    while (!this.closed) {
      const entry = this.queue[0];
      if (!entry) return;
      const body = this.load(entry);
      if (!body) {
        this.remove(entry);
        ev.dropped(entry.items, 'unreadable');
        continue;
      }
      this.inflight = entry;
      let r: SendResult;
      try {
        r = await this.opts.send(body, entry.encoding, entry.items);
      } catch (e) {
        r = { ok: false, kind: 'transient', error: (e as Error).message };
      } finally {
        this.inflight = undefined;
      }
      // The entry may have been removed meanwhile only by a failed read; guard anyway.
      if (!this.queue.includes(entry)) continue;
      if (r.ok) {
        this.failures = 0;
        this.remove(entry);
        ev.delivered(entry.items);
        continue;
      }
      if (r.kind === 'rejected' || (r.kind === 'server_error' && ++entry.serverErrors >= this.maxServerErrorAttempts)) {
        this.remove(entry);
        ev.rejected(entry.items, r.error);
        continue;
      }
      if (this.closed) return;
      this.failures++;
      const base = Math.min(this.maxBackoffMs, this.initialBackoffMs * 2 ** Math.min(this.failures - 1, 20));
      const delay = Math.round(base * (0.8 + Math.random() * 0.4));
      ev.retrying(r.error, delay);
      await this.sleep(delay);
    }
  }

  private load(e: Entry): Uint8Array | undefined {
    let stored: Uint8Array | undefined = e.body;
    if (!stored && e.file) {
      try {
        stored = readFileSync(e.file);
      } catch (err) {
        this.opts.events.diskError('read', (err as Error).message);
        return undefined;
      }
    }
    if (!stored || !e.gzipped) return stored;
    try {
      return gunzipSync(stored);
    } catch (err) {
      this.opts.events.diskError('decompress', (err as Error).message);
      return undefined;
    }
  }

  private remove(e: Entry): void {
    const i = this.queue.indexOf(e);
    if (i < 0) return;
    this.queue.splice(i, 1);
    this.bytes -= e.bytes;
    this.items -= e.items;
    if (e.file) {
      try {
        rmSync(e.file, { force: true });
      } catch (err) {
        this.opts.events.diskError('delete', (err as Error).message);
      }
    }
    this.opts.events.queued(-e.items, -e.bytes);
    if (this.queue.length === 0) for (const w of [...this.idleWaiters]) w();
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.wakeUp = resolve;
      this.sleepTimer = setTimeout(resolve, ms);
      this.sleepTimer.unref();
    });
  }

  private wake(): void {
    if (this.sleepTimer) clearTimeout(this.sleepTimer);
    this.sleepTimer = undefined;
    const w = this.wakeUp;
    this.wakeUp = undefined;
    w?.();
  }

  /** Indexes the files an earlier run left, oldest first; removes half-written ones. */
  private recover(dir: string): void {
    const found: Entry[] = [];
    for (const name of readdirSync(dir)) {
      if (name.endsWith(TMP_SUFFIX)) {
        // A write interrupted by a crash: its batch was never acknowledged as spooled.
        rmSync(join(dir, name), { force: true });
        continue;
      }
      const m = FILE_RE.exec(name);
      if (!m) continue;
      const file = join(dir, name);
      let size: number;
      try {
        size = statSync(file).size;
      } catch (e) {
        this.opts.events.diskError('stat', (e as Error).message);
        continue;
      }
      found.push({
        seq: Number(m[1]),
        items: Number(m[2]),
        bytes: size,
        encoding: m[3] === 'json' ? 'json' : 'protobuf',
        gzipped: m[4] !== undefined,
        body: undefined,
        file,
        serverErrors: 0,
      });
    }
    found.sort((a, b) => a.seq - b.seq);
    let items = 0;
    let bytes = 0;
    for (const e of found) {
      this.queue.push(e);
      this.bytes += e.bytes;
      this.items += e.items;
      items += e.items;
      bytes += e.bytes;
      this.opts.events.queued(e.items, e.bytes);
      this.nextSeq = Math.max(this.nextSeq, e.seq + 1);
    }
    if (found.length > 0) this.opts.events.recovered(items, bytes, found.length);
    // A smaller bound than last time: the oldest go.
    while (this.bytes > this.opts.maxBytes) {
      const victim = this.queue[0];
      if (!victim) break;
      this.remove(victim);
      this.opts.events.dropped(victim.items, 'spool_full');
    }
  }
}

/** One process per spool directory: two would send (and delete) the same files. */
function lockDir(dir: string): string {
  const lock = join(dir, LOCK);
  for (let i = 0; i < 3; i++) {
    try {
      writeFileSync(lock, String(process.pid), { flag: 'wx', mode: 0o600 });
      return lock;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    let pid = 0;
    try {
      pid = Number(readFileSync(lock, 'utf8').trim());
    } catch {
      /* removed meanwhile */
    }
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid)) {
      throw new Error(`spool directory ${dir} is in use by process ${pid} (${lock})`);
    }
    rmSync(lock, { force: true }); // stale: its process is gone
  }
  throw new Error(`could not lock spool directory ${dir}`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
