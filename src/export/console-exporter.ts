/**
 * OTEL_TRACES_EXPORTER / OTEL_METRICS_EXPORTER=console: each export request
 * as one line of OTLP/JSON on stdout (the same bytes http/json would POST),
 * so `aws-csm-bridge | jq` works and nothing needs a backend. The live view is
 * not shown then: it would share stdout.
 */
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { JsonMetricsSerializer } from '@opentelemetry/otlp-transformer';
import { AggregationTemporality, type PushMetricExporter, type ResourceMetrics } from '@opentelemetry/sdk-metrics';
import type { SpanRequestSink } from './span-batcher.js';

export type LineWriter = (line: string) => void;

const decoder = new TextDecoder();

/** Takes encoded OTLP/JSON span requests from a SpanBatcher. */
export class ConsoleSpanSink implements SpanRequestSink {
  /** `written`: told the spans of each request written (spans.exported, when no OTLP exporter counts them). */
  constructor(
    private readonly write: LineWriter,
    private readonly written: (spans: number) => void = () => {},
  ) {}

  push(body: Uint8Array, spans: number): void {
    this.write(`${decoder.decode(body)}\n`);
    this.written(spans);
  }
}

export class ConsoleMetricExporter implements PushMetricExporter {
  constructor(private readonly write: LineWriter) {}

  export(metrics: ResourceMetrics, done: (r: ExportResult) => void): void {
    try {
      const body = JsonMetricsSerializer.serializeRequest(metrics);
      if (body && body.byteLength > 0) this.write(`${decoder.decode(body)}\n`);
      done({ code: ExportResultCode.SUCCESS });
    } catch (e) {
      done({ code: ExportResultCode.FAILED, error: e as Error });
    }
  }

  selectAggregationTemporality(): AggregationTemporality {
    return AggregationTemporality.CUMULATIVE;
  }

  forceFlush(): Promise<void> {
    return Promise.resolve();
  }

  shutdown(): Promise<void> {
    return Promise.resolve();
  }
}
