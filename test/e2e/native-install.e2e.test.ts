/**
 * The install step as `npm ci` runs it (package.json's install script, through the real npm) in
 * a scratch copy of the native sources: quiet when the recvmmsg receiver builds, one line with
 * the reason when the toolchain is missing, and the install never fails because of it.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/bridge-process.js';
import { findTool } from '../helpers/tools.js';

const NPM = findTool('npm');
const TOOLCHAIN = ['make', 'g++', 'python3'].every((t) => spawnSync('sh', ['-c', `command -v ${t}`]).status === 0);
const installScript = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: { install: string } }).scripts.install;

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A scratch package with the project's install script and what it builds; `npm run-script install` there. */
function runInstall(path: string): { status: number | null; lines: string[]; dir: string } {
  const dir = mkdtempSync(join(tmpdir(), 'csm-install-'));
  dirs.push(dir);
  for (const f of ['binding.gyp', 'native', 'scripts/build-native.mjs']) cpSync(join(ROOT, f), join(dir, f), { recursive: true });
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'install-check', version: '1.0.0', private: true, scripts: { install: installScript } }));
  // npm itself, run by this node, whatever PATH says (the no-toolchain case has nearly nothing on it).
  const npmCli = join(realpathSync(NPM!), '..', '..', 'bin', 'npm-cli.js');
  const r = spawnSync(process.execPath, [existsSync(npmCli) ? npmCli : realpathSync(NPM!), 'run-script', 'install'], {
    cwd: dir,
    env: { PATH: path, HOME: process.env['HOME'] ?? dir, npm_config_update_notifier: 'false' },
    encoding: 'utf8',
    timeout: 120_000,
  });
  // npm's own banner ("> install-check@1.0.0 install", "> <the script>") and blank lines are not the script's.
  const lines = `${r.stdout}${r.stderr}`.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('> '));
  return { status: r.status, lines, dir };
}

describe.skipIf(!NPM)('npm install step (package.json install script, real npm, real node-gyp)', () => {
  it.skipIf(!TOOLCHAIN)('with g++, make and python3: builds the receiver and prints nothing', () => {
    const r = runInstall(process.env['PATH'] ?? '');
    expect(r.status).toBe(0);
    expect(r.lines).toEqual([]);
    expect(existsSync(join(r.dir, 'build', 'Release', 'udp_batch.node'))).toBe(true);
  }, 180_000);

  it('without the toolchain: one line with the reason, and the install succeeds', () => {
    // Only node and sh (npm runs scripts with sh): no python3, make or compiler.
    const bin = mkdtempSync(join(tmpdir(), 'csm-install-bin-'));
    dirs.push(bin);
    mkdirSync(bin, { recursive: true });
    symlinkSync(process.execPath, join(bin, 'node'));
    symlinkSync('/bin/sh', join(bin, 'sh'));
    const r = runInstall(bin);
    expect(r.status).toBe(0);
    expect(r.lines).toHaveLength(1);
    expect(r.lines[0]).toMatch(/^aws-csm-bridge: the recvmmsg receiver was not built \(.*Python.*; it needs g\+\+, make and python3, details in build\/node-gyp\.log\); the bridge will receive with node:dgram$/);
    expect(existsSync(join(r.dir, 'build', 'Release', 'udp_batch.node'))).toBe(false);
  }, 180_000);
});
