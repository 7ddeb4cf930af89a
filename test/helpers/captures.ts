import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_CONFIG } from '../../src/config/schema.js';
import { decodeDatagram, type DecoderOptions } from '../../src/decode/decoder.js';
import { parseSource } from '../../src/net/address.js';
import { pipelineOptions } from '../../src/pipeline.js';
import type { CsmEvent } from '../../src/decode/types.js';

export const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures');

/** One line of a capture: a datagram exactly as a real SDK sent it. */
export interface CaptureLine {
  scenario: string;
  sdk: string;
  recv_ns: number;
  src: string;
  raw: string;
}

/** Ground truth: which capture lines belong to which call. */
export interface TruthCall {
  api_call_line: number | null;
  attempt_lines: number[];
}

/** The decoder as users get it. */
export const DEFAULT_DECODER: DecoderOptions = pipelineOptions(DEFAULT_CONFIG, '').decoder;

export function scenarios(): string[] {
  return readdirSync(FIXTURES)
    .filter((f) => f.endsWith('.jsonl'))
    .map((f) => f.replace(/\.jsonl$/, ''))
    .sort();
}

export function readCapture(scenario: string): CaptureLine[] {
  return readFileSync(join(FIXTURES, `${scenario}.jsonl`), 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as CaptureLine);
}

export function readTruth(scenario: string): TruthCall[] {
  const t = JSON.parse(readFileSync(join(FIXTURES, `${scenario}.truth.json`), 'utf8')) as {
    calls?: TruthCall[];
    commands?: { calls: TruthCall[] }[];
  };
  return t.calls ?? (t.commands ?? []).flatMap((c) => c.calls);
}

export { parseSource };

/** Decodes every line of a capture with its real source and receive time; throws on any reject. */
export function decodeCapture(scenario: string, opts: DecoderOptions = DEFAULT_DECODER): { line: number; event: CsmEvent }[] {
  return readCapture(scenario).map((l, line) => {
    const r = decodeDatagram(Buffer.from(l.raw, 'utf8'), parseSource(l.src), Math.floor(l.recv_ns / 1e6), opts);
    if (!r.ok) throw new Error(`${scenario}:${line} rejected: ${r.reason} ${r.detail}`);
    return { line, event: r.event };
  });
}
