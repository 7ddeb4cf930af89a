/**
 * The join of CSM calls with applications' spans, on real CSM captures and app spans in the
 * documented shapes of the Python (botocore), Java v1 and Ruby instrumentations
 * (../../../shared/app-trace-join.md §1; PyPI is not reachable here, so the Python side is a
 * fixture). App spans are encoded with the official .proto files (protobufjs) and decoded by the
 * bridge's own decoder; CSM datagrams go through the real correlator and translation; the join
 * stage runs with the shipped window and a clock that follows the capture.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG } from '../../src/config/schema.js';
import type { Correlated } from '../../src/correlate/types.js';
import type { CsmEvent } from '../../src/decode/types.js';
import { APP_SPAN_TTL_MS, AppSpanIndex, MAX_INDEXED_SPANS } from '../../src/join/app-span-index.js';
import type { AppSpan } from '../../src/join/app-span.js';
import { JoinStage, MAX_WAITING, newJoinCounts, TRIAL_WINDOWS, type JoinedCallSink } from '../../src/join/join-stage.js';
import type { JoinedTree } from '../../src/join/joined-tree.js';
import { DecodeError, decodeJsonRequest, decodeProtobufRequest } from '../../src/join/otlp-trace-decoder.js';
import { pipelineOptions } from '../../src/pipeline.js';
import { translate } from '../../src/translate/translate.js';
import type { Translation } from '../../src/translate/types.js';
import { fromTruth, jsonRequest, protobufRequest, truthCalls, type FixtureSpan, type Shape } from '../helpers/app-spans.js';
import { decodeCapture, readTruth } from '../helpers/captures.js';
import { replay } from '../helpers/correlation.js';

const OPTS = pipelineOptions(DEFAULT_CONFIG, '');
/** The app's BatchSpanProcessor delay (the SDKs' default), plus the Collector's batching. */
const APP_SPAN_DELAY_MS = 5_200;

interface Exported {
  t: Translation;
  joined?: JoinedTree;
}

/** Runs a capture through correlate → translate → join, with app spans arriving APP_SPAN_DELAY_MS after their call ends. */
function joinCapture(scenario: string, shape: Shape) {
  const decoded = decodeCapture(scenario);
  const lineOf = new Map<CsmEvent, number>(decoded.map((d) => [d.event, d.line]));
  const fixtures = fromTruth(shape, truthCalls(decoded, readTruth(scenario)));
  const { out } = replay(
    decoded.map((d) => d.event),
    OPTS.correlator,
  );
  let now = 0;
  const exported: Exported[] = [];
  const sink: JoinedCallSink = {
    write: (t) => exported.push({ t }),
    writeJoined: (t, _id, joined) => exported.push({ t, joined }),
  };
  const counts = newJoinCounts();
  const index = new AppSpanIndex(APP_SPAN_TTL_MS);
  const join = new JoinStage({ windowMs: DEFAULT_CONFIG.appJoinWindowMs, attemptKind: DEFAULT_CONFIG.appJoinAttemptKind }, index, sink, counts, () => now);
  // Two streams in time order: CSM calls as the correlator hands them on, app spans as the app exports them.
  const csm = out.map((c) => ({ at: emittedAt(c), c }));
  const app = fixtures.filter((f) => f.kind === 3).map((f) => ({ at: f.endMs + APP_SPAN_DELAY_MS, f }));
  const ruby = fixtures.filter((f) => f.kind !== 3);
  const timeline: { at: number; csm?: Correlated; app?: FixtureSpan }[] = [...csm.map((x) => ({ at: x.at, csm: x.c })), ...app.map((x) => ({ at: x.at, app: x.f }))];
  timeline.sort((a, b) => a.at - b.at);
  for (const ev of timeline) {
    now = Math.max(now, ev.at);
    join.expire(now);
    if (ev.csm) join.write(translate(ev.csm, OPTS.translate), undefined, ev.csm);
    else {
      // The app exports a call's spans together (Ruby: the CLIENT span and its attempt spans).
      const spans = [ev.app!, ...ruby.filter((r) => r.parentSpanId?.equals(ev.app!.spanId))];
      join.appSpans(decodeProtobufRequest(protobufRequest(spans)).spans);
    }
  }
  join.flush();
  return { exported, counts, fixtures, lineOf, out };
}

function emittedAt(c: Correlated): number {
  return c.kind === 'call' ? Math.max(c.call.receivedAt, ...c.attempts.map((a) => a.receivedAt)) : c.attempt.receivedAt;
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe('app spans: the decoder', () => {
  const span = (attrs: FixtureSpan['attributes'], kind = 3): FixtureSpan => ({
    traceId: Buffer.alloc(16, 1),
    spanId: Buffer.alloc(8, 2),
    name: 'S3.ListBuckets',
    kind,
    startMs: 1_700_000_000_000.5,
    endMs: 1_700_000_000_100,
    attributes: attrs,
  });

  it('keeps AWS SDK spans under every request-id spelling, in protobuf and JSON alike', () => {
    const spans = [
      span({ 'rpc.system': 'aws-api', 'aws.request_id': 'A1' }),
      span({ 'rpc.system.name': 'aws-api', 'aws.request.id': 'B1', 'aws.request.extended_id': 'B2' }),
      span({ 'rpc.system': 'aws-api', 'aws.requestId': 'C1' }, 4),
      span({ 'http.response.header.x-amzn-requestid': ['D1'] }, 3),
      span({ 'rpc.system': 'aws-api' }), // no id: cannot join
      span({ 'http.method': 'GET' }), // not an AWS call
    ];
    for (const decoded of [decodeProtobufRequest(protobufRequest(spans, 'shop')), decodeJsonRequest(jsonRequest(spans, 'shop'))]) {
      expect(decoded.total).toBe(6);
      expect(decoded.spans.map((s) => [s.ids, s.level])).toEqual([
        [['A1'], 'call'],
        [['B1', 'B2'], 'call'],
        [['C1'], 'call'],
        [['D1'], 'attempt'],
      ]);
      const s = decoded.spans[0]!;
      expect([hex(s.traceId), hex(s.spanId), s.name, s.kind, s.startMs, s.endMs]).toEqual(['01'.repeat(16), '02'.repeat(8), 'S3.ListBuckets', 3, 1_700_000_000_000.5, 1_700_000_000_100]);
      expect(s.resource.attributes['service.name']).toBe('shop');
    }
  });

  it("ignores the bridge's own spans (a Collector loop) and spans with invalid ids", () => {
    const own = decodeProtobufRequest(protobufRequest([span({ 'rpc.system': 'aws-api', 'aws.request_id': 'X' })], 'app', 'aws-csm-bridge'));
    expect([own.spans.length, own.ownSpans]).toEqual([0, 1]);
    const bad = decodeProtobufRequest(protobufRequest([{ ...span({ 'rpc.system': 'aws-api', 'aws.request_id': 'X' }), traceId: Buffer.alloc(16) }]));
    expect([bad.spans.length, bad.invalid]).toEqual([0, 1]);
  });

  it('property: any bytes or text decode or fail with a DecodeError, nothing else', () => {
    const valid = protobufRequest([span({ 'rpc.system': 'aws-api', 'aws.request_id': 'A1' })]);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), fc.integer({ min: 0, max: valid.length }), (noise, cut) => {
        for (const body of [noise, Buffer.concat([valid.subarray(0, cut), noise])]) {
          try {
            decodeProtobufRequest(body);
          } catch (e) {
            expect(e).toBeInstanceOf(DecodeError);
          }
        }
      }),
      { numRuns: 2_000 },
    );
    fc.assert(
      fc.property(fc.json(), (text) => {
        try {
          decodeJsonRequest(text);
        } catch (e) {
          expect(e).toBeInstanceOf(DecodeError);
        }
      }),
      { numRuns: 1_000 },
    );
  });
});

describe('app spans: the index', () => {
  const app = (id: string): AppSpan => ({
    traceId: new Uint8Array(16).fill(1),
    spanId: new Uint8Array(8).fill(2),
    parentSpanId: new Uint8Array(0),
    traceState: '',
    name: 'S3.ListBuckets',
    kind: 3,
    startMs: 0,
    endMs: 1,
    level: 'call',
    ids: [id],
    resource: { attributes: { 'service.name': 'a' }, bytes: 100 },
  });

  it('holds at most MAX_INDEXED_SPANS, refuses the excess (counted), forgets spans after the TTL', () => {
    const index = new AppSpanIndex(APP_SPAN_TTL_MS);
    for (let i = 0; i < MAX_INDEXED_SPANS + 10; i++) index.add(app(`id-${i}`), 0);
    expect(index.counts).toMatchObject({ indexed: MAX_INDEXED_SPANS, refusedFull: 10, held: MAX_INDEXED_SPANS });
    expect(index.take(['id-0'])?.ids).toEqual(['id-0']);
    expect(index.take(['id-0'])).toBeUndefined(); // joined once
    index.expire(APP_SPAN_TTL_MS);
    expect(index.counts).toMatchObject({ expired: MAX_INDEXED_SPANS - 1, held: 0 });
    expect(index.add(app('late'), APP_SPAN_TTL_MS)).toBe(true);
  });
});

describe('the join stage without app spans', () => {
  it('a listener nothing feeds: calls wait only during the start-up grace, then go at once (noAppSpans)', () => {
    const decoded = decodeCapture('cli_moto_basic');
    const { out } = replay(decoded.map((d) => d.event), OPTS.correlator);
    const calls = out.filter((c) => c.kind === 'call');
    let now = 0;
    const counts = newJoinCounts();
    const exported: Translation[] = [];
    const join = new JoinStage({ windowMs: DEFAULT_CONFIG.appJoinWindowMs, attemptKind: 'internal' }, new AppSpanIndex(APP_SPAN_TTL_MS), { write: (t) => exported.push(t), writeJoined: () => undefined }, counts, () => now);
    const grace = TRIAL_WINDOWS * DEFAULT_CONFIG.appJoinWindowMs;
    // The first call starts the grace: it may wait (its ClientId is on trial).
    join.write(translate(calls[0]!, OPTS.translate), undefined, calls[0]!);
    expect(counts.waiting).toBe(1);
    // Past the grace, with no app span ever received: every call goes at once.
    now = grace + 1;
    join.expire(now);
    for (const c of calls.slice(1)) join.write(translate(c, OPTS.translate), undefined, c);
    expect(counts.waiting).toBe(0);
    expect(counts.noAppSpans).toBe(calls.length - 1);
    expect(exported.length).toBe(calls.length);
  });

  it(`at most MAX_WAITING calls wait; beyond it new calls go standalone at once, counted`, () => {
    const call = replay(decodeCapture('cli_moto_basic').map((d) => d.event), OPTS.correlator).out.find((c) => c.kind === 'call' && c.attempts.some((a) => a.xAmznRequestId || a.xAmzRequestId))!;
    const counts = newJoinCounts();
    const exported: Translation[] = [];
    const join = new JoinStage({ windowMs: DEFAULT_CONFIG.appJoinWindowMs, attemptKind: 'internal' }, new AppSpanIndex(APP_SPAN_TTL_MS), { write: (t) => exported.push(t), writeJoined: () => undefined }, counts, () => 0);
    for (let i = 0; i < MAX_WAITING + 10; i++) join.write(translate(call, OPTS.translate), undefined, call);
    expect([counts.waiting, counts.waitingFull, exported.length]).toEqual([MAX_WAITING, 10, 10]);
  });
});

describe('app spans joined with real captures (documented instrumentation shapes)', () => {
  it.each(['cli_fake_retries', 'boto3_threads_standard', 'boto3_storm_standard'])('botocore (Python) on %s: every call whose app span carries an id is joined below it', (scenario) => {
    const { exported, counts, fixtures } = joinCapture(scenario, 'botocore');
    const withId = fixtures.filter((f) => f.attributes['aws.request_id'] !== undefined);
    expect(withId.length).toBeGreaterThan(0);
    const joined = exported.filter((e) => e.joined !== undefined);
    expect(counts.joined).toBe(withId.length);
    for (const f of withId) {
      const e = joined.find((x) => Buffer.from(x.joined!.parent.spanId).equals(f.spanId));
      expect(e, f.name).toBeDefined();
      expect(hex(e!.joined!.parent.traceId)).toBe(f.traceId.toString('hex'));
      // The attempt with the app's id is there, and the call's facts are on the last attempt.
      expect(e!.joined!.spans.some((s) => s.attributes['aws.request_id'] === f.attributes['aws.request_id'] || s.attributes['aws.extended_request_id'] === f.attributes['aws.request_id'])).toBe(true);
      expect(e!.joined!.spans.at(-1)!.attributes['csm.attempt_count']).toBeDefined();
    }
    // Calls whose app span has no id (transport errors) are exported standalone after the window.
    expect(counts.expiredUnjoined + counts.notJoinable + counts.noRequestId).toBe(exported.length - counts.joined);
  });

  it('Java v1 on cli_moto_basic: no id on errors nor on S3, so exactly the successful non-S3 calls join', () => {
    const { counts, fixtures, exported } = joinCapture('cli_moto_basic', 'java-v1');
    const withId = fixtures.filter((f) => f.attributes['aws.request_id'] !== undefined);
    expect(withId.length).toBeGreaterThan(0);
    expect(withId.every((f) => !f.name.startsWith('S3.'))).toBe(true);
    expect(counts.joined).toBe(withId.length);
    expect(exported.filter((e) => e.joined === undefined && e.t.span.name.startsWith('S3.')).length).toBeGreaterThan(0);
  });

  it('Ruby with its SDK telemetry on ruby_v3_sequential: attempts the app has as Handler.NetHttp spans are not exported again', () => {
    const { counts, exported, fixtures } = joinCapture('ruby_v3_sequential', 'ruby-internal');
    const internal = fixtures.filter((f) => f.kind === 1 && f.attributes['aws.request_id'] !== undefined);
    expect(internal.length).toBeGreaterThan(0);
    expect(counts.joined).toBeGreaterThan(0);
    expect(counts.attemptsInApp).toBe(internal.length);
    const ids = new Set(internal.map((f) => f.attributes['aws.request_id']));
    for (const e of exported.filter((x) => x.joined)) {
      // Whatever is exported hangs beside the app's attempts, under the app's CLIENT span.
      const client = fixtures.find((f) => f.kind === 3 && f.spanId.equals(Buffer.from(e.joined!.parent.spanId)));
      expect(client).toBeDefined();
      for (const s of e.joined!.spans) expect(ids.has(s.attributes['aws.request_id'] as string)).toBe(false);
    }
  });

  // The app span pins its call's final attempt by id (the ApiCall already gives the exact window).
  // Joined by that id, an app trace holds the attempts of the CSM call that has the final attempt:
  // exact wherever correlation kept the final attempt's tree whole, even if it paired that tree
  // with a twin's ApiCall (Ruby's storm: 2 such pairs).
  it.each([
    ['boto3_storm_standard', 27, 27],
    ['boto3_storm_legacy', 35, 35],
    ['go_v1_storm', 30, 30],
    ['js_v2_storm', 29, 29],
    ['ruby_v3_storm', 38, 40],
  ])('storm %s: exact trees, standalone %i, in app traces %i', (scenario, standalone, inApp) => {
    const { exported, fixtures, lineOf, out } = joinCapture(scenario, 'botocore');
    const truthOf = (f: FixtureSpan) => JSON.stringify(f.truthLines!.slice(1));
    const exactStandalone = out.filter((c) => {
      if (c.kind !== 'call') return false;
      const mine = JSON.stringify(c.attempts.map((a) => lineOf.get(a)));
      return fixtures.some((f) => f.truthLines?.[0] === lineOf.get(c.call) && truthOf(f) === mine);
    }).length;
    const idToLine = new Map<string, number>();
    for (const c of out) if (c.kind === 'call') for (const a of c.attempts) for (const id of [a.xAmznRequestId, a.xAmzRequestId, a.xAmzId2]) if (id) idToLine.set(id, lineOf.get(a)!);
    const exactInApp = exported.filter((e) => {
      if (!e.joined) return false;
      const f = fixtures.find((x) => x.spanId.equals(Buffer.from(e.joined!.parent.spanId)))!;
      const lines = e.joined.spans.map((sp) => idToLine.get(sp.attributes['aws.request_id'] as string) ?? idToLine.get(sp.attributes['aws.extended_request_id'] as string));
      return JSON.stringify(lines) === truthOf(f);
    }).length;
    expect([exactStandalone, exactInApp]).toEqual([standalone, inApp]);
  });
});
