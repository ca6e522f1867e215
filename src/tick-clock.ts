// One timer for every raft group of a node: each tick, every group ticks and drains in the same task, so their messages to a peer leave in one flush.

/*
 * Why: with a timer per group, 100 idle groups wake the process 100 times per tick interval,
 * and each wake-up drains one group and flushes its heartbeats on its own. Ticking them all
 * in one callback makes one wake-up per interval, and the mesh's per-task flush (net/
 * raft-link.ts) then carries every group's messages to a peer together.
 *
 * Contract: add() registers a tick function and returns its removal; the timer runs while
 * anything is registered (unref'd: it never keeps the process alive). A tick that throws is
 * reported to `onError` and does not stop the others.
 */
export class TickClock {
  private readonly ticks = new Set<() => void>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly tickMs: number,
    private readonly onError: (error: unknown) => void = () => undefined,
  ) {}

  /** Calls `tick` every tickMs from the next interval on; returns the function that stops it. */
  add(tick: () => void): () => void {
    this.ticks.add(tick);
    if (this.timer === undefined) {
      this.timer = setInterval(() => this.fire(), this.tickMs);
      this.timer.unref();
    }
    return () => {
      this.ticks.delete(tick);
      if (this.ticks.size === 0 && this.timer !== undefined) {
        clearInterval(this.timer);
        this.timer = undefined;
      }
    };
  }

  get size(): number {
    return this.ticks.size;
  }

  private fire(): void {
    for (const tick of [...this.ticks]) {
      try {
        tick();
      } catch (error) {
        this.onError(error);
      }
    }
  }
}
