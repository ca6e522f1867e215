// The WebSocket API at /v1/ws: each request's fields decoded into an operation for ClientApi and answered with its id, plus watches.

import { EdgeError, type EdgeSocket, type EdgeWebSocketHandler, type Logger } from '../net/index.js';
import type { Compare, DocOp, Json, SessionRef } from '../storage/index.js';
import {
  type ApiAnswer,
  type ApiOp,
  apiError,
  consistencyOf,
  count,
  errorBody,
  flag,
  invalid,
  nonEmptyString,
  OPEN_SESSION,
  optionalString,
  requiredString,
  STATUS,
  sessionRef,
} from './api-ops.js';
import { allows, authorize, OPEN, type Principal } from './auth.js';
import type { ClientApi } from './client-api.js';
import { tokenOf } from './http-api.js';
import type { NodeMetrics } from './metrics.js';
import type { SubscribeResult, Subscription, Watches } from './watch-hub.js';
import { type RequestId, WS_MAX_INFLIGHT, WS_MAX_WATCHES, WS_PATH, type WsError } from './ws-protocol.js';

/** A watch of a connection, with the realm its caller needs read on. */
interface Watch {
  readonly sub: Subscription;
  readonly realm: string;
}

/** What one connection holds. */
interface Connection {
  inflight: number;
  /** Watch requests between their limit check and their registration. */
  startingWatches: number;
  readonly watches: Map<number, Watch>;
  /** The token its requests carry: the upgrade's Authorization header, or an `auth` op's. */
  token: string | undefined;
  /** The socket, while the connection holds watches (they are re-checked; see `watching`). */
  socket: EdgeSocket | undefined;
}

/** How often a connection's watches are checked against revocations and grants taken away. */
const WATCH_RECHECK_MS = 500;

type Fields = Readonly<Record<string, unknown>>;

const MAX_ID_CHARS = 128;

/**
 * The /v1/ws handler (ws-protocol.ts describes the messages). Every request is answered once;
 * data operations run on `api` as their HTTP routes do (same checks, codes and results), so
 * the two APIs cannot drift apart. Watches go through `watches`. `_service` is not used: it is
 * kept for node.ts's call (status is an operation of `api`).
 */
export function webSocketApi(
  api: ClientApi,
  watches: Watches,
  logger: Logger,
  metrics?: Pick<NodeMetrics, 'wsAnswered'>,
): EdgeWebSocketHandler {
  const connectionOf = (socket: EdgeSocket): Connection => {
    if (socket.state === undefined) {
      socket.state = {
        inflight: 0,
        startingWatches: 0,
        watches: new Map(),
        token: tokenOf(socket),
        socket: undefined,
      } satisfies Connection;
    }
    return socket.state as Connection;
  };

  /** Answers request `id` of `socket`; an unexpected failure is logged, never sent. */
  const reply = (socket: EdgeSocket, id: RequestId, op: string, answer: ApiAnswer): void => {
    if (answer.ok) {
      // A cut-off satellite's stale read says so beside the result (`conclave-stale` over HTTP).
      const stale = 'read' in answer ? answer.read?.stale : undefined;
      if (stale?.cutOff) {
        socket.send({
          id,
          ok: true,
          result: answer.result,
          stale: { cutOff: true, leaderSilenceMs: stale.leaderSilenceMs ?? null },
        });
      } else socket.send({ id, ok: true, result: answer.result });
      return;
    }
    if ('unexpected' in answer) {
      const { unexpected } = answer;
      logger.error('ws_request_failed', {
        op,
        error: unexpected instanceof Error ? unexpected.message : String(unexpected),
      });
    }
    socket.send({ id, ok: false, error: errorBody(answer.error) });
  };

  /** Runs one request and answers it (a watch answers itself, before its first events). */
  const serve = async (socket: EdgeSocket, id: RequestId, op: string, fields: Fields): Promise<void> => {
    if (metrics === undefined) {
      await serveOne(socket, id, op, fields);
      return;
    }
    const started = performance.now();
    const code = await serveOne(socket, id, op, fields);
    metrics.wsAnswered(
      KNOWN_OPS.has(op) ? op : 'unknown',
      code ?? 'OK',
      (performance.now() - started) / 1000,
    );
  };

  /** serve(), answering the error code (undefined for a success; a watch counts as its answer). */
  const serveOne = async (
    socket: EdgeSocket,
    id: RequestId,
    op: string,
    fields: Fields,
  ): Promise<string | undefined> => {
    let answer: ApiAnswer;
    try {
      const connection = connectionOf(socket);
      if (op === 'auth') {
        answer = await authenticate(connection, fields);
      } else {
        // Who asks comes first: without a valid token a caller learns nothing, not even a 400.
        const caller = await api.caller(connection.token);
        if (op === 'watch') {
          await watch(socket, connection, id, fields, caller);
          return undefined;
        }
        answer =
          op === 'unwatch' ? unwatch(connection, fields) : await api.runAs(caller, decodeRequest(op, fields));
      }
    } catch (error) {
      answer = api.failure(error);
    }
    reply(socket, id, op, answer);
    return answer.ok ? undefined : answer.error.code;
  };

  /** `{op: "auth", token}`: the token this connection's later requests carry, checked now. */
  const authenticate = async (connection: Connection, fields: Fields): Promise<ApiAnswer> => {
    allowOnly(fields, ['token']);
    const token = requiredString('token', fields.token);
    const caller = await api.caller(token);
    connection.token = token;
    const result = { user: caller.user, clusterAdmin: caller.clusterAdmin };
    return { ok: true, result } as unknown as ApiAnswer;
  };

  const unwatch = (connection: Connection, fields: Fields): ApiAnswer => {
    allowOnly(fields, ['watch']);
    const watchId = fields.watch;
    const watch = typeof watchId === 'number' ? connection.watches.get(watchId) : undefined;
    if (watch === undefined) {
      throw new EdgeError('NOT_FOUND', `no watch ${JSON.stringify(watchId)} on this connection`);
    }
    watch.sub.cancel();
    connection.watches.delete(watch.sub.id);
    stopRecheckIfIdle(connection);
    return EMPTY_RESULT;
  };

  /*
   * Connections holding watches, re-checked together by one timer every WATCH_RECHECK_MS (not a
   * timer each: every timer firing wakes the process, and a node holds many watching sockets).
   */
  const watching = new Set<Connection>();
  let recheckTimer: ReturnType<typeof setInterval> | undefined;
  const recheckAll = (): void => {
    for (const connection of watching) {
      const socket = connection.socket;
      if (socket !== undefined) recheck(socket, connection).catch(() => undefined);
    }
  };
  const startRecheck = (socket: EdgeSocket, connection: Connection): void => {
    connection.socket = socket;
    watching.add(connection);
    if (recheckTimer === undefined) {
      recheckTimer = setInterval(recheckAll, WATCH_RECHECK_MS);
      recheckTimer.unref();
    }
  };
  const stopRecheckIfIdle = (connection: Connection): void => {
    if (connection.watches.size > 0) return;
    connection.socket = undefined;
    watching.delete(connection);
    if (watching.size === 0 && recheckTimer !== undefined) {
      clearInterval(recheckTimer);
      recheckTimer = undefined;
    }
  };

  /** Ends the watches whose caller may no longer read their realm (token revoked or expired, grant gone). */
  const recheck = async (socket: EdgeSocket, connection: Connection): Promise<void> => {
    let caller: Principal | undefined;
    let refusal: WsError | undefined;
    try {
      caller = await api.caller(connection.token);
    } catch (error) {
      const failed = api.failure(error);
      refusal = errorBody(failed.error);
    }
    for (const [watchId, watch] of [...connection.watches]) {
      const need = { kind: 'realm', realm: watch.realm, level: 'read' } as const;
      if (caller !== undefined && allows(caller, need)) continue;
      let error = refusal;
      if (error === undefined) {
        try {
          authorize(caller ?? OPEN, need);
        } catch (denied) {
          error = errorBody(api.failure(denied).error);
        }
      }
      watch.sub.cancel();
      connection.watches.delete(watchId);
      socket.send({ type: 'watchEnded', watch: watchId, error });
    }
    stopRecheckIfIdle(connection);
  };

  /** Subscribes and answers; throws EdgeError for a bad request. */
  const watch = async (
    socket: EdgeSocket,
    connection: Connection,
    id: RequestId,
    fields: Fields,
    caller: Principal,
  ): Promise<void> => {
    allowOnly(fields, ['realm', 'prefix', 'fromRevision']);
    const realm = requiredString('realm', fields.realm);
    authorize(caller, { kind: 'realm', realm, level: 'read' });
    const prefix = optionalString('prefix', fields.prefix) ?? '';
    const from = fields.fromRevision;
    if (from !== undefined && (!Number.isSafeInteger(from) || (from as number) < 1)) {
      throw invalid(`fromRevision must be an integer >= 1, got ${JSON.stringify(from)}`);
    }
    if (connection.watches.size + connection.startingWatches >= WS_MAX_WATCHES) {
      throw invalid(`a connection holds at most ${WS_MAX_WATCHES} watches`);
    }
    let watchId = 0;
    connection.startingWatches++;
    let result: SubscribeResult;
    try {
      result = await watches.subscribe(realm, prefix, from as number | undefined, {
        deliver: (events) => socket.send({ type: 'events', watch: watchId, events }),
        end: (error) => {
          connection.watches.delete(watchId);
          stopRecheckIfIdle(connection);
          socket.send({ type: 'watchEnded', watch: watchId, error });
        },
        get backlogBytes() {
          return socket.bufferedBytes;
        },
      });
    } finally {
      connection.startingWatches--;
    }
    if (!result.ok) {
      socket.send({ id, ok: false, error: result.error });
      return;
    }
    const sub = result.subscription;
    watchId = sub.id;
    if (!socket.open) {
      sub.cancel();
      return;
    }
    connection.watches.set(sub.id, { sub, realm });
    startRecheck(socket, connection);
    socket.send({ id, ok: true, result: { watch: sub.id, revision: sub.revision } });
    sub.start();
  };

  return {
    path: WS_PATH,
    message(socket, message) {
      if (typeof message !== 'object' || message === null || Array.isArray(message)) {
        socket.send({
          type: 'error',
          error: errorBody(apiError('INVALID_ARGUMENT', 'a request must be a JSON object')),
        });
        return;
      }
      const { id, op, ...fields } = message as Record<string, unknown>;
      const idOk =
        (typeof id === 'string' && id.length > 0 && id.length <= MAX_ID_CHARS) ||
        (typeof id === 'number' && Number.isSafeInteger(id));
      if (!idOk) {
        socket.send({
          type: 'error',
          error: errorBody(
            apiError(
              'INVALID_ARGUMENT',
              `a request needs an "id": an integer or a string of 1..${MAX_ID_CHARS} characters`,
            ),
          ),
        });
        return;
      }
      const requestId = id as RequestId;
      const connection = connectionOf(socket);
      if (connection.inflight >= WS_MAX_INFLIGHT) {
        const text = `more than ${WS_MAX_INFLIGHT} requests in flight on this connection; retry`;
        socket.send({ id: requestId, ok: false, error: errorBody(apiError('UNAVAILABLE', text)) });
        return;
      }
      if (typeof op !== 'string') {
        const error = errorBody(apiError('INVALID_ARGUMENT', 'a request needs an "op"'));
        socket.send({ id: requestId, ok: false, error });
        return;
      }
      connection.inflight++;
      serve(socket, requestId, op, fields)
        .catch((error: unknown) => {
          // serve() answers everything it runs; only sending can fail here.
          logger.error('ws_request_failed', {
            op,
            error: error instanceof Error ? error.message : String(error),
          });
        })
        .finally(() => {
          connection.inflight--;
        });
    },
    close(socket) {
      const connection = socket.state as Connection | undefined;
      if (connection === undefined) return;
      for (const watch of connection.watches.values()) watch.sub.cancel();
      connection.watches.clear();
      stopRecheckIfIdle(connection);
    },
  };
}

/** The ops counted by name in metrics (others count as `unknown`, so a client cannot mint labels). */
const KNOWN_OPS: ReadonlySet<string> = new Set([
  'get',
  'list',
  'put',
  'patch',
  'delete',
  'txn',
  'createRealm',
  'openSession',
  'closeSession',
  'status',
  'route',
  'watch',
  'unwatch',
  'auth',
]);

const EMPTY_RESULT: ApiAnswer = Object.freeze({ ok: true, result: Object.freeze({}) });

/** The fields each operation takes (besides id and op). */
const FIELDS = {
  get: ['realm', 'key', 'consistency'],
  list: ['realm', 'prefix', 'after', 'limit', 'consistency'],
  put: ['realm', 'key', 'value', 'ifRevision', 'ifAbsent', 'session'],
  patch: ['realm', 'key', 'patch', 'ifRevision', 'session'],
  delete: ['realm', 'key', 'ifRevision', 'session'],
  txn: ['realm', 'compares', 'success', 'failure', 'session'],
  createRealm: ['realm', 'settings', 'session', 'group'],
  openSession: ['realm'],
  closeSession: ['session', 'realm'],
  status: [],
  route: ['realm'],
} as const satisfies Readonly<Record<string, readonly string[]>>;

/** A request's fields as an operation; throws EdgeError for an unknown op or a bad field. */
function decodeRequest(op: string, fields: Fields): ApiOp {
  if (!Object.hasOwn(FIELDS, op)) throw invalid(`unknown op ${JSON.stringify(op)}`);
  const name = op as keyof typeof FIELDS;
  allowOnly(fields, FIELDS[name]);
  switch (name) {
    case 'get':
      return {
        op: name,
        realm: requiredString('realm', fields.realm),
        key: keyField(fields),
        consistency: consistencyOf(fields.consistency),
      };
    case 'list':
      return {
        op: name,
        realm: requiredString('realm', fields.realm),
        prefix: optionalString('prefix', fields.prefix),
        after: nonEmptyString('after', fields.after),
        limit: count('limit', fields.limit),
        consistency: consistencyOf(fields.consistency),
      };
    case 'put':
      if (!('value' in fields)) throw invalid('put needs a "value"');
      return {
        op: name,
        realm: requiredString('realm', fields.realm),
        key: keyField(fields),
        value: fields.value as Json,
        ifRevision: count('ifRevision', fields.ifRevision),
        ifAbsent: flag('ifAbsent', fields.ifAbsent),
        session: sessionField(fields.session),
      };
    case 'patch':
      if (!('patch' in fields)) throw invalid('patch needs a "patch"');
      return {
        op: name,
        realm: requiredString('realm', fields.realm),
        key: keyField(fields),
        patch: fields.patch as Json,
        ifRevision: count('ifRevision', fields.ifRevision),
        session: sessionField(fields.session),
      };
    case 'delete':
      return {
        op: name,
        realm: requiredString('realm', fields.realm),
        key: keyField(fields),
        ifRevision: count('ifRevision', fields.ifRevision),
        session: sessionField(fields.session),
      };
    case 'txn':
      // validateCommand checks compares, success and failure.
      return {
        op: name,
        realm: requiredString('realm', fields.realm),
        compares: fields.compares as readonly Compare[],
        success: fields.success as readonly DocOp[],
        failure: fields.failure as readonly DocOp[] | undefined,
        session: sessionField(fields.session),
      };
    case 'createRealm':
      if (
        fields.group !== undefined &&
        fields.group !== 'auto' &&
        (!Number.isSafeInteger(fields.group) || (fields.group as number) < 1)
      ) {
        throw invalid(
          `"group" must be a group id (an integer from 1) or "auto", got ${JSON.stringify(fields.group)}`,
        );
      }
      return {
        op: name,
        realm: requiredString('realm', fields.realm),
        settings: fields.settings,
        session: sessionField(fields.session),
        ...(fields.group === undefined ? {} : { group: fields.group as number | 'auto' }),
      };
    case 'openSession':
      return fields.realm === undefined
        ? OPEN_SESSION
        : { op: name, realm: requiredString('realm', fields.realm) };
    case 'closeSession': {
      const session = objectField(fields.session, 'closeSession needs "session": {"id", "seq"}');
      allowOnly(session, ['id', 'seq'], 'session');
      const ref = sessionRef(
        count(SESSION_FIELDS.id, session.id),
        count(SESSION_FIELDS.seq, session.seq),
        undefined,
        SESSION_FIELDS,
      );
      if (ref === undefined) throw invalid('closeSession needs "session": {"id", "seq"}');
      return {
        op: name,
        session: ref,
        ...(fields.realm === undefined ? {} : { realm: requiredString('realm', fields.realm) }),
      };
    }
    case 'status':
      return STATUS;
    case 'route':
      return { op: name, realm: requiredString('realm', fields.realm) };
  }
}

/** The key: storage checks it (a write's in validateCommand, a read's in the state store); an empty one is refused at once. */
function keyField(fields: Fields): string {
  const key = requiredString('key', fields.key);
  if (key === '') throw invalid('key must not be empty');
  return key;
}

const SESSION_FIELDS = { id: 'session.id', seq: 'session.seq', ack: 'session.ack' } as const;

/** A write's `session: {id, seq, ack?}`, or undefined when absent. */
function sessionField(value: unknown): SessionRef | undefined {
  if (value === undefined) return undefined;
  const session = objectField(value, 'session must be {"id", "seq", "ack"?}');
  allowOnly(session, ['id', 'seq', 'ack'], 'session');
  return sessionRef(
    count(SESSION_FIELDS.id, session.id),
    count(SESSION_FIELDS.seq, session.seq),
    count(SESSION_FIELDS.ack, session.ack),
    SESSION_FIELDS,
  );
}

function objectField(value: unknown, refusal: string): Fields {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalid(refusal);
  return value as Fields;
}

function allowOnly(fields: Fields, allowed: readonly string[], what = 'this op'): void {
  for (const name of Object.keys(fields)) {
    if (!allowed.includes(name)) {
      throw invalid(
        `${what} has an unknown field ${JSON.stringify(name)}; expected ${allowed.join(', ') || 'none'}`,
      );
    }
  }
}
