// A rolling restart (SIGTERM, start again, one voter at a time) under 8 writing clients and 2 watchers of the client library: no failed operation, every acknowledged write kept once, no watch event missed or repeated.

import t from 'tap';
import { Client, type WatchEvent } from '../../src/client/index.js';
import { cli, waitFor } from './process-helpers.js';
import { FAST_TIMING, runningCluster } from './running-cluster.js';

const WRITERS = 8;

t.test('a rolling restart of every voter while clients write and watch', async (t) => {
  const cluster = await runningCluster(t, 3, [...FAST_TIMING, '--drain-delay', '1s']);
  const endpoints = cluster.nodes.map((n) => n.url);
  const clients = Array.from(
    { length: WRITERS },
    (_, i) => new Client({ endpoints: [...endpoints.slice(i % 3), ...endpoints.slice(0, i % 3)] }),
  );
  const watchers = [0, 1].map(
    (i) => new Client({ endpoints: [...endpoints.slice(i + 1), ...endpoints.slice(0, i + 1)] }),
  );
  t.teardown(() => Promise.all([...clients, ...watchers].map((c) => c.close())));

  const start = await clients[0]!.put('default', 'start', 0);
  const seen = watchers.map(() => [] as WatchEvent[]);
  const watches = watchers.map((watcher, i) => {
    const watch = watcher.watch('default', 'r/', { fromRevision: start.revision + 1 });
    const done = (async () => {
      for await (const event of watch) seen[i]!.push(event);
    })();
    return { watch, done };
  });

  const acked = new Map<string, number>();
  const ackTimes: number[] = [];
  const failures: unknown[] = [];
  let writing = true;
  const writers = clients.map(async (client, c) => {
    for (let n = 0; writing; n++) {
      const key = `r/${c}/${String(n).padStart(5, '0')}`;
      try {
        const { revision } = await client.put('default', key, { c, n });
        acked.set(key, revision);
        ackTimes.push(performance.now());
      } catch (error) {
        failures.push(error);
      }
    }
  });

  await new Promise((resolve) => setTimeout(resolve, 1000));
  // n1 gets SIGTERM, n2 a POST /v1/drain, n3 `conclave drain`: the same graceful stop.
  for (const [i, node] of cluster.nodes.entries()) {
    const before = acked.size;
    const exited = new Promise((resolve) => node.child!.once('exit', resolve));
    if (i === 0) {
      process.kill(node.child!.pid!, 'SIGTERM');
    } else if (i === 1) {
      const drain = await fetch(`${node.url}/v1/drain`, { method: 'POST' });
      t.equal(drain.status, 202, 'POST /v1/drain: 202');
      const ready = await fetch(`${node.url}/readyz`);
      t.equal(ready.status, 503, 'a draining node says at once that it is not ready');
      t.match(await ready.text(), /draining/);
      const read = await fetch(`${node.url}/v1/realms/default/kv/start`);
      t.equal(read.status, 200, 'and still serves during its drain delay');
    } else {
      const drained = await cli(['drain', '--endpoints', node.url]);
      t.equal(drained.code, 0, `conclave drain: ${drained.stderr}`);
      t.equal(drained.stdout, `${node.name} stopped\n`, 'it waits until the node is gone');
      t.match(drained.stderr, new RegExp(`${node.name} is draining`));
    }
    await exited;
    t.equal(node.child?.exitCode, 0, `${node.name} stopped cleanly`);
    cluster.start(node);
    await waitFor(
      `${node.name} ready again`,
      async () =>
        (await fetch(`${node.url}/readyz`).catch(() => undefined))?.status === 200 ? true : undefined,
      30_000,
    );
    await waitFor('writes going on', () => (acked.size > before + 50 ? true : undefined), 30_000);
  }
  writing = false;
  await Promise.all(writers);

  t.same(
    failures.map((f) => String((f as Error).message)),
    [],
    'no client operation failed',
  );
  t.ok(acked.size > 500, `${acked.size} writes acknowledged`);
  const last = Math.max(...acked.values());
  await waitFor(
    'the watchers caught up',
    () => (seen.every((events) => events.some((e) => e.modRevision >= last)) ? true : undefined),
    30_000,
  );
  for (const { watch } of watches) watch.close();
  await Promise.all(watches.map((w) => w.done.catch(() => undefined)));
  seen.forEach((events, i) => {
    const revisions = events.map((e) => e.modRevision);
    t.ok(
      revisions.every((r, j) => j === 0 || r > revisions[j - 1]!),
      `watcher ${i}: events in strictly increasing revisions (none repeated)`,
    );
    const byKey = new Map(events.map((e) => [e.key, e.modRevision]));
    const missing = [...acked].filter(([key, revision]) => byKey.get(key) !== revision);
    t.same(missing, [], `watcher ${i}: every acknowledged write seen, at its revision`);
    t.equal(byKey.size, events.length, `watcher ${i}: one event per key (each write applied once)`);
  });
  const stored = new Map<string, number>();
  for (let after: string | undefined; ; ) {
    const page = await clients[0]!.list('default', 'r/', { limit: 1000, ...(after ? { after } : {}) });
    for (const doc of page.documents) stored.set(doc.key, doc.modRevision);
    if (!page.more) break;
    after = page.next ?? undefined;
  }
  t.same(
    [...acked].filter(([key, revision]) => stored.get(key) !== revision),
    [],
    'every acknowledged write is stored at its revision',
  );
  ackTimes.sort((a, b) => a - b);
  const pause = Math.max(...ackTimes.slice(1).map((at, i) => at - ackTimes[i]!));
  t.comment(`longest pause between acknowledged writes during the rolling restart: ${Math.round(pause)} ms`);
});
