import { describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG } from '../../src/config/schema.js';
import { pipelineOptions } from '../../src/pipeline.js';
import { warmUp } from '../../src/warm-up.js';

describe('warmUp', () => {
  for (const encoding of ['protobuf', 'json'] as const) {
    it(`${encoding}: every made-up call comes out of the datagram path, with the shipped options and with every opt-in`, () => {
      const optedIn = { ...DEFAULT_CONFIG, accessKey: 'suffix' as const, semconvStabilityOptIn: ['rpc/dup'], jsInstrumentationKeys: true };
      for (const config of [DEFAULT_CONFIG, optedIn]) {
        expect(warmUp({ pipeline: pipelineOptions(config, 'salt'), encoding, calls: 300 })).toBe(300);
      }
    });
  }
});
