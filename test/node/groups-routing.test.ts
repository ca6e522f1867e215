// The client library sends each realm's writes straight to its raft group's leader (issue 20): counted by the requests the nodes forward to each other.

import t from 'tap';
import type { ClusterNode } from '../../scripts/local-cluster.js';
import { Client } from '../../src/client/index.js';
import { groupsOf } from './groups-http.js';
import { cli } from './process-helpers.js';
import { runningCluster } from './running-cluster.js';
import { waitFor } from './watch-delivery.js';

const WRITES = 200;

/** Requests every node has sent to peers (forwarded writes among them), summed over `nodes`. */
async function requestsSent(nodes: readonly ClusterNode[]): Promise<number> {
  let total = 0;
  for (const node of nodes) {
    const text = await (await fetch(`${node.url}/metrics`, { signal: AbortSignal.timeout(10_000) })).text();
    const line = text.split('\n').find((l) => l.startsWith('conclave_mesh_rpc_requests_sent_total'));
    total += Number(line?.split(' ').pop() ?? Number.NaN);
  }
  return total;
}

t.test(
  "writes go straight to each realm's group leader; a client without routing has them forwarded",
  async (t) => {
    const cluster = await runningCluster(t, 3);
    const [x, y, home] = cluster.nodes as [ClusterNode, ClusterNode, ClusterNode];
    const nodes = cluster.nodes as ClusterNode[];
    const admin = (...args: string[]) => cli([...args, '--endpoints', home.url]);
    // Groups of one member each: their leaders cannot move while the writes are counted.
    t.equal((await admin('groups', 'add', '--members', x.name)).code, 0, `group 2 on ${x.name}`);
    t.equal((await admin('groups', 'add', '--members', y.name)).code, 0, `group 3 on ${y.name}`);
    t.equal((await admin('realms', 'create', 'shop', '--group', '2')).code, 0);
    t.equal((await admin('realms', 'create', 'cart', '--group', '3')).code, 0);

    // Without routing, at the node that runs neither group, every write is carried to its group.
    const plain = new Client({ endpoints: [home.url], preferLeader: false });
    t.teardown(() => plain.close());
    await plain.put('shop', 'warm', 0);
    await plain.put('cart', 'warm', 0);
    const before = await requestsSent(nodes);
    for (let i = 0; i < WRITES; i++) {
      await plain.put('shop', `p${i}`, i);
      await plain.put('cart', `p${i}`, i);
    }
    const forwarded = (await requestsSent(nodes)) - before;
    t.ok(
      forwarded >= 2 * WRITES,
      `without routing ${forwarded} requests went between nodes for ${2 * WRITES} writes`,
    );

    // With every endpoint, the client learns both routes and writes to each leader directly.
    const routed = new Client({ endpoints: [home.url, x.url, y.url] });
    t.teardown(() => routed.close());
    await waitFor(
      'the routes and names to be learned',
      async () => {
        await routed.put('shop', 'warm', 2);
        await routed.put('cart', 'warm', 2);
        return routed.realmRouting.routedWrites >= 4;
      },
      10_000,
    );
    const start = await requestsSent(nodes);
    for (let i = 0; i < WRITES; i++) {
      await routed.put('shop', `r${i}`, i);
      await routed.put('cart', `r${i}`, i);
    }
    const hops = (await requestsSent(nodes)) - start;
    t.ok(hops < WRITES / 5, `with routing ${hops} requests went between nodes for ${2 * WRITES} writes`);
    t.ok(
      routed.realmRouting.routedWrites >= 2 * WRITES,
      `${routed.realmRouting.routedWrites} writes were routed`,
    );
    t.equal(
      (await routed.list('shop', 'r', { limit: 1000 })).documents.length,
      WRITES,
      'every routed write of shop is there',
    );
    t.same((await plain.get('cart', `r${WRITES - 1}`)).value, WRITES - 1, 'and of cart');
  },
);

t.test(
  'a stateless proxy sends each call of a placed realm to its group: its leader for writes',
  async (t) => {
    const cluster = await runningCluster(t, 3);
    const nodes = cluster.nodes as ClusterNode[];
    const first = (await groupsOf(nodes[0]!))?.groups.find((g) => g.id === 1)?.leader ?? '';
    t.not(first, '', 'group 1 has a leader');
    const b = nodes.find((n) => n.name !== first)!;
    const admin = (...args: string[]) => cli([...args, '--endpoints', nodes[0]!.url]);
    t.equal((await admin('groups', 'add', '--members', b.name)).code, 0, `group 2 on ${b.name} alone`);
    t.equal((await admin('realms', 'create', 'shop', '--group', '2')).code, 0);
    const proxy = await cluster.addProxy();
    cluster.startProxy(proxy, 'api', cluster.nodes);
    await waitFor('the proxy to be ready', async () => {
      const response = await fetch(`${proxy.url}/readyz`).catch(() => undefined);
      return response?.status === 200;
    });
    const client = new Client({ endpoints: [proxy.url] });
    t.teardown(() => client.close());
    // The proxy learns the placements from its member's directory (refreshed every second).
    await waitFor(
      'the proxy to write to shop',
      async () => {
        try {
          await client.put('shop', 'warm', 0);
          await client.put('default', 'warm', 0);
          return true;
        } catch {
          return false;
        }
      },
      20_000,
    );
    await new Promise((resolve) => setTimeout(resolve, 2500));
    // A watch of shop through the proxy polls the group's member; it sees every write below.
    const watcher = new Client({ endpoints: [proxy.url] });
    t.teardown(() => watcher.close());
    const from = (await client.put('shop', 'mark', 0)).revision + 1;
    const events: string[] = [];
    const watch = watcher.watch('shop', 's', { fromRevision: from });
    const watched = (async () => {
      for await (const event of watch) {
        events.push(event.key);
        if (events.length >= WRITES) break;
      }
    })();
    const start = await requestsSent(nodes);
    for (let i = 0; i < WRITES; i++) await client.put('shop', `s${i}`, i);
    const hops = (await requestsSent(nodes)) - start;
    t.ok(
      hops < WRITES / 5,
      `members passed on ${hops} requests for ${WRITES} writes of shop through the proxy`,
    );
    await Promise.race([watched, new Promise((resolve) => setTimeout(resolve, 20_000))]);
    t.same(
      events,
      Array.from({ length: WRITES }, (_, i) => `s${i}`),
      'the watch through the proxy saw every write of shop, in order',
    );
    watch.close();
    // Group 1's writes go to the proxy's member, which passes them to the leader, as before.
    for (let i = 0; i < WRITES; i++) await client.put('default', `d${i}`, i);
    t.equal(
      (await client.list('shop', 's', { limit: 1000 })).documents.length,
      WRITES,
      'every write of shop is there',
    );
    t.same((await client.get('default', `d${WRITES - 1}`)).value, WRITES - 1, 'and of default');
  },
);
