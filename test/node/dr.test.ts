// A disaster-recovery replica promoted on real node processes: 3 voters + 1 DR, every voter killed, `conclave dr promote`, a new cluster that grows, and an old voter refused by it.

import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import t from 'tap';
import { type ClusterNode, peerAddress } from '../../scripts/local-cluster.js';
import { cli, listAll, waitFor } from './process-helpers.js';
import { runningCluster } from './running-cluster.js';

const _CLI = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', 'src', 'cli.js');
const _run = promisify(execFile);
const KEYS = 2000;

interface Member {
  name: string;
  role: string;
  lag: number;
}

interface Doc {
  key: string;
  modRevision: number;
  value: { i: number };
}

async function members(endpoints: string): Promise<Member[]> {
  const { stdout, stderr, code } = await cli(['members', 'list', '--json', '--endpoints', endpoints]);
  if (code !== 0) throw new Error(stderr);
  return (JSON.parse(stdout) as { members: Member[] }).members;
}

async function put(url: string, key: string, value: unknown): Promise<number> {
  const response = await fetch(`${url}/v1/realms/default/kv/${key}`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(value),
    signal: AbortSignal.timeout(10_000),
  });
  const body = (await response.json()) as { revision?: number };
  if (response.status !== 200 || typeof body.revision !== 'number') {
    throw new Error(`PUT ${key}: ${response.status} ${JSON.stringify(body)}`);
  }
  return body.revision;
}

/** Every document of the default realm, page by page (linearizable). */

function logOf(node: ClusterNode): string {
  const path = `${node.dataDir}.log`;
  return existsSync(path) ? readFileSync(path, 'utf8') : '';
}

t.test(
  'a DR replica promoted after every voter died holds every write and starts a new cluster',
  async (t) => {
    const cluster = await runningCluster(t, 3);
    const [n1, n2, n3] = cluster.nodes as [ClusterNode, ClusterNode, ClusterNode];
    const voters = [n1, n2, n3];
    const endpoints = voters.map((n) => n.url).join(',');
    const dr = await cluster.addJoiner(['--role', 'dr']);
    cluster.start(dr, {}, [], `${dr.dataDir}.log`);
    await waitFor('the DR replica a member in role dr', async () =>
      (await members(endpoints)).some((m) => m.name === dr.name && m.role === 'dr') ? true : undefined,
    );

    // 2,000 keys, 32 at a time, through the leader's followers too.
    const revisions = new Map<string, number>();
    for (let i = 0; i < KEYS; i += 32) {
      await Promise.all(
        Array.from({ length: Math.min(32, KEYS - i) }, async (_, j) => {
          const key = `k${String(i + j).padStart(5, '0')}`;
          revisions.set(key, await put(voters[(i + j) % 3]!.url, key, { i: i + j }));
        }),
      );
    }
    const lastRevision = Math.max(...revisions.values());
    await waitFor('the DR replica caught up (lag 0)', async () =>
      (await members(endpoints)).find((m) => m.name === dr.name)?.lag === 0 ? true : undefined,
    );

    // The DR replica serves backups (admin) while it serves no clients: the primary site is not loaded.
    const backupFile = join(dr.dataDir, '..', 'from-dr.snap');
    const backedUp = await cli(['backup', 'save', backupFile, '--endpoints', dr.url, '--json']);
    t.equal(backedUp.code, 0, `a backup from the DR replica: ${backedUp.stderr}`);
    t.match(JSON.parse(backedUp.stdout), { node: dr.name, revision: lastRevision });

    // Every voter dies; the DR is stopped (its process holds the data directory).
    await Promise.all(voters.map((n) => cluster.kill(n)));
    const refusedRunning = await cli(['dr', 'promote', '--data-dir', dr.dataDir]);
    t.equal(refusedRunning.code, 1, 'promote refuses while the DR process runs');
    t.match(refusedRunning.stderr, /NODE_RUNNING/);
    await cluster.kill(dr, 'SIGTERM');
    const wrong = await cli(['dr', 'promote', '--data-dir', n2.dataDir]);
    t.equal(wrong.code, 1, 'a voter is no DR replica');
    t.match(wrong.stderr, /WRONG_ROLE: n2 is a voter .*recover --force-new-cluster/);
    const secret = join(dr.dataDir, '..', 'secret');
    const notVoter = await cli([
      'recover',
      '--force-new-cluster',
      '--data-dir',
      dr.dataDir,
      '--cluster-secret-file',
      secret,
    ]);
    t.equal(notVoter.code, 1, 'recover is for voters');
    t.match(
      notVoter.stderr,
      /WRONG_ROLE: n4 is a dr .*not a voter: promote a DR replica with conclave dr promote/,
    );

    const promoted = await cli(['dr', 'promote', '--data-dir', dr.dataDir, '--json']);
    t.equal(promoted.code, 0, `dr promote succeeds: ${promoted.stderr}`);
    const report = JSON.parse(promoted.stdout) as {
      revision: number;
      index: number;
      clusterId: string;
      previousClusterId: string;
      previousDataDir: string;
      address: string;
    };
    t.equal(
      report.revision,
      lastRevision,
      'it reports the last revision it holds: the last acknowledged one',
    );
    t.ok(report.index > KEYS, 'and the log index');
    t.not(report.clusterId, report.previousClusterId, 'a new cluster id');
    t.equal(report.address, peerAddress(dr));
    t.ok(existsSync(report.previousDataDir), 'the data directory as it was is kept');

    // Started as the only voter of the new cluster.
    dr.join = undefined;
    dr.initialCluster = `${dr.name}=${peerAddress(dr)}`;
    dr.extraArgs = [];
    cluster.start(dr, {}, [], `${dr.dataDir}.log`);
    const docs = await waitFor('the promoted node serves linearizable reads', () => listAll<Doc>(dr.url));
    t.equal(docs.size, KEYS, 'all 2,000 keys are there');
    let same = 0;
    for (const [key, revision] of revisions) {
      const doc = docs.get(key);
      if (doc?.modRevision === revision && doc.value.i === Number(key.slice(1))) same++;
    }
    t.equal(same, KEYS, 'each with its value and the revision its write was acknowledged with');
    const written = await waitFor('a write accepted', () => put(dr.url, 'after-promotion', { ok: true }));
    t.ok(written > lastRevision, 'the new cluster goes on from the revisions it holds');

    // It grows to 3 voters with members add; the new nodes join it with empty data directories.
    const grown: ClusterNode[] = [];
    for (let i = 0; i < 2; i++) {
      const node = await cluster.addJoiner([], { join: [dr] });
      cluster.start(node);
      const added = await waitFor(`members add ${node.name}`, async () => {
        const answer = await cli([
          'members',
          'add',
          node.name,
          '--peer',
          peerAddress(node),
          '--endpoints',
          dr.url,
        ]);
        if (answer.code !== 0) throw new Error(answer.stderr);
        return answer;
      });
      t.equal(added.code, 0);
      grown.push(node);
    }
    const newEndpoints = [dr, ...grown].map((n) => n.url).join(',');
    const settled = await waitFor('three voters in the new cluster', async () => {
      const list = await members(newEndpoints);
      return list.filter((m) => m.role === 'voter').length === 3 ? list : undefined;
    });
    t.same(settled.map((m) => m.name).sort(), [dr.name, ...grown.map((n) => n.name)].sort());
    const fromNew = await waitFor('a grown node serves the data', () => listAll<Doc>(grown[0]!.url));
    t.equal(fromNew.size, KEYS + 1);

    // An old voter restarted with its data dials the members it knew, the promoted node among them.
    cluster.start(n2, {}, [], `${n2.dataDir}.log`);
    await waitFor(
      'the old voter and the promoted node refuse each other',
      async () =>
        logOf(n2).includes('"peer.foreign_cluster"') && logOf(dr).includes('"peer.foreign_cluster"')
          ? true
          : undefined,
      20_000,
    );
    t.match(logOf(dr), new RegExp(`"peer.foreign_cluster".*"name":"${n2.name}"`), 'the new cluster names it');
    const after = await members(newEndpoints);
    t.same(
      after.map((m) => m.name).sort(),
      settled.map((m) => m.name).sort(),
      'the new cluster membership is unchanged',
    );
    t.ok(await put(dr.url, 'still-writable', { ok: true }), 'and it still takes writes');
    const oldView = await cluster.status(n2);
    t.equal(oldView?.leader ?? '', '', 'the old voter finds no leader (its peers are dead or foreign)');
  },
);

t.test(
  'recover --force-new-cluster: refused while a voter answers, then a lone survivor is a new cluster',
  async (t) => {
    const cluster = await runningCluster(t, 3);
    const [n1, n2, n3] = cluster.nodes as [ClusterNode, ClusterNode, ClusterNode];
    const revisions = new Map<string, number>();
    for (let i = 0; i < 50; i++) revisions.set(`r${i}`, await put(n1.url, `r${i}`, { i }));
    await waitFor('n1 applied every write', async () =>
      ((await cluster.status(n1))?.commitIndex ?? 0) > 50 ? true : undefined,
    );
    await cluster.kill(n1, 'SIGTERM');
    const secret = join(n1.dataDir, '..', 'secret');
    const recover = [
      'recover',
      '--data-dir',
      n1.dataDir,
      '--cluster-secret-file',
      secret,
      '--probe-timeout',
      '3000',
    ];

    const unconfirmed = await cli(recover);
    t.equal(unconfirmed.code, 2, 'without --force-new-cluster it is a usage error');
    const refused = await cli([...recover, '--force-new-cluster']);
    t.equal(refused.code, 1, 'refused while n2 and n3 answer');
    t.match(refused.stderr, /PEERS_ANSWER: voter\(s\) (n2, n3|n3, n2) of cluster/);
    t.ok((await cluster.status(n2))?.leader, 'the old cluster goes on (n2 and n3 are a quorum)');

    // A write n1 never saw (acknowledged by n2 and n3), then the quorum is lost for good.
    const last = await waitFor('a last write on the old cluster', () =>
      put(n2.url, 'r-last', { last: true }),
    );
    await Promise.all([cluster.kill(n2), cluster.kill(n3)]);
    const recovered = await cli([...recover, '--force-new-cluster', '--json']);
    t.equal(recovered.code, 0, `recover succeeds: ${recovered.stderr}`);
    const report = JSON.parse(recovered.stdout) as { revision: number };
    t.equal(report.revision, Math.max(...revisions.values()), 'n1 holds what it had when it stopped');
    t.ok(report.revision < last, 'and reports it, so the operator knows the last write may be lost');

    n1.initialCluster = `${n1.name}=${peerAddress(n1)}`;
    cluster.start(n1);
    const docs = await waitFor('the recovered node serves', () => listAll<Doc>(n1.url));
    t.equal(docs.size, revisions.size);
    t.ok(await waitFor('a write accepted', () => put(n1.url, 'after-recovery', { ok: true })));
  },
);
