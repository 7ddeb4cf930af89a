import { describe, expect, it } from 'vitest';
import { decodeDatagram } from '../../src/decode/decoder.js';
import { decodeCapture, DEFAULT_DECODER, scenarios } from '../helpers/captures.js';

const src = { address: '127.0.0.1', port: 40000 };
const decode = (obj: unknown, opts = DEFAULT_DECODER) =>
  decodeDatagram(Buffer.from(typeof obj === 'string' ? obj : JSON.stringify(obj)), src, 1_700_000_000_000, opts);

describe('decode', () => {
  it('accepts every datagram of every real capture', () => {
    for (const s of scenarios()) {
      const events = decodeCapture(s);
      expect(events.length, s).toBeGreaterThan(0);
    }
  });

  it('reads the Go v1 capture as end-stamped and the others as start-stamped', () => {
    expect(decodeCapture('go_v1_sequential').every(({ event }) => event.timestampMarksEnd && event.sdk === 'go-v1')).toBe(true);
    expect(decodeCapture('js_v2_sequential').every(({ event }) => !event.timestampMarksEnd && event.sdk === 'js-v2')).toBe(true);
    expect(decodeCapture('ruby_v3_sequential').every(({ event }) => event.sdk === 'ruby-v3')).toBe(true);
    expect(decodeCapture('cli_moto_basic').every(({ event }) => event.sdk === 'botocore')).toBe(true);
  });

  it('drops SessionToken and, by default, AccessKey', () => {
    const r = decode({
      Version: 1, Type: 'ApiCallAttempt', Service: 'STS', Api: 'GetCallerIdentity', Timestamp: 1700000000000,
      AttemptLatency: 5, SessionToken: 'FQoGZXIvYXdzE-secret-token', AccessKey: 'ASIAEXAMPLEKEY1234',
    });
    expect(r.ok).toBe(true);
    expect(JSON.stringify(r)).not.toContain('secret-token');
    expect(JSON.stringify(r)).not.toContain('ASIAEXAMPLEKEY1234');
  });

  it('exports AccessKey only as opted in: suffix or salted hash', () => {
    const base = { Type: 'ApiCallAttempt', Service: 'S3', Api: 'ListBuckets', Timestamp: 1, AccessKey: 'AKIAIOSFODNN7EXAMPLE' };
    const suffix = decode(base, { ...DEFAULT_DECODER, accessKey: 'suffix' });
    expect(suffix.ok && suffix.event.type === 'ApiCallAttempt' && suffix.event.accessKey).toBe('MPLE');
    const h1 = decode(base, { ...DEFAULT_DECODER, accessKey: 'hash', accessKeySalt: 'a' });
    const h2 = decode(base, { ...DEFAULT_DECODER, accessKey: 'hash', accessKeySalt: 'b' });
    const k1 = h1.ok && h1.event.type === 'ApiCallAttempt' ? h1.event.accessKey : undefined;
    const k2 = h2.ok && h2.event.type === 'ApiCallAttempt' ? h2.event.accessKey : undefined;
    expect(k1).toMatch(/^[0-9a-f]{16}$/);
    expect(k1).not.toBe(k2);
    expect(k1).not.toContain('AKIA');
  });

  it('normalises .NET names, PHP floats, Go/Ruby empty markers and Fqdn ports', () => {
    const a = decode({
      Type: 'ApiCallAttempt', Service: 'DynamoDB', Api: 'GetItem', Timestamp: 1700000000123.0, AttemptLatency: 12.7,
      AWSException: 'ThrottlingException', AWSExceptionMessage: 'slow down', HttpStatusCode: 0, XAmznRequestId: '',
      Fqdn: '127.0.0.1:45123',
    });
    expect(a).toMatchObject({
      ok: true,
      event: { awsException: 'ThrottlingException', awsExceptionMessage: 'slow down', attemptLatency: 12, serverAddress: '127.0.0.1', serverPort: 45123, clientId: '' },
    });
    expect(a.ok && 'httpStatusCode' in a.event).toBe(false);
    expect(a.ok && 'xAmznRequestId' in a.event).toBe(false);
    const v6 = decode({ Type: 'ApiCallAttempt', Service: 'S3', Api: 'X', Timestamp: 1, Fqdn: '[::1]:9000' });
    expect(v6).toMatchObject({ event: { serverAddress: '::1', serverPort: 9000 } });
    const host = decode({ Type: 'ApiCallAttempt', Service: 'S3', Api: 'X', Timestamp: 1, Fqdn: 's3.amazonaws.com' });
    expect(host.ok && host.event.type === 'ApiCallAttempt' && [host.event.serverAddress, host.event.serverPort]).toEqual(['s3.amazonaws.com', undefined]);
    const call = decode({ Type: 'ApiCall', Service: 'S3', Api: 'X', Timestamp: 1, FinalAWSException: 'NoSuchKey', FinalHttpStatusCode: 0, MaxRetriesExceeded: 1 });
    expect(call).toMatchObject({ ok: true, event: { finalAwsException: 'NoSuchKey', maxRetriesExceeded: true } });
    expect(call.ok && 'finalHttpStatusCode' in call.event).toBe(false);
  });

  it('rejects bad input with a reason and never throws', () => {
    const cases: [unknown, string][] = [
      ['not json {', 'malformed_json'],
      ['', 'malformed_json'],
      ['[1,2]', 'not_object'],
      ['42', 'not_object'],
      ['null', 'not_object'],
      [{ Type: 'Heartbeat', Service: 'S3', Api: 'X', Timestamp: 1 }, 'unknown_type'],
      [{ Service: 'S3', Api: 'X', Timestamp: 1 }, 'unknown_type'],
      [{ Type: 'ApiCall', Api: 'X', Timestamp: 1 }, 'missing_field'],
      [{ Type: 'ApiCall', Service: 'S3', Api: 'X' }, 'missing_field'],
      [{ Type: 'ApiCall', Service: 'S3', Api: 'X', Timestamp: 'yesterday' }, 'bad_field'],
      [{ Type: 'ApiCall', Service: 'S3', Api: 'X', Timestamp: 1, Latency: -5 }, 'bad_field'],
      [{ Type: 'ApiCallAttempt', Service: 'S3', Api: 'X', Timestamp: 1, HttpStatusCode: '200' }, 'bad_field'],
      [{ Version: 2, Type: 'ApiCall', Service: 'S3', Api: 'X', Timestamp: 1 }, 'bad_field'],
    ];
    for (const [input, reason] of cases) {
      const r = decode(input);
      expect(r.ok, JSON.stringify(input)).toBe(false);
      if (!r.ok) expect(r.reason, JSON.stringify(input)).toBe(reason);
    }
    const big = decodeDatagram(Buffer.alloc(70_000, 0x20), src, 0, DEFAULT_DECODER);
    expect(big).toMatchObject({ ok: false, reason: 'oversize' });
  });

  it('keeps the value out of the reject detail except a short Type', () => {
    const r = decode({ Type: 'x'.repeat(500), Service: 'S3', Api: 'X', Timestamp: 1 });
    expect(r.ok === false && r.detail.length).toBeLessThan(60);
  });
});
