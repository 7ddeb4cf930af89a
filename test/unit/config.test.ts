import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, helpText, loadConfig } from '../../src/config/load.js';
import { OPTIONS } from '../../src/config/schema.js';
import { ROOT } from '../helpers/bridge-process.js';

const EXAMPLE = join(ROOT, 'config', 'aws-csm-bridge.example.yaml');
const run = (argv: string[], env: NodeJS.ProcessEnv = {}) => {
  const c = loadConfig(argv, env);
  if (c.kind !== 'run') throw new Error(c.kind);
  return c.config;
};

describe('config', () => {
  it('the example file documents every key and, as shipped, means the defaults', () => {
    const text = readFileSync(EXAMPLE, 'utf8');
    for (const key of Object.keys(OPTIONS)) expect(text, key).toMatch(new RegExp(`^(# )?${key}:`, 'm'));
    expect(run(['--config', EXAMPLE])).toEqual(run([]));
  });

  it('flags > environment > file > defaults', () => {
    const file = ['--config', EXAMPLE];
    expect(run(file).callHoldMs).toBe(3000);
    expect(run(file, { AWS_CSM_BRIDGE_CALL_HOLD_MS: '100' }).callHoldMs).toBe(100);
    expect(run([...file, '--call-hold-ms', '7'], { AWS_CSM_BRIDGE_CALL_HOLD_MS: '100' }).callHoldMs).toBe(7);
    expect(run(['--call-hold-ms=8']).callHoldMs).toBe(8);
  });

  it('AWS_CSM_HOST / AWS_CSM_PORT, the SDK variables, set the listen address', () => {
    expect(run([], { AWS_CSM_PORT: '4000' }).listen).toEqual(['127.0.0.1:4000']);
    expect(run([], { AWS_CSM_HOST: '::1' }).listen).toEqual(['[::1]:31000']);
    expect(run(['--listen', '0.0.0.0:1', '--allow-any-source'], { AWS_CSM_PORT: '4000' }).listen).toEqual(['0.0.0.0:1']);
  });

  it('errors name the key, the source, the value and what is allowed', () => {
    expect(() => run(['--access-key', 'plain'])).toThrow(ConfigError);
    expect(() => run(['--access-key', 'plain'])).toThrow(/accessKey \(--access-key: got "plain"\): .*"drop"\|"suffix"\|"hash"/);
    expect(() => run(['--listen'])).toThrow(/--listen needs a value/);
    expect(() => run(['--max-clients', '0'])).toThrow(/maxClients .*got 0/);
  });

  it('--help shows every flag', () => {
    const h = helpText('9.9.9');
    for (const key of Object.keys(OPTIONS)) expect(h).toMatch(new RegExp(`^  --${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}( \\S+)?$`, 'm'));
  });

  it('durations and sizes take a unit, in flags, variables and the file; a value of the wrong type says what the setting takes', () => {
    expect(run(['--attempt-hold-ms', '5s']).attemptHoldMs).toBe(5000);
    expect(run(['--attempt-hold-ms=1.5s', '--call-hold-ms', '250ms']).attemptHoldMs).toBe(1500);
    expect(run([], { AWS_CSM_BRIDGE_ATTEMPT_HOLD_MS: '2m', AWS_CSM_BRIDGE_SPOOL_MAX_BYTES: '8MiB' })).toMatchObject({ attemptHoldMs: 120_000, spoolMaxBytes: 8 * 1024 * 1024 });
    expect(run(['--attempt-hold-ms', '5000']).attemptHoldMs).toBe(5000);
    const dir = mkdtempSync(join(tmpdir(), 'csm-units-'));
    try {
      writeFileSync(join(dir, 'c.yaml'), 'attemptHoldMs: 5s\nmaxPending: "7"\n');
      expect(run(['--config', join(dir, 'c.yaml')])).toMatchObject({ attemptHoldMs: 5000, maxPending: 7 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(() => run(['--attempt-hold-ms', '5x'])).toThrow(/attemptHoldMs \(--attempt-hold-ms: got "5x"\): takes milliseconds as a whole number, e\.g\. 5000/);
    expect(() => run(['--attempt-hold-ms', '1.0001s'])).toThrow(/takes milliseconds/);
    expect(() => run(['--spool-max-bytes', '8MB'])).toThrow(/takes bytes as a whole number, e\.g\. 65536, or with a unit: 64KiB/);
    expect(() => run(['--allow-any-source', 'maybe'])).toThrow(/allowAnySource .*takes true or false/);
  });
});
