/**
 * `aws-csm-bridge record FILE`: every datagram the bridge receives is also
 * appended to FILE (format.ts), SessionToken removed. Bounded: once the file
 * would exceed `maxBytes` recording stops (the bridge keeps running) and the
 * rest is counted; if the disk cannot keep up, lines beyond a 4 MiB write
 * backlog are dropped and counted rather than buffered without limit.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import type { Logger } from '../log.js';
import { formatHostPort, type Source } from '../net/address.js';
import { formatLine, redact } from './format.js';

const MAX_BACKLOG_BYTES = 4 * 1024 * 1024;

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
  private readonly out: WriteStream;
  private error: Error | undefined;
  private fullLogged = false;

  constructor(
    readonly path: string,
    private readonly maxBytes: number,
    private readonly log: Logger,
  ) {
    // 'w': a new recording replaces an old one; mode 0600 since datagrams name hosts and access key ids.
    this.out = createWriteStream(path, { flags: 'w', mode: 0o600 });
    this.out.on('error', (e) => {
      this.error = e;
      this.log.error('cannot write the recording; recording stopped', { file: path, error: e.message });
    });
  }

  /** Waits until the file is open, so a bad path fails at start, not silently later. */
  ready(): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.error) return reject(this.error);
      this.out.once('ready', () => resolve());
      this.out.once('error', reject);
    });
  }

  /** The datagram tap. `recvMs` is the receive time the pipeline used. */
  write(bytes: Buffer, from: Source, recvMs: number): void {
    if (this.error) return;
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
      if (this.out.closed || this.error) return resolve();
      this.out.end(() => resolve());
    });
  }
}
