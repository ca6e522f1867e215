// The durable raft log of one group: raft's synchronous LogStorage over an engine, written by group commit.

/*
 * Reads are synchronous (raft/log-storage.ts). Writes are asynchronous and go through the
 * shared WriteQueue, so the appends and hard states of many Readies share one fsync. The
 * in-memory view (last index, cache, hard state, bounds) changes only once a write is
 * durable, so raft never reads from storage an entry that a crash could still take away;
 * until then raft serves those entries from its own unstable log.
 *
 * Synchronous reads beyond memory: the most recent entries (bounded by count and bytes) are
 * kept in a cache, which is what the leader reads when it sends Appends. Older entries -
 * a follower catching up, a restart - are read from the engine synchronously with
 * getManySync: RocksDB answers a chunk of keys with one native MultiGet, LevelDB and memory
 * with getSync per key. Log keys are dense, so a range of indexes is a known list of keys.
 * Measured here (2 cores, load average ~3 from other work, 100k entries of 256 bytes):
 *   RocksDB MultiGet of 64 keys              150-220 us
 *   RocksDB sync iterator, one seek, 64 rows  270-300 us (iterator setup dominates)
 *   LevelDB getSync x 64                      360-460 us (it has no synchronous iterator)
 *   one key (a term lookup): 6-20 us on either engine
 * and through entries() with decoding and checksums, bench:storage "cold log read": p50
 * ~0.3 ms per 64 entries on both engines. That is cheap enough to do on raft's thread for the
 * rare catch-up, and keeps raft's interface synchronous and raft/ pure, so MultiGet it is.
 *
 * What is on disk is always one contiguous run of entries (bounds.index, last]: a conflicting
 * suffix is replaced in the same atomic batch that writes the new entries (point deletes,
 * never a range delete that a later append could race), and a compacted prefix is range
 * deleted only after the new bound is durable.
 */

import { CompactedError, UnavailableError } from '../raft/errors.js';
import type { LogStorage } from '../raft/log-storage.js';
import {
  type Entry,
  emptyHardState,
  type HardState,
  type Membership,
  type Snapshot,
  type SnapshotMetadata,
} from '../raft/types.js';
import {
  decodeEntry,
  decodeHardState,
  decodeJson,
  decodeLogBounds,
  encodeEntry,
  encodeHardState,
  encodeJson,
  encodeLogBounds,
  entryTerm,
  isMembership,
  type LogBounds,
} from './codec.js';
import type { KvEngine, WriteOp } from './engine.js';
import { invariant, StorageError } from './errors.js';
import { logKey, logKeyIndex, logRangeAll, RaftRecord, raftKey } from './keys.js';
import type { PreparedWrite, WriteQueue } from './write-queue.js';

export interface LogCacheLimits {
  readonly maxEntries: number;
  readonly maxBytes: number;
}

/** What a Ready asks to persist (its snapshot goes through GroupStorage.installSnapshot). */
export interface LogUpdate {
  readonly entries?: readonly Entry[];
  readonly hardState?: HardState;
}

interface SnapshotRecord {
  readonly index: number;
  readonly term: number;
  readonly membership: Membership;
  /** The descriptor raft carries in Snapshot.data (base64 on disk). */
  readonly data: string;
}

const EMPTY_MEMBERSHIP: Membership = { voters: [], learners: [] };
const DISK_READ_CHUNK_MAX = 256;

/** The most recent entries of the log, a contiguous run ending at the last index. */
class LogCache {
  private entries: Entry[] = [];
  private bytes = 0;

  constructor(private readonly limits: LogCacheLimits) {}

  /** The first cached index, or undefined when empty. */
  get first(): number | undefined {
    return this.entries[0]?.index;
  }

  get(index: number): Entry | undefined {
    const first = this.entries[0]?.index;
    if (first === undefined || index < first) return undefined;
    return this.entries[index - first];
  }

  /** Drops every entry at or after `index` (a conflicting suffix). */
  truncateFrom(index: number): void {
    const first = this.entries[0]?.index;
    if (first === undefined) return;
    const keep = Math.max(0, index - first);
    for (let i = keep; i < this.entries.length; i++) this.bytes -= this.entries[i]!.data.length;
    this.entries.length = Math.min(this.entries.length, keep);
  }

  /** Drops every entry at or before `index` (compaction). */
  dropThrough(index: number): void {
    while (this.entries.length > 0 && this.entries[0]!.index <= index) {
      this.bytes -= this.entries.shift()!.data.length;
    }
  }

  clear(): void {
    this.entries = [];
    this.bytes = 0;
  }

  /** Appends entries that follow the cached run directly (the caller truncated first). */
  append(entries: readonly Entry[], lastBefore: number): void {
    if (this.limits.maxEntries === 0) return;
    const cachedLast = this.entries[this.entries.length - 1]?.index;
    if (cachedLast !== undefined && cachedLast !== lastBefore) this.clear();
    for (const entry of entries) {
      this.entries.push(entry);
      this.bytes += entry.data.length;
    }
    while (
      this.entries.length > 0 &&
      (this.entries.length > this.limits.maxEntries || this.bytes > this.limits.maxBytes)
    ) {
      this.bytes -= this.entries.shift()!.data.length;
    }
  }
}

/**
 * One group's raft log, hard state and snapshot metadata. Implements raft's LogStorage
 * (synchronous reads; see the header) and writes through the shared WriteQueue.
 *
 * Throws from reads: CompactedError / UnavailableError as LogStorage specifies, and
 * StorageError('DATA_CORRUPT') if an entry read from the engine fails its checksum or is
 * missing inside (firstIndex()-1, lastIndex()].
 */
export class RaftLogStore implements LogStorage {
  private hardState: HardState;
  private bounds: LogBounds;
  private last: number;
  private snap: SnapshotRecord;
  /** The last index once every submitted write lands: where the next append's truncation starts from. */
  private pendingLast: number;
  private pendingBoundsIndex: number;
  private readonly cache: LogCache;

  private constructor(
    private readonly engine: KvEngine,
    private readonly queue: WriteQueue,
    readonly group: number,
    limits: LogCacheLimits,
    private readonly membershipOf: () => Membership,
    state: { hardState: HardState; bounds: LogBounds; last: number; snap: SnapshotRecord },
  ) {
    this.hardState = state.hardState;
    this.bounds = state.bounds;
    this.last = state.last;
    this.snap = state.snap;
    this.pendingLast = state.last;
    this.pendingBoundsIndex = state.bounds.index;
    this.cache = new LogCache(limits);
  }

  /**
   * Reads the group's durable raft state. `membershipOf` answers initialState().membership:
   * the membership as of the applied index, which the state machine store keeps.
   */
  static async open(
    engine: KvEngine,
    queue: WriteQueue,
    group: number,
    limits: LogCacheLimits,
    membershipOf: () => Membership,
  ): Promise<RaftLogStore> {
    const [hardStateBytes, boundsBytes, snapBytes] = await engine.getMany([
      raftKey(group, RaftRecord.HardState),
      raftKey(group, RaftRecord.LogBounds),
      raftKey(group, RaftRecord.Snapshot),
    ]);
    const hardState = hardStateBytes ? decodeHardState(hardStateBytes) : emptyHardState();
    const bounds = boundsBytes ? decodeLogBounds(boundsBytes) : { index: 0, term: 0 };
    const snap = snapBytes ? decodeSnapshotRecord(snapBytes) : emptySnapshotRecord();
    const [allStart, allEnd] = logRangeAll(group);
    let last = bounds.index;
    for await (const [key] of engine.iterate(logKey(group, bounds.index + 1), allEnd, {
      reverse: true,
      limit: 1,
    })) {
      last = logKeyIndex(key);
    }
    // A prefix clear lost in a crash left entries at or below the bound: clear them again.
    await engine.clear(allStart, logKey(group, bounds.index + 1));
    const store = new RaftLogStore(engine, queue, group, limits, membershipOf, {
      hardState,
      bounds,
      last,
      snap,
    });
    if (last > bounds.index) store.term(bounds.index + 1); // The first entry must be readable.
    return store;
  }

  /** The durable records of a founding member: the membership as a snapshot at index 1, term 1. */
  static bootstrapOps(group: number, membership: Membership, data: Uint8Array): WriteOp[] {
    const record: SnapshotRecord = { index: 1, term: 1, membership, data: toBase64(data) };
    return [
      {
        type: 'put',
        key: raftKey(group, RaftRecord.HardState),
        value: encodeHardState({ term: 1, vote: '', commit: 1 }),
      },
      {
        type: 'put',
        key: raftKey(group, RaftRecord.LogBounds),
        value: encodeLogBounds({ index: 1, term: 1 }),
      },
      { type: 'put', key: raftKey(group, RaftRecord.Snapshot), value: encodeJson(record) },
    ];
  }

  // ---- LogStorage (synchronous) ----

  initialState(): { hardState: HardState; membership: Membership } {
    return { hardState: this.hardState, membership: this.membershipOf() };
  }

  entries(low: number, high: number, maxBytes: number): Entry[] {
    if (low <= this.bounds.index) throw new CompactedError(low, this.bounds.index + 1);
    if (high > this.last + 1) throw new UnavailableError(high - 1, this.last);
    const out: Entry[] = [];
    let bytes = 0;
    let index = low;
    const cacheFirst = this.cache.first ?? this.last + 1;
    // Older than the cache: read from the engine in growing chunks, stopping at maxBytes.
    let chunk = 8;
    while (index < Math.min(high, cacheFirst)) {
      const end = Math.min(high, cacheFirst, index + chunk);
      const keys: Uint8Array[] = [];
      for (let i = index; i < end; i++) keys.push(logKey(this.group, i));
      const values = this.engine.getManySync(keys);
      for (let i = 0; i < values.length; i++) {
        const entry = decodeEntry(index + i, this.requireValue(index + i, values[i]));
        bytes += entry.data.length;
        if (out.length > 0 && bytes > maxBytes) return out;
        out.push(entry);
      }
      index = end;
      chunk = Math.min(chunk * 2, DISK_READ_CHUNK_MAX);
    }
    for (; index < high; index++) {
      const entry = this.cache.get(index)!;
      bytes += entry.data.length;
      if (out.length > 0 && bytes > maxBytes) break;
      out.push(entry);
    }
    return out;
  }

  term(index: number): number {
    if (index === this.bounds.index) return this.bounds.term;
    if (index < this.bounds.index) throw new CompactedError(index, this.bounds.index + 1);
    if (index > this.last) throw new UnavailableError(index, this.last);
    const cached = this.cache.get(index);
    if (cached) return cached.term;
    const [value] = this.engine.getManySync([logKey(this.group, index)]);
    return entryTerm(index, this.requireValue(index, value));
  }

  firstIndex(): number {
    return this.bounds.index + 1;
  }

  lastIndex(): number {
    return this.last;
  }

  snapshot(): Snapshot {
    const { index, term, membership, data } = this.snap;
    return { metadata: { index, term, membership }, data: fromBase64(data) };
  }

  // ---- Writes (asynchronous, group committed) ----

  /**
   * Persists a Ready's entries (replacing any suffix from the first of them on) and then its
   * hard state, in one atomic synced write shared with other requests. Resolves when both
   * are durable; only then may the Ready's messagesAfterPersist be sent. Entries at or below
   * the compaction point are skipped. Readies may be saved before earlier ones resolve;
   * they land in the order saved.
   */
  save(update: LogUpdate): Promise<void> {
    const write = this.prepareSave(update);
    return this.queue.submit(write.ops, write.options);
  }

  /** The write save() submits, for combining with a state machine write in one request. */
  prepareSave(update: LogUpdate): PreparedWrite {
    const ops: WriteOp[] = [];
    let applyEntries: (() => void) | undefined;
    const entries = (update.entries ?? []).filter((entry) => entry.index > this.pendingBoundsIndex);
    if (entries.length > 0) {
      const first = entries[0]!.index;
      const lastNew = entries[entries.length - 1]!.index;
      invariant(
        first <= this.pendingLast + 1,
        () => `append gap: entry ${first} after last index ${this.pendingLast}`,
      );
      for (let i = 0; i < entries.length; i++) {
        const entry = entries[i]!;
        invariant(entry.index === first + i, () => `entries not contiguous at ${entry.index}`);
        invariant(Number.isSafeInteger(entry.term) && entry.term > 0, () => `bad term ${entry.term}`);
        ops.push({ type: 'put', key: logKey(this.group, entry.index), value: encodeEntry(entry) });
      }
      for (let i = lastNew + 1; i <= this.pendingLast; i++)
        ops.push({ type: 'del', key: logKey(this.group, i) });
      this.pendingLast = lastNew;
      applyEntries = () => {
        const lastBefore = first - 1;
        this.cache.truncateFrom(first);
        this.cache.append(entries, lastBefore);
        this.last = lastNew;
      };
    }
    const hardState = update.hardState;
    if (hardState) {
      ops.push({
        type: 'put',
        key: raftKey(this.group, RaftRecord.HardState),
        value: encodeHardState(hardState),
      });
    }
    return {
      ops,
      options: {
        onDurable: () => {
          applyEntries?.();
          if (hardState) this.hardState = hardState;
        },
      },
    };
  }

  /**
   * Discards the entries up to and including `index`: records the new first index durably,
   * then range-deletes the prefix. `index` must not pass the latest snapshot (a follower
   * behind the first index is sent that snapshot) nor the caller's durable applied index.
   */
  compact(index: number): Promise<void> {
    if (index <= this.pendingBoundsIndex) return Promise.resolve();
    invariant(index <= this.last, () => `compact ${index} beyond last durable index ${this.last}`);
    invariant(
      index <= this.snap.index,
      () => `compact ${index} beyond the latest snapshot ${this.snap.index}: record a snapshot first`,
    );
    const bounds: LogBounds = { index, term: this.term(index) };
    this.pendingBoundsIndex = index;
    const [allStart] = logRangeAll(this.group);
    return this.queue.submit(
      [{ type: 'put', key: raftKey(this.group, RaftRecord.LogBounds), value: encodeLogBounds(bounds) }],
      {
        clears: [[allStart, logKey(this.group, index + 1)]],
        onDurable: () => {
          this.bounds = bounds;
          this.cache.dropThrough(index);
        },
      },
    );
  }

  /**
   * Records a snapshot the application wrote (a file whose header carries `metadata`) as the
   * one raft sends to followers behind the first index. `data` is raft's Snapshot.data: the
   * descriptor the application uses to find the file.
   */
  recordSnapshot(metadata: SnapshotMetadata, data: Uint8Array): Promise<void> {
    // Not newer than what is recorded (e.g. a snapshot installed from the leader meanwhile): keep that.
    if (metadata.index <= this.snap.index) return Promise.resolve();
    invariant(
      metadata.index >= this.bounds.index && metadata.index <= this.last,
      () => `snapshot ${metadata.index} outside the log (${this.bounds.index}, ${this.last}]`,
    );
    invariant(
      metadata.index === this.bounds.index || this.term(metadata.index) === metadata.term,
      () => `snapshot term ${metadata.term} differs from the log's at ${metadata.index}`,
    );
    const record: SnapshotRecord = { ...metadata, data: toBase64(data) };
    return this.queue.submit(
      [{ type: 'put', key: raftKey(this.group, RaftRecord.Snapshot), value: encodeJson(record) }],
      {
        onDurable: () => {
          if (record.index > this.snap.index) this.snap = record;
        },
      },
    );
  }

  /**
   * The log side of installing a snapshot from the leader: the log becomes empty at the
   * snapshot point. Submitted by GroupStorage in one request with the state switch.
   */
  prepareInstall(metadata: SnapshotMetadata, data: Uint8Array): PreparedWrite {
    const bounds: LogBounds = { index: metadata.index, term: metadata.term };
    const record: SnapshotRecord = { ...metadata, data: toBase64(data) };
    const ops: WriteOp[] = [
      { type: 'put', key: raftKey(this.group, RaftRecord.LogBounds), value: encodeLogBounds(bounds) },
      { type: 'put', key: raftKey(this.group, RaftRecord.Snapshot), value: encodeJson(record) },
    ];
    // Entries past the snapshot come from another history; delete them in the same batch.
    for (let i = Math.max(metadata.index + 1, this.pendingBoundsIndex + 1); i <= this.pendingLast; i++) {
      ops.push({ type: 'del', key: logKey(this.group, i) });
    }
    this.pendingLast = metadata.index;
    this.pendingBoundsIndex = metadata.index;
    const [allStart] = logRangeAll(this.group);
    return {
      ops,
      options: {
        clears: [[allStart, logKey(this.group, metadata.index + 1)]],
        onDurable: () => {
          this.bounds = bounds;
          this.last = metadata.index;
          this.snap = record;
          this.cache.clear();
        },
      },
    };
  }

  private requireValue(index: number, value: Uint8Array | undefined): Uint8Array {
    if (value === undefined) {
      throw new StorageError(
        'DATA_CORRUPT',
        `group ${this.group}: log entry ${index} is missing inside (${this.bounds.index}, ${this.last}]`,
      );
    }
    return value;
  }
}

function emptySnapshotRecord(): SnapshotRecord {
  return { index: 0, term: 0, membership: EMPTY_MEMBERSHIP, data: '' };
}

function decodeSnapshotRecord(bytes: Uint8Array): SnapshotRecord {
  const record = decodeJson<SnapshotRecord>(bytes, 'snapshot record');
  if (
    !Number.isSafeInteger(record.index) ||
    !Number.isSafeInteger(record.term) ||
    !isMembership(record.membership) ||
    typeof record.data !== 'string'
  ) {
    throw new StorageError('DATA_CORRUPT', 'snapshot record: bad fields');
  }
  return record;
}

function toBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

function fromBase64(text: string): Uint8Array {
  return new Uint8Array(Buffer.from(text, 'base64'));
}
