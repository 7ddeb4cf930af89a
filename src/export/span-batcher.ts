/**
 * Batches encoded span trees into OTLP requests: the job of the SDK's BatchSpanProcessor,
 * without its per-span objects (the SDK path cost 20-30 CPU µs per span, BENCHMARKS.md).
 *
 * Each call's tree is encoded at once into the current TraceBatch; a batch that is full
 * (`maxBatchSpans`) or `delayMs` old becomes one request body handed to the sink (the export
 * spool, which accepts at once). Nothing queues here: at most one batch is held.
 */
import type { SpanRecord } from '../translate/types.js';
import type { TimerGuard } from '../timer-guard.js';
import { TraceBatch, type PreparedResource, type RemoteParent } from './trace-batch.js';

/** Where finished batches go (the spooling span exporter). */
export interface SpanRequestSink {
  push(body: Uint8Array, spans: number): void;
}

export interface SpanBatcherOptions {
  encoding: 'protobuf' | 'json';
  scope: { name: string; version: string };
  /** OTEL_BSP_MAX_EXPORT_BATCH_SIZE: spans per request. */
  maxBatchSpans: number;
  /** OTEL_BSP_SCHEDULE_DELAY: longest time a span waits in the batch. */
  delayMs: number;
}

/** The longest string attribute value exported (the SDK's spanLimits.attributeValueLengthLimit we used). */
const ATTRIBUTE_VALUE_LENGTH_LIMIT = 1024;

export class SpanBatcher {
  private readonly batch: TraceBatch;
  private timer: NodeJS.Timeout | undefined;
  /** flush() on the timer: a throw there is counted, not fatal. */
  private readonly onTimer: () => void;

  constructor(
    private readonly opts: SpanBatcherOptions,
    private readonly sink: SpanRequestSink,
    guard: TimerGuard,
  ) {
    this.onTimer = guard('the span batch timer', () => this.flush());
    this.batch = new TraceBatch({ encoding: opts.encoding, scope: opts.scope, attributeValueLengthLimit: ATTRIBUTE_VALUE_LENGTH_LIMIT });
  }

  /** Encodes one call's span tree under `resource`; returns the number of spans added. */
  add(resource: PreparedResource, span: SpanRecord): number {
    return this.added(this.batch.add(resource, span));
  }

  /** Encodes spans below an application's span (a joined call); returns the number of spans added. */
  addUnder(resource: PreparedResource, parent: RemoteParent, spans: readonly SpanRecord[]): number {
    return this.added(this.batch.addUnder(resource, parent, spans));
  }

  private added(n: number): number {
    if (this.batch.spans >= this.opts.maxBatchSpans) this.flush();
    else if (this.timer === undefined) {
      this.timer = setTimeout(this.onTimer, this.opts.delayMs);
      this.timer.unref();
    }
    return n;
  }

  /** Spans in the batch being filled (not yet a request). */
  get pendingSpans(): number {
    return this.batch.spans;
  }

  /** The current batch becomes one request now. */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const spans = this.batch.spans;
    const body = this.batch.take();
    if (body) this.sink.push(body, spans);
  }
}
