// Writes under a client session (Raft dissertation §6.3): seq and ack, exactly-once resends, expiry, the in-flight bound.

import t from 'tap';
import type { FakeNode } from './fake-node.js';
import { clientOf, rejection, startFakes, waitFor } from './helpers.js';

type Ref = { id: number; seq: number; ack?: number };

function sessionsOf(node: FakeNode, op = 'put'): Ref[] {
  return node.requests(op).map((r) => r.session as Ref);
}

t.test('each write takes the next seq; ack covers every seq answered', async (t) => {
  const { nodes } = await startFakes(t, 1);
  const client = clientOf(t, nodes);
  for (let i = 0; i < 4; i++) await client.put('default', `k${i}`, i);
  await client.delete('default', 'k0');
  const refs = [...sessionsOf(nodes[0]!), ...sessionsOf(nodes[0]!, 'delete')];
  t.equal(nodes[0]!.requests('openSession').length, 1, 'one session, opened lazily');
  t.same(
    refs.map((r) => [r.seq, r.ack]),
    [
      [1, undefined],
      [2, 1],
      [3, 2],
      [4, 3],
      [5, 4],
    ],
  );

  await Promise.all(Array.from({ length: 20 }, (_, i) => client.put('default', `p${i}`, i)));
  const seqs = sessionsOf(nodes[0]!).map((r) => r.seq);
  t.equal(new Set(seqs).size, seqs.length, 'no seq is used twice');
  t.same(
    [...seqs].sort((x, y) => x - y),
    [1, 2, 3, 4, ...Array.from({ length: 20 }, (_, i) => i + 6)],
  );
});

t.test('a write whose answer is lost is resent with the same session and seq and applies once', async (t) => {
  const { cluster, nodes } = await startFakes(t, 1);
  const client = clientOf(t, nodes);
  await client.put('default', 'k', 'first');
  nodes[0]!.faults.dropAfterApply = 1;
  const result = await client.put('default', 'k', 'second', { ifRevision: 1 });
  t.same(result, { revision: 2 }, 'the resend answers the first attempt: applied, not CONFLICT');
  t.equal(cluster.executedWrites, 2, 'applied once');
  const [, lost, resent] = nodes[0]!.received.filter((r) => r.request.op === 'put');
  t.same((lost!.request.session as Ref).seq, (resent!.request.session as Ref).seq);
  t.same((lost!.request.session as Ref).id, (resent!.request.session as Ref).id);
  t.not(lost!.connection, resent!.connection, 'resent on a new connection');
  t.equal((await client.get('default', 'k')).version, 2);
});

t.test('a write resent to another node after its first node died applies once', async (t) => {
  const { cluster, nodes } = await startFakes(t, 2);
  const [a, b] = nodes as [FakeNode, FakeNode];
  const client = clientOf(t, nodes);
  a.faults.beforeAnswer = (request) => {
    if (request.op !== 'txn') return 'send';
    void a.stop();
    return 'drop-connection';
  };
  const result = await client.txn('default', {
    compares: [{ key: 'counter', target: 'exists', op: 'eq', value: false }],
    success: [{ type: 'put', key: 'counter', value: 1 }],
    failure: [{ type: 'put', key: 'counter', value: 'retried and re-applied' }],
  });
  t.equal(result.succeeded, true, 'the resend answers what the first attempt did');
  t.equal(cluster.executedWrites, 1);
  t.equal((await client.get('default', 'counter')).value, 1);
  t.equal(b.requests('txn').length, 1);
});

t.test('an expired session is replaced for a write that was never sent under it', async (t) => {
  const { cluster, nodes } = await startFakes(t, 1);
  const client = clientOf(t, nodes);
  await client.put('default', 'k', 1);
  cluster.expireSessions();
  t.same(await client.put('default', 'k', 2), { revision: 2 });
  t.equal(nodes[0]!.requests('openSession').length, 2);
  const refs = sessionsOf(nodes[0]!);
  t.equal(refs.length, 3, 'first write, refused write, its resend under the new session');
  t.not(refs[2]!.id, refs[1]!.id);
  t.equal(refs[2]!.seq, 1, 'the new session starts at seq 1');
});

t.test(
  'a resend that finds its session expired rejects SESSION_EXPIRED, indeterminate; later writes use a new session',
  async (t) => {
    const { cluster, nodes } = await startFakes(t, 1);
    const client = clientOf(t, nodes);
    await client.put('default', 'a', 1);
    nodes[0]!.faults.beforeAnswer = (request) => {
      if (request.op !== 'put' || request.key !== 'b') return 'send';
      nodes[0]!.faults.beforeAnswer = undefined;
      cluster.expireSessions();
      return 'drop-connection';
    };
    const error = await rejection(client.put('default', 'b', 2));
    t.match(error, { code: 'SESSION_EXPIRED', indeterminate: true, retryable: false });
    t.equal((await client.get('default', 'b')).value, 2, 'in fact it had applied');
    t.same(await client.put('default', 'c', 3), { revision: 3 });
    t.equal(nodes[0]!.requests('openSession').length, 2);
  },
);

t.test('no more than maxInflightWrites writes are in flight; the rest wait their turn', async (t) => {
  const { cluster, nodes } = await startFakes(t, 1);
  const client = clientOf(t, nodes, { maxInflightWrites: 4 });
  await client.put('default', 'warm', 0);
  nodes[0]!.faults.beforeAnswer = (request) => (request.op === 'put' ? 'hold' : 'send');
  const writes = Array.from({ length: 10 }, (_, i) => client.put('default', `k${i}`, i));
  await waitFor(() => nodes[0]!.heldCount === 4, 'four writes at the node');
  // A round trip behind them: anything the client was going to send has been received by now.
  await client.status();
  t.equal(nodes[0]!.requests('put').length, 1 + 4, 'only four writes were sent');
  nodes[0]!.faults.beforeAnswer = undefined;
  nodes[0]!.releaseHeld();
  const results = await Promise.all(writes);
  t.equal(new Set(results.map((r) => r.revision)).size, 10);
  t.equal(cluster.executedWrites, 11);
});

t.test('a write that times out before it is sent frees its seq for the ack', async (t) => {
  const { nodes } = await startFakes(t, 1);
  const client = clientOf(t, nodes, { maxInflightWrites: 1, requestTimeoutMs: 400 });
  await client.put('default', 'warm', 0);
  nodes[0]!.faults.beforeAnswer = (request) =>
    request.op === 'put' && request.key === 'slow' ? 'hold' : 'send';
  const slow = rejection(client.put('default', 'slow', 1));
  const queued = rejection(client.put('default', 'queued', 2));
  t.match(await queued, { code: 'TIMEOUT', indeterminate: false }, 'it never left the queue');
  t.match(await slow, { code: 'TIMEOUT', indeterminate: true });
  nodes[0]!.faults.beforeAnswer = undefined;
  // The slow write's seq was sent and never answered: its session is retired, the next write opens another.
  await client.put('default', 'after', 3);
  t.equal(nodes[0]!.requests('openSession').length, 2);
});

t.test(
  'createRealm runs under the session: a lost answer is resent and answers its own success, not CONFLICT',
  async (t) => {
    const { cluster, nodes } = await startFakes(t, 1);
    const client = clientOf(t, nodes);
    nodes[0]!.faults.beforeAnswer = (request) => {
      if (request.op !== 'createRealm') return 'send';
      nodes[0]!.faults.beforeAnswer = undefined;
      return 'drop-connection';
    };
    t.same(await client.createRealm('orders'), { name: 'orders', revision: 1 });
    t.equal(cluster.executedWrites, 1);
    const refs = sessionsOf(nodes[0]!, 'createRealm');
    t.equal(refs.length, 2);
    t.same(refs[0], refs[1], 'the same session and seq both times');
  },
);

t.test('one session per realm written: each opened with its realm, each closed on close()', async (t) => {
  const { nodes } = await startFakes(t, 1);
  const client = clientOf(t, nodes);
  await client.createRealm('shop');
  await client.put('default', 'a', 1);
  await client.put('shop', 'b', 2);
  await client.put('default', 'c', 3);
  await client.put('shop', 'd', 4);
  const opened = nodes[0]!.requests('openSession');
  t.same(
    opened.map((r) => r.realm),
    ['shop', 'default'],
    'a session for each realm, opened by its first write (createRealm is a write to its realm)',
  );
  const byRealm = (realm: string) =>
    nodes[0]!.received
      .filter((r) => r.request.op === 'put' && r.request.realm === realm)
      .map((r) => r.request.session as Ref);
  const shop = byRealm('shop');
  const dflt = byRealm('default');
  t.equal(new Set(shop.map((r) => r.id)).size, 1, "shop's writes share one session");
  t.equal(new Set(dflt.map((r) => r.id)).size, 1, "default's writes share one session");
  t.not(shop[0]!.id, dflt[0]!.id, 'different sessions');
  t.same(
    dflt.map((r) => r.seq),
    [1, 2],
    'each session counts its own seqs',
  );
  t.same(
    shop.map((r) => r.seq),
    [2, 3],
    "shop's seq 1 was the createRealm",
  );
  await client.close();
  await waitFor(() => nodes[0]!.requests('closeSession').length === 2, 'both sessions closed');
  t.same(
    nodes[0]!
      .requests('closeSession')
      .map((r) => r.realm)
      .sort(),
    ['default', 'shop'],
  );
});
