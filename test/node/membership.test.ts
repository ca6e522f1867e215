// Real node processes driven through the CLI: a node joins and becomes a voter, an old one leaves, leadership moves; writes never stop.

import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import t from 'tap';
import { peerAddress } from '../../scripts/local-cluster.js';
import { Client } from '../../src/client/index.js';
import { runningCluster } from './running-cluster.js';

const CLI = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', 'src', 'cli.js');
const run = promisify(execFile);

/** Runs the CLI with --json; resolves with the parsed output (the test fails on a non-zero exit). */
async function cli(args: readonly string[]): Promise<Record<string, unknown>> {
  const { stdout } = await run(process.execPath, [CLI, ...args, '--json'], { timeout: 180_000 });
  return JSON.parse(stdout) as Record<string, unknown>;
}

interface Member {
  name: string;
  role: string;
  state: string;
}

t.test(
  'a node joins through the CLI, an old one leaves, leadership moves, and no write is lost',
  async (t) => {
    const cluster = await runningCluster(t, 3);
    const founders = [...cluster.nodes];
    const endpoints = founders.map((n) => n.url).join(',');

    // Writes go on throughout: 4 writers, each key written once with its number.
    const writer = new Client({ endpoints: founders.map((n) => n.url) });
    t.teardown(() => writer.close());
    const acked = new Map<string, number>();
    const failures: string[] = [];
    let stopWriting = false;
    let next = 0;
    const writers = Array.from({ length: 4 }, async () => {
      while (!stopWriting) {
        const i = next++;
        const key = `m/${String(i).padStart(6, '0')}`;
        try {
          await writer.put('default', key, i);
          acked.set(key, i);
        } catch (error) {
          failures.push(`${key}: ${(error as Error).message}`);
        }
      }
    });

    const n4 = await cluster.addJoiner();
    cluster.start(n4);
    const added = await cli(['members', 'add', n4.name, '--peer', peerAddress(n4), '--endpoints', endpoints]);
    const afterAdd = added.members as Member[];
    t.same(
      afterAdd.find((m) => m.name === n4.name)?.role,
      'voter',
      'members add brought n4 in and promoted it once caught up',
    );
    const writesBeforeRemove = acked.size;

    // Remove a founder that does not lead, then stop its process.
    const leader = await cluster.waitForLeader();
    const victim = founders.find((n) => n !== leader)!;
    const removed = await cli(['members', 'remove', victim.name, '--endpoints', endpoints]);
    t.same(removed, { name: victim.name, removed: true }, `members remove ${victim.name}`);
    await cluster.kill(victim);

    const listed = await cli(['members', 'list', '--endpoints', n4.url]);
    const voters = (listed.members as Member[]).filter((m) => m.role === 'voter').map((m) => m.name);
    t.same(
      voters.sort(),
      [...founders.filter((n) => n !== victim).map((n) => n.name), n4.name].sort(),
      'three voters: the two remaining founders and n4',
    );

    // Hand leadership to n4 through the CLI.
    const transferred = await cli(['leader', 'transfer', '--to', n4.name, '--endpoints', n4.url]);
    t.equal(transferred.leader, n4.name, 'leader transfer answers the new leader');
    const status = (await (await fetch(`${n4.url}/v1/status`)).json()) as { state: string };
    t.equal(status.state, 'leader', 'n4 leads');
    const statusJson = await cli(['status', '--endpoints', n4.url]);
    t.ok(typeof statusJson === 'object' && statusJson !== null, 'status --json parses');

    // Writes continue under the new leader.
    const atTransfer = acked.size;
    const deadline = Date.now() + 30_000;
    while (acked.size < atTransfer + 50 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    stopWriting = true;
    await Promise.all(writers);
    t.ok(
      acked.size >= atTransfer + 50,
      `writes continued after the transfer (${acked.size - atTransfer} more)`,
    );
    t.ok(writesBeforeRemove > 0, `writes went on while n4 joined (${writesBeforeRemove})`);
    t.same(failures, [], 'no write failed');

    // Every acknowledged write is there, read linearizably through the new node.
    const reader = new Client({ endpoints: [n4.url] });
    t.teardown(() => reader.close());
    const found = new Map<string, unknown>();
    let after: string | undefined;
    for (;;) {
      const page = await reader.list('default', 'm/', { limit: 1000, ...(after ? { after } : {}) });
      for (const doc of page.documents) found.set(doc.key, doc.value);
      if (!page.more || page.next === null) break;
      after = page.next;
    }
    const lost = [...acked].filter(([key, value]) => found.get(key) !== value);
    t.same(lost, [], `all ${acked.size} acknowledged writes are there`);
  },
);

t.test(
  'a lone node started with a cluster secret takes a second node; one without a secret says why it cannot',
  async (t) => {
    const cluster = await runningCluster(t, 1);
    const [n1] = cluster.nodes as [(typeof cluster.nodes)[0]];
    const client = new Client({ endpoints: [n1.url] });
    t.teardown(() => client.close());
    await client.put('default', 'alone', 1);

    const n2 = await cluster.addJoiner();
    cluster.start(n2);
    const added = await cli(['members', 'add', n2.name, '--peer', peerAddress(n2), '--endpoints', n1.url]);
    t.same(
      (added.members as Member[]).map((m) => [m.name, m.role]),
      [
        [n1.name, 'voter'],
        [n2.name, 'voter'],
      ],
      'two voters',
    );
    const viaNew = new Client({ endpoints: [n2.url] });
    t.teardown(() => viaNew.close());
    t.equal(
      (await viaNew.get('default', 'alone')).value,
      1,
      'the new node has the data written before it joined',
    );
    await viaNew.put('default', 'together', 2);
    t.equal(
      (await client.get('default', 'together')).value,
      2,
      'a write through the new node reaches the first',
    );

    // A --single node without a secret runs no mesh: adding a node is refused with the reason.
    const single = await cluster.addJoiner();
    const lone = spawnSingle(single.dataDir, single.clientPort);
    t.teardown(() => {
      lone.kill('SIGKILL');
    });
    await waitForHttp(single.url);
    const response = await fetch(`${single.url}/v1/members`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'other', peer: '/ip4/127.0.0.1/tcp/1' }),
    });
    const body = (await response.json()) as { code: string; reason: string; message: string };
    t.equal(response.status, 409, 'refused');
    t.match(body, { code: 'CONFLICT', reason: 'NO_MESH', message: /--cluster-secret-file/ }, 'and says why');
  },
);

function spawnSingle(dataDir: string, port: number): ChildProcess {
  return spawn(
    process.execPath,
    [CLI, 'start', '--single', '--data-dir', dataDir, '--client-listen', `127.0.0.1:${port}`],
    {
      stdio: 'ignore',
    },
  );
}

async function waitForHttp(url: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      const response = await fetch(`${url}/readyz`);
      if (response.ok) return;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new Error(`${url} did not become ready`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
