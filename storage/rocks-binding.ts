// RocksDB's native write calls (@nxtedition/rocksdb's binding), and one reusable native batch that writes WriteOps through them.

/*
 * Why not the abstract-level batch(): for each write it validates and transcodes every op,
 * builds a ChainedBatch with a new native WriteBatch, and checks each op again in _put. Writing
 * straight into one long-lived native batch makes the same RocksDB call (Write with the same
 * WriteOptions) for less: measured on this machine (npm run bench:storage-cpu, batches of 20,
 * 5 runs alternating with the build before), Conclave's storage/ went from 36.0 to 31.3 µs of
 * CPU per put (medians), and raw writes of the same entries from 12.1 to 10.1 µs.
 *
 * The binding takes a key or value through napi_is_buffer, and reads anything it refuses as
 * its own Slice type ({ buffer, byteOffset, byteLength }). Node 20's napi_is_buffer accepts a
 * plain Uint8Array (checked), but not every Node version's does, so each view that is not a
 * Buffer is wrapped in one over the same memory (no copy).
 */

import { createRequire } from 'node:module';
import type { WriteOp } from './engine.js';

/** The binding's calls used here and by the write worker. */
export interface RocksBinding {
  db_init(handle: bigint): unknown;
  batch_init(): unknown;
  batch_put(batch: unknown, key: Uint8Array, value: Uint8Array, options: object): void;
  batch_del(batch: unknown, key: Uint8Array, options: object): void;
  batch_clear(batch: unknown): void;
  batch_write(db: unknown, batch: unknown, options: { sync: boolean }): void;
}

const require = createRequire(import.meta.url);

/** The binding (loaded once, on first use). */
export function rocksBinding(): RocksBinding {
  return require('@nxtedition/rocksdb/binding.js') as RocksBinding;
}

const NO_OPTIONS = {};
const SYNCED = { sync: true };
const UNSYNCED = { sync: false };

/** A Buffer over the bytes of `view`, without copying them. */
function asBuffer(view: Uint8Array): Buffer {
  return Buffer.isBuffer(view) ? view : Buffer.from(view.buffer, view.byteOffset, view.byteLength);
}

/**
 * Writes batches to one open database, on the calling thread. Contract: the caller guarantees
 * the database is open for every write() (the context does not own it, and a write after it
 * closed would touch freed memory). write() is synchronous: when it returns, RocksDB has the
 * batch (synced if asked); it throws the engine's error, after which the batch is cleared.
 */
export class RocksBatchWriter {
  private readonly binding = rocksBinding();
  private readonly db: unknown;
  private readonly batch: unknown;

  /** `handle`: the open database's address (RocksLevel's `handle`). */
  constructor(handle: bigint) {
    this.db = this.binding.db_init(handle);
    this.batch = this.binding.batch_init();
  }

  write(ops: readonly WriteOp[], sync: boolean): void {
    const { binding, batch } = this;
    try {
      for (const op of ops) {
        if (op.type === 'put') binding.batch_put(batch, asBuffer(op.key), asBuffer(op.value), NO_OPTIONS);
        else binding.batch_del(batch, asBuffer(op.key), NO_OPTIONS);
      }
      binding.batch_write(this.db, batch, sync ? SYNCED : UNSYNCED);
    } finally {
      binding.batch_clear(batch);
    }
  }
}
