import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { decodeDatagram } from '../../src/decode/decoder.js';
import { createLogger } from '../../src/log.js';
import { parseSource } from '../../src/net/address.js';
import { formatLine, MAX_RECV_NS, parseLine, redact } from '../../src/record/format.js';
import { boundedLines, type SplitLine } from '../../src/record/lines.js';
import { Recorder } from '../../src/record/recorder.js';
import { DEFAULT_DECODER, FIXTURES, readCapture, scenarios } from '../helpers/captures.js';

const TOKEN = 'IQoJb3JpZ2luX2VjEXAMPLE-session-token';
const dir = mkdtempSync(join(tmpdir(), 'csm-record-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('redaction', () => {
  it('removes SessionToken and keeps everything the decoder uses', () => {
    const dg = { Version: 1, Type: 'ApiCallAttempt', ClientId: 'a', Service: 'S3', Api: 'ListBuckets', Timestamp: 1, AttemptLatency: 5, SessionToken: TOKEN, HttpStatusCode: 200 };
    const r = redact(Buffer.from(JSON.stringify(dg)));
    expect(r.ok && r.redacted).toBe(true);
    if (!r.ok) return;
    expect(r.raw).not.toContain(TOKEN);
    expect(r.raw).not.toMatch(/sessiontoken/i);
    const src = { address: '127.0.0.1', port: 1 };
    expect(decodeDatagram(Buffer.from(r.raw), src, 0, DEFAULT_DECODER)).toEqual(decodeDatagram(Buffer.from(JSON.stringify(dg)), src, 0, DEFAULT_DECODER));
  });

  it('finds the key however it is spelled or escaped, at any depth', () => {
    for (const text of [
      `{"Type":"ApiCall","session_token":"${TOKEN}"}`,
      `{"Type":"ApiCall","Session\\u0054oken":"${TOKEN}"}`,
      `{"Type":"ApiCall","x":{"y":[{"SESSIONTOKEN":"${TOKEN}"}]}}`,
    ]) {
      const r = redact(Buffer.from(text));
      expect(r.ok, text).toBe(true);
      if (r.ok) expect(r.raw, text).not.toContain(TOKEN);
    }
  });

  it('a datagram without a token is kept byte for byte', () => {
    const text = '{"Version":1,"Type":"ApiCall","Latency":7.0,"Timestamp":1795462780274}';
    expect(redact(Buffer.from(text))).toEqual({ ok: true, raw: text, redacted: false });
  });

  it('what cannot be parsed is kept only when it cannot hold a token', () => {
    expect(redact(Buffer.from('this is not json'))).toEqual({ ok: true, raw: 'this is not json', redacted: false });
    expect(redact(Buffer.from(`{"SessionToken":"${TOKEN}"`))).toEqual({ ok: false, reason: 'may_hold_token' }); // truncated JSON
    expect(redact(Buffer.from(`["Session\\u0054oken"]`))).toEqual({ ok: false, reason: 'may_hold_token' });
    const bin = Buffer.from([0xff, 0xfe, 0x00, 0x41]);
    const r = redact(bin);
    expect(r).toEqual({ ok: true, raw: bin.toString('base64'), enc: 'base64', redacted: false });
    expect(parseLine(formatLine(1n, '127.0.0.1:2', r as { raw: string; enc: 'base64' }).trim()).raw).toEqual(bin);
  });
});

describe('format', () => {
  it('reads every fixture line exactly: recv_ns to the nanosecond, source, raw', () => {
    for (const s of scenarios()) {
      const text = readFileSync(join(FIXTURES, `${s}.jsonl`), 'utf8').split('\n').filter((l) => l.trim());
      const lines = readCapture(s);
      text.forEach((t, i) => {
        const p = parseLine(t);
        expect(p.recvNs).toBe(BigInt(/"recv_ns": ?(\d+)/.exec(t)![1]!));
        expect(p.raw.toString('utf8')).toBe(lines[i]!.raw);
        expect(p.src).toBe(lines[i]!.src);
        expect(p.scenario).toBe(s);
      });
    }
  });

  it('recv_ns outside 0 .. 2^63-1 ns is refused, and 1e30 is not read as 1', () => {
    const line = (ns: string) => `{"recv_ns":${ns},"src":"127.0.0.1:1","raw":"x"}`;
    expect(parseLine(line(String(MAX_RECV_NS))).recvNs).toBe(MAX_RECV_NS);
    expect(parseLine(line('0')).recvNs).toBe(0n);
    for (const ns of [String(MAX_RECV_NS + 1n), '1' + '0'.repeat(30), '1e30', '-5', '1e3000']) {
      expect(() => parseLine(line(ns)), ns).toThrow(/no "recv_ns" integer|"recv_ns" .* is out of range: 0 to 9223372036854775807/);
    }
  });

  it('sources: IPv4 and bracketed IPv6', () => {
    expect(parseSource('127.0.0.1:5')).toEqual({ address: '127.0.0.1', port: 5 });
    expect(parseSource('[::1]:31000')).toEqual({ address: '::1', port: 31000 });
    expect(() => parseSource('nope')).toThrow();
  });
});

describe('line splitter', () => {
  async function split(chunks: string[], max: number): Promise<SplitLine[]> {
    const out: SplitLine[] = [];
    for await (const l of boundedLines((async function* () { for (const c of chunks) yield Buffer.from(c); })(), max)) out.push(l);
    return out;
  }

  it('splits on LF and CRLF across chunk boundaries; a last line without newline counts', async () => {
    expect(await split(['ab', 'c\r', '\nde\n\n', 'f'], 10)).toEqual([{ text: 'abc' }, { text: 'de' }, { text: '' }, { text: 'f' }]);
  });

  it('a line over the limit is dropped as it streams and reported with its length; the next line is intact', async () => {
    expect(await split(['12345', '6789', '0123\nok\n'], 8)).toEqual([{ tooLong: 13 }, { text: 'ok' }]);
    expect(await split(['12345678\n123456789\n'], 8)).toEqual([{ text: '12345678' }, { tooLong: 9 }]);
    expect(await split(['x'.repeat(20)], 8)).toEqual([{ tooLong: 20 }]);
  });

  it('stops reading when told to, even inside an endless line', async () => {
    let chunks = 0;
    const endless = (async function* () { for (;;) { chunks++; yield Buffer.alloc(1024); } })();
    const out: SplitLine[] = [];
    for await (const l of boundedLines(endless, 10, () => chunks >= 100)) out.push(l);
    expect(out).toEqual([]);
    expect(chunks).toBe(100);
  });
});

describe('recorder', () => {
  const log = createLogger('error', () => {});
  it('writes the fixture format, redacted, and stops at maxBytes', async () => {
    const file = join(dir, 'a.jsonl');
    const rec = new Recorder(file, 600, log);
    await rec.ready();
    const dg = (i: number) => Buffer.from(JSON.stringify({ Version: 1, Type: 'ApiCall', Service: 'S3', Api: `Op${i}`, Timestamp: i, SessionToken: TOKEN }));
    for (let i = 0; i < 10; i++) rec.write(dg(i), { address: '::1', port: 4000 + i }, 1_795_000_000_123 + i);
    rec.write(Buffer.from(`garbage SessionToken=${TOKEN}`), { address: '127.0.0.1', port: 1 }, 1);
    await rec.close();
    const text = readFileSync(file, 'utf8');
    expect(text).not.toContain(TOKEN);
    expect(text.length).toBeLessThanOrEqual(600);
    const lines = text.trim().split('\n').map(parseLine);
    expect(lines.length).toBe(rec.counts.written);
    expect(rec.counts.written).toBeGreaterThan(1);
    expect(rec.counts.skippedFull).toBe(10 - rec.counts.written);
    expect(rec.counts.skippedUnsafe).toBe(1);
    expect(rec.counts.redacted).toBe(rec.counts.written);
    expect(lines[0]).toMatchObject({ recvNs: 1_795_000_000_123_000_000n, src: '[::1]:4000' });
    expect(JSON.parse(lines[1]!.raw.toString())).toEqual({ Version: 1, Type: 'ApiCall', Service: 'S3', Api: 'Op1', Timestamp: 1 });
  });

  it('a file that cannot be opened fails at start', async () => {
    await expect(new Recorder(join(dir, 'no', 'such', 'dir.jsonl'), 1e6, log).ready()).rejects.toThrow(/ENOENT/);
  });
});

describe('subcommands and switches on the command line', () => {
  const cmd = (argv: string[]) => loadConfig(argv, {});
  it('record FILE / replay FILE --speed N, flags before or after', () => {
    expect(cmd(['record', 'x.jsonl'])).toMatchObject({ kind: 'run', subcommand: { name: 'record', file: 'x.jsonl' } });
    const r = cmd(['--log-level', 'warn', 'replay', 'y.jsonl', '--speed', '0.5']);
    expect(r).toMatchObject({ kind: 'run', subcommand: { name: 'replay', file: 'y.jsonl' }, config: { replaySpeed: 0.5, logLevel: 'warn' } });
    expect(cmd(['replay', 'y', '--speed=0'])).toMatchObject({ config: { replaySpeed: 0 } });
    expect(cmd([])).not.toHaveProperty('subcommand');
    expect(() => cmd(['record'])).toThrow(/record needs a FILE/);
    expect(() => cmd(['replay', 'a', 'b'])).toThrow(/unexpected argument "b"/);
    expect(() => cmd(['play', 'a'])).toThrow(/unexpected argument "play"/);
    expect(() => cmd(['replay', 'a', '--speed', '-1'])).toThrow(/replaySpeed/);
  });
  it('--no-ui, --ui false and AWS_CSM_BRIDGE_UI turn the view off', () => {
    const ui = (argv: string[], env: NodeJS.ProcessEnv = {}) => {
      const c = loadConfig(argv, env);
      return c.kind === 'run' ? c.config.ui : undefined;
    };
    expect(ui([])).toBe(true);
    expect(ui(['--no-ui'])).toBe(false);
    expect(ui(['--ui', 'false'])).toBe(false);
    expect(ui([], { AWS_CSM_BRIDGE_UI: 'off' })).toBe(false);
    expect(ui(['--ui'], { AWS_CSM_BRIDGE_UI: 'off' })).toBe(true);
  });
});
