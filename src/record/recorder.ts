/**
 * `aws-csm-bridge record FILE`: every datagram the bridge receives is also
 * appended to FILE (format.ts), SessionToken removed. Bounded: once the file
 * would exceed `maxBytes` recording stops (the bridge keeps running) and the
 * rest is counted; if the disk cannot keep up, lines beyond a 4 MiB write
 * backlog are dropped and counted rather than buffered without limit.
 *
 * The file holds host names and access key ids, so it is readable by its owner only, whatever
 * was at the path before: an old file is unlinked and a new one created exclusively with mode
 * 0600, never opened through a link. Truncating the old file in place kept its mode (a 0644
 * file stayed world-readable) and let anyone who had it open read the new recording.
 */
import { constants, type WriteStream } from 'node:fs';
import { lstat, open, unlink, type FileHandle } from 'node:fs/promises';
import type { Logger } from '../log.js';
import { formatHostPort, type Source } from '../net/address.js';
import { formatLine, redact } from './format.js';

const MAX_BACKLOG_BYTES = 4 * 1024 * 1024;
/** Owner read and write only. */
const RECORDING_MODE = 0o600;

/**
 * Creates `path` afresh for the owner alone. A regular file there is replaced (a new recording
 * replaces an old one); anything else (a symbolic link, FIFO, device, directory) is refused
 * rather than written through. O_EXCL|O_NOFOLLOW: a link planted between the unlink and the
 * open makes the open fail instead of being followed.
 */
async function createPrivateFile(path: string): Promise<FileHandle> {
  const old = await lstat(path).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return undefined;
    throw e;
  });
  if (old && !old.isFile()) throw new Error(`${path} exists and is not a regular file (a symbolic link, pipe, device or directory); give the path of a new or regular file`);
  if (old) await unlink(path);
  const handle = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, RECORDING_MODE).catch((e: NodeJS.ErrnoException) => {
    throw e.code === 'EEXIST' ? new Error(`${path} was created by someone else while it was being opened; not written through`) : e;
  });
  try {
    // The umask may have taken bits off: owner read/write, exactly.
    await handle.chmod(RECORDING_MODE);
  } catch (e) {
    await handle.close();
    throw e;
  }
  return handle;
}

export interface RecorderCounts {
  written: number;
  bytes: number;
  /** Datagrams whose SessionToken was removed before writing. */
  redacted: number;
  /** Not JSON objects and might hold a token: not written. */
  skippedUnsafe: number;
  /** Not written because the file reached maxBytes. */
  skippedFull: number;
  /** Not written because the disk fell behind. */
  skippedBacklog: number;
}

export class Recorder {
  readonly counts: RecorderCounts = { written: 0, bytes: 0, redacted: 0, skippedUnsafe: 0, skippedFull: 0, skippedBacklog: 0 };
  /** Open once ready() resolved. */
  private out: WriteStream | undefined;
  private error: Error | undefined;
  private fullLogged = false;

  constructor(
    readonly path: string,
    private readonly maxBytes: number,
    private readonly log: Logger,
  ) {}

  /** Creates the file (mode 0600, see createPrivateFile): a bad path fails at start, not silently later. */
  async ready(): Promise<void> {
    const out = (await createPrivateFile(this.path)).createWriteStream();
    out.on('error', (e) => {
      this.error = e;
      this.log.error('cannot write the recording; recording stopped', { file: this.path, error: e.message });
    });
    this.out = out;
  }

  /** The datagram tap. `recvMs` is the receive time the pipeline used. */
  write(bytes: Buffer, from: Source, recvMs: number): void {
    if (this.error || !this.out) return;
    const r = redact(bytes);
    if (!r.ok) {
      this.counts.skippedUnsafe++;
      return;
    }
    const line = formatLine(BigInt(recvMs) * 1_000_000n, formatHostPort(from.address, from.port), r);
    const n = Buffer.byteLength(line);
    if (this.counts.bytes + n > this.maxBytes) {
      this.counts.skippedFull++;
      if (!this.fullLogged) {
        this.fullLogged = true;
        this.log.warn('recording reached its size limit; later datagrams are not recorded', { file: this.path, maxBytes: this.maxBytes });
      }
      return;
    }
    if (this.out.writableLength > MAX_BACKLOG_BYTES) {
      this.counts.skippedBacklog++;
      return;
    }
    if (r.redacted) this.counts.redacted++;
    this.out.write(line);
    this.counts.written++;
    this.counts.bytes += n;
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      const out = this.out;
      if (!out || out.closed || this.error) return resolve();
      out.end(() => resolve());
    });
  }
}
