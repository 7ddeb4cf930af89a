import { describe, expect, it } from 'vitest';
import { DEFAULT_CORRELATOR_OPTIONS } from '../../src/correlate/correlator.js';
import { warmUp } from '../../src/warm-up.js';

describe('warmUp', () => {
  for (const encoding of ['protobuf', 'json'] as const) {
    it(`${encoding}: every made-up call comes out of the datagram path`, () => {
      const out = warmUp({
        decoder: { maxDatagramBytes: 65_536, accessKey: 'suffix', accessKeySalt: 'salt', timestampSemantics: 'auto' },
        correlator: DEFAULT_CORRELATOR_OPTIONS,
        translate: { attemptSpanKind: 'client', rpcSemconv: 'dup', jsInstrumentationKeys: true },
        encoding,
        calls: 300,
      });
      expect(out).toBe(300);
    });
  }
});
