// Satellites on real node processes: one without --peer-listen; reads, watches and forwarded writes; every voter stopped: stale reads marked stale, the rest refused at once; resumed: caught up, unmarked, no watch event missed.

import t from 'tap';
import { type ClusterNode, LocalCluster } from '../../scripts/local-cluster.js';
import { Client } from '../../src/client/index.js';
import { FAST_TIMING } from '../node/running-cluster.js';
import { checkDelivery, collect, waitFor } from '../node/watch-delivery.js';

interface Member {
  name: string;
  role: string;
  lag: number;
  reachable: boolean;
  address: string;
}

async function get(node: ClusterNode, key: string, consistency: 'stale' | 'linearizable') {
  const started = performance.now();
  const response = await fetch(`${node.url}/v1/realms/default/kv/${key}?consistency=${consistency}`, {
    signal: AbortSignal.timeout(10_000),
  });
  const body = (await response.json()) as { code?: string; retryable?: boolean; value?: unknown };
  return { status: response.status, headers: response.headers, body, ms: performance.now() - started };
}

t.test(
  'satellites serve reads and watches, dial the members themselves, and say when they are cut off',
  async (t) => {
    const cluster = new LocalCluster(FAST_TIMING);
    t.teardown(() => cluster.stop());
    await cluster.create(3);
    cluster.startAll();
    await cluster.waitForLeader();
    const voters = [...cluster.nodes];
    const s1 = await cluster.addJoiner(['--role', 'satellite']);
    const s2 = await cluster.addJoiner(['--role', 'satellite'], { peerListen: false });
    cluster.start(s1);
    cluster.start(s2);
    let members: Member[] = [];
    await waitFor(
      'two caught-up satellites',
      async () => {
        const response = await fetch(`${voters[0]!.url}/v1/members`).catch(() => undefined);
        if (!response?.ok) return false;
        members = ((await response.json()) as { members: Member[] }).members;
        return [s1, s2].every((s) => {
          const m = members.find((x) => x.name === s.name);
          return m?.role === 'satellite' && m.lag === 0 && m.reachable;
        });
      },
      30_000,
    );
    t.equal(members.find((m) => m.name === s2.name)?.address, '', 's2 listens nowhere: no address to dial');

    // A watch on the satellite that listens nowhere; writes through the other satellite.
    const watcher = new Client({ endpoints: [s2.url] });
    const writer = new Client({ endpoints: [s1.url] });
    t.teardown(() => {
      watcher.close();
      writer.close();
    });
    const total = 70;
    const collected = collect(watcher.watch('default', 'sat/'), total);
    const acked = new Map<string, number>();
    const put = async (client: Client, i: number) => {
      const key = `sat/${String(i).padStart(3, '0')}`;
      acked.set(key, (await client.put('default', key, { i })).revision);
    };
    for (let i = 0; i < 50; i++) await put(writer, i);
    const lin = await get(s2, 'sat%2F049', 'linearizable');
    t.equal(lin.status, 200, 'a linearizable read on a satellite sees the latest write');
    t.same(lin.body.value, { i: 49 });
    const fresh = await get(s1, 'sat%2F049', 'stale');
    t.equal(fresh.headers.get('conclave-stale'), null, 'a satellite in touch does not mark its stale reads');

    // Every voter stopped: the satellites keep serving stale reads, marked, and refuse the rest at once.
    for (const v of voters) process.kill(v.child!.pid!, 'SIGSTOP');
    t.teardown(() => {
      for (const v of voters) if (cluster.running(v)) process.kill(v.child!.pid!, 'SIGCONT');
    });
    await new Promise((resolve) => setTimeout(resolve, 1000));
    for (const s of [s1, s2]) {
      const stale = await get(s, 'sat%2F049', 'stale');
      t.equal(stale.status, 200, `${s.name}: a stale read is served`);
      t.same(stale.body.value, { i: 49 });
      t.equal(stale.headers.get('conclave-stale'), 'true', `${s.name}: and marked stale`);
      t.ok(
        Number(stale.headers.get('conclave-leader-silence-ms')) >= 300,
        `${s.name}: ${stale.headers.get('conclave-leader-silence-ms')} ms since it heard from the leader`,
      );
      const refused = await get(s, 'sat%2F049', 'linearizable');
      t.match(
        refused,
        { status: 503, body: { code: 'UNAVAILABLE', retryable: true } },
        `${s.name}: linearizable refused`,
      );
      t.ok(refused.ms < 500, `${s.name}: at once (${Math.round(refused.ms)} ms), not at its deadline`);
      const started = performance.now();
      const write = await fetch(`${s.url}/v1/realms/default/kv/sat%2Fx`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: '{"x":1}',
      });
      const ms = performance.now() - started;
      t.equal(write.status, 503, `${s.name}: a write is refused`);
      t.ok(ms < 500, `${s.name}: at once (${Math.round(ms)} ms)`);
    }

    // Resumed: they catch up, unmark, and the watch misses nothing.
    for (const v of voters) process.kill(v.child!.pid!, 'SIGCONT');
    const direct = new Client({ endpoints: voters.map((v) => v.url) });
    t.teardown(() => direct.close());
    for (let i = 50; i < total; i++) await put(direct, i);
    await waitFor(
      'the satellites unmarked',
      async () =>
        (await Promise.all([s1, s2].map((s) => get(s, 'sat%2F069', 'stale')))).every(
          (r) =>
            r.status === 200 &&
            r.headers.get('conclave-stale') === null &&
            (r.body.value as { i?: number } | undefined)?.i === 69,
        ),
      15_000,
    );
    t.pass('both caught up and no longer mark their reads');
    await collected.finish(30_000);
    t.equal(collected.error(), undefined, 'the watch on s2 did not fail');
    checkDelivery(t, collected.events, acked, total);
  },
);
