// Client basics against one fake node: every operation, typed errors, option checks, out-of-order answers, hostile messages.

import t from 'tap';
import { Client, ConclaveError } from '../../src/client/index.js';
import { clientOf, rejection, startFakes, waitFor } from './helpers.js';

t.test('options are checked at construction, naming the bad option', async (t) => {
  const bad: [unknown, RegExp][] = [
    [{ endpoints: [] }, /endpoints/],
    [{ endpoints: ['ftp://x:1'] }, /endpoints\[0\]/],
    [{ endpoints: ['http://127.0.0.1:1', 'nonsense'] }, /endpoints\[1\]/],
    [{ endpoints: ['http://127.0.0.1:1', 'http://127.0.0.1:1/'] }, /twice/],
    [{ endpoints: ['http://127.0.0.1:1'], requestTimeoutMs: 0 }, /requestTimeoutMs/],
    [{ endpoints: ['http://127.0.0.1:1'], connectTimeoutMs: 1.5 }, /connectTimeoutMs/],
    [{ endpoints: ['http://127.0.0.1:1'], backoff: { baseMs: 100, maxMs: 10 } }, /backoff\.maxMs/],
    [{ endpoints: ['http://127.0.0.1:1'], maxInflightWrites: 0 }, /maxInflightWrites/],
    [{ endpoints: ['http://127.0.0.1:1'], watchBufferEvents: -1 }, /watchBufferEvents/],
    [{ endpoints: ['http://127.0.0.1:1'], requestTimeout: 5 }, /requestTimeout is not an option/],
  ];
  for (const [options, message] of bad) {
    const error = (() => {
      try {
        new Client(options as never);
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    t.ok(error instanceof ConclaveError, `${JSON.stringify(options)} is refused`);
    t.equal((error as ConclaveError).code, 'INVALID_ARGUMENT');
    t.match((error as ConclaveError).message, message);
  }
});

t.test(
  'put, get, patch, list, delete, txn, createRealm and status answer their documented shapes',
  async (t) => {
    const { cluster, nodes } = await startFakes(t, 1);
    const client = clientOf(t, nodes);

    const first = await client.put('default', 'user/1', { name: 'ada' });
    t.equal(first.revision, 1);
    const doc = await client.get('default', 'user/1');
    t.same(doc, { key: 'user/1', value: { name: 'ada' }, createRevision: 1, modRevision: 1, version: 1 });

    const patched = await client.patch('default', 'user/1', { age: 36 }, { ifRevision: 1 });
    t.equal(patched.revision, 2);
    t.same((await client.get('default', 'user/1', { consistency: 'stale' })).value, { name: 'ada', age: 36 });

    await client.put('default', 'user/2', 'bob');
    await client.put('default', 'other', 1);
    const page = await client.list('default', 'user/', { limit: 1 });
    t.same(
      page.documents.map((d) => d.key),
      ['user/1'],
    );
    t.equal(page.more, true);
    t.equal(page.next, 'user/1');
    const rest = await client.list('default', 'user/', { after: page.next!, limit: 10 });
    t.same(
      rest.documents.map((d) => d.key),
      ['user/2'],
    );
    t.equal(rest.more, false);

    const txn = await client.txn('default', {
      compares: [{ key: 'user/2', target: 'value', op: 'eq', value: 'bob' }],
      success: [
        { type: 'put', key: 'user/3', value: 'cy' },
        { type: 'delete', key: 'other' },
      ],
    });
    t.equal(txn.succeeded, true);
    t.same(
      txn.results.map((r) => r.type),
      ['put', 'delete'],
    );
    const deleted = await client.delete('default', 'user/3', { ifRevision: txn.revision });
    t.equal(deleted.revision, txn.revision + 1);

    t.same(await client.createRealm('orders'), { name: 'orders', revision: cluster.revision });
    const status = await client.status();
    t.equal(status.name, 'n1');
    t.equal(status.revision, cluster.revision);
    t.equal(nodes[0]!.connectionCount, 1, 'every call used one connection');
  },
);

t.test('definite refusals are typed ConclaveErrors, not retryable, not indeterminate', async (t) => {
  const { cluster, nodes } = await startFakes(t, 1);
  const client = clientOf(t, nodes);
  await client.put('default', 'k', 1);

  // Each promise is awaited through rejection() as soon as it is made: they run concurrently,
  // and one may reject before the loop reaches it.
  const expectations: [Promise<unknown>, string][] = [
    [rejection(client.get('default', 'missing')), 'NOT_FOUND'],
    [rejection(client.put('default', 'k', 2, { ifRevision: 99 })), 'CONFLICT'],
    [rejection(client.put('default', 'k', 2, { ifAbsent: true })), 'CONFLICT'],
    [rejection(client.delete('default', 'missing')), 'NOT_FOUND'],
    [rejection(client.put('nope', 'k', 1)), 'NOT_FOUND'],
    [rejection(client.createRealm('default')), 'CONFLICT'],
  ];
  for (const [promise, code] of expectations) {
    const error = await promise;
    t.ok(error instanceof ConclaveError);
    t.match(error, { code, retryable: false, indeterminate: false }, code);
  }
  t.equal(cluster.revision, 1, 'nothing applied');

  const invalid: Promise<unknown>[] = [
    client.get('', 'k'),
    client.get('default', 42 as unknown as string),
    client.put('default', 'k', undefined as never),
    client.put('default', 'k', 1, { ifRevision: -1 }),
    client.list('default', 'p', { limit: 0 }),
    client.get('default', 'k', { consistency: 'eventual' as never }),
    client.put('default', 'k', { n: 10n } as never),
  ];
  for (const promise of invalid) t.match(await rejection(promise), { code: 'INVALID_ARGUMENT' });
  t.throws(() => client.watch('default', 'p', { fromRevision: 0 }), { code: 'INVALID_ARGUMENT' });
  t.equal(cluster.revision, 1);
});

t.test('answers that come out of order reach their own callers', async (t) => {
  const { nodes } = await startFakes(t, 1);
  const client = clientOf(t, nodes);
  for (let i = 0; i < 5; i++) await client.put('default', `k${i}`, i);
  nodes[0]!.faults.hold = true;
  const reads = [0, 1, 2, 3, 4].map((i) => client.get('default', `k${i}`));
  await waitFor(() => nodes[0]!.heldCount === 5, 'five held answers');
  nodes[0]!.releaseHeld('reverse');
  const docs = await Promise.all(reads);
  t.same(
    docs.map((d) => d.value),
    [0, 1, 2, 3, 4],
  );
});

t.test('malformed or unexpected messages are ignored and the client keeps working', async (t) => {
  const { nodes } = await startFakes(t, 1);
  const client = clientOf(t, nodes);
  await client.put('default', 'k', 'v');
  nodes[0]!.faults.hold = true;
  const pending = client.get('default', 'k');
  await waitFor(() => nodes[0]!.heldCount === 1, 'the held answer');
  const id = nodes[0]!.requests('get').at(-1)!.id;
  const junk = [
    'not json',
    '[]',
    'null',
    '{}',
    JSON.stringify({ id: 999_999, ok: true, result: {} }),
    JSON.stringify({ id, ok: 'yes' }),
    JSON.stringify({ id, ok: false, error: 'bad' }),
    JSON.stringify({ type: 'events', watch: 'x', events: [] }),
    JSON.stringify({ type: 'events', watch: 5, events: [{ type: 'put' }] }),
    JSON.stringify({ type: 'watchEnded', watch: 5 }),
    JSON.stringify({ type: 'error', error: { code: 'INVALID_ARGUMENT', message: 'x' } }),
    JSON.stringify({ type: 'mystery' }),
  ];
  for (const text of junk) nodes[0]!.sendRaw(text);
  nodes[0]!.sendRaw(Buffer.from([1, 2, 3]));
  // A status round trip after the junk: the junk has been read by the time it answers.
  nodes[0]!.faults.hold = false;
  const status = await client.status();
  t.equal(status.name, 'n1');
  t.ok(client.ignoredMessages >= junk.length, `ignored ${client.ignoredMessages} messages`);
  nodes[0]!.releaseHeld();
  t.equal((await pending).value, 'v', 'the real answer still settles the request');
});

t.test('an ok answer with a malformed result rejects INTERNAL', async (t) => {
  const { nodes } = await startFakes(t, 1);
  const client = clientOf(t, nodes);
  await client.put('default', 'k', 'v');
  nodes[0]!.faults.beforeAnswer = (request) => {
    if (request.op !== 'get') return 'send';
    nodes[0]!.sendRaw(JSON.stringify({ id: request.id, ok: true, result: { key: 5 } }));
    return 'hold';
  };
  t.match(await rejection(client.get('default', 'k')), { code: 'INTERNAL', indeterminate: false });
});

t.test('after close() every call rejects CLOSED, close is idempotent', async (t) => {
  const { nodes } = await startFakes(t, 1);
  const client = clientOf(t, nodes);
  await client.put('default', 'k', 'v');
  nodes[0]!.faults.hold = true;
  const read = rejection(client.get('default', 'k'));
  const write = rejection(client.put('default', 'k2', 'v'));
  await waitFor(() => nodes[0]!.heldCount === 2, 'two held answers');
  await Promise.all([client.close(), client.close()]);
  t.match(await read, { code: 'CLOSED', indeterminate: false });
  t.match(await write, { code: 'CLOSED', indeterminate: true }, 'a sent write may have applied');
  t.match(await rejection(client.get('default', 'k')), { code: 'CLOSED' });
  t.match(await rejection(client.put('default', 'k', 1)), { code: 'CLOSED' });
  t.throws(() => client.watch('default', ''), { code: 'CLOSED' });
  await waitFor(() => nodes[0]!.openConnections === 0, 'the node to see the connection closed');
});
