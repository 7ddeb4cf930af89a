import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseHostPort } from '../../src/net/address.js';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CLI = join(ROOT, 'dist', 'cli.js');

export interface BridgeProcess {
  child: ChildProcess;
  /** The "started" log record: listen addresses, admin address, endpoint. */
  started: Record<string, unknown>;
  /** The UDP port the bridge reports it bound (it is started on port 0). */
  udpPort: number;
  adminUrl: string;
  /** Every stderr line, parsed when it is JSON. */
  logs: Record<string, unknown>[];
  stderr: () => string;
  stdout: () => string;
  /** Sends `signal` and resolves with the exit code (kills after `timeoutMs`). */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number | null>;
}

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of running) c.kill('SIGKILL');
});

/** Spawns the built CLI as a user would and waits for its "started" line. */
export async function startBridge(
  args: string[],
  env: Record<string, string> = {},
  /** false: exactly `args`, without the test's own ephemeral listen/admin addresses. */
  testAddresses = true,
  /** The CLI to run: this checkout's build, or an installed copy. */
  cli = CLI,
): Promise<BridgeProcess> {
  const defaults = testAddresses ? ['--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0'] : [];
  const child = spawn(process.execPath, [cli, ...defaults, ...args], {
    env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  let err = '';
  let out = '';
  const logs: Record<string, unknown>[] = [];
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => { running.delete(child); resolve(code); }));
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  const started = new Promise<Record<string, unknown>>((resolve, reject) => {
    let buf = '';
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      buf += d.toString();
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        try {
          const rec = JSON.parse(line) as Record<string, unknown>;
          logs.push(rec);
          if (rec['msg'] === 'aws-csm-bridge started') resolve(rec);
        } catch {
          /* not JSON: kept in stderr() */
        }
      }
    });
    void exited.then((code) => reject(new Error(`bridge exited with ${code} before starting:\n${err}`)));
    setTimeout(() => reject(new Error(`bridge did not start in 20 s:\n${err}`)), 20_000).unref();
  });
  const rec = await started;
  const listen = (rec['listen'] as string[])[0]!;
  return {
    child,
    started: rec,
    udpPort: parseHostPort(listen).port,
    adminUrl: `http://${String(rec['admin'])}`,
    logs,
    stderr: () => err,
    stdout: () => out,
    async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 20_000) {
      if (child.exitCode !== null) return child.exitCode;
      child.kill(signal);
      const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      const code = await exited;
      clearTimeout(t);
      return code;
    },
  };
}

/** Runs the CLI to completion (for --help, --version, config errors). */
export function runCli(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { PATH: process.env['PATH'] ?? '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const t = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('exit', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
}
