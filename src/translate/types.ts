/**
 * Plain records produced by `translate` and consumed by `export`.
 * No OTel SDK objects here: translation stays pure and unit-testable.
 */
export type AttributeValue = string | number | boolean;
export type Attributes = Record<string, AttributeValue>;

export interface SpanEventRecord {
  name: string;
  timeMs: number;
  attributes: Attributes;
}

export interface SpanRecord {
  name: string;
  /** Both levels are CLIENT by default (otel-mapping.md §1.3). */
  kind: 'client' | 'internal';
  startMs: number;
  endMs: number;
  attributes: Attributes;
  status: { code: 'unset' | 'error'; message?: string };
  events: SpanEventRecord[];
  children: SpanRecord[];
}

export interface MetricPoint {
  /** Instrument name, e.g. `rpc.client.call.duration`. */
  instrument: string;
  value: number;
  attributes: Attributes;
}

/** Everything one correlated call (or orphan attempt) becomes. */
export interface Translation {
  /** `csm.client_id`: selects the per-client resource / service.name. */
  clientId: string;
  span: SpanRecord;
  metrics: MetricPoint[];
}
