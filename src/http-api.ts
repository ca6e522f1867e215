// The client API's HTTP routes: each /v1 route, /healthz and /readyz decoded into an operation for ClientApi, and its answer encoded as a response.

/*
 * Routes (bodies are JSON; every success is 200 except POST /v1/realms, 201):
 *
 *   PUT    /v1/realms/{realm}/kv/{key}[?ifRevision=N | ?ifAbsent=true]   body: the document
 *            -> {"revision": N}
 *   GET    /v1/realms/{realm}/kv/{key}[?consistency=linearizable|stale]
 *            -> {"key", "value", "createRevision", "modRevision", "version"}
 *   PATCH  /v1/realms/{realm}/kv/{key}[?ifRevision=N]   body: a JSON merge patch (RFC 7386)
 *            -> {"revision": N}
 *   DELETE /v1/realms/{realm}/kv/{key}[?ifRevision=N]
 *            -> {"revision": N}
 *   GET    /v1/realms/{realm}/kv[?prefix=P][&limit=L][&after=K][&consistency=…]
 *            -> {"documents": [document…], "more": bool, "next": K | null, "revision": N}
 *               documents in key order; pass `next` as `after` for the following page
 *               (null when `more` is false)
 *   POST   /v1/realms/{realm}/txn   body: see TXN BODY below
 *            -> {"succeeded": bool, "revision": N, "results": [result…]}
 *   POST   /v1/realms   body: {"name": "realm-name", "settings"?: {"maxValueBytes"?: N}}
 *            -> 201 {"name", "revision"}
 *   GET    /v1/realms[?consistency=…]
 *            -> {"realms": ["default", …], "revision": N}
 *   POST   /v1/sessions[?realm=R]  -> {"session": N}: opens a client session (see SESSIONS) for
 *                 the writes to realm R (a session lives in one raft group: R's; default group 1)
 *   DELETE /v1/sessions/{N}?seq=S[&realm=R]  -> {}: closes it (S: the session's next sequence number)
 *   GET    /v1/status   -> the node's NodeStatus (kv-service.ts) as JSON
 *   GET    /healthz     -> {"status": "ok"}: the process answers
 *   GET    /readyz      -> {"ready": true}, or 503 UNAVAILABLE with "ready": false and "reason"
 *
 * Keys: everything after `/kv/`, slashes included, percent-decoded once. Clients should send
 * encodeURIComponent(key): a key with '/' then also survives clients that normalise `.` and
 * `..` path segments (fetch, browsers and curl do). A key that is exactly "." or ".." cannot
 * be addressed in a URL through such clients at all (WHATWG URLs treat %2E%2E as ".." too);
 * transactions reach it.
 *
 * TXN BODY: storage's txn operation (storage/commands.ts) without `type` and `realm`:
 *   {
 *     "compares": [ {"key": K, "target": "modRevision" | "createRevision" | "version",
 *                    "op": "eq" | "ne" | "lt" | "gt", "value": N}
 *                 | {"key": K, "target": "value", "op": "eq" | "ne", "value": <JSON>}
 *                 | {"key": K, "target": "exists", "op": "eq" | "ne", "value": true | false} ],
 *     "success":  [ {"type": "put", "key": K, "value": <JSON>, "ifRevision"?: N, "ifAbsent"?: true}
 *                 | {"type": "patch", "key": K, "patch": <JSON>, "ifRevision"?: N}
 *                 | {"type": "delete", "key": K, "ifRevision"?: N} ],
 *     "failure"?: [ same as success ]
 *   }
 * An absent key has revisions and version 0 and value null. If every compare holds, `success`
 * applies, otherwise `failure` (if any), all at one revision; a branch that cannot apply in
 * full (an op's ifRevision does not match, a patch or delete of a missing key) fails the whole
 * request with that op's error and changes nothing. `results[i]` answers the branch's op i:
 * {"type": "put", "key", "createRevision", "modRevision", "version"} for a put or a patch,
 * {"type": "delete", "key", "prevModRevision"} for a delete. A compare that does not hold is
 * not an error: the answer is 200 with "succeeded": false.
 *
 * READ HEADERS: every read answers `conclave-consistency` (linearizable | stale) and
 * `conclave-revision` (the revision it was served at). A stale read also answers how far
 * behind it may be: `conclave-applied-index` (this node's applied index),
 * `conclave-leader-commit-index` (the leader's commit index as this node last heard it) and
 * `conclave-lag-entries` (their difference, at least 0). A satellite that has not heard from
 * the leader for over an election timeout adds `conclave-stale: true` and
 * `conclave-leader-silence-ms` (since it last did); it refuses linearizable reads and writes
 * with UNAVAILABLE at once meanwhile. Headers, so that the documented body shapes stay exactly
 * as they are.
 *
 * SESSIONS (Raft dissertation §6.3): a write (PUT, PATCH, DELETE, txn) with the headers
 * `conclave-session: N` and `conclave-seq: S` (and optionally `conclave-ack: A`) applies at most
 * once per (N, S): sent again with the same S, at any node, it answers the first attempt's
 * result. S starts at 1 and is never reused in a session; A says every answer up to A has been
 * received, so the cluster may forget them. A session idle past the cluster's session TTL is
 * gone: its writes answer 410 SESSION_EXPIRED, and a retried write's fate is then unknown.
 * The WebSocket API (ws-protocol.ts) carries the same triple as `session: {id, seq, ack}`.
 *
 * ERRORS: `{"code", "message", "retryable", ...details}`, status and `retryable` from the one
 * table, ERROR_CODES in error-codes.ts (REMOVED, 410: this node was removed from the cluster,
 * so retry only at another one); NOT_LEADER and
 * NO_LEADER carry `leader` (a node name) when one is known; a write that may still apply
 * (its fate unknown, e.g. TIMEOUT) carries `"indeterminate": true`; COMPACTED carries the
 * current `revision`. Bad query values, bodies and keys are refused here, before anything is
 * proposed, so a refused request changes nothing and costs no log entry.
 */

import type { EdgeRequest, EdgeResponse, EdgeRoute, HttpMethod } from '../net/index.js';
import type { Compare, DocOp, Json, SessionRef } from '../storage/index.js';
import {
  type ApiAnswer,
  type ApiOp,
  errorBody,
  HEALTH,
  invalid,
  OPEN_SESSION,
  READY,
  type ReadPoint,
  requiredString,
  STATUS,
  sessionRef,
} from './api-ops.js';
import { authorize, type Need, OPEN, type Principal } from './auth.js';
import { type ClientApi, type ClientApiOptions, newClientApi } from './client-api.js';
import { errorStatus } from './error-codes.js';
import {
  booleanParam,
  consistencyParam,
  decimalCount,
  integerParam,
  keyFromPath,
  nonEmptyParam,
  parseQuery,
} from './http-query.js';
import type { Consistency, KvService } from './kv-service.js';
import { bearerToken } from './tokens.js';

/**
 * The edge routes of the client API (see the table above), answering from `service`. Every
 * handler answers; none throws: bad input, command failures and the service's thrown errors
 * all become the documented error bodies.
 */
export function buildHttpRoutes(service: KvService, options: ClientApiOptions): EdgeRoute[] {
  return httpRoutes(newClientApi(service, options));
}

/** How one route turns a request into an operation. Throws EdgeError for a bad request. */
type Decoder = (request: EdgeRequest) => ApiOp;

/** The routes of the table above on `api`. */
export function httpRoutes(api: ClientApi): EdgeRoute[] {
  const route = (
    method: HttpMethod,
    pattern: string,
    body: EdgeRoute['body'],
    decode: Decoder,
    okStatus = 200,
  ): EdgeRoute => ({
    method,
    pattern,
    body,
    handler: async (request) => {
      let op: ApiOp;
      let principal: Principal;
      try {
        // Who asks comes first: a caller without a valid token learns nothing, not even a 400.
        principal = OPEN_PATHS.has(pattern) ? OPEN : await api.caller(tokenOf(request));
        op = decode(request);
      } catch (error) {
        return failureResponse(api, api.failure(error), method, pattern);
      }
      const answer = await api.runAs(principal, op);
      if (!answer.ok) return failureResponse(api, answer, method, pattern);
      return answer.read === undefined
        ? { status: okStatus, body: answer.result }
        : { status: okStatus, headers: readHeaders(answer.read, consistencyOfRead(op)), body: answer.result };
    },
  });
  return [
    route('PUT', '/v1/realms/:realm/kv/*', 'json', decodePut),
    route('GET', '/v1/realms/:realm/kv/*', 'none', decodeGet),
    route('PATCH', '/v1/realms/:realm/kv/*', 'json', decodePatch),
    route('DELETE', '/v1/realms/:realm/kv/*', 'none', decodeDelete),
    route('GET', '/v1/realms/:realm/kv', 'none', decodeList),
    route('POST', '/v1/realms/:realm/txn', 'json', decodeTxn),
    route('POST', '/v1/realms', 'json', decodeCreateRealm, 201),
    route('GET', '/v1/realms', 'none', decodeRealms),
    route('POST', '/v1/sessions', 'none', decodeOpenSession),
    route('DELETE', '/v1/sessions/:session', 'none', decodeCloseSession),
    route('GET', '/v1/status', 'none', noQuery(STATUS)),
    route('GET', '/healthz', 'none', noQuery(HEALTH)),
    route('GET', '/readyz', 'none', noQuery(READY)),
  ];
}

/** Routes answered to anyone, with or without a token (liveness and readiness probes). */
const OPEN_PATHS: ReadonlySet<string> = new Set(['/healthz', '/readyz']);

/** The token a request carries (`Authorization: Bearer TOKEN`), or undefined. */
export function tokenOf(request: { readonly headers: Readonly<Record<string, string>> }): string | undefined {
  return bearerToken(request.headers.authorization);
}

/**
 * A route of another HTTP API on the edge (admin-api.ts, definition-api.ts) that answers what
 * its handler throws as the client API answers it: the same error bodies, statuses and logging.
 * The caller must have a valid token when the node requires one (UNAUTHENTICATED), and be
 * allowed what `need` says of the request (PERMISSION_DENIED) before the handler runs; the
 * handler gets the caller.
 */
export function guardedRoute(
  api: ClientApi,
  method: HttpMethod,
  pattern: string,
  body: EdgeRoute['body'],
  need: Need | ((request: EdgeRequest) => Need),
  handler: (request: EdgeRequest, caller: Principal) => Promise<EdgeResponse>,
): EdgeRoute {
  return {
    method,
    pattern,
    body,
    handler: async (request) => {
      try {
        const caller = await api.caller(tokenOf(request));
        authorize(caller, typeof need === 'function' ? need(request) : need);
        return await handler(request, caller);
      } catch (error) {
        return failureResponse(api, api.failure(error), method, pattern);
      }
    },
  };
}

// ---- Decoding ----

/** A route that takes no query parameters and always asks `op`. */
function noQuery(op: ApiOp): Decoder {
  return (request) => {
    parseQuery(request.query, []);
    return op;
  };
}

function decodePut(request: EdgeRequest): ApiOp {
  const params = parseQuery(request.query, ['ifRevision', 'ifAbsent']);
  return {
    op: 'put',
    realm: realmOf(request),
    key: keyFromPath(request.path),
    value: request.body as Json,
    ifRevision: integerParam(params, 'ifRevision'),
    ifAbsent: booleanParam(params, 'ifAbsent'),
    session: sessionOf(request),
  };
}

function decodePatch(request: EdgeRequest): ApiOp {
  const params = parseQuery(request.query, ['ifRevision']);
  return {
    op: 'patch',
    realm: realmOf(request),
    key: keyFromPath(request.path),
    patch: request.body as Json,
    ifRevision: integerParam(params, 'ifRevision'),
    session: sessionOf(request),
  };
}

function decodeDelete(request: EdgeRequest): ApiOp {
  const params = parseQuery(request.query, ['ifRevision']);
  return {
    op: 'delete',
    realm: realmOf(request),
    key: keyFromPath(request.path),
    ifRevision: integerParam(params, 'ifRevision'),
    session: sessionOf(request),
  };
}

function decodeGet(request: EdgeRequest): ApiOp {
  const consistency = consistencyParam(parseQuery(request.query, ['consistency']));
  return { op: 'get', realm: realmOf(request), key: keyFromPath(request.path), consistency };
}

function decodeList(request: EdgeRequest): ApiOp {
  const params = parseQuery(request.query, ['prefix', 'limit', 'after', 'consistency']);
  return {
    op: 'list',
    realm: realmOf(request),
    consistency: consistencyParam(params),
    prefix: params.get('prefix'),
    after: nonEmptyParam(params, 'after'),
    limit: integerParam(params, 'limit'),
  };
}

const TXN_FIELDS = ['compares', 'success', 'failure'] as const;

/** The body is storage's txn operation without `type` and `realm`; validateCommand checks its parts. */
function decodeTxn(request: EdgeRequest): ApiOp {
  parseQuery(request.query, []);
  const body = objectBody(request.body, 'the txn body', TXN_FIELDS);
  return {
    op: 'txn',
    realm: realmOf(request),
    compares: body.compares as readonly Compare[],
    success: body.success as readonly DocOp[],
    failure: body.failure as readonly DocOp[] | undefined,
    session: sessionOf(request),
  };
}

const REALM_FIELDS = ['name', 'settings', 'group'] as const;

function decodeCreateRealm(request: EdgeRequest): ApiOp {
  parseQuery(request.query, []);
  const body = objectBody(request.body, 'the realm body', REALM_FIELDS);
  if (body.name === undefined) throw invalid('the realm body needs a "name"');
  const group = body.group;
  if (group !== undefined && group !== 'auto' && (!Number.isSafeInteger(group) || (group as number) < 1)) {
    throw invalid(`"group" must be a group id (an integer from 1) or "auto", got ${JSON.stringify(group)}`);
  }
  return {
    op: 'createRealm',
    realm: requiredString('name', body.name),
    settings: body.settings,
    session: sessionOf(request),
    ...(group === undefined ? {} : { group: group as number | 'auto' }),
  };
}

function decodeRealms(request: EdgeRequest): ApiOp {
  return { op: 'realms', consistency: consistencyParam(parseQuery(request.query, ['consistency'])) };
}

const POSITIVE_DECIMAL = /^[1-9][0-9]*$/;

/** POST /v1/sessions[?realm=NAME]: a session for the writes to that realm (it lives in the realm's raft group). */
function decodeOpenSession(request: EdgeRequest): ApiOp {
  const realm = parseQuery(request.query, ['realm']).get('realm');
  return realm === undefined ? OPEN_SESSION : { op: 'openSession', realm };
}

function decodeCloseSession(request: EdgeRequest): ApiOp {
  const query = parseQuery(request.query, ['seq', 'realm']);
  const realm = query.get('realm');
  const seq = integerParam(query, 'seq');
  const text = request.params.session ?? '';
  const id = Number(text);
  if (!POSITIVE_DECIMAL.test(text) || !Number.isSafeInteger(id)) {
    throw invalid(`the session must be a positive integer, got ${JSON.stringify(request.params.session)}`);
  }
  if (seq === undefined) throw invalid('closing a session needs ?seq= (its next sequence number)');
  return { op: 'closeSession', session: { id, seq }, ...(realm === undefined ? {} : { realm }) };
}

const SESSION_HEADERS = { id: 'conclave-session', seq: 'conclave-seq', ack: 'conclave-ack' } as const;

/** The write's session from the `conclave-session`, `conclave-seq`, `conclave-ack` headers. */
function sessionOf(request: EdgeRequest): SessionRef | undefined {
  const { headers } = request;
  const id = headers[SESSION_HEADERS.id];
  const seq = headers[SESSION_HEADERS.seq];
  const ack = headers[SESSION_HEADERS.ack];
  if (id === undefined && seq === undefined && ack === undefined) return undefined;
  return sessionRef(
    decimalCount(`header ${SESSION_HEADERS.id}`, id),
    decimalCount(`header ${SESSION_HEADERS.seq}`, seq),
    decimalCount(`header ${SESSION_HEADERS.ack}`, ack),
    SESSION_HEADERS,
  );
}

/** The realm as the edge decoded it from the path; the state machine checks its name. */
function realmOf(request: EdgeRequest): string {
  const realm = request.params.realm;
  if (realm === undefined) throw new Error('a realm route without a :realm parameter');
  return realm;
}

function objectBody(
  body: unknown,
  what: string,
  allowed: readonly string[],
): Readonly<Record<string, unknown>> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw invalid(`${what} must be a JSON object`);
  }
  for (const field of Object.keys(body)) {
    if (!allowed.includes(field)) {
      throw invalid(`${what} has an unknown field ${JSON.stringify(field)}; expected ${allowed.join(', ')}`);
    }
  }
  return body as Record<string, unknown>;
}

// ---- Encoding ----

function consistencyOfRead(op: ApiOp): Consistency {
  return 'consistency' in op ? op.consistency : 'linearizable';
}

/** The read headers (READ HEADERS above). */
function readHeaders(read: ReadPoint, consistency: Consistency): Record<string, string> {
  const headers: Record<string, string> = {
    'conclave-consistency': consistency,
    'conclave-revision': String(read.revision),
  };
  const stale = read.stale;
  if (stale !== undefined) {
    headers['conclave-applied-index'] = String(stale.appliedIndex);
    headers['conclave-leader-commit-index'] = String(stale.leaderCommitIndex);
    headers['conclave-lag-entries'] = String(Math.max(0, stale.leaderCommitIndex - stale.appliedIndex));
    if (stale.cutOff) {
      headers['conclave-stale'] = 'true';
      if (stale.leaderSilenceMs !== undefined && stale.leaderSilenceMs !== null)
        headers['conclave-leader-silence-ms'] = String(stale.leaderSilenceMs);
    }
  }
  return headers;
}

/** An error answer: status from the one table (an unknown code answers 500); an unexpected failure is logged. */
function failureResponse(
  api: ClientApi,
  answer: ApiAnswer & { readonly ok: false },
  method: string,
  pattern: string,
): EdgeResponse {
  const { error } = answer;
  if ('unexpected' in answer) {
    const { unexpected } = answer;
    api.logger.error('http_route_failed', {
      method,
      pattern,
      error: unexpected instanceof Error ? `${unexpected.name}: ${unexpected.message}` : String(unexpected),
    });
  }
  return { status: errorStatus(error.code) ?? 500, body: errorBody(error) };
}
