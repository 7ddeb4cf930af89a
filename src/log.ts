/**
 * Structured JSON-lines logger on stderr. JSON.stringify escapes control
 * characters, so values that came off the wire cannot inject terminal
 * escapes or fake log lines.
 */
export type Level = 'debug' | 'info' | 'warn' | 'error';
const RANK: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  /** At most one line per `key` per interval; the next line says how many were suppressed. */
  warnLimited(key: string, msg: string, fields?: Record<string, unknown>): void;
}

export function createLogger(
  level: Level,
  write: (line: string) => void = (l) => process.stderr.write(l),
  intervalMs = 10_000,
  now: () => number = Date.now,
): Logger {
  const min = RANK[level];
  const limited = new Map<string, { until: number; suppressed: number }>();
  const emit = (lvl: Level, msg: string, fields?: Record<string, unknown>) => {
    if (RANK[lvl] < min) return;
    write(`${JSON.stringify({ time: new Date(now()).toISOString(), level: lvl, msg, ...fields })}\n`);
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    warnLimited(key, msg, fields) {
      const t = now();
      const state = limited.get(key);
      if (state && t < state.until) {
        state.suppressed++;
        return;
      }
      const suppressed = state?.suppressed ?? 0;
      // Bounded: keys are a fixed set chosen by the code (reject reasons, exporter names).
      limited.set(key, { until: t + intervalMs, suppressed: 0 });
      emit('warn', msg, suppressed > 0 ? { ...fields, suppressedSinceLast: suppressed } : fields);
    },
  };
}
