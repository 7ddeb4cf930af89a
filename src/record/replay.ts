/**
 * `aws-csm-bridge replay FILE`: feeds a recording through the whole pipeline
 * (decode → correlate → translate → export). Each datagram keeps its recorded
 * source (correlation uses it) and its recorded receive time: the bridge runs
 * on the recording's clock, and the expiry tick the live bridge runs every
 * second is driven on that clock too, so holds expire exactly as they would
 * have live, whatever the speed. Only the wall-clock pacing changes: gaps are
 * divided by `speed`, and speed 0 feeds as fast as the exporter keeps up.
 */
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Logger } from '../log.js';
import { parseSource, type Source } from '../net/address.js';
import { parseLine } from './format.js';

/** Same cadence as the live bridge's expiry timer. */
const EXPIRE_EVERY_MS = 100;
/** Lines longer than this are skipped (a 64 KiB datagram, JSON-escaped, fits easily). */
const MAX_LINE_CHARS = 1024 * 1024;
/** At speed 0, yield to the event loop (exports, signals) this often. */
const YIELD_EVERY = 256;

export interface ReplayProgress {
  lines: number;
  fed: number;
  badLines: number;
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

export async function replay(file: string, target: ReplayTarget, opts: ReplayOptions): Promise<ReplayProgress> {
  const p: ReplayProgress = opts.progress ?? { lines: 0, fed: 0, badLines: 0, done: false };
  const input = createReadStream(file, { encoding: 'utf8' });
  // Open errors (no such file) surface here rather than as an unhandled stream error.
  await new Promise<void>((resolve, reject) => {
    input.once('ready', () => resolve());
    input.once('error', reject);
  });
  const rl = createInterface({ input, crlfDelay: Infinity });
  let firstNs: bigint | undefined;
  let wall0 = 0;
  let nextExpire = 0;
  let lastMs = 0;
  try {
    for await (const line of rl) {
      if (opts.stopped?.()) break;
      p.lines++;
      if (line.trim() === '') continue;
      let rec;
      try {
        if (line.length > MAX_LINE_CHARS) throw new Error(`line longer than ${MAX_LINE_CHARS} characters`);
        rec = parseLine(line);
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
        const wait = due - performance.now();
        if (wait > 1) await sleep(wait);
      } else if (p.fed % YIELD_EVERY === 0) {
        await new Promise<void>((r) => setImmediate(r));
        await backpressure(target, opts);
      }
      for (; nextExpire <= at; nextExpire += EXPIRE_EVERY_MS) target.expire(nextExpire);
      target.ingest(rec.raw, parseSource(rec.src), at);
      p.fed++;
    }
  } finally {
    rl.close();
    input.destroy();
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
