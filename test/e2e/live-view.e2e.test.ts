import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI } from '../helpers/bridge-process.js';
import { shellQuote, Tmux } from '../helpers/tmux.js';
import { findTool, freePort, runAwsCli, startMoto, type Moto } from '../helpers/tools.js';

const AWS = findTool('aws');
const MOTO = findTool('moto_server');
const TMUX = findTool('tmux');
const tmux = TMUX ? new Tmux(TMUX, `csm-live-view-${process.pid}`) : undefined;
const waitScreen = (pred: (s: string) => boolean, timeoutMs?: number) => tmux!.waitScreen(pred, timeoutMs);

/**
 * A person's view of the bridge: the built CLI in a real terminal (tmux,
 * 160x50), no collector listening, real aws CLI calls against moto_server.
 * The admin listener is on, as by default, so the web view runs beside the terminal's.
 */
describe.skipIf(!AWS || !MOTO || !TMUX)('live view in a terminal (tmux) with real aws CLI calls', () => {
  let moto: Moto;
  let udpPort: number;
  let during = '';
  let after = '';
  let policyScreen = '';
  let narrow = '';
  /** The web view's rows (its first event) while `during` was on the terminal. */
  let webRows: { name: string; calls: number; errors: number }[] = [];
  let adminPort: number;
  const exits: Record<string, number> = {};

  const aws = async (name: string, args: string[]) => {
    exits[name] = await runAwsCli(AWS!, args, { csmPort: udpPort, clientId: 'live-e2e', endpoint: moto.url, region: 'us-east-1' });
  };

  beforeAll(async () => {
    moto = await startMoto(MOTO!);
    udpPort = await freePort();
    const closed = await freePort(); // nothing listens there: every export fails
    adminPort = await freePort();
    const cmd = [
      'env',
      `PATH=${process.env['PATH'] ?? ''}`,
      `OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:${closed}`,
      process.execPath,
      CLI,
      '--listen', `127.0.0.1:${udpPort}`,
      '--admin', `127.0.0.1:${adminPort}`,
      '--export-delay-ms', '200',
      '--metrics-interval-ms', '500',
      '--shutdown-timeout-ms', '3000',
    ]
      .map(shellQuote)
      .join(' ');
    // After the bridge exits, print its exit code and keep the pane open to be read.
    tmux!.start(`${cmd}; echo "EXIT=$?"; sleep 60`, 160, 50);
    await waitScreen((s) => s.includes('live view'));

    await aws('create-1', ['s3api', 'create-bucket', '--bucket', 'live-1']);
    await aws('create-2', ['s3api', 'create-bucket', '--bucket', 'live-2']);
    await aws('list', ['s3api', 'list-buckets']);
    await aws('head-missing', ['s3api', 'head-bucket', '--bucket', 'no-such-bucket']); // 404
    await aws('describe-missing', ['dynamodb', 'describe-table', '--table-name', 'nope']); // 400 ResourceNotFoundException
    during = await waitScreen((s) => /DynamoDB\.DescribeTable/.test(s) && /FAILING/.test(s) && /S3\.CreateBucket +2 /.test(s));
    webRows = await webViewRows(adminPort);

    // p: the selected application's IAM policy; p again: back to the calls.
    tmux!.keys('p');
    policyScreen = await waitScreen((s) => s.includes('IAM policy') && s.includes('s3:ListAllMyBuckets'));
    tmux!.keys('p');
    await waitScreen((s) => s.includes('SERVICE.API'));

    // The terminal shrinks to 80x24: the view redraws to fit it.
    tmux!.resize(80, 24);
    narrow = await waitScreen((s) => /^SERVICE\.API .*LAST ERROR *$/m.test(s) && !s.includes('P99'));
    tmux!.resize(160, 50);
    await waitScreen((s) => s.includes('P99 ms'));

    // Ctrl-C: the view closes, the bridge flushes and exits 0, the terminal is back.
    tmux!.keys('C-c');
    after = await waitScreen((s) => s.includes('EXIT='));
  }, 180_000);

  afterAll(async () => {
    tmux?.kill();
    await moto?.close();
  });

  it('the aws CLI calls ran as scripted', () => {
    expect(exits).toEqual({ 'create-1': 0, 'create-2': 0, list: 0, 'head-missing': 255, 'describe-missing': 255 });
  });

  it('shows one row per Service.Api with its calls and error %, sorted by calls', () => {
    const row = (name: string) => during.split('\n').find((l) => l.startsWith(`${name} `));
    const cols = (name: string) => row(name)?.trim().split(/\s+/) ?? [];
    // SERVICE.API CALLS CALLS/S P50 P95 P99 ERR% RETRIES THROTTLES LAST ERROR
    expect(cols('S3.CreateBucket').slice(0, 2), during).toEqual(['S3.CreateBucket', '2']);
    expect(cols('S3.CreateBucket')[6]).toBe('0.0');
    expect(cols('S3.ListBuckets').slice(0, 2)).toEqual(['S3.ListBuckets', '1']);
    expect(cols('S3.HeadBucket').slice(0, 2)).toEqual(['S3.HeadBucket', '1']);
    expect(cols('S3.HeadBucket')[6]).toBe('100.0');
    expect(cols('DynamoDB.DescribeTable')[6], during).toBe('100.0');
    expect(row('DynamoDB.DescribeTable')).toContain('ResourceNotFoundException');
    const order = during.split('\n').filter((l) => /^(S3|DynamoDB)\.\S+ +\d+ /.test(l)).map((l) => l.split(/\s+/)[0]);
    expect(order[0]).toBe('S3.CreateBucket');
    expect(order).toHaveLength(4);
  });

  it('the web view, open at the same time, shows the same rows as the terminal', () => {
    const terminal = during
      .split('\n')
      .filter((l) => /^(S3|DynamoDB)\.\S+ +\d+ /.test(l))
      .map((l) => l.trim().split(/\s+/))
      .map((c) => ({ name: c[0], calls: Number(c[1]), errPct: c[6] }));
    expect(terminal).toHaveLength(4);
    const web = Object.fromEntries(webRows.map((r) => [r.name, r]));
    for (const t of terminal) {
      expect(web[t.name!]?.calls, t.name).toBe(t.calls);
      expect(((100 * web[t.name!]!.errors) / web[t.name!]!.calls).toFixed(1), t.name).toBe(t.errPct);
    }
    expect(webRows.map((r) => r.name).sort()).toEqual(terminal.map((t) => t.name).sort());
  });

  it('at 80x24 the table fits: P50, P99 and CALLS/S go; ERR%, RETRIES, THROTTLES and LAST ERROR stay; the keys are on the last line', () => {
    const lines = narrow.replace(/\n$/, '').split('\n');
    expect(lines, narrow).toHaveLength(24);
    expect(lines.find((l) => l.startsWith('SERVICE.API'))?.trimEnd(), narrow).toMatch(/^SERVICE\.API +CALLS +P95 ms +ERR% +RETRIES +THROTTLES +LAST ERROR$/);
    const cols = (name: string) => lines.find((l) => l.startsWith(`${name} `))?.trim().split(/\s+/) ?? [];
    // SERVICE.API CALLS P95 ERR% RETRIES THROTTLES LAST ERROR (cut to the width)
    expect(cols('S3.CreateBucket').slice(0, 2), narrow).toEqual(['S3.CreateBucket', '2']);
    expect(cols('S3.CreateBucket').slice(3, 6)).toEqual(['0.0', '0', '0']);
    expect(cols('S3.HeadBucket').slice(3, 5)).toEqual(['100.0', '0']);
    const describe = cols('DynamoDB.DescribeTable');
    expect(describe.slice(3, 6), narrow).toEqual(['100.0', '0', '0']);
    expect(describe[6]).toMatch(/^ResourceNotF/);
    expect(lines[23]).toBe('keys: q quit   p IAM policy');
    // The header lines are cut to the width, not wrapped: the table starts where it did at 160 columns.
    expect(lines.findIndex((l) => l.startsWith('SERVICE.API'))).toBe(during.split('\n').findIndex((l) => l.startsWith('SERVICE.API')));
  });

  it('p shows the selected application\'s IAM policy', () => {
    expect(policyScreen).toMatch(/application live-e2e/);
    for (const a of ['s3:CreateBucket', 's3:ListAllMyBuckets', 's3:ListBucket', 'dynamodb:DescribeTable']) expect(policyScreen, policyScreen).toContain(`"${a}"`);
    expect(policyScreen).toContain('"Version": "2012-10-17"');
    expect(policyScreen.trimEnd().split('\n').pop()).toBe('keys: p back to calls   n next application   q quit');
  });

  it('shows the listen address, the target and that exports are failing, with the error', () => {
    expect(during).toContain(`127.0.0.1:${udpPort}`);
    expect(during).toMatch(/export +http:\/\/127\.0\.0\.1:\d+ .*FAILING/);
    expect(during).toMatch(/last export error .*(ECONNREFUSED|connect)/);
    expect(during).toMatch(/calls 5 /);
  });

  it('lists the newest failed calls below the table', () => {
    const tail = during.slice(during.indexOf('RECENT FAILED CALLS'));
    expect(during).toContain('RECENT FAILED CALLS');
    const failed = tail.split('\n').slice(1, 3).join('\n');
    expect(failed).toMatch(/DynamoDB\.DescribeTable \[live-e2e\] 400 ResourceNotFoundException/);
    expect(failed).toMatch(/S3\.HeadBucket \[live-e2e\] 404/);
    // Newest first.
    expect(failed.indexOf('DynamoDB')).toBeLessThan(failed.indexOf('S3.HeadBucket'));
  });

  it('no raw log lines over the view: failures are shown, not spammed', () => {
    expect(during).not.toContain('"level"');
    expect(during).not.toContain('{"time"');
    expect(during.trimEnd().split('\n').length).toBeLessThanOrEqual(50);
  });

  it('Ctrl-C restores the terminal and exits 0 after the flush', () => {
    expect(after).toContain('EXIT=0');
    expect(after).not.toContain('live view');
    expect(after).not.toContain('SERVICE.API');
    // Back on the normal screen, the stop is told in human lines (stop-report.ts), not JSON.
    expect(after).toMatch(/stopped in \d+\.\d s: 0 spans exported/);
    expect(after).not.toContain('{"');
  });
});

/** The Service.Api rows of the web view at 127.0.0.1:port: its first Server-Sent Event (init), then the stream is closed. */
async function webViewRows(port: number): Promise<{ name: string; calls: number; errors: number }[]> {
  const ctl = new AbortController();
  const res = await fetch(`http://127.0.0.1:${port}/web/events`, { signal: ctl.signal });
  const reader = res.body!.getReader();
  let text = '';
  try {
    for (let i = 0; i < 100 && !/^data: .*\n\n/m.test(text); i++) {
      const { value, done } = await reader.read();
      if (done) break;
      text += Buffer.from(value).toString();
    }
  } finally {
    ctl.abort();
  }
  const data = /^data: (.*)$/m.exec(text)?.[1];
  if (data === undefined) throw new Error(`no event from the web view: ${text.slice(0, 200)}`);
  return (JSON.parse(data) as { rows: { name: string; calls: number; errors: number }[] }).rows;
}
