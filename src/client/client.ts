// Client: the cluster as one object — reads with failover, writes under a session, watches that resume.

import type { Json, SessionRef, WsPush } from '../ws-protocol.js';
import { backoffDelayMs, sleep } from './backoff.js';
import { CallContext } from './call.js';
import { Connection } from './connection.js';
import { LEADER_CHECK_INTERVAL_MS } from './constants.js';
import { ConclaveError, closedError, errorFromWire, invalidArgument, withIndeterminate } from './errors.js';
import { LeaderAffinity, leaderView, probeStatus } from './leader-affinity.js';
import type { Link } from './link.js';
import { type ClientOptions, type ResolvedOptions, resolveOptions } from './options.js';
import { RealmRouter } from './realm-router.js';
import { exchange, type Transport } from './retry.js';
import { type RequestBody, Rpc } from './rpc.js';
import { Sessions } from './session.js';
import type {
  DeleteOptions,
  Document,
  GetOptions,
  ListOptions,
  ListResult,
  PatchOptions,
  PutOptions,
  RealmResult,
  StatusResult,
  Txn,
  TxnResult,
  WatchOptions,
  WriteResult,
} from './types.js';
import {
  checkArray,
  checkConsistency,
  checkCount,
  checkDefined,
  checkName,
  checkOptions,
  checkString,
} from './validate.js';
import { type Watch, type WatchHost, WatchStream } from './watch.js';
import {
  readDocument,
  readList,
  readObject,
  readRealm,
  readResult,
  readRevision,
  readSession,
  readTxn,
} from './wire.js';
import { runWrite } from './writes.js';

/** Stray watch ids remembered per link (ids the client already sent unwatch for). */
const STRAY_WATCHES_MAX = 1024;

/**
 * A client of a Conclave cluster over one WebSocket at a time (see ws-protocol.ts).
 *
 * Every call either resolves or rejects with a ConclaveError. Reads are retried across
 * connection losses, nodes and retryable errors until requestTimeoutMs, then reject TIMEOUT.
 * Writes run under a client session and are resent with the same sequence number until
 * answered, so each applies at most once; a write that fails with its fate unknown has
 * `indeterminate: true`. After close() every call rejects CLOSED.
 */
export class Client {
  private readonly options: ResolvedOptions;
  private readonly calls = new Set<CallContext>();
  private readonly connection: Connection;
  private readonly rpc: Rpc;
  private readonly sessions: Sessions;
  /** A node refused the realm of openSession (an older version): open sessions without it. */
  private realmSessionsRefused = false;
  private readonly host: WatchHost;
  private readonly watches = new Set<WatchStream>();
  private readonly watchRoutes = new Map<Link, Map<number, WatchStream>>();
  private readonly strayWatches = new WeakMap<Link, Set<number>>();
  private readonly affinity: LeaderAffinity | undefined;
  /** Sends each realm's writes to its raft group's leader (realm-router.ts); with preferLeader. */
  private readonly router: RealmRouter | undefined;
  /** Aborted by close(): ends leader checks in flight. */
  private readonly lifetime = new AbortController();
  private closing: Promise<void> | undefined;
  private unhandledMessages = 0;

  /** Throws ConclaveError INVALID_ARGUMENT naming the bad option. Connects lazily, on the first call. */
  constructor(options: ClientOptions) {
    this.options = resolveOptions(options);
    this.rpc = new Rpc((link, push) => this.route(link, push), this.options.maxRequestBytes);
    this.connection = this.connectionOver(this.options.urls);
    this.host = {
      open: (signal) => this.connection.open(signal),
      call: (link, body, signal, hooks) => this.rpc.call(link, body, signal, hooks),
      drop: (link) => this.connection.drop(link),
      connectFailure: () => this.connection.lastFailure,
      backoffMs: (round) =>
        backoffDelayMs(round, this.options.backoffBaseMs, this.options.backoffMaxMs, Math.random),
      sleep,
      beginCall: () => new CallContext(this.options.requestTimeoutMs, this.calls),
      attach: (link, watchId, watch) => {
        let routes = this.watchRoutes.get(link);
        if (routes === undefined) {
          routes = new Map();
          this.watchRoutes.set(link, routes);
        }
        routes.set(watchId, watch);
      },
      unwatch: (link, watchId) => {
        this.watchRoutes.get(link)?.delete(watchId);
        this.unwatchOnce(link, watchId);
      },
      forget: (watch) => {
        this.watches.delete(watch);
      },
    };
    this.sessions = new Sessions(this.options.maxInflightWrites, (scope) => this.openSession(scope));
    this.affinity = this.options.preferLeader
      ? new LeaderAffinity(
          {
            current: () => this.connection.current,
            statusOver: (link) => this.statusOver(link),
            probe: (url) =>
              probeStatus(url, this.options.connectTimeoutMs, this.lifetime.signal, {
                ca: this.options.ca,
                token: this.options.token,
              }),
            moveTo: (link, url) => this.connection.moveTo(link, url),
            now: () => performance.now(),
          },
          this.options.urls,
          LEADER_CHECK_INTERVAL_MS,
        )
      : undefined;
    this.router = this.options.preferLeader
      ? new RealmRouter(
          {
            route: (realm) => this.askRoute(realm),
            nameAt: async (url) =>
              (
                await probeStatus(url, this.options.connectTimeoutMs, this.lifetime.signal, {
                  ca: this.options.ca,
                  token: this.options.token,
                })
              )?.name,
            connect: (url) => this.connectionTo(url),
            now: () => performance.now(),
          },
          this.options.urls,
          LEADER_CHECK_INTERVAL_MS,
        )
      : undefined;
  }

  /** Writes sent straight to their realm's group leader, and route lookups (see ClientOptions.preferLeader). */
  get realmRouting(): { readonly routedWrites: number; readonly lookups: number } {
    return { routedWrites: this.router?.routedWrites ?? 0, lookups: this.router?.lookups ?? 0 };
  }

  /** Leader checks done and connection moves they made (see ClientOptions.preferLeader). */
  get leaderAffinity(): { readonly checks: number; readonly moves: number } {
    return { checks: this.affinity?.checks ?? 0, moves: this.affinity?.moves ?? 0 };
  }

  /** Messages from nodes that were ignored: not protocol messages, or answers and events for nothing pending. */
  get ignoredMessages(): number {
    return this.rpc.ignoredMessages + this.unhandledMessages;
  }

  /** The document at `key`. Rejects NOT_FOUND if there is none, INVALID_ARGUMENT, TIMEOUT, CLOSED, or the node's error. */
  get(realm: string, key: string, options?: GetOptions): Promise<Document> {
    return this.read(readDocument, () => {
      const { consistency } = checkOptions(options, 'options');
      return {
        op: 'get',
        realm: checkName(realm, 'realm'),
        key: checkName(key, 'key'),
        ...(consistency === undefined ? {} : { consistency: checkConsistency(consistency) }),
      };
    });
  }

  /** One page of the documents whose keys start with `prefix`, in key order. Rejects like get(). */
  list(realm: string, prefix?: string, options?: ListOptions): Promise<ListResult> {
    return this.read(readList, () => {
      const { after, limit, consistency } = checkOptions(options, 'options');
      return {
        op: 'list',
        realm: checkName(realm, 'realm'),
        ...(prefix === undefined ? {} : { prefix: checkString(prefix, 'prefix') }),
        ...(after === undefined ? {} : { after: checkString(after, 'after') }),
        ...(limit === undefined ? {} : { limit: checkCount(limit, 'limit', 1) }),
        ...(consistency === undefined ? {} : { consistency: checkConsistency(consistency) }),
      };
    });
  }

  /** The answering node's status. Rejects TIMEOUT or CLOSED. */
  status(): Promise<StatusResult> {
    return this.read(
      (result) => readObject(result) as unknown as StatusResult,
      () => ({ op: 'status' }),
    );
  }

  /**
   * Stores `value` at `key`. Rejects CONFLICT if ifRevision/ifAbsent does not hold, NOT_FOUND
   * for an unknown realm, INVALID_ARGUMENT, TOO_LARGE (all indeterminate: false), and
   * TIMEOUT, CLOSED or SESSION_EXPIRED with `indeterminate` saying whether it may have applied.
   */
  put(realm: string, key: string, value: Json, options?: PutOptions): Promise<WriteResult> {
    return this.write(realm, readRevision, () => {
      const { ifRevision, ifAbsent } = checkOptions(options, 'options');
      checkDefined(value, 'value');
      if (ifAbsent !== undefined && typeof ifAbsent !== 'boolean')
        throw invalidArgument('ifAbsent must be a boolean');
      const base = {
        op: 'put' as const,
        realm: checkName(realm, 'realm'),
        key: checkName(key, 'key'),
        value,
        ...(ifRevision === undefined ? {} : { ifRevision: checkCount(ifRevision, 'ifRevision', 0) }),
        ...(ifAbsent === undefined ? {} : { ifAbsent }),
      };
      return (session) => ({ ...base, session });
    });
  }

  /** Applies a JSON merge patch to the document at `key`. Rejects like put(); NOT_FOUND if there is no document. */
  patch(realm: string, key: string, patch: Json, options?: PatchOptions): Promise<WriteResult> {
    return this.write(realm, readRevision, () => {
      const { ifRevision } = checkOptions(options, 'options');
      checkDefined(patch, 'patch');
      const base = {
        op: 'patch' as const,
        realm: checkName(realm, 'realm'),
        key: checkName(key, 'key'),
        patch,
        ...(ifRevision === undefined ? {} : { ifRevision: checkCount(ifRevision, 'ifRevision', 0) }),
      };
      return (session) => ({ ...base, session });
    });
  }

  /** Deletes the document at `key`. Rejects like put(); NOT_FOUND if there is no document. */
  delete(realm: string, key: string, options?: DeleteOptions): Promise<WriteResult> {
    return this.write(realm, readRevision, () => {
      const { ifRevision } = checkOptions(options, 'options');
      const base = {
        op: 'delete' as const,
        realm: checkName(realm, 'realm'),
        key: checkName(key, 'key'),
        ...(ifRevision === undefined ? {} : { ifRevision: checkCount(ifRevision, 'ifRevision', 0) }),
      };
      return (session) => ({ ...base, session });
    });
  }

  /** Applies `success` if every compare holds, else `failure`, atomically. Rejects like put(). */
  txn(realm: string, txn: Txn): Promise<TxnResult> {
    return this.write(realm, readTxn, () => {
      const { compares, success, failure } = checkOptions(txn, 'txn');
      const base = {
        op: 'txn' as const,
        realm: checkName(realm, 'realm'),
        compares: checkArray(compares, 'txn.compares') as Txn['compares'],
        success: checkArray(success, 'txn.success') as Txn['success'],
        ...(failure === undefined ? {} : { failure: checkArray(failure, 'txn.failure') as Txn['success'] }),
      };
      return (session) => ({ ...base, session });
    });
  }

  /**
   * Creates a realm, under the session like any write (so a resend cannot turn its own
   * success into CONFLICT). Rejects CONFLICT if it exists, INVALID_ARGUMENT for a bad name,
   * TOO_LARGE at the realm limit, and TIMEOUT, CLOSED or SESSION_EXPIRED like put().
   */
  createRealm(name: string): Promise<RealmResult> {
    return this.write(name, readRealm, () => {
      const realm = checkName(name, 'name');
      return (session) => ({ op: 'createRealm', realm, session });
    });
  }

  /**
   * Watches the keys of `realm` starting with `prefix` (see Watch). Throws ConclaveError
   * INVALID_ARGUMENT for a bad argument and CLOSED on a closed client.
   */
  watch(realm: string, prefix: string, options?: WatchOptions): Watch {
    if (this.closing !== undefined) throw closedError();
    const { fromRevision } = checkOptions(options, 'options');
    const stream = new WatchStream(this.host, {
      realm: checkName(realm, 'realm'),
      prefix: checkString(prefix, 'prefix'),
      fromRevision: fromRevision === undefined ? undefined : checkCount(fromRevision, 'fromRevision', 1),
      bufferEvents: this.options.watchBufferEvents,
    });
    this.watches.add(stream);
    stream.start();
    return stream;
  }

  /**
   * Closes the connection, ends every watch (their iterators finish without error) and
   * rejects every pending call with CLOSED. Resolves once the socket is closed and no timer is
   * left. Idempotent.
   */
  close(): Promise<void> {
    if (this.closing !== undefined) return this.closing;
    this.lifetime.abort();
    const link = this.connection.current;
    const sessions = this.sessions.clear();
    if (link !== undefined) {
      // Best effort: frees the sessions' memory on the cluster now instead of at their expiry.
      for (const session of sessions) {
        this.rpc.notify(link, {
          op: 'closeSession',
          session: session.ref(session.take()),
          ...(session.scope === '' || this.realmSessionsRefused ? {} : { realm: session.scope }),
        });
      }
    }
    for (const call of [...this.calls]) call.abort('closed');
    this.rpc.rejectAll(closedError());
    for (const watch of [...this.watches]) watch.shutdown();
    this.watchRoutes.clear();
    this.closing = Promise.all([this.connection.close(), this.router?.close()]).then(() => undefined);
    return this.closing;
  }

  private beginCall(): CallContext {
    return new CallContext(this.options.requestTimeoutMs, this.calls);
  }

  private async read<T>(reader: (result: unknown) => T, build: () => RequestBody): Promise<T> {
    if (this.closing !== undefined) throw closedError();
    const body = build();
    this.rpc.checkSize(body);
    const ctx = this.beginCall();
    try {
      const answer = await exchange(this.host, ctx, () => body);
      if (answer.ok) return readResult(answer.result, reader, false);
      throw withIndeterminate(errorFromWire(answer.error), false);
    } catch (error) {
      if (ctx.aborted) throw ctx.abortError(false);
      throw error;
    } finally {
      ctx.finish();
    }
  }

  private async write<T>(
    realm: string,
    reader: (result: unknown) => T,
    build: () => (session: SessionRef) => RequestBody,
  ): Promise<T> {
    if (this.closing !== undefined) throw closedError();
    const withSession = build();
    this.rpc.checkSize(withSession({ id: 1, seq: 1 }));
    this.affinity?.noteWrite();
    const routed = this.router?.connectionFor(realm);
    const transport = routed === undefined ? this.host : this.routedTransport(routed, realm);
    const ctx = this.beginCall();
    try {
      // One session per realm: a realm lives in one raft group, and so must its writes' session.
      return await runWrite(transport, this.sessions, ctx, withSession, reader, realm);
    } finally {
      ctx.finish();
    }
  }

  /** The attempt loop's transport over a routed connection: giving up a link forgets the realm's route. */
  private routedTransport(connection: Connection, realm: string): Transport {
    return {
      open: (signal) => connection.open(signal),
      call: (link, body, signal, hooks) => this.rpc.call(link, body, signal, hooks),
      drop: (link) => {
        this.router?.forget(realm);
        connection.drop(link);
      },
      connectFailure: () => connection.lastFailure,
      backoffMs: (round) => this.host.backoffMs(round),
      sleep,
    };
  }

  /** A connection that dials `url` first and fails over to the other endpoints in their order. */
  private connectionTo(url: string): Connection {
    const urls = this.options.urls;
    const at = urls.indexOf(url);
    return this.connectionOver([...urls.slice(at), ...urls.slice(0, at)]);
  }

  /** A connection over `urls` (dialed in that order), its messages and losses routed by link. */
  private connectionOver(urls: readonly string[]): Connection {
    return new Connection(
      {
        urls,
        connectTimeoutMs: this.options.connectTimeoutMs,
        backoffBaseMs: this.options.backoffBaseMs,
        backoffMaxMs: this.options.backoffMaxMs,
        ca: this.options.ca,
        token: this.options.token,
      },
      {
        onMessage: (link, text) => this.receive(link, text),
        onLost: (link) => this.onLost(link),
      },
    );
  }

  /** The `route` of `realm` from the node of the main connection; 'unsupported' from a node without the op. */
  private async askRoute(
    realm: string,
  ): Promise<{ group: number; leader: string } | undefined | 'unsupported'> {
    const ctx = this.beginCall();
    try {
      const link = await this.connection.open(ctx.signal);
      const answer = await this.rpc.call(link, { op: 'route', realm }, ctx.signal);
      if (!answer.ok) {
        return answer.error.code === 'INVALID_ARGUMENT' && /unknown op/.test(answer.error.message)
          ? 'unsupported'
          : undefined;
      }
      const { group, leader } = (answer.result ?? {}) as { group?: unknown; leader?: unknown };
      if (typeof group !== 'number' || typeof leader !== 'string' || group < 1) return undefined;
      return { group, leader };
    } catch {
      return undefined;
    } finally {
      ctx.finish();
    }
  }

  /** The leader view of the node behind `link`, asked over that link; undefined on any failure. */
  private async statusOver(link: Link): Promise<ReturnType<typeof leaderView>> {
    const ctx = this.beginCall();
    try {
      const answer = await this.rpc.call(link, { op: 'status' }, ctx.signal);
      return answer.ok ? leaderView(answer.result) : undefined;
    } catch {
      return undefined;
    } finally {
      ctx.finish();
    }
  }

  /**
   * Opens a session for the writes to realm `scope` on the cluster, in that realm's raft group
   * (retried like a read: an orphaned session only costs memory until it expires). A node of a
   * version before realms could live in other groups refuses the realm field: then, and from
   * then on, sessions are opened without it (everything lives in group 1 there).
   */
  private async openSession(scope: string): Promise<number> {
    if (scope === '' || this.realmSessionsRefused)
      return this.read(readSession, () => ({ op: 'openSession' }));
    try {
      return await this.read(readSession, () => ({ op: 'openSession', realm: scope }));
    } catch (error) {
      if (
        !(error instanceof ConclaveError) ||
        error.code !== 'INVALID_ARGUMENT' ||
        !/realm/.test(error.message)
      )
        throw error;
      this.realmSessionsRefused = true;
      return this.read(readSession, () => ({ op: 'openSession' }));
    }
  }

  private receive(link: Link, text: string): void {
    try {
      this.rpc.receive(link, text);
    } catch {
      // Nothing a node sends may crash the process.
      this.unhandledMessages += 1;
    }
  }

  private route(link: Link, push: WsPush): void {
    if (push.type === 'error') {
      this.unhandledMessages += 1;
      return;
    }
    const watch = this.watchRoutes.get(link)?.get(push.watch);
    if (watch === undefined) {
      this.unhandledMessages += 1;
      if (push.type === 'events') this.unwatchOnce(link, push.watch);
      return;
    }
    if (push.type === 'events') {
      watch.onEvents(push.events);
    } else {
      this.watchRoutes.get(link)?.delete(push.watch);
      watch.onEnded(push.error);
    }
  }

  /**
   * Asks the node to drop `watchId`, once per link: a watch that ended, or one no one holds
   * (closed while its subscription was in flight) whose events keep coming.
   */
  private unwatchOnce(link: Link, watchId: number): void {
    let stray = this.strayWatches.get(link);
    if (stray === undefined) {
      stray = new Set();
      this.strayWatches.set(link, stray);
    }
    if (stray.has(watchId)) return;
    if (stray.size >= STRAY_WATCHES_MAX) stray.clear();
    stray.add(watchId);
    this.rpc.notify(link, { op: 'unwatch', watch: watchId });
  }

  private onLost(link: Link): void {
    this.rpc.lose(link);
    const routes = this.watchRoutes.get(link);
    this.watchRoutes.delete(link);
    if (routes === undefined) return;
    for (const watch of routes.values()) watch.onLinkLost(link);
  }
}
