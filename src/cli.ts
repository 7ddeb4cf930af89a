#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { diag, DiagLogLevel } from '@opentelemetry/api';
import { Bridge } from './bridge.js';
import { ConfigError, helpText, loadConfig } from './config/load.js';
import { createLogger } from './log.js';

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
  const config = command.config;
  const log = createLogger(config.logLevel);
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

  const bridge = new Bridge(config, log, VERSION);
  let addresses;
  try {
    addresses = await bridge.start();
  } catch (e) {
    log.error((e as Error).message);
    return 1;
  }
  log.info('aws-csm-bridge started', {
    version: VERSION,
    listen: addresses.listen,
    admin: addresses.admin ?? 'off',
    otlpProtocol: config.otlpProtocol,
    otlpEndpoint: config.otlpEndpoint ?? process.env['OTEL_EXPORTER_OTLP_ENDPOINT'] ?? 'http://localhost:4318',
  });

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) {
        log.warn('second signal: exiting without waiting for the flush', { signal });
        resolve(1);
        return;
      }
      stopping = true;
      log.info('stopping: intake closed, flushing pending calls and exports', { signal });
      const deadline = setTimeout(() => {
        log.error('flush did not finish in time; exiting', { shutdownTimeoutMs: config.shutdownTimeoutMs, stats: bridge.snapshot() });
        resolve(1);
      }, config.shutdownTimeoutMs);
      deadline.unref();
      bridge.stop().then(
        () => {
          clearTimeout(deadline);
          log.info('stopped', { stats: bridge.snapshot() });
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
  });
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`aws-csm-bridge: unexpected error: ${(e as Error)?.stack ?? String(e)}\n`);
    process.exit(1);
  },
);
