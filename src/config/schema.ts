import { z } from 'zod';
import { splitHostPort } from '../net/address.js';
import { parseCidr } from '../receive/source-filter.js';

/**
 * The one config schema. Flags, environment variables, the YAML file and
 * `--help` are all derived from `OPTIONS`; nothing else declares a setting.
 *
 * `kind` says how a flag or env string becomes a value; the zod schema then
 * checks it, whatever its source, so every source gets the same errors.
 */
type Kind = 'string' | 'int' | 'number' | 'bool' | 'list';

interface Option<S extends z.ZodType> {
  schema: S;
  kind: Kind;
  /** Environment variables read for this key, first found wins. */
  env: readonly string[];
  help: string;
  /** Shown in --help instead of the default when the default is computed. */
  defaultText?: string;
}

const opt = <S extends z.ZodType>(schema: S, kind: Kind, help: string, env: readonly string[] = [], defaultText?: string): Option<S> =>
  defaultText === undefined ? { schema, kind, env, help } : { schema, kind, env, help, defaultText };

const hostPort = z
  .string()
  .regex(/^(\[[0-9a-fA-F:.]+\]|[^\s:[\]]+):\d{1,5}$/, 'expected HOST:PORT, with IPv6 in brackets, e.g. 127.0.0.1:31000 or [::1]:31000')
  .refine((s) => (splitHostPort(s)?.port ?? -1) <= 65535, 'port must be 0-65535');

const ms = (min: number) => z.number().int().min(min);

export const OPTIONS = {
  listen: opt(
    z.array(hostPort).min(1).default(['127.0.0.1:31000']),
    'list',
    'UDP address to receive CSM datagrams on; repeat for several (e.g. IPv4 and IPv6 loopback). Env: AWS_CSM_HOST/AWS_CSM_PORT, the variables the SDKs read.',
    [],
    '127.0.0.1:31000',
  ),
  allowSource: opt(
    z.array(z.string().refine((s) => parseCidr(s) !== undefined, 'expected an IPv4 or IPv6 address or CIDR, e.g. 10.0.0.0/8, 192.0.2.7 or fd00::/8')).default([]),
    'list',
    'Source addresses (CIDR) allowed to send datagrams; repeat for several. Others are dropped and counted (datagrams.dropped.source_not_allowed). Required, or allowAnySource, when listening on a non-loopback address.',
    ['AWS_CSM_BRIDGE_ALLOW_SOURCE'],
    'none (loopback listen only)',
  ),
  allowAnySource: opt(
    z.boolean().default(false),
    'bool',
    'Accept datagrams from any source on a non-loopback listen address (only on a trusted network). A flag without value means true.',
    ['AWS_CSM_BRIDGE_ALLOW_ANY_SOURCE'],
  ),
  receiveBufferBytes: opt(
    z.number().int().min(65536).default(8 * 1024 * 1024),
    'int',
    'Socket receive buffer (SO_RCVBUF) in bytes; the kernel may cap it at net.core.rmem_max.',
    ['AWS_CSM_BRIDGE_RECEIVE_BUFFER_BYTES'],
  ),
  udpReceiver: opt(
    z.enum(['auto', 'recvmmsg', 'dgram']).default('auto'),
    'string',
    'How datagrams are read: recvmmsg (Linux; a native addon built at install, up to 64 datagrams per system call: less CPU per datagram), dgram (node:dgram, one call per datagram) or auto = recvmmsg when the addon is built, else dgram.',
    ['AWS_CSM_BRIDGE_UDP_RECEIVER'],
  ),
  maxDatagramBytes: opt(
    z.number().int().min(1024).max(65535).default(65535),
    'int',
    'Datagrams longer than this are rejected as oversize.',
    ['AWS_CSM_BRIDGE_MAX_DATAGRAM_BYTES'],
  ),
  admin: opt(
    z.union([hostPort, z.literal('off')]).default('127.0.0.1:31001'),
    'string',
    'HTTP address for the web view (GET /), GET /healthz, /stats and /policy, or "off".',
    ['AWS_CSM_BRIDGE_ADMIN'],
  ),
  traceUrlTemplate: opt(
    z
      .string()
      .url()
      .refine((s) => /^https?:\/\//i.test(s), 'expected an http:// or https:// URL')
      .refine((s) => s.includes('{traceId}'), 'expected {traceId} in the URL, e.g. http://localhost:16686/trace/{traceId}')
      .optional(),
    'string',
    'The web view (GET / on the admin listener) links a call joined into an application\'s trace (--app-otlp-http/-grpc) to this URL, {traceId} replaced by the trace id (32 hex): Jaeger http://localhost:16686/trace/{traceId}, Tempo in Grafana …',
    ['AWS_CSM_BRIDGE_TRACE_URL_TEMPLATE'],
    'none (the trace id is shown without a link)',
  ),
  otlpEndpoint: opt(
    z.string().url().optional(),
    'string',
    'OTLP base URL for both signals, over every OTEL_EXPORTER_OTLP_*ENDPOINT variable. http/*: /v1/traces and /v1/metrics are appended; grpc: scheme://host:port. Without it the standard variables apply (default http://localhost:4318, grpc http://localhost:4317).',
    ['AWS_CSM_BRIDGE_OTLP_ENDPOINT'],
    'from OTEL_EXPORTER_OTLP_ENDPOINT',
  ),
  otlpProtocol: opt(
    z.enum(['http/protobuf', 'http/json', 'grpc']).default('http/protobuf'),
    'string',
    'OTLP transport and encoding; OTEL_EXPORTER_OTLP_TRACES_PROTOCOL / _METRICS_PROTOCOL override it per signal.',
    ['OTEL_EXPORTER_OTLP_PROTOCOL'],
  ),
  sampleKeep: opt(
    z
      .array(z.string().regex(/^(errors|retries|none|slow:\d+(ms|s))$/, 'expected errors, retries, slow:DURATION (e.g. slow:2000ms or slow:2s) or none'))
      .refine((a) => !(a.includes('none') && a.length > 1), 'none cannot be combined with other rules')
      .default(['errors', 'retries']),
    'list',
    'With sampling on (OTEL_TRACES_SAMPLER below 100 %): calls always kept whatever the sampler says: errors (a failed call), retries (more than one attempt), slow:DURATION (slower than that); none = the sampler alone decides. Metrics always count every call.',
    ['AWS_CSM_BRIDGE_SAMPLE_KEEP'],
  ),
  maxMetricSeries: opt(
    z.number().int().min(100).default(20_000),
    'int',
    'Metric series kept across all clients and instruments (each instrument also has at most 500 per ClientId). Beyond it, new series go to the instrument\'s otel.metric.overflow series, counted in metricPoints.overflowed: memory stays bounded however many clients and APIs there are.',
    ['AWS_CSM_BRIDGE_MAX_METRIC_SERIES'],
  ),
  allowRemoteHttp: opt(
    z.boolean().default(false),
    'bool',
    'Let the admin listener and the Prometheus endpoint bind a non-loopback address (both answer without authentication: counters, client names and metrics). Without it the bridge refuses to start with one.',
    ['AWS_CSM_BRIDGE_ALLOW_REMOTE_HTTP'],
  ),
  appOtlpHttp: opt(
    hostPort.optional(),
    'string',
    'Receive the applications\' spans over OTLP/HTTP (POST /v1/traces, protobuf or JSON, gzip) on this address, to put each AWS call\'s attempts inside the application\'s own trace, below its SDK span (joined by request id; docs/app-traces.md). The spans are read for the join, never forwarded. Loopback unless allowRemoteHttp.',
    ['AWS_CSM_BRIDGE_APP_OTLP_HTTP'],
    'off',
  ),
  appOtlpGrpc: opt(
    hostPort.optional(),
    'string',
    'The same over OTLP/gRPC (TraceService/Export).',
    ['AWS_CSM_BRIDGE_APP_OTLP_GRPC'],
    'off',
  ),
  appJoinWindowMs: opt(
    ms(0).max(60_000).default(7_000),
    'int',
    'With an app span listener: how long a call that may still be joined waits for the application\'s span (an SDK batch processor waits 5 s by default, then the Collector batches); after it the call is exported standalone.',
    ['AWS_CSM_BRIDGE_APP_JOIN_WINDOW_MS'],
  ),
  appJoinAttemptKind: opt(
    z.enum(['internal', 'client']).default('internal'),
    'string',
    'Span kind of the attempts hung below an application\'s SDK span: internal (default: span metrics and service graphs do not count the call twice) or client (semconv\'s HTTP guidance: one CLIENT span per attempt).',
    ['AWS_CSM_BRIDGE_APP_JOIN_ATTEMPT_KIND'],
  ),
  attemptHoldMs: opt(
    ms(0).default(300_000),
    'int',
    'How long an attempt waits for its ApiCall before it is exported as an orphan. Retries with backoff can take minutes.',
    ['AWS_CSM_BRIDGE_ATTEMPT_HOLD_MS'],
  ),
  callHoldMs: opt(
    ms(0).default(3_000),
    'int',
    'How long an ApiCall with fewer attempts than its AttemptCount waits for late ones (Ruby sends the call first).',
    ['AWS_CSM_BRIDGE_CALL_HOLD_MS'],
  ),
  maxPending: opt(
    z.number().int().min(1).default(100_000),
    'int',
    'Cap on attempts and calls waiting to be matched; beyond it the oldest are exported early.',
    ['AWS_CSM_BRIDGE_MAX_PENDING'],
  ),
  memoryCeilingMb: opt(
    z.number().int().min(0).default(256),
    'int',
    'Resident memory (RSS, MiB) above which pending correlation state is shed oldest-first (exported early, counted in memory.*); 0 = no ceiling.',
    ['AWS_CSM_BRIDGE_MEMORY_CEILING_MB'],
  ),
  matchToleranceMs: opt(
    ms(0).default(50),
    'int',
    'Clock slack allowed when fitting an attempt inside its call.',
    ['AWS_CSM_BRIDGE_MATCH_TOLERANCE_MS'],
  ),
  matchSettleMs: opt(
    ms(0).default(750),
    'int',
    'Longest time an ApiCall whose candidate attempts could also be a concurrent identical call\'s waits for that call to arrive, so both are decided together (most probable assignment under the SDK retry models). A call with no such competitor is exported at once; 0 = decide every call on arrival.',
    ['AWS_CSM_BRIDGE_MATCH_SETTLE_MS'],
  ),
  timestampSemantics: opt(
    z.enum(['auto', 'start', 'end']).default('auto'),
    'string',
    'What CSM Timestamp marks: auto = end for Go v1 (by UserAgent), start for the other SDKs.',
    ['AWS_CSM_BRIDGE_TIMESTAMP_SEMANTICS'],
  ),
  accessKey: opt(
    z.enum(['drop', 'suffix', 'hash']).default('drop'),
    'string',
    'Export AccessKey as csm.access_key? drop (default), suffix (last 4 characters) or hash (salted SHA-256, 16 hex).',
    ['AWS_CSM_BRIDGE_ACCESS_KEY'],
  ),
  accessKeySalt: opt(
    z.string().default(''),
    'string',
    'Salt for accessKey: hash. Set it to keep hashes stable across restarts; when empty a random salt is used.',
    ['AWS_CSM_BRIDGE_ACCESS_KEY_SALT'],
  ),
  attemptSpanKind: opt(
    z.enum(['client', 'internal']).default('client'),
    'string',
    'Span kind of attempt spans; internal avoids doubled service-graph edges.',
    ['AWS_CSM_BRIDGE_ATTEMPT_SPAN_KIND'],
  ),
  semconvStabilityOptIn: opt(
    z.array(z.string()).default([]),
    'list',
    'Semantic-convention opt-ins (comma list), as the OTel SDKs read them: rpc = stable RPC attributes (rpc.method = Service/Api, no rpc.system/rpc.service), rpc/dup = both. Other entries are ignored.',
    ['OTEL_SEMCONV_STABILITY_OPT_IN'],
    'none (the old RPC attributes)',
  ),
  jsInstrumentationKeys: opt(
    z.boolean().default(false),
    'bool',
    'Also write aws.request.id / aws.request.extended_id, the keys of the JS instrumentation-aws-sdk, next to the semconv request-id keys.',
    ['CSM_COMPAT_JS_INSTRUMENTATION_KEYS'],
  ),
  defaultServiceName: opt(
    z.string().min(1).default('unknown_service:aws-csm'),
    'string',
    'service.name for clients that send an empty ClientId.',
    ['AWS_CSM_BRIDGE_DEFAULT_SERVICE_NAME'],
  ),
  serviceNamespace: opt(
    z.string().optional(),
    'string',
    'service.namespace put on every monitored client resource.',
    ['AWS_CSM_BRIDGE_SERVICE_NAMESPACE'],
  ),
  maxClients: opt(
    z.number().int().min(1).max(10_000).default(50),
    'int',
    'Distinct ClientIds exported as their own service; the rest share service.name "aws-csm:other". With processIdentity, (ClientId, sending process) pairs count too (their spans carry the process), and those of exited processes are closed to make room.',
    ['AWS_CSM_BRIDGE_MAX_CLIENTS'],
  ),
  processIdentity: opt(
    z.enum(['auto', 'on', 'off']).default('auto'),
    'string',
    'Add the sending process (process.pid, process.executable.name, container.id) to each client\'s resource, found via /proc/net/udp and /proc/*/fd (Linux, best effort). auto = for loopback senders only; on = for any sender whose socket is in this network namespace; off.',
    ['AWS_CSM_BRIDGE_PROCESS_IDENTITY'],
  ),
  processCommandLine: opt(
    z.boolean().default(false),
    'bool',
    'With processIdentity: also add process.command_line (cut to 1024 characters). Off by default: command lines can hold secrets.',
    ['AWS_CSM_BRIDGE_PROCESS_COMMAND_LINE'],
  ),
  exportDelayMs: opt(
    ms(1).default(1_000),
    'int',
    'Longest time a finished span waits in the current batch before it goes to the export spool.',
    ['OTEL_BSP_SCHEDULE_DELAY'],
  ),
  exportBatchSize: opt(
    z.number().int().min(1).default(1_024),
    'int',
    'Spans per OTLP export request: a full batch goes to the export spool at once.',
    ['OTEL_BSP_MAX_EXPORT_BATCH_SIZE'],
  ),
  metricsIntervalMs: opt(
    ms(100).default(15_000),
    'int',
    'Metric export interval.',
    ['OTEL_METRIC_EXPORT_INTERVAL'],
  ),
  spoolMaxBytes: opt(
    z.number().int().min(65536).default(64 * 1024 * 1024),
    'int',
    'Export spool bound in bytes of serialized OTLP requests, in memory or in spoolDir: what waits while the OTLP endpoint is down or slow (metrics may use 1/8 of it). When full, the oldest batches are dropped and counted (spool.droppedSpans).',
    ['AWS_CSM_BRIDGE_SPOOL_MAX_BYTES'],
  ),
  spoolDir: opt(
    z.string().min(1).optional(),
    'string',
    'Keep the export spool in this directory instead of memory: batches survive a restart and are sent at the next start.',
    ['AWS_CSM_BRIDGE_SPOOL_DIR'],
    'none (memory)',
  ),
  shutdownTimeoutMs: opt(
    ms(100).default(10_000),
    'int',
    'Longest time SIGTERM/SIGINT waits for the final flush before exiting.',
    ['AWS_CSM_BRIDGE_SHUTDOWN_TIMEOUT_MS'],
  ),
  logLevel: opt(
    z.enum(['debug', 'info', 'warn', 'error', 'none']).default('info'),
    'string',
    'Least severe log level written (JSON lines on stderr); none = no log. When unset, OTEL_LOG_LEVEL applies.',
    ['AWS_CSM_BRIDGE_LOG_LEVEL'],
  ),
  ui: opt(
    z.boolean().default(true),
    'bool',
    'Show the live view (calls per Service.Api, latencies, errors, export health) when stdout is a terminal; --no-ui or false writes JSON logs instead. Never shown when stdout is not a terminal.',
    ['AWS_CSM_BRIDGE_UI'],
  ),
  recordMaxBytes: opt(
    z.number().int().min(1024).default(256 * 1024 * 1024),
    'int',
    'record FILE: largest recording in bytes; later datagrams are counted, not written.',
    ['AWS_CSM_BRIDGE_RECORD_MAX_BYTES'],
  ),
  replaySpeed: opt(
    // Slower than 1/1000 stretches a 1 s gap past 16 minutes: a typo, not a replay.
    z
      .number()
      .refine((v) => v === 0 || (v >= 0.001 && v <= 1_000_000), 'expected 0 (as fast as possible) or a speed from 0.001 to 1000000')
      .default(1),
    'number',
    'replay FILE: divides the recorded gaps between datagrams (2 = twice as fast), 0.001 to 1000000; 0 = as fast as possible. Also --speed.',
    ['AWS_CSM_BRIDGE_REPLAY_SPEED'],
  ),
  policyFile: opt(
    z.string().min(1).optional(),
    'string',
    'Keep the observed calls behind each application\'s IAM policy in this file: loaded at start (observation accumulates across restarts), written atomically when it changes (at most every policyWriteDelayMs), on SIGHUP and at shutdown. A file that cannot be read or parsed stops the bridge (exit 2); it is never overwritten.',
    ['AWS_CSM_BRIDGE_POLICY_FILE'],
    'none (memory only)',
  ),
  policyWriteDelayMs: opt(
    ms(100).default(5_000),
    'int',
    'With policyFile: how long a change waits before the file is written (changes in that time are written together).',
    ['AWS_CSM_BRIDGE_POLICY_WRITE_DELAY_MS'],
  ),
  policyClient: opt(
    z.string().optional(),
    'string',
    'policy FILE: print exactly one IAM policy document, for this ClientId (or "ClientId [process]" label); without it every client\'s policy, keyed by client. Also --client.',
    [],
    'none (every client)',
  ),
  policyFailsOnly: opt(
    z.boolean().default(false),
    'bool',
    'policy FILE: only the calls that failed (to fix an AccessDenied quickly). Also --fails-only.',
    [],
  ),
  policyIncludePossible: opt(
    z.boolean().default(false),
    'bool',
    'policy FILE: also the actions a call needs only with some parameters (DynamoDB TransactWriteItems, S3 CopyObject with tagging …). Also --include-possible.',
    [],
  ),
} as const;

export type OptionKey = keyof typeof OPTIONS;

export const configSchema = z
  .object(Object.fromEntries(Object.entries(OPTIONS).map(([k, o]) => [k, o.schema])) as {
    [K in OptionKey]: (typeof OPTIONS)[K]['schema'];
  })
  .strict();

export type Config = z.output<typeof configSchema>;

/** What a user gets without any flag, variable or file: tests build their stages from it. */
export const DEFAULT_CONFIG: Config = configSchema.parse({});
