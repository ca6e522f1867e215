// The client session of Raft dissertation §6.3: sequence numbers, acknowledgements, and the bound on writes in flight.

import type { SessionRef } from '../ws-protocol.js';

/**
 * One session opened on the cluster. Each write takes the next seq (from 1, never reused);
 * `ack` is the highest seq such that every seq at or below it has been answered, so the
 * cluster may forget those answers. A seq that was sent but whose answer never came holds
 * the ack back for good: its session is then retired (see Sessions.retire).
 */
export class Session {
  private nextSeq = 1;
  private ackedThrough = 0;
  /** Answered seqs above ackedThrough: at most the writes in flight. */
  private readonly answeredAbove = new Set<number>();

  constructor(readonly id: number) {}

  get ack(): number {
    return this.ackedThrough;
  }

  /** The next seq; each is handed out once. */
  take(): number {
    return this.nextSeq++;
  }

  /** `seq` is answered (or was never sent and never will be): it no longer holds the ack back. */
  settle(seq: number): void {
    if (seq <= this.ackedThrough) return;
    this.answeredAbove.add(seq);
    while (this.answeredAbove.delete(this.ackedThrough + 1)) this.ackedThrough += 1;
  }

  /** The session field of a request carrying `seq`. */
  ref(seq: number): SessionRef {
    return this.ackedThrough > 0 ? { id: this.id, seq, ack: this.ackedThrough } : { id: this.id, seq };
  }
}

interface SlotWaiter {
  readonly grant: () => void;
}

/**
 * The session writes run under, opened lazily and replaced when it expires or is retired,
 * and the limit on writes in flight (FIFO beyond it).
 */
export class Sessions {
  private active: Session | undefined;
  private opening: Promise<Session> | undefined;
  private inflight = 0;
  private readonly queue = new Set<SlotWaiter>();

  constructor(
    private readonly maxInflight: number,
    /** Opens a session on the cluster and returns its id; throws ConclaveError. */
    private readonly openOnCluster: () => Promise<number>,
  ) {}

  /** The session in use, if one is open. */
  get current(): Session | undefined {
    return this.active;
  }

  get inflightCount(): number {
    return this.inflight;
  }

  get queuedCount(): number {
    return this.queue.size;
  }

  /** Waits for a write slot (FIFO); rejects with the signal's reason if it aborts first. Pair with release(). */
  acquire(signal: AbortSignal): Promise<void> {
    if (signal.aborted) return Promise.reject(signal.reason);
    if (this.inflight < this.maxInflight && this.queue.size === 0) {
      this.inflight += 1;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        this.queue.delete(waiter);
        reject(signal.reason);
      };
      const waiter: SlotWaiter = {
        grant: () => {
          signal.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.queue.add(waiter);
    });
  }

  /** Frees a slot taken by acquire(), handing it to the longest waiter. */
  release(): void {
    const [next] = this.queue;
    if (next !== undefined) {
      this.queue.delete(next);
      next.grant();
      return;
    }
    this.inflight -= 1;
  }

  /**
   * The session to write under, opening one if there is none (one opening at a time, shared
   * by every write waiting for it). Rejects with the opening's ConclaveError, or with the
   * signal's reason if it aborts first.
   */
  session(signal: AbortSignal): Promise<Session> {
    if (this.active !== undefined) return Promise.resolve(this.active);
    if (this.opening === undefined) {
      const opening = this.openOnCluster().then(
        (id) => {
          if (this.opening === opening) this.opening = undefined;
          this.active = new Session(id);
          return this.active;
        },
        (error: unknown) => {
          if (this.opening === opening) this.opening = undefined;
          throw error;
        },
      );
      this.opening = opening;
    }
    return raceAbort(this.opening, signal);
  }

  /**
   * Stops using `session` for new writes (it expired, or a seq of it will never be answered);
   * the next write opens another. Writes already under it finish under it.
   */
  retire(session: Session): void {
    if (this.active === session) this.active = undefined;
  }

  /** Forgets the session without telling the cluster (the client is closing). */
  clear(): Session | undefined {
    const session = this.active;
    this.active = undefined;
    return session;
  }
}

function raceAbort<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}
