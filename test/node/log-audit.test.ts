// What operators grep for is logged once per event on each node: a leader change, a membership change, a backup taken.

import t from 'tap';
import { type ClusterNode, LocalCluster } from '../../scripts/local-cluster.js';
import { type CapturedRun, startCapturing } from './capture.js';
import { waitFor } from './process-helpers.js';
import { FAST_TIMING } from './running-cluster.js';

interface LogLine {
  readonly event: string;
  readonly [field: string]: unknown;
}

/** The JSON log lines of a run with event `event` (other output ignored). */
function events(run: CapturedRun, event: string): LogLine[] {
  const lines: LogLine[] = [];
  for (const text of run.output().split('\n')) {
    if (!text.startsWith('{')) continue;
    try {
      const line = JSON.parse(text) as LogLine;
      if (line.event === event) lines.push(line);
    } catch {
      // a line cut by the read: not counted
    }
  }
  return lines;
}

t.test('leader, membership and backup events: logged once on each node', async (t) => {
  const cluster = new LocalCluster(FAST_TIMING);
  t.teardown(() => cluster.stop());
  await cluster.create(3);
  const runs = new Map<string, CapturedRun>(
    cluster.nodes.map((node) => [node.name, startCapturing(cluster, node)]),
  );
  const run = (node: ClusterNode) => runs.get(node.name)!;
  const leader = await cluster.waitForLeader(30_000);
  const call = async (node: ClusterNode, method: string, path: string, body?: unknown) => {
    const response = await fetch(`${node.url}${path}`, {
      method,
      ...(body === undefined
        ? {}
        : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
    });
    t.ok(response.ok, `${method} ${path} on ${node.name}: ${response.status}`);
    return response;
  };

  // Leader changes: every node logged the first leader once.
  await waitFor('every node knows the leader', () =>
    cluster.nodes.every((n) => events(run(n), 'raft.leader_changed').length > 0) ? true : undefined,
  );
  const target = cluster.nodes.find((n) => n.name !== leader.name)!;
  await call(leader, 'POST', '/v1/leader/transfer', { to: target.name });
  await waitFor('every node saw the transfer', () =>
    cluster.nodes.every((n) => events(run(n), 'raft.leader_changed').some((l) => l.leader === target.name))
      ? true
      : undefined,
  );
  await new Promise((resolve) => setTimeout(resolve, 500));
  for (const node of cluster.nodes) {
    const changes = events(run(node), 'raft.leader_changed').map((l) => `${l.leader}@${l.term}`);
    t.same(changes, [...new Set(changes)], `${node.name}: each leader logged once (${changes.join(', ')})`);
    t.equal(changes.at(-1)?.split('@')[0], target.name, `${node.name}: the last one is ${target.name}`);
  }

  // Membership: a learner added, then removed: two changes, each logged once by every node.
  const before = new Map(
    cluster.nodes.map((n) => [n.name, events(run(n), 'raft.membership_applied').length]),
  );
  await call(target, 'POST', '/v1/members', { name: 'n9', peer: '/ip4/127.0.0.1/tcp/9', role: 'learner' });
  await call(target, 'DELETE', '/v1/members/n9');
  await waitFor('every node applied both changes', () =>
    cluster.nodes.every((n) => events(run(n), 'raft.membership_applied').length >= before.get(n.name)! + 2)
      ? true
      : undefined,
  );
  await new Promise((resolve) => setTimeout(resolve, 500));
  for (const node of cluster.nodes) {
    const applied = events(run(node), 'raft.membership_applied').slice(before.get(node.name));
    t.same(
      applied.map((l) => (l.learners as string[]).join(',')),
      ['n9', ''],
      `${node.name}: n9 added, then removed, each logged once`,
    );
  }

  // A backup taken from one node: logged once there, by no other.
  const backup = await call(cluster.nodes[2]!, 'GET', '/v1/backup');
  const bytes = (await backup.arrayBuffer()).byteLength;
  for (const node of cluster.nodes) {
    const taken = events(run(node), 'backup.taken');
    t.equal(
      taken.length,
      node === cluster.nodes[2] ? 1 : 0,
      `${node.name}: backup.taken ${taken.length} time(s)`,
    );
    if (node === cluster.nodes[2]) t.equal(taken[0]?.bytes, bytes, 'with the bytes sent');
  }
});
