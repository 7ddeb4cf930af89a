import { mkdirSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../config/error.js';

/**
 * Where the export spool keeps its batches: in memory (the default; gone at
 * exit) or one file per batch in a directory (kept across a restart). The
 * spool (spool.ts) owns order, bounds, retries and counting; a storage only
 * keeps bytes. Every method may throw (disk full, directory gone): the spool
 * catches, counts a disk error and keeps the batch in memory instead.
 */

export type Encoding = 'protobuf' | 'json';

/** What a stored batch is known by; for a disk storage, all of it is in the file name. */
export interface BatchKey {
  seq: number;
  items: number;
  encoding: Encoding;
  gzipped: boolean;
}

export interface StoredBatch extends BatchKey {
  /** Stored size in bytes. */
  bytes: number;
}

export interface SpoolStorage {
  /** True when batches outlive the process (disk); false when storing means holding in memory. */
  readonly durable: boolean;
  /** Shown in logs. */
  readonly where: string;
  put(key: BatchKey, body: Uint8Array): void;
  get(key: BatchKey): Uint8Array;
  delete(key: BatchKey): void;
  /** Batches an earlier run left, oldest first; `onError` hears of entries that could not be read. */
  recover(onError: (op: string, error: string) => void): StoredBatch[];
  /** Releases what the storage holds for this process (the disk lock); stored batches stay. */
  close(): void;
}

export class MemoryStorage implements SpoolStorage {
  readonly durable = false;
  readonly where = 'memory';
  private readonly bodies = new Map<number, Uint8Array>();

  put(key: BatchKey, body: Uint8Array): void {
    // The serializer may return a view into a larger buffer: keep only the bytes that are counted.
    this.bodies.set(key.seq, body.buffer.byteLength > body.byteLength ? body.slice() : body);
  }

  get(key: BatchKey): Uint8Array {
    const b = this.bodies.get(key.seq);
    if (!b) throw new Error(`batch ${key.seq} is not in memory`);
    return b;
  }

  delete(key: BatchKey): void {
    this.bodies.delete(key.seq);
  }

  recover(): StoredBatch[] {
    return [];
  }

  close(): void {
    this.bodies.clear();
  }
}

const FILE_RE = /^(\d{12})-(\d+)\.(pb|json)(\.gz)?$/;
const TMP_SUFFIX = '.tmp';
const LOCK = '.lock';

/**
 * One file per batch, `SEQ-ITEMS.pb|json[.gz]`, written atomically (tmp +
 * rename) so a crash never leaves half a batch under a real name. One process
 * per directory (a lock file naming its pid): two would send and delete the
 * same files; a symlink, so it can be taken on a full disk. Delivery is at least once: a batch in flight at exit is sent
 * again at the next start.
 */
/** Errors of mkdir/symlink that mean the path itself is wrong for this user, not a passing state. */
const SETTING_ERRNOS = new Set(['EACCES', 'EPERM', 'ENOTDIR', 'EROFS', 'EEXIST', 'ENOENT', 'ENAMETOOLONG', 'ELOOP']);

export class DiskStorage implements SpoolStorage {
  readonly durable = true;
  private readonly lockFile: string;

  constructor(readonly where: string) {
    try {
      mkdirSync(where, { recursive: true, mode: 0o700 });
      this.lockFile = lockDir(where);
    } catch (e) {
      // A directory this user cannot create or write: a configuration refusal (exit 2). One a
      // live bridge holds stays a plain error (exit 1): it is free again once that bridge stops.
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== undefined && SETTING_ERRNOS.has(code)) throw new ConfigError(`cannot use the spool directory ${where} (--spool-dir): ${(e as Error).message}`);
      throw e;
    }
  }

  private file(key: BatchKey): string {
    return join(this.where, `${String(key.seq).padStart(12, '0')}-${key.items}.${key.encoding === 'json' ? 'json' : 'pb'}${key.gzipped ? '.gz' : ''}`);
  }

  put(key: BatchKey, body: Uint8Array): void {
    const file = this.file(key);
    try {
      writeFileSync(file + TMP_SUFFIX, body, { mode: 0o600 });
      renameSync(file + TMP_SUFFIX, file);
    } catch (e) {
      rmSync(file + TMP_SUFFIX, { force: true });
      throw e;
    }
  }

  get(key: BatchKey): Uint8Array {
    return readFileSync(this.file(key));
  }

  delete(key: BatchKey): void {
    rmSync(this.file(key), { force: true });
  }

  recover(onError: (op: string, error: string) => void): StoredBatch[] {
    const found: StoredBatch[] = [];
    for (const name of readdirSync(this.where)) {
      if (name.endsWith(TMP_SUFFIX)) {
        // A write interrupted by a crash: its batch was never acknowledged as spooled.
        rmSync(join(this.where, name), { force: true });
        continue;
      }
      const m = FILE_RE.exec(name);
      if (!m) continue;
      try {
        const bytes = statSync(join(this.where, name)).size;
        found.push({ seq: Number(m[1]), items: Number(m[2]), encoding: m[3] === 'json' ? 'json' : 'protobuf', gzipped: m[4] !== undefined, bytes });
      } catch (e) {
        onError('stat', (e as Error).message);
      }
    }
    return found.sort((a, b) => a.seq - b.seq);
  }

  close(): void {
    rmSync(this.lockFile, { force: true });
  }
}

function lockDir(dir: string): string {
  const lock = join(dir, LOCK);
  for (let i = 0; i < 3; i++) {
    try {
      // A symlink whose target is the pid: created atomically, and it needs no data block, so a
      // bridge can still start (and send what the disk holds) when the directory's disk is full.
      symlinkSync(String(process.pid), lock);
      return lock;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    let pid = 0;
    try {
      pid = Number(readlinkSync(lock).trim());
    } catch {
      try {
        pid = Number(readFileSync(lock, 'utf8').trim()); // a lock file written by an earlier version
      } catch {
        /* removed meanwhile */
      }
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
