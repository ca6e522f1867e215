// A node's storage: the data directory, its engine and write queue, and one GroupStorage per raft group.

/*
 * Data directory layout:
 *
 *   <dataDir>/conclave-storage.json   marker: { format, engine, clusterId } - checked before the engine opens
 *   <dataDir>/db/                     the engine's files (RocksDB or LevelDB)
 *   <dataDir>/snapshots/g<group>/<index>-<term>.snap   snapshot files (the newest few per group)
 *   <dataDir>/tmp/                    files being written; emptied at open
 *
 * The format version and cluster id are also records inside the database, so a database
 * moved without its marker is still recognised. A directory whose marker names a newer format,
 * another cluster or the other engine is refused before the engine opens it; one whose inner
 * records disagree is refused right after the engine opened it, before storage reads or
 * writes any of its data.
 *
 * Snapshots: createSnapshot() streams the state from one engine iterator (an implicit
 * snapshot, while applies go on) into a temporary file, fsyncs it, renames it into place and
 * only then records it in the log store as the snapshot raft sends to followers behind its
 * first index. installSnapshot() verifies a received file chunk by chunk while writing it
 * aside, then switches state and log in one synced write. backup() writes the same file
 * anywhere; restoreGroup() builds a group from one, also from another cluster.
 */

import { randomBytes } from 'node:crypto';
import { copyFile, link, mkdir, open, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Entry, Membership, Snapshot } from '../raft/types.js';
import { decodeJson, encodeJson, fromUtf8, utf8 } from './codec.js';
import type { CommandResult } from './commands.js';
import { type StorageConfig, type StorageConfigInput, validateStorageConfig } from './config.js';
import { exists, linkIntoPlace, syncDir } from './durable-fs.js';
import { createEngine, type EngineKind, type KvEngine, type WriteOp } from './engine.js';
import { invariant, SnapshotFileError, StorageError } from './errors.js';
import { groupRange, MAX_GROUP_ID, nodeKey, prefixEnd } from './keys.js';
import { type LogUpdate, RaftLogStore } from './log-store.js';
import {
  type SnapshotFileInfo,
  type SnapshotHeader,
  SnapshotReader,
  writeSnapshotFile,
} from './snapshot-file.js';
import { type ApplyOutcome, RealmStateStore, type StateMeta } from './state-store.js';
import { type PreparedWrite, WriteQueue } from './write-queue.js';

/** The data directory format this build writes and the newest it reads. */
export const STORAGE_FORMAT_VERSION = 1;

const MARKER_FILE = 'conclave-storage.json';
/** Keys deleted per write when a group is deleted. */
const DELETE_BATCH = 10_000;
const SNAPSHOT_NAME = /^(\d+)-(\d+)\.snap$/;

interface Marker {
  readonly format: number;
  readonly engine: EngineKind;
  readonly clusterId: string;
}

/**
 * The storage of one node: open() it once per process, then open or create its groups.
 * close() waits for every pending write.
 */
export class NodeStorage {
  private readonly groups = new Map<number, GroupStorage>();
  private closed = false;

  private constructor(
    readonly config: StorageConfig,
    readonly engine: KvEngine,
    readonly queue: WriteQueue,
  ) {}

  /**
   * Opens (creating if needed) the data directory. Throws StorageConfigError for a bad
   * config, and StorageError DATA_DIR_NEWER_FORMAT / DATA_DIR_FOREIGN_CLUSTER /
   * DATA_DIR_ENGINE_MISMATCH / DATA_DIR_CORRUPT / DATA_DIR_LOCKED naming the directory.
   */
  static async open(input: StorageConfigInput): Promise<NodeStorage> {
    const config = validateStorageConfig(input);
    const dir = config.dataDir;
    await mkdir(dir, { recursive: true });
    await checkOrWriteMarker(config);
    const engine = createEngine({
      kind: config.storageEngine,
      location: join(dir, 'db'),
      ...(config.memoryVolume ? { volume: config.memoryVolume } : {}),
      rocksdbCacheBytes: config.rocksdbCacheBytes,
      rocksdbSyncedWrites: config.rocksdbSyncedWrites,
    });
    await engine.open(); // Takes the engine's lock: only now is the directory ours to clean.
    try {
      await checkOrWriteDatabaseIdentity(engine, config);
      await rm(join(dir, 'tmp'), { recursive: true, force: true });
      await mkdir(join(dir, 'tmp'), { recursive: true });
      await mkdir(join(dir, 'snapshots'), { recursive: true });
    } catch (error) {
      await engine.close();
      throw error;
    }
    const queue = new WriteQueue(engine, {
      maxBatchBytes: config.writeBatchMaxBytes,
      maxPendingBytes: config.writeQueueMaxPendingBytes,
    });
    return new NodeStorage(config, engine, queue);
  }

  /**
   * The ids of the groups this node holds, ascending. A group whose deletion a crash
   * interrupted (deleteGroup) is not listed: its deletion is finished first.
   */
  async groupIds(): Promise<number[]> {
    const ids: number[] = [];
    const unfinished: number[] = [];
    const start = nodeKey('group/');
    for await (const [key, value] of this.engine.iterate(start, prefixEnd(start))) {
      const id = Number(fromUtf8(key.subarray(start.length)));
      if (decodeJson<{ deleting?: unknown } | null>(value, `group ${id}'s record`)?.deleting === true)
        unfinished.push(id);
      else ids.push(id);
    }
    for (const id of unfinished) await this.deleteGroup(id);
    return ids;
  }

  /**
   * Deletes every record and snapshot file of group `group`, which must not be group 1 nor
   * be in use (a node that left the group: its owner stopped it first; an open GroupStorage
   * object of it must not be used again). The group's record is
   * marked first, so a deletion a crash interrupts is finished at the next groupIds(); the
   * data goes in batches of DELETE_BATCH keys, the record last. Deleting a group this node
   * does not hold does nothing.
   */
  async deleteGroup(group: number): Promise<void> {
    this.assertOpen();
    invariant(group !== 1, 'group 1 is never deleted');
    // The caller stopped the group: nothing reads or writes its storage object any more.
    this.groups.delete(group);
    const recordKey = groupRecordKey(group);
    const [record] = await this.engine.getMany([recordKey]);
    if (record === undefined) return;
    await this.queue.submit([{ type: 'put', key: recordKey, value: encodeJson({ group, deleting: true }) }]);
    const [start, end] = groupRange(group);
    for (;;) {
      const batch: WriteOp[] = [];
      for await (const [key] of this.engine.iterate(start, end, { limit: DELETE_BATCH })) {
        batch.push({ type: 'del', key: new Uint8Array(key) });
      }
      if (batch.length === 0) break;
      await this.queue.submit(batch);
    }
    await rm(join(this.config.dataDir, 'snapshots', `g${group}`), { recursive: true, force: true });
    await this.queue.submit([{ type: 'del', key: recordKey }]);
  }

  /**
   * Creates a group as a founding member: the membership as a snapshot at index 1, term 1, the
   * `default` realm (unless `defaultRealm` is false: groups besides group 1 start with none),
   * and that snapshot's file (raft sends it to joiners).
   */
  async bootstrapGroup(
    group: number,
    membership: Membership,
    addresses?: Readonly<Record<string, string>>,
    options: { readonly defaultRealm?: boolean } = {},
  ): Promise<GroupStorage> {
    invariant(membership.voters.length > 0, 'a bootstrap membership needs a voter');
    await this.createGroupRecord(group, [
      ...RaftLogStore.bootstrapOps(group, membership, utf8(snapshotName(1, 1))),
      ...RealmStateStore.bootstrapOps(group, membership, addresses, options),
    ]);
    return this.openGroup(group);
  }

  /** Creates an empty group for a node that joins an existing cluster: it learns everything from the leader. */
  async createGroup(group: number): Promise<GroupStorage> {
    await this.createGroupRecord(group, []);
    return this.openGroup(group);
  }

  /**
   * Builds a group from a backup file, of this cluster or another (restoring into a new
   * cluster). `membership` replaces the file's when the new cluster has other nodes (the
   * addresses and roles of nodes not in it are dropped, or `addresses` replace the address book).
   * The group starts at the file's term,
   * with the file's index committed. The directory must not hold the group yet.
   */
  async restoreGroup(
    group: number,
    path: string,
    options: {
      membership?: Membership;
      addresses?: Readonly<Record<string, string>>;
      /** Group 1 only: the catalog's groups restored beside it, whose founders become `membership`'s voters. */
      restoredGroups?: ReadonlySet<number>;
    } = {},
  ): Promise<GroupStorage> {
    const reader = await SnapshotReader.open(path);
    try {
      if (reader.header.group !== group) {
        throw new SnapshotFileError(
          'SNAPSHOT_FOREIGN_GROUP',
          path,
          `the file holds group ${reader.header.group}, not ${group}`,
        );
      }
    } finally {
      await reader.close();
    }
    const storage = await this.createGroup(group);
    const header = await storage.installFile(path, {
      allowForeignCluster: true,
      ...(options.membership ? { membership: options.membership } : {}),
      ...(options.addresses ? { addresses: options.addresses } : {}),
      ...(options.restoredGroups && options.membership
        ? { founders: { groups: options.restoredGroups, members: options.membership.voters } }
        : {}),
    });
    // Raft starts from this hard state: at the file's term (so that its next leader's entries
    // come after the file's in term order) with everything in the file committed.
    await storage.log.save({ hardState: { term: header.term, vote: '', commit: header.index } });
    return storage;
  }

  /** Opens a group this node holds (once per process; later calls return the same object). */
  async openGroup(group: number): Promise<GroupStorage> {
    this.assertOpen();
    const existing = this.groups.get(group);
    if (existing) return existing;
    const [record] = await this.engine.getMany([groupRecordKey(group)]);
    if (record === undefined)
      throw new StorageError('GROUP_NOT_FOUND', `group ${group} does not exist on this node`);
    const state = await RealmStateStore.open(this.engine, this.queue, group, this.config);
    const log = await RaftLogStore.open(
      this.engine,
      this.queue,
      group,
      { maxEntries: this.config.logCacheMaxEntries, maxBytes: this.config.logCacheMaxBytes },
      () => state.membership,
    );
    const storage = new GroupStorage(this, group, log, state);
    this.groups.set(group, storage);
    await storage.ensureSnapshotFile();
    return storage;
  }

  /** Waits for every pending write, then closes the engine. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.queue.close();
    await this.engine.close();
  }

  private assertOpen(): void {
    if (this.closed) throw new StorageError('STORAGE_CLOSED', `storage in ${this.config.dataDir} is closed`);
  }

  private async createGroupRecord(group: number, ops: WriteOp[]): Promise<void> {
    this.assertOpen();
    invariant(
      Number.isInteger(group) && group >= 1 && group <= MAX_GROUP_ID,
      () => `group id must be an integer in [1, ${MAX_GROUP_ID}], got ${group}`,
    );
    const [record] = await this.engine.getMany([groupRecordKey(group)]);
    if (record !== undefined)
      throw new StorageError('GROUP_EXISTS', `group ${group} already exists on this node`);
    await this.queue.submit([
      { type: 'put', key: groupRecordKey(group), value: encodeJson({ group }) },
      ...ops,
    ]);
  }
}

/**
 * One raft group's storage: `log` is raft's LogStorage, `state` the realm state machine.
 * The driver (src/) uses it per Ready, in raft's order: installSnapshot() for a Ready's
 * snapshot, persist() for its entries and hard state (then send messagesAfterPersist),
 * apply() for its committed entries; and createSnapshot()/compact() on its own schedule.
 */
export class GroupStorage {
  private readonly snapshotDir: string;
  /** Settles when the last persist queued behind a snapshot install has run. */
  private installTail: Promise<void> | undefined;

  /** @internal Created by NodeStorage. */
  constructor(
    private readonly node: NodeStorage,
    readonly group: number,
    readonly log: RaftLogStore,
    readonly state: RealmStateStore,
  ) {
    this.snapshotDir = join(node.config.dataDir, 'snapshots', `g${group}`);
  }

  /**
   * Persists what a Ready says, in raft's order: its snapshot (installed from `snapshotFile`,
   * the file received for it; see installSnapshot), then its entries and hard state in one
   * synced, group-committed write (see RaftLogStore.save). Calls may overlap; they take effect
   * and resolve in call order, also across a snapshot install.
   */
  persist(update: LogUpdate & { readonly snapshot?: Snapshot }, snapshotFile?: string): Promise<void> {
    const { snapshot } = update;
    if (snapshot === undefined && this.installTail === undefined) return this.log.save(update);
    if (snapshot !== undefined) {
      invariant(
        snapshotFile !== undefined,
        'persisting a Ready with a snapshot needs the received snapshot file',
      );
    }
    const run = async (): Promise<void> => {
      if (snapshot !== undefined) {
        await this.installSnapshot(snapshotFile!, {
          index: snapshot.metadata.index,
          term: snapshot.metadata.term,
        });
      }
      await this.log.save(update);
    };
    // The log store computes a save's truncation when save() is called, so while an install is
    // pending every later persist waits for the one before it (rare, and only then serial).
    const result = (this.installTail ?? Promise.resolve()).then(run);
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    this.installTail = tail;
    void tail.then(() => {
      if (this.installTail === tail) this.installTail = undefined;
    });
    return result;
  }

  /** Applies committed entries (see RealmStateStore.apply); resolves once they and the applied index are durable. */
  apply(entries: readonly Entry[]): Promise<ApplyOutcome[]> {
    return this.state.apply(entries);
  }

  /** The results of the commands among `outcomes`, by log index: what the node answers clients. */
  static results(outcomes: readonly ApplyOutcome[]): Map<number, CommandResult> {
    const results = new Map<number, CommandResult>();
    for (const outcome of outcomes)
      if (outcome.kind === 'command') results.set(outcome.index, outcome.result);
    return results;
  }

  /**
   * Discards log entries up to `index`, which must not pass the applied index (applied entries
   * are durable in the state) nor the latest recorded snapshot.
   */
  compact(index: number): Promise<void> {
    invariant(
      index <= this.state.appliedIndex,
      () => `compact ${index} beyond applied index ${this.state.appliedIndex}`,
    );
    return this.log.compact(index);
  }

  /**
   * Writes a snapshot file of the state as of now (while applies go on), records it as raft's
   * snapshot, and removes snapshot files beyond the retained count. A file already written at
   * the same index and term (hence the same state) is reused.
   */
  async createSnapshot(): Promise<CreatedSnapshot> {
    const source = this.state.snapshotSource(); // The view is taken here, before any await.
    await mkdir(this.snapshotDir, { recursive: true });
    const { meta, records } = await source;
    const name = snapshotName(meta.appliedIndex, meta.appliedTerm);
    const path = join(this.snapshotDir, name);
    let created: CreatedSnapshot;
    if (await exists(path)) {
      for await (const _ of records) break; // Closes the iterator.
      const reader = await SnapshotReader.open(path);
      await reader.close();
      created = { header: reader.header, path, bytes: reader.size, reused: true };
    } else {
      const temp = this.tempPath(name);
      const info = await writeSnapshotFile(
        temp,
        this.headerFor(meta),
        records,
        this.node.config.snapshotChunkBytes,
      );
      await rename(temp, path);
      await syncDir(this.snapshotDir);
      created = { header: info.header, path, bytes: info.bytes, reused: false };
    }
    if (meta.appliedIndex > this.log.lastIndex()) await this.node.queue.drain();
    await this.log.recordSnapshot(
      { index: meta.appliedIndex, term: meta.appliedTerm, membership: meta.membership },
      utf8(name),
    );
    await this.pruneSnapshots();
    return created;
  }

  /** The file of a snapshot raft's LogStorage handed out (this group's own snapshot()). */
  snapshotPath(snapshot: Snapshot): string {
    const name = fromUtf8(snapshot.data);
    if (!SNAPSHOT_NAME.test(name)) {
      throw new StorageError(
        'DATA_CORRUPT',
        `group ${this.group}: snapshot descriptor ${JSON.stringify(name)} is not a file name`,
      );
    }
    return join(this.snapshotDir, name);
  }

  /** A fresh path under the data directory's tmp/ for a file being received (e.g. a snapshot from the leader). */
  tempPath(label: string): string {
    return join(this.node.config.dataDir, 'tmp', `${label}.${randomBytes(6).toString('hex')}.part`);
  }

  /**
   * Writes a backup of the state as of now to `path` (the snapshot format), under a temporary
   * name beside it, fsynced, then linked into place. An existing `path` is never overwritten:
   * StorageError FILE_EXISTS, before or after the write.
   */
  async backup(path: string): Promise<SnapshotFileInfo> {
    if (await exists(path)) throw new StorageError('FILE_EXISTS', `backup target ${path} exists`);
    const { meta, records } = await this.state.snapshotSource();
    const temp = `${path}.${randomBytes(6).toString('hex')}.part`;
    try {
      const info = await writeSnapshotFile(
        temp,
        this.headerFor(meta),
        records,
        this.node.config.snapshotChunkBytes,
      );
      await linkIntoPlace(temp, path);
      return info;
    } finally {
      await rm(temp, { force: true });
    }
  }

  /**
   * Replaces the group's state and log with a snapshot file received from the leader (raft's
   * Ready.snapshot). The file is verified as it is written aside; refused files throw
   * SnapshotFileError (NOT_A_SNAPSHOT, NEWER_FORMAT, TRUNCATED, CORRUPT, FOREIGN_CLUSTER,
   * FOREIGN_GROUP, MISMATCH against `expected`, STALE if not newer than the applied index)
   * and leave the node's data untouched. On success the file is kept as this node's snapshot.
   */
  installSnapshot(path: string, expected?: { index: number; term: number }): Promise<SnapshotHeader> {
    return this.installFile(path, expected ? { expected } : {});
  }

  /** @internal installSnapshot and restoreGroup. */
  async installFile(
    path: string,
    options: {
      expected?: { index: number; term: number };
      allowForeignCluster?: boolean;
      membership?: Membership;
      addresses?: Readonly<Record<string, string>>;
      founders?: { readonly groups: ReadonlySet<number>; readonly members: readonly string[] };
    },
  ): Promise<SnapshotHeader> {
    const reader = await SnapshotReader.open(path);
    let kept: string | undefined;
    try {
      const header = reader.header;
      if (header.clusterId !== this.node.config.clusterId && !options.allowForeignCluster) {
        throw new SnapshotFileError(
          'SNAPSHOT_FOREIGN_CLUSTER',
          path,
          `the file is of cluster ${JSON.stringify(header.clusterId)}, this node of ${JSON.stringify(this.node.config.clusterId)}`,
        );
      }
      if (header.group !== this.group) {
        throw new SnapshotFileError(
          'SNAPSHOT_FOREIGN_GROUP',
          path,
          `the file holds group ${header.group}, not ${this.group}`,
        );
      }
      const expected = options.expected;
      if (expected && (expected.index !== header.index || expected.term !== header.term)) {
        throw new SnapshotFileError(
          'SNAPSHOT_MISMATCH',
          path,
          `the file is at index ${header.index} term ${header.term}, expected index ${expected.index} term ${expected.term}`,
        );
      }
      if (header.index === 0 || header.term === 0) {
        throw new SnapshotFileError('SNAPSHOT_CORRUPT', path, 'the header has index or term 0');
      }
      return await this.state.exclusive(async () => {
        if (header.index <= this.state.appliedIndex) {
          throw new SnapshotFileError(
            'SNAPSHOT_STALE',
            path,
            `the file is at index ${header.index}; this node has applied ${this.state.appliedIndex}`,
          );
        }
        const stateWrite = await this.state.prepareImport(
          reader.chunks(),
          header,
          path,
          options.membership,
          options.membership ? options.addresses : undefined,
          options.founders,
        );
        invariant(reader.complete, 'snapshot import finished before the end record');
        const membership = options.membership ?? header.membership;
        const name = snapshotName(header.index, header.term);
        // With a new membership or another cluster's id the file does not describe this node's
        // state; ensureSnapshotFile() writes one that does.
        const foreign = options.membership !== undefined || header.clusterId !== this.node.config.clusterId;
        kept = await this.keepFile(path, name, foreign);
        const combined = combine([
          stateWrite,
          this.log.prepareInstall({ index: header.index, term: header.term, membership }, utf8(name)),
        ]);
        await this.node.queue.submit(combined.ops, combined.options);
        kept = undefined; // Now referenced by the log store.
        if (foreign) await rm(join(this.snapshotDir, name), { force: true });
        await this.ensureSnapshotFile();
        await this.pruneSnapshots();
        return header;
      });
    } finally {
      await reader.close();
      if (kept !== undefined) await rm(kept, { force: true });
    }
  }

  /** Writes a snapshot file again if the recorded one is missing (lost in a crash, or deleted by hand). */
  async ensureSnapshotFile(): Promise<void> {
    const snapshot = this.log.snapshot();
    if (snapshot.metadata.index === 0) return;
    const path = this.snapshotPath(snapshot);
    if (await exists(path)) return;
    // Write one at the applied index: it is at or past the lost one, so it serves the same purpose.
    if (
      this.state.appliedIndex >= snapshot.metadata.index &&
      this.state.appliedIndex <= this.log.lastIndex()
    ) {
      await this.createSnapshot();
    }
  }

  /** Links (or copies) a received file into the snapshot directory under its final name. */
  private async keepFile(path: string, name: string, skip: boolean): Promise<string | undefined> {
    if (skip) return undefined;
    await mkdir(this.snapshotDir, { recursive: true });
    const target = join(this.snapshotDir, name);
    if (path === target || (await exists(target))) return undefined;
    try {
      await link(path, target);
    } catch {
      const temp = this.tempPath(name);
      await copyFile(path, temp);
      const handle = await open(temp, 'r');
      await handle.sync();
      await handle.close();
      await rename(temp, target);
    }
    await syncDir(this.snapshotDir);
    return target;
  }

  private headerFor(meta: StateMeta): SnapshotHeader {
    return {
      clusterId: this.node.config.clusterId,
      group: this.group,
      index: meta.appliedIndex,
      term: meta.appliedTerm,
      membership: meta.membership,
      revision: meta.revision,
      createdAtMs: Date.now(),
    };
  }

  /** Keeps the newest `snapshotsRetained` files and the one the log store references. */
  private async pruneSnapshots(): Promise<void> {
    const names = (await readdir(this.snapshotDir).catch(() => [] as string[])).filter((n) =>
      SNAPSHOT_NAME.test(n),
    );
    const index = (name: string): number => Number(SNAPSHOT_NAME.exec(name)![1]);
    names.sort((a, b) => index(b) - index(a));
    const referenced = fromUtf8(this.log.snapshot().data);
    for (const name of names.slice(this.node.config.snapshotsRetained)) {
      if (name !== referenced) await rm(join(this.snapshotDir, name), { force: true });
    }
  }
}

/** A snapshot createSnapshot() wrote (or found already written at that index and term). */
export interface CreatedSnapshot {
  readonly header: SnapshotHeader;
  readonly path: string;
  readonly bytes: number;
  readonly reused: boolean;
}

/** Combines prepared writes into one request: their ops in order, their callbacks in order. */
export function combine(writes: readonly PreparedWrite[]): PreparedWrite {
  return {
    ops: writes.flatMap((write) => write.ops),
    options: {
      clears: writes.flatMap((write) => write.options.clears ?? []),
      onDurable: () => {
        for (const write of writes) write.options.onDurable?.();
      },
    },
  };
}

function snapshotName(index: number, term: number): string {
  return `${index}-${term}.snap`;
}

function groupRecordKey(group: number): Uint8Array {
  return nodeKey(`group/${String(group).padStart(10, '0')}`);
}

async function checkOrWriteMarker(config: StorageConfig): Promise<void> {
  const dir = config.dataDir;
  const path = join(dir, MARKER_FILE);
  let text: string | undefined;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  if (text === undefined) {
    const dbFiles = await readdir(join(dir, 'db')).catch(() => [] as string[]);
    if (dbFiles.length > 0) {
      throw new StorageError(
        'DATA_DIR_CORRUPT',
        `${dir} holds a database but no ${MARKER_FILE}; refusing to guess whose it is`,
      );
    }
    const marker: Marker = {
      format: STORAGE_FORMAT_VERSION,
      engine: config.storageEngine,
      clusterId: config.clusterId,
    };
    const temp = join(dir, `${MARKER_FILE}.${randomBytes(6).toString('hex')}.part`);
    await writeFile(temp, `${JSON.stringify(marker, null, 2)}\n`, { flag: 'wx' });
    const handle = await open(temp, 'r');
    await handle.sync();
    await handle.close();
    await rename(temp, path);
    await syncDir(dir);
    return;
  }
  let marker: Partial<Marker>;
  try {
    marker = JSON.parse(text) as Partial<Marker>;
  } catch {
    throw new StorageError('DATA_DIR_CORRUPT', `${path} is not JSON`);
  }
  checkIdentity(config, dir, marker.format, marker.clusterId, marker.engine);
}

function checkIdentity(
  config: StorageConfig,
  dir: string,
  format: unknown,
  clusterId: unknown,
  engine: unknown,
): void {
  if (typeof format !== 'number' || !Number.isInteger(format) || format < 1) {
    throw new StorageError(
      'DATA_DIR_CORRUPT',
      `${dir}: format version ${JSON.stringify(format)} is not a positive integer`,
    );
  }
  if (format > STORAGE_FORMAT_VERSION) {
    throw new StorageError(
      'DATA_DIR_NEWER_FORMAT',
      `${dir} was written by storage format ${format}; this build reads up to ${STORAGE_FORMAT_VERSION}: upgrade Conclave`,
    );
  }
  if (clusterId !== config.clusterId) {
    throw new StorageError(
      'DATA_DIR_FOREIGN_CLUSTER',
      `${dir} belongs to cluster ${JSON.stringify(clusterId)}, not ${JSON.stringify(config.clusterId)}`,
    );
  }
  if (engine !== undefined && engine !== config.storageEngine) {
    throw new StorageError(
      'DATA_DIR_ENGINE_MISMATCH',
      `${dir} was written by storage engine ${JSON.stringify(engine)}, configured ${JSON.stringify(config.storageEngine)}`,
    );
  }
}

async function checkOrWriteDatabaseIdentity(engine: KvEngine, config: StorageConfig): Promise<void> {
  const [format, cluster] = await engine.getMany([nodeKey('format'), nodeKey('cluster')]);
  if (format === undefined && cluster === undefined) {
    await engine.write(
      [
        { type: 'put', key: nodeKey('format'), value: encodeJson(STORAGE_FORMAT_VERSION) },
        { type: 'put', key: nodeKey('cluster'), value: encodeJson(config.clusterId) },
      ],
      true,
    );
    return;
  }
  if (format === undefined || cluster === undefined) {
    throw new StorageError(
      'DATA_DIR_CORRUPT',
      `${config.dataDir}: the database lacks its format or cluster record`,
    );
  }
  checkIdentity(
    config,
    config.dataDir,
    decodeJson<number>(format, 'format'),
    decodeJson<string>(cluster, 'cluster'),
    undefined,
  );
}
