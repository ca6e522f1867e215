// A removed node learns it was removed (live, after a restart, or as the leader removing itself), answers REMOVED, exits 78 and will not start again.

import { execFile, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import t from 'tap';
import type { ClusterNode } from '../../scripts/local-cluster.js';
import { EXIT_REMOVED, REMOVED_FILE } from '../../src/removal.js';
import { startCapturing } from './capture.js';
import { runningCluster } from './running-cluster.js';

const CLI = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', 'src', 'cli.js');
const run = promisify(execFile);

async function removeMember(name: string, endpoints: string): Promise<void> {
  await run(process.execPath, [CLI, 'members', 'remove', name, '--endpoints', endpoints, '--json'], {
    timeout: 60_000,
  });
}

/** Polls `node` with a stale read until its process exits; returns every error code it answered. */
async function codesUntilExit(node: ClusterNode, exited: Promise<unknown>): Promise<Set<string>> {
  const codes = new Set<string>();
  let done = false;
  void exited.then(() => {
    done = true;
  });
  while (!done) {
    try {
      const response = await fetch(`${node.url}/v1/realms/default/kv/probe?consistency=stale`, {
        signal: AbortSignal.timeout(1000),
      });
      const body = (await response.json()) as { code?: string };
      codes.add(`${response.status} ${body.code ?? 'ok'}`);
    } catch {
      // Not listening yet or any more.
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return codes;
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([
    promise,
    new Promise<T>((_, reject) =>
      setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms).unref(),
    ),
  ]);
}

t.test('removed nodes stop: live, while down, and the leader removing itself', async (t) => {
  const cluster = await runningCluster(t, 4);
  const [n1, n2, n3, n4] = cluster.nodes as [ClusterNode, ClusterNode, ClusterNode, ClusterNode];
  const endpointsOf = (nodes: ClusterNode[]) => nodes.map((n) => n.url).join(',');

  // Restart one follower with its output captured, so its words and its exit code can be read.
  let leader = await cluster.waitForLeader();
  const live = [n1, n2, n3, n4].find((n) => n !== leader)!;
  await cluster.kill(live);
  const liveRun = startCapturing(cluster, live);
  leader = await cluster.waitForLeader();

  // 1. A live follower is removed.
  const probing = codesUntilExit(live, liveRun.exited);
  const others = [n1, n2, n3, n4].filter((n) => n !== live);
  await removeMember(live.name, endpointsOf(others));
  const liveCode = await withTimeout(liveRun.exited, 20_000, `${live.name} exits after its removal`);
  t.equal(liveCode, EXIT_REMOVED, `the removed ${live.name} exits with ${EXIT_REMOVED}`);
  t.match(liveRun.output(), /"msg":"node\.removed"|node\.removed/, 'it logs node.removed');
  t.match(liveRun.output(), /REMOVED: node n\d was removed from cluster/, 'it says why on stderr');
  const codes = await probing;
  t.ok(codes.has('410 REMOVED'), `it answered 410 REMOVED before exiting (saw: ${[...codes].join(', ')})`);
  t.notOk(
    [...codes].some((c) => c.includes('NO_LEADER')),
    'no answer told the client to retry the removed node as if it had no leader',
  );
  t.ok(existsSync(join(live.dataDir, REMOVED_FILE)), 'it left the removed marker in its data directory');

  // It will not start again with that data directory.
  const again = spawnSync(process.execPath, cluster.args(live), { encoding: 'utf8', timeout: 30_000 });
  t.equal(again.status, EXIT_REMOVED, `a restart exits ${EXIT_REMOVED} at once`);
  t.match(again.stderr, /REMOVED: .*empty the data directory/s, 'and says how to bring it back');

  // 2. A follower removed while it was down learns of it when it comes back.
  leader = await cluster.waitForLeader();
  const down = others.find((n) => n !== leader)!;
  await cluster.kill(down);
  const remaining = others.filter((n) => n !== down);
  await removeMember(down.name, endpointsOf(remaining));
  const downRun = startCapturing(cluster, down);
  const downCode = await withTimeout(downRun.exited, 30_000, `${down.name} exits after restarting removed`);
  t.equal(downCode, EXIT_REMOVED, `${down.name}, removed while down, exits ${EXIT_REMOVED} once back`);
  t.match(downRun.output(), /node\.removed/, 'and logs node.removed');

  // 3. The leader removes itself: it exits once the change applied, and the last voter leads on.
  leader = await cluster.waitForLeader();
  t.ok(remaining.includes(leader), 'one of the two remaining voters leads');
  const survivor = remaining.find((n) => n !== leader)!;
  const leaderExited = waitExit(leader);
  await removeMember(leader.name, endpointsOf(remaining));
  const leaderCode = await withTimeout(leaderExited, 20_000, `${leader.name} exits after removing itself`);
  t.equal(leaderCode, EXIT_REMOVED, `the leader ${leader.name} that removed itself exits ${EXIT_REMOVED}`);
  t.equal((await cluster.waitForLeader()).name, survivor.name, `${survivor.name}, the last voter, leads`);
  const response = await fetch(`${survivor.url}/v1/realms/default/kv/after`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: '{"ok":true}',
    signal: AbortSignal.timeout(15_000),
  });
  t.equal(response.status, 200, `${survivor.name} takes writes`);
});

function waitExit(node: ClusterNode): Promise<number | null> {
  const child = node.child;
  if (!child) return Promise.resolve(null);
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}
