/**
 * OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE's selectors are local (src/export/spooling-exporter.ts,
 * TEMPORALITY: the package that exports them cost every bridge its exporter base in memory): each
 * must choose what @opentelemetry/exporter-metrics-otlp-http's does, for every instrument type.
 */
import { CumulativeTemporalitySelector, DeltaTemporalitySelector, LowMemoryTemporalitySelector } from '@opentelemetry/exporter-metrics-otlp-http';
import { InstrumentType } from '@opentelemetry/sdk-metrics';
import { describe, expect, it } from 'vitest';
import { TEMPORALITY } from '../../src/export/spooling-exporter.js';

const PACKAGE = { cumulative: CumulativeTemporalitySelector, delta: DeltaTemporalitySelector, lowmemory: LowMemoryTemporalitySelector } as const;

describe('the temporality preference', () => {
  for (const preference of Object.keys(PACKAGE) as (keyof typeof PACKAGE)[]) {
    it.each(Object.values(InstrumentType))(`${preference}: %s as the OTLP exporter chooses`, (kind) => {
      expect(TEMPORALITY[preference](kind)).toBe(PACKAGE[preference](kind));
    });
  }
});
