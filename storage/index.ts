// storage/'s public surface: what src/ opens, and the formats and errors it passes on.

export * from './access.js';
export { type BackupSection, BackupSet, type BackupSetCount, writeBackupSet } from './backup-set.js';
export * from './commands.js';
export {
  STORAGE_DEFAULTS,
  type StorageConfig,
  type StorageConfigInput,
  validateStorageConfig,
} from './config.js';
export { exists, syncDir } from './durable-fs.js';
export {
  ENGINE_KINDS,
  type EngineKind,
  MemoryVolume,
  ROCKS_SYNCED_WRITES,
  type RocksSyncedWrites,
} from './engine.js';
export * from './errors.js';
export * from './group-catalog.js';
export type { Json, JsonObject } from './json.js';
export { type LogCacheLimits, type LogUpdate, RaftLogStore } from './log-store.js';
export {
  decodeMemberContext,
  decodePromotionContext,
  encodeMemberContext,
  encodePromotionContext,
  isLearnerRole,
  LEARNER_ROLES,
  type LearnerRole,
  MEMBER_ROLES,
  type MemberContext,
  type MemberRole,
} from './member-context.js';
export {
  BACKUP_SET_FORMAT_VERSION,
  SNAPSHOT_FORMAT_VERSION,
  type SnapshotFileInfo,
  type SnapshotHeader,
  SnapshotReader,
} from './snapshot-file.js';
export type {
  ApplyOutcome,
  BackupLedger,
  ChangeEvent,
  Document,
  HistoryOptions,
  ListOptions,
  ReadResult,
  RealmStateStore,
  StateChange,
  StateMeta,
} from './state-store.js';
export {
  type CreatedSnapshot,
  combine,
  GroupStorage,
  NodeStorage,
  STORAGE_FORMAT_VERSION,
} from './storage.js';
export type { WriteQueueStats } from './write-queue.js';
