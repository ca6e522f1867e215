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

  /** `scope`: the realm whose writes it carries (a session lives in that realm's raft group). */
  constructor(
    readonly id: number,
    readonly scope = '',
  ) {}

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
 * The sessions writes run under, one per scope (the realm written: realms may live in
 * different raft groups, and a session lives in one), each opened lazily and replaced when it
 * expires or is retired; and the limit on writes in flight, shared by all (FIFO beyond it).
 */
export class Sessions {
  private readonly active = new Map<string, Session>();
  private readonly opening = new Map<string, Promise<Session>>();
  private inflight = 0;
  private readonly queue = new Set<SlotWaiter>();

  constructor(
    private readonly maxInflight: number,
    /** Opens a session for `scope` on the cluster and returns its id; throws ConclaveError. */
    private readonly openOnCluster: (scope: string) => Promise<number>,
  ) {}

  /** The session in use for `scope` (default: the first scope's), if one is open. */
  current(scope?: string): Session | undefined {
    return scope === undefined ? this.active.values().next().value : this.active.get(scope);
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
  session(signal: AbortSignal, scope = ''): Promise<Session> {
    const active = this.active.get(scope);
    if (active !== undefined) return Promise.resolve(active);
    let opening = this.opening.get(scope);
    if (opening === undefined) {
      const started: Promise<Session> = this.openOnCluster(scope).then(
        (id) => {
          if (this.opening.get(scope) === started) this.opening.delete(scope);
          const session = new Session(id, scope);
          this.active.set(scope, session);
          return session;
        },
        (error: unknown) => {
          if (this.opening.get(scope) === started) this.opening.delete(scope);
          throw error;
        },
      );
      opening = started;
      this.opening.set(scope, opening);
    }
    return raceAbort(opening, signal);
  }

  /**
   * Stops using `session` for new writes (it expired, or a seq of it will never be answered);
   * the next write opens another. Writes already under it finish under it.
   */
  retire(session: Session): void {
    if (this.active.get(session.scope) === session) this.active.delete(session.scope);
  }

  /** Forgets every session without telling the cluster (the client is closing); returns them. */
  clear(): Session[] {
    const sessions = [...this.active.values()];
    this.active.clear();
    return sessions;
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
