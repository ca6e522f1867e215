// Redial delays: capped exponential backoff with jitter, a pure function of the failure count.

export interface BackoffPolicy {
  /** Delay after the first failure, before jitter. */
  readonly baseMs: number;
  /** No delay exceeds this. */
  readonly maxMs: number;
}

/**
 * The delay before the next attempt after `failures` consecutive failures (at least 1):
 * d = min(maxMs, baseMs · 2^(failures-1)), then "equal jitter", a uniform draw in [d/2, d].
 * Half the delay is kept so a flapping peer is not hammered; the random half spreads the
 * redials of many nodes that lost the same peer at the same moment. `random` returns [0, 1).
 */
export function backoffDelayMs(failures: number, policy: BackoffPolicy, random: () => number): number {
  const exponent = Math.min(Math.max(failures, 1) - 1, 52);
  const ceiling = Math.min(policy.maxMs, policy.baseMs * 2 ** exponent);
  const draw = Math.min(Math.max(random(), 0), 1);
  return Math.round(ceiling / 2 + (ceiling / 2) * draw);
}
