// A traced Node application as a user has one: aws-sdk v2 with CSM on (by the environment) and
// the real @opentelemetry/instrumentation-aws-sdk 0.50.0 (the last release that instruments v2),
// spans through the SDK's BatchSpanProcessor with its default timing (5 s), exported over OTLP
// to the bridge's app span listener (http/protobuf or grpc).
//
// Prints one JSON line per finished app span (from a second, in-memory processor) and one per
// call with its outcome, so the test knows the ground truth.
// argv: protocol (http|grpc), app OTLP endpoint, moto endpoint, scripted endpoint.
const { AwsInstrumentation } = require('@opentelemetry/instrumentation-aws-sdk');
const { NodeTracerProvider } = require('@opentelemetry/sdk-trace-node');
const { BatchSpanProcessor, SimpleSpanProcessor } = require('@opentelemetry/sdk-trace-base');
const { resourceFromAttributes } = require('@opentelemetry/resources');
const { suppressTracing } = require('@opentelemetry/core');
const api = require('@opentelemetry/api');

const [protocol, appEndpoint, motoEndpoint, scriptedEndpoint] = process.argv.slice(2);
const { OTLPTraceExporter } =
  protocol === 'grpc' ? require('@opentelemetry/exporter-trace-otlp-grpc') : require('@opentelemetry/exporter-trace-otlp-proto');

const printed = {
  export(spans, done) {
    for (const s of spans) {
      const ctx = s.spanContext();
      console.log(
        JSON.stringify({
          span: s.name,
          traceId: ctx.traceId,
          spanId: ctx.spanId,
          kind: s.kind,
          requestId: s.attributes['aws.request.id'] ?? null,
          endMs: s.endTime[0] * 1000 + s.endTime[1] / 1e6,
        }),
      );
    }
    done({ code: 0 });
  },
  shutdown: () => Promise.resolve(),
};

const provider = new NodeTracerProvider({
  resource: resourceFromAttributes({ 'service.name': 'traced-app', 'service.instance.id': `pid-${process.pid}` }),
  spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter({ url: appEndpoint })), new SimpleSpanProcessor(printed)],
});
provider.register();
new AwsInstrumentation(); // patches aws-sdk when it is required below

const AWS = require('aws-sdk');
const creds = { region: 'us-east-1', s3ForcePathStyle: true, retryDelayOptions: { base: 20 } };
const moto = new AWS.S3({ ...creds, endpoint: motoEndpoint, maxRetries: 3 });
const scripted = new AWS.S3({ ...creds, endpoint: scriptedEndpoint, maxRetries: 3 });
const tracer = api.trace.getTracer('traced-app');

async function call(name, fn, ctx = api.context.active()) {
  try {
    await api.context.with(ctx, fn);
    console.log(JSON.stringify({ call: name, ok: true }));
  } catch (e) {
    console.log(JSON.stringify({ call: name, ok: false, code: e.code, retryCount: e.retryCount }));
  }
}

(async () => {
  // A request of the app: its AWS calls are children of this span.
  await tracer.startActiveSpan('GET /orders', async (request) => {
    await call('CreateBucket', () => moto.createBucket({ Bucket: 'orders' }).promise());
    await call('PutObject', () => moto.putObject({ Bucket: 'orders', Key: 'o1', Body: 'x' }).promise());
    await call('GetObject', () => moto.getObject({ Bucket: 'orders', Key: 'o1' }).promise());
    await call('ListObjects', () => moto.listObjects({ Bucket: 'orders' }).promise());
    await call('HeadMissing', () => moto.headObject({ Bucket: 'orders', Key: 'nope' }).promise());
    await call('ListBucketsRetried', () => scripted.listBuckets().promise()); // 503, 503, 200
    request.end();
  });
  // A call the app does not trace: its CSM call can join nothing.
  await call('Untraced', () => moto.listBuckets().promise(), suppressTracing(api.context.active()));
  // Let the BatchSpanProcessor export on its own schedule (5 s), then stop.
  setTimeout(() => provider.shutdown().then(() => process.exit(0)), 6_000);
})();
