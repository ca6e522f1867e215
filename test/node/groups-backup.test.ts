// Backups of a cluster with several raft groups (issue 20): one file holds every group, also those the answering node does not run; restore brings every realm back on a new node.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { type ClusterNode, freePort } from '../../scripts/local-cluster.js';
import { Client } from '../../src/client/index.js';
import type { GroupsView } from '../../src/groups-view.js';
import { groupsOf } from './groups-http.js';
import { cli } from './process-helpers.js';
import { runningCluster } from './running-cluster.js';
import { waitFor } from './watch-delivery.js';

interface Summary {
  revision: number;
  groups: { group: number; index: number; revision: number; records: number }[];
}

t.test(
  'backup save covers every group (one fetched from its only member); restore serves every realm',
  async (t) => {
    const cluster = await runningCluster(t, 3);
    const [a, b] = cluster.nodes as [ClusterNode, ClusterNode, ClusterNode];
    const dir = t.testdir();
    const admin = (...args: string[]) => cli([...args, '--endpoints', a.url]);
    t.equal((await admin('groups', 'add')).code, 0, 'group 2 on all three');
    t.equal((await admin('groups', 'add', '--members', b.name)).code, 0, `group 3 on ${b.name} alone`);
    t.equal((await admin('realms', 'create', 'shop', '--group', '2')).code, 0);
    t.equal((await admin('realms', 'create', 'solo', '--group', '3')).code, 0);

    const writer = new Client({ endpoints: [a.url, b.url] });
    t.teardown(() => writer.close());
    for (let i = 0; i < 30; i++) await writer.put('shop', `s${i}`, { i });
    for (let i = 0; i < 20; i++) await writer.put('solo', `o${i}`, { i });
    await writer.put('default', 'd', { here: true });

    // Through a, which does not run group 3: a asks b for it.
    const file = join(dir, 'all.snap');
    const saved = await cli(['backup', 'save', file, '--endpoints', a.url]);
    t.equal(saved.code, 0, `backup save exits 0 (${saved.stderr})`);
    t.notMatch(saved.stderr, /warning/, 'no warning: nothing is left out');
    const verified = await cli(['backup', 'verify', file, '--json']);
    t.equal(verified.code, 0, verified.stderr);
    const summary = JSON.parse(verified.stdout) as Summary;
    t.same(
      summary.groups.map((g) => g.group),
      [1, 2, 3],
      'the file holds groups 1, 2 and 3',
    );
    t.ok(summary.groups[1]!.records >= 30 && summary.groups[2]!.records >= 20, 'with their documents');
    t.match(
      (await cli(['backup', 'verify', file])).stdout,
      /3 raft groups: group 1 at index/,
      'verify lists them',
    );

    // With b (group 3's only member) gone, a backup through a fails, naming the group, and leaves no file.
    await cluster.kill(b, 'SIGKILL');
    const lacking = join(dir, 'lacking.snap');
    const refused = await cli(['backup', 'save', lacking, '--endpoints', a.url]);
    t.equal(refused.code, 1, 'backup save fails');
    t.match(refused.stderr, /UNAVAILABLE[\s\S]*raft group 3/, `naming group 3 (${refused.stderr.trim()})`);
    t.notOk(existsSync(lacking), 'and writes no file');

    // Restore into a new node: every realm, in its group, served by it alone.
    const peerPort = await freePort();
    const clientPort = await freePort();
    const r1: ClusterNode = {
      name: 'r1',
      peerPort,
      clientPort,
      dataDir: join(dir, 'r1'),
      url: `http://127.0.0.1:${clientPort}`,
      child: undefined,
    };
    const restored = await cli([
      'restore',
      file,
      '--data-dir',
      r1.dataDir,
      '--name',
      r1.name,
      '--peer-listen',
      `/ip4/127.0.0.1/tcp/${r1.peerPort}`,
    ]);
    t.equal(restored.code, 0, `restore: ${restored.stderr}`);
    t.match(restored.stdout, /raft groups 2, 3/, 'restore says which groups it brought back');
    r1.initialCluster = `${r1.name}=/ip4/127.0.0.1/tcp/${r1.peerPort}`;
    cluster.nodes.push(r1);
    cluster.start(r1);
    await waitFor(
      'r1 to lead every group',
      async () => (await groupsOf(r1))?.groups.every((g) => g.leader === 'r1') === true,
      60_000,
    );
    const answer = await fetch(`${r1.url}/v1/groups`, { signal: AbortSignal.timeout(10_000) });
    const text = await answer.text();
    t.equal(answer.status, 200, `GET /v1/groups on r1 (${text.slice(0, 300)})`);
    const view = JSON.parse(text) as GroupsView;
    t.same(
      view.groups.map((g) => [g.id, g.voters, g.realms]),
      [
        [1, ['r1'], ['default']],
        [2, ['r1'], ['shop']],
        [3, ['r1'], ['solo']],
      ],
      'groups 1-3 with r1 as their only voter, each with its realm',
    );
    const reader = new Client({ endpoints: [r1.url] });
    t.teardown(() => reader.close());
    t.same((await reader.get('shop', 's29')).value, { i: 29 }, 'shop (group 2) as backed up');
    t.same((await reader.get('solo', 'o19')).value, { i: 19 }, 'solo (group 3, fetched from b) as backed up');
    t.same((await reader.get('default', 'd')).value, { here: true }, 'default (group 1)');
    await reader.put('solo', 'after', 1);
    t.same((await reader.get('solo', 'after')).value, 1, 'the restored groups take writes');
  },
);
