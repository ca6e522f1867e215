// The public shapes of Client calls: their options and results (the wire shapes come from ws-protocol.ts).

import type { NodeStatus } from '../kv-service.js';
import type { Compare, DocOp, ReadConsistency } from '../ws-protocol.js';

export type { MemberStatus, NodeStatus } from '../kv-service.js';
export type {
  Compare,
  DocResult,
  Document,
  JsonValue,
  ListResult,
  ReadConsistency,
  RealmResult,
  TxnResult,
  WatchEvent,
  WriteResult,
} from '../ws-protocol.js';

/** One operation of a transaction branch: put, patch or delete of one key. */
export type TxnOp = DocOp;

export interface GetOptions {
  /** 'linearizable' (default): the latest committed value; 'stale': the node's local state at once. */
  readonly consistency?: ReadConsistency;
}

export interface ListOptions {
  /** Start after this key (exclusive): pass the previous page's `next`. */
  readonly after?: string;
  /** Documents per page; the node caps it. */
  readonly limit?: number;
  readonly consistency?: ReadConsistency;
}

export interface PutOptions {
  /** Apply only if the document's modRevision is this (0: only if absent); otherwise CONFLICT. */
  readonly ifRevision?: number;
  /** Apply only if the key is absent; otherwise CONFLICT. */
  readonly ifAbsent?: boolean;
}

export interface PatchOptions {
  readonly ifRevision?: number;
}

export interface DeleteOptions {
  readonly ifRevision?: number;
}

export interface Txn {
  readonly compares: readonly Compare[];
  /** Applied if every compare holds. */
  readonly success: readonly TxnOp[];
  /** Applied otherwise. */
  readonly failure?: readonly TxnOp[];
}

export interface WatchOptions {
  /** Deliver changes from this revision on (default: changes after the watch starts). */
  readonly fromRevision?: number;
}

/** What a node answers to `status`. */
export type StatusResult = NodeStatus;
