import { z } from 'zod';
import { splitHostPort } from '../net/address.js';
import { parseCidr } from '../receive/source-filter.js';

/**
 * The one config schema. Flags, environment variables, the YAML file and
 * `--help` are all derived from `OPTIONS`; nothing else declares a setting.
 *
 * `kind` says how a flag, variable or YAML string becomes a value; the zod
 * schema then checks it, whatever its source, so every source gets the same
 * errors. `group` and `value` say where and how `--help` shows it.
 */

/** How a string becomes a value: `ms` and `bytes` also take a unit (5s, 2m; 64MiB), so `--attempt-hold-ms 5s` is 5000. */
export type Kind = 'string' | 'int' | 'ms' | 'bytes' | 'number' | 'bool' | 'list';

/** The groups of `--help`, in the order shown: what a newcomer needs first. */
export const GROUPS = {
  start: {
    title: 'Getting started',
    intro:
      'In the application: AWS_CSM_ENABLED=true turns CSM on (AWS_CSM_PORT if not 31000), AWS_CSM_CLIENT_ID=my-app names it (its service.name). No collector yet? OTEL_TRACES_EXPORTER=console prints the spans on stdout.',
  },
  access: { title: 'Who may send and connect', intro: '' },
  receive: { title: 'Receiving datagrams', intro: '' },
  correlation: { title: 'Matching attempts to their calls', intro: '' },
  output: { title: 'What is exported', intro: '' },
  join: { title: 'Joining the applications\' own traces', intro: '' },
  export: { title: 'Export batches, spool and shutdown', intro: '' },
  policy: { title: 'IAM policies', intro: '' },
  run: { title: 'Logs, live view, record and replay', intro: '' },
} as const;
export type Group = keyof typeof GROUPS;

interface Option<S extends z.ZodType> {
  group: Group;
  kind: Kind;
  /** The value as --help names it (HOST:PORT, URL); without it: an enum's values, MS, BYTES or N. */
  value?: string;
  schema: S;
  /** Environment variables read for this key, first found wins. */
  env?: readonly string[];
  /** Shown in --help instead of the default when the default is computed. */
  defaultText?: string;
  help: string;
}

const opt = <S extends z.ZodType>(o: Option<S>): Option<S> & { env: readonly string[] } => ({ ...o, env: o.env ?? [] });

const hostPort = z
  .string()
  .regex(/^(\[[0-9a-fA-F:.]+\]|[^\s:[\]]+):\d{1,5}$/, 'expected HOST:PORT, with IPv6 in brackets, e.g. 127.0.0.1:31000 or [::1]:31000')
  .refine((s) => (splitHostPort(s)?.port ?? -1) <= 65535, 'port must be 0-65535');

const ms = (min: number) => z.number().int().min(min);

export const OPTIONS = {
  listen: opt({
    group: 'start',
    kind: 'list',
    value: 'HOST:PORT',
    schema: z.array(hostPort).min(1).default(['127.0.0.1:31000']),
    defaultText: '127.0.0.1:31000',
    help: 'UDP address to receive CSM datagrams on; repeat for several (e.g. IPv4 and IPv6 loopback). Env AWS_CSM_HOST, AWS_CSM_PORT: the variables the SDKs read.',
  }),
  allowSource: opt({
    group: 'access',
    kind: 'list',
    value: 'CIDR',
    schema: z.array(z.string().refine((s) => parseCidr(s) !== undefined, 'expected an IPv4 or IPv6 address or CIDR, e.g. 10.0.0.0/8, 192.0.2.7 or fd00::/8')).default([]),
    env: ['AWS_CSM_BRIDGE_ALLOW_SOURCE'],
    defaultText: 'none (loopback listen only)',
    help: 'Source addresses (CIDR) allowed to send datagrams; repeat for several. Others are dropped and counted (datagrams.dropped.source_not_allowed). Required, or allowAnySource, when listening on a non-loopback address.',
  }),
  allowAnySource: opt({
    group: 'access',
    kind: 'bool',
    schema: z.boolean().default(false),
    env: ['AWS_CSM_BRIDGE_ALLOW_ANY_SOURCE'],
    help: 'Accept datagrams from any source on a non-loopback listen address (only on a trusted network).',
  }),
  receiveBufferBytes: opt({
    group: 'receive',
    kind: 'bytes',
    schema: z.number().int().min(65536).default(8 * 1024 * 1024),
    env: ['AWS_CSM_BRIDGE_RECEIVE_BUFFER_BYTES'],
    help: 'Socket receive buffer (SO_RCVBUF) in bytes; the kernel may cap it at net.core.rmem_max.',
  }),
  udpReceiver: opt({
    group: 'receive',
    kind: 'string',
    schema: z.enum(['auto', 'recvmmsg', 'dgram']).default('auto'),
    env: ['AWS_CSM_BRIDGE_UDP_RECEIVER'],
    help: 'How datagrams are read: recvmmsg (Linux; a native addon built at install, up to 64 datagrams per system call: less CPU per datagram), dgram (node:dgram, one call per datagram) or auto = recvmmsg when the addon is built, else dgram.',
  }),
  maxDatagramBytes: opt({
    group: 'receive',
    kind: 'bytes',
    schema: z.number().int().min(1024).max(65535).default(65535),
    env: ['AWS_CSM_BRIDGE_MAX_DATAGRAM_BYTES'],
    help: 'Datagrams longer than this are rejected as oversize.',
  }),
  admin: opt({
    group: 'start',
    kind: 'string',
    value: 'HOST:PORT|off',
    schema: z.union([hostPort, z.literal('off')]).default('127.0.0.1:31001'),
    env: ['AWS_CSM_BRIDGE_ADMIN'],
    help: 'HTTP address for GET /healthz and GET /stats, or "off".',
  }),
  traceUrlTemplate: opt({
    group: 'run',
    kind: 'string',
    value: 'URL',
    schema: z
      .string()
      .url()
      .refine((s) => /^https?:\/\//i.test(s), 'expected an http:// or https:// URL')
      .refine((s) => s.includes('{traceId}'), 'expected {traceId} in the URL, e.g. http://localhost:16686/trace/{traceId}')
      .optional(),
    env: ['AWS_CSM_BRIDGE_TRACE_URL_TEMPLATE'],
    defaultText: 'none (the trace id is shown without a link)',
    help: "The web view (GET / on the admin listener) links a call joined into an application's trace (--app-otlp-http/-grpc) to this URL, {traceId} replaced by the trace id (32 hex): Jaeger http://localhost:16686/trace/{traceId}, Tempo in Grafana …",
  }),
  otlpEndpoint: opt({
    group: 'start',
    kind: 'string',
    value: 'URL',
    schema: z.string().url().optional(),
    env: ['AWS_CSM_BRIDGE_OTLP_ENDPOINT'],
    help: 'OTLP base URL for both signals. http/*: /v1/traces and /v1/metrics are appended; grpc: scheme://host:port. As a flag it beats every OTEL_EXPORTER_OTLP_*ENDPOINT variable; in the environment or the file, a per-signal variable beats it. Default http://localhost:4318, grpc http://localhost:4317.',
  }),
  otlpProtocol: opt({
    group: 'start',
    kind: 'string',
    schema: z.enum(['http/protobuf', 'http/json', 'grpc']).default('http/protobuf'),
    env: ['OTEL_EXPORTER_OTLP_PROTOCOL'],
    help: 'OTLP transport and encoding. As a flag it beats every protocol variable; otherwise OTEL_EXPORTER_OTLP_TRACES_PROTOCOL / _METRICS_PROTOCOL beat it per signal.',
  }),
  sampleKeep: opt({
    group: 'output',
    kind: 'list',
    value: 'RULE',
    schema: z
      .array(z.string().regex(/^(errors|retries|none|slow:\d+(ms|s))$/, 'expected errors, retries, slow:DURATION (e.g. slow:2000ms or slow:2s) or none'))
      .refine((a) => !(a.includes('none') && a.length > 1), 'none cannot be combined with other rules')
      .default(['errors', 'retries']),
    env: ['AWS_CSM_BRIDGE_SAMPLE_KEEP'],
    help: 'With sampling on (OTEL_TRACES_SAMPLER below 100 %): calls always kept whatever the sampler says: errors (a failed call), retries (more than one attempt), slow:DURATION (slower than that); none = the sampler alone decides. Metrics always count every call.',
  }),
  maxMetricSeries: opt({
    group: 'output',
    kind: 'int',
    schema: z.number().int().min(100).default(20_000),
    env: ['AWS_CSM_BRIDGE_MAX_METRIC_SERIES'],
    help: 'Metric series kept across all clients and instruments (each instrument also has at most 500 per ClientId). Beyond it, new series go to the instrument\'s otel.metric.overflow series, counted in metricPoints.overflowed: memory stays bounded however many clients and APIs there are.',
  }),
  allowRemoteHttp: opt({
    group: 'access',
    kind: 'bool',
    schema: z.boolean().default(false),
    env: ['AWS_CSM_BRIDGE_ALLOW_REMOTE_HTTP'],
    help: 'Let the admin listener and the Prometheus endpoint bind a non-loopback address (both answer without authentication: counters, client names and metrics). Without it the bridge refuses to start with one.',
  }),
  appOtlpHttp: opt({
    group: 'join',
    kind: 'string',
    value: 'HOST:PORT',
    schema: hostPort.optional(),
    env: ['AWS_CSM_BRIDGE_APP_OTLP_HTTP'],
    defaultText: 'off',
    help: 'Receive the applications\' spans over OTLP/HTTP (POST /v1/traces, protobuf or JSON, gzip) on this address, to put each AWS call\'s attempts inside the application\'s own trace, below its SDK span (joined by request id; docs/app-traces.md). The spans are read for the join, never forwarded. Loopback unless allowRemoteHttp.',
  }),
  appOtlpGrpc: opt({
    group: 'join',
    kind: 'string',
    value: 'HOST:PORT',
    schema: hostPort.optional(),
    env: ['AWS_CSM_BRIDGE_APP_OTLP_GRPC'],
    defaultText: 'off',
    help: 'The same over OTLP/gRPC (TraceService/Export).',
  }),
  appJoinWindowMs: opt({
    group: 'join',
    kind: 'ms',
    schema: ms(0).max(60_000).default(7_000),
    env: ['AWS_CSM_BRIDGE_APP_JOIN_WINDOW_MS'],
    help: 'With an app span listener: how long a call that may still be joined waits for the application\'s span (an SDK batch processor waits 5 s by default, then the Collector batches); after it the call is exported standalone.',
  }),
  appJoinAttemptKind: opt({
    group: 'join',
    kind: 'string',
    schema: z.enum(['internal', 'client']).default('internal'),
    env: ['AWS_CSM_BRIDGE_APP_JOIN_ATTEMPT_KIND'],
    help: 'Span kind of the attempts hung below an application\'s SDK span: internal (default: span metrics and service graphs do not count the call twice) or client (semconv\'s HTTP guidance: one CLIENT span per attempt).',
  }),
  attemptHoldMs: opt({
    group: 'correlation',
    kind: 'ms',
    schema: ms(0).default(300_000),
    env: ['AWS_CSM_BRIDGE_ATTEMPT_HOLD_MS'],
    help: 'How long an attempt waits for its ApiCall before it is exported as an orphan. Retries with backoff can take minutes.',
  }),
  callHoldMs: opt({
    group: 'correlation',
    kind: 'ms',
    schema: ms(0).default(3_000),
    env: ['AWS_CSM_BRIDGE_CALL_HOLD_MS'],
    help: 'How long an ApiCall with fewer attempts than its AttemptCount waits for late ones (Ruby sends the call first).',
  }),
  maxPending: opt({
    group: 'correlation',
    kind: 'int',
    schema: z.number().int().min(1).default(100_000),
    env: ['AWS_CSM_BRIDGE_MAX_PENDING'],
    help: 'Cap on attempts and calls waiting to be matched; beyond it the oldest are exported early.',
  }),
  memoryCeilingMb: opt({
    group: 'correlation',
    kind: 'int',
    value: 'MIB',
    schema: z.number().int().min(0).default(256),
    env: ['AWS_CSM_BRIDGE_MEMORY_CEILING_MB'],
    help: 'Resident memory (RSS, MiB) above which pending correlation state is shed oldest-first (exported early, counted in memory.*); 0 = no ceiling.',
  }),
  matchToleranceMs: opt({
    group: 'correlation',
    kind: 'ms',
    schema: ms(0).default(50),
    env: ['AWS_CSM_BRIDGE_MATCH_TOLERANCE_MS'],
    help: 'Clock slack allowed when fitting an attempt inside its call.',
  }),
  matchSettleMs: opt({
    group: 'correlation',
    kind: 'ms',
    schema: ms(0).default(750),
    env: ['AWS_CSM_BRIDGE_MATCH_SETTLE_MS'],
    help: 'Longest time an ApiCall whose candidate attempts could also be a concurrent identical call\'s waits for that call to arrive, so both are decided together (most probable assignment under the SDK retry models). A call with no such competitor is exported at once; 0 = decide every call on arrival.',
  }),
  timestampSemantics: opt({
    group: 'correlation',
    kind: 'string',
    schema: z.enum(['auto', 'start', 'end']).default('auto'),
    env: ['AWS_CSM_BRIDGE_TIMESTAMP_SEMANTICS'],
    help: 'What CSM Timestamp marks: auto = end for Go v1 (by UserAgent), start for the other SDKs.',
  }),
  accessKey: opt({
    group: 'output',
    kind: 'string',
    schema: z.enum(['drop', 'suffix', 'hash']).default('drop'),
    env: ['AWS_CSM_BRIDGE_ACCESS_KEY'],
    help: 'Export AccessKey as csm.access_key? drop (default), suffix (last 4 characters) or hash (salted SHA-256, 16 hex).',
  }),
  accessKeySalt: opt({
    group: 'output',
    kind: 'string',
    value: 'TEXT',
    schema: z.string().default(''),
    env: ['AWS_CSM_BRIDGE_ACCESS_KEY_SALT'],
    help: 'Salt for accessKey: hash. Set it to keep hashes stable across restarts; when empty a random salt is used.',
  }),
  attemptSpanKind: opt({
    group: 'output',
    kind: 'string',
    schema: z.enum(['client', 'internal']).default('client'),
    env: ['AWS_CSM_BRIDGE_ATTEMPT_SPAN_KIND'],
    help: 'Span kind of attempt spans; internal avoids doubled service-graph edges.',
  }),
  semconvStabilityOptIn: opt({
    group: 'output',
    kind: 'list',
    value: 'LIST',
    schema: z.array(z.string()).default([]),
    env: ['OTEL_SEMCONV_STABILITY_OPT_IN'],
    defaultText: 'none (the old RPC attributes)',
    help: 'Semantic-convention opt-ins (comma list), as the OTel SDKs read them: rpc = stable RPC attributes (rpc.method = Service/Api, no rpc.system/rpc.service), rpc/dup = both. Other entries are ignored.',
  }),
  jsInstrumentationKeys: opt({
    group: 'output',
    kind: 'bool',
    schema: z.boolean().default(false),
    env: ['CSM_COMPAT_JS_INSTRUMENTATION_KEYS'],
    help: 'Also write aws.request.id / aws.request.extended_id, the keys of the JS instrumentation-aws-sdk, next to the semconv request-id keys.',
  }),
  defaultServiceName: opt({
    group: 'start',
    kind: 'string',
    value: 'NAME',
    schema: z.string().min(1).default('unknown_service:aws-csm'),
    env: ['AWS_CSM_BRIDGE_DEFAULT_SERVICE_NAME'],
    help: 'service.name for clients that send an empty ClientId.',
  }),
  serviceNamespace: opt({
    group: 'start',
    kind: 'string',
    value: 'NAME',
    schema: z.string().optional(),
    env: ['AWS_CSM_BRIDGE_SERVICE_NAMESPACE'],
    help: 'service.namespace put on every monitored client resource.',
  }),
  maxClients: opt({
    group: 'output',
    kind: 'int',
    schema: z.number().int().min(1).max(10_000).default(50),
    env: ['AWS_CSM_BRIDGE_MAX_CLIENTS'],
    help: 'Distinct ClientIds exported as their own service; the rest share service.name "aws-csm:other". With processIdentity, (ClientId, sending process) pairs count too (their spans carry the process), and those of exited processes are closed to make room.',
  }),
  processIdentity: opt({
    group: 'output',
    kind: 'string',
    schema: z.enum(['auto', 'on', 'off']).default('auto'),
    env: ['AWS_CSM_BRIDGE_PROCESS_IDENTITY'],
    help: 'Add the sending process (process.pid, process.executable.name, container.id) to each client\'s resource, found via /proc/net/udp and /proc/*/fd (Linux, best effort). auto = for loopback senders only; on = for any sender whose socket is in this network namespace; off.',
  }),
  processCommandLine: opt({
    group: 'output',
    kind: 'bool',
    schema: z.boolean().default(false),
    env: ['AWS_CSM_BRIDGE_PROCESS_COMMAND_LINE'],
    help: 'With processIdentity: also add process.command_line (cut to 1024 characters). Off by default: command lines can hold secrets.',
  }),
  exportDelayMs: opt({
    group: 'export',
    kind: 'ms',
    schema: ms(1).default(1_000),
    env: ['OTEL_BSP_SCHEDULE_DELAY'],
    help: 'Longest time a finished span waits in the current batch before it goes to the export spool.',
  }),
  exportBatchSize: opt({
    group: 'export',
    kind: 'int',
    schema: z.number().int().min(1).default(1_024),
    env: ['OTEL_BSP_MAX_EXPORT_BATCH_SIZE'],
    help: 'Spans per OTLP export request: a full batch goes to the export spool at once.',
  }),
  metricsIntervalMs: opt({
    group: 'export',
    kind: 'ms',
    schema: ms(100).default(15_000),
    env: ['OTEL_METRIC_EXPORT_INTERVAL'],
    help: 'Metric export interval.',
  }),
  spoolMaxBytes: opt({
    group: 'export',
    kind: 'bytes',
    schema: z.number().int().min(65536).default(64 * 1024 * 1024),
    env: ['AWS_CSM_BRIDGE_SPOOL_MAX_BYTES'],
    help: 'Export spool bound in bytes of serialized OTLP requests, in memory or in spoolDir: what waits while the OTLP endpoint is down or slow (metrics may use 1/8 of it). When full, the oldest batches are dropped and counted (spool.droppedSpans).',
  }),
  spoolDir: opt({
    group: 'export',
    kind: 'string',
    value: 'DIR',
    schema: z.string().min(1).optional(),
    env: ['AWS_CSM_BRIDGE_SPOOL_DIR'],
    defaultText: 'none (memory)',
    help: 'Keep the export spool in this directory instead of memory: batches survive a restart and are sent at the next start.',
  }),
  shutdownTimeoutMs: opt({
    group: 'export',
    kind: 'ms',
    schema: ms(100).default(10_000),
    env: ['AWS_CSM_BRIDGE_SHUTDOWN_TIMEOUT_MS'],
    help: 'Longest time SIGTERM/SIGINT waits for the final flush before exiting.',
  }),
  logLevel: opt({
    group: 'run',
    kind: 'string',
    schema: z.enum(['debug', 'info', 'warn', 'error', 'none']).default('info'),
    env: ['AWS_CSM_BRIDGE_LOG_LEVEL'],
    help: 'Least severe log level written (JSON lines on stderr); none = no log. When unset, OTEL_LOG_LEVEL applies.',
  }),
  ui: opt({
    group: 'run',
    kind: 'bool',
    schema: z.boolean().default(true),
    env: ['AWS_CSM_BRIDGE_UI'],
    help: 'Show the live view (calls per Service.Api, latencies, errors, export health) when stdout is a terminal; --no-ui writes JSON logs instead.',
  }),
  recordMaxBytes: opt({
    group: 'run',
    kind: 'bytes',
    schema: z.number().int().min(1024).default(256 * 1024 * 1024),
    env: ['AWS_CSM_BRIDGE_RECORD_MAX_BYTES'],
    help: 'record FILE: largest recording in bytes; later datagrams are counted, not written.',
  }),
  replaySpeed: opt({
    group: 'run',
    kind: 'number',
    value: 'FACTOR',
    // Slower than 1/1000 stretches a 1 s gap past 16 minutes: a typo, not a replay.
    schema: z
      .number()
      .refine((v) => v === 0 || (v >= 0.001 && v <= 1_000_000), 'expected 0 (as fast as possible) or a speed from 0.001 to 1000000')
      .default(1),
    env: ['AWS_CSM_BRIDGE_REPLAY_SPEED'],
    help: 'replay FILE: divides the recorded gaps between datagrams (2 = twice as fast), 0.001 to 1000000; 0 = as fast as possible. Also --speed.',
  }),
  policyFile: opt({
    group: 'policy',
    kind: 'string',
    value: 'FILE',
    schema: z.string().min(1).optional(),
    env: ['AWS_CSM_BRIDGE_POLICY_FILE'],
    defaultText: 'none (memory only)',
    help: 'Keep the observed calls behind each application\'s IAM policy in this file: loaded at start (observation accumulates across restarts), written atomically when it changes (at most every policyWriteDelayMs), on SIGHUP and at shutdown. A file that cannot be read or parsed stops the bridge (exit 2); it is never overwritten.',
  }),
  policyWriteDelayMs: opt({
    group: 'policy',
    kind: 'ms',
    schema: ms(100).default(5_000),
    env: ['AWS_CSM_BRIDGE_POLICY_WRITE_DELAY_MS'],
    help: 'With policyFile: how long a change waits before the file is written (changes in that time are written together).',
  }),
  policyClient: opt({
    group: 'policy',
    kind: 'string',
    value: 'CLIENT',
    schema: z.string().optional(),
    defaultText: 'none (every client)',
    help: 'policy FILE: print exactly one IAM policy document, for this ClientId (or "ClientId [process]" label); without it every client\'s policy, keyed by client. Also --client.',
  }),
  policyFailsOnly: opt({
    group: 'policy',
    kind: 'bool',
    schema: z.boolean().default(false),
    help: 'policy FILE: only the calls that failed (to fix an AccessDenied quickly). Also --fails-only.',
  }),
  policyIncludePossible: opt({
    group: 'policy',
    kind: 'bool',
    schema: z.boolean().default(false),
    help: 'policy FILE: also the actions a call needs only with some parameters (DynamoDB TransactWriteItems, S3 CopyObject with tagging …). Also --include-possible.',
  }),
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
