/**
 * Stopping when no collector ever answered (the Quick start's default situation), end to end:
 * the built CLI with its default shutdown timeout (10 s), an OTLP endpoint on a loopback port
 * nothing listens on, real captured CSM datagram pairs over UDP.
 *
 * A log (stderr not a terminal) gets the JSON records as before; a person at a terminal (tmux,
 * 80x24, the live view as `npm start` shows it) gets one line on stopping, one on stopped, and
 * a second Ctrl-C that quits at once. How long the stop takes is measured in
 * bench/stop-time.mjs; here only a generous bound (the old stop took 9 s).
 */
import { createSocket } from 'node:dgram';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { CLI, startBridge, type BridgeProcess } from '../helpers/bridge-process.js';
import { readCapture } from '../helpers/captures.js';
import { waitStats, type Stats } from '../helpers/stats.js';
import { shellQuote, Tmux } from '../helpers/tmux.js';
import { findTool, freePort } from '../helpers/tools.js';
import { UNANSWERED_FLUSH_MS } from '../../src/stop-report.js';

const TMUX = findTool('tmux');
/** Far below the old 9 s, far above the new ~1 s: a busy machine does not fail it. */
const GENEROUS_STOP_MS = 5_000;

const capture = readCapture('js_v2_sequential');
const ATTEMPT = JSON.parse(capture[0]!.raw) as Record<string, unknown>;
const CALL = JSON.parse(capture[1]!.raw) as Record<string, unknown>;

/** `count` calls (an attempt and its ApiCall each: two spans per call) to 127.0.0.1:port. */
async function sendCalls(port: number, count: number): Promise<void> {
  const udp = createSocket('udp4');
  for (let i = 0; i < count; i++) {
    const attempt = { ...ATTEMPT, XAmznRequestId: `stop-${i}`, Timestamp: (ATTEMPT['Timestamp'] as number) + i * 100 };
    const call = { ...CALL, Timestamp: (CALL['Timestamp'] as number) + i * 100 };
    for (const d of [attempt, call]) await new Promise<void>((res, rej) => udp.send(JSON.stringify(d), port, '127.0.0.1', (e) => (e ? rej(e) : res())));
  }
  udp.close();
}

describe('stop with no collector, stderr a log (JSON records as before)', () => {
  const bridges: BridgeProcess[] = [];
  afterEach(async () => {
    for (const b of bridges.splice(0)) await b.stop('SIGKILL');
  });

  const start = async () => {
    const b = await startBridge(['--otlp-endpoint', `http://127.0.0.1:${await freePort()}`]);
    bridges.push(b);
    await sendCalls(b.udpPort, 20);
    await waitStats(b, (s) => s.spool.queuedSpans === 40, 'spans in the export spool');
    return b;
  };

  it('SIGINT: the flush gets UNANSWERED_FLUSH_MS, not the shutdown timeout; what is lost is stated and counted', async () => {
    const b = await start();
    const t0 = Date.now();
    const code = await b.stop('SIGINT', 15_000);
    const ms = Date.now() - t0;
    expect(code, b.stderr()).toBe(0);
    expect(ms).toBeLessThan(GENEROUS_STOP_MS);
    const stopping = b.logs.find((l) => l['msg'] === 'stopping: intake closed, flushing pending calls and exports');
    expect(stopping, b.stderr()).toMatchObject({ signal: 'SIGINT', flushWithinMs: UNANSWERED_FLUSH_MS, otlpEndpointState: 'never answered' });
    const lost = b.logs.find((l) => l['msg'] === 'OTLP endpoint unavailable at shutdown: undelivered data is lost (no spoolDir)');
    expect((lost?.['lost'] as { spans: number } | undefined)?.spans, b.stderr()).toBe(40);
    // The log keeps the JSON stats line, and its counters say the same.
    const stats = b.logs.find((l) => l['msg'] === 'stopped')?.['stats'] as Stats | undefined;
    expect([stats?.spool.lostSpans, stats?.spans.dropped, stats?.spans.exported]).toEqual([40, 40, 0]);
  });

  it('a second SIGINT during the flush exits at once, with exit code 1', async () => {
    const b = await start();
    b.child.kill('SIGINT');
    await new Promise((r) => setTimeout(r, 100));
    const code = await b.stop('SIGINT', 15_000);
    expect(code).toBe(1);
    expect(b.logs.some((l) => l['msg'] === 'second signal: exiting without waiting for the flush'), b.stderr()).toBe(true);
    expect(b.logs.some((l) => l['msg'] === 'stopped')).toBe(false);
  });
});

/**
 * The Quick start as a person runs it: the live view in an 80x24 terminal, no collector.
 * `q` stops; the terminal is told in human lines, no JSON.
 */
describe.skipIf(!TMUX)('stop with no collector, at a terminal (tmux 80x24, the live view)', () => {
  let tmux: Tmux;
  let n = 0;
  afterEach(() => tmux?.kill());
  afterAll(() => tmux?.kill());

  /** The CLI in a fresh terminal, 20 calls sent, the live view showing them. */
  const startInTerminal = async () => {
    tmux = new Tmux(TMUX!, `csm-stop-${process.pid}-${n++}`);
    const udpPort = await freePort();
    const closed = await freePort();
    const cmd = [process.execPath, CLI, '--listen', `127.0.0.1:${udpPort}`, '--admin', 'off', '--otlp-endpoint', `http://127.0.0.1:${closed}`].map(shellQuote).join(' ');
    // After the bridge exits: its exit code, and the pane stays open to be read.
    tmux.start(`${cmd}; echo "EXIT=$?"; sleep 60`, 80, 24);
    await tmux.waitScreen((s) => s.includes('live view'));
    await sendCalls(udpPort, 20);
    const during = await tmux.waitScreen((s) => /calls 20 /.test(s));
    expect(during).toMatch(/calls 20 /);
    return { closed };
  };
  const lines = (screen: string) => screen.split('\n').map((l) => l.trimEnd()).filter((l) => l !== '');

  it('q: one line on stopping (the bound, a second Ctrl-C quits), one on stopped (exported, lost, why, the hint); no JSON', async () => {
    const { closed } = await startInTerminal();
    const t0 = Date.now();
    tmux.keys('q');
    const after = await tmux.waitScreen((s) => s.includes('EXIT='), 15_000, 50, true);
    const ms = Date.now() - t0;
    expect(lines(after)).toEqual([
      'stopping within 1.0 s (the collector never answered); Ctrl-C again quits now',
      expect.stringMatching(
        new RegExp(`^stopped in \\d\\.\\d s: 0 spans exported, 40 spans and \\d+ metric exports? not delivered \\(the collector at http://127\\.0\\.0\\.1:${closed} never answered\\) — use --spool-dir to keep them$`),
      ),
      'EXIT=0',
    ]);
    expect(ms).toBeLessThan(GENEROUS_STOP_MS);
  });

  it('Ctrl-C twice: the second quits at once and says what is not delivered', async () => {
    await startInTerminal();
    tmux.keys('C-c');
    await tmux.waitScreen((s) => s.includes('Ctrl-C again quits now'), 10_000, 20);
    tmux.keys('C-c');
    const after = await tmux.waitScreen((s) => s.includes('EXIT='), 10_000, 50, true);
    expect(lines(after)).toEqual([
      'stopping within 1.0 s (the collector never answered); Ctrl-C again quits now',
      expect.stringMatching(/^quit at once: 40 spans (and \d+ metric exports? )?not delivered$/),
      'EXIT=1',
    ]);
  });
});
