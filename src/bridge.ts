import { randomBytes } from 'node:crypto';
import type { RemoteInfo } from 'node:dgram';
import { AdminServer } from './admin/server.js';
import type { Config } from './config/schema.js';
import { Correlator } from './correlate/correlator.js';
import type { Correlated } from './correlate/types.js';
import { decodeDatagram, type DecoderOptions } from './decode/decoder.js';
import { OtelExporter } from './export/otel-exporter.js';
import type { Logger } from './log.js';
import { UdpReceiver } from './receive/udp-receiver.js';
import { newStats, type Stats } from './stats.js';
import { translate, type TranslateOptions } from './translate/translate.js';

/** How often pending correlation state is checked for expired holds. */
const EXPIRE_EVERY_MS = 1_000;

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
  private expireTimer: NodeJS.Timeout | undefined;

  constructor(
    config: Config,
    private readonly log: Logger,
    version: string,
    env: NodeJS.ProcessEnv = process.env,
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
    this.correlator = new Correlator(
      {
        attemptHoldMs: config.attemptHoldMs,
        callHoldMs: config.callHoldMs,
        maxPending: config.maxPending,
        toleranceMs: config.matchToleranceMs,
      },
      (c) => this.onCorrelated(c),
    );
    this.exporter = new OtelExporter(
      {
        ...(config.otlpEndpoint ? { otlpEndpoint: config.otlpEndpoint } : {}),
        ...(config.serviceNamespace ? { serviceNamespace: config.serviceNamespace } : {}),
        otlpProtocol: config.otlpProtocol,
        defaultServiceName: config.defaultServiceName,
        maxClients: config.maxClients,
        exportDelayMs: config.exportDelayMs,
        exportQueueSize: config.exportQueueSize,
        exportBatchSize: config.exportBatchSize,
        metricsIntervalMs: config.metricsIntervalMs,
        version,
      },
      this.stats,
      log,
      env,
    );
    this.receiver = new UdpReceiver(config.listen, config.receiveBufferBytes, (b, r) => this.onDatagram(b, r), log);
    this.admin = config.admin === 'off' ? undefined : new AdminServer(config.admin, () => this.snapshot());
  }

  async start(): Promise<{ listen: string[]; admin?: string }> {
    await this.receiver.start();
    try {
      await this.admin?.start();
    } catch (e) {
      await this.receiver.close();
      throw e;
    }
    this.expireTimer = setInterval(() => this.correlator.expire(Date.now()), EXPIRE_EVERY_MS);
    this.expireTimer.unref();
    const admin = this.admin?.address();
    return admin ? { listen: this.receiver.addresses(), admin } : { listen: this.receiver.addresses() };
  }

  private onDatagram(bytes: Buffer, from: RemoteInfo): void {
    const s = this.stats.datagrams;
    s.received++;
    const r = decodeDatagram(bytes, { address: from.address, port: from.port }, Date.now(), this.decoderOptions);
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
      this.exporter.write(translate(c, this.translateOptions));
    } catch (e) {
      // A bug here must cost one call, not the daemon.
      this.stats.internalErrors++;
      this.log.warnLimited('translate', 'could not export a call', { error: (e as Error).message });
    }
  }

  snapshot(): Stats {
    this.stats.correlation.pendingAttempts = this.correlator.pendingAttempts;
    this.stats.correlation.pendingCalls = this.correlator.pendingCalls;
    return this.stats;
  }

  /** Stops intake, exports everything pending, flushes both providers. */
  async stop(): Promise<void> {
    this.admin?.markStopping();
    if (this.expireTimer) clearInterval(this.expireTimer);
    await this.receiver.close();
    this.correlator.flush();
    this.snapshot();
    await this.exporter.shutdown();
    await this.admin?.close();
  }
}
