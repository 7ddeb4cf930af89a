#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { PACKAGE_ROOT } from './package-root.js';
import type { LiveView } from './ui/live-view.js';
import { collectorOf, flushPlan, quitLine, stoppedLine, stoppingLine, terminalLine, timedOutLine } from './stop-report.js';

// SIGHUP writes the policy file, and its default action ends the process. Loading the modules
// below takes a few hundred ms (a SIGHUP then killed the bridge, exit 129): so the handler comes
// first, and the modules are loaded after it. Until the bridge exists it only notes the signal.
let hangupsWhileStarting = 0;
let onHangup: () => void = () => void hangupsWhileStarting++;
const hangupListener = () => onHangup();
process.on('SIGHUP', hangupListener);

const { diag, DiagLogLevel } = await import('@opentelemetry/api');
const { Bridge } = await import('./bridge.js');
const { ConfigError, helpText, loadConfig } = await import('./config/load.js');
const { createLogger } = await import('./log.js');
const { wantsView } = await import('./ui/wants-view.js');
const { describeTargets } = await import('./config/otel-env.js');
type Bridge = InstanceType<typeof Bridge>;
type Recorder = import('./record/recorder.js').Recorder;
type ConfigError = InstanceType<typeof ConfigError>;

// What only a subcommand or the live view uses is imported when it is used (dynamic import()),
// so a bridge run as a service does not hold their code: the live view alone is about 10 MB of
// heap with what it pulls in (bench/module-cost.mjs, BENCHMARKS.md "Idle memory"). The gRPC
// client is loaded the same way, by the first gRPC export (export/otlp-sender.ts).

const VERSION = (JSON.parse(readFileSync(new URL('package.json', PACKAGE_ROOT), 'utf8')) as { version: string }).version;

async function main(): Promise<number> {
  let command;
  try {
    command = loadConfig(process.argv.slice(2), process.env);
  } catch (e) {
    if (e instanceof ConfigError) return refuse(e);
    throw e;
  }
  if (command.kind === 'help') {
    process.stdout.write(helpText(VERSION, command.topic));
    return 0;
  }
  if (command.kind === 'version') {
    process.stdout.write(`${VERSION}\n`);
    return 0;
  }
  const { config, otel } = command;
  const sub = command.subcommand;
  // These two do not write policy files: SIGHUP ends them, as by default.
  if (sub?.name === 'policy' || sub?.name === 'replay') process.off('SIGHUP', hangupListener);
  // Reads a file and prints: no logger, no bridge.
  if (sub?.name === 'policy') return (await import('./policy/policy-command.js')).runPolicyCommand(sub.file, config);
  // While the live view owns the terminal, log lines go into its log area instead; once a
  // terminal is told about the stop (stop-report.ts), as short human lines.
  let view: LiveView | undefined;
  let toldOnTerminal = false;
  const log = createLogger(config.logLevel, (line) => {
    if (view?.isActive) view.log(line);
    else if (toldOnTerminal) {
      const short = terminalLine(line);
      if (short) process.stderr.write(short);
    } else process.stderr.write(line);
  });
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

  onHangup = () => log.info('SIGHUP while starting: nothing observed yet, so no policy file to write');
  if (hangupsWhileStarting > 0) onHangup();
  let bridge: Bridge;
  try {
    bridge = new Bridge(config, log, VERSION, otel);
  } catch (e) {
    // e.g. the policy file or the spool directory cannot be used (2), another bridge holds the spool directory (1).
    if (e instanceof ConfigError) return refuse(e);
    log.error((e as Error).message);
    return 1;
  }
  // SIGHUP: write the policy file now (iamlive users expect the policy on a signal); the log says what happened.
  // (The policy service logs what the write did: written, or not and why.)
  onHangup = () => {
    const policy = bridge.policy;
    if (!policy || config.policyFile === undefined) return log.info('SIGHUP: no policy file to write (set --policy-file)');
    void policy.write('SIGHUP');
  };
  let recorder: Recorder | undefined;
  if (sub?.name === 'record') {
    const { Recorder } = await import('./record/recorder.js');
    const r = (recorder = new Recorder(sub.file, config.recordMaxBytes, log));
    try {
      await r.ready();
    } catch (e) {
      return refuse(new ConfigError(`cannot open the recording file ${sub.file}: ${(e as Error).message}`));
    }
    bridge.tapDatagrams((bytes, from, receivedAt) => r.write(bytes, from, receivedAt));
  }
  let addresses;
  try {
    addresses = await bridge.start();
  } catch (e) {
    // e.g. udpReceiver recvmmsg without the addon (2), a port another process holds (1).
    if (e instanceof ConfigError) return refuse(e);
    log.error((e as Error).message);
    return 1;
  }
  // The console exporters write to stdout: the live view would share it.
  const consoleExport = !otel.sdkDisabled && (otel.tracesExporters.includes('console') || otel.metricsExporters.includes('console'));
  if (consoleExport && wantsView(config)) log.info('the live view is off: the console exporter writes to stdout');
  if (wantsView(config) && !consoleExport) {
    const rec = recorder;
    const { startView } = await import('./ui/attach.js');
    view = startView(bridge, otel, {
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
    // A person at a terminal is told about the stop in human lines; a log gets the JSON records.
    const human = process.stderr.isTTY === true && config.logLevel !== 'none';
    // \r: over the ^C the terminal echoed, if any.
    const say = (line: string) => process.stderr.write(`\r${line}\n`);
    const collector = collectorOf(otel);
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) {
        if (human) say(quitLine(bridge.snapshot()));
        else log.warn('second signal: exiting without waiting for the flush', { signal });
        resolve(1);
        return;
      }
      stopping = true;
      view?.close();
      const stopAt = Date.now();
      const plan = flushPlan(bridge.snapshot(), stopAt, config.shutdownTimeoutMs);
      if (human) {
        say(stoppingLine(plan, stopAt, collector));
        toldOnTerminal = true;
      } else {
        log.info('stopping: intake closed, flushing pending calls and exports', {
          signal,
          flushWithinMs: plan.deadlineAt - stopAt,
          ...(plan.endpoint === 'answering' ? {} : { otlpEndpointState: plan.endpoint }),
        });
      }
      const deadline = setTimeout(() => {
        if (human) say(timedOutLine(bridge.snapshot(), config.shutdownTimeoutMs));
        else log.error('flush did not finish in time; exiting', { shutdownTimeoutMs: config.shutdownTimeoutMs, stats: bridge.snapshot() });
        resolve(1);
      }, config.shutdownTimeoutMs);
      deadline.unref();
      bridge.stop(plan.deadlineAt).then(async () => {
          await recorder?.close();
          clearTimeout(deadline);
          const stats = bridge.snapshot();
          if (human) {
            say(stoppedLine(stats, Date.now() - stopAt, collector, config.spoolDir || undefined));
            if (recorder) say(`recorded ${recorder.counts.written} datagrams in ${recorder.path}`);
          } else log.info('stopped', { ...(recorder ? { recording: { file: recorder.path, ...recorder.counts } } : {}), stats });
          resolve(0);
        },
        (e: Error) => {
          clearTimeout(deadline);
          log.error('error while stopping', { error: e.message });
          resolve(1);
        },
      );
    };
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
      // The web view: the page to open in a browser.
      ...(addresses.admin ? { webView: `http://${addresses.admin}/` } : {}),
      ...(addresses.prometheus ? { prometheus: addresses.prometheus } : {}),
      ...(addresses.appOtlp ? { appOtlp: addresses.appOtlp } : {}),
      export: describeTargets(otel, addresses.prometheus),
      // Where OTLP spans go, when they go over OTLP (metrics-only and console runs have no such endpoint).
      ...(otel.tracesExporters.includes('otlp') && !otel.sdkDisabled ? { otlpProtocol: otel.traces.protocol, otlpEndpoint: otel.traces.url } : {}),
    });
  });
}

/** Every configuration refusal, whichever stage finds it: one line on stderr, exit 2 (see config/error.ts). */
function refuse(e: ConfigError): number {
  process.stderr.write(`aws-csm-bridge: ${e.message}\n`);
  return 2;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    // A refusal thrown past the start's own catches (replay FILE, its spool directory).
    if (e instanceof ConfigError) process.exit(refuse(e));
    process.stderr.write(`aws-csm-bridge: unexpected error: ${(e as Error)?.stack ?? String(e)}\n`);
    process.exit(1);
  },
);
