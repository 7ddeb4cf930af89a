/**
 * Structured JSON-lines logger on stderr. JSON.stringify escapes C0 control
 * characters (ESC, CR, LF...); `safeLine` also escapes what it leaves raw and a
 * terminal or log viewer may still act on: DEL, the C1 controls (U+009B is an
 * 8-bit CSI), the Unicode line/paragraph separators and the bidi overrides. So
 * values that came off the wire cannot inject terminal escapes or fake log lines.
 */
export type Level = 'debug' | 'info' | 'warn' | 'error' | 'none';
/** `none` (OTEL_LOG_LEVEL=none) is above every level a line can have: nothing is written. */
const RANK: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40, none: 100 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  /** At most one line per `key` per interval; the next line says how many were suppressed. */
  warnLimited(key: string, msg: string, fields?: Record<string, unknown>): void;
}

/** warnLimited remembers at most this many keys. */
export const MAX_LIMITED_KEYS = 256;

const UNSAFE = /[\u007f-\u009f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/** A JSON text with the characters above as \uXXXX escapes: still the same JSON value. */
export function safeLine(json: string): string {
  return json.replace(UNSAFE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

export function createLogger(
  level: Level,
  write: (line: string) => void = (l) => process.stderr.write(l),
  intervalMs = 10_000,
  now: () => number = Date.now,
): Logger {
  const min = RANK[level];
  const limited = new Map<string, { until: number; suppressed: number }>();
  const emit = (lvl: Exclude<Level, 'none'>, msg: string, fields?: Record<string, unknown>) => {
    if (RANK[lvl] < min) return;
    write(`${safeLine(JSON.stringify({ time: new Date(now()).toISOString(), level: lvl, msg, ...fields }))}\n`);
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
      // Keys are a fixed set chosen by the code (reject reasons, exporter names); the cap keeps it
      // bounded should a caller ever build keys from data: the oldest key is forgotten.
      if (!state && limited.size >= MAX_LIMITED_KEYS) {
        const oldest = limited.keys().next();
        if (!oldest.done) limited.delete(oldest.value);
      }
      limited.set(key, { until: t + intervalMs, suppressed: 0 });
      emit('warn', msg, suppressed > 0 ? { ...fields, suppressedSinceLast: suppressed } : fields);
    },
  };
}
