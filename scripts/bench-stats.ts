// Small helpers for the benchmark scripts: percentiles and medians of samples, a timed closed-loop load, and the CPU time of server processes.

import { readFileSync } from 'node:fs';

/** The p-th percentile (0..100) of ascending `sorted`; NaN when empty. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** The median of `values` (any order). */
export function median(values: readonly number[]): number {
  return percentile(
    [...values].sort((a, b) => a - b),
    50,
  );
}

/** `values` sorted ascending (a copy). */
export function ascending(values: readonly number[]): number[] {
  return [...values].sort((a, b) => a - b);
}

/** What a timed load gave: completed operations per second, latency percentiles (ms), failures. */
export interface LoadResult {
  readonly perSecond: number;
  readonly p50: number;
  readonly p99: number;
  readonly errors: number;
}

/**
 * Runs `one` from `concurrency` callers at once for `seconds`, each starting its next call when
 * its last ends; `i` counts calls across callers.
 */
export async function loop(
  concurrency: number,
  seconds: number,
  one: (i: number) => Promise<void>,
): Promise<LoadResult> {
  const latencies: number[] = [];
  let errors = 0;
  let counter = 0;
  const started = performance.now();
  const deadline = started + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline) {
        const t0 = performance.now();
        try {
          await one(counter++);
          latencies.push(performance.now() - t0);
        } catch {
          errors++;
        }
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  const sorted = ascending(latencies);
  return {
    perSecond: latencies.length / elapsed,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    errors,
  };
}

/** utime + stime of `pids` in ms, from /proc/PID/stat (clock ticks of 10 ms on Linux); a pid gone counts 0. */
export function serverCpuMs(pids: readonly number[]): number {
  let ms = 0;
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ms += (Number(fields[11]) + Number(fields[12])) * 10;
    } catch {
      // Exited meanwhile.
    }
  }
  return ms;
}
