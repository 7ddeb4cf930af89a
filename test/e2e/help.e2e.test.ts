/**
 * --help and the messages of a mistyped command line, as a user meets them (issue 18.8): the
 * real CLI. --help fits an 80-column terminal, puts what a newcomer needs first, names each
 * value by what it is; a typo gets the nearest flag or YAML key, not a list of all of them;
 * each error is printed once; and every one of them exits 2.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { GROUPS, OPTIONS } from '../../src/config/schema.js';
import { OTEL_VARIABLES } from '../../src/config/otel-env.js';
import { runCli } from '../helpers/bridge-process.js';

const COLUMNS = 80;
const flag = (k: string) => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
const dir = mkdtempSync(join(tmpdir(), 'csm-help-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('--help', () => {
  it('fits 80 columns and shows the settings a newcomer needs first, in full, then every other group by its flags', async () => {
    const r = await runCli(['--help']);
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines.filter((l) => l.length > COLUMNS)).toEqual([]);
    // Was 246 lines; the full reference is --help all.
    expect(lines.length).toBeLessThanOrEqual(120);
    const titles = lines.filter((l) => /^\S.*:$/.test(l) && l.includes('(--help '));
    expect(titles.map((t) => t.replace(/ \(--help \w+\):$/, ''))).toEqual([...Object.values(GROUPS).map((g) => g.title), 'OpenTelemetry environment variables']);
    const start = r.stdout.slice(r.stdout.indexOf('Getting started'), r.stdout.indexOf(titles[1]!));
    for (const s of ['--listen HOST:PORT\n', '--otlp-endpoint URL\n', '--otlp-protocol http/protobuf|http/json|grpc\n', '--admin HOST:PORT|off\n', '--default-service-name NAME\n']) {
      expect(start).toContain(s);
    }
    expect(start).toMatch(/AWS_CSM_CLIENT_ID=my-app/);
    expect(start).toMatch(/OTEL_TRACES_EXPORTER=console/);
    // Every flag is there, each with what its value is: never VALUE.
    for (const k of Object.keys(OPTIONS)) expect(r.stdout, k).toMatch(new RegExp(`  ${flag(k)}(\\s|$)`, 'm'));
    expect(r.stdout).not.toMatch(/--[a-z][a-z-]* VALUE/);
    expect(r.stdout).toContain('--attempt-hold-ms MS');
    expect(r.stdout).toContain('--spool-max-bytes BYTES');
  });

  it('--help all explains every setting and variable within 80 columns; --help GROUP one group', async () => {
    const all = await runCli(['--help', 'all']);
    expect(all.code).toBe(0);
    expect(all.stdout.split('\n').filter((l) => l.length > COLUMNS)).toEqual([]);
    for (const [k, o] of Object.entries(OPTIONS)) {
      // The flag line, then its description (its first words) indented under it.
      const first = o.help.split(' ').slice(0, 3).join(' ');
      expect(all.stdout, k).toMatch(new RegExp(`^  ${flag(k)}( \\S+)?\\n      ${first.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`, 'm'));
    }
    for (const { name } of OTEL_VARIABLES) expect(all.stdout, name).toContain(`  ${name}\n`);
    expect(all.stdout).toContain('  --attempt-hold-ms MS\n');
    expect(all.stdout).toMatch(/Default 300000 \(5m\)/);
    for (const g of [...Object.keys(GROUPS), 'otel']) {
      const one = await runCli([`--help=${g}`]);
      expect([g, one.code]).toEqual([g, 0]);
      expect(one.stdout.split('\n').filter((l) => l.length > COLUMNS)).toEqual([]);
    }
    const corr = await runCli(['--help', 'correlation']);
    expect(corr.stdout).toContain('--attempt-hold-ms MS');
    expect(corr.stdout).not.toContain('--listen');
  });
});

describe('mistakes: the nearest flag or key, the type a value takes, each error once; exit 2', () => {
  it('--lisen: did you mean --listen? (not a list of every flag)', async () => {
    const r = await runCli(['--lisen', '127.0.0.1:31000']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('unknown argument "--lisen". Did you mean --listen?');
    expect(r.stderr).not.toContain('--policy-include-possible');
    const camel = await runCli(['--attemptHoldMs', '5000']);
    expect([camel.code, camel.stderr]).toEqual([2, expect.stringContaining('Did you mean --attempt-hold-ms?')]);
    const nothingNear = await runCli(['--frobnicate']);
    expect([nothingNear.code, nothingNear.stderr]).toEqual([2, expect.not.stringContaining('Did you mean')]);
    const command = await runCli(['recrod', 'x.jsonl']);
    expect([command.code, command.stderr]).toEqual([2, expect.stringContaining('Did you mean record?')]);
  });

  it('YAML admn: did you mean admin? (not the 44 keys)', async () => {
    const file = join(dir, 'typo.yaml');
    writeFileSync(file, 'admn: "off"\n');
    const r = await runCli(['--config', file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('unknown key "admn". Did you mean admin?');
    expect(r.stderr).not.toContain('policyIncludePossible');
  });

  it('--attempt-hold-ms 5x says it takes milliseconds (5s is 5000: see the unit test)', async () => {
    const r = await runCli(['--attempt-hold-ms', '5x']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('attemptHoldMs (--attempt-hold-ms: got "5x"): takes milliseconds as a whole number, e.g. 5000');
    expect(r.stderr).not.toContain('expected number, received string');
    const n = await runCli(['--max-pending', 'lots']);
    expect([n.code, n.stderr]).toEqual([2, expect.stringContaining('takes a whole number, e.g. 100000')]);
  });

  it('OTEL_EXPORTER_OTLP_ENDPOINT=localhost:4318 is reported once (it is read for both signals)', async () => {
    const r = await runCli(['--admin', 'off', '--listen', '127.0.0.1:0', '--no-ui'], { OTEL_EXPORTER_OTLP_ENDPOINT: 'localhost:4318' });
    expect(r.code).toBe(2);
    expect(r.stderr.split('OTEL_EXPORTER_OTLP_ENDPOINT="localhost:4318"').length - 1).toBe(1);
  });
});
