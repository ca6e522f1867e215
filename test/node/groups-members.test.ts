// Membership of raft groups besides group 1 (issue 20): a node joins a group and votes once caught up, a dead member is replaced, a node that left deletes its copy.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { type ClusterNode, LocalCluster } from '../../scripts/local-cluster.js';
import { Client } from '../../src/client/index.js';
import type { GroupView } from '../../src/groups-view.js';
import { groupsOf } from './groups-http.js';
import { cli } from './process-helpers.js';
import { FAST_TIMING, runningCluster } from './running-cluster.js';
import { waitFor } from './watch-delivery.js';

/** Group `id` as `node` reports it, once it answers. */
async function groupOn(node: ClusterNode, id: number): Promise<GroupView | undefined> {
  return (await groupsOf(node))?.groups.find((g) => g.id === id);
}

t.test(
  'a group grows, replaces a dead member, loses its leader as a member; the node that left deletes its copy',
  async (t) => {
    const cluster = await runningCluster(t, 4);
    const [n1, n2, n3, n4] = cluster.nodes as [ClusterNode, ClusterNode, ClusterNode, ClusterNode];
    const admin = (node: ClusterNode, ...args: string[]) => cli([...args, '--endpoints', node.url]);
    t.equal(
      (await admin(n2, 'groups', 'add', '--members', `${n1.name},${n2.name}`)).code,
      0,
      'group 2 on n1, n2',
    );
    t.equal((await admin(n2, 'realms', 'create', 'shop', '--group', '2')).code, 0);
    const client = new Client({ endpoints: [n2.url, n3.url, n4.url] });
    t.teardown(() => client.close());
    for (let i = 0; i < 50; i++) await client.put('shop', `k${i}`, { i });

    // n3 joins: it starts empty, takes a snapshot as a learner and is promoted.
    const added = await admin(n2, 'groups', 'members', 'add', '2', n3.name);
    t.equal(added.code, 0, `groups members add exits 0 (${added.stderr.trim()})`);
    t.match(
      added.stdout,
      new RegExp(`group 2: .*${n3.name}.* vote`),
      `it waits until n3 votes (${added.stdout.trim()})`,
    );
    const grown = await groupOn(n2, 2);
    t.same([...(grown?.voters ?? [])].sort(), [n1.name, n2.name, n3.name], 'group 2 has three voters');
    t.same(grown?.learners, [], 'and no learner');
    // The diagnosis view: each node's own report.
    const detail = (await (await fetch(`${n2.url}/v1/groups?detail=true`)).json()) as {
      reports?: { node: string; groups?: { id: number; appliedIndex: number; quiesced?: boolean }[] }[];
    };
    t.same(
      detail.reports?.map((r) => r.node).sort(),
      [n1.name, n2.name, n3.name, n4.name],
      'groups?detail=true has every node report',
    );
    t.ok(
      detail.reports?.find((r) => r.node === n3.name)?.groups?.some((g) => g.id === 2 && g.appliedIndex > 0),
      'n3 reports group 2 with its applied index',
    );
    t.equal((await fetch(`${n2.url}/v1/groups?detail=yes`)).status, 400, 'a bad detail value: 400');

    // A node in a group is not removed from the cluster until its groups are moved.
    const refused = await admin(n2, 'members', 'remove', n3.name);
    t.equal(refused.code, 1, 'members remove of a group member fails');
    t.match(
      refused.stderr,
      /CONFLICT[\s\S]*raft group 2[\s\S]*groups members add 2/,
      `naming the group and the way out (${refused.stderr.trim()})`,
    );
    // Nor does a node rejoin a group it left, nor does a stranger join.
    const stranger = await admin(n2, 'groups', 'members', 'add', '2', 'nobody');
    t.match(
      stranger.stderr,
      /INVALID_ARGUMENT[\s\S]*nobody is not a voter of group 1/,
      'a stranger is refused',
    );
    const badGroup = await admin(n2, 'groups', 'members', 'add', '9', n4.name);
    t.match(badGroup.stderr, /NOT_FOUND[\s\S]*no group 9/, 'an unknown group is refused');
    const groupOne = await admin(n2, 'groups', 'members', 'add', '1', n4.name);
    t.match(
      groupOne.stderr,
      /INVALID_ARGUMENT[\s\S]*conclave members/,
      'group 1 is pointed to conclave members',
    );

    // n1 dies: group 2 keeps a majority (n2, n3), so writes go on, and n3 has the data.
    await cluster.kill(n1, 'SIGKILL');
    for (let i = 50; i < 60; i++) await client.put('shop', `k${i}`, { i });
    // Replace it with n4: add (3 of 4 voters alive), then remove the dead one.
    const replaced = await admin(n2, 'groups', 'members', 'add', '2', n4.name);
    t.equal(replaced.code, 0, `n4 added while n1 is dead (${replaced.stderr.trim()})`);
    const removed = await admin(n2, 'groups', 'members', 'remove', '2', n1.name);
    t.equal(removed.code, 0, `n1 removed while dead (${removed.stderr.trim()})`);
    const afterReplace = await groupOn(n2, 2);
    t.same([...(afterReplace?.voters ?? [])].sort(), [n2.name, n3.name, n4.name], 'group 2 is n2, n3, n4');
    const again = await admin(n2, 'groups', 'members', 'add', '2', n1.name);
    t.match(again.stderr, /INVALID_ARGUMENT[\s\S]*left group 2 before/, 'n1 may not rejoin group 2');

    // Remove the group's leader: it hands leadership over first, and writes go on.
    const leader = afterReplace?.leader ?? '';
    t.not(leader, '', 'group 2 has a leader');
    const viaOther = cluster.nodes.find((n) => n.name !== leader && n.name !== n1.name)!;
    const leaderNode = cluster.nodes.find((n) => n.name === leader)!;
    t.ok(existsSync(join(leaderNode.dataDir, 'snapshots', 'g2')), `${leader} holds group 2's snapshots`);
    t.ok(existsSync(join(n1.dataDir, 'snapshots', 'g2')), 'so does the dead n1');
    const gone = await admin(viaOther, 'groups', 'members', 'remove', '2', leader);
    t.equal(gone.code, 0, `the leader ${leader} removed (${gone.stderr.trim()})`);
    await waitFor(
      'group 2 to have a new leader',
      async () => {
        const view = await groupOn(viaOther, 2);
        return view !== undefined && view.leader !== '' && view.leader !== leader && view.voters.length === 2;
      },
      20_000,
    );
    for (let i = 60; i < 70; i++) await client.put('shop', `k${i}`, { i });
    const all = await client.list('shop');
    t.equal(all.documents.length, 70, 'every write is there');
    const leaverNode = cluster.nodes.find((n) => n.name === leader)!;
    await waitFor(
      `${leader} to delete its copy of group 2`,
      async () => !existsSync(join(leaverNode.dataDir, 'snapshots', 'g2')),
      20_000,
    );
    t.notOk((await groupOn(viaOther, 2))?.lag[leader] !== undefined, `${leader} no longer runs group 2`);

    // n1 comes back: it learns it left group 2 and deletes its copy.
    cluster.start(n1);
    await waitFor(
      'n1 to delete its copy of group 2',
      async () => !existsSync(join(n1.dataDir, 'snapshots', 'g2')),
      30_000,
    );
    const final = await groupOn(n1, 2);
    t.equal(final?.voters.length, 2, 'n1 sees group 2 with its two voters');
    t.notOk(final?.lag[n1.name] !== undefined, 'and does not run it');
    const viaN1 = new Client({ endpoints: [n1.url] });
    t.teardown(() => viaN1.close());
    t.same((await viaN1.get('shop', 'k69')).value, { i: 69 }, 'n1 still serves the realm (from a member)');
  },
);

t.test('a spare that replaces a dead voter takes its place in its raft groups too', async (t) => {
  const cluster = new LocalCluster([...FAST_TIMING, '--spare-promote-after', '3000']);
  t.teardown(() => cluster.stop());
  await cluster.create(3);
  cluster.startAll();
  await cluster.waitForLeader();
  const [n1, n2, n3] = cluster.nodes as [ClusterNode, ClusterNode, ClusterNode];
  const spare = await cluster.addJoiner(['--role', 'spare']);
  cluster.start(spare);
  const admin = (...args: string[]) => cli([...args, '--endpoints', n1.url]);
  t.equal((await admin('groups', 'add')).code, 0, 'group 2 on the three voters');
  t.equal((await admin('realms', 'create', 'shop', '--group', '2')).code, 0);
  const client = new Client({ endpoints: [n1.url, n2.url] });
  t.teardown(() => client.close());
  for (let i = 0; i < 20; i++) await client.put('shop', `k${i}`, { i });
  await waitFor(
    'the spare to catch up in group 1',
    async () => {
      const response = await fetch(`${n1.url}/v1/members`, { signal: AbortSignal.timeout(2000) }).catch(
        () => undefined,
      );
      const view = response?.ok
        ? ((await response.json()) as { members: { name: string; role: string; lag: number }[] })
        : undefined;
      return view?.members.some((m) => m.name === spare.name && m.role === 'spare' && m.lag === 0) === true;
    },
    30_000,
  );

  await cluster.kill(n3, 'SIGKILL');
  await waitFor(
    `${spare.name} to replace ${n3.name} in group 2`,
    async () => {
      const group = (await groupsOf(n1))?.groups.find((g) => g.id === 2);
      return (
        group !== undefined &&
        [...group.voters].sort().join(',') === [n1.name, n2.name, spare.name].sort().join(',')
      );
    },
    45_000,
  );
  for (let i = 20; i < 30; i++) await client.put('shop', `k${i}`, { i });
  // The spare holds the group: with n1 gone as well, n2 and the spare still make a majority.
  await cluster.kill(n1, 'SIGKILL');
  const survivor = new Client({ endpoints: [n2.url, spare.url] });
  t.teardown(() => survivor.close());
  await waitFor(
    'group 2 to take a write without n1',
    async () => {
      try {
        await survivor.put('shop', 'after', 1);
        return true;
      } catch {
        return false;
      }
    },
    30_000,
  );
  t.equal((await survivor.list('shop')).documents.length, 31, 'every write of group 2 is there');
});
