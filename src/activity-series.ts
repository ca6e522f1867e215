// Per-second totals of the data requests a node answered (writes, reads, errors, latency percentiles), kept for the dashboard's charts.

/** What a request did: changed data, read it, or neither (status, admin: not charted). */
export type ActivityKind = 'write' | 'read';

/** One second of a node's requests. Latencies are null in a second without such requests. */
export interface ActivitySample {
  /** The second's start, ms since the epoch. */
  readonly t: number;
  readonly writes: number;
  readonly reads: number;
  /** Requests answered with an error (either kind). */
  readonly errors: number;
  readonly writeP50Ms: number | null;
  readonly writeP99Ms: number | null;
  readonly readP50Ms: number | null;
  readonly readP99Ms: number | null;
}

/*
 * Latencies fall into geometric buckets (each 25 % wider than the one before, from 0.05 ms to
 * about a minute), so a percentile is read off as its bucket's upper bound: never under the true
 * value, at most 25 % over it. Recording is two array increments; a second is closed when the
 * next request or read of the series finds the clock past it (no timer).
 */
const FIRST_BOUND_MS = 0.05;
const GROWTH = 1.25;
const BUCKETS = 64;
const BOUNDS: readonly number[] = Array.from({ length: BUCKETS }, (_, i) => FIRST_BOUND_MS * GROWTH ** i);
const LOG_GROWTH = Math.log(GROWTH);

function bucketOf(ms: number): number {
  if (!(ms > FIRST_BOUND_MS)) return 0;
  const i = Math.ceil(Math.log(ms / FIRST_BOUND_MS) / LOG_GROWTH - 1e-9);
  return Math.min(i, BUCKETS - 1);
}

/** The upper bound of the bucket holding the q-quantile of `counts` (total `n` > 0). */
function quantile(counts: Uint32Array, n: number, q: number): number {
  const rank = Math.max(1, Math.ceil(q * n));
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    seen += counts[i] ?? 0;
    if (seen >= rank) return Math.round((BOUNDS[i] ?? 0) * 1000) / 1000;
  }
  return Math.round((BOUNDS[BUCKETS - 1] ?? 0) * 1000) / 1000;
}

/** One open second. */
class Second {
  writes = 0;
  reads = 0;
  errors = 0;
  readonly writeLatency = new Uint32Array(BUCKETS);
  readonly readLatency = new Uint32Array(BUCKETS);

  constructor(readonly t: number) {}

  close(): ActivitySample {
    return {
      t: this.t,
      writes: this.writes,
      reads: this.reads,
      errors: this.errors,
      writeP50Ms: this.writes === 0 ? null : quantile(this.writeLatency, this.writes, 0.5),
      writeP99Ms: this.writes === 0 ? null : quantile(this.writeLatency, this.writes, 0.99),
      readP50Ms: this.reads === 0 ? null : quantile(this.readLatency, this.reads, 0.5),
      readP99Ms: this.reads === 0 ? null : quantile(this.readLatency, this.reads, 0.99),
    };
  }
}

const EMPTY = (t: number): ActivitySample => ({
  t,
  writes: 0,
  reads: 0,
  errors: 0,
  writeP50Ms: null,
  writeP99Ms: null,
  readP50Ms: null,
  readP99Ms: null,
});

/**
 * The last `keep` closed seconds of a node's requests. `now` is the clock (ms since the epoch);
 * it is injected so that tests can step it.
 */
export class ActivitySeries {
  private readonly samples: ActivitySample[] = [];
  private open: Second;

  constructor(
    private readonly keep = 600,
    private readonly now: () => number = Date.now,
  ) {
    if (!Number.isSafeInteger(keep) || keep < 1)
      throw new RangeError(`keep must be a positive integer, not ${keep}`);
    this.open = new Second(this.secondOf(this.now()));
  }

  /** One answered request: its kind, whether it failed, how long it took. */
  record(kind: ActivityKind, failed: boolean, ms: number): void {
    const second = this.current();
    if (kind === 'write') {
      second.writes++;
      const i = bucketOf(ms);
      second.writeLatency[i] = (second.writeLatency[i] ?? 0) + 1;
    } else {
      second.reads++;
      const i = bucketOf(ms);
      second.readLatency[i] = (second.readLatency[i] ?? 0) + 1;
    }
    if (failed) second.errors++;
  }

  /** The closed seconds that started after `after` (ms since the epoch), oldest first. */
  since(after = -1): ActivitySample[] {
    this.current();
    let from = this.samples.length;
    while (from > 0 && (this.samples[from - 1]?.t ?? 0) > after) from--;
    return this.samples.slice(from);
  }

  private secondOf(ms: number): number {
    return Math.floor(ms / 1000) * 1000;
  }

  /** The open second, after closing those the clock has passed (empty ones included). */
  private current(): Second {
    const t = this.secondOf(this.now());
    if (t <= this.open.t) return this.open;
    this.samples.push(this.open.close());
    // Seconds without a request are charted as zero, at most `keep` of them.
    const gapFrom = Math.max(this.open.t + 1000, t - this.keep * 1000);
    for (let s = gapFrom; s < t; s += 1000) this.samples.push(EMPTY(s));
    if (this.samples.length > this.keep) this.samples.splice(0, this.samples.length - this.keep);
    this.open = new Second(t);
    return this.open;
  }
}
