// A fake Conclave node for the client tests: the /v1/ws protocol over an in-memory state machine, with fault hooks.

/*
 * Several FakeNodes may share one FakeCluster (its documents, revision, event log and
 * sessions), the way real nodes share one replicated state: a client may fail over from one
 * to another and find the same data, the same sessions and the same history. Sessions follow
 * the real state machine (storage/state-store.ts): a retried (id, seq) answers its first
 * result; `ack` drops answers; a missing session or a forgotten seq answers SESSION_EXPIRED.
 */

import { type AddressInfo, type WebSocket, WebSocketServer } from 'ws';
import { isRetryable } from '../../src/error-codes.js';
import type { Json, WatchEvent, WsError } from '../../src/ws-protocol.js';

type Fields = Record<string, unknown>;

export interface FakeDocument {
  key: string;
  value: Json;
  createRevision: number;
  modRevision: number;
  version: number;
}

/** One revision's changes to one realm (a transaction's events share it). */
export interface LogEntry {
  readonly revision: number;
  readonly realm: string;
  readonly events: WatchEvent[];
}

type Outcome = { ok: true; result: unknown } | { ok: false; error: WsError };

interface FakeSession {
  responses: Map<number, Outcome>;
  discardedThrough: number;
}

const WRITE_OPS = new Set(['put', 'patch', 'delete', 'txn']);

function failure(code: string, message: string, extra: Partial<WsError> = {}): Outcome {
  return { ok: false, error: { code, message, retryable: isRetryable(code), ...extra } };
}

/** The replicated state several fake nodes share. */
export class FakeCluster {
  revision = 0;
  readonly realms = new Set<string>(['default']);
  readonly docs = new Map<string, Map<string, FakeDocument>>([['default', new Map()]]);
  readonly log: LogEntry[] = [];
  /** Watches from at or below this revision answer COMPACTED. */
  compactedThrough = 0;
  readonly sessions = new Map<number, FakeSession>();
  private nextSession = 1;
  /** Writes (put/patch/delete/txn/createRealm) executed, counting each application once. */
  executedWrites = 0;
  private readonly listeners = new Set<(entry: LogEntry) => void>();

  onCommit(listener: (entry: LogEntry) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Forgets every session, as if they had all expired. */
  expireSessions(): void {
    this.sessions.clear();
  }

  /** A put without a client, e.g. to produce watch events. */
  putDirect(realm: string, key: string, value: Json): number {
    const outcome = this.execute({ op: 'put', realm, key, value });
    if (!outcome.ok) throw new Error(`putDirect: ${outcome.error.code}`);
    return this.revision;
  }

  /** Applies a write request: the §6.3 session check, then the operation. */
  applyWrite(request: Fields): Outcome {
    if (request.op === 'openSession') {
      const id = this.nextSession++;
      this.sessions.set(id, { responses: new Map(), discardedThrough: 0 });
      return { ok: true, result: { session: id } };
    }
    const ref = request.session as { id: number; seq: number; ack?: number } | undefined;
    if (ref === undefined) {
      if (request.op === 'closeSession') return failure('INVALID_ARGUMENT', 'closeSession needs a session');
      return this.execute(request);
    }
    const session = this.sessions.get(ref.id);
    if (session === undefined)
      return failure('SESSION_EXPIRED', `session ${ref.id} does not exist or has expired`);
    if (ref.ack !== undefined) {
      session.discardedThrough = Math.max(session.discardedThrough, ref.ack);
      for (const seq of session.responses.keys()) if (seq <= ref.ack) session.responses.delete(seq);
    }
    const cached = session.responses.get(ref.seq);
    if (cached !== undefined) return cached;
    if (ref.seq <= session.discardedThrough) {
      return failure(
        'SESSION_EXPIRED',
        `session ${ref.id}: the response to seq ${ref.seq} is no longer kept`,
      );
    }
    if (request.op === 'closeSession') {
      this.sessions.delete(ref.id);
      return { ok: true, result: {} };
    }
    const outcome = this.execute(request);
    session.responses.set(ref.seq, outcome);
    return outcome;
  }

  read(request: Fields): Outcome {
    const realm = request.realm as string;
    const docs = this.docs.get(realm);
    if (docs === undefined) return failure('NOT_FOUND', `no realm ${realm}`);
    if (request.op === 'get') {
      const doc = docs.get(request.key as string);
      return doc === undefined
        ? failure('NOT_FOUND', `no document ${String(request.key)}`)
        : { ok: true, result: doc };
    }
    const prefix = (request.prefix as string | undefined) ?? '';
    const after = request.after as string | undefined;
    const limit = (request.limit as number | undefined) ?? 100;
    const keys = [...docs.keys()]
      .filter((k) => k.startsWith(prefix) && (after === undefined || k > after))
      .sort();
    const page = keys.slice(0, limit);
    const more = keys.length > limit;
    return {
      ok: true,
      result: {
        documents: page.map((k) => docs.get(k)),
        more,
        next: more ? page[page.length - 1] : null,
        revision: this.revision,
      },
    };
  }

  private execute(request: Fields): Outcome {
    const realm = request.realm as string;
    if (request.op === 'createRealm') {
      if (this.realms.has(realm)) return failure('CONFLICT', `realm ${realm} exists`);
      this.executedWrites += 1;
      this.realms.add(realm);
      this.docs.set(realm, new Map());
      this.revision += 1;
      return { ok: true, result: { name: realm, revision: this.revision } };
    }
    const docs = this.docs.get(realm);
    if (docs === undefined) return failure('NOT_FOUND', `no realm ${realm}`);
    if (request.op === 'txn') return this.executeTxn(realm, docs, request);
    const op = { ...request, type: request.op } as Fields;
    const refusal = this.check(docs, op);
    if (refusal !== undefined) return refusal;
    this.executedWrites += 1;
    const revision = this.revision + 1;
    const event = this.applyOp(docs, op, revision);
    this.commit(realm, [event]);
    return { ok: true, result: { revision } };
  }

  private executeTxn(realm: string, docs: Map<string, FakeDocument>, request: Fields): Outcome {
    const compares = request.compares as { key: string; target: string; op: string; value: Json }[];
    const holds = compares.every((c) => {
      const doc = docs.get(c.key);
      const actual =
        c.target === 'exists'
          ? doc !== undefined
          : c.target === 'value'
            ? (doc?.value ?? null)
            : ((doc as unknown as Record<string, number> | undefined)?.[c.target] ?? 0);
      const same = JSON.stringify(actual) === JSON.stringify(c.value);
      if (c.op === 'eq') return same;
      if (c.op === 'ne') return !same;
      if (c.op === 'lt') return (actual as number) < (c.value as number);
      return (actual as number) > (c.value as number);
    });
    const ops = ((holds ? request.success : request.failure) ?? []) as Fields[];
    for (const op of ops) {
      const refusal = this.check(docs, op);
      if (refusal !== undefined) return refusal;
    }
    this.executedWrites += 1;
    if (ops.length === 0)
      return { ok: true, result: { succeeded: holds, revision: this.revision, results: [] } };
    const revision = this.revision + 1;
    const events = ops.map((op) => this.applyOp(docs, op, revision));
    this.commit(realm, events);
    const results = events.map((e) =>
      e.type === 'put'
        ? {
            type: 'put',
            key: e.key,
            createRevision: e.createRevision,
            modRevision: e.modRevision,
            version: e.version,
          }
        : { type: 'delete', key: e.key, prevModRevision: revision - 1 },
    );
    return { ok: true, result: { succeeded: holds, revision, results } };
  }

  private check(docs: Map<string, FakeDocument>, op: Fields): Outcome | undefined {
    const doc = docs.get(op.key as string);
    if (op.ifAbsent === true && doc !== undefined) return failure('CONFLICT', `${String(op.key)} exists`);
    if (typeof op.ifRevision === 'number' && (doc?.modRevision ?? 0) !== op.ifRevision) {
      return failure('CONFLICT', `${String(op.key)} is not at revision ${op.ifRevision}`);
    }
    if ((op.type === 'patch' || op.type === 'delete') && doc === undefined) {
      return failure('NOT_FOUND', `no document ${String(op.key)}`);
    }
    return undefined;
  }

  private applyOp(docs: Map<string, FakeDocument>, op: Fields, revision: number): WatchEvent {
    const key = op.key as string;
    const doc = docs.get(key);
    if (op.type === 'delete') {
      docs.delete(key);
      return { type: 'delete', key, value: null, modRevision: revision };
    }
    const value = op.type === 'patch' ? mergePatch(doc!.value, op.patch as Json) : (op.value as Json);
    const next: FakeDocument = {
      key,
      value,
      createRevision: doc?.createRevision ?? revision,
      modRevision: revision,
      version: (doc?.version ?? 0) + 1,
    };
    docs.set(key, next);
    return { type: 'put', ...next };
  }

  private commit(realm: string, events: WatchEvent[]): void {
    this.revision += 1;
    const entry: LogEntry = { revision: this.revision, realm, events };
    this.log.push(entry);
    for (const listener of [...this.listeners]) listener(entry);
  }
}

function mergePatch(target: Json, patch: Json): Json {
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) return patch;
  const base: Record<string, Json> =
    typeof target === 'object' && target !== null && !Array.isArray(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete base[key];
    else base[key] = mergePatch(base[key] ?? null, value);
  }
  return base;
}

/** What the node does with an answer it is about to send. */
export type AnswerFate = 'send' | 'drop-connection' | 'hold';

export interface FakeFaults {
  /** Answer NOT_LEADER to this many more requests (not watch/unwatch); Infinity: always. */
  notLeader: number;
  /** Answer REMOVED (this node left the cluster) to every request but watch/unwatch. */
  removed: boolean;
  /** For this many more writes: apply, then drop the connection instead of answering. */
  dropAfterApply: number;
  /** Keep every answer until releaseHeld(). */
  hold: boolean;
  /** Watches with fromRevision replay this many revisions too early (the client must drop the repeats). */
  replayOverlap: number;
  /** Drop every new connection as soon as it is accepted. */
  refuseConnections: boolean;
  /** Decides each answer's fate (after the faults above); runs after a write applied. */
  beforeAnswer: ((request: Fields, outcome: Outcome) => AnswerFate) | undefined;
}

interface WatchSub {
  readonly realm: string;
  readonly prefix: string;
}

/** One fake node: a WebSocketServer on 127.0.0.1 speaking /v1/ws over a FakeCluster. */
export class FakeNode {
  /** Every request received, in order, with the number of the connection it came on. */
  readonly received: { readonly request: Fields; readonly connection: number }[] = [];
  readonly faults: FakeFaults = {
    notLeader: 0,
    removed: false,
    dropAfterApply: 0,
    hold: false,
    replayOverlap: 0,
    refuseConnections: false,
    beforeAnswer: undefined,
  };
  /** Connections accepted so far. */
  connectionCount = 0;
  private readonly sockets = new Set<WebSocket>();
  private readonly held: (() => void)[] = [];
  private readonly watches = new Map<WebSocket, Map<number, WatchSub>>();
  private nextWatch = 1;
  /** The leader this node names in its status ('' for none); undefined: itself. */
  leaderName: string | undefined;
  private readonly unsubscribe: () => void;
  private stopped = false;

  private constructor(
    readonly cluster: FakeCluster,
    readonly name: string,
    private readonly server: WebSocketServer,
  ) {
    this.unsubscribe = cluster.onCommit((entry) => this.publish(entry));
    server.on('connection', (socket) => this.accept(socket));
  }

  static async start(cluster: FakeCluster, name = 'fake'): Promise<FakeNode> {
    const server = new WebSocketServer({ host: '127.0.0.1', port: 0, path: '/v1/ws' });
    await new Promise<void>((resolve, reject) => {
      server.once('listening', resolve);
      server.once('error', reject);
    });
    return new FakeNode(cluster, name, server);
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get openConnections(): number {
    return this.sockets.size;
  }

  /** Watches currently subscribed on this node. */
  get watchCount(): number {
    let count = 0;
    for (const subs of this.watches.values()) count += subs.size;
    return count;
  }

  requests(op: string): Fields[] {
    return this.received.filter((r) => r.request.op === op).map((r) => r.request);
  }

  /** Sends the held answers (in the order given: as held, or reversed). */
  releaseHeld(order: 'fifo' | 'reverse' = 'fifo'): void {
    this.faults.hold = false;
    const held = this.held.splice(0);
    if (order === 'reverse') held.reverse();
    for (const send of held) send();
  }

  get heldCount(): number {
    return this.held.length;
  }

  /** Sends `data` as is to every connection (text, or binary for a Buffer). */
  sendRaw(data: string | Buffer): void {
    for (const socket of this.sockets) socket.send(data);
  }

  /** Ends every watch on this node with `error`, announced as watchEnded. */
  endWatches(error: WsError): void {
    for (const [socket, subs] of this.watches) {
      for (const id of subs.keys()) socket.send(JSON.stringify({ type: 'watchEnded', watch: id, error }));
      subs.clear();
    }
  }

  /** Closes every connection with a close frame carrying `code` (1001: the node is going away). */
  closeConnections(code: number): void {
    for (const socket of this.sockets) socket.close(code, 'going away');
  }

  /** Drops every connection (the server keeps listening). */
  dropConnections(): void {
    for (const socket of this.sockets) socket.terminate();
  }

  /** Drops every connection and stops listening; the port refuses from now on. Idempotent. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.unsubscribe();
    this.dropConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(socket: WebSocket): void {
    const connection = ++this.connectionCount;
    if (this.faults.refuseConnections) {
      socket.terminate();
      return;
    }
    this.sockets.add(socket);
    this.watches.set(socket, new Map());
    socket.on('error', () => {});
    socket.on('close', () => {
      this.sockets.delete(socket);
      this.watches.delete(socket);
    });
    socket.on('message', (data, isBinary) => {
      if (isBinary) return;
      let request: Fields;
      try {
        request = JSON.parse(String(data)) as Fields;
      } catch {
        socket.send(
          JSON.stringify({ type: 'error', error: { code: 'INVALID_ARGUMENT', message: 'not JSON' } }),
        );
        return;
      }
      this.received.push({ request, connection });
      this.handle(socket, request);
    });
  }

  private handle(socket: WebSocket, request: Fields): void {
    const id = request.id;
    const op = request.op as string;
    if (op === 'unwatch') {
      this.watches.get(socket)?.delete(request.watch as number);
      this.answer(socket, request, { ok: true, result: {} });
      return;
    }
    if (op !== 'watch' && this.faults.removed) {
      this.answer(socket, request, failure('REMOVED', `${this.name} was removed from the cluster`));
      return;
    }
    if (op !== 'watch' && this.faults.notLeader > 0) {
      this.faults.notLeader -= 1;
      this.answer(
        socket,
        request,
        failure('NOT_LEADER', `${this.name} is not the leader`, { leader: 'other' }),
      );
      return;
    }
    if (op === 'watch') {
      this.subscribe(socket, request);
      return;
    }
    let outcome: Outcome;
    if (op === 'get' || op === 'list') {
      outcome = this.cluster.read(request);
    } else if (op === 'status') {
      outcome = { ok: true, result: this.status() };
    } else if (WRITE_OPS.has(op) || op === 'createRealm' || op === 'openSession' || op === 'closeSession') {
      outcome = this.cluster.applyWrite(request);
      if (WRITE_OPS.has(op) && this.faults.dropAfterApply > 0) {
        this.faults.dropAfterApply -= 1;
        socket.terminate();
        return;
      }
    } else {
      outcome = failure('INVALID_ARGUMENT', `unknown op ${String(op)} (id ${String(id)})`);
    }
    this.answer(socket, request, outcome);
  }

  private answer(socket: WebSocket, request: Fields, outcome: Outcome): void {
    const fate = this.faults.beforeAnswer?.(request, outcome) ?? 'send';
    if (fate === 'drop-connection') {
      socket.terminate();
      return;
    }
    const send = () => socket.send(JSON.stringify({ id: request.id, ...outcome }));
    if (fate === 'hold' || this.faults.hold) this.held.push(send);
    else send();
  }

  private subscribe(socket: WebSocket, request: Fields): void {
    const realm = request.realm as string;
    const prefix = (request.prefix as string | undefined) ?? '';
    const from = (request.fromRevision as number | undefined) ?? this.cluster.revision + 1;
    if (from <= this.cluster.compactedThrough) {
      this.answer(
        socket,
        request,
        failure('COMPACTED', `revision ${from} is compacted`, { revision: this.cluster.revision }),
      );
      return;
    }
    const watch = this.nextWatch++;
    this.answer(socket, request, { ok: true, result: { watch, revision: this.cluster.revision } });
    const replayFrom =
      request.fromRevision === undefined ? from : Math.max(1, from - this.faults.replayOverlap);
    const sub: WatchSub = { realm, prefix };
    for (const entry of this.cluster.log) {
      if (entry.revision >= replayFrom) this.deliver(socket, watch, sub, entry);
    }
    this.watches.get(socket)?.set(watch, sub);
  }

  private publish(entry: LogEntry): void {
    for (const [socket, subs] of this.watches) {
      for (const [watch, sub] of subs) this.deliver(socket, watch, sub, entry);
    }
  }

  private deliver(socket: WebSocket, watch: number, sub: WatchSub, entry: LogEntry): void {
    if (entry.realm !== sub.realm) return;
    const events = entry.events.filter((e) => e.key.startsWith(sub.prefix));
    if (events.length > 0) socket.send(JSON.stringify({ type: 'events', watch, events }));
  }

  private status(): Fields {
    const leader = this.leaderName ?? this.name;
    return {
      name: this.name,
      id: `peer-${this.name}`,
      role: 'voter',
      state: leader === this.name ? 'leader' : 'follower',
      leader,
      term: 1,
      commitIndex: this.cluster.revision,
      appliedIndex: this.cluster.revision,
      revision: this.cluster.revision,
      members: [],
    };
  }
}
