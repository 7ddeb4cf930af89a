import { describe, expect, it } from 'vitest';
import type { Correlated } from '../../src/correlate/types.js';
import type { CsmApiCall, CsmAttempt, CsmEvent } from '../../src/decode/types.js';
import { sanitiseErrorType, truncate } from '../../src/translate/error-type.js';
import { normaliseApi, normaliseService } from '../../src/translate/names.js';
import { DEFAULT_CONFIG } from '../../src/config/schema.js';
import { pipelineOptions } from '../../src/pipeline.js';
import { METRIC_INSTRUMENTS } from '../../src/translate/instruments.js';
import { translate, type TranslateOptions } from '../../src/translate/translate.js';
import type { MetricPoint, SpanRecord, Translation } from '../../src/translate/types.js';
import { decodeCapture, readTruth, scenarios } from '../helpers/captures.js';
import { apiCall as call, apiCallAttempt as attempt } from '../helpers/events.js';

// ---------------------------------------------------------------------------
// Builders: plain objects shaped like decode's output, values from the real
// captures in test/fixtures (line numbers noted per test).

/** The shipped defaults (the old RPC semconv, CLIENT attempts, no JS keys). */
const OLD: TranslateOptions = pipelineOptions(DEFAULT_CONFIG, '').translate;

const BOTO_UA = 'aws-cli/1.45.11 md/Botocore#1.43.11 ua/2.1 os/linux#6.18 md/arch#x86_64 lang/python#3.11.7';
const JS_UA = 'aws-sdk-nodejs/2.1693.0 linux/v20.20.2 promise';
const GO_UA = 'aws-sdk-go/1.44.133 (go1.19.8; linux; amd64)';
const RUBY_UA = 'aws-sdk-ruby3/3.168.1 ruby/3.1.2 x86_64-linux-gnu aws-sdk-s3/1.119.0';

function run(c: CsmApiCall, attempts: CsmAttempt[], missingAttempts = 0, opts: TranslateOptions = OLD): Translation {
  return translate({ kind: 'call', call: c, attempts, missingAttempts }, opts);
}

function child(t: Translation, i: number): SpanRecord {
  const s = t.span.children[i];
  if (s === undefined) throw new Error(`no child ${i}`);
  return s;
}

function points(t: Translation, instrument: string): MetricPoint[] {
  return t.metrics.filter((m) => m.instrument === instrument);
}

/** §2.2 closed list: nothing else may appear on a data point. */
const METRIC_KEYS = new Set([
  'rpc.system',
  'rpc.system.name',
  'rpc.service',
  'rpc.method',
  'cloud.region',
  'error.type',
  'http.response.status_code',
  'csm.phase',
  'csm.connection_reused',
]);

function expectCleanMetrics(t: Translation): void {
  for (const m of t.metrics) {
    for (const k of Object.keys(m.attributes)) expect(METRIC_KEYS.has(k), `${m.instrument}: ${k}`).toBe(true);
  }
}

const DDB_RPC = { 'rpc.system': 'aws-api', 'rpc.system.name': 'aws-api', 'rpc.service': 'DynamoDB', 'rpc.method': 'DescribeTable', 'cloud.region': 'us-east-1' };
const DDB_CSM = { 'rpc.service': 'DynamoDB', 'rpc.method': 'DescribeTable', 'cloud.region': 'us-east-1' };

// ---------------------------------------------------------------------------

describe('translate: botocore 503 then 200 (cli_fake_retries lines 10-12)', () => {
  const a1 = attempt({
    service: 'DynamoDB', api: 'DescribeTable', timestamp: 1795462688428, attemptLatency: 3,
    serverAddress: '127.0.0.1', serverPort: 45124, httpStatusCode: 503,
    xAmznRequestId: '1CB39D6B74C143B6B89B36CE6B80BA93',
    awsException: 'ServiceUnavailable', awsExceptionMessage: 'Service is unavailable (scripted)', userAgent: BOTO_UA,
  });
  const a2 = attempt({
    service: 'DynamoDB', api: 'DescribeTable', timestamp: 1795462688484, attemptLatency: 2,
    serverAddress: '127.0.0.1', serverPort: 45124, httpStatusCode: 200,
    xAmznRequestId: '48E9C8DCFDA545609B6E87C91ED13914', userAgent: BOTO_UA,
  });
  const c = call({
    service: 'DynamoDB', api: 'DescribeTable', timestamp: 1795462688427, attemptCount: 2, latency: 60,
    finalHttpStatusCode: 200, maxRetriesExceeded: false, userAgent: BOTO_UA,
  });
  const t = run(c, [a1, a2]);

  it('names, kinds and timing of the call span', () => {
    expect(t.clientId).toBe('corpus');
    expect(t.span.name).toBe('DynamoDB.DescribeTable');
    expect(t.span.kind).toBe('client');
    expect(t.span.startMs).toBe(1795462688427);
    expect(t.span.endMs).toBe(1795462688487);
    expect(t.span.children).toHaveLength(2);
  });

  it('call attributes: last attempt endpoint + request id, no error.type (retried error is not the outcome)', () => {
    expect(t.span.attributes).toEqual({
      ...DDB_RPC,
      'server.address': '127.0.0.1',
      'server.port': 45124,
      'http.response.status_code': 200,
      'aws.request_id': '48E9C8DCFDA545609B6E87C91ED13914',
      'user_agent.original': BOTO_UA,
      'csm.client_id': 'corpus',
      'csm.attempt_count': 2,
    });
    expect(t.span.status).toEqual({ code: 'unset' });
    expect(t.span.events).toEqual([]);
  });

  it('first attempt: failed, ERROR with message, exception event at its end', () => {
    const s = child(t, 0);
    expect(s.name).toBe('DynamoDB.DescribeTable attempt');
    expect(s.kind).toBe('client');
    expect([s.startMs, s.endMs]).toEqual([1795462688428, 1795462688431]);
    expect(s.attributes).toEqual({
      'csm.attempt.number': 1,
      'http.response.status_code': 503,
      'server.address': '127.0.0.1',
      'server.port': 45124,
      'aws.request_id': '1CB39D6B74C143B6B89B36CE6B80BA93',
      'error.type': 'ServiceUnavailable',
    });
    expect(s.status).toEqual({ code: 'error', message: 'Service is unavailable (scripted)' });
    expect(s.events).toEqual([
      {
        name: 'exception',
        timeMs: 1795462688431,
        attributes: { 'exception.type': 'ServiceUnavailable', 'exception.message': 'Service is unavailable (scripted)' },
      },
    ]);
  });

  it('second attempt: resend_count 1, UNSET, no events', () => {
    const s = child(t, 1);
    expect([s.startMs, s.endMs]).toEqual([1795462688484, 1795462688486]);
    expect(s.attributes).toEqual({
      'csm.attempt.number': 2,
      'http.request.resend_count': 1,
      'http.response.status_code': 200,
      'server.address': '127.0.0.1',
      'server.port': 45124,
      'aws.request_id': '48E9C8DCFDA545609B6E87C91ED13914',
    });
    expect(s.status).toEqual({ code: 'unset' });
    expect(s.events).toEqual([]);
  });

  it('metric points, exactly', () => {
    expect(t.metrics).toEqual([
      { instrument: 'rpc.client.call.duration', value: 0.06, attributes: DDB_RPC },
      { instrument: 'csm.call.attempts', value: 2, attributes: DDB_CSM },
      { instrument: 'csm.call.retries', value: 1, attributes: DDB_CSM },
      {
        instrument: 'csm.attempt.duration', value: 0.003,
        attributes: { ...DDB_CSM, 'http.response.status_code': 503, 'error.type': 'ServiceUnavailable' },
      },
      { instrument: 'csm.attempt.duration', value: 0.002, attributes: { ...DDB_CSM, 'http.response.status_code': 200 } },
    ]);
    expectCleanMetrics(t);
  });

  it('attemptSpanKind internal only changes the attempts', () => {
    const ti = run(c, [a1, a2], 0, { ...OLD, attemptSpanKind: 'internal' });
    expect(ti.span.kind).toBe('client');
    expect(ti.span.children.map((s) => s.kind)).toEqual(['internal', 'internal']);
  });

  it('is pure: inputs untouched, same output twice', () => {
    const input: Correlated = { kind: 'call', call: c, attempts: [a1, a2], missingAttempts: 0 };
    const before = structuredClone(input);
    const r1 = translate(input, OLD);
    const r2 = translate(input, OLD);
    expect(input).toEqual(before);
    expect(r2).toEqual(r1);
  });
});

describe('translate: JS v2 HeadObject NotFound 404 (js_v2_sequential lines 8-9)', () => {
  const a = attempt({
    service: 'S3', api: 'HeadObject', timestamp: 1795462771201, attemptLatency: 4, sdk: 'js-v2',
    serverAddress: '127.0.0.1', httpStatusCode: 404, awsException: 'NotFound', userAgent: JS_UA,
    xAmznRequestId: 'zR50j29Uxe8de6OJ4GHsKHKgkboVmwjTixGKRm15EbciRQhv58CL', accessKey: 'MPLE',
  });
  const c = call({
    service: 'S3', api: 'HeadObject', timestamp: 1795462771200, latency: 5, attemptCount: 1, sdk: 'js-v2',
    maxRetriesExceeded: false, finalHttpStatusCode: 404, finalAwsException: 'NotFound', userAgent: JS_UA,
  });
  const t = run(c, [a]);

  it('call is ERROR with error.type NotFound, no message, one exception event without message', () => {
    expect(t.span.name).toBe('S3.HeadObject');
    expect([t.span.startMs, t.span.endMs]).toEqual([1795462771200, 1795462771205]);
    expect(t.span.attributes).toEqual({
      'rpc.system': 'aws-api',
      'rpc.system.name': 'aws-api',
      'rpc.service': 'S3',
      'rpc.method': 'HeadObject',
      'cloud.region': 'us-east-1',
      'server.address': '127.0.0.1',
      'server.port': 443,
      'http.response.status_code': 404,
      'aws.request_id': 'zR50j29Uxe8de6OJ4GHsKHKgkboVmwjTixGKRm15EbciRQhv58CL',
      'user_agent.original': JS_UA,
      'error.type': 'NotFound',
      'csm.client_id': 'corpus',
      'csm.attempt_count': 1,
    });
    expect(t.span.status).toEqual({ code: 'error' });
    expect(t.span.events).toEqual([{ name: 'exception', timeMs: 1795462771205, attributes: { 'exception.type': 'NotFound' } }]);
  });

  it('attempt carries the redacted access key, default port 443, its own exception event', () => {
    const s = child(t, 0);
    expect(s.attributes).toEqual({
      'csm.attempt.number': 1,
      'http.response.status_code': 404,
      'server.address': '127.0.0.1',
      'server.port': 443,
      'aws.request_id': 'zR50j29Uxe8de6OJ4GHsKHKgkboVmwjTixGKRm15EbciRQhv58CL',
      'error.type': 'NotFound',
      'csm.access_key': 'MPLE',
    });
    expect(s.status).toEqual({ code: 'error' });
    expect(s.events).toEqual([{ name: 'exception', timeMs: 1795462771205, attributes: { 'exception.type': 'NotFound' } }]);
    expect(t.span.attributes['csm.access_key']).toBeUndefined();
  });

  it('metrics carry the same error.type as the span and no retries point', () => {
    const s3 = { 'rpc.service': 'S3', 'rpc.method': 'HeadObject', 'cloud.region': 'us-east-1' };
    expect(t.metrics).toEqual([
      {
        instrument: 'rpc.client.call.duration', value: 0.005,
        attributes: { 'rpc.system': 'aws-api', 'rpc.system.name': 'aws-api', ...s3, 'error.type': 'NotFound' },
      },
      { instrument: 'csm.call.attempts', value: 1, attributes: { ...s3, 'error.type': 'NotFound' } },
      {
        instrument: 'csm.attempt.duration', value: 0.004,
        attributes: { ...s3, 'http.response.status_code': 404, 'error.type': 'NotFound' },
      },
    ]);
    expect(t.metrics.every((m) => m.attributes['error.type'] === t.span.attributes['error.type'])).toBe(true);
    expectCleanMetrics(t);
  });

  it('jsInstrumentationKeys also writes aws.request.id (spans only)', () => {
    const tj = run(c, [a], 0, { ...OLD, jsInstrumentationKeys: true });
    expect(tj.span.attributes['aws.request.id']).toBe('zR50j29Uxe8de6OJ4GHsKHKgkboVmwjTixGKRm15EbciRQhv58CL');
    expect(child(tj, 0).attributes['aws.request.id']).toBe('zR50j29Uxe8de6OJ4GHsKHKgkboVmwjTixGKRm15EbciRQhv58CL');
    expect(tj.span.attributes['aws.request.extended_id']).toBeUndefined();
    expect(tj.metrics).toEqual(t.metrics);
    expect(t.span.attributes['aws.request.id']).toBeUndefined();
  });
});

describe('translate: Go v1 end-stamped events (go_v1_sequential)', () => {
  const go = { sdk: 'go-v1' as const, timestampMarksEnd: true, userAgent: GO_UA };

  // lines 12-14: 503 then 200; request id also on the ApiCall.
  const a1 = attempt({
    ...go, service: 'DynamoDB', api: 'DescribeTable', timestamp: 1795463141594, attemptLatency: 0, httpStatusCode: 503,
    xAmznRequestId: '8877D94FFB9345AD84D8F1FED7655AEC', awsException: 'ServiceUnavailable',
    awsExceptionMessage: 'ServiceUnavailable: Service is unavailable (scripted)\n\tstatus code: 503, request id: 8877D94FFB9345AD84D8F1FED7655AEC',
  });
  const a2 = attempt({
    ...go, service: 'DynamoDB', api: 'DescribeTable', timestamp: 1795463142584, attemptLatency: 1, httpStatusCode: 200,
    xAmznRequestId: '61C10F8C0C3A413685863E320DD3F0F0',
  });
  const c = call({
    ...go, service: 'DynamoDB', api: 'DescribeTable', timestamp: 1795463142585, attemptCount: 2, latency: 991,
    xAmznRequestId: '61C10F8C0C3A413685863E320DD3F0F0', finalHttpStatusCode: 200, maxRetriesExceeded: false,
  });

  it('subtracts latencies from end stamps', () => {
    const t = run(c, [a1, a2]);
    expect([t.span.startMs, t.span.endMs]).toEqual([1795463141594, 1795463142585]);
    expect([child(t, 0).startMs, child(t, 0).endMs]).toEqual([1795463141594, 1795463141594]);
    expect([child(t, 1).startMs, child(t, 1).endMs]).toEqual([1795463142583, 1795463142584]);
    expect(child(t, 0).events.map((e) => e.timeMs)).toEqual([1795463141594]);
  });

  it('no Fqdn: no server.* attributes; request id present; status UNSET', () => {
    const t = run(c, [a1, a2]);
    expect(t.span.attributes['server.address']).toBeUndefined();
    expect(t.span.attributes['server.port']).toBeUndefined();
    expect(t.span.attributes['aws.request_id']).toBe('61C10F8C0C3A413685863E320DD3F0F0');
    expect(t.span.status).toEqual({ code: 'unset' });
    expect(child(t, 0).status).toEqual({
      code: 'error',
      message: 'ServiceUnavailable: Service is unavailable (scripted)\n\tstatus code: 503, request id: 8877D94FFB9345AD84D8F1FED7655AEC',
    });
  });

  it("uses the ApiCall's own request id when its attempts never arrived", () => {
    const t = run(c, [], 2);
    expect(t.span.attributes['aws.request_id']).toBe('61C10F8C0C3A413685863E320DD3F0F0');
    expect(t.span.attributes['csm.attempts_missing']).toBe(2);
    expect([t.span.startMs, t.span.endMs]).toEqual([1795463141594, 1795463142585]);
  });

  it('prefers the ApiCall request id over a mismatching last attempt id', () => {
    const t = run(c, [a1]);
    expect(t.span.attributes['aws.request_id']).toBe('61C10F8C0C3A413685863E320DD3F0F0');
  });

  // lines 15-19: 500, 503, 400 throttling, then 200; Go still says MaxRetriesExceeded=1.
  it('MaxRetriesExceeded=1 with a final 200 (Go quirk) is not a failure', () => {
    const ok = call({
      ...go, service: 'DynamoDB', api: 'DescribeTable', timestamp: 1795463147498, attemptCount: 4, latency: 4862,
      xAmznRequestId: 'F6456D5080644E2A8A1FA4C5707296A4', finalHttpStatusCode: 200, maxRetriesExceeded: true,
    });
    const last = attempt({
      ...go, service: 'DynamoDB', api: 'DescribeTable', timestamp: 1795463147498, attemptLatency: 1, httpStatusCode: 200,
      xAmznRequestId: 'F6456D5080644E2A8A1FA4C5707296A4',
    });
    const first = attempt({
      ...go, service: 'DynamoDB', api: 'DescribeTable', timestamp: 1795463142637, attemptLatency: 1, httpStatusCode: 500,
      xAmznRequestId: '8E7338417F7A48E58A7D282703C82CF6', awsException: 'InternalServerError',
      awsExceptionMessage: 'InternalServerError: Internal server error (scripted)',
    });
    const t = run(ok, [first, last], 2);
    expect(t.span.status).toEqual({ code: 'unset' });
    expect(t.span.attributes['error.type']).toBeUndefined();
    // The SDK did not give up: the flag only says the success came on the last allowed attempt.
    expect(t.span.attributes['csm.max_retries_exceeded']).toBeUndefined();
    expect(t.span.attributes['csm.succeeded_on_last_allowed_attempt']).toBe(true);
    expect(t.span.attributes['csm.attempts_missing']).toBe(2);
    expect(t.span.events).toEqual([]);
    expect([t.span.startMs, t.span.endMs]).toEqual([1795463142636, 1795463147498]);
    expect(points(t, 'csm.call.max_retries_exceeded')).toEqual([]);
    expect(points(t, 'rpc.client.call.duration')).toEqual([
      { instrument: 'rpc.client.call.duration', value: 4.862, attributes: DDB_RPC },
    ]);
    expect(points(t, 'csm.call.retries')[0]?.value).toBe(3);
    expect(child(t, 0).attributes['error.type']).toBe('InternalServerError');
  });

  it('takes attempt numbers from the SDK when it sends them', () => {
    const t = run(c, [{ ...a1, attemptNumber: 1 }, { ...a2, attemptNumber: 3 }]);
    expect(child(t, 1).attributes['csm.attempt.number']).toBe(3);
    expect(child(t, 1).attributes['http.request.resend_count']).toBe(2);
  });
});

describe('translate: Ruby swapped exception families (ruby_v3_sequential lines 18-22)', () => {
  const ruby = { sdk: 'ruby-v3' as const, userAgent: RUBY_UA, serverAddress: '127.0.0.1' };
  const mk = (timestamp: number, lat: number, rid: string, id2: string, extra: Partial<CsmAttempt> = {}) =>
    attempt({
      ...ruby, service: 'S3', api: 'ListObjectsV2', timestamp, attemptLatency: lat, httpStatusCode: 503,
      xAmzRequestId: rid, xAmzId2: id2, ...extra,
    });
  const attempts = [
    mk(1795463109646, 1, '803D760149224149', '6fd626a53b2046d7'),
    mk(1795463109949, 1, '39BF125180E943B6', 'e6e5668672b4454e'),
    mk(1795463110552, 1, '479194D6A4BA420F', '853a2b794839474a'),
    mk(1795463111755, 2, 'C16163E6091E4534', '47c2b9e6f4f3496e', {
      sdkException: 'Aws::S3::Errors::ServiceUnavailable', sdkExceptionMessage: 'Service is unavailable (scripted)',
    }),
  ];
  const c = call({
    ...ruby, service: 'S3', api: 'ListObjectsV2', timestamp: 1795463109645, attemptCount: 4, latency: 2112,
    maxRetriesExceeded: true, finalHttpStatusCode: 503,
    finalSdkException: 'Aws::S3::Errors::ServiceUnavailable', finalSdkExceptionMessage: 'Service is unavailable (scripted)',
  });
  const t = run(c, attempts);

  it('call error.type is the Ruby class name (SdkException family, as sent)', () => {
    expect(t.span.attributes['error.type']).toBe('Aws::S3::Errors::ServiceUnavailable');
    expect(t.span.attributes['aws.request_id']).toBe('C16163E6091E4534');
    expect(t.span.attributes['aws.extended_request_id']).toBe('47c2b9e6f4f3496e');
    expect(t.span.attributes['csm.max_retries_exceeded']).toBe(true);
    expect(t.span.status).toEqual({ code: 'error', message: 'Service is unavailable (scripted)' });
    expect(t.span.events).toEqual([
      {
        name: 'exception',
        timeMs: 1795463111757,
        attributes: { 'exception.type': 'Aws::S3::Errors::ServiceUnavailable', 'exception.message': 'Service is unavailable (scripted)' },
      },
    ]);
    expect([t.span.startMs, t.span.endMs]).toEqual([1795463109645, 1795463111757]);
  });

  it('retried 503 attempts without an exception: error.type "503", ERROR without message, no event', () => {
    for (const i of [0, 1, 2]) {
      const s = child(t, i);
      expect(s.attributes['error.type']).toBe('503');
      expect(s.status).toEqual({ code: 'error' });
      expect(s.events).toEqual([]);
    }
    expect(child(t, 3).attributes['error.type']).toBe('Aws::S3::Errors::ServiceUnavailable');
    expect(child(t, 3).events).toHaveLength(1);
    expect(child(t, 2).attributes['aws.extended_request_id']).toBe('853a2b794839474a');
  });

  it('a Ruby network error arrives as AwsException and is used as is', () => {
    // lines 28-29: connection refused; HttpStatusCode/FinalHttpStatusCode 0 already removed by decode.
    const msg = 'Failed to open TCP connection to 127.0.0.1:1 (Connection refused - connect(2) for "127.0.0.1" port 1)';
    const a = attempt({
      ...ruby, service: 'STS', api: 'GetCallerIdentity', timestamp: 1795463113219, attemptLatency: 1,
      awsException: 'Seahorse::Client::NetworkingError', awsExceptionMessage: msg,
    });
    const cc = call({
      ...ruby, service: 'STS', api: 'GetCallerIdentity', timestamp: 1795463113219, attemptCount: 3, latency: 905,
      maxRetriesExceeded: true, finalAwsException: 'Seahorse::Client::NetworkingError', finalAwsExceptionMessage: msg,
    });
    const tr = run(cc, [a], 2);
    expect(tr.span.attributes['error.type']).toBe('Seahorse::Client::NetworkingError');
    expect(tr.span.attributes['http.response.status_code']).toBeUndefined();
    expect(child(tr, 0).attributes['http.response.status_code']).toBeUndefined();
    expect(child(tr, 0).attributes['error.type']).toBe('Seahorse::Client::NetworkingError');
    expect(points(tr, 'csm.attempt.duration')[0]?.attributes).toEqual({
      'rpc.service': 'STS', 'rpc.method': 'GetCallerIdentity', 'cloud.region': 'us-east-1',
      'error.type': 'Seahorse::Client::NetworkingError',
    });
  });
});

describe('translate: MaxRetriesExceeded with connection refused (cli_connrefused lines 21-24)', () => {
  const msg = 'Could not connect to the endpoint URL: "http://127.0.0.1:1/"';
  const mk = (timestamp: number, attemptLatency: number) =>
    attempt({
      service: 'S3', api: 'ListBuckets', timestamp, attemptLatency, serverAddress: '127.0.0.1', serverPort: 1,
      sdkException: 'EndpointConnectionError', sdkExceptionMessage: msg, userAgent: BOTO_UA,
    });
  const c = call({
    service: 'S3', api: 'ListBuckets', timestamp: 1795462682672, attemptCount: 3, latency: 981, maxRetriesExceeded: true,
    finalSdkException: 'EndpointConnectionError', finalSdkExceptionMessage: msg, userAgent: BOTO_UA,
  });
  const t = run(c, [mk(1795462682673, 1), mk(1795462683443, 1), mk(1795462683652, 0)]);
  const s3 = { 'rpc.service': 'S3', 'rpc.method': 'ListBuckets', 'cloud.region': 'us-east-1' };

  it('call span', () => {
    expect(t.span.name).toBe('S3.ListBuckets');
    expect([t.span.startMs, t.span.endMs]).toEqual([1795462682672, 1795462683653]);
    expect(t.span.attributes).toEqual({
      'rpc.system': 'aws-api',
      'rpc.system.name': 'aws-api',
      ...s3,
      'server.address': '127.0.0.1',
      'server.port': 1,
      'user_agent.original': BOTO_UA,
      'error.type': 'EndpointConnectionError',
      'csm.client_id': 'corpus',
      'csm.attempt_count': 3,
      'csm.max_retries_exceeded': true,
    });
    expect(t.span.status).toEqual({ code: 'error', message: msg });
    expect(t.span.events).toEqual([
      { name: 'exception', timeMs: 1795462683653, attributes: { 'exception.type': 'EndpointConnectionError', 'exception.message': msg } },
    ]);
  });

  it('every attempt failed, numbered 1..3 with resend counts', () => {
    expect(t.span.children.map((s) => s.attributes['csm.attempt.number'])).toEqual([1, 2, 3]);
    expect(t.span.children.map((s) => s.attributes['http.request.resend_count'])).toEqual([undefined, 1, 2]);
    expect(t.span.children.map((s) => s.status.code)).toEqual(['error', 'error', 'error']);
    expect(t.span.children.map((s) => s.events[0]?.timeMs)).toEqual([1795462682674, 1795462683444, 1795462683652]);
  });

  it('metrics', () => {
    const withErr = { ...s3, 'error.type': 'EndpointConnectionError' };
    expect(t.metrics).toEqual([
      { instrument: 'rpc.client.call.duration', value: 0.981, attributes: { 'rpc.system': 'aws-api', 'rpc.system.name': 'aws-api', ...withErr } },
      { instrument: 'csm.call.attempts', value: 3, attributes: withErr },
      { instrument: 'csm.call.retries', value: 2, attributes: s3 },
      { instrument: 'csm.call.max_retries_exceeded', value: 1, attributes: withErr },
      { instrument: 'csm.attempt.duration', value: 0.001, attributes: withErr },
      { instrument: 'csm.attempt.duration', value: 0.001, attributes: withErr },
      { instrument: 'csm.attempt.duration', value: 0, attributes: withErr },
    ]);
    expectCleanMetrics(t);
  });
});

describe('translate: missing attempts (boto3_edge_cases line 2)', () => {
  const c = call({
    service: 'DynamoDB', api: 'DescribeTable', timestamp: 1795462767889, attemptCount: 2, latency: 57,
    finalHttpStatusCode: 200, maxRetriesExceeded: false,
  });

  it('call with no attempts at all', () => {
    const t = run(c, [], 2);
    expect(t.span.children).toEqual([]);
    expect([t.span.startMs, t.span.endMs]).toEqual([1795462767889, 1795462767946]);
    expect(t.span.attributes).toEqual({
      ...DDB_RPC,
      'http.response.status_code': 200,
      'csm.client_id': 'corpus',
      'csm.attempt_count': 2,
      'csm.attempts_missing': 2,
    });
    expect(t.metrics.map((m) => m.instrument)).toEqual(['rpc.client.call.duration', 'csm.call.attempts', 'csm.call.retries']);
  });

  it('csm.attempts_missing is absent when nothing is missing', () => {
    const a = attempt({ service: 'DynamoDB', api: 'DescribeTable', timestamp: 1795462767890, attemptLatency: 5, httpStatusCode: 200 });
    expect(run({ ...c, attemptCount: 1 }, [a], 0).span.attributes['csm.attempts_missing']).toBeUndefined();
  });
});

describe('translate: orphan attempts', () => {
  // js_v2_sequential line 33: a TimeoutError attempt, here without its ApiCall.
  const a = attempt({
    service: 'DynamoDB', api: 'DescribeTable', timestamp: 1795462771977, attemptLatency: 1002, sdk: 'js-v2',
    serverAddress: '127.0.0.1', sdkException: 'TimeoutError', sdkExceptionMessage: 'Connection timed out after 1000ms',
    userAgent: JS_UA, clientId: 'corpus-js',
  });

  it('root span named like an attempt, flagged as orphan', () => {
    const t = translate({ kind: 'orphan', attempt: a, reason: 'ttl_expired' }, OLD);
    expect(t.clientId).toBe('corpus-js');
    expect(t.span.name).toBe('DynamoDB.DescribeTable attempt');
    expect(t.span.kind).toBe('client');
    expect(t.span.children).toEqual([]);
    expect([t.span.startMs, t.span.endMs]).toEqual([1795462771977, 1795462772979]);
    expect(t.span.attributes).toEqual({
      ...DDB_RPC,
      'server.address': '127.0.0.1',
      'server.port': 443,
      'error.type': 'TimeoutError',
      'user_agent.original': JS_UA,
      'csm.client_id': 'corpus-js',
      'csm.orphan': true,
      'csm.orphan_reason': 'ttl_expired',
    });
    expect(t.span.status).toEqual({ code: 'error', message: 'Connection timed out after 1000ms' });
    expect(t.span.events).toEqual([
      {
        name: 'exception',
        timeMs: 1795462772979,
        attributes: { 'exception.type': 'TimeoutError', 'exception.message': 'Connection timed out after 1000ms' },
      },
    ]);
  });

  it('produces csm.attempt.duration only', () => {
    const t = translate({ kind: 'orphan', attempt: { ...a, dnsLatency: 3 }, reason: 'buffer_full' }, OLD);
    expect(t.metrics).toEqual([
      { instrument: 'csm.attempt.duration', value: 1.002, attributes: { ...DDB_CSM, 'error.type': 'TimeoutError' } },
    ]);
    expect(t.span.attributes['csm.orphan_reason']).toBe('buffer_full');
  });

  it('uses the attempt kind option and an SDK-sent attempt number; Go end stamp', () => {
    const g = attempt({
      service: 'DynamoDB', api: 'ListTables', timestamp: 1795463155975, attemptLatency: 40, timestampMarksEnd: true,
      sdk: 'go-v1', attemptNumber: 3, sdkException: 'RequestError',
    });
    const t = translate({ kind: 'orphan', attempt: g, reason: 'shutdown' }, { ...OLD, attemptSpanKind: 'internal' });
    expect(t.span.kind).toBe('internal');
    expect([t.span.startMs, t.span.endMs]).toEqual([1795463155935, 1795463155975]);
    expect(t.span.attributes['csm.attempt.number']).toBe(3);
    expect(t.span.attributes['http.request.resend_count']).toBe(2);
    expect(t.span.status).toEqual({ code: 'error' });
  });
});

describe('translate: rpc semconv stability opt-in', () => {
  const a = attempt({ service: 'DynamoDB', api: 'DescribeTable', timestamp: 1000, attemptLatency: 4, httpStatusCode: 200, dnsLatency: 2 });
  const c = call({ service: 'DynamoDB', api: 'DescribeTable', timestamp: 999, latency: 6, attemptCount: 1, finalHttpStatusCode: 200 });

  it('stable: rpc.method = Service/Api, rpc.system and rpc.service dropped from span and call metric', () => {
    const t = run(c, [a], 0, { ...OLD, rpcSemconv: 'stable' });
    expect(t.span.attributes['rpc.method']).toBe('DynamoDB/DescribeTable');
    expect(t.span.attributes['rpc.system.name']).toBe('aws-api');
    expect('rpc.system' in t.span.attributes).toBe(false);
    expect('rpc.service' in t.span.attributes).toBe(false);
    expect(points(t, 'rpc.client.call.duration')[0]?.attributes).toEqual({
      'rpc.system.name': 'aws-api', 'rpc.method': 'DynamoDB/DescribeTable', 'cloud.region': 'us-east-1',
    });
    // bridge-defined csm.* instruments keep rpc.service; rpc.method has the same value everywhere
    expect(points(t, 'csm.attempt.duration')[0]?.attributes).toEqual({
      'rpc.service': 'DynamoDB', 'rpc.method': 'DynamoDB/DescribeTable', 'cloud.region': 'us-east-1', 'http.response.status_code': 200,
    });
    expect(points(t, 'csm.attempt.phase.duration')[0]?.attributes).toEqual({
      'csm.phase': 'dns', 'rpc.service': 'DynamoDB', 'cloud.region': 'us-east-1',
    });
  });

  it('dup: stable rpc.method, old rpc.system / rpc.service kept', () => {
    const t = run(c, [a], 0, { ...OLD, rpcSemconv: 'dup' });
    const want = {
      'rpc.system': 'aws-api', 'rpc.system.name': 'aws-api', 'rpc.service': 'DynamoDB',
      'rpc.method': 'DynamoDB/DescribeTable', 'cloud.region': 'us-east-1',
    };
    expect(points(t, 'rpc.client.call.duration')[0]?.attributes).toEqual(want);
    for (const [k, v] of Object.entries(want)) expect(t.span.attributes[k]).toBe(v);
  });
});

describe('translate: naming', () => {
  it('strips whitespace from Service and a trailing Command from Api', () => {
    const c = call({ service: 'API Gateway', api: 'GetRestApisCommand', timestamp: 5000, latency: 1 });
    const a = attempt({ service: 'API Gateway', api: 'GetRestApisCommand', timestamp: 5000, attemptLatency: 1 });
    const t = run(c, [a]);
    expect(t.span.name).toBe('APIGateway.GetRestApis');
    expect(child(t, 0).name).toBe('APIGateway.GetRestApis attempt');
    expect(t.span.attributes['rpc.service']).toBe('APIGateway');
    expect(t.span.attributes['rpc.method']).toBe('GetRestApis');
    expect(normaliseService(' Elastic  Load\tBalancing ')).toBe('ElasticLoadBalancing');
    expect(normaliseApi('Command')).toBe('Command');
    expect(normaliseApi('ListCommands')).toBe('ListCommands');
  });

  it('names stay right across many distinct Service/Api pairs (the bounded name cache starts over)', () => {
    const translated = (i: number) => run(call({ service: `Svc ${i % 97}`, api: `Op${i}Command`, timestamp: 5000, latency: 1 }), [], 0, { ...OLD, rpcSemconv: 'dup' });
    for (const i of [...Array(10_000).keys(), 0, 4242]) {
      const t = translated(i);
      expect(t.span.name).toBe(`Svc${i % 97}.Op${i}`);
      expect(t.span.attributes['rpc.method']).toBe(`Svc${i % 97}/Op${i}`);
    }
  });

  it('takes cloud.region from the attempts when the ApiCall has none (PHP)', () => {
    const c = call({ service: 'ec2', api: 'DescribeInstances', timestamp: 5000, latency: 1, region: undefined });
    const a = attempt({ service: 'ec2', api: 'DescribeInstances', timestamp: 5000, attemptLatency: 1, region: 'eu-west-1' });
    const t = run(c, [a]);
    expect(t.span.attributes['cloud.region']).toBe('eu-west-1');
    expect(points(t, 'rpc.client.call.duration')[0]?.attributes['cloud.region']).toBe('eu-west-1');
    expect(run(c, []).span.attributes['cloud.region']).toBeUndefined();
  });
});

describe('translate: error.type and status rules', () => {
  const base = { service: 'DynamoDB', api: 'DescribeTable', timestamp: 1000 };

  it('sanitises and truncates error.type (span and metrics alike); keeps exception.type raw', () => {
    const raw = 'Weird Error/with spaces é' + 'x'.repeat(100);
    const c = call({ ...base, latency: 5, attemptCount: 1, finalHttpStatusCode: 500, finalAwsException: raw });
    const a = attempt({ ...base, attemptLatency: 5, httpStatusCode: 500, awsException: raw });
    const t = run(c, [a]);
    const want = ('Weird_Error_with_spaces_' + '_' + 'x'.repeat(100)).slice(0, 64);
    expect(t.span.attributes['error.type']).toBe(want);
    expect(want).toHaveLength(64);
    expect(child(t, 0).attributes['error.type']).toBe(want);
    expect(t.metrics.map((m) => m.instrument)).toEqual(['rpc.client.call.duration', 'csm.call.attempts', 'csm.attempt.duration']);
    expect(t.metrics.every((m) => m.attributes['error.type'] === want)).toBe(true);
    expect(t.span.events[0]?.attributes['exception.type']).toBe(raw);
  });

  it('AwsException wins over SdkException, which wins over the status code', () => {
    const both = attempt({ ...base, attemptLatency: 1, httpStatusCode: 500, awsException: 'A', sdkException: 'S' });
    const sdk = attempt({ ...base, attemptLatency: 1, httpStatusCode: 500, sdkException: 'S', sdkExceptionMessage: 'm' });
    const c = call({ ...base, latency: 3, attemptCount: 2, finalHttpStatusCode: 500 });
    const t = run(c, [both, sdk]);
    expect(child(t, 0).attributes['error.type']).toBe('A');
    expect(child(t, 1).attributes['error.type']).toBe('S');
    expect(child(t, 1).status).toEqual({ code: 'error', message: 'm' });
    expect(t.span.attributes['error.type']).toBe('500');
    expect(t.span.status).toEqual({ code: 'error' });
    expect(t.span.events).toEqual([]);
  });

  it('_OTHER when the call failed with nothing else known', () => {
    const mre = run(call({ ...base, latency: 3, attemptCount: 2, maxRetriesExceeded: true }), [], 2);
    expect(mre.span.attributes['error.type']).toBe('_OTHER');
    expect(mre.span.status).toEqual({ code: 'error' });
    expect(mre.span.events).toEqual([]);
    expect(points(mre, 'rpc.client.call.duration')[0]?.attributes['error.type']).toBe('_OTHER');

    const timeout = run(call({ ...base, latency: 3, attemptCount: 1, apiCallTimeout: true }), []);
    expect(timeout.span.attributes['error.type']).toBe('_OTHER');
  });

  it('3xx and no-response attempts without exception are not errors', () => {
    const c = call({ ...base, latency: 3, attemptCount: 2, finalHttpStatusCode: 304 });
    const t = run(c, [attempt({ ...base, attemptLatency: 1 }), attempt({ ...base, timestamp: 1001, attemptLatency: 1, httpStatusCode: 304 })]);
    expect(t.span.status).toEqual({ code: 'unset' });
    expect(t.span.children.map((s) => s.status)).toEqual([{ code: 'unset' }, { code: 'unset' }]);
    expect(t.span.children.map((s) => s.attributes['error.type'])).toEqual([undefined, undefined]);
  });

  it('status message is cut to 256 chars, exception.message is not (cli_fake_retries line 24-25)', () => {
    const long = 'L'.repeat(512);
    const c = call({ ...base, latency: 5, attemptCount: 1, finalHttpStatusCode: 400, finalAwsException: 'ValidationException', finalAwsExceptionMessage: long });
    const t = run(c, []);
    expect(t.span.status).toEqual({ code: 'error', message: 'L'.repeat(256) });
    expect(t.span.events[0]?.attributes['exception.message']).toBe(long);
  });

  it('helpers', () => {
    expect(sanitiseErrorType('')).toBe('_OTHER');
    expect(sanitiseErrorType('a😀b')).toBe('a_b');
    expect(sanitiseErrorType('Aws::S3::Errors::NoSuchKey')).toBe('Aws::S3::Errors::NoSuchKey');
    expect(truncate('ab😀', 3)).toBe('ab');
    expect(truncate('abc', 3)).toBe('abc');
  });
});

describe('translate: timing and phases', () => {
  const base = { service: 'DynamoDB', api: 'DescribeTable' };

  it('call window grows to cover attempts outside its reported window; attempts keep their own times', () => {
    const c = call({ ...base, timestamp: 1000, latency: 10, attemptCount: 2, finalHttpStatusCode: 200 });
    const early = attempt({ ...base, timestamp: 995, attemptLatency: 3, httpStatusCode: 500 });
    const late = attempt({ ...base, timestamp: 1008, attemptLatency: 10, httpStatusCode: 200 });
    const t = run(c, [early, late]);
    expect([t.span.startMs, t.span.endMs]).toEqual([995, 1018]);
    expect([child(t, 0).startMs, child(t, 0).endMs]).toEqual([995, 998]);
    expect([child(t, 1).startMs, child(t, 1).endMs]).toEqual([1008, 1018]);
    for (const s of t.span.children) {
      expect(s.startMs).toBeGreaterThanOrEqual(t.span.startMs);
      expect(s.endMs).toBeLessThanOrEqual(t.span.endMs);
    }
  });

  it('absent latencies count as 0 for timing and produce no duration points', () => {
    const c = call({ ...base, timestamp: 2000, attemptCount: 1 });
    const a = attempt({ ...base, timestamp: 2001 });
    const t = run(c, [a]);
    expect([t.span.startMs, t.span.endMs]).toEqual([2000, 2001]);
    expect([child(t, 0).startMs, child(t, 0).endMs]).toEqual([2001, 2001]);
    expect(t.metrics.map((m) => m.instrument)).toEqual(['csm.call.attempts']);
  });

  it('phase latencies become attributes and one phase point each; connection reuse and peer address', () => {
    const a = attempt({
      ...base, timestamp: 3000, attemptLatency: 20, httpStatusCode: 200, destinationIp: '52.94.0.1',
      connectionReused: false, dnsLatency: 2, tcpLatency: 1, sslLatency: 3, connectLatency: 5, requestLatency: 7,
      acquireConnectionLatency: 0,
    });
    const c = call({ ...base, timestamp: 3000, latency: 21, attemptCount: 1, finalHttpStatusCode: 200 });
    const t = run(c, [a]);
    expect(child(t, 0).attributes).toEqual({
      'csm.attempt.number': 1,
      'http.response.status_code': 200,
      'network.peer.address': '52.94.0.1',
      'csm.connection_reused': false,
      'csm.latency.dns_ms': 2,
      'csm.latency.tcp_ms': 1,
      'csm.latency.ssl_ms': 3,
      'csm.latency.connect_ms': 5,
      'csm.latency.request_ms': 7,
      'csm.latency.acquire_connection_ms': 0,
    });
    expect(t.span.attributes['network.peer.address']).toBe('52.94.0.1');
    expect(points(t, 'csm.attempt.duration')).toEqual([
      {
        instrument: 'csm.attempt.duration', value: 0.02,
        attributes: { ...DDB_CSM, 'http.response.status_code': 200, 'csm.connection_reused': false },
      },
    ]);
    const phase = (p: string, v: number) => ({
      instrument: 'csm.attempt.phase.duration', value: v,
      attributes: { 'csm.phase': p, 'rpc.service': 'DynamoDB', 'cloud.region': 'us-east-1' },
    });
    expect(points(t, 'csm.attempt.phase.duration')).toEqual([
      phase('dns', 0.002), phase('tcp', 0.001), phase('tls', 0.003), phase('connect', 0.005), phase('request', 0.007),
      phase('acquire_connection', 0),
    ]);
    expectCleanMetrics(t);
  });
});

describe('METRIC_INSTRUMENTS', () => {
  it('declares every instrument translate emits, with units and buckets', () => {
    const byName = new Map(METRIC_INSTRUMENTS.map((i) => [i.name, i]));
    expect([...byName.keys()].sort()).toEqual([
      'csm.attempt.duration',
      'csm.attempt.phase.duration',
      'csm.call.attempts',
      'csm.call.max_retries_exceeded',
      'csm.call.retries',
      'rpc.client.call.duration',
    ]);
    expect(byName.get('rpc.client.call.duration')).toMatchObject({
      kind: 'histogram', unit: 's', buckets: [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10],
    });
    expect(byName.get('csm.attempt.duration')?.buckets).toEqual(byName.get('rpc.client.call.duration')?.buckets);
    expect(byName.get('csm.call.attempts')).toMatchObject({ kind: 'histogram', unit: '{attempt}', buckets: [1, 2, 3, 4, 5, 6, 8, 10] });
    expect(byName.get('csm.call.retries')).toMatchObject({ kind: 'counter', unit: '{retry}' });
    expect(byName.get('csm.call.max_retries_exceeded')).toMatchObject({ kind: 'counter', unit: '{call}' });
    expect(byName.get('csm.attempt.phase.duration')).toMatchObject({
      kind: 'histogram', unit: 's', buckets: [0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    });
    for (const i of METRIC_INSTRUMENTS) expect(i.description.length).toBeGreaterThan(0);
  });
});

describe('translate: every call of the real captures (ground-truth pairing)', () => {
  it('children inside parents, clean metrics, consistent error.type, no secrets', () => {
    let calls = 0;
    for (const s of scenarios()) {
      const events = new Map<number, CsmEvent>(decodeCapture(s).map(({ line, event }) => [line, event]));
      for (const tc of readTruth(s)) {
        if (tc.api_call_line === null) continue;
        const c = events.get(tc.api_call_line);
        if (c?.type !== 'ApiCall') throw new Error(`${s}:${tc.api_call_line} is not an ApiCall`);
        const attempts = tc.attempt_lines
          .map((l) => events.get(l))
          .filter((e): e is CsmAttempt => e?.type === 'ApiCallAttempt')
          .sort((x, y) => x.timestamp - y.timestamp);
        const t = run(c, attempts, Math.max(0, (c.attemptCount ?? 0) - attempts.length));
        calls++;
        expect(t.span.startMs, s).toBeLessThanOrEqual(t.span.endMs);
        for (const ch of t.span.children) {
          expect(ch.startMs, s).toBeGreaterThanOrEqual(t.span.startMs);
          expect(ch.endMs, s).toBeLessThanOrEqual(t.span.endMs);
          expect(ch.startMs, s).toBeLessThanOrEqual(ch.endMs);
        }
        expectCleanMetrics(t);
        const et = t.span.attributes['error.type'];
        for (const m of t.metrics) {
          if (m.instrument === 'csm.attempt.duration' || m.instrument === 'csm.attempt.phase.duration' || m.instrument === 'csm.call.retries') continue;
          expect(m.attributes['error.type'], `${s} ${m.instrument}`).toBe(et);
        }
        expect(t.span.status.code === 'error', s).toBe(et !== undefined);
        expect(JSON.stringify(t)).not.toMatch(/AKIA|ASIA/);
      }
    }
    expect(calls).toBeGreaterThan(100);
  });
});

describe('translate: attempts correlation could not place for certain', () => {
  const c = call({ service: 'DynamoDB', api: 'DescribeTable', timestamp: 1_000, latency: 300, attemptCount: 2, finalHttpStatusCode: 200 });
  const a1 = attempt({ service: 'DynamoDB', api: 'DescribeTable', timestamp: 1_001, attemptLatency: 40, httpStatusCode: 503, awsException: 'ServiceUnavailable' });
  const a2 = attempt({ service: 'DynamoDB', api: 'DescribeTable', timestamp: 1_250, attemptLatency: 50, httpStatusCode: 200 });

  it('marks the ambiguous attempt span and counts them on the call span', () => {
    const t = translate({ kind: 'call', call: c, attempts: [a1, a2], missingAttempts: 0, ambiguous: [true, false] }, OLD);
    expect(child(t, 0).attributes['csm.match.ambiguous']).toBe(true);
    expect(child(t, 1).attributes['csm.match.ambiguous']).toBeUndefined();
    expect(t.span.attributes['csm.match.ambiguous_attempts']).toBe(1);
  });

  it('writes neither attribute when correlation was sure', () => {
    const t = run(c, [a1, a2]);
    expect(t.span.attributes['csm.match.ambiguous_attempts']).toBeUndefined();
    expect(t.span.children.every((s) => s.attributes['csm.match.ambiguous'] === undefined)).toBe(true);
  });
});
