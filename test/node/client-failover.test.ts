// Real node processes and the TypeScript client: watches survive a node's death; a write whose answer was lost applies once.

import t from 'tap';
import { LocalCluster } from '../../scripts/local-cluster.js';
import { Client, type ConclaveError, type WatchEvent } from '../../src/client/index.js';
import { FAST_TIMING, runningCluster } from './running-cluster.js';
import { checkDelivery, collect, writeKeys } from './watch-delivery.js';

t.test(
  'a watcher whose node is killed continues through another node: no event missed or repeated',
  async (t) => {
    const cluster = await runningCluster(t, 3);
    const [n1, n2, n3] = cluster.nodes as [
      (typeof cluster.nodes)[0],
      (typeof cluster.nodes)[0],
      (typeof cluster.nodes)[0],
    ];
    // The watcher prefers n1 (listed first), the writer n2; n1 dies a third of the way through.
    const watcher = new Client({ endpoints: [n1.url, n2.url, n3.url] });
    const writer = new Client({ endpoints: [n2.url, n3.url, n1.url] });
    t.teardown(() => watcher.close());
    t.teardown(() => writer.close());

    const TOTAL = 300;
    // Every write below has a later revision than this one.
    const start = await writer.put('default', 'marker', 0);
    const watch = collect(watcher.watch('default', 'w/', { fromRevision: start.revision + 1 }), TOTAL);

    const acked = await writeKeys(writer, TOTAL, 8, async (_i, acked) => {
      if (acked.size === Math.floor(TOTAL / 3)) await cluster.kill(n1);
    });
    t.equal(cluster.running(n1), false, 'n1 was killed mid-stream');
    await watch.finish();
    t.equal(watch.error(), undefined, 'the watch did not fail');
    checkDelivery(t, watch.events, acked, TOTAL);
  },
);

t.test(
  'a write whose answer is lost (the node dies after applying) is retried and applied once',
  async (t) => {
    const cluster = new LocalCluster(FAST_TIMING);
    t.teardown(() => cluster.stop());
    await cluster.create(3);
    const [n1, n2, n3] = cluster.nodes as [
      (typeof cluster.nodes)[0],
      (typeof cluster.nodes)[0],
      (typeof cluster.nodes)[0],
    ];
    cluster.start(n1, { CONCLAVE_FAULT_KILL_BEFORE_ANSWER: 'lost' });
    cluster.start(n2);
    cluster.start(n3);
    await cluster.waitForLeader();
    // Held on n1 (no leader affinity): the fault is n1's, whether or not n1 leads.
    const client = new Client({ endpoints: [n1.url, n2.url, n3.url], preferLeader: false });
    t.teardown(() => client.close());

    // A few ordinary writes first: the session is open and the client talks to n1.
    for (let i = 0; i < 5; i++) await client.put('default', `before/${i}`, i);
    t.equal(cluster.running(n1), true, 'n1 serves the client');

    const { revision } = await client.put('default', 'lost', { once: true });
    t.equal(n1.child?.signalCode, 'SIGKILL', 'n1 was killed after applying, before answering');
    const doc = await client.get('default', 'lost');
    t.equal(doc.version, 1, 'the retried write applied once (version 1)');
    t.equal(doc.modRevision, revision, 'the answer is the first application’s revision');
    t.same(doc.value, { once: true });

    // Nothing else changed the key: from its revision up to a later write, history holds one change of it.
    const after = await client.put('default', 'after', 1);
    const seen: WatchEvent[] = [];
    const watch = client.watch('default', '', { fromRevision: revision });
    for await (const event of watch) {
      seen.push(event);
      if (event.key === 'after') break;
    }
    watch.close();
    t.same(
      seen.filter((e) => e.key === 'lost').map((e) => e.modRevision),
      [revision],
      'history holds exactly one change of the key',
    );
    t.ok(after.revision > revision, 'later writes go on');

    // A plain retry without a session would have applied twice; the session's answer is definite.
    const again = await client.put('default', 'lost', { twice: false }, { ifRevision: revision });
    t.ok(again.revision > revision, 'the key can still be written');
    const refused = await client.put('default', 'lost', 1, { ifRevision: revision }).then(
      () => undefined,
      (error: ConclaveError) => error,
    );
    t.equal(refused?.code, 'CONFLICT', 'a stale ifRevision is refused CONFLICT');
    t.equal(refused?.indeterminate, false, 'a definite refusal is not indeterminate');
  },
);
