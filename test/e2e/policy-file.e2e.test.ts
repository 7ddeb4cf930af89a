/**
 * --policy-file and the policy state against a hostile host, end to end: the built CLI running
 * as root (as the tests do), another user (nobody, through setpriv) planting links in a shared
 * sticky directory, directories others can write, devices and full disks as the policy path,
 * and a flood of distinct calls against the state's byte budget.
 */
import { execFileSync, spawn } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { CLI, startBridge, type BridgeProcess } from '../helpers/bridge-process.js';
import { readCapture } from '../helpers/captures.js';
import { getStats, waitStats } from '../helpers/stats.js';
import { findTool } from '../helpers/tools.js';
import { mountTmpfs, tmpfsUnavailable, type Tmpfs } from '../helpers/tmpfs.js';

const capture = readCapture('js_v2_sequential');
const ATTEMPT = JSON.parse(capture[0]!.raw) as Record<string, unknown>;
const CALL = JSON.parse(capture[1]!.raw) as Record<string, unknown>;
if (ATTEMPT['Type'] !== 'ApiCallAttempt' || CALL['Type'] !== 'ApiCall') throw new Error('capture changed: expected an attempt then its call');

/** Call i of `client` on `api`: the captured pair, 100 ms apart from the previous one. */
function pair(i: number, client: string, api = CALL['Api'] as string): Buffer[] {
  const shift = i * 100;
  const attempt = { ...ATTEMPT, ClientId: client, Api: api, XAmznRequestId: `pf-${i}`, Timestamp: (ATTEMPT['Timestamp'] as number) + shift };
  const call = { ...CALL, ClientId: client, Api: api, Timestamp: (CALL['Timestamp'] as number) + shift };
  return [Buffer.from(JSON.stringify(attempt)), Buffer.from(JSON.stringify(call))];
}

let udp: Socket;
async function send(port: number, datagrams: Buffer[]): Promise<void> {
  for (let i = 0; i < datagrams.length; i++) {
    await new Promise<void>((res, rej) => udp.send(datagrams[i]!, port, '127.0.0.1', (e) => (e ? rej(e) : res())));
    // At most about 20,000 a second: the kernel buffer, not the bridge, would lose them faster on a busy machine.
    if (i % 100 === 99) await new Promise((r) => setTimeout(r, 5));
  }
}

const SETPRIV = findTool('setpriv');
/** Runs a command as nobody:nogroup (Debian's setpriv), as another local user would. */
const asNobody = (cmd: string, args: string[]) => execFileSync(SETPRIV!, ['--reuid=nobody', '--regid=nogroup', '--clear-groups', cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
const isRoot = userInfo().uid === 0;

/** Runs the CLI until it exits (a start that must be refused); kills it after 20 s. */
function runUntilExit(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, '--listen', '127.0.0.1:0', '--admin', 'off', '--no-ui', ...args], { stdio: ['ignore', 'ignore', 'pipe'], env: { PATH: process.env['PATH'] ?? '', ...NO_EXPORT } });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const t = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('exit', (code) => {
      clearTimeout(t);
      resolve({ code, stderr });
    });
  });
}

/** Nothing to export to: the tests look at the policy side only, and the stop does not wait for a collector. */
const NO_EXPORT = { OTEL_TRACES_EXPORTER: 'none', OTEL_METRICS_EXPORTER: 'none' };

const waitLog = async (b: BridgeProcess, pred: (l: Record<string, unknown>) => boolean, what: string) => {
  const end = Date.now() + 20_000;
  while (!b.logs.some(pred)) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}:\n${b.stderr().slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
};

beforeAll(() => {
  udp = createSocket('udp4');
});
afterAll(() => udp.close());

describe.skipIf(!isRoot || !SETPRIV)('a shared sticky directory: another user plants links (the bridge runs as root)', () => {
  let shared: string;
  let vault: string;
  let bridge: BridgeProcess | undefined;
  beforeEach(() => {
    // Like /tmp: world-writable and sticky, owned by root.
    shared = mkdtempSync(join(tmpdir(), 'csm-pf-shared-'));
    chmodSync(shared, 0o1777);
    // Root's own files elsewhere, which nobody must be able to make the bridge overwrite.
    vault = mkdtempSync(join(tmpdir(), 'csm-pf-vault-'));
    writeFileSync(join(vault, 'secret'), 'root only\n', { mode: 0o600 });
    writeFileSync(join(vault, 'other'), 'root only too\n', { mode: 0o600 });
  });
  afterEach(async () => {
    await bridge?.stop('SIGKILL');
    bridge = undefined;
    rmSync(shared, { recursive: true, force: true });
    rmSync(vault, { recursive: true, force: true });
  });

  it('links at the old temporary name and at the policy path: the targets are untouched, the file is written as a regular file', async () => {
    const file = join(shared, 'policy.json');
    bridge = await startBridge(['--policy-file', file, '--policy-write-delay-ms', '600000', '--no-ui'], NO_EXPORT);
    // What the old code wrote through: `${path}.tmp-${pid}`, predictable from the pid.
    asNobody('ln', ['-s', join(vault, 'secret'), `${file}.tmp-${bridge.child.pid}`]);
    asNobody('ln', ['-s', join(vault, 'other'), file]);
    expect(lstatSync(file).isSymbolicLink()).toBe(true);
    await send(bridge.udpPort, pair(0, 'planted'));
    await waitStats(bridge, (s) => s.policy.observed >= 1, 'the call observed');
    bridge.child.kill('SIGHUP');
    await waitLog(bridge, (l) => typeof l['msg'] === 'string' && /policy file/.test(l['msg']), 'the SIGHUP write');
    expect(readFileSync(join(vault, 'secret'), 'utf8')).toBe('root only\n');
    expect(readFileSync(join(vault, 'other'), 'utf8')).toBe('root only too\n');
    expect(bridge.logs.map((l) => l['msg'])).toContain('policy file written (SIGHUP)');
    const st = lstatSync(file);
    expect(st.isFile()).toBe(true);
    expect(st.mode & 0o777).toBe(0o600);
    // (Labelled with the sending program when process identity finds it.)
    expect(Object.keys(JSON.parse(readFileSync(file, 'utf8')).policies)).toEqual([expect.stringMatching(/^planted( \[.*\])?$/)]);
    expect(await bridge.stop('SIGTERM')).toBe(0);
    // Only the file and nobody's dangling link at the old name: no temporary file left.
    expect(readdirSync(shared).sort()).toEqual(['policy.json', `policy.json.tmp-${bridge.child.pid}`]);
  });

  it('a link planted at the policy path before the start is refused (exit 2), its target untouched', async () => {
    const file = join(shared, 'policy.json');
    asNobody('ln', ['-s', join(vault, 'secret'), file]);
    const r = await runUntilExit(['--policy-file', file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`the policy file ${file} is a symbolic link`);
    expect(readFileSync(join(vault, 'secret'), 'utf8')).toBe('root only\n');
  });
});

describe('policy paths the bridge refuses at start (exit 2, saying what to fix)', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'csm-pf-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('a directory others can write that is not sticky', async () => {
    const open = join(dir, 'open');
    mkdirSync(open);
    chmodSync(open, 0o777);
    const r = await runUntilExit(['--policy-file', join(open, 'policy.json')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/which other users can write and which is not sticky.*chmod go-w .*chmod \+t/);
    expect(readdirSync(open)).toEqual([]);
  });

  it.skipIf(!isRoot)('a directory another user owns', async () => {
    const theirs = join(dir, 'theirs');
    mkdirSync(theirs, { mode: 0o755 });
    chownSync(theirs, 65534, 65534);
    const r = await runUntilExit(['--policy-file', join(theirs, 'policy.json')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/owned by another user \(uid 65534\)/);
  });

  it('/dev/zero: not a regular file, refused before anything is read', async () => {
    const r = await runUntilExit(['--policy-file', '/dev/zero']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('the policy file /dev/zero is not a regular file');
  });
});

describe.skipIf(tmpfsUnavailable !== undefined)(`a policy file that cannot be written (a full tmpfs)${tmpfsUnavailable ? `: skipped, ${tmpfsUnavailable}` : ''}`, () => {
  let fs: Tmpfs;
  let bridge: BridgeProcess | undefined;
  beforeEach(() => {
    fs = mountTmpfs(64);
    // Fill it: every block taken.
    try {
      for (let i = 0; ; i++) writeFileSync(join(fs.dir, `filler-${i}`), Buffer.alloc(16 * 1024));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
    }
  });
  afterEach(async () => {
    await bridge?.stop('SIGKILL');
    bridge = undefined;
    fs.unmount();
  });

  it('SIGHUP says the write failed, never that it was written; a failed write at shutdown is logged as an error', async () => {
    const file = join(fs.dir, 'policy.json');
    bridge = await startBridge(['--policy-file', file, '--policy-write-delay-ms', '600000', '--no-ui'], NO_EXPORT);
    await send(bridge.udpPort, pair(0, 'full-disk'));
    await waitStats(bridge, (s) => s.policy.observed >= 1, 'the call observed');
    bridge.child.kill('SIGHUP');
    await waitLog(bridge, (l) => String(l['msg']).startsWith('SIGHUP: the policy file was not written'), 'the SIGHUP failure');
    // The next line the SIGHUP could add comes right after; give it the turn it would take.
    await getStats(bridge);
    expect(bridge.logs.filter((l) => /^policy file (written|unchanged)/.test(String(l['msg'])))).toEqual([]);
    expect((await getStats(bridge)).policy.fileErrors).toBe(1);
    expect(await bridge.stop('SIGTERM')).toBe(0);
    const atStop = bridge.logs.find((l) => /could not write the policy file at shutdown/.test(String(l['msg'])));
    expect(atStop, bridge.stderr().slice(-2000)).toMatchObject({ level: 'error', file, error: expect.stringMatching(/ENOSPC/) });
    expect(existsSync(file)).toBe(false);
    expect(readdirSync(fs.dir).filter((f) => !f.startsWith('filler-'))).toEqual([]);
  });
});

describe('a flood of distinct calls against the policy state budget', () => {
  let bridge: BridgeProcess | undefined;
  afterEach(async () => {
    await bridge?.stop('SIGKILL');
    bridge = undefined;
  });

  it('the state stops at its budget (1/16 of the memory ceiling), every refusal counted; 8 concurrent GET /policy get one answer', async () => {
    // 128 MiB ceiling: an 8 MiB budget, filled by about 10,000 distinct 240-character Apis.
    bridge = await startBridge(['--memory-ceiling-mb', '128', '--no-ui'], NO_EXPORT);
    const n = 14_000;
    const datagrams: Buffer[] = [];
    for (let i = 0; i < n; i++) datagrams.push(...pair(i, `flood-${i % 50}`, `Op${i}${'x'.repeat(240)}`));
    await send(bridge.udpPort, datagrams);
    const s = await waitStats(
      bridge,
      (st) => st.datagrams.received + st.datagrams.kernelDropped >= 2 * n && st.correlation.pendingCalls === 0,
      'the flood observed',
    );
    const p = s.policy;
    expect(p.maxStateBytes).toBe(8 * 1024 * 1024);
    expect(p.stateBytes).toBeLessThanOrEqual(p.maxStateBytes);
    expect(p.droppedOverBudget).toBeGreaterThan(0);
    expect(p.droppedOverBudget).toBe(p.droppedSubjects + p.droppedCalls + p.droppedScopes + p.droppedDenials);
    const answers = await Promise.all(Array.from({ length: 8 }, async () => (await fetch(`${bridge!.adminUrl}/policy`)).json() as Promise<any>));
    for (const a of answers) {
      expect(a.clients.length).toBe(50);
      expect(a.clients).toEqual(answers[0].clients);
    }
    // Each call its own Api: kept as an (unmapped) call of its client, or counted as dropped.
    const kept = answers[0].clients.reduce((sum: number, c: any) => sum + c.unmapped.length, 0);
    expect(kept).toBeGreaterThan(1_000);
    expect(p.droppedCalls).toBeGreaterThan(0);
    expect(kept + p.droppedCalls).toBeLessThanOrEqual(p.observed);
    const after = await getStats(bridge);
    expect(after.policy.reportBytes).toBeGreaterThan(0);
    expect(after.policy.reportBytes).toBeLessThanOrEqual(after.policy.maxStateBytes);
    expect(await bridge.stop('SIGTERM')).toBe(0);
  });
});
