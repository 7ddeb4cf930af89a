/**
 * `aws-csm-bridge replay FILE`: feeds a recording through the whole pipeline
 * (decode → correlate → translate → export). Each datagram keeps its recorded
 * source (correlation uses it) and its recorded receive time: the bridge runs
 * on the recording's clock, and the expiry tick the live bridge runs every
 * 100 ms is driven on that clock too, so holds expire exactly as they would
 * have live, whatever the speed. Only the wall-clock pacing changes: gaps are
 * divided by `speed`, and speed 0 feeds as fast as the exporter keeps up.
 *
 * A recording is input like a datagram: every line, receive time and gap is
 * bounded (the constants below), what is skipped is counted, and a stop is
 * seen within a read chunk, a sleep slice or YIELD_EVERY_WORK steps.
 */
import type { Stats } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import type { Logger } from '../log.js';
import { parseSource, type Source } from '../net/address.js';
import { parseLine } from './format.js';
import { boundedLines } from './lines.js';

/** Same cadence as the live bridge's expiry timer. */
const EXPIRE_EVERY_MS = 100;
/**
 * Expiry steps run for one gap between datagrams: 10 minutes of recording time, longer than
 * the default holds (attempts 5 min), so they expire step by step as they would have live.
 * A longer gap ends with one step at the next datagram's time, as the live timer catches up
 * after a suspended host. Without the bound a gap of years ran billions of steps.
 */
export const MAX_EXPIRE_STEPS_PER_GAP = 6_000;
/** Lines longer than this are skipped and counted, never buffered (a 64 KiB datagram, JSON-escaped, fits easily). */
export const MAX_LINE_BYTES = 1024 * 1024;
/** Read size: a few large reads get through an over-long line quickly. */
const READ_CHUNK_BYTES = 1024 * 1024;
/** At speed 0, yield to the event loop (exports, signals) after this many lines plus expiry steps. */
const YIELD_EVERY_WORK = 256;
/** At speed > 0, a wait for the next datagram is slept in slices of at most this, so a stop is seen at once. */
const SLEEP_SLICE_MS = 1_000;
/** A wait longer than this (a gap divided by --speed) is logged, so a long silence has a reason. */
const LONG_WAIT_MS = 60_000;

export interface ReplayProgress {
  lines: number;
  fed: number;
  /** Lines skipped: not a recorded datagram (including `longLines`). */
  badLines: number;
  /** Of badLines: longer than MAX_LINE_BYTES, dropped unread. */
  longLines: number;
  done: boolean;
}

/** What a replay feeds: the bridge (`replay FILE`) or a bare Pipeline (`policy FILE`). */
export interface ReplayTarget {
  ingest(bytes: Buffer, from: Source, receivedAt: number): void;
  expire(now: number): void;
  /** Spans made but not yet delivered: a fast replay pauses while there are too many. Absent: never pauses. */
  spansInFlight?(): number;
}

export interface ReplayOptions {
  speed: number;
  log: Logger;
  /** Spans in flight above which feeding pauses (speed 0), so the export spool does not overflow. */
  maxInFlightSpans?: number;
  /** Set to stop early (SIGINT). */
  stopped?: () => boolean;
  progress?: ReplayProgress;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Recordings are files or pipes (`replay <(zcat x.gz)`); a device such as /dev/zero is one endless line. */
function refuseNonRecording(file: string, st: Stats): void {
  if (!st.isFile() && !st.isFIFO() && !st.isSocket()) throw new Error(`${file} is not a file or a pipe (${st.isDirectory() ? 'a directory' : 'a device'})`);
}

/** Throws what `replay` would about `file` (missing, a directory, a device), without opening it (a pipe's writer is not disturbed). */
export async function checkRecording(file: string): Promise<void> {
  refuseNonRecording(file, await stat(file));
}

async function openRecording(file: string) {
  const handle = await open(file, 'r');
  try {
    refuseNonRecording(file, await handle.stat());
  } catch (e) {
    await handle.close();
    throw e;
  }
  return handle;
}

export async function replay(file: string, target: ReplayTarget, opts: ReplayOptions): Promise<ReplayProgress> {
  const p: ReplayProgress = opts.progress ?? { lines: 0, fed: 0, badLines: 0, longLines: 0, done: false };
  const stopped = opts.stopped ?? (() => false);
  // Open errors (no such file, a device) surface here rather than as a stream error.
  const handle = await openRecording(file);
  const input = handle.createReadStream({ highWaterMark: READ_CHUNK_BYTES });
  let firstNs: bigint | undefined;
  let wall0 = 0;
  let nextExpire = 0;
  let lastMs = 0;
  let work = 0;
  try {
    for await (const line of boundedLines(input, MAX_LINE_BYTES, stopped)) {
      if (stopped()) break;
      p.lines++;
      work++;
      let rec;
      try {
        if ('tooLong' in line) {
          p.longLines++;
          throw new Error(`line of ${line.tooLong} bytes, longer than ${MAX_LINE_BYTES}`);
        }
        if (line.text.trim() === '') continue;
        rec = parseLine(line.text);
      } catch (e) {
        p.badLines++;
        opts.log.warnLimited('replay-bad-line', 'skipping a line that is not a recorded datagram', { file, line: p.lines, error: (e as Error).message });
        continue;
      }
      const recvMs = Number(rec.recvNs / 1_000_000n);
      if (firstNs === undefined) {
        firstNs = rec.recvNs;
        wall0 = performance.now();
        nextExpire = recvMs + EXPIRE_EVERY_MS;
      }
      // Out-of-order lines do not move the clock back.
      const at = Math.max(recvMs, lastMs);
      lastMs = at;
      if (opts.speed > 0) {
        const due = wall0 + Number(rec.recvNs - firstNs) / 1e6 / opts.speed;
        if (due - performance.now() > LONG_WAIT_MS) {
          opts.log.warnLimited('replay-long-wait', 'waiting long for the next line: its recorded gap divided by --speed', { file, line: p.lines, waitS: Math.round((due - performance.now()) / 1000), speed: opts.speed });
        }
        // Slices: a stop (SIGINT) is seen within one, and no delay reaches the timer's 2^31 ms limit.
        for (let wait = due - performance.now(); wait > 1 && !stopped(); wait = due - performance.now()) await sleep(Math.min(wait, SLEEP_SLICE_MS));
        if (stopped()) break;
      } else if (work >= YIELD_EVERY_WORK) {
        work = 0;
        await new Promise<void>((r) => setImmediate(r));
        await backpressure(target, opts);
        if (stopped()) break;
      }
      let steps = 0;
      for (; nextExpire <= at && steps < MAX_EXPIRE_STEPS_PER_GAP; nextExpire += EXPIRE_EVERY_MS, steps++) target.expire(nextExpire);
      if (nextExpire <= at) {
        target.expire(at);
        nextExpire = at + EXPIRE_EVERY_MS;
      }
      work += steps;
      target.ingest(rec.raw, parseSource(rec.src), at);
      p.fed++;
    }
  } finally {
    input.destroy();
    await handle.close().catch(() => {});
  }
  p.done = true;
  return p;
}

/** Waits (bounded: 30 s) while more spans are in flight than the export queue should hold. */
async function backpressure(target: ReplayTarget, opts: ReplayOptions): Promise<void> {
  const inFlight = target.spansInFlight;
  const max = opts.maxInFlightSpans;
  if (inFlight === undefined || max === undefined) return;
  for (let i = 0; i < 600 && inFlight.call(target) > max && !opts.stopped?.(); i++) await sleep(50);
}
