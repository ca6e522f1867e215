// When this node appended its log entries, kept for a bounded window: a member's lag in milliseconds.

/**
 * A ring of (last index, time) samples, one per append. `lagMs(match)` is the age of the oldest
 * entry above `match`: how far behind in time a member that holds entries up to `match` is.
 * Memory is fixed (`capacity` samples); an entry older than the oldest sample answers with the
 * oldest sample's age, a lower bound.
 */
export class AppendClock {
  private readonly indexes: Float64Array;
  private readonly times: Float64Array;
  /** Where the oldest sample is, and how many there are. */
  private start = 0;
  private size = 0;

  constructor(private readonly capacity = 4096) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError(`capacity must be a positive integer, got ${capacity}`);
    }
    this.indexes = new Float64Array(capacity);
    this.times = new Float64Array(capacity);
  }

  /**
   * Entries up to `lastIndex` were appended at `nowMs`. A sample at or above `lastIndex` (the
   * log was truncated and rewritten) is dropped first, so the samples stay increasing.
   */
  record(lastIndex: number, nowMs: number): void {
    while (this.size > 0 && this.indexes[this.slot(this.size - 1)]! >= lastIndex) this.size--;
    if (this.size === this.capacity) {
      this.start = (this.start + 1) % this.capacity;
      this.size--;
    }
    this.indexes[this.slot(this.size)] = lastIndex;
    this.times[this.slot(this.size)] = nowMs;
    this.size++;
  }

  /** Milliseconds since the first entry above `match` was appended; 0 when there is none. */
  lagMs(match: number, nowMs: number): number {
    if (this.size === 0 || this.indexes[this.slot(this.size - 1)]! <= match) return 0;
    // The first sample whose last index is above match: the append that brought that entry.
    let lo = 0;
    let hi = this.size - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.indexes[this.slot(mid)]! > match) hi = mid;
      else lo = mid + 1;
    }
    return Math.max(0, nowMs - this.times[this.slot(lo)]!);
  }

  /** The array position of the i-th oldest sample. */
  private slot(i: number): number {
    return (this.start + i) % this.capacity;
  }
}
