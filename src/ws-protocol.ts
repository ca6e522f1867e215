// The WebSocket protocol at /v1/ws and the wire types the HTTP API shares: the shapes the node (ws-api.ts, client-api.ts) and the client speak.

/*
 * One JSON text message per frame. The client sends requests, each with an `id` of its choosing
 * (a string or a number, unique among its requests in flight on that connection); the node
 * answers each request exactly once with the same `id`. Answers may come in any order.
 *
 *   request:  {"id": 7, "op": "put", "realm": "default", "key": "a", "value": {...}}
 *   answer:   {"id": 7, "ok": true, "result": {"revision": 12}}
 *          or {"id": 7, "ok": false, "error": {"code": "CONFLICT", "message": "...", "retryable": false}}
 *
 * The error object is the HTTP API's error body (http-api.ts, ERRORS): `code`, `message`,
 * `retryable`, and where they apply `leader`, `indeterminate` (a write that may still apply)
 * and `revision` (COMPACTED). A message the node cannot read at all (not JSON, no usable `id`)
 * is answered {"type": "error", "error": {...}} without an id.
 *
 * Operations and their results (fields as in the HTTP API):
 *   get      {realm, key, consistency?}                    -> Document {key, value, createRevision, modRevision, version}
 *   list     {realm, prefix?, after?, limit?, consistency?} -> {documents, more, next, revision}
 *   put      {realm, key, value, ifRevision?, ifAbsent?, session?} -> {revision}
 *   patch    {realm, key, patch, ifRevision?, session?}     -> {revision}
 *   delete   {realm, key, ifRevision?, session?}            -> {revision}
 *   txn      {realm, compares, success, failure?, session?} -> {succeeded, revision, results}
 *   createRealm {realm, settings?, session?}               -> {name, revision}
 *   openSession {}                                         -> {session}
 *   closeSession {session}                                 -> {}
 *   watch    {realm, prefix?, fromRevision?}               -> {watch, revision}
 *   unwatch  {watch}                                       -> {}
 *   status   {}                                            -> NodeStatus (kv-service.ts)
 *   route    {realm}                                       -> {realm, group, leader}: the raft group holding the
 *            realm and the name of the node leading it as the answering node knows ('' unknown;
 *            group 0 from a node that cannot tell, a proxy); clients send writes straight there
 *   auth     {token}                                       -> {user, clusterAdmin}
 *
 * Tokens: where the node requires one (see README, Users and tokens), a connection's requests
 * carry the token of its upgrade's `Authorization: Bearer TOKEN` header, or of its last
 * successful `auth` request (for clients that cannot set headers). Without a valid one each
 * request answers UNAUTHENTICATED; without the permission, PERMISSION_DENIED (auth.ts says
 * which operation needs what). A watch whose token is revoked or expires, or whose caller loses
 * read on its realm, ends within a second with watchEnded and that error.
 *
 * Sessions (Raft dissertation §6.3): `openSession` returns a session number. A write sent with
 * `session: {id, seq, ack?}` is applied at most once per (id, seq): retried with the same seq,
 * at this node or any other, it answers the first attempt's result. `seq` starts at 1 and is
 * never reused within a session; `ack` says "I have the answers to every seq up to here", so
 * the cluster may forget them. A session idle past the cluster's session TTL (30 minutes by
 * default) expires: its writes answer SESSION_EXPIRED (status 410, not retryable), and a write
 * retried after that has an unknown fate.
 *
 * Watches: `watch` answers {watch: W, revision: R} (R: the node's revision when the watch
 * started) and then sends, in revision order, messages
 *     {"type": "events", "watch": W, "events": [WatchEvent...]}
 * with every change to keys of `realm` starting with `prefix` whose revision is >= fromRevision
 * (default: R + 1, i.e. changes from now on). A transaction's events arrive in one message.
 * A watch from a revision no longer retained answers (or, if found out later, ends with)
 * COMPACTED carrying the current `revision`: read the current state and watch again from there.
 * A watch that ends for any reason other than unwatch is announced with
 *     {"type": "watchEnded", "watch": W, "error": {...}}
 * Events come from the node's own applied state: a node that lags delivers later, never out of
 * order. To resume elsewhere without loss or repetition, watch from the last revision received
 * plus one.
 *
 * Flow control: a client that does not read is not buffered without bound: once more than the
 * node's WebSocket backpressure limit (4 MiB by default) waits to be sent, the node closes the
 * connection with code 4008 (SLOW_CONSUMER). Requests in flight per connection are limited
 * (WS_MAX_INFLIGHT); above that the node answers UNAVAILABLE (retryable). The node closes with
 * 1001 (GOING_AWAY) when it stops; the client reconnects elsewhere.
 *
 * Size: a message over the node's WebSocket message limit (1 MiB by default; the node does not
 * announce it) is not read: the node closes the connection with 1009 (TOO_LARGE), and drops it
 * without a close frame for one over twice the limit. The TypeScript client refuses such a
 * request before sending it (ClientOptions.maxRequestBytes) and reports a 1009 as TOO_LARGE.
 */

import type { Compare, DocOp, DocResult, Document, Json, SessionRef } from '../storage/index.js';
import type { Consistency } from './kv-service.js';

/** The path of the endpoint on every node. */
export const WS_PATH = '/v1/ws';

/** Requests one connection may have in flight; more are answered UNAVAILABLE. */
export const WS_MAX_INFLIGHT = 4096;

/** Watches one connection may hold. */
export const WS_MAX_WATCHES = 1024;

/** Close codes the node uses: CLOSE_CODES of error-codes.ts (the one table). */
export { CLOSE_CODES as WS_CLOSE_CODES } from './error-codes.js';

export type RequestId = string | number;

// The data shapes are storage's (storage/commands.ts, storage/state-store.ts, storage/json.ts),
// carried as the state machine defines them; imported as types only, so the client loads none
// of storage/ (nor net/).
export type { Compare, DocOp, DocResult, Document, Json, SessionRef };

/** Json under the name the client library exports (and watch-hub.ts uses). */
export type JsonValue = Json;

/** `linearizable` (the default) or `stale`: kv-service.ts's Consistency, as the client names it. */
export type ReadConsistency = Consistency;

export type WsRequest = { readonly id: RequestId } & (
  | {
      readonly op: 'get';
      readonly realm: string;
      readonly key: string;
      readonly consistency?: ReadConsistency;
    }
  | {
      readonly op: 'list';
      readonly realm: string;
      readonly prefix?: string;
      readonly after?: string;
      readonly limit?: number;
      readonly consistency?: ReadConsistency;
    }
  | {
      readonly op: 'put';
      readonly realm: string;
      readonly key: string;
      readonly value: Json;
      readonly ifRevision?: number;
      readonly ifAbsent?: boolean;
      readonly session?: SessionRef;
    }
  | {
      readonly op: 'patch';
      readonly realm: string;
      readonly key: string;
      readonly patch: Json;
      readonly ifRevision?: number;
      readonly session?: SessionRef;
    }
  | {
      readonly op: 'delete';
      readonly realm: string;
      readonly key: string;
      readonly ifRevision?: number;
      readonly session?: SessionRef;
    }
  | {
      readonly op: 'txn';
      readonly realm: string;
      readonly compares: readonly Compare[];
      readonly success: readonly DocOp[];
      readonly failure?: readonly DocOp[];
      readonly session?: SessionRef;
    }
  | { readonly op: 'createRealm'; readonly realm: string; readonly session?: SessionRef }
  | { readonly op: 'openSession' }
  | { readonly op: 'closeSession'; readonly session: SessionRef }
  | { readonly op: 'watch'; readonly realm: string; readonly prefix?: string; readonly fromRevision?: number }
  | { readonly op: 'unwatch'; readonly watch: number }
  | { readonly op: 'status' }
  | { readonly op: 'route'; readonly realm: string }
);

export type WsOp = WsRequest['op'];

/** The error object of a failed answer (the HTTP API's error body). */
export interface WsError {
  readonly code: string;
  readonly message: string;
  readonly retryable: boolean;
  readonly leader?: string;
  readonly indeterminate?: boolean;
  readonly revision?: number;
}

/** What put, patch and delete answer (over HTTP too). */
export interface WriteResult {
  /** The revision the write created. */
  readonly revision: number;
}

/** What list answers (over HTTP too). */
export interface ListResult {
  readonly documents: Document[];
  /** More documents follow; ask again with `after: next`. */
  readonly more: boolean;
  readonly next: string | null;
  /** The revision the page was read at. */
  readonly revision: number;
}

/** What txn answers (over HTTP too). */
export interface TxnResult {
  readonly succeeded: boolean;
  readonly revision: number;
  readonly results: DocResult[];
}

/** What createRealm answers (over HTTP too). */
export interface RealmResult {
  readonly name: string;
  readonly revision: number;
}

/** One change delivered to a watcher. `modRevision` is the revision of the change (also for a delete). */
export type WatchEvent =
  | {
      readonly type: 'put';
      readonly key: string;
      readonly value: Json;
      readonly modRevision: number;
      readonly createRevision: number;
      readonly version: number;
    }
  | { readonly type: 'delete'; readonly key: string; readonly value: null; readonly modRevision: number };

export type WsAnswer =
  | { readonly id: RequestId; readonly ok: true; readonly result: unknown }
  | { readonly id: RequestId; readonly ok: false; readonly error: WsError };

/** Messages the node sends that answer no request. */
export type WsPush =
  | { readonly type: 'events'; readonly watch: number; readonly events: readonly WatchEvent[] }
  | { readonly type: 'watchEnded'; readonly watch: number; readonly error: WsError }
  | { readonly type: 'error'; readonly error: WsError };

export type WsServerMessage = WsAnswer | WsPush;
