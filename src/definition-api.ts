// The realm definition's HTTP routes: the whole definition, realms' settings and grants, users and tokens; edits go through the leader.

/*
 * Routes (JSON). Who may call each is in brackets: [cluster] a cluster admin, [realm admin] an
 * admin of that realm (or a cluster admin). Where the node requires no token, anyone may.
 *
 *   GET    /v1/definition[?consistency=…]   [cluster] -> DefinitionView (kv-service.ts)
 *   PUT    /v1/definition   body {"definition", "ifVersion"?}  [cluster]
 *                           -> {"version", "created": [realm…]}: applied at once, or not at all
 *   GET    /v1/realms/{realm}/definition    [realm admin] -> {"name", "createRevision",
 *                           "documents", "settings", "grants": {user: level}}
 *   PUT    /v1/realms/{realm}/settings   body {"maxValueBytes"?}   [realm admin] -> {"version"}
 *   DELETE /v1/realms/{realm}            [cluster] -> {"version"} (the realm must be empty)
 *   PUT    /v1/realms/{realm}/grants/{user}   body {"level": read|write|admin}  [realm admin]
 *   DELETE /v1/realms/{realm}/grants/{user}   [realm admin]
 *   GET    /v1/users        [cluster] -> {"users": {name: {"clusterAdmin", "grants"}}, "version"}
 *   POST   /v1/users        body {"name", "clusterAdmin"?}  [cluster] -> 201 {"name", "version"}
 *   DELETE /v1/users/{user}                [cluster] (its tokens go with it)
 *   PUT    /v1/users/{user}/cluster-admin  [cluster];  DELETE … takes it away
 *   GET    /v1/tokens       [cluster] -> {"tokens": [{id, user, createdAt, expiresAt}], "version"}
 *   POST   /v1/tokens       body {"user", "ttlSeconds"?}  [cluster]
 *                           -> 201 {"id", "token", "user", "expiresAt"}: the only time the token is shown
 *   DELETE /v1/tokens/{id}  [cluster]: refused on every node as soon as it applies there
 *
 * Every edit answers the definition's version after it. A satellite or DR replica answers edits
 * READ_ONLY, naming the leader. Refusals are the client API's error bodies: NOT_FOUND,
 * CONFLICT (an existing name, a realm with documents, a stale ifVersion, taking away the last
 * cluster admin's sign-in), INVALID_ARGUMENT.
 */

import { EdgeError, type EdgeRequest, type EdgeRoute } from '../net/index.js';
import {
  type CommandLimits,
  checkDefinition,
  checked,
  checkRealm,
  checkSettings,
  checkUser,
  LEVELS,
  type Level,
  type Operation,
} from '../storage/index.js';
import { objectBody } from './admin-api.js';
import { NEEDS_CLUSTER_ADMIN, type Need } from './auth.js';
import type { ClientApi } from './client-api.js';
import { guardedRoute } from './http-api.js';
import { consistencyParam, parseQuery } from './http-query.js';
import type { DefinitionView, KvService } from './kv-service.js';
import { newToken } from './tokens.js';

/** Longest token lifetime: ten years. */
const MAX_TTL_SECONDS = 10 * 365 * 24 * 3600;

export function definitionRoutes(api: ClientApi, kv: KvService, limits: CommandLimits): EdgeRoute[] {
  const cluster = (
    method: EdgeRoute['method'],
    pattern: string,
    body: EdgeRoute['body'],
    handler: (request: EdgeRequest) => Promise<{ status: number; body: unknown }>,
  ) => guardedRoute(api, method, pattern, body, NEEDS_CLUSTER_ADMIN, handler);
  const realmAdmin = (
    method: EdgeRoute['method'],
    pattern: string,
    body: EdgeRoute['body'],
    handler: (request: EdgeRequest, realm: string) => Promise<{ status: number; body: unknown }>,
  ) =>
    guardedRoute(
      api,
      method,
      pattern,
      body,
      (request): Need => ({ kind: 'realm', realm: realmParam(request), level: 'admin' }),
      (request) => handler(request, realmParam(request)),
    );
  /** Proposes a definition operation; a refusal is thrown as its error. */
  const edit = async (op: Operation): Promise<{ version: number; created?: readonly string[] }> => {
    const result = await api.propose(op);
    if (!result.ok) throw new EdgeError(result.error.code, result.error.message);
    if (result.result.type !== 'definition')
      throw new Error(`a definition edit answered ${result.result.type}`);
    const { version, created } = result.result;
    return created === undefined ? { version } : { version, created };
  };
  const read = async (request: EdgeRequest): Promise<DefinitionView> => {
    const served = await kv.definition(consistencyParam(parseQuery(request.query, ['consistency'])));
    if (!served.ok) throw new EdgeError(served.error.code, served.error.message);
    return served.value;
  };
  const noQuery = (request: EdgeRequest) => parseQuery(request.query, []);

  return [
    cluster('GET', '/v1/definition', 'none', async (r) => ({ status: 200, body: await read(r) })),
    cluster('PUT', '/v1/definition', 'json', async (r) => {
      noQuery(r);
      const body = objectBody(r.body, ['definition', 'ifVersion']);
      const definition = fieldCheck(() => checkDefinition(body.definition, limits));
      const ifVersion = body.ifVersion;
      if (ifVersion !== undefined && (!Number.isSafeInteger(ifVersion) || (ifVersion as number) < 0)) {
        throw new EdgeError(
          'INVALID_ARGUMENT',
          `ifVersion must be a non-negative integer, got ${JSON.stringify(ifVersion)}`,
        );
      }
      const op: Operation =
        ifVersion === undefined
          ? { type: 'applyDefinition', definition }
          : { type: 'applyDefinition', definition, ifVersion: ifVersion as number };
      return { status: 200, body: await edit(op) };
    }),
    realmAdmin('GET', '/v1/realms/:realm/definition', 'none', async (r, realm) => {
      const view = await read(r);
      const record = view.realms.find((entry) => entry.name === realm);
      if (record === undefined && view.unreachableRealms?.includes(realm)) {
        throw new EdgeError(
          'UNAVAILABLE',
          `realm ${realm} lives in a raft group none of whose members answered; retry later (conclave groups list)`,
        );
      }
      if (record === undefined) throw new EdgeError('NOT_FOUND', `no realm ${realm}`);
      const grants: Record<string, Level> = {};
      for (const [name, user] of Object.entries(view.definition.users)) {
        const level = user.grants[realm];
        if (level !== undefined) grants[name] = level;
      }
      return { status: 200, body: { ...record, grants, version: view.version } };
    }),
    realmAdmin('PUT', '/v1/realms/:realm/settings', 'json', async (r, realm) => {
      noQuery(r);
      const settings = fieldCheck(() => checkSettings(r.body, 'settings', limits));
      return { status: 200, body: await edit({ type: 'realmSettings', realm, settings }) };
    }),
    cluster('DELETE', '/v1/realms/:realm', 'none', async (r) => {
      noQuery(r);
      return { status: 200, body: await edit({ type: 'deleteRealm', realm: realmParam(r) }) };
    }),
    realmAdmin('PUT', '/v1/realms/:realm/grants/:user', 'json', async (r, realm) => {
      noQuery(r);
      const body = objectBody(r.body, ['level']);
      if (!(LEVELS as readonly unknown[]).includes(body.level)) {
        throw new EdgeError(
          'INVALID_ARGUMENT',
          `level must be one of ${LEVELS.join(', ')}, got ${JSON.stringify(body.level)}`,
        );
      }
      const user = userParam(r);
      return { status: 200, body: await edit({ type: 'grant', user, realm, level: body.level as Level }) };
    }),
    realmAdmin('DELETE', '/v1/realms/:realm/grants/:user', 'none', async (r, realm) => {
      noQuery(r);
      return { status: 200, body: await edit({ type: 'grant', user: userParam(r), realm, level: null }) };
    }),
    cluster('GET', '/v1/users', 'none', async (r) => {
      const view = await read(r);
      return { status: 200, body: { users: view.definition.users, version: view.version } };
    }),
    cluster('POST', '/v1/users', 'json', async (r) => {
      noQuery(r);
      const body = objectBody(r.body, ['name', 'clusterAdmin']);
      const name = fieldCheck(() => checkUser(body.name));
      if (body.clusterAdmin !== undefined && typeof body.clusterAdmin !== 'boolean') {
        throw new EdgeError('INVALID_ARGUMENT', 'clusterAdmin must be true or false');
      }
      const { version } = await edit({
        type: 'addUser',
        user: name,
        clusterAdmin: body.clusterAdmin === true,
      });
      return { status: 201, body: { name, version } };
    }),
    cluster('DELETE', '/v1/users/:user', 'none', async (r) => {
      noQuery(r);
      return { status: 200, body: await edit({ type: 'removeUser', user: userParam(r) }) };
    }),
    cluster('PUT', '/v1/users/:user/cluster-admin', 'none', async (r) => {
      noQuery(r);
      return { status: 200, body: await edit({ type: 'clusterAdmin', user: userParam(r), on: true }) };
    }),
    cluster('DELETE', '/v1/users/:user/cluster-admin', 'none', async (r) => {
      noQuery(r);
      return { status: 200, body: await edit({ type: 'clusterAdmin', user: userParam(r), on: false }) };
    }),
    cluster('GET', '/v1/tokens', 'none', async (r) => {
      const view = await read(r);
      return { status: 200, body: { tokens: view.tokens, version: view.version } };
    }),
    cluster('POST', '/v1/tokens', 'json', async (r) => {
      noQuery(r);
      const body = objectBody(r.body, ['user', 'ttlSeconds']);
      const user = fieldCheck(() => checkUser(body.user));
      const ttl = body.ttlSeconds;
      if (
        ttl !== undefined &&
        (!Number.isSafeInteger(ttl) || (ttl as number) < 1 || (ttl as number) > MAX_TTL_SECONDS)
      ) {
        throw new EdgeError(
          'INVALID_ARGUMENT',
          `ttlSeconds must be an integer in [1, ${MAX_TTL_SECONDS}], got ${JSON.stringify(ttl)}`,
        );
      }
      const made = newToken();
      const expiresAt = ttl === undefined ? 0 : Date.now() + (ttl as number) * 1000;
      await edit({ type: 'createToken', id: made.id, user, hash: made.hash, expiresAt });
      return { status: 201, body: { id: made.id, token: made.token, user, expiresAt } };
    }),
    cluster('DELETE', '/v1/tokens/:id', 'none', async (r) => {
      noQuery(r);
      const id = r.params.id ?? '';
      if (!/^[0-9a-f]{16}$/.test(id)) {
        throw new EdgeError(
          'INVALID_ARGUMENT',
          `a token id is 16 hex digits (see conclave tokens list), got ${JSON.stringify(id)}`,
        );
      }
      return { status: 200, body: await edit({ type: 'revokeToken', id }) };
    }),
  ];
}

/** Runs a storage check and answers its refusal as INVALID_ARGUMENT (or TOO_LARGE) at the edge. */
function fieldCheck<T>(check: () => T): T {
  const result = checked(check);
  if (!result.ok) throw new EdgeError(result.error.code, result.error.message);
  return result.value;
}

function realmParam(request: EdgeRequest): string {
  return fieldCheck(() => checkRealm(request.params.realm));
}

function userParam(request: EdgeRequest): string {
  return fieldCheck(() => checkUser(request.params.user));
}
