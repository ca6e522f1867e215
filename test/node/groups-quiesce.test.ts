// Idle raft groups quiesce (issue 20): no ticks and no heartbeats until a write wakes them; group 1 never does; kill -9 of a quiesced group's leader wakes its followers, which elect another.

import t from 'tap';
import type { ClusterNode } from '../../scripts/local-cluster.js';
import { Client } from '../../src/client/index.js';
import type { GroupsView } from '../../src/groups-view.js';
import { groupsOf, postJson } from './groups-http.js';
import { runningCluster } from './running-cluster.js';
import { waitFor } from './watch-delivery.js';

t.test('idle groups quiesce, writes wake them, and a dead leader does not strand them', async (t) => {
  const cluster = await runningCluster(t, 3);
  const [a, b, c] = cluster.nodes as [ClusterNode, ClusterNode, ClusterNode];
  await postJson(a, '/v1/groups', {});
  await postJson(a, '/v1/groups', {});
  // At once: the members are still starting the groups as they apply the catalog; the realm
  // calls wait for that instead of answering UNAVAILABLE.
  await postJson(a, '/v1/realms', { name: 'two', group: 2 });
  await postJson(a, '/v1/realms', { name: 'three', group: 3 });
  const client = new Client({ endpoints: [a.url, b.url, c.url] });
  t.teardown(() => client.close());
  await client.put('two', 'k', 1);
  await client.put('three', 'k', 1);

  let view: GroupsView | undefined;
  await waitFor(
    'groups 2 and 3 to quiesce',
    async () => {
      view = await groupsOf(a);
      return view?.groups.filter((g) => g.id > 1).every((g) => g.quiesced && g.leader !== '') === true;
    },
    15_000,
  );
  t.pass('groups 2 and 3 quiesced once idle');
  t.equal(view?.groups.find((g) => g.id === 1)?.quiesced, false, 'group 1 never quiesces');
  const metrics = await (await fetch(`${a.url}/metrics`)).text();
  t.match(metrics, /^conclave_raft_groups\{node="n1"\} 3$/m, 'metrics: three groups run here');
  t.match(metrics, /^conclave_raft_groups_quiesced\{node="n1"\} 2$/m, 'metrics: two of them quiesced');

  // A write wakes its group; it commits as usual, and the group quiesces again afterwards.
  const started = Date.now();
  await client.put('three', 'k', 2);
  t.ok(
    Date.now() - started < 2000,
    `a write to a quiesced group commits at once (${Date.now() - started} ms)`,
  );
  t.same((await client.get('three', 'k')).value, 2);
  await waitFor(
    'group 3 to quiesce again',
    async () => (await groupsOf(a))?.groups.find((g) => g.id === 3)?.quiesced === true,
    15_000,
  );
  t.pass('and quiesces again');

  // kill -9 the quiesced leader of group 2: its followers are woken (the connection closed) and elect.
  const leaderName = (await groupsOf(a))!.groups.find((g) => g.id === 2)!.leader;
  const leader = cluster.nodes.find((n) => n.name === leaderName)!;
  const survivor = cluster.nodes.find((n) => n !== leader)!;
  await cluster.kill(leader, 'SIGKILL');
  await waitFor(
    `group 2 to elect a leader other than ${leaderName}`,
    async () => {
      const g = (await groupsOf(survivor))?.groups.find((x) => x.id === 2);
      return g !== undefined && g.leader !== '' && g.leader !== leaderName;
    },
    15_000,
  );
  t.pass(`group 2 elected a new leader without ${leaderName}`);
  const writer = new Client({ endpoints: cluster.nodes.filter((n) => n !== leader).map((n) => n.url) });
  t.teardown(() => writer.close());
  await writer.put('two', 'k', 3);
  t.same((await writer.get('two', 'k')).value, 3, 'and takes writes');
});
