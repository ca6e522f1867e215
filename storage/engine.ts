// The narrow key-value engine storage/ runs on, and its three implementations: RocksDB, LevelDB, memory.

/*
 * What each engine offers, read from its sources in node_modules (versions in package.json):
 *
 * | need                      | @nxtedition/rocksdb (RocksLevel)       | classic-level (LevelDB)            | memory-level          |
 * | ------------------------- | -------------------------------------- | ---------------------------------- | --------------------- |
 * | abstract-level version    | 1.x (its own nested copy)              | 3.x                                | 3.x                   |
 * | synced atomic batch       | batch(ops, {sync}) - runs synchronously | batch(ops, {sync}) - thread pool   | in memory             |
 * |                           | on the calling thread (batch_write);   |                                    |                       |
 * |                           | optionally a worker thread of ours     |                                    |                       |
 * | synchronous point reads   | _getManySync: native MultiGet          | getSync: one key per call          | getSync               |
 * | synchronous range read    | iterator._nextvSync (one seek)         | none                               | none                  |
 * | clear({gte, lt})          | DeleteRange: one range tombstone,      | iterates and deletes key by key    | key by key in memory  |
 * |                           | synchronous, not synced                | in a worker, not synced            |                       |
 * | iterator consistency      | implicit snapshot at creation          | implicit snapshot at creation      | the tree at creation  |
 *
 * Consequences the callers rely on:
 * - getManySync is the only synchronous read path raft's LogStorage needs (log keys are dense,
 *   so a range of indexes is a list of keys); on RocksDB it is one MultiGet call.
 * - clear() is neither atomic with writes nor synced. Callers only clear ranges that no later
 *   write can touch, and record the new bound durably *before* clearing, so a lost clear only
 *   leaves garbage that open-time cleanup clears again.
 * - iterate() creates its engine iterator before returning, so what it yields is the state at
 *   the moment of the call, whatever is written while it is consumed.
 * - RocksDB's synced write blocks the calling thread for the fsync: the JS thread by default,
 *   a worker thread with rocksdbSyncedWrites 'worker' (rocks-writer.ts). The write queue
 *   (write-queue.ts) coalesces everything submitted while a write is in flight (or, inline,
 *   while it blocks) into the next batch.
 */

import { createRequire } from 'node:module';
import { StorageError } from './errors.js';
import { RocksBatchWriter } from './rocks-binding.js';
import { RocksWriter } from './rocks-writer.js';

export type EngineKind = 'rocksdb' | 'leveldb' | 'memory';

export const ENGINE_KINDS: readonly EngineKind[] = ['rocksdb', 'leveldb', 'memory'];

export type WriteOp =
  | { readonly type: 'put'; readonly key: Uint8Array; readonly value: Uint8Array }
  | { readonly type: 'del'; readonly key: Uint8Array };

export interface IterateOptions {
  readonly reverse?: boolean;
  /** At most this many entries (default: no limit). */
  readonly limit?: number;
  /** Entries fetched from the engine per step (default 256). */
  readonly batchEntries?: number;
}

/**
 * An ordered byte-key store. Keys compare bytewise. Errors from the engine surface as
 * StorageError; a failed write leaves the engine's state unknown to the caller, who must
 * treat it as fatal (see WriteQueue).
 */
export interface KvEngine {
  readonly kind: EngineKind;
  /** 'tombstone': clear() is one O(1) range delete; 'key-by-key': it deletes each key. */
  readonly rangeDelete: 'tombstone' | 'key-by-key';
  /**
   * True when a synced write also makes every earlier write durable (one write-ahead log,
   * synced as a whole: RocksDB syncs every live WAL file, older ones included). LevelDB syncs
   * only its current log file, so an earlier unsynced write in a previous file may be lost.
   */
  readonly syncCoversEarlierWrites: boolean;
  open(): Promise<void>;
  close(): Promise<void>;
  /** Applies `ops` atomically; with `sync`, they are on stable storage when the promise resolves. */
  write(ops: readonly WriteOp[], sync: boolean): Promise<void>;
  /** Deletes every key in [gte, lt). Not atomic with writes, not synced. */
  clear(gte: Uint8Array, lt: Uint8Array): Promise<void>;
  /** Synchronous point reads, in order; undefined for an absent key. */
  getManySync(keys: readonly Uint8Array[]): (Uint8Array | undefined)[];
  getMany(keys: readonly Uint8Array[]): Promise<(Uint8Array | undefined)[]>;
  /** The entries of [gte, lt) as of this call, in key order (or reverse). */
  iterate(gte: Uint8Array, lt: Uint8Array, options?: IterateOptions): AsyncIterable<[Uint8Array, Uint8Array]>;
}

export interface EngineOptions {
  readonly kind: EngineKind;
  /** The engine's own directory (unused by the memory engine). */
  readonly location: string;
  /** The memory engine's backing store; pass the same volume to "reopen" its data. */
  readonly volume?: MemoryVolume;
  /** RocksDB block cache bytes. */
  readonly rocksdbCacheBytes?: number;
  /**
   * Where RocksDB's synced writes run: 'inline' (default) on the calling thread, blocking it for
   * the fsync; 'worker' on a worker thread, leaving the event loop free (rocks-writer.ts, which
   * says why inline is the default).
   */
  readonly rocksdbSyncedWrites?: RocksSyncedWrites;
}

export type RocksSyncedWrites = 'worker' | 'inline';
export const ROCKS_SYNCED_WRITES: readonly RocksSyncedWrites[] = ['worker', 'inline'];

const require = createRequire(import.meta.url);

// Minimal structural types of the abstract-level APIs used here (RocksLevel ships no typings).
interface LevelIterator {
  nextv(size: number): Promise<[Uint8Array, Uint8Array][]>;
  close(): Promise<void>;
}
interface LevelDb {
  status: string;
  open(options?: Record<string, unknown>): Promise<void>;
  close(): Promise<void>;
  batch(ops: WriteOp[], options: Record<string, unknown>): Promise<void>;
  clear(options: Record<string, unknown>): Promise<void>;
  getMany(keys: Uint8Array[], options?: Record<string, unknown>): Promise<(Uint8Array | undefined)[]>;
  iterator(options: Record<string, unknown>): LevelIterator;
}
interface RocksDb extends LevelDb {
  /** The native database's address, for another thread's db_init (only while open). */
  readonly handle: bigint;
  _getManySync(keys: Uint8Array[], options: Record<string, unknown>): (Uint8Array | undefined | null)[];
}
interface SyncGetDb extends LevelDb {
  getSync(key: Uint8Array, options?: Record<string, unknown>): Uint8Array | undefined;
}

const BUFFER_ENCODINGS = { keyEncoding: 'buffer', valueEncoding: 'buffer' } as const;
const VIEW_ENCODINGS = { keyEncoding: 'view', valueEncoding: 'view' } as const;

/**
 * The memory engine's "disk": survives close and reopen of the engine within one process, so
 * the storage suite's reopen tests run on it too. Nothing is lost on a crash because nothing
 * is ever volatile; crash tests use the real engines.
 */
export class MemoryVolume {
  private readonly dbs = new Map<string, SyncGetDb>();

  /** @internal */
  db(location: string): SyncGetDb {
    let db = this.dbs.get(location);
    if (!db) {
      const { MemoryLevel } = require('memory-level') as {
        MemoryLevel: new (options: Record<string, unknown>) => SyncGetDb;
      };
      db = new MemoryLevel({ storeEncoding: 'view', ...VIEW_ENCODINGS });
      this.dbs.set(location, db);
    }
    return db;
  }

  /** Forgets a location, as deleting a directory would. */
  remove(location: string): void {
    this.dbs.delete(location);
  }
}

export function createEngine(options: EngineOptions): KvEngine {
  switch (options.kind) {
    case 'rocksdb':
      return new RocksEngine(
        options.location,
        options.rocksdbCacheBytes ?? 64 * 1024 * 1024,
        options.rocksdbSyncedWrites ?? 'inline',
      );
    case 'leveldb':
      return new LevelEngine(options.location);
    case 'memory':
      return new MemoryEngine(options.location, options.volume ?? new MemoryVolume());
  }
}

/** Maps an engine's open error onto a StorageError naming the directory. */
function openError(location: string, error: unknown): StorageError {
  const text = describe(error);
  if (/lock/i.test(text)) {
    return new StorageError('DATA_DIR_LOCKED', `${location} is open in another process (${text})`, {
      cause: error,
    });
  }
  return new StorageError('DATA_DIR_CORRUPT', `cannot open the database in ${location}: ${text}`, {
    cause: error,
  });
}

function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = (error as { cause?: unknown }).cause;
  return cause instanceof Error ? `${error.message}: ${cause.message}` : error.message;
}

/** Wraps an abstract-level iterator so it is created now and fetched in batches. */
function iterateLevel(
  db: LevelDb,
  gte: Uint8Array,
  lt: Uint8Array,
  encodings: Record<string, string>,
  options: IterateOptions,
): AsyncIterable<[Uint8Array, Uint8Array]> {
  const range = { gte, lt, reverse: options.reverse === true, ...encodings };
  const iterator = db.iterator(options.limit === undefined ? range : { ...range, limit: options.limit });
  const batchEntries = options.batchEntries ?? 256;
  return {
    async *[Symbol.asyncIterator]() {
      try {
        for (;;) {
          const rows = await iterator.nextv(batchEntries);
          if (rows.length === 0) return;
          for (const row of rows) yield row;
        }
      } finally {
        await iterator.close();
      }
    },
  };
}

class RocksEngine implements KvEngine {
  readonly kind = 'rocksdb' as const;
  readonly rangeDelete = 'tombstone' as const;
  readonly syncCoversEarlierWrites = true;
  private readonly db: RocksDb;
  private writer: RocksWriter | undefined;
  /** Writes on this thread, straight into a native batch; set while the database is open. */
  private inline: RocksBatchWriter | undefined;
  private closing = false;

  constructor(
    private readonly location: string,
    private readonly cacheBytes: number,
    private readonly syncedWrites: RocksSyncedWrites,
  ) {
    const { RocksLevel } = require('@nxtedition/rocksdb') as {
      RocksLevel: new (location: string, options: Record<string, unknown>) => RocksDb;
    };
    this.db = new RocksLevel(location, BUFFER_ENCODINGS);
  }

  async open(): Promise<void> {
    try {
      // WAL compression (ZSTD, on by default in this binding) runs on the JS thread inside the
      // synced write; with it off, applying 256-entry batches ran ~30% faster here and appends
      // were unchanged (scratch measurement while building scripts/bench-storage.ts).
      await this.db.open({ createIfMissing: true, cacheSize: this.cacheBytes, walCompression: false });
    } catch (error) {
      throw openError(this.location, error);
    }
    // A close() that began while the database opened must not find writers installed after it
    // dropped them: they would outlive the database (a write to it would crash the process).
    if (this.closing) return;
    this.inline = new RocksBatchWriter(this.db.handle);
    // With 'worker', synced writes run inline until the worker has started (tens of ms), then on it.
    if (this.syncedWrites === 'worker') this.writer = new RocksWriter(this.db.handle);
  }

  async close(): Promise<void> {
    // The inline writer and the worker hold the database's address: drop them before it goes.
    this.closing = true;
    this.inline = undefined;
    await this.writer?.close();
    this.writer = undefined;
    return this.db.close();
  }

  write(ops: readonly WriteOp[], sync: boolean): Promise<void> {
    // Unsynced writes stay inline: they take tens of µs, less than a hop to the worker and back.
    if (sync && this.writer?.available === true) return this.writer.write(ops, true);
    const inline = this.inline;
    // The native calls do not check that the database is open: never reach them when it is not.
    if (inline === undefined || this.db.status !== 'open') {
      return Promise.reject(new StorageError('STORAGE_CLOSED', 'the database is not open'));
    }
    try {
      inline.write(ops, sync);
      return Promise.resolve();
    } catch (error) {
      return Promise.reject(error);
    }
  }

  clear(gte: Uint8Array, lt: Uint8Array): Promise<void> {
    return this.db.clear({ gte, lt, ...BUFFER_ENCODINGS });
  }

  getManySync(keys: readonly Uint8Array[]): (Uint8Array | undefined)[] {
    if (keys.length === 0) return [];
    if (this.db.status !== 'open') throw new StorageError('STORAGE_CLOSED', 'the database is not open');
    // null marks a read aborted by a deadline; none is set, so treat it as an engine error.
    const values = this.db._getManySync(keys as Uint8Array[], {});
    return values.map((value, i) => {
      if (value === null) throw new StorageError('DATA_CORRUPT', `read of key ${i} was aborted`);
      return value;
    });
  }

  getMany(keys: readonly Uint8Array[]): Promise<(Uint8Array | undefined)[]> {
    if (keys.length === 0) return Promise.resolve([]);
    return this.db.getMany(keys as Uint8Array[], BUFFER_ENCODINGS);
  }

  iterate(
    gte: Uint8Array,
    lt: Uint8Array,
    options: IterateOptions = {},
  ): AsyncIterable<[Uint8Array, Uint8Array]> {
    return iterateLevel(this.db, gte, lt, BUFFER_ENCODINGS, options);
  }
}

/** The reads and range clears LevelDB and the memory engine share: both are abstract-level stores with getSync. */
abstract class SyncGetLevelEngine {
  protected abstract readonly db: SyncGetDb;

  clear(gte: Uint8Array, lt: Uint8Array): Promise<void> {
    return this.db.clear({ gte, lt });
  }

  getManySync(keys: readonly Uint8Array[]): (Uint8Array | undefined)[] {
    return keys.map((key) => this.db.getSync(key));
  }

  getMany(keys: readonly Uint8Array[]): Promise<(Uint8Array | undefined)[]> {
    if (keys.length === 0) return Promise.resolve([]);
    return this.db.getMany(keys as Uint8Array[]);
  }

  iterate(
    gte: Uint8Array,
    lt: Uint8Array,
    options: IterateOptions = {},
  ): AsyncIterable<[Uint8Array, Uint8Array]> {
    return iterateLevel(this.db, gte, lt, {}, options);
  }
}

class LevelEngine extends SyncGetLevelEngine implements KvEngine {
  readonly kind = 'leveldb' as const;
  readonly rangeDelete = 'key-by-key' as const;
  readonly syncCoversEarlierWrites = false;
  protected readonly db: SyncGetDb;

  constructor(private readonly location: string) {
    super();
    const { ClassicLevel } = require('classic-level') as {
      ClassicLevel: new (location: string, options: Record<string, unknown>) => SyncGetDb;
    };
    this.db = new ClassicLevel(location, VIEW_ENCODINGS);
  }

  async open(): Promise<void> {
    try {
      await this.db.open({ createIfMissing: true });
    } catch (error) {
      throw openError(this.location, error);
    }
  }

  close(): Promise<void> {
    return this.db.close();
  }

  write(ops: readonly WriteOp[], sync: boolean): Promise<void> {
    return this.db.batch(ops as WriteOp[], { sync });
  }
}

class MemoryEngine extends SyncGetLevelEngine implements KvEngine {
  readonly kind = 'memory' as const;
  readonly rangeDelete = 'key-by-key' as const;
  readonly syncCoversEarlierWrites = true;
  protected readonly db: SyncGetDb;

  constructor(location: string, volume: MemoryVolume) {
    super();
    this.db = volume.db(location);
  }

  async open(): Promise<void> {
    if (this.db.status === 'open') {
      throw new StorageError('DATA_DIR_LOCKED', 'the memory volume location is already open');
    }
    await this.db.open();
  }

  close(): Promise<void> {
    return this.db.close();
  }

  write(ops: readonly WriteOp[], _sync: boolean): Promise<void> {
    // Copy (new Uint8Array, not slice: a Buffer's slice is a view): the caller may reuse its
    // buffers, and memory-level stores references.
    return this.db.batch(
      ops.map((op) =>
        op.type === 'put'
          ? { type: 'put', key: new Uint8Array(op.key), value: new Uint8Array(op.value) }
          : { type: 'del', key: new Uint8Array(op.key) },
      ),
      {},
    );
  }
}
