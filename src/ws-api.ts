// The WebSocket API at /v1/ws: requests with ids answered through the HTTP API's operations, plus watches.

import type {
  EdgeRequest,
  EdgeResponse,
  EdgeSocket,
  EdgeWebSocketHandler,
  HttpMethod,
  Logger,
} from '../net/index.js';
import type { HttpApi } from './http-api.js';
import type { KvService } from './kv-service.js';
import type { SubscribeResult, Subscription, Watches } from './watch-hub.js';
import { wsError } from './watch-hub.js';
import { type RequestId, WS_MAX_INFLIGHT, WS_MAX_WATCHES, WS_PATH, type WsError } from './ws-protocol.js';

/** What one connection holds. */
interface Connection {
  inflight: number;
  /** Watch requests between their limit check and their registration. */
  startingWatches: number;
  readonly watches: Map<number, Subscription>;
  readonly abort: AbortController;
}

type Fields = Readonly<Record<string, unknown>>;

class Refusal extends Error {
  constructor(readonly error: WsError) {
    super(error.message);
  }
}

function invalid(message: string): Refusal {
  return new Refusal(wsError('INVALID_ARGUMENT', message, false));
}

const MAX_ID_CHARS = 128;

/**
 * The /v1/ws handler (ws-protocol.ts describes the messages). Every request is answered once;
 * data operations go through `api` exactly as their HTTP routes do (same checks, codes and
 * bodies), so the two APIs cannot drift apart.
 */
export function webSocketApi(
  api: HttpApi,
  service: KvService,
  watches: Watches,
  logger: Logger,
): EdgeWebSocketHandler {
  const connectionOf = (socket: EdgeSocket): Connection => {
    if (socket.state === undefined) {
      socket.state = {
        inflight: 0,
        startingWatches: 0,
        watches: new Map(),
        abort: new AbortController(),
      } satisfies Connection;
    }
    return socket.state as Connection;
  };

  const answer = (socket: EdgeSocket, id: RequestId, response: EdgeResponse): void => {
    if (response.status >= 200 && response.status < 300)
      socket.send({ id, ok: true, result: response.body ?? {} });
    else socket.send({ id, ok: false, error: response.body });
  };

  const run = async (socket: EdgeSocket, id: RequestId, op: string, fields: Fields): Promise<void> => {
    const connection = connectionOf(socket);
    if (op === 'watch') return watch(socket, connection, id, fields);
    if (op === 'unwatch') {
      allowOnly(fields, ['watch']);
      const watchId = fields.watch;
      const sub = typeof watchId === 'number' ? connection.watches.get(watchId) : undefined;
      if (sub === undefined)
        throw new Refusal(wsError('NOT_FOUND', `no watch ${JSON.stringify(watchId)} on this connection`));
      sub.cancel();
      connection.watches.delete(sub.id);
      socket.send({ id, ok: true, result: {} });
      return;
    }
    if (op === 'status') {
      allowOnly(fields, []);
      socket.send({ id, ok: true, result: service.status() });
      return;
    }
    const call = httpCall(op, fields, socket, connection.abort.signal);
    answer(
      socket,
      id,
      await api.guard(call.request.method, call.pattern, () => call.handler(api, call.request)),
    );
  };

  const watch = async (
    socket: EdgeSocket,
    connection: Connection,
    id: RequestId,
    fields: Fields,
  ): Promise<void> => {
    allowOnly(fields, ['realm', 'prefix', 'fromRevision']);
    const realm = stringField(fields, 'realm');
    const prefix = fields.prefix === undefined ? '' : stringField(fields, 'prefix');
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
          socket.send({ type: 'watchEnded', watch: watchId, error });
        },
        get backlogBytes() {
          return socket.bufferedBytes;
        },
      });
    } finally {
      connection.startingWatches--;
    }
    if (!result.ok) throw new Refusal(result.error);
    const sub = result.subscription;
    watchId = sub.id;
    if (!socket.open) {
      sub.cancel();
      return;
    }
    connection.watches.set(sub.id, sub);
    socket.send({ id, ok: true, result: { watch: sub.id, revision: sub.revision } });
    sub.start();
  };

  return {
    path: WS_PATH,
    message(socket, message) {
      if (typeof message !== 'object' || message === null || Array.isArray(message)) {
        socket.send({
          type: 'error',
          error: wsError('INVALID_ARGUMENT', 'a request must be a JSON object', false),
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
          error: wsError(
            'INVALID_ARGUMENT',
            `a request needs an "id": an integer or a string of 1..${MAX_ID_CHARS} characters`,
            false,
          ),
        });
        return;
      }
      const requestId = id as RequestId;
      const connection = connectionOf(socket);
      if (connection.inflight >= WS_MAX_INFLIGHT) {
        socket.send({
          id: requestId,
          ok: false,
          error: wsError(
            'UNAVAILABLE',
            `more than ${WS_MAX_INFLIGHT} requests in flight on this connection; retry`,
          ),
        });
        return;
      }
      if (typeof op !== 'string') {
        socket.send({
          id: requestId,
          ok: false,
          error: wsError('INVALID_ARGUMENT', 'a request needs an "op"', false),
        });
        return;
      }
      connection.inflight++;
      run(socket, requestId, op, fields)
        .catch((error: unknown) => {
          if (error instanceof Refusal) {
            socket.send({ id: requestId, ok: false, error: error.error });
            return;
          }
          logger.error('ws_request_failed', {
            op,
            error: error instanceof Error ? error.message : String(error),
          });
          socket.send({ id: requestId, ok: false, error: wsError('INTERNAL', 'internal error', false) });
        })
        .finally(() => {
          connection.inflight--;
        });
    },
    close(socket) {
      const connection = socket.state as Connection | undefined;
      if (connection === undefined) return;
      connection.abort.abort();
      for (const sub of connection.watches.values()) sub.cancel();
      connection.watches.clear();
    },
  };
}

interface HttpCall {
  readonly pattern: string;
  readonly request: EdgeRequest;
  readonly handler: (api: HttpApi, request: EdgeRequest) => Promise<EdgeResponse> | EdgeResponse;
}

const KEY_OPS = new Set(['get', 'put', 'patch', 'delete']);
const SESSION_OPS = new Set(['put', 'patch', 'delete', 'txn', 'createRealm']);

/** A WebSocket request as the HTTP request its route expects. */
function httpCall(op: string, fields: Fields, socket: EdgeSocket, signal: AbortSignal): HttpCall {
  const query = new URLSearchParams();
  const headers: Record<string, string> = {};
  const params: Record<string, string> = {};
  let method: HttpMethod;
  let path: string;
  let pattern: string;
  let body: unknown;
  let handler: HttpCall['handler'];
  const setQuery = (name: string, value: unknown, kind: 'integer' | 'boolean' | 'string'): void => {
    if (value === undefined) return;
    const ok =
      kind === 'integer'
        ? Number.isSafeInteger(value)
        : kind === 'boolean'
          ? typeof value === 'boolean'
          : typeof value === 'string';
    if (!ok) {
      throw invalid(
        `${name} must be ${kind === 'integer' ? 'an integer' : `a ${kind}`}, got ${JSON.stringify(value)}`,
      );
    }
    query.set(name, String(value));
  };
  if (SESSION_OPS.has(op) && fields.session !== undefined) {
    const session = fields.session as Record<string, unknown> | null;
    if (typeof session !== 'object' || session === null)
      throw invalid('session must be {"id", "seq", "ack"?}');
    allowOnly(session, ['id', 'seq', 'ack'], 'session');
    for (const [name, header] of [
      ['id', 'conclave-session'],
      ['seq', 'conclave-seq'],
      ['ack', 'conclave-ack'],
    ] as const) {
      const value = session[name];
      if (value === undefined) continue;
      if (!Number.isSafeInteger(value) || (value as number) < 0) {
        throw invalid(`session.${name} must be a non-negative integer, got ${JSON.stringify(value)}`);
      }
      headers[header] = String(value);
    }
  }
  const realmPath = (): string => {
    const realm = stringField(fields, 'realm');
    params.realm = realm;
    return `/v1/realms/${encodeURIComponent(realm)}`;
  };
  switch (op) {
    case 'get':
    case 'put':
    case 'patch':
    case 'delete': {
      allowOnly(
        fields,
        op === 'get'
          ? ['realm', 'key', 'consistency']
          : op === 'put'
            ? ['realm', 'key', 'value', 'ifRevision', 'ifAbsent', 'session']
            : op === 'patch'
              ? ['realm', 'key', 'patch', 'ifRevision', 'session']
              : ['realm', 'key', 'ifRevision', 'session'],
      );
      path = `${realmPath()}/kv/${encodeURIComponent(stringField(fields, 'key'))}`;
      pattern = '/v1/realms/:realm/kv/*';
      setQuery('consistency', fields.consistency, 'string');
      setQuery('ifRevision', fields.ifRevision, 'integer');
      setQuery('ifAbsent', fields.ifAbsent, 'boolean');
      if (op === 'put') {
        if (!('value' in fields)) throw invalid('put needs a "value"');
        body = fields.value;
      }
      if (op === 'patch') {
        if (!('patch' in fields)) throw invalid('patch needs a "patch"');
        body = fields.patch;
      }
      method = op === 'get' ? 'GET' : op === 'put' ? 'PUT' : op === 'patch' ? 'PATCH' : 'DELETE';
      handler = (api, r) =>
        op === 'get' ? api.get(r) : op === 'put' ? api.put(r) : op === 'patch' ? api.patch(r) : api.delete(r);
      break;
    }
    case 'list':
      allowOnly(fields, ['realm', 'prefix', 'after', 'limit', 'consistency']);
      path = `${realmPath()}/kv`;
      pattern = '/v1/realms/:realm/kv';
      setQuery('prefix', fields.prefix, 'string');
      setQuery('after', fields.after, 'string');
      setQuery('limit', fields.limit, 'integer');
      setQuery('consistency', fields.consistency, 'string');
      method = 'GET';
      handler = (api, r) => api.list(r);
      break;
    case 'txn':
      allowOnly(fields, ['realm', 'compares', 'success', 'failure', 'session']);
      path = `${realmPath()}/txn`;
      pattern = '/v1/realms/:realm/txn';
      body = {
        compares: fields.compares,
        success: fields.success,
        ...(fields.failure === undefined ? {} : { failure: fields.failure }),
      };
      method = 'POST';
      handler = (api, r) => api.txn(r);
      break;
    case 'createRealm':
      allowOnly(fields, ['realm', 'session']);
      path = '/v1/realms';
      pattern = path;
      body = { name: stringField(fields, 'realm') };
      method = 'POST';
      handler = (api, r) => api.createRealm(r);
      break;
    case 'openSession':
      allowOnly(fields, []);
      path = '/v1/sessions';
      pattern = path;
      method = 'POST';
      handler = (api, r) => api.openSession(r);
      break;
    case 'closeSession': {
      allowOnly(fields, ['session']);
      const session = fields.session as Record<string, unknown> | undefined;
      if (typeof session !== 'object' || session === null)
        throw invalid('closeSession needs "session": {"id", "seq"}');
      const sessionId = session.id;
      if (!Number.isSafeInteger(sessionId)) throw invalid('session.id must be an integer');
      params.session = String(sessionId);
      allowOnly(session, ['id', 'seq'], 'session');
      setQuery('seq', session.seq, 'integer');
      path = `/v1/sessions/${params.session}`;
      pattern = '/v1/sessions/:session';
      method = 'DELETE';
      handler = (api, r) => api.closeSession(r);
      break;
    }
    default:
      throw invalid(`unknown op ${JSON.stringify(op)}`);
  }
  if (KEY_OPS.has(op) && fields.key === '') throw invalid('key must not be empty');
  return {
    pattern,
    handler,
    request: {
      method,
      path,
      query: query.toString(),
      params,
      headers,
      body,
      remoteAddress: socket.remoteAddress,
      signal,
    },
  };
}

function stringField(fields: Fields, name: string): string {
  const value = fields[name];
  if (typeof value !== 'string')
    throw invalid(`"${name}" must be a string, got ${JSON.stringify(value) ?? 'nothing'}`);
  return value;
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
