// Real node processes driven through the CLI: a node joins and becomes a voter, an old one leaves, leadership moves; writes never stop.

import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import t from 'tap';
import { LocalCluster, peerAddress } from '../../scripts/local-cluster.js';
import { Client } from '../../src/client/index.js';

const CLI = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', 'src', 'cli.js');
const FAST = ['--election-timeout-ms', '300', '--heartbeat-interval-ms', '50'];
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
    const cluster = new LocalCluster(FAST);
    t.teardown(() => cluster.stop());
    await cluster.create(3);
    cluster.startAll();
    await cluster.waitForLeader();
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
