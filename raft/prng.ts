// The injected source of randomness: a small seeded PRNG, so a seed replays a run exactly.

/** What raft needs from a random source. Implementations must be deterministic given their seed. */
export interface Prng {
  /** A uniformly distributed integer in [0, bound). `bound` is a positive integer. */
  nextInt(bound: number): number;
}

/**
 * xoshiro128** seeded through splitmix32: fast, small state, good statistical quality.
 * Not cryptographic; only for timeouts and simulation.
 */
export class SeededPrng implements Prng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  constructor(seed: number) {
    let state = seed >>> 0;
    const next = (): number => {
      state = (state + 0x9e3779b9) | 0;
      let z = state;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.s0 = next();
    this.s1 = next();
    this.s2 = next();
    this.s3 = next();
  }

  /** A uniformly distributed unsigned 32-bit integer. */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  nextInt(bound: number): number {
    if (!Number.isInteger(bound) || bound <= 0)
      throw new RangeError(`nextInt bound must be a positive integer, got ${bound}`);
    return Math.floor((this.nextUint32() / 0x100000000) * bound);
  }

  /** A float in [0, 1). */
  nextFloat(): number {
    return this.nextUint32() / 0x100000000;
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.nextFloat() < p;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
