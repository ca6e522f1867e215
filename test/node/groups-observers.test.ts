// Satellites and DR replicas learn every raft group (issue 20): a satellite serves a placed realm from its own copy, and a promoted DR replica keeps every realm.

import t from 'tap';
import { type ClusterNode, peerAddress } from '../../scripts/local-cluster.js';
import { Client } from '../../src/client/index.js';
import type { GroupView } from '../../src/groups-view.js';
import { groupsOf } from './groups-http.js';
import { cli } from './process-helpers.js';
import { runningCluster } from './running-cluster.js';
import { waitFor } from './watch-delivery.js';

const DOCS = 100;

t.test(
  'a DR replica learns every group; promoted after every voter died, it serves every realm',
  async (t) => {
    const cluster = await runningCluster(t, 3);
    const [n1, n2, n3] = cluster.nodes as [ClusterNode, ClusterNode, ClusterNode];
    const admin = (...args: string[]) => cli([...args, '--endpoints', n2.url]);
    t.equal((await admin('groups', 'add', '--members', n1.name)).code, 0, 'group 2 on n1');
    t.equal((await admin('realms', 'create', 'shop', '--group', '2')).code, 0);
    const dr = await cluster.addJoiner(['--role', 'dr']);
    cluster.start(dr);
    const client = new Client({ endpoints: [n2.url, n3.url] });
    t.teardown(() => client.close());
    for (let i = 0; i < DOCS; i++) {
      await client.put('shop', `s${i}`, { i });
      await client.put('default', `d${i}`, { i });
    }
    let seen: GroupView | undefined;
    await waitFor(
      'the DR replica to hold group 2, caught up',
      async () => {
        seen = (await groupsOf(n2))?.groups.find((g) => g.id === 2);
        return seen?.learners.includes(dr.name) === true && seen.lag[dr.name] === 0;
      },
      30_000,
    );
    t.same(seen?.voters, [n1.name], 'group 2 keeps its voter');
    t.same(seen?.learners, [dr.name], 'and has the DR replica as a learner');

    await Promise.all([n1, n2, n3].map((n) => cluster.kill(n, 'SIGKILL')));
    await cluster.kill(dr, 'SIGTERM');
    const promoted = await cli(['dr', 'promote', '--data-dir', dr.dataDir]);
    t.equal(promoted.code, 0, `dr promote (${promoted.stderr.trim()})`);
    t.match(promoted.stdout, /raft groups carried over: 1, 2/, 'it keeps group 2');
    t.notMatch(promoted.stdout, /WARNING/, 'and loses no group');
    dr.join = undefined;
    dr.initialCluster = `${dr.name}=${peerAddress(dr)}`;
    dr.extraArgs = [];
    cluster.start(dr);
    const reader = new Client({ endpoints: [dr.url] });
    t.teardown(() => reader.close());
    await waitFor(
      'the promoted replica to serve shop',
      async () => {
        try {
          return (await reader.list('shop', 's', { limit: 1000 })).documents.length === DOCS;
        } catch {
          return false;
        }
      },
      30_000,
    );
    t.same((await reader.get('shop', `s${DOCS - 1}`)).value, { i: DOCS - 1 }, 'every document of shop');
    t.same((await reader.get('default', `d${DOCS - 1}`)).value, { i: DOCS - 1 }, 'and of default');
    await reader.put('shop', 'after', 1);
    t.pass('and it takes writes to shop');
  },
);

t.test('a satellite serves a placed realm from its own copy', async (t) => {
  const cluster = await runningCluster(t, 3);
  const [n1, n2] = cluster.nodes as [ClusterNode, ClusterNode, ClusterNode];
  const admin = (...args: string[]) => cli([...args, '--endpoints', n2.url]);
  t.equal((await admin('groups', 'add', '--members', n1.name)).code, 0, 'group 2 on n1');
  t.equal((await admin('realms', 'create', 'shop', '--group', '2')).code, 0);
  const satellite = await cluster.addJoiner(['--role', 'satellite']);
  cluster.start(satellite);
  const client = new Client({ endpoints: [n2.url] });
  t.teardown(() => client.close());
  for (let i = 0; i < 20; i++) await client.put('shop', `s${i}`, { i });
  await waitFor(
    'the satellite to hold group 2, caught up',
    async () => {
      const group = (await groupsOf(n2))?.groups.find((g) => g.id === 2);
      return group?.learners.includes(satellite.name) === true && group.lag[satellite.name] === 0;
    },
    30_000,
  );
  // With group 2's only voter gone, a stale read at the satellite still answers: from its copy.
  await cluster.kill(n1, 'SIGKILL');
  const response = await fetch(`${satellite.url}/v1/realms/shop/kv/s19?consistency=stale`, {
    signal: AbortSignal.timeout(10_000),
  });
  t.equal(response.status, 200, 'a stale read of shop at the satellite');
  t.match(await response.json(), { value: { i: 19 } }, 'with the last write');
});
