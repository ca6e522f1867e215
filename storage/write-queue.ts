// Group commit: every write to an engine goes through one queue that turns many requests into one batch, synced unless none needs it.

/*
 * Why one queue, and when a batch is synced:
 * - A synced write costs one fsync of the write-ahead log whether it carries one entry or a
 *   thousand, so requests submitted in the same task, or while a write is in flight, are
 *   coalesced into one batch: raft appends, hard states and state machine applies of every
 *   Ready the driver drained together share one fsync. (RocksDB's synced write blocks the JS
 *   thread, so what arrives meanwhile waits in the sockets and is drained as one turn later.)
 * - A batch is synced unless every request in it says `sync: false` (state machine applies:
 *   the raft log, durable on a quorum, can replay them). Such a write is on stable storage
 *   once any later synced batch is, on engines whose synced write covers earlier writes
 *   (RocksDB: one write-ahead log, every live file synced). LevelDB syncs only its current
 *   log file, so after it switches files an earlier unsynced write may be lost on power
 *   failure while a later synced one survives: on LevelDB every batch is synced. Callers
 *   that drop what an unsynced write made redundant (log compaction) do so only after a
 *   synced write of their own, which orders after it.
 * - Requests are atomic: a request's ops are never split across batches. A batch is one
 *   engine write, so a crash keeps either all of a request or none of it.
 * - Range deletes (clears) run after the batch that recorded the new bound is durable, one
 *   at a time, beside later batches: callers only clear ranges no later write touches.
 * - A failed write is fatal (fail-stop): after an fsync error the kernel may have dropped the
 *   dirty pages, so retrying could report success for data that is gone. Every pending and
 *   later request is rejected with STORAGE_FAILED and the store must be reopened.
 */

import type { KvEngine, WriteOp } from './engine.js';
import { StorageError } from './errors.js';

export interface WriteQueueLimits {
  /** A batch takes pending requests in order while their bytes stay within this (always at least one). */
  readonly maxBatchBytes: number;
  /** Bytes waiting in the queue beyond which submit() refuses: a producer that ignores backpressure. */
  readonly maxPendingBytes: number;
}

export interface SubmitOptions {
  /** Ranges [gte, lt) to delete once this request is durable. */
  readonly clears?: readonly (readonly [Uint8Array, Uint8Array])[];
  /**
   * false: the request may be written without an fsync of its own; it becomes durable with the
   * next synced batch (see above). Ignored (always synced) on engines whose synced write does
   * not cover earlier writes. Default true.
   */
  readonly sync?: boolean;
  /**
   * Runs synchronously once the request is written (durable, unless it was submitted with
   * `sync: false`), before its promise resolves and before
   * any later request's callback: where callers update their in-memory view of the store.
   */
  readonly onDurable?: () => void;
}

/** A request prepared but not yet submitted, so that callers can combine several into one. */
export interface PreparedWrite {
  readonly ops: WriteOp[];
  readonly options: SubmitOptions;
}

interface Request {
  readonly ops: readonly WriteOp[];
  readonly bytes: number;
  readonly options: SubmitOptions;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

export interface WriteQueueStats {
  /** Synced engine writes: the fsyncs the queue caused. */
  readonly batches: number;
  /** Engine writes without an fsync (only requests submitted with sync: false). */
  readonly unsyncedBatches: number;
  readonly requests: number;
  readonly ops: number;
  readonly bytes: number;
  readonly clears: number;
}

export class WriteQueue {
  private pending: Request[] = [];
  private pendingBytes = 0;
  private flushing = false;
  private scheduled = false;
  private clearChain: Promise<void> = Promise.resolve();
  private idleWaiters: (() => void)[] = [];
  private failure: StorageError | undefined;
  private closed = false;
  private counters = { batches: 0, unsyncedBatches: 0, requests: 0, ops: 0, bytes: 0, clears: 0 };

  constructor(
    private readonly engine: KvEngine,
    private readonly limits: WriteQueueLimits,
  ) {}

  private observer: ((synced: boolean, ops: number, seconds: number) => void) | undefined;

  /** Called after each engine write with whether it was synced, its ops and how long it took (metrics). Must not throw. */
  observe(observer: ((synced: boolean, ops: number, seconds: number) => void) | undefined): void {
    this.observer = observer;
  }

  get stats(): WriteQueueStats {
    return { ...this.counters };
  }

  /** The error that stopped the queue, if one did. */
  get failed(): StorageError | undefined {
    return this.failure;
  }

  /**
   * Queues `ops` to be written atomically with sync. Resolves once they are on stable
   * storage (after `onDurable` ran); rejects with STORAGE_FAILED if the engine failed,
   * STORAGE_CLOSED after close(), and STORAGE_BUSY if more than maxPendingBytes would wait.
   */
  submit(ops: readonly WriteOp[], options: SubmitOptions = {}): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.closed) return Promise.reject(new StorageError('STORAGE_CLOSED', 'the write queue is closed'));
    let bytes = 0;
    for (const op of ops) bytes += op.key.length + (op.type === 'put' ? op.value.length : 0);
    if (this.pendingBytes > 0 && this.pendingBytes + bytes > this.limits.maxPendingBytes) {
      return Promise.reject(
        new StorageError(
          'STORAGE_BUSY',
          `write queue holds ${this.pendingBytes} bytes; a request of ${bytes} would pass maxPendingBytes ${this.limits.maxPendingBytes}`,
        ),
      );
    }
    return new Promise<void>((resolve, reject) => {
      this.pending.push({ ops, bytes, options, resolve, reject });
      this.pendingBytes += bytes;
      this.schedule();
    });
  }

  /** Resolves when every request submitted so far is durable and every clear has run. */
  async drain(): Promise<void> {
    if (this.flushing || this.scheduled || this.pending.length > 0) {
      await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    }
    await this.clearChain;
  }

  /** Drains, then refuses further requests. */
  async close(): Promise<void> {
    await this.drain().catch(() => undefined);
    this.closed = true;
  }

  private schedule(): void {
    if (this.flushing || this.scheduled || this.pending.length === 0) return;
    this.scheduled = true;
    // The batch is written when the current task ends: everything submitted in it joins. The
    // raft driver persists every Ready it drains in one task, and drains once per event-loop
    // turn, so a turn's proposals and messages share one fsync without waiting a further turn
    // (which cost 0.3-5 ms of a sequential write's latency, traced on a 3-node cluster).
    // Requests that arrive while a batch is in flight form the next one.
    queueMicrotask(() => {
      this.scheduled = false;
      void this.flush();
    });
  }

  private async flush(): Promise<void> {
    if (this.failure || this.pending.length === 0) return this.settleIdle();
    this.flushing = true;
    const taken = this.take();
    const ops: WriteOp[] = [];
    for (const request of taken) for (const op of request.ops) ops.push(op);
    const sync =
      !this.engine.syncCoversEarlierWrites || taken.some((request) => request.options.sync !== false);
    const started = performance.now();
    try {
      if (ops.length > 0) await this.engine.write(ops, sync);
    } catch (error) {
      this.fail(error, taken);
      return;
    }
    if (ops.length > 0) this.observer?.(sync, ops.length, (performance.now() - started) / 1000);
    this.counters.batches += ops.length > 0 && sync ? 1 : 0;
    this.counters.unsyncedBatches += ops.length > 0 && !sync ? 1 : 0;
    this.counters.requests += taken.length;
    this.counters.ops += ops.length;
    for (const request of taken) this.counters.bytes += request.bytes;
    for (const request of taken) this.complete(request);
    this.flushing = false;
    if (this.pending.length > 0) this.schedule();
    else this.settleIdle();
  }

  private take(): Request[] {
    const taken: Request[] = [];
    let bytes = 0;
    while (this.pending.length > 0) {
      const next = this.pending[0]!;
      if (taken.length > 0 && bytes + next.bytes > this.limits.maxBatchBytes) break;
      taken.push(this.pending.shift()!);
      bytes += next.bytes;
    }
    this.pendingBytes -= bytes;
    return taken;
  }

  private complete(request: Request): void {
    try {
      request.options.onDurable?.();
    } catch (error) {
      // A bug in the caller's bookkeeping; the data is durable, so only this request fails.
      request.reject(error);
      return;
    }
    for (const [gte, lt] of request.options.clears ?? []) this.enqueueClear(gte, lt);
    request.resolve();
  }

  private enqueueClear(gte: Uint8Array, lt: Uint8Array): void {
    this.clearChain = this.clearChain.then(async () => {
      if (this.failure) return;
      try {
        await this.engine.clear(gte, lt);
        this.counters.clears++;
      } catch (error) {
        this.fail(error, []);
      }
    });
  }

  private fail(error: unknown, taken: readonly Request[]): void {
    this.failure ??= new StorageError(
      'STORAGE_FAILED',
      `engine write failed; the store refuses further writes until reopened: ${String(error)}`,
      { cause: error },
    );
    const failure = this.failure;
    for (const request of taken) request.reject(failure);
    for (const request of this.pending) request.reject(failure);
    this.pending = [];
    this.pendingBytes = 0;
    this.flushing = false;
    this.settleIdle();
  }

  private settleIdle(): void {
    if (this.flushing || this.scheduled || this.pending.length > 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
  }
}
