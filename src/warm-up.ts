/**
 * Runs the datagram path (decode → correlate → translate → encode → aggregate)
 * on made-up calls before the sockets open, with throw-away instances.
 *
 * Why: V8 runs new code in its interpreter first. Measured with a cold
 * bridge thrown into 50k datagrams/s, the first ~300 ms of traffic filled
 * the 8 MiB socket buffer and the kernel dropped 4-12k datagrams; warmed, the
 * same run dropped none. Costs about 0.2 s of CPU once, at start.
 */
import { AggregationTemporality } from '@opentelemetry/sdk-metrics';
import { MetricAggregator } from './export/metric-aggregator.js';
import { prepareResource, TraceBatch } from './export/trace-batch.js';
import { createLogger } from './log.js';
import { Pipeline, type PipelineOptions } from './pipeline.js';
import { newStats } from './stats.js';
import { METRIC_INSTRUMENTS } from './translate/instruments.js';

const UA = 'Boto3/1.43.11 md/Botocore#1.43.11 ua/2.1 os/linux#6.18 md/arch#x86_64 lang/python#3.11.7 cfg/retry-mode#standard Botocore/1.43.11';

/**
 * Made-up calls in botocore's shapes: a success in one attempt, a 500 then a
 * success, a 4xx error. Varied, so the compiled code is not specialised to one shape.
 */
function sampleCall(i: number, t: number): string[] {
  const [service, api, region, host] = SERVICES[i % SERVICES.length]!;
  const common = `"Version":1,"ClientId":"warm-up","Service":"${service}","Api":"${api}","Region":"${region}","UserAgent":"${UA}","AccessKey":"AKIAIOSFODNN7EXAMPLE"`;
  const attempt = (n: number, status: number, extra: string) =>
    `{${common},"Type":"ApiCallAttempt","Timestamp":${t + n * 20},"AttemptLatency":${5 + (i % 7)},"Fqdn":"${host}","HttpStatusCode":${status},"XAmznRequestId":"warm-${i}-${n}"${extra}}`;
  const call = (attempts: number, status: number, extra: string) =>
    `{${common},"Type":"ApiCall","Timestamp":${t},"Latency":${40 + (i % 11)},"AttemptCount":${attempts},"FinalHttpStatusCode":${status},"MaxRetriesExceeded":0${extra}}`;
  switch (i % 3) {
    case 0:
      return [attempt(0, 200, ''), call(1, 200, '')];
    case 1:
      return [attempt(0, 500, `,"AwsException":"InternalError","AwsExceptionMessage":"try again"`), attempt(1, 200, ''), call(2, 200, '')];
    default:
      return [
        attempt(0, 400, `,"AwsException":"ValidationException","AwsExceptionMessage":"bad input"`),
        call(1, 400, `,"FinalAwsException":"ValidationException","FinalAwsExceptionMessage":"bad input"`),
      ];
  }
}

const SERVICES: readonly (readonly [string, string, string, string])[] = [
  ['DynamoDB', 'GetItem', 'us-east-1', 'dynamodb.us-east-1.amazonaws.com'],
  ['S3', 'PutObject', 'eu-west-1', 'bucket.s3.eu-west-1.amazonaws.com'],
  ['STS', 'GetCallerIdentity', 'us-west-2', '127.0.0.1:45123'],
  ['SQS', 'SendMessage', 'ap-south-1', 'sqs.ap-south-1.amazonaws.com'],
];

export interface WarmUpOptions {
  /** The bridge's own stage options, so the code compiled is the code that runs. */
  pipeline: PipelineOptions;
  encoding: 'protobuf' | 'json';
  calls?: number;
}

/** The warm-up's made-up traffic is not worth a log line. */
const SILENT = createLogger('error', () => {});

/** Returns the number of calls that came out of the pipeline (all of them, unless something is broken). */
export function warmUp(opts: WarmUpOptions): number {
  const calls = opts.calls ?? 3_000;
  const batch = new TraceBatch({ encoding: opts.encoding, scope: { name: 'warm-up', version: '0' }, attributeValueLengthLimit: 1024 });
  const resource = prepareResource({ 'service.name': 'warm-up' });
  const metrics = new MetricAggregator({
    instruments: METRIC_INSTRUMENTS,
    scope: { name: 'warm-up', version: '0' },
    temporality: () => AggregationTemporality.CUMULATIVE,
    cardinalityLimit: 500,
  });
  let out = 0;
  // A scratch pipeline with the bridge's options (its own stats: made-up traffic is not counted).
  const pipeline = new Pipeline(
    { ...opts.pipeline, allowSource: [] },
    {
      write: (c, t) => {
        batch.add(resource, t.span);
        metrics.record(t.metrics);
        if (c.kind === 'call') out++;
        if (batch.spans >= 1024) batch.take();
      },
    },
    newStats(0),
    SILENT,
  );
  const source = { address: '127.0.0.1', port: 1 };
  const start = Date.now() - 60_000;
  for (let i = 0; i < calls; i++) {
    const t = start + i;
    for (const text of sampleCall(i, t)) pipeline.ingest(Buffer.from(text), source, t + 100);
  }
  pipeline.flush();
  batch.take();
  return out;
}
