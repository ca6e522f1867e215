// The public shapes of Client calls: their options and results (the wire shapes come from ws-protocol.ts).

import type { NodeStatus } from '../kv-service.js';
import type { Compare, ReadConsistency, TxnOp, WsDocResult, WsDocument } from '../ws-protocol.js';

export type { MemberStatus, NodeStatus } from '../kv-service.js';
export type { Compare, JsonValue, ReadConsistency, TxnOp, WatchEvent } from '../ws-protocol.js';

/** A stored document: its value and revisions. */
export type Document = WsDocument;

/** One operation's outcome in a transaction. */
export type DocResult = WsDocResult;

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

export interface ListResult {
  readonly documents: Document[];
  /** More documents follow; ask again with `after: next`. */
  readonly more: boolean;
  readonly next: string | null;
  /** The revision the page was read at. */
  readonly revision: number;
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

export interface WriteResult {
  /** The revision the write created. */
  readonly revision: number;
}

export interface Txn {
  readonly compares: readonly Compare[];
  /** Applied if every compare holds. */
  readonly success: readonly TxnOp[];
  /** Applied otherwise. */
  readonly failure?: readonly TxnOp[];
}

export interface TxnResult {
  readonly succeeded: boolean;
  readonly revision: number;
  readonly results: DocResult[];
}

export interface RealmResult {
  readonly name: string;
  readonly revision: number;
}

export interface WatchOptions {
  /** Deliver changes from this revision on (default: changes after the watch starts). */
  readonly fromRevision?: number;
}

/** What a node answers to `status`. */
export type StatusResult = NodeStatus;
