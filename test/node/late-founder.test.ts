// A founder started long after the others (they already elected a leader and took writes) joins them; one whose data was wiped is still refused.

import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import t from 'tap';
import { type ClusterNode, LocalCluster } from '../../scripts/local-cluster.js';
import { FAST_TIMING } from './running-cluster.js';

async function put(node: ClusterNode, key: string, value: unknown): Promise<number> {
  const response = await fetch(`${node.url}/v1/realms/default/kv/${key}`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(value),
    signal: AbortSignal.timeout(15_000),
  });
  return response.status;
}

t.test(
  'a late founder bootstraps and catches up; the same founder with its data wiped is refused',
  async (t) => {
    const cluster = new LocalCluster(FAST_TIMING);
    t.teardown(() => cluster.stop());
    await cluster.create(3);
    const [n1, n2, n3] = cluster.nodes as [ClusterNode, ClusterNode, ClusterNode];
    cluster.start(n1);
    cluster.start(n2);
    await cluster.waitForLeader(60_000);
    t.equal(await put(n1, 'before-n3', { n: 1 }), 200, 'n1 and n2 alone take a write');

    // n3 starts for the first time, well after: nobody has seen it, so it is a first start.
    cluster.start(n3);
    const deadline = Date.now() + 60_000;
    let status = 0;
    while (Date.now() < deadline) {
      try {
        const response = await fetch(`${n3.url}/v1/realms/default/kv/before-n3?consistency=stale`, {
          signal: AbortSignal.timeout(1000),
        });
        status = response.status;
        if (status === 200) break;
      } catch {
        // not serving yet
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    t.ok(cluster.running(n3), 'the late founder was not refused');
    t.equal(status, 200, 'it caught up: it serves the write made before it started');

    // Now it has taken part; wiped, it must not bootstrap again.
    await cluster.kill(n3);
    rmSync(n3.dataDir, { recursive: true, force: true });
    const wiped = spawnSync(process.execPath, cluster.args(n3), { encoding: 'utf8', timeout: 60_000 });
    t.not(wiped.status, 0, 'the wiped founder refuses to start');
    t.match(
      wiped.stderr,
      /took part in this cluster before .*saw it as peer .*its data was lost/s,
      'naming who saw it',
    );
  },
);
