// Operating errors of storage/: classes with stable names and codes that callers branch on.

/**
 * Codes of StorageError. They are a promise to callers (and, through src/, to operators'
 * scripts): a code is never renamed or reused for another meaning.
 */
export type StorageErrorCode =
  /** The data directory was written by a newer storage format than this build reads. */
  | 'DATA_DIR_NEWER_FORMAT'
  /** The data directory belongs to another cluster. */
  | 'DATA_DIR_FOREIGN_CLUSTER'
  /** The data directory was written by another engine (rocksdb vs leveldb). */
  | 'DATA_DIR_ENGINE_MISMATCH'
  /** The data directory's marker or the database's own records are missing or unreadable. */
  | 'DATA_DIR_CORRUPT'
  /** Another process holds the database open. */
  | 'DATA_DIR_LOCKED'
  /** A value read back does not match its checksum or cannot be decoded. */
  | 'DATA_CORRUPT'
  /** A write or fsync failed; the store refuses every later write (fail-stop) and must be reopened. */
  | 'STORAGE_FAILED'
  /** More bytes wait in the write queue than its limit: the producer must wait for earlier writes. */
  | 'STORAGE_BUSY'
  /** A file this call must create (a backup) already exists; nothing was overwritten. */
  | 'FILE_EXISTS'
  /** The store was closed. */
  | 'STORAGE_CLOSED'
  /** The raft group does not exist on this node (or already exists, for creation). */
  | 'GROUP_NOT_FOUND'
  | 'GROUP_EXISTS';

/** An operating error of the storage layer (not a client command's error; see CommandError). */
export class StorageError extends Error {
  readonly code: StorageErrorCode;

  constructor(code: StorageErrorCode, detail: string, options?: { cause?: unknown }) {
    super(`${code}: ${detail}`, options);
    this.name = 'StorageError';
    this.code = code;
  }
}

/** Codes of SnapshotFileError: why a snapshot or backup file was refused. Never renamed. */
export type SnapshotFileErrorCode =
  /** The file does not start with the snapshot magic: it is not a Conclave snapshot. */
  | 'SNAPSHOT_NOT_A_SNAPSHOT'
  /** The file was written by a newer snapshot format than this build reads. */
  | 'SNAPSHOT_NEWER_FORMAT'
  /** The file ends before its end record: it was cut short. */
  | 'SNAPSHOT_TRUNCATED'
  /** A checksum does not match, a length is out of bounds, or a record cannot be decoded. */
  | 'SNAPSHOT_CORRUPT'
  /** The file belongs to another cluster. */
  | 'SNAPSHOT_FOREIGN_CLUSTER'
  /** The file belongs to another raft group. */
  | 'SNAPSHOT_FOREIGN_GROUP'
  /** The file's index and term are not the ones expected (e.g. raft's snapshot metadata). */
  | 'SNAPSHOT_MISMATCH'
  /** A backup directory holds no file that verifies. */
  | 'NO_BACKUP'
  /** The file is not newer than what the node has already applied. */
  | 'SNAPSHOT_STALE';

/** A snapshot or backup file refused on reading; the node's data is untouched when it is thrown. */
export class SnapshotFileError extends Error {
  readonly code: SnapshotFileErrorCode;
  readonly path: string;

  constructor(code: SnapshotFileErrorCode, path: string, detail: string) {
    super(`${code}: ${path}: ${detail}`);
    this.name = 'SnapshotFileError';
    this.code = code;
    this.path = path;
  }
}

/** A configuration value out of bounds; the message names the setting and the bound. */
export class StorageConfigError extends Error {
  readonly code = 'INVALID_CONFIG';
  readonly setting: string;

  constructor(setting: string, detail: string) {
    super(`invalid storage config ${setting}: ${detail}`);
    this.name = 'StorageConfigError';
    this.setting = setting;
  }
}

/** A broken invariant inside storage/ or a contract violation by its caller: a bug, not an operating error. */
export class StorageInvariantError extends Error {
  constructor(detail: string) {
    super(`storage invariant violated: ${detail}`);
    this.name = 'StorageInvariantError';
  }
}

export function invariant(condition: boolean, detail: string | (() => string)): asserts condition {
  if (!condition) throw new StorageInvariantError(typeof detail === 'string' ? detail : detail());
}
