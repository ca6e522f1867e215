// Structured logging: one JSON object per line on stderr, quiet (warnings and errors only) by default.

import type { Logger } from './raft-driver.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';

export const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error', 'silent'];

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

/** Where lines go; tests pass an array-backed sink. */
export type LogSink = (line: string) => void;

/**
 * A logger writing `{"time","level","event",...fields}` lines. `fields` never overwrite the
 * first three keys; values that JSON cannot encode (bigint, cycles) are replaced by a string.
 */
export class JsonLogger implements Logger {
  private readonly threshold: number;

  constructor(
    private readonly level: LogLevel,
    private readonly base: Record<string, unknown> = {},
    private readonly sink: LogSink = (line) => process.stderr.write(`${line}\n`),
  ) {
    this.threshold = RANK[level];
  }

  /** A logger that adds `fields` (e.g. the node name) to every line. */
  child(fields: Record<string, unknown>): JsonLogger {
    return new JsonLogger(this.level, { ...this.base, ...fields }, this.sink);
  }

  debug(event: string, fields?: Record<string, unknown>): void {
    this.write('debug', event, fields);
  }

  info(event: string, fields?: Record<string, unknown>): void {
    this.write('info', event, fields);
  }

  warn(event: string, fields?: Record<string, unknown>): void {
    this.write('warn', event, fields);
  }

  error(event: string, fields?: Record<string, unknown>): void {
    this.write('error', event, fields);
  }

  private write(level: Exclude<LogLevel, 'silent'>, event: string, fields?: Record<string, unknown>): void {
    if (RANK[level] < this.threshold) return;
    const record: Record<string, unknown> = { time: new Date().toISOString(), level, event };
    for (const [key, value] of Object.entries({ ...this.base, ...fields }))
      if (!(key in record)) record[key] = value;
    let line: string;
    try {
      line = JSON.stringify(record, (_key, value: unknown) =>
        typeof value === 'bigint' ? value.toString() : value,
      );
    } catch {
      line = JSON.stringify({ time: record.time, level, event, note: 'fields could not be encoded' });
    }
    this.sink(line);
  }
}
