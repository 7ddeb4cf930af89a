/**
 * Every command the README shows runs as written, after the Quick start (`npm ci`, which also
 * builds dist/), typed into a shell in the repository root (issue 18 item 6: the README's
 * `aws-csm-bridge record …` was `command not found`).
 *
 * The commands are read from the README's sh code blocks, not copied here, so a README edit is
 * tested as it is published. Each runs under `sh -c` in its own process group, as a terminal runs
 * it; a command that serves (no subcommand, or `record`) is stopped with Ctrl-C (SIGINT to the
 * group) once it has started, after real CSM datagrams (a captured aws CLI run) reached it. The
 * environment only moves its ports to free ones and its exports to a test sink.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/bridge-process.js';
import { readCapture } from '../helpers/captures.js';
import { startOtlpSink, type OtlpSink } from '../helpers/otlp-sink.js';
import type { Stats } from '../helpers/stats.js';
import { sendUdp } from '../helpers/tools.js';

/** Lines of the README's sh/bash code blocks that run the bridge (`\` continuations joined, comments and a trailing `&` removed). */
function documentedCommands(readme: string): string[] {
  const out: string[] = [];
  let inShell = false;
  let inBlock = false;
  let pending = '';
  for (const raw of readme.split('\n')) {
    const fence = /^\s*```\s*(\S*)/.exec(raw);
    if (fence) {
      inBlock = !inBlock;
      inShell = inBlock && ['sh', 'bash', 'shell', 'console'].includes(fence[1]!);
      continue;
    }
    if (!inShell) continue;
    const line = pending + raw;
    if (line.endsWith('\\')) {
      pending = line.slice(0, -1);
      continue;
    }
    pending = '';
    const cmd = line
      .replace(/(^|\s)#.*$/, '')
      .trim()
      .replace(/\s*&$/, '');
    // The bridge as the command word, after any VAR=value assignments.
    if (/^(?:\w+=\S*\s+)*(?:npx\s+)?aws-csm-bridge(?:\s|$)/.test(cmd)) out.push(cmd);
  }
  return out;
}

/** What kind of run the command is: its first non-option word after the program name. */
function subcommand(cmd: string): { name: 'record' | 'replay' | 'policy' | 'serve' | 'info'; file?: string; client?: string } {
  const words = cmd.replace(/^(?:\w+=\S*\s+)*(?:npx\s+)?aws-csm-bridge/, '').trim().split(/\s+/).filter(Boolean);
  if (words.some((w) => ['--help', '-h', '--version', '-v'].includes(w))) return { name: 'info' };
  const i = words.findIndex((w) => ['record', 'replay', 'policy'].includes(w));
  const client = words[words.indexOf('--client') + 1];
  if (i < 0) return { name: 'serve' };
  return { name: words[i] as 'record' | 'replay' | 'policy', file: words[i + 1]!, ...(words.includes('--client') && client ? { client } : {}) };
}

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

const README = readFileSync(join(ROOT, 'README.md'), 'utf8');
const COMMANDS = documentedCommands(README);
/** The application a README policy command asks about in `file`; the datagrams sent while recording it come from that application. */
const clientOf = (file: string) =>
  COMMANDS.map(subcommand).find((c) => c.name === 'policy' && c.file === file && c.client !== undefined)?.client ?? 'my-app';
/** Files the README's commands create in the repository root, removed afterwards. */
const created = new Set<string>();

describe('every aws-csm-bridge command the README shows runs as written in the repository root', () => {
  let sink: OtlpSink;
  beforeAll(async () => {
    sink = await startOtlpSink();
  });
  afterAll(async () => {
    for (const f of created) rmSync(join(ROOT, f), { force: true });
    await sink?.close();
  });

  /** Runs `cmd` as a user types it; `serving`: Ctrl-C once it has started, after `whenStarted`. */
  function shell(cmd: string, serving: boolean, whenStarted: (udpPort: number, adminUrl: string) => Promise<void> = async () => {}): Promise<Run> {
    return new Promise((resolve) => {
      const child = spawn('sh', ['-c', cmd], {
        cwd: ROOT,
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: {
          PATH: process.env['PATH'] ?? '',
          HOME: process.env['HOME'] ?? '',
          // Free ports (the defaults 31000/31001 may be taken by a bridge a developer runs) and the test's sink.
          AWS_CSM_PORT: '0',
          AWS_CSM_BRIDGE_ADMIN: '127.0.0.1:0',
          OTEL_EXPORTER_OTLP_ENDPOINT: sink.url,
          OTEL_METRICS_EXPORTER: 'none',
        },
      });
      let stdout = '';
      let stderr = '';
      let interrupted = false;
      const ctrlC = () => {
        if (child.exitCode === null && child.pid !== undefined) process.kill(-child.pid, 'SIGINT');
      };
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
        const started = /\{[^\n]*"msg":"aws-csm-bridge started"[^\n]*\}/.exec(stderr);
        if (serving && started && !interrupted) {
          interrupted = true;
          const rec = JSON.parse(started[0]) as { listen: string[]; admin: string };
          const listen = rec.listen[0]!;
          void whenStarted(Number(listen.slice(listen.lastIndexOf(':') + 1)), `http://${rec.admin}`).finally(ctrlC);
        }
      });
      const kill = setTimeout(() => child.pid !== undefined && process.kill(-child.pid, 'SIGKILL'), 40_000);
      child.on('exit', (code, signal) => {
        clearTimeout(kill);
        resolve({ code, signal, stdout, stderr });
      });
    });
  }

  /** A captured aws CLI run (S3 ListBuckets and more), re-labelled as the README's application. */
  async function sendCapturedCalls(client: string, port: number, adminUrl: string): Promise<void> {
    const lines = readCapture('cli_moto_basic');
    for (const l of lines) await sendUdp(port, l.raw.replace(/"ClientId":"[^"]*"/, `"ClientId":${JSON.stringify(client)}`));
    // Every datagram read before Ctrl-C closes the socket (bounded: 5 s).
    for (let i = 0; i < 100; i++) {
      const s = (await (await fetch(`${adminUrl}/stats`)).json()) as Stats;
      if (s.datagrams.received >= lines.length) return;
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  it('the README shows the commands: help, record, replay and policy', () => {
    const kinds = COMMANDS.map((c) => subcommand(c).name);
    for (const k of ['info', 'record', 'replay', 'policy'] as const) expect(kinds, COMMANDS.join('\n')).toContain(k);
  });

  it.each(COMMANDS)('%s', async (cmd) => {
    const sub = subcommand(cmd);
    if (sub.name === 'record' && sub.file) created.add(sub.file);
    const r = await shell(cmd, sub.name === 'record' || sub.name === 'serve', (port, admin) => sendCapturedCalls(clientOf(sub.file ?? ''), port, admin));
    const what = `${cmd}\nexit ${r.code} ${r.signal ?? ''}\n${r.stderr.slice(0, 3000)}`;
    expect(r.stderr, what).not.toMatch(/command not found|aws-csm-bridge: not found/);
    switch (sub.name) {
      case 'info':
        expect(r.code, what).toBe(0);
        expect(r.stdout, what).toMatch(/aws-csm-bridge/);
        break;
      case 'serve':
      case 'record':
        // Ctrl-C: the bridge flushes and says so (npx then re-raises the SIGINT, as a shell expects).
        expect(r.stderr, what).toContain('"msg":"stopped"');
        expect(r.code === 0 || r.signal === 'SIGINT' || r.code === 130, what).toBe(true);
        if (sub.name === 'record') {
          const file = join(ROOT, sub.file!);
          expect(existsSync(file), what).toBe(true);
          expect(statSync(file).mode & 0o777).toBe(0o600);
          expect(readFileSync(file, 'utf8').trim().split('\n')).toHaveLength(readCapture('cli_moto_basic').length);
        }
        break;
      case 'replay':
        expect(r.code, what).toBe(0);
        expect(r.stderr, what).toMatch(/"msg":"replay finished".*"badLines":0/);
        break;
      case 'policy': {
        expect(r.code, what).toBe(0);
        const doc = JSON.parse(r.stdout) as { Statement?: { Action: string | string[] }[] };
        expect(JSON.stringify(doc.Statement), what).toContain('s3:ListAllMyBuckets');
        break;
      }
    }
  });
});
