/** `aws-csm-bridge replay FILE [--speed N]`: the command around `replay`. */
import { Bridge } from '../bridge.js';
import { ConfigError } from '../config/error.js';
import { describeTargets, type OtelSettings } from '../config/otel-env.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import { startView, wantsView } from '../ui/attach.js';
import type { LiveView } from '../ui/live-view.js';
import { checkRecording, replay, type ReplayProgress } from './replay.js';

/** A fast replay pauses while this many batches of spans wait for the endpoint, so the spool does not overflow. */
const REPLAY_IN_FLIGHT_BATCHES = 8;

export async function runReplayCommand(
  file: string,
  config: Config,
  otel: OtelSettings,
  log: Logger,
  version: string,
  /** Lets the caller route log lines into the view while it is up. */
  onView: (v: LiveView | undefined) => void,
): Promise<number> {
  try {
    // Before the bridge starts: a missing file or a device is refused at once, not after a flush.
    await checkRecording(file);
  } catch (e) {
    // The FILE cannot be replayed: a configuration refusal (exit 2), as for policy FILE.
    throw new ConfigError(`cannot replay ${file}: ${(e as Error).message}`);
  }
  // No sockets, no admin server: a replay can run next to a live bridge.
  const bridge = new Bridge({ ...config, admin: 'off' }, log, version, otel, 'replay');
  await bridge.start();
  const progress: ReplayProgress = { lines: 0, fed: 0, badLines: 0, longLines: 0, done: false };
  const speed = config.replaySpeed === 0 ? 'as fast as possible' : `${config.replaySpeed}x`;
  let view: LiveView | undefined;
  if (wantsView(config)) {
    view = startView(bridge, otel, {
      version,
      listen: [`(replay of ${file})`],
      extra: () => [
        `replay   ${file}: ${progress.fed} datagrams fed from ${progress.lines} lines (${progress.badLines} bad), speed ${speed}${progress.done ? ', done' : ''}`,
      ],
    });
    onView(view);
  }
  log.info('replay started', { version, file, speed: config.replaySpeed, export: describeTargets(otel) });

  let interrupted = false;
  const onSignal = (signal: string) => {
    if (interrupted) {
      view?.close();
      log.warn('second signal: exiting without waiting for the flush', { signal });
      process.exit(1);
    }
    interrupted = true;
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));

  let code = 0;
  try {
    await replay(file, bridge, {
      speed: config.replaySpeed,
      log,
      maxInFlightSpans: REPLAY_IN_FLIGHT_BATCHES * config.exportBatchSize,
      stopped: () => interrupted,
      progress,
    });
    if (progress.fed === 0 && progress.badLines > 0) {
      log.error('nothing replayed: no line of the file is a recorded datagram', { file, badLines: progress.badLines });
      code = 1;
    }
  } catch (e) {
    log.error('cannot replay', { file, error: (e as Error).message });
    code = 1;
  }
  // The last frame stays on the normal screen, then the flush (every pending call is exported).
  view?.close(true);
  onView(undefined);
  let timer: NodeJS.Timeout | undefined;
  const flushed = await Promise.race([
    bridge.stop().then(
      () => true,
      (e: Error) => {
        log.error('error while flushing', { error: e.message });
        return false;
      },
    ),
    new Promise<boolean>((r) => (timer = setTimeout(() => r(false), config.shutdownTimeoutMs))),
  ]);
  clearTimeout(timer);
  if (!flushed) code = 1;
  log.info('replay finished', { file, lines: progress.lines, fed: progress.fed, badLines: progress.badLines, longLines: progress.longLines, interrupted, flushed, stats: bridge.snapshot() });
  return code;
}
