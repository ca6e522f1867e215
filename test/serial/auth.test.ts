// Authentication and authorization on a real cluster started with --auth: every route and WebSocket op against every kind of caller, revocation on every node within a second, edits through a follower, READ_ONLY at a satellite, the proxy and the client library.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { WebSocket } from 'ws';
import { type ClusterNode, LocalCluster } from '../../scripts/local-cluster.js';
import { Client } from '../../src/client/index.js';
import { waitFor } from '../node/process-helpers.js';
import { FAST_TIMING } from '../node/running-cluster.js';

interface Answer {
  readonly status: number;
  readonly body: Record<string, unknown>;
}

async function call(
  url: string,
  method: string,
  path: string,
  token: string | undefined,
  body?: unknown,
): Promise<Answer> {
  const response = await fetch(`${url}${path}`, {
    method,
    signal: AbortSignal.timeout(15_000),
    headers: {
      ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  let parsed: Record<string, unknown> = {};
  try {
    parsed = JSON.parse(text) as Record<string, unknown>;
  } catch {
    parsed = { raw: text.slice(0, 100) };
  }
  return { status: response.status, body: parsed };
}

/** One WebSocket request on a fresh connection (token on the upgrade); resolves with the answer. */
function wsCall(
  port: number,
  token: string | undefined,
  request: Record<string, unknown>,
): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`ws://127.0.0.1:${port}/v1/ws`, {
      headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
    });
    const timer = setTimeout(() => {
      socket.terminate();
      reject(new Error(`no answer to ${JSON.stringify(request)}`));
    }, 10_000);
    socket.on('open', () => socket.send(JSON.stringify({ id: 1, ...request })));
    socket.on('message', (data) => {
      const message = JSON.parse(String(data)) as Record<string, unknown>;
      if (message.id !== 1) return;
      clearTimeout(timer);
      socket.close();
      resolve(message);
    });
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

type Kind =
  | 'none'
  | 'expired'
  | 'revoked'
  | 'otherRealm'
  | 'reader'
  | 'writer'
  | 'realmAdmin'
  | 'clusterAdmin';
const KINDS: readonly Kind[] = [
  'none',
  'expired',
  'revoked',
  'otherRealm',
  'reader',
  'writer',
  'realmAdmin',
  'clusterAdmin',
];
type Need = 'none' | 'user' | 'read' | 'write' | 'admin' | 'cluster';

/** What a caller of `kind` is answered for an operation that needs `need`: 'ok' or the refusal's code. */
function expected(kind: Kind, need: Need): 'ok' | 'UNAUTHENTICATED' | 'PERMISSION_DENIED' {
  if (need === 'none') return 'ok';
  if (kind === 'none' || kind === 'expired' || kind === 'revoked') return 'UNAUTHENTICATED';
  if (need === 'user') return 'ok';
  const rank: Record<Kind, number> = {
    none: 0,
    expired: 0,
    revoked: 0,
    otherRealm: 0,
    reader: 1,
    writer: 2,
    realmAdmin: 3,
    clusterAdmin: 4,
  };
  const needed = { read: 1, write: 2, admin: 3, cluster: 4 }[need];
  return rank[kind] >= needed ? 'ok' : 'PERMISSION_DENIED';
}

t.test('auth on a cluster started with --auth', async (t) => {
  const cluster = new LocalCluster([...FAST_TIMING, '--auth']);
  t.teardown(() => cluster.stop());
  await cluster.create(3);
  cluster.startAll();
  const leader = await cluster.waitForLeader(30_000);
  const n1 = cluster.nodes[0]!;
  const adminFile = join(n1.dataDir, 'admin.token');
  const admin = await waitFor('n1 wrote its admin token', () => {
    try {
      return readFileSync(adminFile, 'utf8').trim();
    } catch {
      return undefined;
    }
  });
  cluster.token = admin;
  const url = leader.url;
  const as = (token: string | undefined) => ({
    call: (method: string, path: string, body?: unknown) => call(url, method, path, token, body),
  });
  const root = as(admin);
  const ok = async (answer: Promise<Answer>, what: string): Promise<Record<string, unknown>> => {
    const result = await answer;
    if (result.status >= 300) throw new Error(`${what}: ${result.status} ${JSON.stringify(result.body)}`);
    return result.body;
  };

  t.test('every founder wrote its own first admin token, 0600, and each works', async (t) => {
    for (const node of cluster.nodes) {
      const file = join(node.dataDir, 'admin.token');
      const token = await waitFor(`${node.name}'s admin token`, () => {
        try {
          return readFileSync(file, 'utf8').trim();
        } catch {
          return undefined;
        }
      });
      const { statSync } = await import('node:fs');
      t.equal(statSync(file).mode & 0o777, 0o600, `${node.name}: mode 0600`);
      t.equal(
        (await call(node.url, 'GET', '/v1/users', token)).status,
        200,
        `${node.name}'s token is a cluster admin`,
      );
    }
  });

  // The callers: users with grants, their tokens; an expired and a revoked one.
  await ok(root.call('POST', '/v1/realms', { name: 'r1' }), 'realm r1');
  await ok(root.call('POST', '/v1/realms', { name: 'r2' }), 'realm r2');
  const users: [string, string | undefined, string][] = [
    ['reader', 'r1', 'read'],
    ['writer', 'r1', 'write'],
    ['radmin', 'r1', 'admin'],
    ['other', 'r2', 'write'],
    ['cadmin', undefined, ''],
    ['nobody', undefined, ''],
  ];
  for (const [user, realm, level] of users) {
    await ok(root.call('POST', '/v1/users', { name: user, clusterAdmin: user === 'cadmin' }), `user ${user}`);
    if (realm !== undefined)
      await ok(root.call('PUT', `/v1/realms/${realm}/grants/${user}`, { level }), `grant ${user}`);
  }
  const tokenFor = async (user: string, ttlSeconds?: number): Promise<{ id: string; token: string }> =>
    (await ok(
      root.call('POST', '/v1/tokens', { user, ...(ttlSeconds ? { ttlSeconds } : {}) }),
      `token ${user}`,
    )) as {
      id: string;
      token: string;
    };
  const expiredToken = await tokenFor('writer', 1);
  const revokedToken = await tokenFor('writer');
  await ok(root.call('DELETE', `/v1/tokens/${revokedToken.id}`), 'revoke');
  const tokens: Record<Kind, string | undefined> = {
    none: undefined,
    expired: expiredToken.token,
    revoked: revokedToken.token,
    otherRealm: (await tokenFor('other')).token,
    reader: (await tokenFor('reader')).token,
    writer: (await tokenFor('writer')).token,
    realmAdmin: (await tokenFor('radmin')).token,
    clusterAdmin: (await tokenFor('cadmin')).token,
  };
  await ok(root.call('PUT', '/v1/realms/r1/kv/k', { v: 1 }), 'seed k');
  await new Promise((resolve) => setTimeout(resolve, 1100)); // the 1 s token expires

  /** What a refused request must not have changed: the definition and realm r1's documents. */
  const fingerprint = async (): Promise<string> => {
    const definition = await ok(root.call('GET', '/v1/definition'), 'definition');
    const docs = await ok(root.call('GET', '/v1/realms/r1/kv'), 'r1 documents');
    const { revision: _r, ...rest } = docs;
    return JSON.stringify([definition, rest]);
  };

  let fresh = 0;
  const next = (prefix: string) => `${prefix}${++fresh}`;
  interface Route {
    readonly name: string;
    readonly need: Need;
    /** Makes the request (after whatever it needs exists); its status when allowed is `status`. */
    readonly request: () => Promise<[string, string, unknown?]>;
    readonly status: number;
  }
  const routes: Route[] = [
    { name: 'GET /healthz', need: 'none', status: 200, request: async () => ['GET', '/healthz'] },
    { name: 'GET /v1/status', need: 'user', status: 200, request: async () => ['GET', '/v1/status'] },
    { name: 'GET /metrics', need: 'user', status: 200, request: async () => ['GET', '/metrics'] },
    { name: 'GET / (dashboard page)', need: 'none', status: 200, request: async () => ['GET', '/'] },
    { name: 'GET /v1/dashboard', need: 'user', status: 200, request: async () => ['GET', '/v1/dashboard'] },
    { name: 'GET /v1/realms', need: 'user', status: 200, request: async () => ['GET', '/v1/realms'] },
    { name: 'POST /v1/sessions', need: 'user', status: 200, request: async () => ['POST', '/v1/sessions'] },
    { name: 'GET kv', need: 'read', status: 200, request: async () => ['GET', '/v1/realms/r1/kv/k'] },
    { name: 'GET list', need: 'read', status: 200, request: async () => ['GET', '/v1/realms/r1/kv'] },
    {
      name: 'PUT kv',
      need: 'write',
      status: 200,
      request: async () => ['PUT', `/v1/realms/r1/kv/${next('p')}`, { v: 2 }],
    },
    {
      name: 'PATCH kv',
      need: 'write',
      status: 200,
      request: async () => ['PATCH', '/v1/realms/r1/kv/k', { w: fresh }],
    },
    {
      name: 'DELETE kv',
      need: 'write',
      status: 200,
      request: async () => {
        const key = next('d');
        await ok(root.call('PUT', `/v1/realms/r1/kv/${key}`, { v: 1 }), 'seed');
        return ['DELETE', `/v1/realms/r1/kv/${key}`];
      },
    },
    {
      name: 'POST txn',
      need: 'write',
      status: 200,
      request: async () => [
        'POST',
        '/v1/realms/r1/txn',
        { compares: [], success: [{ type: 'put', key: next('t'), value: 1 }] },
      ],
    },
    {
      name: 'POST /v1/realms',
      need: 'cluster',
      status: 201,
      request: async () => ['POST', '/v1/realms', { name: next('realm') }],
    },
    {
      name: 'GET realm definition',
      need: 'admin',
      status: 200,
      request: async () => ['GET', '/v1/realms/r1/definition'],
    },
    {
      name: 'PUT realm settings',
      need: 'admin',
      status: 200,
      request: async () => ['PUT', '/v1/realms/r1/settings', {}],
    },
    {
      name: 'PUT grant',
      need: 'admin',
      status: 200,
      request: async () => ['PUT', '/v1/realms/r1/grants/nobody', { level: 'read' }],
    },
    {
      name: 'DELETE grant',
      need: 'admin',
      status: 200,
      request: async () => ['DELETE', '/v1/realms/r1/grants/nobody'],
    },
    {
      name: 'DELETE realm',
      need: 'cluster',
      status: 200,
      request: async () => {
        const realm = next('gone');
        await ok(root.call('POST', '/v1/realms', { name: realm }), 'seed realm');
        return ['DELETE', `/v1/realms/${realm}`];
      },
    },
    {
      name: 'GET /v1/definition',
      need: 'cluster',
      status: 200,
      request: async () => ['GET', '/v1/definition'],
    },
    {
      name: 'PUT /v1/definition',
      need: 'cluster',
      status: 200,
      request: async () => {
        const view = await ok(root.call('GET', '/v1/definition'), 'definition');
        return ['PUT', '/v1/definition', { definition: view.definition, ifVersion: view.version }];
      },
    },
    { name: 'GET /v1/users', need: 'cluster', status: 200, request: async () => ['GET', '/v1/users'] },
    {
      name: 'POST /v1/users',
      need: 'cluster',
      status: 201,
      request: async () => ['POST', '/v1/users', { name: next('u') }],
    },
    {
      name: 'DELETE user',
      need: 'cluster',
      status: 200,
      request: async () => {
        const user = next('x');
        await ok(root.call('POST', '/v1/users', { name: user }), 'seed user');
        return ['DELETE', `/v1/users/${user}`];
      },
    },
    {
      name: 'PUT cluster-admin',
      need: 'cluster',
      status: 200,
      request: async () => ['PUT', '/v1/users/nobody/cluster-admin'],
    },
    {
      name: 'DELETE cluster-admin',
      need: 'cluster',
      status: 200,
      request: async () => ['DELETE', '/v1/users/nobody/cluster-admin'],
    },
    { name: 'GET /v1/tokens', need: 'cluster', status: 200, request: async () => ['GET', '/v1/tokens'] },
    {
      name: 'POST /v1/tokens',
      need: 'cluster',
      status: 201,
      request: async () => ['POST', '/v1/tokens', { user: 'nobody' }],
    },
    {
      name: 'DELETE token',
      need: 'cluster',
      status: 200,
      request: async () => ['DELETE', `/v1/tokens/${(await tokenFor('nobody')).id}`],
    },
    { name: 'GET /v1/members', need: 'cluster', status: 200, request: async () => ['GET', '/v1/members'] },
    // Past the permission check, these fail validation: what shows the check came first.
    {
      name: 'POST promote (bad name: 400)',
      need: 'cluster',
      status: 400,
      request: async () => ['POST', '/v1/members/bad!/promote'],
    },
    {
      name: 'DELETE member (bad name: 400)',
      need: 'cluster',
      status: 400,
      request: async () => ['DELETE', '/v1/members/bad!'],
    },
    {
      name: 'POST leader transfer (no target: 400)',
      need: 'cluster',
      status: 400,
      request: async () => ['POST', '/v1/leader/transfer', {}],
    },
    { name: 'GET /v1/backup', need: 'cluster', status: 200, request: async () => ['GET', '/v1/backup'] },
    {
      name: 'DELETE session (none such: 410)',
      need: 'user',
      status: 410,
      request: async () => ['DELETE', '/v1/sessions/999999?seq=1', undefined],
    },
    {
      name: 'POST /v1/members (bad peer: 400 once allowed)',
      need: 'cluster',
      status: 400,
      request: async () => ['POST', '/v1/members', { name: 'zz', peer: 'nowhere' }],
    },
  ];

  t.test('every HTTP route × every kind of caller: the exact code; a refusal changes nothing', async (t) => {
    for (const route of routes) {
      for (const kind of KINDS) {
        const want = expected(kind, route.need);
        const [method, path, body] = await route.request();
        const before = want === 'ok' ? '' : await fingerprint();
        const answer = await call(url, method, path, tokens[kind], body);
        const label = `${route.name} as ${kind}`;
        if (want === 'ok') {
          t.equal(answer.status, route.status, `${label}: ${route.status}`, { body: answer.body });
        } else {
          t.equal(answer.status, want === 'UNAUTHENTICATED' ? 401 : 403, `${label}: ${want}`, {
            body: answer.body,
          });
          t.equal(answer.body.code, want, `${label}: code`);
          t.equal(await fingerprint(), before, `${label}: nothing changed`);
        }
      }
    }
  });

  t.test('refusals do not tell what exists', async (t) => {
    const missing = await call(url, 'GET', '/v1/realms/no-such-realm/kv/k', tokens.reader);
    const existing = await call(url, 'GET', '/v1/realms/r2/kv/k', tokens.reader);
    t.equal(missing.status, 403);
    t.equal(existing.status, 403);
    t.equal(
      String(missing.body.message).replace('no-such-realm', 'R'),
      String(existing.body.message).replace('r2', 'R'),
      'the same answer for a realm that exists and one that does not',
    );
    const list = await call(url, 'GET', '/v1/realms', tokens.reader);
    t.same(list.body.realms, ['r1'], 'the realm list shows only realms the caller has a grant on');
    t.equal((await call(url, 'POST', '/v1/drain', undefined)).status, 401, 'drain needs a token');
    t.equal((await call(url, 'POST', '/v1/drain', tokens.realmAdmin)).status, 403, 'and cluster-admin');
    const bad = await call(url, 'GET', '/v1/status', 'cnc_0000000000000000_xxx');
    t.equal(bad.body.message, (await call(url, 'GET', '/v1/status', tokens.revoked)).body.message);
  });

  t.test('every WebSocket op × every kind of caller', async (t) => {
    const ops: [string, Need, () => Record<string, unknown>][] = [
      ['status', 'user', () => ({ op: 'status' })],
      ['openSession', 'user', () => ({ op: 'openSession' })],
      ['get', 'read', () => ({ op: 'get', realm: 'r1', key: 'k' })],
      ['list', 'read', () => ({ op: 'list', realm: 'r1' })],
      ['watch', 'read', () => ({ op: 'watch', realm: 'r1' })],
      ['put', 'write', () => ({ op: 'put', realm: 'r1', key: next('w'), value: 1 })],
      ['patch', 'write', () => ({ op: 'patch', realm: 'r1', key: 'k', patch: { ws: fresh } })],
      ['delete', 'write', () => ({ op: 'delete', realm: 'r1', key: 'nope' })],
      ['txn', 'write', () => ({ op: 'txn', realm: 'r1', compares: [], success: [] })],
      ['createRealm', 'cluster', () => ({ op: 'createRealm', realm: next('wsrealm') })],
      ['unwatch', 'user', () => ({ op: 'unwatch', watch: 12345 })],
      ['closeSession', 'user', () => ({ op: 'closeSession', session: { id: 999999, seq: 1 } })],
    ];
    for (const [op, need, request] of ops) {
      for (const kind of KINDS) {
        const want = expected(kind, need);
        const before = want === 'ok' ? '' : await fingerprint();
        const answer = await wsCall(leader.clientPort, tokens[kind], request());
        const label = `ws ${op} as ${kind}`;
        if (want === 'ok') {
          // delete of an absent key: NOT_FOUND, past the permission check.
          const code = (answer.error as { code?: string } | undefined)?.code;
          // Past the permission check: delete/unwatch of nothing, closing no session.
          t.ok(
            answer.ok === true || code === 'NOT_FOUND' || code === 'SESSION_EXPIRED',
            `${label}: allowed`,
            { answer },
          );
        } else {
          t.equal((answer.error as { code?: string }).code, want, label);
          t.equal(await fingerprint(), before, `${label}: nothing changed`);
        }
      }
    }
  });

  t.test('a token in the first message instead of the upgrade', async (t) => {
    const socket = new WebSocket(`ws://127.0.0.1:${leader.clientPort}/v1/ws`);
    const answers: Record<string, unknown>[] = [];
    socket.on('message', (data) => answers.push(JSON.parse(String(data)) as Record<string, unknown>));
    await new Promise((resolve) => socket.once('open', resolve));
    socket.send(JSON.stringify({ id: 1, op: 'get', realm: 'r1', key: 'k' }));
    socket.send(JSON.stringify({ id: 2, op: 'auth', token: 'cnc_bad' }));
    await waitFor('two answers', () => (answers.length >= 2 ? true : undefined));
    socket.send(JSON.stringify({ id: 3, op: 'auth', token: tokens.reader }));
    socket.send(JSON.stringify({ id: 4, op: 'get', realm: 'r1', key: 'k' }));
    socket.send(JSON.stringify({ id: 5, op: 'put', realm: 'r1', key: 'k', value: 0 }));
    await waitFor('five answers', () => (answers.length >= 5 ? true : undefined));
    socket.close();
    const byId = new Map(answers.map((a) => [a.id, a]));
    t.match(byId.get(1), { ok: false, error: { code: 'UNAUTHENTICATED' } });
    t.match(byId.get(2), { ok: false, error: { code: 'UNAUTHENTICATED' } });
    t.match(byId.get(3), { ok: true, result: { user: 'reader', clusterAdmin: false } });
    t.match(byId.get(4), { ok: true, result: { key: 'k' } });
    t.match(byId.get(5), { ok: false, error: { code: 'PERMISSION_DENIED' } });
  });

  t.test('the client library takes a token', async (t) => {
    const endpoints = cluster.nodes.map((n) => n.url);
    const writer = new Client({ endpoints, token: tokens.writer! });
    const reader = new Client({ endpoints, token: tokens.reader! });
    const anonymous = new Client({ endpoints, requestTimeoutMs: 3000 });
    t.teardown(() => Promise.all([writer.close(), reader.close(), anonymous.close()]));
    const put = await writer.put('r1', 'lib', { by: 'library' });
    t.ok(put.revision > 0);
    t.same((await reader.get('r1', 'lib')).value, { by: 'library' });
    await t.rejects(reader.put('r1', 'lib', 1), { code: 'PERMISSION_DENIED' });
    await t.rejects(anonymous.get('r1', 'lib'), { code: 'UNAUTHENTICATED' });
    t.throws(() => new Client({ endpoints, token: '' }), { code: 'INVALID_ARGUMENT' });
  });

  t.test(
    'a definition applied through a follower; the satellite shows it and refuses edits (READ_ONLY)',
    async (t) => {
      const follower = cluster.nodes.find((n) => n !== leader && n.name !== 'n4')!;
      const view = await ok(call(follower.url, 'GET', '/v1/definition', admin), 'definition at a follower');
      const definition = view.definition as {
        users: Record<string, unknown>;
        realms: Record<string, unknown>;
      };
      const target = {
        ...definition,
        realms: { ...definition.realms, fromfollower: { maxValueBytes: 4096 } },
        users: { ...definition.users, viaf: { clusterAdmin: false, grants: { fromfollower: 'write' } } },
      };
      const applied = await call(follower.url, 'PUT', '/v1/definition', admin, {
        definition: target,
        ifVersion: view.version,
      });
      t.equal(applied.status, 200, 'applied through a follower', { body: applied.body });
      t.same(applied.body.created, ['fromfollower']);
      const atLeader = await ok(root.call('GET', '/v1/definition'), 'at the leader');
      t.equal(atLeader.version, (view.version as number) + 1);
      t.same((atLeader.definition as typeof target).users.viaf, {
        clusterAdmin: false,
        grants: { fromfollower: 'write' },
      });

      const satellite = await cluster.addJoiner(['--role', 'satellite']);
      cluster.start(satellite);
      const shown = await waitFor(
        'the satellite shows the definition',
        async () => {
          const answer = await call(satellite.url, 'GET', '/v1/definition?consistency=stale', admin).catch(
            () => undefined,
          );
          return answer?.status === 200 && answer.body.version === atLeader.version ? answer : undefined;
        },
        30_000,
      );
      t.same(shown.body.definition, atLeader.definition, 'the same definition, read-only');
      const refused = await call(satellite.url, 'POST', '/v1/users', admin, { name: 'fromsatellite' });
      t.equal(refused.status, 403);
      t.equal(refused.body.code, 'READ_ONLY');
      t.equal(refused.body.leader, leader.name, 'naming the leader');
      t.match(String(refused.body.message), /satellite/);
      const data = await call(satellite.url, 'PUT', '/v1/realms/r1/kv/sat', tokens.writer, { v: 1 });
      t.equal(data.status, 200, 'documents are still written through a satellite');
      t.equal(
        (await call(satellite.url, 'GET', '/v1/realms/r1/kv/k', undefined)).status,
        401,
        'the satellite requires a token too',
      );
    },
  );

  t.test(
    'a revoked token is refused on every node (proxy included) within a second, and its watch ends',
    async (t) => {
      const proxy = await cluster.addProxy();
      cluster.startProxy(proxy);
      const victim = await tokenFor('reader');
      const everyone: { name: string; url: string }[] = [
        ...cluster.nodes.map((n: ClusterNode) => ({ name: n.name, url: n.url })),
        { name: proxy.name, url: proxy.url },
      ];
      await waitFor(
        'every node, the proxy included, serves the token',
        async () => {
          const answers = await Promise.all(
            everyone.map((n) => call(n.url, 'GET', '/v1/realms/r1/kv/k?consistency=stale', victim.token)),
          );
          return answers.every((a) => a.status === 200) ? true : undefined;
        },
        30_000,
      );
      t.equal(
        (await call(proxy.url, 'GET', '/v1/realms/r1/kv/k', undefined)).status,
        401,
        'the proxy requires a token',
      );
      t.equal(
        (await call(proxy.url, 'PUT', '/v1/realms/r1/kv/k', victim.token, { v: 1 })).status,
        403,
        'and checks permissions',
      );

      const socket = new WebSocket(`ws://127.0.0.1:${cluster.nodes[1]!.clientPort}/v1/ws`, {
        headers: { authorization: `Bearer ${victim.token}` },
      });
      let ended: Record<string, unknown> | undefined;
      socket.on('message', (data) => {
        const message = JSON.parse(String(data)) as Record<string, unknown>;
        if (message.type === 'watchEnded') ended = message;
      });
      await new Promise((resolve) => socket.once('open', resolve));
      socket.send(JSON.stringify({ id: 1, op: 'watch', realm: 'r1' }));
      await new Promise((resolve) => setTimeout(resolve, 300));

      await ok(root.call('DELETE', `/v1/tokens/${victim.id}`), 'revoke');
      const revokedAt = performance.now();
      const seen = new Map<string, number>();
      while (seen.size < everyone.length && performance.now() - revokedAt < 5000) {
        await Promise.all(
          everyone.map(async (n) => {
            if (seen.has(n.name)) return;
            const answer = await call(n.url, 'GET', '/v1/realms/r1/kv/k?consistency=stale', victim.token);
            if (answer.status === 401) seen.set(n.name, performance.now() - revokedAt);
          }),
        );
      }
      const worst = Math.max(...everyone.map((n) => seen.get(n.name) ?? Number.POSITIVE_INFINITY));
      t.comment(
        `refused after (ms): ${JSON.stringify(Object.fromEntries([...seen].map(([k, v]) => [k, Math.round(v)])))}`,
      );
      t.ok(worst <= 1000, `every node refuses the revoked token within 1 s (worst ${Math.round(worst)} ms)`);
      await waitFor('the watch ended', () => ended, 2000);
      t.match(ended, { type: 'watchEnded', error: { code: 'UNAUTHENTICATED' } }, 'its open watch ended');
      socket.close();
    },
  );
});
