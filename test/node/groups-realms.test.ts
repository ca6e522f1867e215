// Realms placed in other raft groups (issue 20): created with --group, written, read and watched through the nodes that run their group, refused with the members named elsewhere, and writable again after kill -9 of their group's leader.

import t from 'tap';
import type { ClusterNode } from '../../scripts/local-cluster.js';
import { Client, type WatchEvent } from '../../src/client/index.js';
import type { GroupsView } from '../../src/groups-view.js';
import { failsWith, jsonOf, runCli, usageError } from './cli-run.js';
import { runningCluster } from './running-cluster.js';
import { collect, waitFor } from './watch-delivery.js';

async function groupsOf(node: ClusterNode): Promise<GroupsView> {
  const response = await fetch(`${node.url}/v1/groups`, { signal: AbortSignal.timeout(5000) });
  return (await response.json()) as GroupsView;
}

t.test(
  'realms in groups 2 and 3: placement, routing, watches, and the leader of group 2 killed',
  async (t) => {
    const cluster = await runningCluster(t, 3);
    const [a, b, c] = cluster.nodes as [ClusterNode, ClusterNode, ClusterNode];
    const cli = (node: ClusterNode, ...args: string[]) => runCli(t, [...args, '--endpoints', node.url]);

    t.equal((await cli(a, 'groups', 'add')).code, 0, 'group 2 on all three');
    t.equal((await cli(a, 'groups', 'add', '--members', b.name)).code, 0, `group 3 on ${b.name} alone`);

    const shop = await cli(c, 'realms', 'create', 'shop', '--group', '2');
    t.equal(shop.code, 0, `realms create --group 2 (${shop.stderr})`);
    t.equal((await cli(b, 'realms', 'create', 'solo', '--group', 'auto')).code, 0, '--group auto');
    failsWith(
      t,
      await cli(a, 'realms', 'create', 'shop', '--group', '3'),
      'CONFLICT',
      'a realm placed already',
    );
    failsWith(t, await cli(a, 'realms', 'create', 'shop'), 'CONFLICT', 'group 1 refuses a placed realm');
    failsWith(
      t,
      await cli(a, 'realms', 'create', 'other', '--group', '9'),
      'NOT_FOUND',
      'a group that does not exist',
    );
    usageError(
      t,
      await cli(a, 'realms', 'create', 'other', '--group', 'two'),
      'a group that is not a number',
    );
    t.same(
      jsonOf<{ realms: string[] }>(t, await cli(a, 'realms', 'list', '--json'), 'realms list').realms,
      ['default', 'shop', 'solo'],
      'every realm is listed, wherever it lives',
    );
    const view = await groupsOf(a);
    t.same(
      view.groups.map((g) => [g.id, g.realms]),
      [
        [1, ['default']],
        [2, ['shop']],
        [3, ['solo']],
      ],
      'each realm lives in its group (auto chose the group with none)',
    );

    // Writes, reads and a watch on realm shop (group 2), through the client library.
    const watcher = new Client({ endpoints: [c.url] });
    const writer = new Client({ endpoints: [a.url, b.url, c.url] });
    t.teardown(() => watcher.close());
    t.teardown(() => writer.close());
    const start = await writer.put('shop', 'marker', 0);
    const watch = collect(watcher.watch('shop', 'k/', { fromRevision: start.revision + 1 }), 40);
    for (let i = 0; i < 20; i++) await writer.put('shop', `k/${String(i).padStart(2, '0')}`, { i });
    t.same((await writer.get('shop', 'k/07')).value, { i: 7 }, 'a linearizable read of group 2');
    t.same(
      (await writer.put('default', 'still', 1)).revision > 0,
      true,
      'the default realm (group 1) takes writes beside it',
    );

    // Realm solo lives in group 3, which only b runs: a carries its calls to b (one more hop).
    const carried = await fetch(`${a.url}/v1/realms/solo/kv/x`, {
      method: 'PUT',
      body: JSON.stringify({ n: 1 }),
      headers: { 'content-type': 'application/json' },
    });
    t.equal(
      carried.status,
      200,
      `a write through a node that does not run the group is carried to ${b.name}`,
    );
    const readViaA = await fetch(`${a.url}/v1/realms/solo/kv/x`);
    t.same(((await readViaA.json()) as { value: unknown }).value, { n: 1 }, 'and so is a read');
    const onB = new Client({ endpoints: [b.url] });
    t.teardown(() => onB.close());
    await onB.put('solo', 'y', { n: 2 });
    t.same((await onB.get('solo', 'x')).value, { n: 1 }, 'group 3 serves its realm on its member');
    // A watch on solo through a (which does not run group 3) is carried from b.
    const onA = new Client({ endpoints: [a.url] });
    t.teardown(() => onA.close());
    const soloStart = await onB.put('solo', 'marker', 0);
    const soloWatch = collect(onA.watch('solo', 'w/', { fromRevision: soloStart.revision + 1 }), 5);
    for (let i = 0; i < 5; i++) await onB.put('solo', `w/${i}`, { i });
    await soloWatch.finish(20_000);
    t.same(
      soloWatch.events.map((e) => e.key),
      ['w/0', 'w/1', 'w/2', 'w/3', 'w/4'],
      'a watch through a node that does not run the group gets every event, in order',
    );

    // kill -9 the leader of group 2: the other two elect, and writes to shop go on.
    const leaderName = (await groupsOf(a)).groups.find((g) => g.id === 2)!.leader;
    const leader = cluster.nodes.find((n) => n.name === leaderName)!;
    t.not(leader, undefined, 'group 2 has a leader');
    await cluster.kill(leader, 'SIGKILL');
    const survivors = cluster.nodes.filter((n) => n !== leader);
    const writer2 = new Client({ endpoints: survivors.map((n) => n.url) });
    t.teardown(() => writer2.close());
    for (let i = 20; i < 40; i++) await writer2.put('shop', `k/${String(i).padStart(2, '0')}`, { i });
    t.same(
      (await writer2.get('shop', 'k/39')).value,
      { i: 39 },
      'group 2 serves again without its old leader',
    );

    if (leader !== c) {
      await watch.finish();
      const events: WatchEvent[] = watch.events;
      t.equal(events.length, 40, 'the watcher on a survivor saw every write to shop');
      t.same(
        events.map((e) => e.key),
        Array.from({ length: 40 }, (_, i) => `k/${String(i).padStart(2, '0')}`),
        'in order, none missed or repeated',
      );
    } else {
      await waitFor(
        'the watch to end or fill',
        () => watch.events.length >= 20 || watch.error() !== undefined,
      );
      t.ok(watch.events.length >= 20, 'the watcher saw the writes before its node was killed');
      await watch.finish().catch(() => undefined);
    }

    // With b, the only member of group 3, gone, a node that does not run it says so, naming it.
    await cluster.kill(b, 'SIGKILL');
    const gone = await fetch(`${a === leader ? c.url : a.url}/v1/realms/solo/kv/x`, {
      signal: AbortSignal.timeout(30_000),
    });
    t.equal(gone.status, 503, 'no member of group 3 to carry the read to: 503');
    t.match(await gone.json(), { code: 'UNAVAILABLE', message: new RegExp(b.name) }, 'naming the member');
  },
);

t.test('through a stateless proxy: a realm placed in a group, written, read and watched', async (t) => {
  const cluster = await runningCluster(t, 3);
  const [a] = cluster.nodes as [ClusterNode];
  t.equal((await runCli(t, ['groups', 'add', '--endpoints', a.url])).code, 0, 'group 2');
  const proxy = await cluster.addProxy();
  cluster.startProxy(proxy, 'api,admin', cluster.nodes);
  await waitFor('the proxy to be ready', async () => {
    const response = await fetch(`${proxy.url}/readyz`).catch(() => undefined);
    return response?.status === 200;
  });
  const created = await runCli(t, [
    'realms',
    'create',
    'orders',
    '--group',
    'auto',
    '--endpoints',
    proxy.url,
  ]);
  t.equal(created.code, 0, `realms create --group auto through the proxy (${created.stderr})`);
  t.same((await groupsOf(a)).groups.find((g) => g.id === 2)?.realms, ['orders'], 'placed in group 2');
  const client = new Client({ endpoints: [proxy.url] });
  t.teardown(() => client.close());
  const start = await client.put('orders', 'marker', 0);
  const watch = collect(client.watch('orders', 'o/', { fromRevision: start.revision + 1 }), 5);
  for (let i = 0; i < 5; i++) await client.put('orders', `o/${i}`, { i });
  t.same((await client.get('orders', 'o/3')).value, { i: 3 }, 'a read through the proxy');
  await watch.finish(20_000);
  t.same(
    watch.events.map((e) => e.key),
    ['o/0', 'o/1', 'o/2', 'o/3', 'o/4'],
    'a watch through the proxy gets every event, in order',
  );
});
