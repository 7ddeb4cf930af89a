/**
 * The bridge's lifecycle: builds the stages, opens the sockets and the admin listener, runs the
 * timers, and shuts down in order. The datagram path itself is `Pipeline` (src/pipeline.ts):
 * receiver → pipeline (admit → decode → correlate → translate) → identity stage → exporter.
 */
import { randomBytes } from 'node:crypto';
import { AdminServer } from './admin/server.js';
import type { ViewModel } from './ui/model.js';
import { WebView } from './admin/web/web-view.js';
import type { OtelSettings } from './config/otel-env.js';
import type { Config } from './config/schema.js';
import type { Source } from './net/address.js';
import { OtelExporter } from './export/otel-exporter.js';
import { MAX_POLICY_STATE_BYTES, POLICY_SHARE_OF_MEMORY_CEILING } from './policy/observer.js';
import { PolicyService } from './policy/policy-service.js';
import { IdentityStage } from './identity/identity-stage.js';
import { AppGrpcListener, AppHttpListener } from './join/app-listener.js';
import { APP_SPAN_TTL_MS, AppSpanIndex } from './join/app-span-index.js';
import { JoinStage, type JoinedCallSink } from './join/join-stage.js';
import { ProcessIdentityResolver } from './identity/resolver.js';
import type { Logger } from './log.js';
import { MemoryGuard } from './memory-guard.js';
import { Pipeline, pipelineOptions, type CallTap, type DatagramTap, type PipelineOptions } from './pipeline.js';
import { UdpReceiver } from './receive/udp-receiver.js';
import { newStats, type Stats } from './stats.js';
import { timerGuard } from './timer-guard.js';
import { warmUp } from './warm-up.js';

/**
 * `udp` (default): sockets, admin server and the expiry timer. `replay`: none
 * of them; the replayer feeds `ingest` and drives `expire` on the recording's clock.
 */
export type Intake = 'udp' | 'replay';

/** The export spools may hold at most 1/4 of memoryCeilingMb in memory (the rest is pending state, clients, series, the heap). */
const SPOOL_SHARE_OF_MEMORY_CEILING = 4;
/**
 * How often pending correlation state is checked for expired holds and settle times (a call
 * waiting for its twins is exported at most this late; expire() is a few queue peeks when
 * nothing is due). Kernel drops are read every KERNEL_DROPS_EVERY ticks.
 */
const EXPIRE_EVERY_MS = 100;
const KERNEL_DROPS_EVERY = 10;
/**
 * Made-up calls run through the datagram path before the sockets open (src/warm-up.ts). 500 get
 * it compiled enough for the ring to carry a cold start at 100k/s (0 loss in 6 of 6 runs); the
 * 3,000 of before kept ~1.2 MB more resident while idle (the optimised code and its feedback).
 */
const WARM_UP_CALLS = 500;

/** The policy state's byte budget: its share of the memory ceiling, at most MAX_POLICY_STATE_BYTES. */
const policyStateBytes = (ceilingMb: number) =>
  ceilingMb > 0 ? Math.min(MAX_POLICY_STATE_BYTES, Math.floor((ceilingMb * 1024 * 1024) / POLICY_SHARE_OF_MEMORY_CEILING)) : MAX_POLICY_STATE_BYTES;

export class Bridge {
  readonly stats: Stats = newStats(Date.now());
  private readonly options: PipelineOptions;
  private readonly pipeline: Pipeline;
  private readonly receiver: UdpReceiver;
  private readonly admin: AdminServer | undefined;
  /** The web view at GET / on the admin listener (src/admin/web/). */
  private readonly web: WebView | undefined;
  private readonly exporter: OtelExporter;
  private readonly identity: IdentityStage;
  /** The join with the applications' traces, when an app span listener is configured. */
  private readonly join: JoinStage | undefined;
  private readonly appListeners: (AppHttpListener | AppGrpcListener)[] = [];
  /** IAM policies per application (GET /policy, the live view, --policy-file); not for replays. */
  readonly policy: PolicyService | undefined;
  private readonly memory: MemoryGuard;
  private expireTimer: NodeJS.Timeout | undefined;

  constructor(
    config: Config,
    private readonly log: Logger,
    version: string,
    otel: OtelSettings,
    private readonly intake: Intake = 'udp',
  ) {
    // A per-process random salt still hides the key; a configured one keeps hashes stable across restarts.
    this.options = pipelineOptions(config, config.accessKeySalt || randomBytes(16).toString('hex'));
    this.exporter = new OtelExporter(
      {
        otel,
        ...(config.serviceNamespace ? { serviceNamespace: config.serviceNamespace } : {}),
        defaultServiceName: config.defaultServiceName,
        maxClients: config.maxClients,
        exportDelayMs: config.exportDelayMs,
        exportBatchSize: config.exportBatchSize,
        metricsIntervalMs: config.metricsIntervalMs,
        version,
        sampleKeep: config.sampleKeep,
        maxMetricSeries: config.maxMetricSeries,
        spoolMaxBytes: config.spoolMaxBytes,
        // What waits in memory counts against the memory ceiling: at most a quarter of it.
        ...(config.memoryCeilingMb > 0 ? { spoolMaxMemoryBytes: Math.floor((config.memoryCeilingMb * 1024 * 1024) / SPOOL_SHARE_OF_MEMORY_CEILING) } : {}),
        ...(config.spoolDir ? { spoolDir: config.spoolDir } : {}),
        allowRemoteHttp: config.allowRemoteHttp,
      },
      this.stats,
      log,
    );
    // Loads --policy-file: throws PolicyFileError (exit 2) when it exists but cannot be used.
    const policy = (this.policy =
      intake === 'replay'
        ? undefined
        : new PolicyService(
            { writeDelayMs: config.policyWriteDelayMs, maxStateBytes: policyStateBytes(config.memoryCeilingMb), ...(config.policyFile ? { file: config.policyFile } : {}) },
            this.stats.policy,
            log,
          ));
    // processIdentity: the sending process of loopback datagrams (never for replays). A call with
    // its sender goes to the exporter and to the policy observer (which splits by process).
    const resolver =
      config.processIdentity === 'off' || intake === 'replay'
        ? undefined
        : new ProcessIdentityResolver({ mode: config.processIdentity, commandLine: config.processCommandLine }, log, this.stats.identity);
    const web = (this.web =
      config.admin === 'off' || intake !== 'udp'
        ? undefined
        : new WebView({ version, ...(config.traceUrlTemplate ? { traceUrlTemplate: config.traceUrlTemplate } : {}), snapshot: () => this.snapshot(), counts: this.stats.web }));
    // The web view hears of each call joined into an application's trace (its trace id, for the waterfall).
    const exporter = this.exporter;
    const joinedSink: JoinedCallSink =
      web === undefined
        ? exporter
        : {
            write: (t, identity) => exporter.write(t, identity),
            writeJoined: (t, identity, joined) => {
              exporter.writeJoined(t, identity, joined);
              web.onJoined(t, joined.parent.traceId);
            },
          };
    // With an app span listener, calls go to export through the join (which may hold them a while); the policy sees them at once.
    const join = (this.join =
      intake === 'udp' && (config.appOtlpHttp !== undefined || config.appOtlpGrpc !== undefined)
        ? new JoinStage(
            { windowMs: config.appJoinWindowMs, attemptKind: config.appJoinAttemptKind },
            new AppSpanIndex(APP_SPAN_TTL_MS, this.stats.appSpans.index),
            joinedSink,
            this.stats.join,
          )
        : undefined);
    if (join !== undefined) {
      const consume = (spans: Parameters<JoinStage['appSpans']>[0]) => join.appSpans(spans);
      if (config.appOtlpHttp !== undefined) this.appListeners.push(new AppHttpListener(config.appOtlpHttp, consume, this.stats.appSpans, log));
      if (config.appOtlpGrpc !== undefined) this.appListeners.push(new AppGrpcListener(config.appOtlpGrpc, consume, this.stats.appSpans));
    }
    const toExport = join ?? this.exporter;
    this.identity = new IdentityStage(resolver, policy ? [toExport, policy.sink] : [toExport], this.stats, log);
    this.pipeline = new Pipeline(this.options, this.identity, this.stats, log);
    if (web !== undefined) this.pipeline.tapCalls(web.onCall);
    this.memory = new MemoryGuard(this.stats, this.pipeline, () => this.exporter.spoolMemoryBytes, log);
    this.stats.memory.ceilingBytes = config.memoryCeilingMb * 1024 * 1024;
    if (otel.sdkDisabled) log.warn('OTEL_SDK_DISABLED=true: nothing is exported; datagrams are still received and counted, and the live view and /stats work');
    this.receiver = new UdpReceiver(config.listen, config.receiveBufferBytes, (b, r, at, text) => this.onDatagram(b, r, at, text), log, config.udpReceiver);
    this.admin =
      config.admin === 'off'
        ? undefined
        : new AdminServer({ listen: config.admin, allowRemoteHttp: config.allowRemoteHttp }, () => this.snapshot(), this.stats.admin, log, this.policy, web);
  }

  async start(): Promise<{ listen: string[]; admin?: string; prometheus?: string; appOtlp?: string[] }> {
    if (this.intake === 'replay') return { listen: [] };
    this.warmUp();
    await this.receiver.start();
    let prometheus: string | undefined;
    const appOtlp: string[] = [];
    try {
      await this.admin?.start();
      this.web?.start();
      prometheus = (await this.exporter.start()).prometheus;
      for (const l of this.appListeners) appOtlp.push(await l.start());
    } catch (e) {
      await Promise.all(this.appListeners.map((l) => l.close()));
      await this.admin?.close();
      await this.receiver.close();
      throw e;
    }
    let ticks = 0;
    this.expireTimer = setInterval(
      timerGuard(this.stats, this.log)('the expiry tick', () => {
        const now = Date.now();
        this.pipeline.expire(now);
        this.join?.expire(now);
        if (++ticks % KERNEL_DROPS_EVERY === 0) this.refreshKernelDrops();
      }),
      EXPIRE_EVERY_MS,
    );
    this.expireTimer.unref();
    this.memory.start();
    const admin = this.admin?.address();
    return { listen: this.receiver.addresses(), ...(admin ? { admin } : {}), ...(prometheus ? { prometheus } : {}), ...(appOtlp.length > 0 ? { appOtlp } : {}) };
  }

  /** The UDP receiver in use once started: recvmmsg (the native addon) or dgram. */
  get udpReceiver(): 'recvmmsg' | 'dgram' | undefined {
    return this.receiver.receiver;
  }

  /** Compiles the datagram path before traffic arrives (src/warm-up.ts). */
  private warmUp(): void {
    const started = Date.now();
    const out = warmUp({ pipeline: this.options, encoding: this.exporter.traceEncoding, calls: WARM_UP_CALLS });
    if (out !== WARM_UP_CALLS) this.log.warn('warm-up: the datagram path lost made-up calls (a bug)', { calls: WARM_UP_CALLS, out });
    this.log.debug('warm-up done', { calls: WARM_UP_CALLS, ms: Date.now() - started });
  }

  /** Adds a tap on received datagrams (before decoding). */
  tapDatagrams(tap: DatagramTap): void {
    this.pipeline.tapDatagrams(tap);
  }

  /**
   * The web view's model, when the web view runs: the terminal view reads it instead of keeping a
   * second one from the same calls (it holds everything the terminal shows, with the same bounds).
   */
  get viewModel(): ViewModel | undefined {
    return this.web?.model;
  }

  /** Adds a tap on translated calls (after translate, before export). */
  tapCalls(tap: CallTap): void {
    this.pipeline.tapCalls(tap);
  }

  /** Replay intake: one recorded datagram, with its recorded source and receive time. */
  ingest(bytes: Buffer, from: Source, receivedAt: number): void {
    this.memory.note(bytes.length);
    this.pipeline.ingest(bytes, from, receivedAt);
  }

  /** Replay intake: the expiry tick, on the recording's clock. */
  expire(now: number): void {
    this.pipeline.expire(now);
  }

  /** Spans made and not yet delivered, failed or dropped (a fast replay waits on it). */
  spansInFlight(): number {
    const s = this.stats.spans;
    return s.created - s.exported - s.failed - s.dropped;
  }

  private onDatagram(bytes: Buffer, from: Source, receivedAt: number, text: string | undefined): void {
    this.memory.note(bytes.length);
    try {
      this.pipeline.ingest(bytes, from, receivedAt, text);
    } catch (e) {
      // Decoding never throws; a bug further on must cost one datagram, not the daemon.
      this.stats.internalErrors++;
      this.log.warnLimited('datagram', 'could not process a datagram', { error: (e as Error).message });
    }
  }

  snapshot(): Stats {
    const p = this.pipeline.pending;
    this.stats.correlation.pendingAttempts = p.attempts;
    this.stats.correlation.pendingCalls = p.calls;
    this.stats.correlation.pendingGroups = p.groups;
    Object.assign(this.stats.correlation.joint, this.pipeline.jointCounts);
    this.exporter.countQueued();
    this.refreshKernelDrops();
    this.memory.readRss();
    return this.stats;
  }

  private refreshKernelDrops(): void {
    const drops = this.receiver.kernelDrops();
    if (drops !== undefined) this.stats.datagrams.kernelDropped = drops;
    const ringDrops = this.receiver.ringDrops();
    if (ringDrops !== undefined) this.stats.datagrams.ringDropped = ringDrops;
  }

  /**
   * Stops intake, exports everything pending, flushes both providers; the export spool tries to
   * deliver until `deadlineAt` (epoch ms; the cli's shutdownTimeoutMs).
   */
  async stop(deadlineAt?: number): Promise<void> {
    this.admin?.markStopping();
    clearInterval(this.expireTimer);
    this.memory.stop();
    await this.receiver.close();
    await Promise.all(this.appListeners.map((l) => l.close()));
    this.pipeline.flush();
    await this.identity.settled();
    this.join?.flush();
    this.identity.close();
    await this.policy?.close();
    this.snapshot();
    await this.exporter.shutdown(deadlineAt);
    this.web?.close();
    await this.admin?.close();
  }
}
