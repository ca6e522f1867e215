// Logs a repeating event once, then at most once a window with how often it repeated meanwhile: a peer that keeps knocking with the wrong secret is one line a minute, not one a dial.

/** What to do with one occurrence: log it (with the count left unlogged since the last line) or not. */
export interface RepeatVerdict {
  readonly log: boolean;
  /** Occurrences of the same key not logged since its last line (0 for a first one). */
  readonly suppressed: number;
}

/**
 * Bounded: at most `maxKeys` keys are remembered, the least recently logged forgotten first (a
 * forgotten key is logged again as new). `now` is the clock in ms, injectable for tests.
 */
export class RepeatGate {
  private readonly keys = new Map<string, { at: number; suppressed: number }>();

  constructor(
    private readonly windowMs = 60_000,
    private readonly maxKeys = 1024,
    private readonly now: () => number = Date.now,
  ) {}

  /** One occurrence of `key`: logged if new or if its last line is `windowMs` old. */
  check(key: string): RepeatVerdict {
    const now = this.now();
    const seen = this.keys.get(key);
    if (seen !== undefined && now - seen.at < this.windowMs) {
      seen.suppressed++;
      return { log: false, suppressed: seen.suppressed };
    }
    const suppressed = seen?.suppressed ?? 0;
    this.keys.delete(key);
    this.keys.set(key, { at: now, suppressed: 0 });
    if (this.keys.size > this.maxKeys) {
      const oldest = this.keys.keys().next().value;
      if (oldest !== undefined) this.keys.delete(oldest);
    }
    return { log: true, suppressed };
  }
}
