import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { PACKAGE_ROOT } from '../package-root.js';

/**
 * The recvmmsg receiver addon (native/udp_batch.c, built by `npm install` via node-gyp into
 * build/Release). One BatchSocket is one bound UDP socket drained by its own reader thread
 * (recvmmsg, up to MAX_BATCH datagrams per syscall) into a bounded ring (RING_BYTES,
 * RING_DATAGRAMS), so a cold start or a GC pause of this thread is absorbed there rather than in
 * the kernel's socket buffer. The ring is handed to JS in batches, ONE call to `onBatch` per batch:
 *
 * - datagram i is at `buffer[meta[i * META_FIELDS + 3] ...]`, `meta[i * META_FIELDS]` bytes long,
 *   from port `meta[i * META_FIELDS + 1]` and address slot `meta[i * META_FIELDS + 2]`;
 * - `addressUpdates` is undefined, or a flat [slot, address, slot, address, ...] list of address
 *   slots (re)assigned in this batch, to apply before reading it (slot -1: address unknown).
 *
 * The batch's bytes are released when `onBatch` returns: only valid during the call.
 * A datagram that finds the ring full is dropped and counted (`ringDropped()`).
 */
export interface BatchSocket {
  readonly buffer: ArrayBuffer;
  readonly meta: Int32Array;
  /** Set when SO_RCVBUF could not be set (binding still succeeded). */
  readonly rcvbufError: NodeJS.ErrnoException | null;
  address(): { address: string; port: number; family: 'IPv4' | 'IPv6' };
  /** SO_RCVBUF as the kernel reports it (Linux: twice what was set, capped by net.core.rmem_max). */
  recvBufferSize(): number;
  /** Datagrams read from the socket but dropped because the ring was full (since open). */
  ringDropped(): number;
  /** Stops receiving at once (no onBatch after it returns); idempotent. */
  close(): void;
}

export type BatchHandler = (count: number, addressUpdates: (number | string)[] | undefined) => void;

export interface BatchAddon {
  BatchSocket: new (
    host: string,
    port: number,
    ipv6: boolean,
    rcvbufBytes: number,
    onBatch: BatchHandler,
    onError: (err: NodeJS.ErrnoException) => void,
  ) => BatchSocket;
  SLOT_BYTES: number;
  MAX_BATCH: number;
  MAX_ROUNDS: number;
  ADDR_CACHE: number;
  META_FIELDS: number;
  /** The ring's bounds: bytes of datagrams, and datagrams, waiting for the JS thread. */
  RING_BYTES: number;
  RING_DATAGRAMS: number;
  /** glibc malloc's free memory back to the OS, every thread's arena (malloc_trim); absent in an addon built before it. */
  trimMalloc?: () => boolean;
}

/** Where npm install builds it (scripts/build-native.mjs). */
const ADDON_PATH = fileURLToPath(new URL('build/Release/udp_batch.node', PACKAGE_ROOT));

let cached: { addon?: BatchAddon; why?: string } | undefined;

/**
 * The addon, or undefined with the reason (not Linux, not built, failed to load).
 * Loaded once per process.
 */
export function loadBatchAddon(): { addon?: BatchAddon; why?: string } {
  if (cached) return cached;
  if (process.platform !== 'linux') {
    cached = { why: `recvmmsg is Linux-only (this is ${process.platform})` };
    return cached;
  }
  try {
    const addon = createRequire(import.meta.url)(ADDON_PATH) as Partial<BatchAddon>;
    cached =
      typeof addon.BatchSocket === 'function'
        ? { addon: addon as BatchAddon }
        : { why: 'build/Release/udp_batch.node has no BatchSocket (built for another platform?)' };
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    cached = {
      why:
        err.code === 'MODULE_NOT_FOUND'
          ? 'the recvmmsg addon is not built (build/Release/udp_batch.node is missing)'
          : `the recvmmsg addon did not load: ${err.message}`,
    };
  }
  return cached;
}

/**
 * Returns what glibc malloc holds free to the OS (the addon's malloc_trim(0)): threads' arenas keep
 * what they freed otherwise. False without the addon (not built, not Linux) or glibc: nothing to do.
 */
export function trimMalloc(): boolean {
  return loadBatchAddon().addon?.trimMalloc?.() ?? false;
}

/** How to get the addon, for error messages. */
export const BUILD_HINT =
  'build it by running `npm run install` in the aws-csm-bridge package directory (needs g++, make and python3), or use --udp-receiver dgram';
