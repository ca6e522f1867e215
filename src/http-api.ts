// The client API's HTTP routes: what each /v1 route, /healthz and /readyz does, built on a KvService for the edge.

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
 *   POST   /v1/realms   body: {"name": "realm-name"}
 *            -> 201 {"name", "revision"}
 *   GET    /v1/realms[?consistency=…]
 *            -> {"realms": ["default", …], "revision": N}
 *   POST   /v1/sessions  -> {"session": N}: opens a client session (see SESSIONS)
 *   DELETE /v1/sessions/{N}?seq=S  -> {}: closes it (S: the session's next sequence number)
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
 * `conclave-lag-entries` (their difference, at least 0). Headers, so that the documented body
 * shapes stay exactly as they are.
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

import {
  EdgeError,
  type EdgeRequest,
  type EdgeResponse,
  type EdgeRoute,
  type Logger,
  silentLogger,
} from '../net/index.js';
import {
  COMMAND_VERSION,
  type Command,
  type CommandError,
  type CommandResult,
  type DocResult,
  encodeCommand,
  type Json,
  type Operation,
  type StorageConfig,
  validateCommand,
} from '../storage/index.js';
import { type ErrorCode, errorStatus, isRetryable } from './error-codes.js';
import {
  booleanParam,
  consistencyParam,
  integerParam,
  keyFromPath,
  nonEmptyParam,
  parseQuery,
} from './http-query.js';
import type { Consistency, KvService, ServedRead } from './kv-service.js';
import type { SessionRef } from './ws-protocol.js';

/** The storage limits a command is checked against before it is proposed. */
export type CommandLimits = Pick<
  StorageConfig,
  'keyMaxBytes' | 'valueMaxBytes' | 'commandMaxBytes' | 'txnMaxOps' | 'jsonMaxDepth'
>;

export interface HttpApiOptions {
  /**
   * The limits the node's state machine applies (pass the node's StorageConfig), so a bad or
   * oversized write is refused at the edge with the same code and message the state machine
   * would give, without taking a log entry.
   */
  readonly limits: CommandLimits;
  /** Where unexpected failures (answered INTERNAL) are logged; quiet by default. */
  readonly logger?: Logger;
}

/** Codes a service may throw that are no API codes, and the stable code each answers as. */
const SERVICE_CODE_ALIASES: Readonly<Record<string, ErrorCode>> = {
  STOPPED: 'UNAVAILABLE',
  OVERLOADED: 'UNAVAILABLE',
};

const TXN_FIELDS = ['compares', 'success', 'failure'] as const;
const REALM_FIELDS = ['name'] as const;

/**
 * The edge routes of the client API (see the table above), answering from `service`. Every
 * handler answers; none throws: bad input, command failures and the service's thrown errors
 * all become the documented error bodies.
 */
export function buildHttpRoutes(service: KvService, options: HttpApiOptions): EdgeRoute[] {
  return httpRoutes(newHttpApi(service, options));
}

export function newHttpApi(service: KvService, options: HttpApiOptions): HttpApi {
  return new HttpApi(service, options.limits, options.logger ?? silentLogger);
}

/** The routes of the table above on `api`. */
export function httpRoutes(api: HttpApi): EdgeRoute[] {
  const route = (
    method: EdgeRoute['method'],
    pattern: string,
    body: EdgeRoute['body'],
    handler: (request: EdgeRequest) => Promise<EdgeResponse> | EdgeResponse,
  ): EdgeRoute => ({
    method,
    pattern,
    body,
    handler: (request) => api.guard(method, pattern, () => handler(request)),
  });
  return [
    route('PUT', '/v1/realms/:realm/kv/*', 'json', (r) => api.put(r)),
    route('GET', '/v1/realms/:realm/kv/*', 'none', (r) => api.get(r)),
    route('PATCH', '/v1/realms/:realm/kv/*', 'json', (r) => api.patch(r)),
    route('DELETE', '/v1/realms/:realm/kv/*', 'none', (r) => api.delete(r)),
    route('GET', '/v1/realms/:realm/kv', 'none', (r) => api.list(r)),
    route('POST', '/v1/realms/:realm/txn', 'json', (r) => api.txn(r)),
    route('POST', '/v1/realms', 'json', (r) => api.createRealm(r)),
    route('GET', '/v1/realms', 'none', (r) => api.realms(r)),
    route('POST', '/v1/sessions', 'none', (r) => api.openSession(r)),
    route('DELETE', '/v1/sessions/:session', 'none', (r) => api.closeSession(r)),
    route('GET', '/v1/status', 'none', (r) => api.status(r)),
    route('GET', '/healthz', 'none', (r) => api.healthz(r)),
    route('GET', '/readyz', 'none', (r) => api.readyz(r)),
  ];
}

/** The client API's operations on EdgeRequests; the HTTP routes and the WebSocket API both call it. */
export class HttpApi {
  constructor(
    private readonly service: KvService,
    private readonly limits: CommandLimits,
    private readonly logger: Logger,
  ) {}

  /** Runs a handler and turns anything it throws into an error answer. */
  async guard(
    method: string,
    pattern: string,
    run: () => Promise<EdgeResponse> | EdgeResponse,
  ): Promise<EdgeResponse> {
    try {
      return await run();
    } catch (error) {
      return this.thrownError(error, method, pattern);
    }
  }

  // ---- Documents ----

  async put(request: EdgeRequest): Promise<EdgeResponse> {
    const params = parseQuery(request.query, ['ifRevision', 'ifAbsent']);
    const ifRevision = integerParam(params, 'ifRevision');
    const ifAbsent = booleanParam(params, 'ifAbsent');
    if (ifRevision !== undefined && ifAbsent === true) {
      throw invalid('give ifRevision or ifAbsent=true, not both (ifRevision=0 also means "only if absent")');
    }
    return this.writeDocument(request, {
      type: 'put',
      realm: realmOf(request),
      key: keyFromPath(request.path),
      value: request.body as Json,
      ...(ifRevision === undefined ? {} : { ifRevision }),
      ...(ifAbsent === true ? { ifAbsent: true } : {}),
    });
  }

  async patch(request: EdgeRequest): Promise<EdgeResponse> {
    const ifRevision = integerParam(parseQuery(request.query, ['ifRevision']), 'ifRevision');
    return this.writeDocument(request, {
      type: 'patch',
      realm: realmOf(request),
      key: keyFromPath(request.path),
      patch: request.body as Json,
      ...(ifRevision === undefined ? {} : { ifRevision }),
    });
  }

  async delete(request: EdgeRequest): Promise<EdgeResponse> {
    const ifRevision = integerParam(parseQuery(request.query, ['ifRevision']), 'ifRevision');
    return this.writeDocument(request, {
      type: 'delete',
      realm: realmOf(request),
      key: keyFromPath(request.path),
      ...(ifRevision === undefined ? {} : { ifRevision }),
    });
  }

  async get(request: EdgeRequest): Promise<EdgeResponse> {
    const consistency = consistencyParam(parseQuery(request.query, ['consistency']));
    const key = keyFromPath(request.path);
    const served = await this.service.get(realmOf(request), key, consistency);
    if (!served.ok) return commandFailure(served.error, served.revision);
    const { value } = served;
    return {
      status: 200,
      headers: readHeaders(served, consistency),
      body: {
        key: value.key,
        value: value.value,
        createRevision: value.createRevision,
        modRevision: value.modRevision,
        version: value.version,
      },
    };
  }

  async list(request: EdgeRequest): Promise<EdgeResponse> {
    const params = parseQuery(request.query, ['prefix', 'limit', 'after', 'consistency']);
    const consistency = consistencyParam(params);
    const prefix = params.get('prefix');
    const after = nonEmptyParam(params, 'after');
    const limit = integerParam(params, 'limit');
    const served = await this.service.list(
      realmOf(request),
      {
        ...(prefix === undefined || prefix === '' ? {} : { prefix }),
        ...(after === undefined ? {} : { after }),
        ...(limit === undefined ? {} : { limit }),
      },
      consistency,
    );
    if (!served.ok) return commandFailure(served.error, served.revision);
    const { documents, more } = served.value;
    const last = documents[documents.length - 1];
    return {
      status: 200,
      headers: readHeaders(served, consistency),
      body: {
        documents,
        more,
        next: more && last !== undefined ? last.key : null,
        revision: served.revision,
      },
    };
  }

  async txn(request: EdgeRequest): Promise<EdgeResponse> {
    parseQuery(request.query, []);
    const body = objectBody(request.body, 'the txn body', TXN_FIELDS);
    const operation = {
      type: 'txn',
      realm: realmOf(request),
      compares: body.compares,
      success: body.success,
      ...(body.failure === undefined ? {} : { failure: body.failure }),
    } as Operation;
    const result = await this.write(operation, sessionOf(request));
    if (!result.ok) return commandFailure(result.error, result.revision);
    const outcome = result.result;
    if (outcome.type !== 'txn') throw new Error(`a txn answered ${outcome.type}`);
    return {
      status: 200,
      body: {
        succeeded: outcome.succeeded,
        revision: result.revision,
        results: outcome.results.map(docResultBody),
      },
    };
  }

  // ---- Realms ----

  async createRealm(request: EdgeRequest): Promise<EdgeResponse> {
    parseQuery(request.query, []);
    const body = objectBody(request.body, 'the realm body', REALM_FIELDS);
    if (body.name === undefined) throw invalid('the realm body needs a "name"');
    const result = await this.write({ type: 'createRealm', realm: body.name as string }, sessionOf(request));
    if (!result.ok) return commandFailure(result.error, result.revision);
    return { status: 201, body: { name: body.name, revision: result.revision } };
  }

  async realms(request: EdgeRequest): Promise<EdgeResponse> {
    const consistency = consistencyParam(parseQuery(request.query, ['consistency']));
    const served = await this.service.realms(consistency);
    if (!served.ok) return commandFailure(served.error, served.revision);
    return {
      status: 200,
      headers: readHeaders(served, consistency),
      body: { realms: served.value, revision: served.revision },
    };
  }

  // ---- Sessions ----

  async openSession(request: EdgeRequest): Promise<EdgeResponse> {
    parseQuery(request.query, []);
    const result = await this.service.write({ type: 'openSession' });
    if (!result.ok) return commandFailure(result.error, result.revision);
    if (result.result.type !== 'openSession') throw new Error(`openSession answered ${result.result.type}`);
    return { status: 200, body: { session: result.result.session } };
  }

  async closeSession(request: EdgeRequest): Promise<EdgeResponse> {
    const seq = integerParam(parseQuery(request.query, ['seq']), 'seq');
    const id = Number(request.params.session);
    if (!/^[1-9][0-9]*$/.test(request.params.session ?? '') || !Number.isSafeInteger(id)) {
      throw invalid(`the session must be a positive integer, got ${JSON.stringify(request.params.session)}`);
    }
    if (seq === undefined || seq < 1)
      throw invalid('closing a session needs ?seq= (its next sequence number)');
    const result = await this.service.write({ type: 'closeSession' }, { id, seq });
    if (!result.ok) return commandFailure(result.error, result.revision);
    return { status: 200, body: {} };
  }

  // ---- The node ----

  status(request: EdgeRequest): EdgeResponse {
    parseQuery(request.query, []);
    return { status: 200, body: this.service.status() };
  }

  healthz(request: EdgeRequest): EdgeResponse {
    parseQuery(request.query, []);
    return { status: 200, body: { status: 'ok' } };
  }

  readyz(request: EdgeRequest): EdgeResponse {
    parseQuery(request.query, []);
    const { ready, reason } = this.service.ready();
    if (ready) return { status: 200, body: { ready: true } };
    const message = reason ?? 'not ready';
    return errorResponse('UNAVAILABLE', message, {
      ready: false,
      reason: message,
    });
  }

  // ---- Writing ----

  private async writeDocument(request: EdgeRequest, operation: Operation): Promise<EdgeResponse> {
    const result = await this.write(operation, sessionOf(request));
    if (!result.ok) return commandFailure(result.error, result.revision);
    return { status: 200, body: { revision: result.revision } };
  }

  /** Checks `operation` exactly as the state machine will, then proposes it. */
  private async write(operation: Operation, session: SessionRef | undefined): Promise<CommandResult> {
    const command: Command = { v: COMMAND_VERSION, time: 0, ...(session ? { session } : {}), op: operation };
    const checked = validateCommand(command, this.limits);
    // Validation answers INVALID_ARGUMENT or TOO_LARGE, both edge codes.
    if (!checked.ok) throw new EdgeError(checked.error.code, checked.error.message);
    const bytes = encodeCommand(command).length;
    if (bytes > this.limits.commandMaxBytes) {
      throw new EdgeError(
        'TOO_LARGE',
        `the command would be ${bytes} bytes; the limit is ${this.limits.commandMaxBytes}`,
      );
    }
    if (operation.type === 'put') {
      const valueBytes = Buffer.byteLength(JSON.stringify(operation.value));
      if (valueBytes > this.limits.valueMaxBytes) {
        throw new EdgeError(
          'TOO_LARGE',
          `the document is ${valueBytes} bytes; the limit is ${this.limits.valueMaxBytes}`,
        );
      }
    }
    return this.service.write(checked.value.op, checked.value.session);
  }

  // ---- Errors ----

  private thrownError(error: unknown, method: string, pattern: string): EdgeResponse {
    if (error instanceof EdgeError) {
      return errorResponse(error.code, error.message, error.details ?? {});
    }
    const fields = (typeof error === 'object' && error !== null ? error : {}) as {
      code?: unknown;
      leader?: unknown;
      indeterminate?: unknown;
      reason?: unknown;
    };
    const raw = typeof fields.code === 'string' ? fields.code : undefined;
    const code = raw === undefined ? undefined : (SERVICE_CODE_ALIASES[raw] ?? raw);
    if (code === undefined || errorStatus(code) === undefined || code === 'INTERNAL') {
      this.logger.error('http_route_failed', {
        method,
        pattern,
        error: error instanceof Error ? `${error.name}: ${error.message}` : String(error),
      });
      return errorResponse('INTERNAL', 'internal error', {});
    }
    const details: Record<string, unknown> = {};
    if (typeof fields.leader === 'string' && fields.leader !== '') details.leader = fields.leader;
    if (fields.indeterminate === true) details.indeterminate = true;
    if (typeof fields.reason === 'string') details.reason = fields.reason;
    const message = error instanceof Error ? error.message : code;
    return errorResponse(code, message, details);
  }
}

/** The answer to a command's or a read's own failure. */
function commandFailure(error: CommandError, revision: number): EdgeResponse {
  const details = error.code === 'COMPACTED' ? { revision } : {};
  return errorResponse(error.code, error.message, details);
}

/** An error answer: status and `retryable` from the one table (an unknown code answers 500). */
function errorResponse(
  code: string,
  message: string,
  details: Readonly<Record<string, unknown>>,
): EdgeResponse {
  return {
    status: errorStatus(code) ?? 500,
    body: { code, message, retryable: isRetryable(code), ...details },
  };
}

function readHeaders(served: ServedRead<unknown>, consistency: Consistency): Record<string, string> {
  const headers: Record<string, string> = {
    'conclave-consistency': consistency,
    'conclave-revision': String(served.revision),
  };
  const stale = served.stale;
  if (stale !== undefined) {
    headers['conclave-applied-index'] = String(stale.appliedIndex);
    headers['conclave-leader-commit-index'] = String(stale.leaderCommitIndex);
    headers['conclave-lag-entries'] = String(Math.max(0, stale.leaderCommitIndex - stale.appliedIndex));
  }
  return headers;
}

function docResultBody(result: DocResult): Record<string, unknown> {
  return result.type === 'put'
    ? {
        type: 'put',
        key: result.key,
        createRevision: result.createRevision,
        modRevision: result.modRevision,
        version: result.version,
      }
    : { type: 'delete', key: result.key, prevModRevision: result.prevModRevision };
}

const SESSION_HEADERS = ['conclave-session', 'conclave-seq', 'conclave-ack'] as const;

/** The write's session from the `conclave-session`, `conclave-seq`, `conclave-ack` headers. */
function sessionOf(request: EdgeRequest): SessionRef | undefined {
  const [id, seq, ack] = SESSION_HEADERS.map((name) => {
    const text = request.headers[name];
    if (text === undefined) return undefined;
    if (!/^(0|[1-9][0-9]*)$/.test(text) || !Number.isSafeInteger(Number(text))) {
      throw invalid(`header ${name} must be a non-negative integer, got ${JSON.stringify(text)}`);
    }
    return Number(text);
  });
  if (id === undefined) {
    if (seq !== undefined || ack !== undefined)
      throw invalid('conclave-seq and conclave-ack need conclave-session');
    return undefined;
  }
  if (id < 1) throw invalid('conclave-session must be at least 1');
  if (seq === undefined || seq < 1) throw invalid('a write in a session needs conclave-seq of at least 1');
  return { id, seq, ...(ack === undefined ? {} : { ack }) };
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

function invalid(message: string): EdgeError {
  return new EdgeError('INVALID_ARGUMENT', message);
}
