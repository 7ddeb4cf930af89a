import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, startBridge, type BridgeProcess } from '../helpers/bridge-process.js';
import { waitStats } from '../helpers/stats.js';
import { DEFAULT_CONFIG } from '../../src/config/schema.js';
import { pipelineOptions } from '../../src/pipeline.js';
import { decodeCapture, FIXTURES, readCapture, readTruth, scenarios } from '../helpers/captures.js';
import { replay } from '../helpers/correlation.js';
import { startFakeS3, type FakeS3 } from '../helpers/fake-s3.js';
import { startOtlpSink, type OtlpSink, type SinkSpan } from '../helpers/otlp-sink.js';
import { freePort, sendUdp } from '../helpers/tools.js';

const run = promisify(execFile);
const CLIENT = join(import.meta.dirname, 'clients', 'js-v2-client.cjs');
const SESSION_TOKEN = `IQoJb3JpZ2luX2VjE-record-token-${process.pid}-never-write-me`;
const dir = mkdtempSync(join(tmpdir(), 'csm-replay-e2e-'));

/** A span tree without what legitimately differs between runs: ids and timestamps. */
interface Tree {
  name: string;
  kind: number;
  status: { code: number; message: string };
  service: unknown;
  attributes: Record<string, unknown>;
  events: { name: string; attributes: Record<string, unknown> }[];
  children: Tree[];
}
function trees(spans: SinkSpan[]): Tree[] {
  const shape = (s: SinkSpan): Tree => ({
    name: s.name,
    kind: s.kind,
    status: s.status,
    service: s.resource['service.name'],
    attributes: s.attributes,
    events: s.events.map((e) => ({ name: e.name, attributes: e.attributes })),
    // Children in start order, as the SDK reported them.
    children: spans
      .filter((c) => c.parentSpanId === s.spanId)
      .sort((a, b) => Number(a.startTimeUnixNano - b.startTimeUnixNano))
      .map(shape),
  });
  return spans
    .filter((s) => s.parentSpanId === '')
    .map(shape)
    .sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1));
}

describe('record a real run, replay it: the same span trees', () => {
  let live: OtlpSink;
  let replayed: OtlpSink;
  let s3: FakeS3;
  let bridge: BridgeProcess;
  let file: string;
  let stopped: Record<string, any>;
  let replay: { code: number | null; stdout: string; stderr: string };

  beforeAll(async () => {
    live = await startOtlpSink();
    replayed = await startOtlpSink();
    s3 = await startFakeS3({ 'GET /': [503, 200], 'PUT /taken': [409], 'HEAD /b1/missing': [404] });
    file = join(dir, 'run.jsonl');
    bridge = await startBridge(['record', file, '--export-delay-ms', '200', '--attempt-hold-ms', '600000'], {
      OTEL_EXPORTER_OTLP_ENDPOINT: live.url,
    });
    expect(bridge.started['recording']).toBe(file);
    await run(process.execPath, [CLIENT, s3.url, `http://127.0.0.1:${await freePort()}`], {
      env: {
        PATH: process.env['PATH'] ?? '',
        AWS_CSM_ENABLED: 'true',
        AWS_CSM_PORT: String(bridge.udpPort),
        AWS_CSM_CLIENT_ID: 'record-e2e',
        AWS_ACCESS_KEY_ID: 'ASIAE2ETESTKEY987654',
        AWS_SECRET_ACCESS_KEY: 'e2e-secret-key-never-export',
        AWS_SESSION_TOKEN: SESSION_TOKEN,
        AWS_SDK_JS_SUPPRESS_MAINTENANCE_MODE_MESSAGE: '1',
      },
      timeout: 30_000,
    });
    // Rejected garbage is recorded (and rejected again on replay); a token-bearing non-JSON datagram is not.
    await sendUdp(bridge.udpPort, 'this is not json');
    await sendUdp(bridge.udpPort, `{"SessionToken":"${SESSION_TOKEN}"`);
    // An attempt whose call never comes: an orphan at shutdown, live and replayed.
    await sendUdp(
      bridge.udpPort,
      JSON.stringify({ Version: 1, Type: 'ApiCallAttempt', ClientId: 'record-e2e', Service: 'SQS', Api: 'SendMessage', Timestamp: Date.now(), AttemptLatency: 12, HttpStatusCode: 200, SessionToken: SESSION_TOKEN }),
    );
    await waitStats(bridge, (s) => s.datagrams.received >= 14, 'every datagram read', 5_000);
    expect(await bridge.stop('SIGTERM')).toBe(0);
    stopped = bridge.logs.find((l) => l['msg'] === 'stopped') as Record<string, any>;
    replay = await runCli(['replay', file, '--speed', '0', '--export-delay-ms', '100'], { OTEL_EXPORTER_OTLP_ENDPOINT: replayed.url });
  });

  afterAll(async () => {
    await bridge?.stop('SIGKILL');
    await s3?.close();
    await live?.close();
    await replayed?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the recording holds every datagram but the unsafe one, without the SessionToken', () => {
    const text = readFileSync(file, 'utf8');
    expect(text).not.toContain(SESSION_TOKEN);
    expect(text).not.toMatch(/session_?token/i);
    const lines = text.trim().split('\n').map((l) => JSON.parse(l) as { recv_ns: number; src: string; raw: string });
    const received = stopped['stats'].datagrams.received as number;
    expect(received).toBe(14); // 7 attempts + 4 calls from the client, 3 sent here
    expect(stopped['recording']).toMatchObject({ written: received - 1, skippedUnsafe: 1, skippedFull: 0 });
    expect(lines).toHaveLength(received - 1);
    expect(stopped['recording'].redacted).toBeGreaterThanOrEqual(8); // JS v2 puts the token in every attempt
    for (const l of lines) expect(l.src).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(lines.some((l) => l.raw === 'this is not json')).toBe(true);
  });

  it('replay exits 0 after flushing, having fed every line', () => {
    expect(replay.code, replay.stderr).toBe(0);
    const done = replay.stderr.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, any>).find((l) => l['msg'] === 'replay finished')!;
    expect(done).toMatchObject({ fed: 13, badLines: 0, flushed: true });
    expect(done['stats'].datagrams.rejected.malformed_json).toBe(1);
    expect(replayed.errors).toEqual([]);
  });

  it('the replayed span trees equal the live ones (names, parents, attributes, status, events)', () => {
    const a = trees(live.spans);
    const b = trees(replayed.spans);
    expect(a.map((t) => t.name).sort()).toEqual(['S3.CreateBucket', 'S3.HeadObject', 'S3.ListBuckets', 'S3.ListBuckets', 'SQS.SendMessage attempt']);
    expect(a.reduce((n, t) => n + t.children.length, 0)).toBe(7);
    expect(b).toEqual(a);
  });

  it('gaps are kept, divided by --speed', async () => {
    const sink = await startOtlpSink();
    try {
      const lines = readCapture('cli_connrefused');
      const spanS = (lines[lines.length - 1]!.recv_ns - lines[0]!.recv_ns) / 1e9;
      expect(spanS).toBeGreaterThan(20);
      const t0 = performance.now();
      const r = await runCli(['replay', join(FIXTURES, 'cli_connrefused.jsonl'), '--speed', '10', '--export-delay-ms', '100'], { OTEL_EXPORTER_OTLP_ENDPOINT: sink.url });
      const took = (performance.now() - t0) / 1000;
      expect(r.code, r.stderr).toBe(0);
      expect(took).toBeGreaterThan((spanS / 10) * 0.9);
      expect(sink.spans).toHaveLength(lines.length);
    } finally {
      await sink.close();
    }
  });
});

describe('replay of every capture in test/fixtures', () => {
  it.each(scenarios())('%s: one span per datagram; roots = calls + orphan attempts (as correlation leaves them in-process)', async (scenario) => {
    const sink = await startOtlpSink();
    try {
      const r = await runCli(['replay', join(FIXTURES, `${scenario}.jsonl`), '--speed', '0', '--export-delay-ms', '100'], {
        OTEL_EXPORTER_OTLP_ENDPOINT: sink.url,
      });
      expect(r.code, r.stderr).toBe(0);
      const truth = readTruth(scenario);
      const lines = readCapture(scenario).length;
      const calls = truth.filter((c) => c.api_call_line !== null).length;
      // The truth's orphans, plus those a storm leaves (a call exported before the twin whose attempt it took:
      // docs/correlation.md "What correlation can and cannot know"); test/unit/correlate.test.ts measures both.
      const orphans = replay(decodeCapture(scenario).map((d) => d.event), pipelineOptions(DEFAULT_CONFIG, '').correlator).out.filter((c) => c.kind === 'orphan').length;
      expect(sink.errors).toEqual([]);
      expect(sink.spans).toHaveLength(lines);
      expect(sink.spans.filter((s) => s.parentSpanId === '')).toHaveLength(calls + orphans);
      expect(sink.spans.filter((s) => s.attributes['csm.orphan'] === true)).toHaveLength(orphans);
    } finally {
      await sink.close();
    }
  });
});
