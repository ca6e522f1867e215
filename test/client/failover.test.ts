// Failover: a dead node, nodes taken in turn, NOT_LEADER answers, and the overall deadline.

import t from 'tap';
import { ConclaveError } from '../../src/client/index.js';
import { FakeCluster, FakeNode } from './fake-node.js';
import { clientOf, rejection, startFakes, waitFor } from './helpers.js';

/** The endpoint of a node that has been stopped: connecting to it is refused. */
async function deadEndpoint(): Promise<string> {
  const node = await FakeNode.start(new FakeCluster(), 'dead');
  const endpoint = node.endpoint;
  await node.stop();
  return endpoint;
}

t.test('when the first endpoint dies the client carries on at the second', async (t) => {
  const { cluster, nodes } = await startFakes(t, 2);
  const [a, b] = nodes as [FakeNode, FakeNode];
  const client = clientOf(t, nodes);
  await client.put('default', 'k', 'before');
  t.equal(a.connectionCount, 1, 'the first endpoint is tried first');
  t.equal(b.connectionCount, 0);

  await a.stop();
  t.equal((await client.get('default', 'k')).value, 'before', 'a read fails over');
  t.same(await client.put('default', 'k', 'after'), { revision: 2 }, 'so does a write');
  t.equal(b.connectionCount, 1, 'one connection to the second endpoint serves both');
  t.equal(cluster.executedWrites, 2);
});

t.test('an unreachable first endpoint is skipped', async (t) => {
  const { nodes } = await startFakes(t, 1);
  const client = clientOf(t, [], { endpoints: [await deadEndpoint(), nodes[0]!.endpoint] });
  t.same(await client.put('default', 'k', 1), { revision: 1 });
  t.equal(nodes[0]!.connectionCount, 1);
});

t.test('after losing a connection the client tries the other endpoints in turn', async (t) => {
  const { nodes } = await startFakes(t, 3);
  const client = clientOf(t, nodes);
  const order: string[] = [];
  for (let round = 0; round < 4; round++) {
    await client.status().then((status) => order.push(status.name));
    const current = nodes.find((node) => node.openConnections > 0)!;
    current.dropConnections();
    await waitFor(() => current.openConnections === 0, 'the connection to be dropped');
  }
  t.same(order, ['n1', 'n2', 'n3', 'n1']);
});

t.test('retryable answers are retried transparently; the write still applies once', async (t) => {
  const { cluster, nodes } = await startFakes(t, 1);
  const client = clientOf(t, nodes);
  await client.put('default', 'k', 0);
  nodes[0]!.faults.notLeader = 3;
  t.equal((await client.get('default', 'k')).value, 0);
  nodes[0]!.faults.notLeader = 3;
  const before = cluster.executedWrites;
  t.same(await client.put('default', 'k', 1), { revision: 2 });
  t.equal(cluster.executedWrites, before + 1);
  const puts = nodes[0]!.requests('put').slice(1);
  t.equal(puts.length, 4, 'three refusals, then the one that applied');
  t.same(
    new Set(
      puts.map((p) => JSON.stringify([(p.session as { id: number }).id, (p.session as { seq: number }).seq])),
    ).size,
    1,
    'every resend carries the same session and seq',
  );
});

t.test('a node that keeps answering NOT_LEADER is left for another', async (t) => {
  const { cluster, nodes } = await startFakes(t, 2);
  const [a, b] = nodes as [FakeNode, FakeNode];
  a.faults.notLeader = Number.POSITIVE_INFINITY;
  const client = clientOf(t, nodes);
  t.same(await client.put('default', 'k', 1), { revision: 1 });
  t.equal((await client.get('default', 'k')).value, 1);
  t.ok(a.requests('openSession').length >= 1, 'the first node was asked');
  t.equal(b.connectionCount, 1, 'the client moved to the second node');
  t.equal(cluster.executedWrites, 1);
});

t.test('a node that answers REMOVED is left at once for another', async (t) => {
  const { cluster, nodes } = await startFakes(t, 2);
  const [a, b] = nodes as [FakeNode, FakeNode];
  a.faults.removed = true;
  const client = clientOf(t, nodes);
  t.same(await client.put('default', 'k', 1), { revision: 1 });
  // The background route lookup (realm-router.ts) is no retry: only the calls count.
  const refused = a.received.filter((r) => r.request.op !== 'watch' && r.request.op !== 'route').length;
  t.equal(refused, 1, 'one request to the removed node, then none: no retry there');
  t.equal(b.connectionCount, 1, 'the client moved to the second node');
  t.equal(cluster.executedWrites, 1);
});

t.test('at the deadline a call rejects TIMEOUT; a write that was sent is indeterminate', async (t) => {
  const { cluster, nodes } = await startFakes(t, 1);
  const client = clientOf(t, nodes, { requestTimeoutMs: 300 });
  await client.put('default', 'k', 1);
  nodes[0]!.faults.hold = true;
  const read = await rejection(client.get('default', 'k'));
  t.ok(read instanceof ConclaveError);
  t.match(read, { code: 'TIMEOUT', retryable: true, indeterminate: false });
  const write = await rejection(client.put('default', 'k', 2));
  t.match(write, { code: 'TIMEOUT', indeterminate: true });
  t.equal(cluster.executedWrites, 2, 'it did in fact apply: the answer was only held');
});

t.test(
  'with no node reachable, calls reject TIMEOUT naming the connection failure; writes are not indeterminate',
  async (t) => {
    const client = clientOf(t, [], {
      endpoints: [await deadEndpoint(), await deadEndpoint()],
      requestTimeoutMs: 300,
    });
    const read = await rejection(client.get('default', 'k'));
    t.match(read, {
      code: 'TIMEOUT',
      indeterminate: false,
      message: /cannot connect to ws:\/\/127\.0\.0\.1/,
    });
    const write = await rejection(client.put('default', 'k', 1));
    t.match(write, { code: 'TIMEOUT', indeterminate: false }, 'never sent, so it did not apply');
  },
);

t.test(
  'a node going away (close frame 1001) with requests in flight: they are resent elsewhere',
  async (t) => {
    const { cluster, nodes } = await startFakes(t, 2);
    const [a, b] = nodes as [FakeNode, FakeNode];
    // Without leader checks: their status request would be held too and change the count.
    const client = clientOf(t, nodes, { preferLeader: false });
    await client.put('default', 'k', 1);
    a.faults.hold = true;
    const read = client.get('default', 'k');
    const write = client.put('default', 'k', 2);
    await waitFor(() => a.heldCount === 2, 'two held answers');
    a.faults.refuseConnections = true;
    a.closeConnections(1001);
    t.equal((await read).value !== undefined, true);
    t.same(await write, { revision: 2 }, 'the write applied at the first node; the resend answers that');
    t.equal(cluster.executedWrites, 2);
    t.ok(
      b.requests('put').length === 1 && b.requests('get').length === 1,
      'both were resent to the second node',
    );
  },
);

t.test('a node that accepts and drops every connection does not make the client spin', async (t) => {
  const { nodes } = await startFakes(t, 1);
  nodes[0]!.faults.refuseConnections = true;
  const client = clientOf(t, nodes, { requestTimeoutMs: 1_000, backoff: { baseMs: 20, maxMs: 100 } });
  t.match(await rejection(client.get('default', 'k')), { code: 'TIMEOUT' });
  // Without backoff this would be thousands; with it, one attempt per >= 10 ms at most.
  t.ok(nodes[0]!.connectionCount <= 101, `${nodes[0]!.connectionCount} connection attempts in one second`);
  t.ok(nodes[0]!.connectionCount >= 2, 'it did retry');
});
