#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { diag, DiagLogLevel } from '@opentelemetry/api';
import { Bridge } from './bridge.js';
import { ConfigError, helpText, loadConfig } from './config/load.js';
import { createLogger } from './log.js';
import type { Recorder } from './record/recorder.js';
import { PolicyFileError } from './policy/policy-file.js';
import { wantsView } from './ui/wants-view.js';
import { describeTargets } from './config/otel-env.js';
import type { LiveView } from './ui/live-view.js';

// What only a subcommand or the live view uses is imported when it is used (dynamic import()),
// so a bridge run as a service does not hold their code: the live view alone is about 10 MB of
// heap with what it pulls in (bench/module-cost.mjs, BENCHMARKS.md "Idle memory"). The gRPC
// client is loaded the same way, by the first gRPC export (export/otlp-sender.ts).

const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

async function main(): Promise<number> {
  let command;
  try {
    command = loadConfig(process.argv.slice(2), process.env);
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`aws-csm-bridge: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
  if (command.kind === 'help') {
    process.stdout.write(helpText(VERSION));
    return 0;
  }
  if (command.kind === 'version') {
    process.stdout.write(`${VERSION}\n`);
    return 0;
  }
  const { config, otel } = command;
  const sub = command.subcommand;
  // Reads a file and prints: no logger, no bridge.
  if (sub?.name === 'policy') return (await import('./policy/policy-command.js')).runPolicyCommand(sub.file, config);
  // While the live view owns the terminal, log lines go into its log area instead.
  let view: LiveView | undefined;
  const log = createLogger(config.logLevel, (line) => (view?.isActive ? view.log(line) : process.stderr.write(line)));
  // The SDK reports queue drops and exporter trouble through diag; without a logger they are silent.
  diag.setLogger(
    {
      error: (m) => log.warnLimited('otel-diag-error', 'OpenTelemetry SDK error', { detail: m }),
      warn: (m) => log.warnLimited('otel-diag-warn', 'OpenTelemetry SDK warning', { detail: m }),
      info: () => {},
      debug: () => {},
      verbose: () => {},
    },
    DiagLogLevel.WARN,
  );

  if (sub?.name === 'replay') return (await import('./record/replay-command.js')).runReplayCommand(sub.file, config, otel, log, VERSION, (v) => (view = v));

  let bridge: Bridge;
  try {
    bridge = new Bridge(config, log, VERSION, otel);
  } catch (e) {
    // e.g. the spool directory cannot be created or another bridge uses it.
    log.error((e as Error).message);
    // A policy file that exists but cannot be used: the user must fix or remove it.
    return e instanceof PolicyFileError ? 2 : 1;
  }
  let recorder: Recorder | undefined;
  if (sub?.name === 'record') {
    const { Recorder } = await import('./record/recorder.js');
    const r = (recorder = new Recorder(sub.file, config.recordMaxBytes, log));
    try {
      await r.ready();
    } catch (e) {
      log.error('cannot open the recording file', { file: sub.file, error: (e as Error).message });
      return 1;
    }
    bridge.tapDatagrams((bytes, from, receivedAt) => r.write(bytes, from, receivedAt));
  }
  let addresses;
  try {
    addresses = await bridge.start();
  } catch (e) {
    log.error((e as Error).message);
    return 1;
  }
  // The console exporters write to stdout: the live view would share it.
  const consoleExport = !otel.sdkDisabled && (otel.tracesExporters.includes('console') || otel.metricsExporters.includes('console'));
  if (consoleExport && wantsView(config)) log.info('the live view is off: the console exporter writes to stdout');
  if (wantsView(config) && !consoleExport) {
    const rec = recorder;
    const { startView } = await import('./ui/attach.js');
    view = startView(bridge, config, otel, {
      version: VERSION,
      listen: addresses.listen,
      ...(addresses.admin ? { admin: addresses.admin } : {}),
      ...(rec
        ? {
            extra: () => [
              `record   ${rec.path}: ${rec.counts.written} datagrams, ${(rec.counts.bytes / 1024).toFixed(1)} KiB, ${rec.counts.redacted} SessionTokens removed, ${rec.counts.skippedUnsafe + rec.counts.skippedFull + rec.counts.skippedBacklog} not recorded`,
            ],
          }
        : {}),
    });
  }
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) {
        log.warn('second signal: exiting without waiting for the flush', { signal });
        resolve(1);
        return;
      }
      stopping = true;
      view?.close();
      log.info('stopping: intake closed, flushing pending calls and exports', { signal });
      const deadline = setTimeout(() => {
        log.error('flush did not finish in time; exiting', { shutdownTimeoutMs: config.shutdownTimeoutMs, stats: bridge.snapshot() });
        resolve(1);
      }, config.shutdownTimeoutMs);
      deadline.unref();
      // The export spool stops retrying a little before the hard deadline, so the bridge can say what it could not deliver.
      const spoolDeadline = Date.now() + config.shutdownTimeoutMs - Math.min(1_000, Math.floor(config.shutdownTimeoutMs / 10));
      bridge.stop(spoolDeadline).then(async () => {
          await recorder?.close();
          clearTimeout(deadline);
          log.info('stopped', { ...(recorder ? { recording: { file: recorder.path, ...recorder.counts } } : {}), stats: bridge.snapshot() });
          resolve(0);
        },
        (e: Error) => {
          clearTimeout(deadline);
          log.error('error while stopping', { error: e.message });
          resolve(1);
        },
      );
    };
    // SIGHUP: write the policy file now (iamlive users expect the policy on a signal).
    process.on('SIGHUP', () => {
      void bridge.policy?.write().then(() => log.info('policy file written (SIGHUP)', { file: config.policyFile ?? 'none: set --policy-file' }));
    });
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    // Only now: a SIGTERM that follows this line at once must find the handler installed (until
    // then the kernel's default action applies, and the process would die without flushing).
    log.info('aws-csm-bridge started', {
      ...(recorder ? { recording: recorder.path } : {}),
      version: VERSION,
      listen: addresses.listen,
      udpReceiver: bridge.udpReceiver,
      admin: addresses.admin ?? 'off',
      ...(addresses.prometheus ? { prometheus: addresses.prometheus } : {}),
      ...(addresses.appOtlp ? { appOtlp: addresses.appOtlp } : {}),
      export: describeTargets(otel, addresses.prometheus),
      // Where OTLP spans go, when they go over OTLP (metrics-only and console runs have no such endpoint).
      ...(otel.tracesExporters.includes('otlp') && !otel.sdkDisabled ? { otlpProtocol: otel.traces.protocol, otlpEndpoint: otel.traces.url } : {}),
    });
  });
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`aws-csm-bridge: unexpected error: ${(e as Error)?.stack ?? String(e)}\n`);
    process.exit(1);
  },
);
