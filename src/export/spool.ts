import { constants as zlib, gunzipSync, gzipSync } from 'node:zlib';
import { MemoryStorage, type BatchKey, type Encoding, type SpoolStorage } from './spool-storage.js';
import type { PartialSuccess } from './partial-success.js';

export type { Encoding };
export { DiskStorage, MemoryStorage, type SpoolStorage } from './spool-storage.js';

/**
 * A bounded spool of serialized OTLP request bodies between the span batch /
 * metric readers and the OTLP endpoint.
 *
 * `push()` accepts a batch at once (so nothing queues in front of it while
 * the endpoint is away and UDP intake never waits); one sender loop sends the
 * oldest batch first, and retries it with capped exponential backoff while
 * the endpoint is unreachable or answers "try later". Two bounds, both in
 * bytes of stored request body: `maxBytes` for everything waiting, and
 * `maxMemoryBytes` for what is held in memory (all of a memory spool; the
 * batches a disk refused). When a batch does not fit, the oldest batches go
 * (never the one in flight), and every item is counted.
 *
 * Storage (spool-storage.ts): memory, or one file per batch in a directory.
 * A batch the disk refuses (full, gone) stays in memory and is written to
 * disk as soon as space frees (a stored batch is delivered or dropped, or a
 * later write succeeds), oldest first. `close()` says exactly what is on disk
 * for the next start and counts the rest as lost (`dropped(..., 'shutdown')`):
 * a memory spool's content, and what the disk never took.
 *
 * A batch that arrives behind a backlog (GZIP_WHEN_WAITING batches already
 * queued) while nothing was delivered for ANSWERING_MS, or when the spool
 * holds a quarter of its bound (GZIP_WHEN_FULLER), is stored gzipped: OTLP
 * bodies of CSM spans repeat the same keys and values, so an outage holds
 * several times more calls in the same bound. An endpoint that answers pays
 * nothing until the bound is in sight: at 100k datagrams/s a batch often
 * arrives while the previous request is in flight (gzipping those cost 2.5 % of
 * the CPU), and an endpoint that is up but slow would only fall further behind
 * a bridge that spends its CPU compressing (memory is spent first, within the
 * bound). "Delivered" rather than "failed": a refused connection is retried
 * inside the sender for its whole timeout (10 s) before the spool hears of it.
 */

/** A backlog of this many batches behind an endpoint that delivered nothing for ANSWERING_MS: later batches are gzipped. */
export const GZIP_WHEN_WAITING = 4;
/** An endpoint that delivered a batch this recently is answering (slow perhaps, not down). */
export const ANSWERING_MS = 2_000;
/** Share of the bound (bytes) the spool may hold before every new batch is gzipped, whatever the endpoint does. */
export const GZIP_WHEN_FULLER = 0.25;
/** The longest wait a server's RetryInfo / Retry-After may impose on the spool. */
export const MAX_RETRY_AFTER_MS = 60_000;

export type SendResult =
  /**
   * Accepted; `partial`: the endpoint rejected some of it all the same (partial-success.ts);
   * `unread`: why the answer's body could not be read (too large, too slow), so a partial success is unknown.
   */
  | { ok: true; partial?: PartialSuccess; unread?: string }
  /**
   * transient: unreachable, timed out, 429/502/503/504 after the inner retries, a retryable gRPC
   * code: retry, no limit (the spool bound limits what waits). server_error: another 5xx, gRPC
   * UNKNOWN/INTERNAL: retried a few times, then rejected, so one batch the endpoint chokes on cannot
   * block the queue for ever. rejected: the endpoint refused this request (4xx, a non-retryable gRPC
   * code): retrying the same bytes cannot help.
   */
  | {
      ok: false;
      kind: 'transient' | 'server_error' | 'rejected';
      error: string;
      /** The server said when to come back (gRPC RetryInfo). */
      retryAfterMs?: number;
      /** The TLS handshake or a certificate check failed. */
      tls?: boolean;
    };

export type Sender = (body: Uint8Array, encoding: Encoding, items: number) => Promise<SendResult>;

/**
 * spool_full: the bound was reached (oldest first). disk_full: the disk refused the batch and the
 * memory bound could not hold it either. unreadable: its file could not be read back. shutdown:
 * still undelivered at exit and not on disk.
 */
export type DropReason = 'spool_full' | 'disk_full' | 'unreadable' | 'shutdown';

/** What the spool reports; the owner turns it into counters and logs. */
export interface SpoolEvents {
  queued(itemsDelta: number, bytesDelta: number): void;
  /** Items and bytes of the queue that are on disk (a durable storage) changed. */
  onDisk(itemsDelta: number, bytesDelta: number): void;
  /** `partial`: what the endpoint rejected of an accepted request; `unread`: why its answer was not read. */
  delivered(items: number, partial?: PartialSuccess, unread?: string): void;
  rejected(items: number, error: string): void;
  dropped(items: number, reason: DropReason): void;
  retrying(error: string, delayMs: number, tls: boolean): void;
  recovered(items: number, bytes: number, batches: number): void;
  diskError(op: string, error: string): void;
}

export interface SpoolOptions {
  maxBytes: number;
  /** Bound on bytes held in memory (default maxBytes); the bridge derives it from memoryCeilingMb. */
  maxMemoryBytes?: number;
  /** Where batches wait (default memory). */
  storage?: SpoolStorage;
  send: Sender;
  events: SpoolEvents;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** Attempts for a batch the endpoint answers with a non-retryable 5xx before it is rejected. */
  maxServerErrorAttempts?: number;
  /** Batches queued behind a silent endpoint from which a new one is stored gzipped (default GZIP_WHEN_WAITING; Infinity: never, not even near the bound). */
  gzipWhenWaiting?: number;
  /** The clock (ms) for ANSWERING_MS. */
  now?: () => number;
}

interface Entry extends BatchKey {
  /** Stored size (compressed when `gzipped`): what the bounds count. */
  bytes: number;
  /** In the storage (for a disk storage: in its file). */
  stored: boolean;
  /** The bytes, when the durable storage refused them. */
  held: Uint8Array | undefined;
  serverErrors: number;
}

/** What waits in the spool: on disk for the next start, and in memory (lost at exit). */
export interface SpoolContent {
  onDisk: { items: number; bytes: number; batches: number };
  inMemory: { items: number; bytes: number; batches: number };
}

export class Spool {
  private readonly queue: Entry[] = [];
  private readonly storage: SpoolStorage;
  /** Everything waiting (a memory storage: the smaller of both bounds). */
  private readonly maxBytes: number;
  private readonly maxMemoryBytes: number;
  private bytes = 0;
  private items = 0;
  private memoryBytes = 0;
  /** Entries whose bytes the durable storage refused (held in memory). */
  private heldCount = 0;
  private nextSeq = 1;
  private inflight: Entry | undefined;
  private running = false;
  private closed = false;
  private failures = 0;
  /** When a batch was last delivered (for ANSWERING_MS). */
  private deliveredAt = -Infinity;
  private readonly now: () => number;
  private sleepTimer: NodeJS.Timeout | undefined;
  private wakeUp: (() => void) | undefined;
  private readonly idleWaiters = new Set<() => void>();
  private readonly initialBackoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly maxServerErrorAttempts: number;

  constructor(private readonly opts: SpoolOptions) {
    this.storage = opts.storage ?? new MemoryStorage();
    this.maxMemoryBytes = opts.maxMemoryBytes ?? opts.maxBytes;
    this.now = opts.now ?? Date.now;
    this.maxBytes = this.storage.durable ? opts.maxBytes : Math.min(opts.maxBytes, this.maxMemoryBytes);
    this.initialBackoffMs = opts.initialBackoffMs ?? 500;
    this.maxBackoffMs = opts.maxBackoffMs ?? 5_000;
    this.maxServerErrorAttempts = opts.maxServerErrorAttempts ?? 5;
    this.recover();
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

  /** Bytes this spool holds in memory now (for the memory ceiling). */
  get heldInMemoryBytes(): number {
    return this.memoryBytes;
  }

  get durable(): boolean {
    return this.storage.durable;
  }

  get where(): string {
    return this.storage.where;
  }

  /** Takes a serialized request; never blocks, never throws. */
  push(body: Uint8Array, items: number, encoding: Encoding): void {
    const ev = this.opts.events;
    if (this.closed) {
      ev.dropped(items, 'shutdown');
      return;
    }
    // This batch will wait: stored compressed (level 1: ~1 ms per 100 KiB).
    const gzipWhenWaiting = this.opts.gzipWhenWaiting ?? GZIP_WHEN_WAITING;
    const answering = this.now() - this.deliveredAt < ANSWERING_MS;
    const gzipped =
      gzipWhenWaiting !== Infinity && ((!answering && this.queue.length >= gzipWhenWaiting) || this.bytes >= this.maxBytes * GZIP_WHEN_FULLER);
    if (gzipped) body = gzipSync(body, { level: zlib.Z_BEST_SPEED });
    const size = body.byteLength;
    if (size > this.maxBytes) {
      ev.dropped(items, 'spool_full');
      return;
    }
    // Oldest first, never the batch in flight (so only that one batch can take the spool past its bound).
    while (this.bytes + size > this.maxBytes && this.dropOldest(() => true, 'spool_full'));
    const entry: Entry = { seq: this.nextSeq++, items, bytes: size, encoding, gzipped, stored: false, held: undefined, serverErrors: 0 };
    this.queue.push(entry);
    this.bytes += size;
    this.items += items;
    ev.queued(items, size);
    if (!this.store(entry, body)) {
      // Kept in memory until the disk takes it; the oldest held batches go when memory is full too.
      entry.held = body.buffer.byteLength > size ? body.slice() : body;
      this.heldCount++;
      this.memoryBytes += size;
      while (this.memoryBytes > this.maxMemoryBytes && this.dropOldest((e) => e.held !== undefined, 'disk_full'));
    } else if (this.heldCount > 0) {
      this.spill();
    }
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
   * Stops sending. What the disk refused gets one more try; what is still only in memory is
   * lost and counted (`dropped(..., 'shutdown')`), except the batch in flight, which counts when
   * its answer comes (delivered, or lost) or at `abandon()`. Returns what is left. Never throws:
   * a storage that fails now (read-only, gone) is a disk error, counted and logged.
   */
  close(): SpoolContent {
    if (!this.closed) {
      this.closed = true;
      this.wake();
      if (this.heldCount > 0) this.spill();
      for (const e of [...this.queue]) {
        if (e !== this.inflight && this.inMemory(e)) {
          this.remove(e);
          this.opts.events.dropped(e.items, 'shutdown');
        }
      }
      try {
        this.storage.close();
      } catch (err) {
        // e.g. the directory turned read-only: the lock stays (a later start sees its process is gone).
        this.opts.events.diskError('unlock', (err as Error).message);
      }
    }
    return this.content();
  }

  /** After close: the request still in flight is given up; when only in memory it is lost, counted. */
  abandon(): SpoolContent {
    const e = this.inflight;
    if (this.closed && e && this.inMemory(e) && this.queue.includes(e)) {
      this.remove(e);
      this.opts.events.dropped(e.items, 'shutdown');
    }
    return this.content();
  }

  content(): SpoolContent {
    const c: SpoolContent = { onDisk: { items: 0, bytes: 0, batches: 0 }, inMemory: { items: 0, bytes: 0, batches: 0 } };
    for (const e of this.queue) {
      const where = this.inMemory(e) ? c.inMemory : c.onDisk;
      where.items += e.items;
      where.bytes += e.bytes;
      where.batches++;
    }
    return c;
  }

  private inMemory(e: Entry): boolean {
    return !this.storage.durable || !e.stored;
  }

  /** Puts a batch in the storage; false (and a disk error) when it refuses. */
  private store(e: Entry, body: Uint8Array): boolean {
    try {
      this.storage.put(e, body);
    } catch (err) {
      this.opts.events.diskError('write', (err as Error).message);
      return false;
    }
    e.stored = true;
    if (this.storage.durable) this.opts.events.onDisk(e.items, e.bytes);
    else this.memoryBytes += e.bytes;
    return true;
  }

  /** Writes held batches to disk, oldest first, until the disk refuses one. */
  private spill(): void {
    for (const e of this.queue) {
      if (this.heldCount === 0) return;
      if (!e.held) continue;
      if (!this.store(e, e.held)) return;
      this.memoryBytes -= e.bytes;
      this.heldCount--;
      e.held = undefined;
    }
  }

  /** Drops the oldest entry that `which` selects and that is not in flight; false when there is none. */
  private dropOldest(which: (e: Entry) => boolean, reason: DropReason): boolean {
    const victim = this.queue.find((e) => e !== this.inflight && which(e));
    if (!victim) return false;
    this.remove(victim);
    this.opts.events.dropped(victim.items, reason);
    return true;
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
      // Removed meanwhile by abandon() (a memory batch given up at exit): already counted.
      if (!this.queue.includes(entry)) continue;
      if (r.ok) {
        this.failures = 0;
        this.deliveredAt = this.now();
        this.remove(entry);
        ev.delivered(entry.items, r.partial, r.unread);
        continue;
      }
      if (r.kind === 'rejected' || (r.kind === 'server_error' && ++entry.serverErrors >= this.maxServerErrorAttempts)) {
        this.remove(entry);
        ev.rejected(entry.items, r.error);
        continue;
      }
      if (this.closed) {
        // The last answer after close: on disk it waits for the next start; in memory it is lost.
        if (this.inMemory(entry)) {
          this.remove(entry);
          ev.dropped(entry.items, 'shutdown');
        }
        return;
      }
      this.failures++;
      const base = Math.min(this.maxBackoffMs, this.initialBackoffMs * 2 ** Math.min(this.failures - 1, 20));
      const jittered = Math.round(base * (0.8 + Math.random() * 0.4));
      const delay = r.retryAfterMs !== undefined ? Math.min(MAX_RETRY_AFTER_MS, Math.max(r.retryAfterMs, 0)) : jittered;
      ev.retrying(r.error, delay, r.tls === true);
      await this.sleep(delay);
    }
  }

  private load(e: Entry): Uint8Array | undefined {
    let stored: Uint8Array;
    try {
      stored = e.held ?? this.storage.get(e);
    } catch (err) {
      this.opts.events.diskError('read', (err as Error).message);
      return undefined;
    }
    if (!e.gzipped) return stored;
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
    if (this.inMemory(e)) this.memoryBytes -= e.bytes;
    if (e.held) {
      e.held = undefined;
      this.heldCount--;
    }
    if (e.stored) {
      try {
        this.storage.delete(e);
      } catch (err) {
        this.opts.events.diskError('delete', (err as Error).message);
      }
      if (this.storage.durable) this.opts.events.onDisk(-e.items, -e.bytes);
    }
    this.opts.events.queued(-e.items, -e.bytes);
    if (this.queue.length === 0) for (const w of [...this.idleWaiters]) w();
    // Space freed on disk: what it refused may fit now.
    else if (e.stored && this.storage.durable && this.heldCount > 0 && !this.closed) this.spill();
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

  /** Indexes the batches an earlier run left, oldest first; a smaller bound than last time drops the oldest. */
  private recover(): void {
    const ev = this.opts.events;
    const found = this.storage.recover((op, error) => ev.diskError(op, error));
    let items = 0;
    let bytes = 0;
    for (const b of found) {
      this.queue.push({ ...b, stored: true, held: undefined, serverErrors: 0 });
      this.bytes += b.bytes;
      this.items += b.items;
      items += b.items;
      bytes += b.bytes;
      ev.queued(b.items, b.bytes);
      ev.onDisk(b.items, b.bytes);
      this.nextSeq = Math.max(this.nextSeq, b.seq + 1);
    }
    if (found.length > 0) ev.recovered(items, bytes, found.length);
    while (this.bytes > this.maxBytes && this.dropOldest(() => true, 'spool_full'));
  }
}
