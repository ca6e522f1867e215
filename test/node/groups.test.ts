// Many raft groups on three node processes (issue 20): `groups add` creates one that elects its own leader, `groups list` shows them, and a group survives kill -9 and restart of a member, including one that was down when the group was made.

import t, { type Test } from 'tap';
import type { ClusterNode, LocalCluster } from '../../scripts/local-cluster.js';
import type { GroupsView, GroupView } from '../../src/groups-view.js';
import { failsWith, jsonOf, runCli, usageError } from './cli-run.js';
import { runningCluster } from './running-cluster.js';

/** `conclave groups list --json` through `node`. */
async function list(t: Test, node: ClusterNode): Promise<GroupsView> {
  return jsonOf<GroupsView>(
    t,
    await runCli(t, ['groups', 'list', '--json', '--endpoints', node.url]),
    `groups list through ${node.name}`,
  );
}

/** Polls `groups list` through `node` until `ready` holds for group `id`; fails the test after 20 s. */
async function waitForGroup(
  t: Test,
  node: ClusterNode,
  id: number,
  ready: (group: GroupView) => boolean,
  what: string,
): Promise<GroupView | undefined> {
  const deadline = Date.now() + 20_000;
  let last: GroupView | undefined;
  while (Date.now() < deadline) {
    const view = await fetchGroups(node);
    last = view?.groups.find((g) => g.id === id);
    if (last !== undefined && ready(last)) return last;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  t.fail(`${what}: not within 20 s; last seen ${JSON.stringify(last)}`);
  return undefined;
}

async function fetchGroups(node: ClusterNode): Promise<GroupsView | undefined> {
  try {
    const response = await fetch(`${node.url}/v1/groups`, { signal: AbortSignal.timeout(5000) });
    return response.ok ? ((await response.json()) as GroupsView) : undefined;
  } catch {
    return undefined;
  }
}

function named(cluster: LocalCluster, name: string): ClusterNode {
  const node = cluster.nodes.find((n) => n.name === name);
  if (node === undefined) throw new Error(`no node ${name}`);
  return node;
}

t.test('groups add, list, kill -9 and restart of members', async (t) => {
  const cluster = await runningCluster(t, 3);
  const [a, b, c] = cluster.nodes as [ClusterNode, ClusterNode, ClusterNode];
  const groups = (...args: string[]) => runCli(t, ['groups', ...args, '--endpoints', a.url]);

  const before = await list(t, a);
  t.same(
    before.groups.map((g) => g.id),
    [1],
    'a new cluster has group 1 only',
  );
  t.not(before.groups[0]!.leader, '', 'group 1 has a leader');
  t.same(before.groups[0]!.realms, ['default'], 'the default realm lives in group 1');

  const added = await groups('add');
  t.equal(added.code, 0, `groups add exits 0 (${added.stderr})`);
  t.match(
    added.stdout,
    /^created group 2 on n1, n2, n3; waiting for a leader\ngroup 2 is led by n[123] \(term \d+\)\n$/,
  );
  const single = jsonOf<{ group: number; members: string[]; leader: string }>(
    t,
    await groups('add', '--members', b.name, '--json'),
    'groups add --members --json',
  );
  t.match(single, { group: 3, members: [b.name], leader: b.name }, 'a one-voter group leads itself');

  const view = await list(t, c);
  t.same(
    view.groups.map((g) => [g.id, g.voters]),
    [
      [1, ['n1', 'n2', 'n3']],
      [2, ['n1', 'n2', 'n3']],
      [3, [b.name]],
    ],
    'every node lists every group with its voters',
  );
  const two = view.groups[1]!;
  t.not(two.leader, '', 'group 2 has a leader');
  t.same(two.realms, [], 'a new group holds no realm');
  t.same(view.unreachable, {});
  const text = await runCli(t, ['groups', 'list', '--endpoints', b.url]);
  t.equal(text.code, 0);
  t.match(text.stdout, /^GROUP +VOTERS +LEADER +TERM +COMMIT +REALMS +LAG/);
  t.equal(text.stdout.trimEnd().split('\n').length, 4, 'a header and a line per group');

  failsWith(t, await groups('add', '--members', 'n1,n9'), 'INVALID_ARGUMENT', 'a member that is not a voter');
  failsWith(t, await groups('add', '--members', ','), 'INVALID_ARGUMENT', 'an empty member list');
  failsWith(t, await groups('add', '--members', 'n1,n1'), 'INVALID_ARGUMENT', 'a member named twice');
  usageError(t, await runCli(t, ['groups', 'rename']), 'an unknown subcommand');

  // kill -9 the leader of group 2: the other two elect; the killed node is missing.
  const leader2 = named(cluster, two.leader);
  await cluster.kill(leader2, 'SIGKILL');
  const survivor = cluster.nodes.find((n) => n !== leader2)!;
  const reelected = await waitForGroup(
    t,
    survivor,
    2,
    (g) => g.leader !== '' && g.leader !== leader2.name,
    'group 2 elects again without its leader',
  );
  t.same(reelected?.missing, [leader2.name], 'the killed node is listed as missing');

  // A group made while a member is down: that member starts it when it comes back.
  const created = jsonOf<{ group: number }>(
    t,
    await runCli(t, ['groups', 'add', '--members', 'n1,n2,n3', '--json', '--endpoints', survivor.url]),
    'groups add while a member is down',
  );
  t.equal(created.group, 4);

  cluster.start(leader2);
  for (const id of [2, 4]) {
    const caughtUp = await waitForGroup(
      t,
      survivor,
      id,
      (g) => g.leader !== '' && g.missing.length === 0 && g.lag[leader2.name] === 0,
      `${leader2.name} runs group ${id} again and has caught up`,
    );
    t.ok(caughtUp, `group ${id}: all three members answer, none behind`);
  }
});
