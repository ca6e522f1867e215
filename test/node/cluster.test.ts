// Three real node processes on loopback: bootstrap from hardcoded peers, forwarding, kill -9 of the leader, rejoin, linearizability.

import { spawnSync } from 'node:child_process';
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { LocalCluster } from '../../scripts/local-cluster.js';
import {
  checkOperations,
  formatCheckResult,
  HistoryRecorder,
  type KvInput,
  type KvOutput,
  kvModel,
} from '../lib/linearizability.js';
import { runKvClients } from './kv-history.js';

const json = { 'content-type': 'application/json' };

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

t.test(
  'three nodes bootstrap from hardcoded peers, survive kill -9 of the leader, and a restarted node catches up',
  async (t) => {
    const cluster = new LocalCluster();
    t.teardown(() => cluster.stop());
    await cluster.create(3);
    // Started in reverse order: the order must not matter.
    cluster.startAll([...cluster.nodes].reverse());
    const leader = await cluster.waitForLeader();
    t.pass(`elected ${leader.name} with no outside coordinator`);
    const [follower, other] = cluster.nodes.filter((n) => n !== leader);

    const put = await fetch(`${follower!.url}/v1/realms/default/kv/k`, {
      method: 'PUT',
      headers: json,
      body: '{"n":1}',
    });
    t.equal(put.status, 200, 'a write on a follower is forwarded to the leader');
    const read = await fetch(`${other!.url}/v1/realms/default/kv/k`);
    t.same(
      ((await read.json()) as { value: unknown }).value,
      { n: 1 },
      'and read linearizably on another follower',
    );

    await cluster.kill(leader);
    const killedAt = Date.now();
    await until('a put through a survivor', async () => {
      for (const node of [follower!, other!]) {
        const response = await fetch(`${node.url}/v1/realms/default/kv/k`, {
          method: 'PUT',
          headers: json,
          body: '{"n":2}',
          signal: AbortSignal.timeout(1000),
        });
        if (response.ok) return true;
      }
      return undefined;
    });
    const failoverMs = Date.now() - killedAt;
    t.ok(failoverMs < 5000, `the survivors elect a new leader and commit (${failoverMs} ms after kill -9)`);

    cluster.start(leader);
    await until('the restarted node to serve the latest value', async () => {
      const response = await fetch(`${leader.url}/v1/realms/default/kv/k?consistency=stale`);
      if (!response.ok) return undefined;
      const body = (await response.json()) as { value: { n: number } };
      return body.value.n === 2 ? true : undefined;
    });
    t.pass('the restarted node caught up from the log');

    // The same node with another cluster's secret: its data belongs to this cluster, not that one.
    await cluster.kill(leader);
    const foreign = spawnSync(process.execPath, cluster.args(leader, cluster.otherSecretFile()), {
      encoding: 'utf8',
      timeout: 20_000,
    });
    t.not(
      foreign.status,
      0,
      'a node started with another cluster’s configuration on this data refuses to start',
    );
    t.match(foreign.stderr, /belongs to another cluster/);

    // The same name with its data wiped while the others run: it must not vote with an empty log.
    rmSync(leader.dataDir, { recursive: true, force: true });
    const wiped = spawnSync(process.execPath, cluster.args(leader), { encoding: 'utf8', timeout: 30_000 });
    t.not(wiped.status, 0, 'a member restarted with wiped data refuses to start');
    t.match(wiped.stderr, /its data was lost/);
  },
);

t.test(
  'concurrent clients through every node, with a leader kill, give a linearizable history',
  async (t) => {
    const cluster = new LocalCluster();
    t.teardown(() => cluster.stop());
    await cluster.create(3);
    cluster.startAll();
    await cluster.waitForLeader();
    const history = new HistoryRecorder<KvInput, KvOutput>();
    let killed = false;
    const killer = (async () => {
      await new Promise((resolve) => setTimeout(resolve, 2000));
      const leader = await cluster.waitForLeader();
      await cluster.kill(leader);
      killed = true;
      await new Promise((resolve) => setTimeout(resolve, 1500));
      cluster.start(leader);
    })();
    await Promise.all([
      runKvClients({
        nodes: () => cluster.nodes,
        realms: ['default'],
        keys: ['a', 'b'],
        clients: 6,
        durationMs: 6000,
        history,
      }),
      killer,
    ]);
    t.ok(killed, 'the leader was killed during the run');
    const operations = history.operations();
    const completed = operations.filter(
      (op) => op.output !== undefined && op.return !== Number.POSITIVE_INFINITY,
    );
    t.ok(
      completed.length > 50,
      `the clients completed enough operations to check (${completed.length} of ${operations.length})`,
    );
    const result = checkOperations(kvModel, operations, { timeoutMs: 30_000 });
    t.equal(
      result.result,
      'ok',
      result.result === 'illegal' ? formatCheckResult(kvModel, result) : 'linearizable',
    );
  },
);

t.test(
  'a follower that missed more than the retained log catches up from a snapshot streamed over the mesh',
  async (t) => {
    const cluster = new LocalCluster(['--snapshot-entries', '20', '--log-retain-entries', '5']);
    t.teardown(() => cluster.stop());
    await cluster.create(3);
    cluster.startAll();
    const leader = await cluster.waitForLeader();
    const lagging = cluster.nodes.find((n) => n !== leader)!;
    await cluster.kill(lagging);
    for (let i = 0; i < 120; i++) {
      const response = await fetch(`${leader.url}/v1/realms/default/kv/k${i % 7}`, {
        method: 'PUT',
        headers: json,
        body: JSON.stringify(i),
      });
      t.equal(response.status, 200, `put ${i}`, { diagnostic: response.status !== 200 });
      if (response.status !== 200) break;
    }
    const leaderSnapshots = await until('the leader to compact its log', async () => {
      const indexes = readdirSync(join(leader.dataDir, 'snapshots', 'g1')).map((name) =>
        Number(name.split('-')[0]),
      );
      return Math.max(...indexes) >= 100 ? indexes : undefined;
    });
    t.ok(
      Math.max(...leaderSnapshots) - 5 > 3,
      `the leader compacted past where the stopped follower was (snapshots at ${leaderSnapshots})`,
    );
    cluster.start(lagging);
    await until('the lagging follower to serve the latest value', async () => {
      const response = await fetch(`${lagging.url}/v1/realms/default/kv/k1?consistency=stale`);
      if (!response.ok) return undefined;
      return ((await response.json()) as { value: number }).value === 113 ? true : undefined;
    });
    t.pass('it caught up (from a snapshot: the entries it missed are gone from the leader’s log)');
    const read = await fetch(`${lagging.url}/v1/realms/default/kv/k6`);
    t.same(((await read.json()) as { value: number }).value, 118, 'and serves linearizable reads');
  },
);
