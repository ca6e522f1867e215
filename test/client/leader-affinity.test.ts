// Leader affinity: a writing client moves its connection to the leader; readers, watchers and opted-out clients stay.

import t from 'tap';
import { LEADER_CHECK_INTERVAL_MS } from '../../src/client/constants.js';
import { ConclaveError } from '../../src/client/index.js';
import { clientOf, rejection, startFakes, waitFor } from './helpers.js';

/** Writes that `node` received (put ops), counted by the fake. */
function puts(node: { requests(op: string): unknown[] }): number {
  return node.requests('put').length;
}

t.test('a writing client moves from a follower to the leader; no write is lost or doubled', async (t) => {
  const { cluster, nodes } = await startFakes(t, 3);
  const [n1, n2, n3] = nodes as [(typeof nodes)[0], (typeof nodes)[0], (typeof nodes)[0]];
  n1.leaderName = 'n3';
  n2.leaderName = 'n3';
  const client = clientOf(t, nodes);
  await client.put('default', 'first', 0); // Opens the connection (to n1) and the session.
  // The next write starts the check; writes in flight during the move are resent on the new connection.
  await Promise.all(Array.from({ length: 20 }, (_, i) => client.put('default', `k${i}`, i)));
  await waitFor(() => client.leaderAffinity.moves === 1, 'the move to the leader');
  const before = puts(n3);
  for (let i = 0; i < 20; i++) await client.put('default', `after${i}`, i);
  t.equal(puts(n3) - before, 20, 'every later write goes to the leader');
  t.equal(n1.openConnections, 0, 'the connection to the follower is gone');
  t.equal(n2.connectionCount, 1, 'the other follower was only probed');
  t.equal(cluster.executedWrites, 41, 'each write applied once');
  for (let i = 0; i < 20; i++) t.equal((await client.get('default', `k${i}`)).value, i);
});

t.test('when leadership moves, the client follows at its next check', async (t) => {
  const { nodes } = await startFakes(t, 2);
  const [n1, n2] = nodes as [(typeof nodes)[0], (typeof nodes)[0]];
  const client = clientOf(t, nodes);
  await client.put('default', 'k', 0);
  await client.put('default', 'k', 0);
  await waitFor(() => client.leaderAffinity.checks === 1, 'the first check');
  t.equal(client.leaderAffinity.moves, 0, 'n1 is the leader: no move');
  n1.leaderName = 'n2';
  n2.leaderName = 'n2';
  await new Promise((resolve) => setTimeout(resolve, LEADER_CHECK_INTERVAL_MS + 50));
  await client.put('default', 'k', 1);
  await waitFor(() => client.leaderAffinity.moves === 1, 'the move to n2');
  const before = puts(n2);
  await client.put('default', 'k', 2);
  t.equal(puts(n2), before + 1, 'the write went to n2');
  t.equal(client.leaderAffinity.checks, 2, 'at most one check per interval');
});

t.test('no move when the leader is not among the endpoints, or unknown', async (t) => {
  const { nodes } = await startFakes(t, 2);
  const [n1, n2] = nodes as [(typeof nodes)[0], (typeof nodes)[0]];
  n1.leaderName = 'elsewhere';
  n2.leaderName = 'elsewhere';
  const client = clientOf(t, nodes);
  await client.put('default', 'k', 0);
  await client.put('default', 'k', 1);
  await waitFor(() => client.leaderAffinity.checks === 1, 'the check');
  await client.put('default', 'k', 2);
  t.equal(client.leaderAffinity.moves, 0);
  t.equal(puts(n1), 3, 'every write on the first endpoint');

  const { nodes: others } = await startFakes(t, 2);
  others[0]!.leaderName = '';
  const second = clientOf(t, others);
  await second.put('default', 'k', 0);
  await second.put('default', 'k', 1);
  await waitFor(() => second.leaderAffinity.checks === 1, 'the check');
  t.equal(second.leaderAffinity.moves, 0, 'no leader known: stay');
});

t.test('a node that names a leader which does not agree is not moved to', async (t) => {
  const { nodes } = await startFakes(t, 2);
  const [n1, n2] = nodes as [(typeof nodes)[0], (typeof nodes)[0]];
  n1.leaderName = 'n2';
  n2.leaderName = 'n1'; // n2 does not think it leads: views in flux
  const client = clientOf(t, nodes);
  await client.put('default', 'k', 0);
  await client.put('default', 'k', 1);
  await waitFor(() => client.leaderAffinity.checks === 1, 'the check');
  t.equal(client.leaderAffinity.moves, 0);
  t.equal(n1.openConnections, 1, 'still on n1');
});

t.test('readers and watchers stay where they are; preferLeader: false never checks', async (t) => {
  const { cluster, nodes } = await startFakes(t, 2);
  const [n1] = nodes as [(typeof nodes)[0]];
  n1.leaderName = 'n2';
  const reader = clientOf(t, nodes);
  cluster.putDirect('default', 'k', 1);
  for (let i = 0; i < 5; i++) await reader.get('default', 'k');
  const watch = reader.watch('default', '', { fromRevision: 2 });
  cluster.putDirect('default', 'k', 2);
  for await (const event of watch) {
    t.equal(event.value, 2);
    break;
  }
  t.equal(reader.leaderAffinity.checks, 0, 'no writes: no check');

  const optedOut = clientOf(t, nodes, { preferLeader: false });
  for (let i = 0; i < 5; i++) await optedOut.put('default', 'k', i);
  t.equal(optedOut.leaderAffinity.checks, 0);
  t.equal(n1.requests('status').length, 0, 'n1 was never asked for its status');
});

t.test('preferLeader must be a boolean', async (t) => {
  const { nodes } = await startFakes(t, 1);
  const error = await rejection(
    Promise.resolve().then(() => clientOf(t, nodes, { preferLeader: 'yes' as unknown as boolean })),
  );
  t.ok(error instanceof ConclaveError);
  t.equal((error as ConclaveError).code, 'INVALID_ARGUMENT');
  t.match((error as ConclaveError).message, /preferLeader/);
});
