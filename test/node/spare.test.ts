// The spare on real node processes: a voter killed under load is replaced within --spare-promote-after plus a few seconds and comes back as the spare; without a quorum nothing is touched.

import t, { type Test } from 'tap';
import { type ClusterNode, LocalCluster } from '../../scripts/local-cluster.js';
import { Client } from '../../src/client/index.js';
import { FAST_TIMING } from './running-cluster.js';

const PROMOTE_AFTER_MS = 3000;
const ARGS = [...FAST_TIMING, '--spare-promote-after', String(PROMOTE_AFTER_MS)];

interface Member {
  name: string;
  role: string;
  lag: number;
  reachable: boolean;
}
interface Members {
  leader: string;
  members: Member[];
  replacing?: { spare: string; voter: string };
  replaced?: string[];
}

async function membersAt(node: ClusterNode): Promise<Members | undefined> {
  try {
    const response = await fetch(`${node.url}/v1/members`, { signal: AbortSignal.timeout(2000) });
    return response.ok ? ((await response.json()) as Members) : undefined;
  } catch {
    return undefined;
  }
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const roles = (view: Members) => view.members.map((m) => `${m.name}:${m.role}`).sort();

async function clusterWithSpare(t: Test): Promise<{ cluster: LocalCluster; spare: ClusterNode }> {
  const cluster = new LocalCluster(ARGS);
  t.teardown(() => cluster.stop());
  await cluster.create(3);
  cluster.startAll();
  await cluster.waitForLeader();
  const spare = await cluster.addJoiner(['--role', 'spare']);
  cluster.start(spare);
  await waitFor(
    'the spare caught up',
    async () => {
      const view = await membersAt(cluster.nodes[0]!);
      const s = view?.members.find((m) => m.name === spare.name);
      return s?.role === 'spare' && s.lag === 0 && s.reachable ? view : undefined;
    },
    30_000,
  );
  return { cluster, spare };
}

t.test(
  'a voter killed under load is replaced by the spare and comes back as the spare; with no quorum nothing changes',
  async (t) => {
    const { cluster, spare } = await clusterWithSpare(t);
    const voters = cluster.nodes.filter((n) => n !== spare);
    const client = new Client({ endpoints: voters.map((n) => n.url) });
    t.teardown(() => client.close());

    // A steady writer: every acknowledged key must survive; the longest gap between acks is kept.
    const acked = new Map<string, number>();
    let stop = false;
    let lastAck = Date.now();
    let longestGapMs = 0;
    let failures = 0;
    // Stops the writer however the test ends (a failed wait must not leave it looping).
    t.teardown(() => {
      stop = true;
    });
    const writer = (async () => {
      for (let i = 0; !stop; i++) {
        const key = `load/${String(i).padStart(6, '0')}`;
        try {
          const result = await client.put('default', key, i);
          acked.set(key, result.revision);
          const now = Date.now();
          longestGapMs = Math.max(longestGapMs, now - lastAck);
          lastAck = now;
        } catch {
          failures++;
        }
      }
    })();
    await new Promise((resolve) => setTimeout(resolve, 500));

    const leader = await cluster.waitForLeader();
    const victim = voters.find((n) => n !== leader)!;
    const killedAt = Date.now();
    await cluster.kill(victim);
    const survivor = voters.find((n) => n !== victim)!;

    const promoted = await waitFor(
      'the spare promoted',
      async () => {
        const view = await membersAt(survivor);
        return view?.members.find((m) => m.name === spare.name)?.role === 'voter' ? Date.now() : undefined;
      },
      PROMOTE_AFTER_MS + 10_000,
    );
    const replaced = await waitFor(
      'the dead voter removed',
      async () => {
        const view = await membersAt(survivor);
        return view !== undefined && !view.members.some((m) => m.name === victim.name) ? view : undefined;
      },
      10_000,
    );
    const replacedAt = Date.now();
    t.ok(
      promoted - killedAt <= PROMOTE_AFTER_MS + 5000,
      `promoted ${promoted - killedAt} ms after the kill (--spare-promote-after ${PROMOTE_AFTER_MS})`,
    );
    t.ok(
      replacedAt - killedAt <= PROMOTE_AFTER_MS + 5000,
      `three voters again ${replacedAt - killedAt} ms after the kill`,
    );
    t.same(
      roles(replaced),
      voters
        .filter((n) => n !== victim)
        .map((n) => `${n.name}:voter`)
        .concat(`${spare.name}:voter`)
        .sort(),
      'the voter count is 3 again, the spare among them',
    );
    t.same(replaced.replaced, [victim.name], 'the replaced node is remembered');

    // The dead node comes back with its data: it is re-added as the spare, and keeps running.
    cluster.start(victim);
    const back = await waitFor(
      'the replaced node back as the spare',
      async () => {
        const view = await membersAt(survivor);
        const m = view?.members.find((x) => x.name === victim.name);
        return m?.role === 'spare' && m.lag === 0 ? view : undefined;
      },
      30_000,
    );
    t.equal(back.replaced, undefined, 'no longer waited for');
    t.ok(cluster.running(victim), 'it was not told it was removed: it runs');

    stop = true;
    await writer;
    t.equal(failures, 0, 'no write failed (the client retries within its deadline)');
    t.ok(
      longestGapMs < 2000,
      `writes never stopped for long: the longest gap between acknowledgements was ${longestGapMs} ms`,
    );
    t.ok(acked.size > 100, `${acked.size} writes acknowledged`);
    const reader = new Client({ endpoints: [survivor.url] });
    t.teardown(() => reader.close());
    let missing = 0;
    let after: string | undefined;
    const seen = new Map<string, number>();
    for (;;) {
      const page = await reader.list('default', 'load/', {
        ...(after === undefined ? {} : { after }),
        limit: 1000,
      });
      for (const doc of page.documents) seen.set(doc.key, doc.modRevision);
      if (!page.more || page.next === null) break;
      after = page.next;
    }
    for (const [key, revision] of acked) if (seen.get(key) !== revision) missing++;
    t.equal(missing, 0, 'every acknowledged write is there, at its revision');

    // Same cluster: the voters are now the two survivors and the old spare; the replaced node is
    // the spare. Two of the three voters killed at once: no quorum, nothing may change.
    const nowVoters = cluster.nodes.filter((n) => n !== victim && cluster.running(n));
    const before = (await membersAt(survivor))!;
    const others = nowVoters.filter((n) => n !== survivor);
    const [a, b] = others as [ClusterNode, ClusterNode];
    await Promise.all([cluster.kill(a), cluster.kill(b)]);
    await new Promise((resolve) => setTimeout(resolve, PROMOTE_AFTER_MS + 3000));
    const status = (await (await fetch(`${survivor.url}/v1/status`)).json()) as { members: Member[] };
    t.same(
      status.members.map((m) => `${m.name}:${m.role}`).sort(),
      roles(before),
      'two of three voters dead: the survivor still has three voters and the spare',
    );
    const spareStatus = (await (await fetch(`${victim.url}/v1/status`)).json()) as { role: string };
    t.equal(spareStatus.role, 'spare', 'the spare was not promoted');

    // One returns: a quorum again, and writes go through.
    cluster.start(a);
    const again = new Client({ endpoints: [survivor.url, a.url] });
    t.teardown(() => again.close());
    const written = await waitFor(
      'a write once a quorum is back',
      async () => (await again.put('default', 'back', 1)).revision,
      30_000,
    );
    t.ok(written > 0, 'the cluster takes writes again');
  },
);
