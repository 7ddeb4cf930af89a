import { randomBytes } from 'node:crypto';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { AdminServer } from './admin/server.js';
import type { Config } from './config/schema.js';
import { Correlator } from './correlate/correlator.js';
import type { Correlated, CorrelatorOptions } from './correlate/types.js';
import { decodeDatagram, type DecoderOptions } from './decode/decoder.js';
import { OtelExporter } from './export/otel-exporter.js';
import { ProcessIdentityResolver, type ProcessIdentity } from './identity/resolver.js';
import type { Logger } from './log.js';
import { UdpReceiver, type DatagramSource } from './receive/udp-receiver.js';
import { bindPolicyError, SourceFilter } from './receive/source-filter.js';
import { newStats, type Stats } from './stats.js';
import { translate, type TranslateOptions } from './translate/translate.js';
import type { Translation } from './translate/types.js';
import { warmUp } from './warm-up.js';

/**
 * Sees every datagram as received (the recorder), with the receive time the pipeline uses.
 * `bytes` is the tap's own copy (the receiver's buffer is reused), so a tap may keep it.
 */
export type DatagramTap = (bytes: Buffer, from: { address: string; port: number }, receivedAt: number) => void;
/** Sees every translated call (the live view). */
export type CallTap = (c: Correlated, t: Translation) => void;

/**
 * `udp` (default): sockets, admin server and the expiry timer. `replay`: none
 * of them; the replayer feeds `ingest` and drives `expire` on the recording's clock.
 */
export type Intake = 'udp' | 'replay';

/** How often pending correlation state is checked for expired holds. */
const EXPIRE_EVERY_MS = 1_000;
/** RSS is checked on a timer and, during a flood, every so many datagrams or bytes. */
const MEMORY_CHECK_EVERY_MS = 500;
const MEMORY_CHECK_EVERY_DATAGRAMS = 16_384;
const MEMORY_CHECK_EVERY_BYTES = 8 * 1024 * 1024;
const MEMORY_SHED_MIN_GAP_MS = 100;
const MEMORY_GC_MIN_GAP_MS = 1_000;

/** A full, synchronous GC (global.gc without starting node with --expose-gc). */
const fullGc: () => void = (() => {
  try {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    return () => gc();
  } catch {
    return () => {};
  }
})();

/**
 * Wires the stages: receive → decode → correlate → translate → export.
 * Each stage only knows its neighbour's small interface; this class owns
 * their lifecycle and the counters.
 */
export class Bridge {
  readonly stats: Stats = newStats(Date.now());
  private readonly receiver: UdpReceiver;
  private readonly admin: AdminServer | undefined;
  private readonly correlator: Correlator;
  private readonly exporter: OtelExporter;
  private readonly decoderOptions: DecoderOptions;
  private readonly translateOptions: TranslateOptions;
  private readonly correlatorOptions: CorrelatorOptions;
  private readonly traceEncoding: 'protobuf' | 'json';
  private expireTimer: NodeJS.Timeout | undefined;
  /** Only with --allow-source: datagrams from elsewhere are dropped before decoding. */
  private readonly sourceFilter: SourceFilter | undefined;
  private readonly bindError: string | undefined;
  private memoryTimer: NodeJS.Timeout | undefined;
  /** Datagrams / bytes since the last RSS check (a flood is checked between timer ticks too). */
  private sinceMemoryCheck = { datagrams: 0, bytes: 0 };
  private lastShedAt = 0;
  private lastGcAt = 0;
  private readonly datagramTaps: DatagramTap[] = [];
  private readonly callTaps: CallTap[] = [];
  /** processIdentity: the sending process of loopback datagrams (never for replays). */
  private readonly identity: ProcessIdentityResolver | undefined;
  /** Calls waiting for their sender's identity (bounded by the resolver's maxWaitMs). */
  private readonly deferredWrites = new Set<Promise<void>>();

  constructor(
    config: Config,
    private readonly log: Logger,
    version: string,
    env: NodeJS.ProcessEnv = process.env,
    private readonly intake: Intake = 'udp',
  ) {
    this.decoderOptions = {
      maxDatagramBytes: config.maxDatagramBytes,
      accessKey: config.accessKey,
      // A per-process random salt still hides the key; a configured one keeps hashes stable across restarts.
      accessKeySalt: config.accessKeySalt || randomBytes(16).toString('hex'),
      timestampSemantics: config.timestampSemantics,
    };
    const optIn = (env['OTEL_SEMCONV_STABILITY_OPT_IN'] ?? '').split(',').map((s) => s.trim());
    this.translateOptions = {
      attemptSpanKind: config.attemptSpanKind,
      rpcSemconv: optIn.includes('rpc/dup') ? 'dup' : optIn.includes('rpc') ? 'stable' : 'old',
      jsInstrumentationKeys: /^(1|true)$/i.test(env['CSM_COMPAT_JS_INSTRUMENTATION_KEYS'] ?? ''),
    };
    this.correlatorOptions = {
      attemptHoldMs: config.attemptHoldMs,
      callHoldMs: config.callHoldMs,
      maxPending: config.maxPending,
      toleranceMs: config.matchToleranceMs,
    };
    this.correlator = new Correlator(this.correlatorOptions, (c) => this.onCorrelated(c));
    this.traceEncoding = (env['OTEL_EXPORTER_OTLP_TRACES_PROTOCOL'] ?? config.otlpProtocol) === 'http/json' ? 'json' : 'protobuf';
    this.exporter = new OtelExporter(
      {
        ...(config.otlpEndpoint ? { otlpEndpoint: config.otlpEndpoint } : {}),
        ...(config.serviceNamespace ? { serviceNamespace: config.serviceNamespace } : {}),
        otlpProtocol: config.otlpProtocol,
        defaultServiceName: config.defaultServiceName,
        maxClients: config.maxClients,
        exportDelayMs: config.exportDelayMs,
        exportBatchSize: config.exportBatchSize,
        metricsIntervalMs: config.metricsIntervalMs,
        version,
        spoolMaxBytes: config.spoolMaxBytes,
        ...(config.spoolDir ? { spoolDir: config.spoolDir } : {}),
      },
      this.stats,
      log,
      env,
    );
    this.sourceFilter = config.allowSource.length > 0 ? new SourceFilter(config.allowSource) : undefined;
    this.bindError = bindPolicyError(config.listen, config.allowSource, config.allowAnySource);
    this.stats.memory.ceilingBytes = config.memoryCeilingMb * 1024 * 1024;
    this.identity =
      config.processIdentity === 'off' || intake === 'replay'
        ? undefined
        : new ProcessIdentityResolver({ mode: config.processIdentity, commandLine: config.processCommandLine }, log, this.stats.identity);
    this.receiver = new UdpReceiver(config.listen, config.receiveBufferBytes, (b, r) => this.onDatagram(b, r), log, config.udpReceiver);
    this.admin = config.admin === 'off' ? undefined : new AdminServer(config.admin, () => this.snapshot());
  }

  async start(): Promise<{ listen: string[]; admin?: string }> {
    if (this.intake === 'replay') return { listen: [] };
    if (this.bindError) throw new Error(this.bindError);
    this.warmUp();
    await this.receiver.start();
    try {
      await this.admin?.start();
    } catch (e) {
      await this.receiver.close();
      throw e;
    }
    this.expireTimer = setInterval(() => {
      this.correlator.expire(Date.now());
      this.refreshKernelDrops();
    }, EXPIRE_EVERY_MS);
    this.expireTimer.unref();
    this.memoryTimer = setInterval(() => this.checkMemory(), MEMORY_CHECK_EVERY_MS);
    this.memoryTimer.unref();
    const admin = this.admin?.address();
    return admin ? { listen: this.receiver.addresses(), admin } : { listen: this.receiver.addresses() };
  }

  /** The UDP receiver in use once started: recvmmsg (the native addon) or dgram. */
  get udpReceiver(): 'recvmmsg' | 'dgram' | undefined {
    return this.receiver.receiver;
  }

  /** Compiles the datagram path before traffic arrives (src/warm-up.ts). */
  private warmUp(): void {
    const started = Date.now();
    const calls = 3_000;
    const out = warmUp({
      decoder: this.decoderOptions,
      correlator: this.correlatorOptions,
      translate: this.translateOptions,
      encoding: this.traceEncoding,
      calls,
    });
    if (out !== calls) this.log.warn('warm-up: the datagram path lost made-up calls (a bug)', { calls, out });
    this.log.debug('warm-up done', { calls, ms: Date.now() - started });
  }

  /** Adds a tap on received datagrams (before decoding). */
  tapDatagrams(tap: DatagramTap): void {
    this.datagramTaps.push(tap);
  }

  /** Adds a tap on translated calls (after translate, before export). */
  tapCalls(tap: CallTap): void {
    this.callTaps.push(tap);
  }

  /** Replay intake: one recorded datagram, with its recorded source and receive time. */
  ingest(bytes: Buffer, from: { address: string; port: number }, receivedAt: number): void {
    this.handleDatagram(bytes, from, receivedAt);
  }

  /** Replay intake: the expiry tick, on the recording's clock. */
  expire(now: number): void {
    this.correlator.expire(now);
  }

  private onDatagram(bytes: Buffer, from: DatagramSource): void {
    try {
      this.handleDatagram(bytes, from, Date.now());
    } catch (e) {
      // Decoding never throws; a bug further on must cost one datagram, not the daemon.
      this.stats.internalErrors++;
      this.log.warnLimited('datagram', 'could not process a datagram', { error: (e as Error).message });
    }
  }

  private handleDatagram(bytes: Buffer, from: { address: string; port: number }, receivedAt: number): void {
    const since = this.sinceMemoryCheck;
    if (++since.datagrams >= MEMORY_CHECK_EVERY_DATAGRAMS || (since.bytes += bytes.length) >= MEMORY_CHECK_EVERY_BYTES) this.checkMemory();
    if (this.sourceFilter && !this.sourceFilter.allows(from.address)) {
      this.stats.datagrams.received++;
      const n = ++this.stats.datagrams.dropped.source_not_allowed;
      this.log.warnLimited('drop:source', 'dropped a datagram from a source outside --allow-source', { from: from.address, droppedSoFar: n });
      return;
    }
    if (this.datagramTaps.length > 0) {
      // The recvmmsg receiver's `bytes` is a view into a buffer the next batch overwrites: taps
      // (the recorder) get a copy they may keep. Without taps the hot path copies nothing.
      const copy = Buffer.from(bytes);
      for (const tap of this.datagramTaps) tap(copy, from, receivedAt);
    }
    const s = this.stats.datagrams;
    s.received++;
    const r = decodeDatagram(bytes, from, receivedAt, this.decoderOptions);
    if (!r.ok) {
      s.rejected[r.reason]++;
      this.log.warnLimited(`reject:${r.reason}`, 'rejected CSM datagram', {
        reason: r.reason,
        detail: r.detail,
        from: `${from.address}:${from.port}`,
        rejectedSoFar: s.rejected[r.reason],
      });
      return;
    }
    s.accepted++;
    if (r.event.type === 'ApiCall') this.stats.events.calls++;
    else this.stats.events.attempts++;
    // A new source starts its process lookup now, off this path, so it is usually done when the call completes.
    this.identity?.observe(from.address, from.port);
    this.correlator.add(r.event);
  }

  private onCorrelated(c: Correlated): void {
    const s = this.stats.correlation;
    if (c.kind === 'call') {
      s.matched += c.attempts.length;
      if (c.missingAttempts > 0) {
        s.callsIncomplete++;
        s.missingAttempts += c.missingAttempts;
      }
    } else {
      s.orphaned[c.reason]++;
    }
    try {
      const t = translate(c, this.translateOptions);
      for (const tap of this.callTaps) tap(c, t);
      const source = c.kind === 'call' ? c.call.source : c.attempt.source;
      const identity = this.identity?.lookup(source.address, source.port);
      if (identity instanceof Promise) this.writeWhenResolved(t, identity);
      else this.exporter.write(t, identity);
    } catch (e) {
      // A bug here must cost one call, not the daemon.
      this.stats.internalErrors++;
      this.log.warnLimited('translate', 'could not export a call', { error: (e as Error).message });
    }
  }

  /** The sender is still being looked up: export once it is known (or given up on). */
  private writeWhenResolved(t: Translation, identity: Promise<ProcessIdentity | undefined>): void {
    const p = identity.then((id) => {
      try {
        this.exporter.write(t, id);
      } catch (e) {
        this.stats.internalErrors++;
        this.log.warnLimited('translate', 'could not export a call', { error: (e as Error).message });
      }
    });
    this.deferredWrites.add(p);
    void p.finally(() => this.deferredWrites.delete(p));
  }

  snapshot(): Stats {
    this.stats.correlation.pendingAttempts = this.correlator.pendingAttempts;
    this.stats.correlation.pendingCalls = this.correlator.pendingCalls;
    this.stats.correlation.pendingGroups = this.correlator.pendingGroups;
    this.refreshKernelDrops();
    this.readRss();
    return this.stats;
  }

  private refreshKernelDrops(): void {
    const drops = this.receiver.kernelDrops();
    if (drops !== undefined) this.stats.datagrams.kernelDropped = drops;
  }

  private readRss(): number {
    const rss = process.memoryUsage.rss();
    const m = this.stats.memory;
    m.rssBytes = rss;
    if (rss > m.peakRssBytes) m.peakRssBytes = rss;
    return rss;
  }

  /**
   * The memory ceiling: above it, half of the pending correlation state is
   * exported early, oldest first (at most once per MEMORY_SHED_MIN_GAP_MS, so
   * the GC gets a chance to return what was freed). Everything else the bridge
   * holds is bounded by count: export queues, clients, metric series.
   */
  private checkMemory(): void {
    this.sinceMemoryCheck = { datagrams: 0, bytes: 0 };
    const rss = this.readRss();
    const m = this.stats.memory;
    if (m.ceilingBytes === 0 || rss <= m.ceilingBytes) return;
    const now = Date.now();
    if (now - this.lastShedAt < MEMORY_SHED_MIN_GAP_MS) return;
    this.lastShedAt = now;
    const pending = this.correlator.pendingAttempts + this.correlator.pendingCalls;
    const shed = this.correlator.shedOldest(Math.ceil(pending / 2));
    // V8 collects lazily far below its own heap limit: most of the RSS above the ceiling is
    // usually garbage (parsed datagrams). A full collection returns it to the OS now.
    if (now - this.lastGcAt >= MEMORY_GC_MIN_GAP_MS) {
      this.lastGcAt = now;
      fullGc();
    }
    if (shed.attempts + shed.calls > 0) {
      m.sheds++;
      m.shedAttempts += shed.attempts;
      m.shedCalls += shed.calls;
    }
    this.log.warnLimited('memory', 'resident memory above memoryCeilingMb: exported the oldest pending attempts and calls early', {
      rssBytes: rss,
      ceilingBytes: m.ceilingBytes,
      shedAttempts: shed.attempts,
      shedCalls: shed.calls,
      stillPending: this.correlator.pendingAttempts + this.correlator.pendingCalls,
    });
  }

  /**
   * Stops intake, exports everything pending, flushes both providers; the export spool tries to
   * deliver until `deadlineAt` (epoch ms; the cli's shutdownTimeoutMs).
   */
  async stop(deadlineAt?: number): Promise<void> {
    this.admin?.markStopping();
    if (this.expireTimer) clearInterval(this.expireTimer);
    if (this.memoryTimer) clearInterval(this.memoryTimer);
    await this.receiver.close();
    this.correlator.flush();
    await Promise.all(this.deferredWrites);
    this.identity?.close();
    this.snapshot();
    await this.exporter.shutdown(deadlineAt);
    await this.admin?.close();
  }
}
