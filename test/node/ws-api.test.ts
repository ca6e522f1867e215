// The /v1/ws WebSocket API through a real uWS edge and a `ws` client, backed by the real realm state machine on the memory engine.

import t, { type Test } from 'tap';
import { WS_MAX_WATCHES } from '../../src/ws-protocol.js';
import { GatedSource, type Message, startWsNode, until, type WsNode } from './ws-harness.js';

/** Small document limits, so TOO_LARGE is cheap to reach. */
const STORAGE = { keyMaxBytes: 64, valueMaxBytes: 4096 };

/** Asserts a failed answer to `id` with `code` (and the error body's fields). */
function isError(t: Test, answer: Message, id: string | number, code: string, what: string): void {
  t.match(
    answer,
    { id, ok: false, error: { code, message: String, retryable: code === 'UNAVAILABLE' } },
    `${what}: ${code}`,
  );
}

/** Writes `n` puts directly (not through the socket); resolves with their revisions. */
async function seed(node: WsNode, prefix: string, n: number): Promise<number[]> {
  const revisions: number[] = [];
  for (let i = 0; i < n; i++) revisions.push(await node.service.writer.put(`${prefix}${i}`, { i }));
  return revisions;
}

t.test('every op answers its id with the documented result', async (t) => {
  const node = await startWsNode(t, { storage: STORAGE });
  const c = await node.connect();

  const status = await c.request({ id: 1, op: 'status' });
  t.strictSame(status, { id: 1, ok: true, result: node.service.status() }, 'status: the NodeStatus');
  t.match(status.result, { name: 'n1', role: 'voter', revision: 1, members: [{ name: 'n1' }] });

  t.strictSame(await c.request({ id: 'realm', op: 'createRealm', realm: 'r2' }), {
    id: 'realm',
    ok: true,
    result: { name: 'r2', revision: 2 },
  });
  t.strictSame(await c.request({ id: 0, op: 'put', realm: 'default', key: 'a/1', value: { x: 1 } }), {
    id: 0,
    ok: true,
    result: { revision: 3 },
  });
  t.strictSame(await c.request({ id: -7, op: 'get', realm: 'default', key: 'a/1' }), {
    id: -7,
    ok: true,
    result: { key: 'a/1', value: { x: 1 }, createRevision: 3, modRevision: 3, version: 1 },
  });
  t.strictSame(
    await c.request({ id: 'g2', op: 'get', realm: 'default', key: 'a/1', consistency: 'stale' }),
    {
      id: 'g2',
      ok: true,
      result: { key: 'a/1', value: { x: 1 }, createRevision: 3, modRevision: 3, version: 1 },
    },
    'a stale get: the same document shape',
  );
  t.strictSame(
    await c.request({ id: 'p', op: 'patch', realm: 'default', key: 'a/1', patch: { y: 2 }, ifRevision: 3 }),
    {
      id: 'p',
      ok: true,
      result: { revision: 4 },
    },
  );
  t.strictSame(
    await c.request({ id: 'put2', op: 'put', realm: 'default', key: 'a/2', value: 2, ifAbsent: true }),
    {
      id: 'put2',
      ok: true,
      result: { revision: 5 },
    },
  );
  t.strictSame(await c.request({ id: 'l', op: 'list', realm: 'default', prefix: 'a/', limit: 1 }), {
    id: 'l',
    ok: true,
    result: {
      documents: [{ key: 'a/1', value: { x: 1, y: 2 }, createRevision: 3, modRevision: 4, version: 2 }],
      more: true,
      next: 'a/1',
      revision: 5,
    },
  });
  t.strictSame(await c.request({ id: 'l2', op: 'list', realm: 'default', prefix: 'a/', after: 'a/1' }), {
    id: 'l2',
    ok: true,
    result: {
      documents: [{ key: 'a/2', value: 2, createRevision: 5, modRevision: 5, version: 1 }],
      more: false,
      next: null,
      revision: 5,
    },
  });
  t.strictSame(
    await c.request({
      id: 'txn',
      op: 'txn',
      realm: 'default',
      compares: [{ key: 'a/2', target: 'version', op: 'eq', value: 1 }],
      success: [
        { type: 'put', key: 'a/3', value: 3 },
        { type: 'delete', key: 'a/2' },
      ],
      failure: [{ type: 'put', key: 'never', value: 0 }],
    }),
    {
      id: 'txn',
      ok: true,
      result: {
        succeeded: true,
        revision: 6,
        results: [
          { type: 'put', key: 'a/3', createRevision: 6, modRevision: 6, version: 1 },
          { type: 'delete', key: 'a/2', prevModRevision: 5 },
        ],
      },
    },
  );
  t.strictSame(
    await c.request({
      id: 'txn-f',
      op: 'txn',
      realm: 'default',
      compares: [{ key: 'a/2', target: 'exists', op: 'eq', value: true }],
      success: [],
    }),
    { id: 'txn-f', ok: true, result: { succeeded: false, revision: 6, results: [] } },
    'a compare that does not hold: succeeded false, nothing changed',
  );
  t.strictSame(await c.request({ id: 'd', op: 'delete', realm: 'default', key: 'a/3', ifRevision: 6 }), {
    id: 'd',
    ok: true,
    result: { revision: 7 },
  });
  const opened = await c.request({ id: 'os', op: 'openSession' });
  t.match(opened, { id: 'os', ok: true, result: { session: Number } });
  t.strictSame(Object.keys(opened.result), ['session']);
  t.strictSame(
    await c.request({ id: 'cs', op: 'closeSession', session: { id: opened.result.session, seq: 1 } }),
    {
      id: 'cs',
      ok: true,
      result: {},
    },
  );
  const watch = await c.request({ id: 'w', op: 'watch', realm: 'default', prefix: 'a/' });
  t.strictSame(watch, { id: 'w', ok: true, result: { watch: watch.result.watch, revision: 7 } });
  t.equal(typeof watch.result.watch, 'number');
  t.equal(node.hub.subscriptions, 1);
  t.strictSame(await c.request({ id: 'uw', op: 'unwatch', watch: watch.result.watch }), {
    id: 'uw',
    ok: true,
    result: {},
  });
  t.equal(node.hub.subscriptions, 0);

  // Commands' own failures answer with the HTTP API's codes.
  isError(
    t,
    await c.request({ id: 'nf', op: 'get', realm: 'default', key: 'a/2' }),
    'nf',
    'NOT_FOUND',
    'a deleted key',
  );
  isError(
    t,
    await c.request({ id: 'nr', op: 'get', realm: 'nope', key: 'k' }),
    'nr',
    'NOT_FOUND',
    'no such realm',
  );
  isError(
    t,
    await c.request({ id: 'cf', op: 'put', realm: 'default', key: 'a/1', value: 0, ifRevision: 3 }),
    'cf',
    'CONFLICT',
    'a stale ifRevision',
  );
  isError(
    t,
    await c.request({ id: 'ex', op: 'put', realm: 'default', key: 'a/1', value: 0, ifAbsent: true }),
    'ex',
    'CONFLICT',
    'ifAbsent on a present key',
  );
  isError(
    t,
    await c.request({ id: 'rr', op: 'createRealm', realm: 'r2' }),
    'rr',
    'CONFLICT',
    'a realm twice',
  );
  isError(
    t,
    await c.request({ id: 'big', op: 'put', realm: 'default', key: 'big', value: 'x'.repeat(5000) }),
    'big',
    'TOO_LARGE',
    'a document over valueMaxBytes',
  );
  isError(
    t,
    await c.request({ id: 'kb', op: 'put', realm: 'default', key: 'k'.repeat(65), value: 1 }),
    'kb',
    'TOO_LARGE',
    'a key over keyMaxBytes',
  );
  t.equal(node.group.state.revision, 7, 'the failures changed nothing');
  // Every message was an answer to exactly one request.
  t.ok(
    c.received.every((m) => 'id' in m && 'ok' in m),
    'no unsolicited messages',
  );
});

t.test('answers to concurrent requests carry their own ids', async (t) => {
  const node = await startWsNode(t);
  const c = await node.connect();
  await seed(node, 'p/', 20);
  const base = node.group.state.revision;
  const puts = Array.from({ length: 30 }, (_, i) => ({
    id: i * 3,
    op: 'put',
    realm: 'default',
    key: `c/${i}`,
    value: i,
  }));
  const gets = Array.from({ length: 20 }, (_, i) => ({
    id: `get-${i}`,
    op: 'get',
    realm: 'default',
    key: `p/${i}`,
  }));
  const lists = Array.from({ length: 20 }, (_, i) => ({
    id: -(i + 1),
    op: 'list',
    realm: 'default',
    prefix: 'p/',
    limit: i + 1,
    consistency: 'stale',
  }));
  // Interleaved, all sent before any answer is read.
  const all = [...puts, ...gets, ...lists].sort((a, b) => String(a.id).localeCompare(String(b.id)));
  const answers = new Map<unknown, Promise<Message>>();
  for (const request of all) answers.set(request.id, c.answerTo(request.id));
  for (const request of all) c.send(request);

  const revisions = new Set<number>();
  for (const [i, put] of puts.entries()) {
    const answer = await answers.get(put.id)!;
    t.match(answer, { id: put.id, ok: true, result: { revision: Number } });
    revisions.add(answer.result.revision);
    t.match(
      await node.service.get('default', `c/${i}`, 'stale'),
      { ok: true, value: { value: i } },
      `c/${i} holds ${i}`,
    );
  }
  t.strictSame(
    [...revisions].sort((a, b) => a - b),
    Array.from({ length: 30 }, (_, i) => base + 1 + i),
    'each put got its own revision',
  );
  for (const [i, get] of gets.entries()) {
    t.match(await answers.get(get.id)!, { id: get.id, ok: true, result: { key: `p/${i}`, value: { i } } });
  }
  const keys = Array.from({ length: 20 }, (_, j) => `p/${j}`).sort();
  for (const [i, list] of lists.entries()) {
    const answer = await answers.get(list.id)!;
    t.equal(answer.id, list.id);
    t.strictSame(
      answer.result.documents.map((d: Message) => d.key),
      keys.slice(0, i + 1),
      `list ${list.id}: its own limit (${i + 1})`,
    );
  }
  await c.request({ op: 'status' });
  const ids = c.received.map((m) => m.id);
  t.equal(ids.length, all.length + 1, 'one answer per request, nothing else');
  t.equal(new Set(ids).size, ids.length, 'no id answered twice');
});

t.test('bad input gets stable codes, changes nothing and keeps the connection open', async (t) => {
  const node = await startWsNode(t, { storage: STORAGE });
  const c = await node.connect();
  await seed(node, 'k/', 2);
  const revision = node.group.state.revision;
  const writes = node.service.writes.length;

  // Unreadable messages: answered {"type": "error"} without an id.
  const unreadable: [string, string | Buffer][] = [
    ['not JSON', 'not json {'],
    ['binary', Buffer.from(JSON.stringify({ id: 1, op: 'status' }))],
    ['an array', '[1,2]'],
    ['a string', '"status"'],
    ['a number', '42'],
    ['null', 'null'],
    ['no id', JSON.stringify({ op: 'status' })],
    ['an empty id', JSON.stringify({ id: '', op: 'status' })],
    ['a fractional id', JSON.stringify({ id: 1.5, op: 'status' })],
    ['an unsafe integer id', JSON.stringify({ id: 2 ** 53, op: 'status' })],
    ['a boolean id', JSON.stringify({ id: true, op: 'status' })],
    ['a null id', JSON.stringify({ id: null, op: 'status' })],
    ['an object id', JSON.stringify({ id: { a: 1 }, op: 'status' })],
    ['an id over 128 characters', JSON.stringify({ id: 'x'.repeat(129), op: 'status' })],
  ];
  for (const [what, raw] of unreadable) {
    c.sendRaw(raw);
    const message = await c.take((m) => m?.type === 'error', what);
    t.match(message, { type: 'error', error: { code: 'INVALID_ARGUMENT', message: String } }, what);
    t.notOk('id' in message, `${what}: no id`);
    t.equal(message.error.retryable, false, `${what}: retryable is false`);
  }
  t.strictSame(
    (await c.request({ id: 'x'.repeat(128), op: 'status' })).id,
    'x'.repeat(128),
    'an id of 128 characters is fine',
  );

  const session = (await c.request({ op: 'openSession' })).result.session as number;
  const sessionRevision = node.group.state.revision;
  const sessionWrites = node.service.writes.length;
  t.equal(sessionRevision, revision, 'opening a session makes no revision');

  const put = { op: 'put', realm: 'default', key: 'k/0', value: 1 };
  const bad: [string, Record<string, unknown>, string][] = [
    ['no op', {}, 'INVALID_ARGUMENT'],
    ['a numeric op', { op: 7 }, 'INVALID_ARGUMENT'],
    ['an unknown op', { op: 'frobnicate', realm: 'default' }, 'INVALID_ARGUMENT'],
    // Unknown fields.
    ['put with an unknown field', { ...put, bogus: 1 }, 'INVALID_ARGUMENT'],
    [
      'get with a session',
      { op: 'get', realm: 'default', key: 'k/0', session: { id: session, seq: 1 } },
      'INVALID_ARGUMENT',
    ],
    ['list with an unknown field', { op: 'list', realm: 'default', bogus: 1 }, 'INVALID_ARGUMENT'],
    [
      'txn with an unknown field',
      { op: 'txn', realm: 'default', compares: [], success: [], bogus: 1 },
      'INVALID_ARGUMENT',
    ],
    ['watch with an unknown field', { op: 'watch', realm: 'default', bogus: 1 }, 'INVALID_ARGUMENT'],
    ['openSession with an unknown field', { op: 'openSession', bogus: 1 }, 'INVALID_ARGUMENT'],
    ['openSession with a realm that is not a string', { op: 'openSession', realm: 5 }, 'INVALID_ARGUMENT'],
    ['createRealm with an unknown field', { op: 'createRealm', realm: 'r9', bogus: 1 }, 'INVALID_ARGUMENT'],
    // Wrong types and values.
    ['a numeric realm', { ...put, realm: 5 }, 'INVALID_ARGUMENT'],
    ['no realm', { op: 'put', key: 'k/0', value: 1 }, 'INVALID_ARGUMENT'],
    ['a bad realm name', { ...put, realm: 'no such/realm' }, 'INVALID_ARGUMENT'],
    ['a numeric key', { ...put, key: 7 }, 'INVALID_ARGUMENT'],
    ['put without a value', { op: 'put', realm: 'default', key: 'k/0' }, 'INVALID_ARGUMENT'],
    ['patch without a patch', { op: 'patch', realm: 'default', key: 'k/0' }, 'INVALID_ARGUMENT'],
    ['a word as ifRevision', { ...put, ifRevision: 'x' }, 'INVALID_ARGUMENT'],
    ['an object as ifRevision', { ...put, ifRevision: {} }, 'INVALID_ARGUMENT'],
    ['a negative ifRevision', { ...put, ifRevision: -1 }, 'INVALID_ARGUMENT'],
    ['a fractional ifRevision', { ...put, ifRevision: 1.5 }, 'INVALID_ARGUMENT'],
    ['ifRevision and ifAbsent', { ...put, ifRevision: 1, ifAbsent: true }, 'INVALID_ARGUMENT'],
    ['a word as ifAbsent', { ...put, ifAbsent: 'maybe' }, 'INVALID_ARGUMENT'],
    [
      'a bad consistency',
      { op: 'get', realm: 'default', key: 'k/0', consistency: 'bogus' },
      'INVALID_ARGUMENT',
    ],
    ['list limit 0', { op: 'list', realm: 'default', limit: 0 }, 'INVALID_ARGUMENT'],
    ['list limit as a word', { op: 'list', realm: 'default', limit: 'abc' }, 'INVALID_ARGUMENT'],
    ['list with an empty after', { op: 'list', realm: 'default', after: '' }, 'INVALID_ARGUMENT'],
    ['list with an array prefix', { op: 'list', realm: 'default', prefix: ['a'] }, 'INVALID_ARGUMENT'],
    [
      'txn compares not a list',
      { op: 'txn', realm: 'default', compares: 'x', success: [] },
      'INVALID_ARGUMENT',
    ],
    ['txn without success', { op: 'txn', realm: 'default', compares: [] }, 'INVALID_ARGUMENT'],
    [
      'a txn op of an unknown type',
      { op: 'txn', realm: 'default', compares: [], success: [{ type: 'upsert', key: 'k/0', value: 1 }] },
      'INVALID_ARGUMENT',
    ],
    ['createRealm with a numeric name', { op: 'createRealm', realm: 5 }, 'INVALID_ARGUMENT'],
    ['createRealm with a bad name', { op: 'createRealm', realm: 'bad name!' }, 'INVALID_ARGUMENT'],
    ['watch without a realm', { op: 'watch' }, 'INVALID_ARGUMENT'],
    ['watch with a numeric prefix', { op: 'watch', realm: 'default', prefix: 5 }, 'INVALID_ARGUMENT'],
    ['watch from 0', { op: 'watch', realm: 'default', fromRevision: 0 }, 'INVALID_ARGUMENT'],
    ['watch from -1', { op: 'watch', realm: 'default', fromRevision: -1 }, 'INVALID_ARGUMENT'],
    ['watch from 1.5', { op: 'watch', realm: 'default', fromRevision: 1.5 }, 'INVALID_ARGUMENT'],
    ['watch from a word', { op: 'watch', realm: 'default', fromRevision: 'x' }, 'INVALID_ARGUMENT'],
    ['watch of a missing realm', { op: 'watch', realm: 'nope' }, 'NOT_FOUND'],
    // Empty keys.
    ['put of an empty key', { ...put, key: '' }, 'INVALID_ARGUMENT'],
    ['get of an empty key', { op: 'get', realm: 'default', key: '' }, 'INVALID_ARGUMENT'],
    ['patch of an empty key', { op: 'patch', realm: 'default', key: '', patch: {} }, 'INVALID_ARGUMENT'],
    ['delete of an empty key', { op: 'delete', realm: 'default', key: '' }, 'INVALID_ARGUMENT'],
    [
      'a txn on an empty key',
      { op: 'txn', realm: 'default', compares: [], success: [{ type: 'put', key: '', value: 1 }] },
      'INVALID_ARGUMENT',
    ],
    // Bad sessions.
    ['a session that is a string', { ...put, session: 'x' }, 'INVALID_ARGUMENT'],
    ['a null session', { ...put, session: null }, 'INVALID_ARGUMENT'],
    ['a session that is a number', { ...put, session: session }, 'INVALID_ARGUMENT'],
    ['a session without seq', { ...put, session: { id: session } }, 'INVALID_ARGUMENT'],
    ['a session without id', { ...put, session: { seq: 1 } }, 'INVALID_ARGUMENT'],
    ['session id 0', { ...put, session: { id: 0, seq: 1 } }, 'INVALID_ARGUMENT'],
    ['session seq 0', { ...put, session: { id: session, seq: 0 } }, 'INVALID_ARGUMENT'],
    ['a negative session id', { ...put, session: { id: -1, seq: 1 } }, 'INVALID_ARGUMENT'],
    ['a fractional session id', { ...put, session: { id: 1.5, seq: 1 } }, 'INVALID_ARGUMENT'],
    ['a string session id', { ...put, session: { id: String(session), seq: 1 } }, 'INVALID_ARGUMENT'],
    ['a negative ack', { ...put, session: { id: session, seq: 1, ack: -1 } }, 'INVALID_ARGUMENT'],
    [
      'a session with an unknown field',
      { ...put, session: { id: session, seq: 1, bogus: 1 } },
      'INVALID_ARGUMENT',
    ],
    ['closeSession without a session', { op: 'closeSession' }, 'INVALID_ARGUMENT'],
    [
      'closeSession with a string id',
      { op: 'closeSession', session: { id: 'x', seq: 1 } },
      'INVALID_ARGUMENT',
    ],
    ['closeSession without seq', { op: 'closeSession', session: { id: session } }, 'INVALID_ARGUMENT'],
    ['closeSession of id 0', { op: 'closeSession', session: { id: 0, seq: 1 } }, 'INVALID_ARGUMENT'],
    // Watches this connection does not hold.
    ['unwatch of an unknown watch', { op: 'unwatch', watch: 999 }, 'NOT_FOUND'],
    ['unwatch of a string watch', { op: 'unwatch', watch: '1' }, 'NOT_FOUND'],
    ['unwatch without a watch', { op: 'unwatch' }, 'NOT_FOUND'],
  ];
  for (const [i, [what, fields, code]] of bad.entries()) {
    const id = `bad-${i}`;
    isError(t, await c.request({ id, ...fields }), id, code, what);
  }
  t.equal(node.group.state.revision, revision, 'no revision was made');
  t.equal(node.service.writes.length, sessionWrites, 'nothing was proposed');
  t.equal(sessionWrites, writes + 1, '(but the openSession)');
  t.strictSame(
    await c.request({ id: 'after', op: 'get', realm: 'default', key: 'k/0' }),
    {
      id: 'after',
      ok: true,
      result: { key: 'k/0', value: { i: 0 }, createRevision: 2, modRevision: 2, version: 1 },
    },
    'the document is as it was',
  );
  t.equal(node.hub.subscriptions, 0, 'no watch was made');
  t.ok(c.open, 'the connection is still open');
  t.equal(c.closeInfo, undefined);
  t.equal(node.edge.counters().wsClosed, 0, 'the node closed nothing');
  t.equal((await c.request({ op: 'status' })).ok, true, 'and still answers');
});

t.test(
  'fields the protocol does not define are refused on every op; numbers and booleans must be JSON numbers and booleans',
  async (t) => {
    const node = await startWsNode(t);
    const c = await node.connect();
    await seed(node, 'k/', 3);
    const revision = node.group.state.revision;
    const code = (answer: Message) => (answer.ok ? 'ok' : answer.error.code);

    t.equal(code(await c.request({ op: 'status', bogus: 1 })), 'INVALID_ARGUMENT', 'status with a field');
    t.equal(
      code(await c.request({ op: 'unwatch', watch: 999, bogus: 1 })),
      'INVALID_ARGUMENT',
      'unwatch with an unknown field',
    );
    t.equal(
      code(await c.request({ op: 'closeSession', session: { id: 999_999, seq: 1, bogus: 1 } })),
      'INVALID_ARGUMENT',
      'closeSession with an unknown session field',
    );
    t.equal(
      code(await c.request({ op: 'put', realm: 'default', key: 'new', value: 1, ifRevision: '0' })),
      'INVALID_ARGUMENT',
      'ifRevision as a string',
    );
    t.equal(
      code(await c.request({ op: 'put', realm: 'default', key: 'new2', value: 1, ifAbsent: 'true' })),
      'INVALID_ARGUMENT',
      'ifAbsent as a string',
    );
    t.equal(
      code(await c.request({ op: 'list', realm: 'default', limit: '1' })),
      'INVALID_ARGUMENT',
      'limit as a string',
    );
    t.equal(
      code(await c.request({ op: 'list', realm: 'default', prefix: 5 })),
      'INVALID_ARGUMENT',
      'prefix as a number',
    );
    t.equal(node.group.state.revision, revision, 'nothing changed');
    t.ok(c.open, 'the connection stays open');
  },
);

t.test('a write retried in its session answers the first result and applies once', async (t) => {
  const node = await startWsNode(t);
  const c = await node.connect();
  const other = await node.connect();
  const session = (await c.request({ op: 'openSession' })).result.session as number;
  const revision = () => node.group.state.revision;

  const first = await c.request({
    op: 'put',
    realm: 'default',
    key: 's',
    value: 1,
    session: { id: session, seq: 1 },
  });
  t.match(first, { ok: true, result: { revision: Number } });
  const r1 = first.result.revision as number;
  for (const [what, client, value] of [
    ['the same request again', c, 1],
    ['another value, same seq', c, 2],
    ['on another connection', other, 3],
  ] as const) {
    t.strictSame(
      (
        await client.request({
          op: 'put',
          realm: 'default',
          key: 's',
          value,
          session: { id: session, seq: 1 },
        })
      ).result,
      { revision: r1 },
      `${what}: the first answer`,
    );
  }
  t.equal(revision(), r1, 'the revision did not move');
  t.match((await c.request({ op: 'get', realm: 'default', key: 's' })).result, {
    value: 1,
    version: 1,
    modRevision: r1,
  });

  // Retries racing each other.
  const racing = await Promise.all(
    Array.from({ length: 4 }, (_, i) =>
      (i % 2 === 0 ? c : other).request({
        op: 'put',
        realm: 'default',
        key: 'race',
        value: i,
        session: { id: session, seq: 2 },
      }),
    ),
  );
  t.equal(new Set(racing.map((a) => JSON.stringify(a.result))).size, 1, 'racing retries: one answer');
  t.equal(racing[0].result.revision, r1 + 1);
  t.match((await c.request({ op: 'get', realm: 'default', key: 'race' })).result, { version: 1 });

  // Every write op, retried.
  const retried: [string, Record<string, unknown>][] = [
    ['patch', { op: 'patch', realm: 'default', key: 's', patch: { p: 1 } }],
    [
      'txn',
      {
        op: 'txn',
        realm: 'default',
        compares: [{ key: 's', target: 'version', op: 'eq', value: 2 }],
        success: [{ type: 'put', key: 't', value: 't' }],
        failure: [{ type: 'put', key: 'f', value: 'f' }],
      },
    ],
    ['delete', { op: 'delete', realm: 'default', key: 't' }],
    ['createRealm', { op: 'createRealm', realm: 'sessions' }],
  ];
  let seq = 3;
  for (const [what, fields] of retried) {
    const answer = await c.request({ ...fields, session: { id: session, seq } });
    t.equal(answer.ok, true, `${what}: applied`);
    const at = revision();
    const again = await other.request({ ...fields, session: { id: session, seq } });
    t.strictSame(again.result, answer.result, `${what}: the retry answers the first result`);
    t.equal(revision(), at, `${what}: applied once`);
    seq++;
  }
  t.strictSame(
    (await c.request({ op: 'get', realm: 'default', key: 's' })).result.value,
    { p: 1 },
    'patched once',
  );
  t.match((await c.request({ op: 'get', realm: 'default', key: 's' })).result, { version: 2 });
  t.equal(
    (await c.request({ op: 'list', realm: 'default', prefix: 'f' })).result.documents.length,
    0,
    'the txn was not retried into its failure branch',
  );
  const sessionWrites = node.service.writes.filter((w) => w.session?.id === session);
  t.equal(
    sessionWrites.length,
    4 + 4 + 4 * 2,
    'every retry reached the state machine (which answered it from the session)',
  );

  // Acknowledged answers are forgotten: retrying one has an unknown fate.
  const acked = await c.request({
    op: 'put',
    realm: 'default',
    key: 'a',
    value: 1,
    session: { id: session, seq, ack: seq - 1 },
  });
  t.equal(acked.ok, true);
  const atAck = revision();
  const old = await c.request({
    op: 'put',
    realm: 'default',
    key: 's',
    value: 9,
    session: { id: session, seq: 1 },
  });
  isError(t, old, old.id, 'SESSION_EXPIRED', 'a retry of an acknowledged seq');
  t.equal(revision(), atAck, 'and it changed nothing');

  // A closed session, and one that never was.
  t.equal((await c.request({ op: 'closeSession', session: { id: session, seq: seq + 1 } })).ok, true);
  const closed = await c.request({
    op: 'put',
    realm: 'default',
    key: 'z',
    value: 1,
    session: { id: session, seq: seq + 2 },
  });
  isError(t, closed, closed.id, 'SESSION_EXPIRED', 'a write in a closed session');
  const unknown = await c.request({
    op: 'put',
    realm: 'default',
    key: 'z',
    value: 1,
    session: { id: 987_654, seq: 1 },
  });
  isError(t, unknown, unknown.id, 'SESSION_EXPIRED', 'a write in an unknown session');
  const unknownTxn = await c.request({
    op: 'txn',
    realm: 'default',
    compares: [],
    success: [{ type: 'put', key: 'z', value: 1 }],
    session: { id: 987_654, seq: 1 },
  });
  isError(t, unknownTxn, unknownTxn.id, 'SESSION_EXPIRED', 'a txn in an unknown session');
  t.equal(revision(), atAck, 'none of them changed anything');
  isError(
    t,
    await c.request({ id: 'nz', op: 'get', realm: 'default', key: 'z' }),
    'nz',
    'NOT_FOUND',
    'z was never written',
  );
});

t.test(
  'a watch without fromRevision gets only later changes, in order, a transaction in one message',
  async (t) => {
    const node = await startWsNode(t);
    const c = await node.connect();
    await seed(node, 'w/', 3);
    const watch = await c.request({ op: 'watch', realm: 'default', prefix: 'w/' });
    const W = watch.result.watch as number;
    const R = watch.result.revision as number;
    t.equal(R, node.group.state.revision, 'the answer carries the revision now');
    const writer = node.service.writer;
    const r1 = await writer.put('w/a', { a: 1 });
    await writer.put('x/a', 1);
    const r2 = await writer.put('w/0', 'again');
    const r3 = (await writer.write({ type: 'delete', realm: 'default', key: 'w/a' })).revision;
    const r4 = (
      await writer.write({
        type: 'txn',
        realm: 'default',
        compares: [],
        success: [
          { type: 'put', key: 'w/t1', value: 1 },
          { type: 'put', key: 'x/t', value: 1 },
          { type: 'put', key: 'w/t2', value: 2 },
        ],
      })
    ).revision;
    await until(() => c.eventsOf(W).at(-1)?.modRevision === r4, 'the transaction');
    t.strictSame(c.batchesOf(W), [
      [{ type: 'put', key: 'w/a', value: { a: 1 }, modRevision: r1, createRevision: r1, version: 1 }],
      [{ type: 'put', key: 'w/0', value: 'again', modRevision: r2, createRevision: 2, version: 2 }],
      [{ type: 'delete', key: 'w/a', value: null, modRevision: r3 }],
      [
        { type: 'put', key: 'w/t1', value: 1, modRevision: r4, createRevision: r4, version: 1 },
        { type: 'put', key: 'w/t2', value: 2, modRevision: r4, createRevision: r4, version: 1 },
      ],
    ]);
    t.equal(r1, R + 1, 'the first change after the watch is the first delivered');
    t.ok(
      c.received
        .filter((m) => m.type === 'events')
        .every((m) => Object.keys(m).sort().join() === 'events,type,watch'),
      'events messages are exactly {type, watch, events}',
    );
  },
);

t.test('a watch from a revision replays history, then goes live; the answer comes first', async (t) => {
  const node = await startWsNode(t, { hub: { pageEvents: 3 } });
  const c = await node.connect();
  const earlier = await seed(node, 'h/', 20);
  await seed(node, 'other/', 2);
  const from = earlier[4]!;
  c.send({ id: 'w', op: 'watch', realm: 'default', prefix: 'h/', fromRevision: from });
  const answer = await c.answerTo('w');
  const W = answer.result.watch as number;
  const later = await seed(node, 'h/live', 5);
  const expected = [...earlier.slice(4), ...later];
  await until(() => c.eventsOf(W).at(-1)?.modRevision === later.at(-1), 'the live changes');
  t.strictSame(
    c.eventsOf(W).map((e: Message) => e.modRevision),
    expected,
    'every change from fromRevision on, once, in order',
  );
  const answerAt = c.received.indexOf(answer);
  const firstEvents = c.received.findIndex((m) => m.type === 'events' && m.watch === W);
  t.ok(
    answerAt >= 0 && answerAt < firstEvents,
    `the answer (message ${answerAt}) before the first events (${firstEvents})`,
  );
  t.ok(c.batchesOf(W).length >= 5, 'history came in pages');

  // Resuming elsewhere from the last revision received + 1 continues exactly.
  const d = await node.connect();
  const resumed = await d.request({
    op: 'watch',
    realm: 'default',
    prefix: 'h/',
    fromRevision: later[2]! + 1,
  });
  await until(() => d.eventsOf(resumed.result.watch).length === 2, 'the resumed watch');
  t.strictSame(
    d.eventsOf(resumed.result.watch).map((e: Message) => e.modRevision),
    later.slice(3),
  );
});

t.test('a watch from a compacted revision answers COMPACTED with the current revision', async (t) => {
  const node = await startWsNode(t, { storage: { historyMaxRevisions: 8 } });
  const c = await node.connect();
  await seed(node, 'k/', 30);
  const answer = await c.request({ id: 'old', op: 'watch', realm: 'default', fromRevision: 2 });
  t.strictSame(answer.error.revision, node.group.state.revision);
  isError(t, answer, 'old', 'COMPACTED', 'a watch from revision 2');
  const floor = node.group.state.meta.historyFloor;
  isError(
    t,
    await c.request({ id: 'floor', op: 'watch', realm: 'default', fromRevision: floor }),
    'floor',
    'COMPACTED',
    'from the floor',
  );
  const ok = await c.request({ op: 'watch', realm: 'default', fromRevision: floor + 1 });
  t.equal(ok.ok, true, 'from the floor + 1');
  t.equal(node.hub.subscriptions, 1);
});

t.test('unwatch stops a watch; closing the socket cancels all of its watches', async (t) => {
  const node = await startWsNode(t);
  const c = await node.connect();
  const a = (await c.request({ op: 'watch', realm: 'default', prefix: 'a/' })).result.watch as number;
  const all = (await c.request({ op: 'watch', realm: 'default' })).result.watch as number;
  t.not(a, all, 'distinct watch ids');
  t.equal(node.hub.subscriptions, 2);
  t.strictSame(await c.request({ id: 'u', op: 'unwatch', watch: a }), { id: 'u', ok: true, result: {} });
  t.equal(node.hub.subscriptions, 1);
  isError(t, await c.request({ id: 'u2', op: 'unwatch', watch: a }), 'u2', 'NOT_FOUND', 'unwatch twice');
  const r = await node.service.writer.put('a/1', 1);
  await until(() => c.eventsOf(all).length === 1, 'the other watch saw the write');
  t.strictSame(c.eventsOf(a), [], 'nothing for the unwatched watch');
  t.equal(c.eventsOf(all)[0].modRevision, r);

  // Another connection cannot unwatch this one's watch.
  const d = await node.connect();
  isError(
    t,
    await d.request({ id: 'x', op: 'unwatch', watch: all }),
    'x',
    'NOT_FOUND',
    "another connection's watch",
  );
  t.equal(node.hub.subscriptions, 1);

  // A closed socket takes its watches with it, cleanly or not.
  for (let i = 0; i < 3; i++) await d.request({ op: 'watch', realm: 'default', prefix: `d${i}/` });
  const e = await node.connect();
  for (let i = 0; i < 2; i++)
    t.equal((await e.request({ op: 'watch', realm: 'default', fromRevision: 2 })).ok, true);
  t.equal(node.hub.subscriptions, 6);
  await c.close();
  await until(() => node.hub.subscriptions === 5, "c's watch cancelled");
  await d.close();
  await until(() => node.hub.subscriptions === 2, "d's watches cancelled");
  e.terminate();
  await until(() => node.hub.subscriptions === 0, "e's watches cancelled after a dropped connection");
  // The node still serves.
  const f = await node.connect();
  t.equal((await f.request({ op: 'status' })).ok, true);
});

t.test('watch requests pending when their socket closes leave nothing behind', async (t) => {
  let source: GatedSource | undefined;
  const node = await startWsNode(t, {
    source: (store) => {
      source = new GatedSource(store);
      return source;
    },
  });
  await seed(node, 'k/', 10);
  const c = await node.connect();
  source!.close();
  for (let i = 0; i < 20; i++) c.send({ id: i, op: 'watch', realm: 'default', fromRevision: 2 });
  await until(() => source!.calls === 20, 'all twenty waiting on their first history read');
  c.terminate();
  await until(() => node.edge.counters().wsClosed === 1, 'the node saw the close');
  source!.release();
  await until(() => node.hub.subscriptions === 0, 'no subscription left');
  await node.service.writer.put('k/after', 1);
  t.equal(node.hub.subscriptions, 0, 'each was cancelled once subscribed to a closed socket');
  t.equal(node.edge.counters().wsMessagesOut, 0, 'nothing was sent to the closed socket');
});

t.test(
  'a connection holds at most WS_MAX_WATCHES watches, also when asked for them all at once',
  async (t) => {
    let source: GatedSource | undefined;
    const node = await startWsNode(t, {
      source: (store) => {
        source = new GatedSource(store);
        return source;
      },
    });
    const c = await node.connect();
    const n = WS_MAX_WATCHES + 16;
    // A slow disk: every request's first history read waits until all requests are in.
    source!.close();
    const answers = Array.from({ length: n }, (_, i) => c.answerTo(i));
    let refusedEarly = 0;
    for (const answer of answers) void answer.then((a) => !a.ok && refusedEarly++);
    for (let i = 0; i < n; i++) c.send({ id: i, op: 'watch', realm: 'default', prefix: `p${i}/` });
    await until(() => source!.calls + refusedEarly === n, 'every request refused or reading history');
    source!.release();
    const settled = await Promise.all(answers);
    const accepted = settled.filter((a) => a.ok).length;
    for (const refused of settled.filter((a) => !a.ok)) {
      t.match(refused.error, { code: 'INVALID_ARGUMENT' }, 'the rest refused');
    }
    t.ok(accepted <= WS_MAX_WATCHES, `at most ${WS_MAX_WATCHES} accepted (accepted ${accepted})`);
    t.equal(node.hub.subscriptions, accepted, 'the hub holds what was accepted');
    await c.close();
    await until(() => node.hub.subscriptions === 0, 'all cancelled on close');
  },
);

t.test('without a slow disk, WS_MAX_WATCHES holds and the next watch is refused', async (t) => {
  const node = await startWsNode(t);
  const c = await node.connect();
  const answers = Array.from({ length: WS_MAX_WATCHES }, (_, i) => c.answerTo(i));
  for (let i = 0; i < WS_MAX_WATCHES; i++) c.send({ id: i, op: 'watch', realm: 'default', prefix: `p${i}/` });
  t.equal((await Promise.all(answers)).filter((a) => a.ok).length, WS_MAX_WATCHES, 'all accepted');
  t.equal(node.hub.subscriptions, WS_MAX_WATCHES);
  isError(
    t,
    await c.request({ id: 'one-more', op: 'watch', realm: 'default' }),
    'one-more',
    'INVALID_ARGUMENT',
    'watch 1025',
  );
  const other = await node.connect();
  t.equal((await other.request({ op: 'watch', realm: 'default' })).ok, true, 'the limit is per connection');
});

t.test('a stopping node ends watches with UNAVAILABLE and closes with 1001', async (t) => {
  const node = await startWsNode(t);
  const c = await node.connect();
  const W = (await c.request({ op: 'watch', realm: 'default' })).result.watch as number;
  node.hub.stop();
  const ended = await c.take((m) => m.type === 'watchEnded', 'watchEnded');
  t.match(ended, {
    type: 'watchEnded',
    watch: W,
    error: { code: 'UNAVAILABLE', retryable: true, message: String },
  });
  t.equal(node.hub.subscriptions, 0);
  isError(
    t,
    await c.request({ id: 'w', op: 'watch', realm: 'default' }),
    'w',
    'UNAVAILABLE',
    'a watch after stop',
  );
  await node.edge.stop();
  t.strictSame((await c.closed).code, 1001, 'GOING_AWAY');
});

t.test('a client that stops reading is closed with 4008; the node keeps serving others', async (t) => {
  const node = await startWsNode(t, {
    edge: { maxWsBackpressureBytes: 64 * 1024 },
    storage: { historyMaxBytes: 4 * 1024 * 1024 },
  });
  const slow = await node.connect();
  const good = await node.connect();
  const slowWatch = (await slow.request({ op: 'watch', realm: 'default', prefix: 'big/' })).result
    .watch as number;
  const goodWatch = (await good.request({ op: 'watch', realm: 'default', prefix: 'big/' })).result
    .watch as number;
  t.equal(node.hub.subscriptions, 2);
  slow.pauseReading();

  const value = 'v'.repeat(32 * 1024);
  const revisions: number[] = [];
  // Each write's events (~128 KiB) reach the good client before the next write; the slow
  // client's kernel buffers fill, then its node-side queue passes the limit.
  for (let i = 0; node.edge.counters().wsSlowConsumersClosed === 0; i++) {
    if (i >= 2_000) throw new Error('the slow client was never closed');
    const result = await node.service.writer.write({
      type: 'txn',
      realm: 'default',
      compares: [],
      success: [0, 1, 2, 3].map((j) => ({ type: 'put' as const, key: `big/${i}/${j}`, value })),
    });
    revisions.push(result.revision);
    await until(
      () => good.eventsOf(goodWatch).at(-1)?.modRevision === result.revision,
      `write ${i} at the good client`,
    );
  }
  t.ok(revisions.length > 1, `closed after ${revisions.length} writes`);
  t.equal(node.logger.events('websocket_slow_consumer').length, 1, 'logged once');
  t.match(node.logger.events('websocket_slow_consumer')[0], { bufferedBytes: Number });
  await until(() => node.hub.subscriptions === 1, "the slow client's watch cancelled");

  // The others are served: the good client's watch saw every write, and requests answer.
  t.strictSame(
    good.eventsOf(goodWatch).map((e: Message) => e.modRevision),
    revisions.flatMap((r) => [r, r, r, r]),
    'the good client got every event',
  );
  const r = (await good.request({ op: 'put', realm: 'default', key: 'big/after', value: 1 })).result.revision;
  await until(() => good.eventsOf(goodWatch).at(-1)?.modRevision === r, 'a later event');
  t.match((await good.request({ op: 'get', realm: 'default', key: 'big/after' })).result, { value: 1 });
  const fresh = await node.connect();
  t.equal((await fresh.request({ op: 'status' })).ok, true, 'a new client is served');

  // Once the slow client reads again, it finds the close with 4008 after what was sent.
  slow.resumeReading();
  const closed = await slow.closed;
  t.equal(closed.code, 4008, 'SLOW_CONSUMER');
  const got = slow.eventsOf(slowWatch).map((e: Message) => e.modRevision);
  t.strictSame(
    got,
    revisions.flatMap((rev) => [rev, rev, rev, rev]).slice(0, got.length),
    'what it got is an unbroken prefix',
  );
  t.ok(good.open, 'the good client is still connected');
});
