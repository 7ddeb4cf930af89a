import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

/**
 * Finds an external tool the end-to-end tests drive (the aws CLI,
 * moto_server). When one is missing the test says so loudly; under CI
 * (CI=true) a missing tool is a failure, not a skip.
 */
export function findTool(name: string): string | undefined {
  const r = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
  const path = r.stdout.trim();
  if (r.status === 0 && path) return path;
  const msg = `\n!!! ${name} is not installed: the end-to-end tests that drive it cannot run.\n!!! Install it (see docs/testing.md) — CI must have it.\n`;
  if (process.env['CI']) throw new Error(msg);
  process.stderr.write(msg);
  return undefined;
}

export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

export interface Moto {
  url: string;
  child: ChildProcess;
  close(): Promise<void>;
}

/** Starts moto_server on a free loopback port and waits until it answers. */
export async function startMoto(bin: string): Promise<Moto> {
  const port = await freePort();
  const child = spawn(bin, ['-H', '127.0.0.1', '-p', String(port)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      const r = await fetch(`${url}/moto-api/`);
      if (r.status < 500) break;
    } catch {
      /* not up yet */
    }
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`moto_server did not start on ${url}:\n${err}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    child,
    close: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
        setTimeout(() => child.kill('SIGKILL'), 5_000).unref();
      }),
  };
}

/** Sends one datagram to 127.0.0.1:port and closes the socket. */
export function sendUdp(port: number, payload: string | Buffer): Promise<void> {
  const s = createSocket('udp4');
  return new Promise((resolve, reject) =>
    s.send(payload, port, '127.0.0.1', (err) => {
      s.close();
      if (err) reject(err);
      else resolve();
    }),
  );
}

export interface AwsCliOptions {
  /** The bridge's UDP port (AWS_CSM_PORT). */
  csmPort: number;
  clientId: string;
  endpoint: string;
  region?: string;
  sessionToken?: string;
  /** More environment (AWS_RETRY_MODE, AWS_MAX_ATTEMPTS …). */
  env?: Record<string, string>;
}

/**
 * Runs the real aws CLI v1 (botocore) with CSM on, fixed example credentials
 * and no user config, against `endpoint`; resolves with its exit code.
 */
export async function runAwsCli(bin: string, args: string[], o: AwsCliOptions): Promise<number> {
  try {
    await execFileAsync(bin, [...args, '--endpoint-url', o.endpoint], {
      env: {
        PATH: process.env['PATH'] ?? '',
        HOME: process.env['HOME'] ?? '',
        AWS_CSM_ENABLED: 'true',
        AWS_CSM_PORT: String(o.csmPort),
        AWS_CSM_CLIENT_ID: o.clientId,
        AWS_ACCESS_KEY_ID: 'AKIAIOSFODNN7EXAMPLE',
        AWS_SECRET_ACCESS_KEY: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
        ...(o.sessionToken ? { AWS_SESSION_TOKEN: o.sessionToken } : {}),
        AWS_DEFAULT_REGION: o.region ?? 'us-west-2',
        AWS_CONFIG_FILE: '/dev/null',
        AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
        ...o.env,
      },
      timeout: 60_000,
    });
    return 0;
  } catch (e) {
    return (e as { code: number }).code;
  }
}
