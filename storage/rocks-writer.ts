// Hands RocksDB's synced writes to a worker thread, so that the event loop serves peers and clients while the write-ahead log is fsync'd.

/*
 * Why: @nxtedition/rocksdb's batch write runs on the calling thread, and a synced one blocks it
 * for the fsync (0.1-0.5 ms on the disks we measured on, milliseconds on slow ones): nothing
 * else runs on the event loop meanwhile, not acknowledgements, reads or heartbeats.
 *
 * Measured (issue 15, 3 members on 2 cores, one sequential writer, alternating runs): writing on
 * the worker, and handing persistence over before the messages, was no faster than the inline
 * write (p50 within noise; the followers' round trip, not the leader's fsync, is the longer
 * path), no better at p99 (measured again against the direct inline write of rocks-binding.ts,
 * 4 alternating pairs: p99 5.29-5.42 against 4.69-5.37 ms), and cost 3-15 % more CPU per put
 * (the hops between threads). So 'inline' is the default
 * (storage config rocksdbSyncedWrites, node flag --rocksdb-synced-writes); 'worker' is for disks
 * whose fsync takes long enough to stall the event loop, where it has not been measured yet.
 *
 * How: the worker (rocks-write-worker.ts) wraps the same open database by its address (the
 * binding's db_get_handle / db_init), so the write is the same RocksDB call with the same
 * WriteOptions; only the thread differs. The ops are packed into one transferred buffer (a
 * copy of their bytes, no structured clone of many small arrays). Crash behaviour is RocksDB's
 * own: a write is durable when the worker's synced batch_write returned, as before.
 *
 * Contract: write() resolves once the worker's write returned, rejects with the engine's error
 * message, or with WRITER_GONE if the worker died or was stopped before answering (the write's
 * fate is then unknown: callers treat any rejection as fatal, as the write queue does).
 * close() waits for the writes in flight, then stops the worker; the caller closes the database
 * only after that, so the worker never touches a closed database.
 */

import { Worker } from 'node:worker_threads';
import type { WriteOp } from './engine.js';
import type { WriteAnswer, WriteRequest } from './rocks-write-worker.js';

const WORKER = new URL('./rocks-write-worker.js', import.meta.url);

interface Waiting {
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
}

export class RocksWriter {
  private readonly worker: Worker;
  private ready = false;
  private gone: Error | undefined;
  private nextId = 1;
  private readonly waiting = new Map<number, Waiting>();
  private idleWaiters: (() => void)[] = [];
  private closing: Promise<void> | undefined;

  /** Starts the worker on the open database at `handle` (RocksLevel's `handle`). */
  constructor(handle: bigint) {
    this.worker = new Worker(WORKER, { workerData: { handle } });
    // Only writes in flight keep the process alive (ref'd in write(), unref'd when idle).
    this.worker.unref();
    this.worker.on('message', (answer: WriteAnswer) => this.answer(answer));
    this.worker.on('error', (error: Error) => this.die(error));
    this.worker.on('exit', (code: number) =>
      this.die(new Error(`the write worker exited with code ${code}`)),
    );
  }

  /** True once the worker has started and until it stops or dies: until then, write elsewhere. */
  get available(): boolean {
    return this.ready && this.gone === undefined && this.closing === undefined;
  }

  /** Writes `ops` as one atomic batch on the worker thread, synced if `sync`. */
  write(ops: readonly WriteOp[], sync: boolean): Promise<void> {
    if (this.gone !== undefined) return Promise.reject(this.gone);
    const packed = packOps(ops);
    const id = this.nextId++;
    return new Promise<void>((resolve, reject) => {
      if (this.waiting.size === 0) this.worker.ref();
      this.waiting.set(id, { resolve, reject });
      const request: WriteRequest = { id, packed, sync };
      this.worker.postMessage(request, [packed.buffer as ArrayBuffer]);
    });
  }

  /** Waits for the writes in flight, then stops the worker. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      if (this.waiting.size > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
      await this.worker.terminate();
    })();
    return this.closing;
  }

  private answer(answer: WriteAnswer): void {
    if (answer.id === 0) {
      this.ready = true;
      return;
    }
    const waiting = this.waiting.get(answer.id);
    if (waiting === undefined) return;
    this.waiting.delete(answer.id);
    if (answer.error === undefined) waiting.resolve();
    else waiting.reject(new Error(answer.error));
    this.settleIdle();
  }

  private die(error: Error): void {
    this.gone ??= Object.assign(new Error(`WRITER_GONE: ${error.message}`), { code: 'WRITER_GONE' });
    for (const waiting of this.waiting.values()) waiting.reject(this.gone);
    this.waiting.clear();
    this.settleIdle();
  }

  private settleIdle(): void {
    if (this.waiting.size > 0) return;
    this.worker.unref();
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
  }
}

/** Packs ops as rocks-write-worker.ts reads them, into a buffer of its own (it is transferred). */
export function packOps(ops: readonly WriteOp[]): Uint8Array {
  let size = 4;
  for (const op of ops) size += 5 + op.key.length + (op.type === 'put' ? 4 + op.value.length : 0);
  const packed = new Uint8Array(size);
  const view = new DataView(packed.buffer);
  view.setUint32(0, ops.length);
  let at = 4;
  for (const op of ops) {
    packed[at] = op.type === 'put' ? 1 : 2;
    view.setUint32(at + 1, op.key.length);
    packed.set(op.key, at + 5);
    at += 5 + op.key.length;
    if (op.type === 'put') {
      view.setUint32(at, op.value.length);
      packed.set(op.value, at + 4);
      at += 4 + op.value.length;
    }
  }
  return packed;
}
