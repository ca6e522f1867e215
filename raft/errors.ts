// Operating errors of the raft core: values with stable codes, never thrown for a peer's input.

/** Stable codes; the application maps them onto client error codes. Never renamed. */
export type RaftErrorCode =
  | 'NOT_LEADER'
  | 'NO_LEADER'
  | 'TRANSFER_IN_PROGRESS'
  | 'MEMBERSHIP_CHANGE_PENDING'
  | 'NO_COMMITTED_ENTRY_IN_TERM'
  | 'INVALID_MEMBERSHIP_CHANGE'
  | 'LEARNER_NOT_CAUGHT_UP'
  | 'TOO_LARGE'
  | 'UNCOMMITTED_LIMIT'
  | 'READ_INDEX_LIMIT'
  | 'INVALID_TRANSFER_TARGET'
  | 'INVALID_MESSAGE';

/** An operating error: something the caller can handle or report, with a stable code. */
export class RaftError extends Error {
  readonly code: RaftErrorCode;
  /** The leader known when the error arose, so the caller can redirect (NONE if unknown). */
  readonly leader: string;

  constructor(code: RaftErrorCode, detail: string, leader = '') {
    super(`${code}: ${detail}`);
    this.name = 'RaftError';
    this.code = code;
    this.leader = leader;
  }
}

/** A configuration value out of bounds; the message names the setting and the bound. */
export class RaftConfigError extends Error {
  readonly code = 'INVALID_CONFIG';
  readonly setting: string;

  constructor(setting: string, detail: string) {
    super(`invalid raft config ${setting}: ${detail}`);
    this.name = 'RaftConfigError';
    this.setting = setting;
  }
}

/** Thrown by LogStorage when an index is below its first index (already compacted). */
export class CompactedError extends Error {
  readonly code = 'COMPACTED';
  constructor(index: number, firstIndex: number) {
    super(`index ${index} is compacted (first index ${firstIndex})`);
    this.name = 'CompactedError';
  }
}

/** Thrown by LogStorage when an index is above its last index. */
export class UnavailableError extends Error {
  readonly code = 'UNAVAILABLE';
  constructor(index: number, lastIndex: number) {
    super(`index ${index} is not in the log (last index ${lastIndex})`);
    this.name = 'UnavailableError';
  }
}

/** A broken invariant: a bug in raft or a contract violation by the application. */
export class RaftInvariantError extends Error {
  constructor(detail: string) {
    super(`raft invariant violated: ${detail}`);
    this.name = 'RaftInvariantError';
  }
}

export function invariant(condition: boolean, detail: string | (() => string)): asserts condition {
  if (!condition) throw new RaftInvariantError(typeof detail === 'string' ? detail : detail());
}

/** Either a value or an operating error. */
export type Result<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly error: RaftError };

export function ok<T>(value: T): Result<T> {
  return { ok: true, value };
}

export function fail<T>(code: RaftErrorCode, detail: string, leader = ''): Result<T> {
  return { ok: false, error: new RaftError(code, detail, leader) };
}
