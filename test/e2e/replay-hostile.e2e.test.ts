/**
 * Recordings and record paths as an attacker (or a slip of the keyboard) would hand them to the
 * CLI: absurd receive times, lines larger than memory, devices, planted links, world-readable
 * files, absurd speeds. Each runs the built CLI on real files and pipes (issue 16 items 8 and 11).
 */
import { spawn } from 'node:child_process';
import { chmodSync, closeSync, fstatSync, lstatSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI, runCli, startBridge } from '../helpers/bridge-process.js';
import { FIXTURES } from '../helpers/captures.js';
import { startOtlpSink, type OtlpSink } from '../helpers/otlp-sink.js';
import { waitStats } from '../helpers/stats.js';
import { sendUdp } from '../helpers/tools.js';

const dir = mkdtempSync(join(tmpdir(), 'csm-replay-hostile-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The lines of a real capture (26 datagrams of one aws CLI run), as written. */
const CAPTURE = readFileSync(join(FIXTURES, 'cli_connrefused.jsonl'), 'utf8').split('\n').filter((l) => l.trim() !== '');
const withRecvNs = (line: string, ns: string) => line.replace(/"recv_ns": ?\d+/, `"recv_ns": ${ns}`);
const logLines = (stderr: string) =>
  stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, any>);
const finished = (stderr: string) => logLines(stderr).find((l) => l['msg'] === 'replay finished');

async function replayTo(sink: OtlpSink, file: string, ...args: string[]) {
  return runCli(['replay', file, '--export-delay-ms', '100', ...args], { OTEL_EXPORTER_OTLP_ENDPOINT: sink.url, OTEL_METRICS_EXPORTER: 'none' });
}

describe('replay of hostile recordings ends, counts what it skipped, and never buffers a whole line', () => {
  it('a line with recv_ns 10^30 is refused with the allowed range, the rest is replayed', async () => {
    const file = join(dir, 'recv-1e30.jsonl');
    writeFileSync(file, [...CAPTURE.slice(0, 2), withRecvNs(CAPTURE[2]!, '1' + '0'.repeat(30)), ...CAPTURE.slice(3)].join('\n') + '\n');
    const sink = await startOtlpSink();
    try {
      // Before: the expiry catch-up looped for ever at 10^24 ms (x + 100 == x), deaf to SIGTERM.
      const r = await replayTo(sink, file, '--speed', '0');
      expect(r.code, r.stderr).toBe(0);
      expect(finished(r.stderr)).toMatchObject({ fed: CAPTURE.length - 1, badLines: 1, flushed: true });
      const warn = logLines(r.stderr).find((l) => l['msg'] === 'skipping a line that is not a recorded datagram');
      expect(warn).toMatchObject({ line: 3 });
      expect(warn?.['error']).toMatch(/"recv_ns" .* is out of range: 0 to 9223372036854775807/);
      expect(sink.spans).toHaveLength(CAPTURE.length - 1);
    } finally {
      await sink.close();
    }
  });

  it('a gap of two centuries inside the range is caught up in a bounded number of expiry steps', async () => {
    const file = join(dir, 'gap.jsonl');
    // 2026 -> 2255: 7 * 10^10 steps of 100 ms before the bound.
    writeFileSync(file, [...CAPTURE.slice(0, 2), withRecvNs(CAPTURE[2]!, '9000000000000000000'), ...CAPTURE.slice(3)].join('\n') + '\n');
    const sink = await startOtlpSink();
    try {
      const r = await replayTo(sink, file, '--speed', '0');
      expect(r.code, r.stderr).toBe(0);
      expect(finished(r.stderr)).toMatchObject({ fed: CAPTURE.length, badLines: 0, flushed: true });
      expect(sink.spans).toHaveLength(CAPTURE.length);
    } finally {
      await sink.close();
    }
  });

  it('a 560 MiB line streamed through a pipe is dropped unread and counted; the lines around it are replayed', async () => {
    const sink = await startOtlpSink();
    try {
      const good = join(dir, 'two.jsonl');
      writeFileSync(good, `${CAPTURE[0]}\n${CAPTURE[1]}\n`);
      // The recording is a stream, never a file: one good line, a 560 MiB one, another good line.
      const head = '{"recv_ns":1795462645940350825,"src":"127.0.0.1:1","raw":"';
      const script = `{ head -n 1 "$GOOD"; printf '%s' '${head}'; head -c ${560 * 1024 * 1024} /dev/zero; printf '"}\\n'; tail -n 1 "$GOOD"; } | exec "$NODE" "$CLI" replay /dev/stdin --speed 0 --export-delay-ms 100`;
      const r = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
        const child = spawn('sh', ['-c', script], {
          env: { PATH: process.env['PATH'] ?? '', GOOD: good, NODE: process.execPath, CLI, OTEL_EXPORTER_OTLP_ENDPOINT: sink.url, OTEL_METRICS_EXPORTER: 'none' },
          stdio: ['ignore', 'ignore', 'pipe'],
        });
        let stderr = '';
        child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        const t = setTimeout(() => child.kill('SIGKILL'), 50_000);
        child.on('exit', (code) => {
          clearTimeout(t);
          resolve({ code, stderr });
        });
      });
      // Before: readline buffered the whole line, then `RangeError: Invalid string length`.
      expect(r.stderr).not.toMatch(/RangeError|Invalid string length/);
      expect(r.code, r.stderr.slice(0, 2000)).toBe(0);
      expect(finished(r.stderr)).toMatchObject({ lines: 3, fed: 2, badLines: 1, longLines: 1 });
      const warn = logLines(r.stderr).find((l) => l['msg'] === 'skipping a line that is not a recorded datagram');
      expect(warn).toMatchObject({ line: 2, error: `line of ${head.length + 560 * 1024 * 1024 + 2} bytes, longer than ${1024 * 1024}` });
      expect(sink.spans).toHaveLength(2);
    } finally {
      await sink.close();
    }
  }, 60_000);

  it('replay /dev/zero is refused at once: a device is not a recording', async () => {
    const r = await runCli(['replay', '/dev/zero'], { OTEL_TRACES_EXPORTER: 'none', OTEL_METRICS_EXPORTER: 'none' });
    // A FILE that cannot be replayed is a configuration refusal: exit 2, one line (test/e2e/config-refusals).
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain('cannot replay /dev/zero: /dev/zero is not a file or a pipe (a device)');
  });

  it('a 30-day gap at --speed 1 is waited out (no timer overflow), and SIGTERM ends the wait', async () => {
    const file = join(dir, 'month.jsonl');
    const t0 = BigInt(/"recv_ns": ?(\d+)/.exec(CAPTURE[0]!)![1]!);
    writeFileSync(file, `${CAPTURE[0]}\n${withRecvNs(CAPTURE[1]!, String(t0 + 30n * 86_400n * 1_000_000_000n))}\n`);
    const sink = await startOtlpSink();
    const child = spawn(process.execPath, [CLI, 'replay', file, '--speed', '1', '--export-delay-ms', '100'], {
      env: { PATH: process.env['PATH'] ?? '', OTEL_EXPORTER_OTLP_ENDPOINT: sink.url, OTEL_METRICS_EXPORTER: 'none' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no "replay started" in 20 s:\n${stderr}`)), 20_000);
        child.stderr.on('data', () => {
          if (stderr.includes('"replay started"')) {
            clearTimeout(t);
            resolve();
          }
        });
      });
      // Before: 2.6 * 10^9 ms overflowed setTimeout, which fired after 1 ms; the replay was over by now.
      const early = await Promise.race([exited, new Promise<'running'>((r) => setTimeout(() => r('running'), 3_000))]);
      expect(early, stderr).toBe('running');
      child.kill('SIGTERM');
      const code = await Promise.race([exited, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 15_000))]);
      expect(code, stderr).toBe(0);
      expect(stderr).not.toMatch(/TimeoutOverflowWarning/);
      expect(finished(stderr)).toMatchObject({ fed: 1, interrupted: true, flushed: true });
      expect(sink.spans).toHaveLength(1);
    } finally {
      child.kill('SIGKILL');
      await sink.close();
    }
  });

  it('--speed below 0.001 (1e-12 overflowed a timer) or above 1000000 is refused with exit 2 and the allowed range', async () => {
    for (const speed of ['0.000000000001', '0.0001', '2000000']) {
      const r = await runCli(['replay', join(FIXTURES, 'cli_connrefused.jsonl'), '--speed', speed], { OTEL_TRACES_EXPORTER: 'none', OTEL_METRICS_EXPORTER: 'none' });
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toMatch(/replaySpeed \(--speed: got [^)]*\): expected 0 \(as fast as possible\) or a speed from 0\.001 to 1000000/);
    }
  });
});

describe('record FILE is readable by its owner only, and never written through a link', () => {
  const recordArgs = (file: string) => ['record', file, '--no-ui'];

  it('an existing world-readable file becomes a new 0600 file; a reader of the old one sees none of the recording', async () => {
    const file = join(dir, 'shared.jsonl');
    writeFileSync(file, 'old recording\n');
    chmodSync(file, 0o644);
    // Someone opened the old, world-readable file before the bridge started.
    const reader = openSync(file, 'r');
    try {
      const bridge = await startBridge(recordArgs(file), { OTEL_TRACES_EXPORTER: 'none', OTEL_METRICS_EXPORTER: 'none' });
      await sendUdp(bridge.udpPort, JSON.stringify({ Version: 1, Type: 'ApiCall', ClientId: 'perm', Service: 'S3', Api: 'ListBuckets', Timestamp: Date.now(), AccessKey: 'AKIAPERMTEST00000001', Latency: 3, AttemptCount: 1 }));
      await waitStats(bridge, (s) => s.datagrams.received >= 1, 'the datagram read', 5_000);
      expect(await bridge.stop('SIGTERM')).toBe(0);
      const st = statSync(file);
      expect((st.mode & 0o777).toString(8)).toBe('600');
      expect(readFileSync(file, 'utf8')).toContain('AKIAPERMTEST00000001');
      // Before: the file was truncated in place; the old reader read the access key through its descriptor.
      expect(st.ino).not.toBe(fstatSync(reader).ino);
      const buf = Buffer.alloc(4096);
      const n = readSync(reader, buf, 0, buf.length, 0);
      expect(buf.subarray(0, n).toString()).toBe('old recording\n');
    } finally {
      closeSync(reader);
    }
  });

  it('a symbolic link planted at the path is refused, its target untouched', async () => {
    const target = join(dir, 'precious');
    writeFileSync(target, 'precious\n', { mode: 0o600 });
    const link = join(dir, 'planted.jsonl');
    symlinkSync(target, link);
    const r = await runCli([...recordArgs(link), '--listen', '127.0.0.1:0', '--admin', 'off'], { OTEL_TRACES_EXPORTER: 'none', OTEL_METRICS_EXPORTER: 'none' });
    // Before: the bridge followed the link, truncated the target and ran (killed here after 20 s).
    // A FILE that cannot be used is a configuration refusal: exit 2 (test/e2e/config-refusals).
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/cannot open the recording file .*planted\.jsonl: .*is not a regular file/);
    expect(readFileSync(target, 'utf8')).toBe('precious\n');
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
  });
});
