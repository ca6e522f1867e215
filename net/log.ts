// Structured logging for net/: one JSON object per line, silent unless a level is chosen.

/**
 * The logger net/ components write to. The same shape as src/'s Logger, so the node passes
 * one logger everywhere. `event` is a stable snake_case name; `fields` are JSON-serialisable.
 */
export interface Logger {
  debug(event: string, fields?: Record<string, unknown>): void;
  info(event: string, fields?: Record<string, unknown>): void;
  warn(event: string, fields?: Record<string, unknown>): void;
  error(event: string, fields?: Record<string, unknown>): void;
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';

const LEVEL_RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

/** A logger that drops everything: the default of every net/ component (quiet by default). */
export const silentLogger: Logger = Object.freeze({
  debug() {},
  info() {},
  warn() {},
  error() {},
});

export interface JsonLoggerInit {
  /** Lines below this level are dropped. */
  readonly level: LogLevel;
  /** Added to every line, e.g. `{ component: 'mesh', node: '12D3…' }`. */
  readonly base?: Record<string, unknown>;
  /** Where lines go; defaults to process.stderr. Receives one line with its trailing newline. */
  readonly write?: (line: string) => void;
  /** Milliseconds since the epoch; injectable for tests. */
  readonly now?: () => number;
}

/**
 * A logger writing one JSON object per line: `{"ts":…,"level":…,"event":…, ...base, ...fields}`.
 * A field that cannot be serialised (a cycle, a BigInt) is replaced by its String(), so a log
 * call never throws.
 */
export function jsonLogger(init: JsonLoggerInit): Logger {
  const threshold = LEVEL_RANK[init.level];
  if (threshold === undefined) throw new TypeError(`unknown log level ${JSON.stringify(init.level)}`);
  const write = init.write ?? ((line: string) => process.stderr.write(line));
  const now = init.now ?? Date.now;
  const base = init.base ?? {};
  const emit = (level: Exclude<LogLevel, 'silent'>, event: string, fields?: Record<string, unknown>) => {
    if (LEVEL_RANK[level] < threshold) return;
    const record = { ts: new Date(now()).toISOString(), level, event, ...base, ...fields };
    write(`${safeStringify(record)}\n`);
  };
  return {
    debug: (event, fields) => emit('debug', event, fields),
    info: (event, fields) => emit('info', event, fields),
    warn: (event, fields) => emit('warn', event, fields),
    error: (event, fields) => emit('error', event, fields),
  };
}

/** A logger that adds `fields` to every line of `logger`. */
export function withFields(logger: Logger, fields: Record<string, unknown>): Logger {
  if (logger === silentLogger) return logger;
  return {
    debug: (event, more) => logger.debug(event, { ...fields, ...more }),
    info: (event, more) => logger.info(event, { ...fields, ...more }),
    warn: (event, more) => logger.warn(event, { ...fields, ...more }),
    error: (event, more) => logger.error(event, { ...fields, ...more }),
  };
}

function safeStringify(record: Record<string, unknown>): string {
  try {
    return JSON.stringify(record, (_key, value) => (typeof value === 'bigint' ? value.toString() : value));
  } catch {
    const flat: Record<string, string> = {};
    for (const [key, value] of Object.entries(record)) flat[key] = String(value);
    return JSON.stringify(flat);
  }
}
