// Storage configuration: every limit bounded, a bad value refused naming the setting.

import {
  ENGINE_KINDS,
  type EngineKind,
  MemoryVolume,
  ROCKS_SYNCED_WRITES,
  type RocksSyncedWrites,
} from './engine.js';
import { StorageConfigError } from './errors.js';

/** What a node's storage is told when it opens. Sizes are bytes, durations milliseconds of log time. */
export interface StorageConfigInput {
  /** The node's data directory; created if missing. */
  readonly dataDir: string;
  /** The cluster this directory belongs to; a directory or snapshot of another cluster is refused. */
  readonly clusterId: string;
  /** 'rocksdb' (default), 'leveldb', or 'memory' (tests; see MemoryVolume). */
  readonly storageEngine?: EngineKind;
  /** The memory engine's backing store; reuse it to reopen the same data. Only with storageEngine 'memory'. */
  readonly memoryVolume?: MemoryVolume;
  /** Most recent log entries kept in memory per group, so raft rarely reads back what was just written. */
  readonly logCacheMaxEntries?: number;
  /** Payload bytes of that cache per group. */
  readonly logCacheMaxBytes?: number;
  /** Bytes one synced engine write carries at most (a single larger request still goes alone). */
  readonly writeBatchMaxBytes?: number;
  /** Bytes waiting for the disk beyond which writes are refused with STORAGE_BUSY. */
  readonly writeQueueMaxPendingBytes?: number;
  /** Revisions of change history kept for watch resume; older ones answer COMPACTED. */
  readonly historyMaxRevisions?: number;
  /** Bytes of change history kept (values included); the oldest revisions go first. */
  readonly historyMaxBytes?: number;
  /** Client sessions kept per group; opening one more evicts the least recently active. */
  readonly sessionsMax?: number;
  /** A session idle this long in log time (leader timestamps in the commands) expires. */
  readonly sessionTtlMs?: number;
  /** Responses one session keeps for retries; the oldest unacknowledged ones go first. */
  readonly sessionResponsesMax?: number;
  /** UTF-8 bytes of a document key. */
  readonly keyMaxBytes?: number;
  /** JSON bytes of a document (after a patch is merged too). */
  readonly valueMaxBytes?: number;
  /** Bytes of one encoded command (a log entry's payload). */
  readonly commandMaxBytes?: number;
  /** Operations in one transaction branch, and compares in one transaction. */
  readonly txnMaxOps?: number;
  /** Nesting depth of a JSON document or patch. */
  readonly jsonMaxDepth?: number;
  /** Realms per group. */
  readonly realmsMax?: number;
  /** Documents or events one list or history call returns at most. */
  readonly listMaxLimit?: number;
  /** Payload bytes of one snapshot file chunk. */
  readonly snapshotChunkBytes?: number;
  /** Snapshot files kept per group (the newest ones). */
  readonly snapshotsRetained?: number;
  /** RocksDB block cache bytes. */
  readonly rocksdbCacheBytes?: number;
  /** Bytes of documents each group keeps in memory for applying writes (doc-cache.ts); 0 keeps none. */
  readonly docCacheBytes?: number;
  /** Where RocksDB's synced writes run: 'inline' (default, on the event loop) or 'worker' (rocks-writer.ts). */
  readonly rocksdbSyncedWrites?: RocksSyncedWrites;
}

export type StorageConfig = Required<Omit<StorageConfigInput, 'memoryVolume'>> & {
  readonly memoryVolume: MemoryVolume | undefined;
};

const KIB = 1024;
const MIB = 1024 * KIB;
const GIB = 1024 * MIB;

export const STORAGE_DEFAULTS = {
  storageEngine: 'rocksdb' as EngineKind,
  logCacheMaxEntries: 8192,
  logCacheMaxBytes: 32 * MIB,
  writeBatchMaxBytes: 64 * MIB,
  writeQueueMaxPendingBytes: 512 * MIB,
  historyMaxRevisions: 10_000,
  historyMaxBytes: 64 * MIB,
  sessionsMax: 10_000,
  sessionTtlMs: 30 * 60 * 1000,
  sessionResponsesMax: 256,
  keyMaxBytes: 1024,
  valueMaxBytes: 1 * MIB,
  commandMaxBytes: 4 * MIB,
  txnMaxOps: 128,
  jsonMaxDepth: 64,
  realmsMax: 10_000,
  listMaxLimit: 1000,
  snapshotChunkBytes: 1 * MIB,
  snapshotsRetained: 2,
  rocksdbCacheBytes: 64 * MIB,
  docCacheBytes: 16 * MIB,
  rocksdbSyncedWrites: 'inline' as RocksSyncedWrites,
} as const;

/** Cluster ids: what a human can type and a file name can hold. */
const CLUSTER_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** Fills defaults and checks every bound; throws StorageConfigError naming the first bad setting. */
export function validateStorageConfig(input: StorageConfigInput): StorageConfig {
  if (typeof input !== 'object' || input === null)
    throw new StorageConfigError('config', 'must be an object');
  if (typeof input.dataDir !== 'string' || input.dataDir.length === 0) {
    throw new StorageConfigError('dataDir', `must be a non-empty path, got ${JSON.stringify(input.dataDir)}`);
  }
  if (typeof input.clusterId !== 'string' || !CLUSTER_ID.test(input.clusterId)) {
    throw new StorageConfigError(
      'clusterId',
      `must match ${CLUSTER_ID} (letters, digits, '.', '_', '-'; at most 128), got ${JSON.stringify(input.clusterId)}`,
    );
  }
  const config = { ...STORAGE_DEFAULTS, ...stripUndefined(input) } as StorageConfig;
  if (!ENGINE_KINDS.includes(config.storageEngine)) {
    throw new StorageConfigError(
      'storageEngine',
      `must be one of ${ENGINE_KINDS.join(', ')}, got ${JSON.stringify(config.storageEngine)}`,
    );
  }
  if (input.memoryVolume !== undefined) {
    if (config.storageEngine !== 'memory') {
      throw new StorageConfigError(
        'memoryVolume',
        `only applies to storageEngine 'memory', not ${config.storageEngine}`,
      );
    }
    if (!(input.memoryVolume instanceof MemoryVolume)) {
      throw new StorageConfigError('memoryVolume', 'must be a MemoryVolume');
    }
  }
  integerIn(config, 'logCacheMaxEntries', 0, 10_000_000);
  integerIn(config, 'logCacheMaxBytes', 0, 4 * GIB);
  integerIn(config, 'writeBatchMaxBytes', 4 * KIB, 1 * GIB);
  integerIn(config, 'writeQueueMaxPendingBytes', config.writeBatchMaxBytes, 16 * GIB);
  integerIn(config, 'historyMaxRevisions', 1, 100_000_000);
  integerIn(config, 'historyMaxBytes', 1 * KIB, 64 * GIB);
  integerIn(config, 'sessionsMax', 1, 10_000_000);
  integerIn(config, 'sessionTtlMs', 1000, 365 * 24 * 3600 * 1000);
  integerIn(config, 'sessionResponsesMax', 1, 10_000);
  integerIn(config, 'keyMaxBytes', 1, 64 * KIB);
  integerIn(config, 'valueMaxBytes', 2, 256 * MIB);
  integerIn(config, 'commandMaxBytes', Math.max(1 * KIB, config.keyMaxBytes), 1 * GIB);
  integerIn(config, 'txnMaxOps', 1, 10_000);
  integerIn(config, 'jsonMaxDepth', 1, 1000);
  integerIn(config, 'realmsMax', 1, 1_000_000);
  integerIn(config, 'listMaxLimit', 1, 1_000_000);
  integerIn(config, 'snapshotChunkBytes', 4 * KIB, 64 * MIB);
  integerIn(config, 'snapshotsRetained', 1, 100);
  integerIn(config, 'rocksdbCacheBytes', 0, 4 * GIB - 1);
  integerIn(config, 'docCacheBytes', 0, 64 * GIB);
  if (!ROCKS_SYNCED_WRITES.includes(config.rocksdbSyncedWrites)) {
    throw new StorageConfigError(
      'rocksdbSyncedWrites',
      `must be one of ${ROCKS_SYNCED_WRITES.join(', ')}, got ${JSON.stringify(config.rocksdbSyncedWrites)}`,
    );
  }
  return { ...config, memoryVolume: input.memoryVolume };
}

function integerIn(config: Record<string, unknown>, setting: string, min: number, max: number): void {
  const value = config[setting];
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new StorageConfigError(setting, `must be an integer in [${min}, ${max}], got ${String(value)}`);
  }
}

function stripUndefined<T extends object>(input: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [key, value] of Object.entries(input)) {
    if (value !== undefined) (out as Record<string, unknown>)[key] = value;
  }
  return out;
}
