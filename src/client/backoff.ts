// Exponential backoff with jitter, and a sleep that an AbortSignal cuts short.

/** A source of uniform numbers in [0, 1); injected so tests can make delays deterministic. */
export type Random = () => number;

/**
 * The delay before retry round `round` (1 = the first retry): baseMs doubled per round up to
 * maxMs, then "equal jitter" — uniformly in [delay/2, delay] — so that clients that failed
 * together do not retry together, yet none retries at once.
 */
export function backoffDelayMs(round: number, baseMs: number, maxMs: number, random: Random): number {
  if (round <= 0) return 0;
  const exponent = Math.min(round - 1, 30);
  const delay = Math.min(maxMs, baseMs * 2 ** exponent);
  return Math.round(delay / 2 + (random() * delay) / 2);
}

/** Resolves after `ms`, or rejects with the signal's reason as soon as it aborts; leaves no timer behind. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.reject(signal.reason);
  if (ms <= 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
