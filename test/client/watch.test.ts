// Watches: delivery in order, resume on another node without gap or repeat, the end of a watch, the buffer bound.

import t from 'tap';
import type { Watch, WatchEvent } from '../../src/client/index.js';
import type { FakeCluster, FakeNode } from './fake-node.js';
import { clientOf, rejection, startFakes, waitFor } from './helpers.js';

/** Reads `count` events from the watch (by its own iterator, left open). */
async function take(watch: Watch, count: number): Promise<WatchEvent[]> {
  const iterator = watch[Symbol.asyncIterator]();
  const events: WatchEvent[] = [];
  while (events.length < count) {
    const next = await iterator.next();
    if (next.done) break;
    events.push(next.value);
  }
  return events;
}

/** Writes `count` puts, yielding to the event loop between them so the network can interleave. */
async function writeSlowly(
  cluster: FakeCluster,
  count: number,
  atEach?: (i: number) => Promise<void>,
): Promise<void> {
  for (let i = 0; i < count; i++) {
    cluster.putDirect('default', `key/${i % 7}`, i);
    await atEach?.(i);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

function revisions(events: readonly WatchEvent[]): number[] {
  return events.map((e) => e.modRevision);
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

t.test('a watch delivers changes after it starts, in order, under its prefix', async (t) => {
  const { cluster, nodes } = await startFakes(t, 1);
  const client = clientOf(t, nodes);
  await client.put('default', 'a/old', 0);
  const watch = client.watch('default', 'a/');
  await waitFor(() => nodes[0]!.watchCount === 1, 'the subscription');
  await client.put('default', 'a/1', 1);
  await client.put('default', 'b/1', 'other prefix');
  await client.delete('default', 'a/old');
  await client.txn('default', {
    compares: [],
    success: [
      { type: 'put', key: 'a/2', value: 2 },
      { type: 'put', key: 'a/3', value: 3 },
    ],
  });
  const events = await take(watch, 4);
  t.same(
    events.map((e) => [e.type, e.key, e.modRevision]),
    [
      ['put', 'a/1', 2],
      ['delete', 'a/old', 4],
      ['put', 'a/2', 5],
      ['put', 'a/3', 5],
    ],
    'both events of one transaction, though they share a revision',
  );
  t.equal(watch.lastRevision, 5);
  t.equal(cluster.revision, 5);
});

t.test('fromRevision replays history; break in for-await closes the watch and unwatches', async (t) => {
  const { cluster, nodes } = await startFakes(t, 1);
  const client = clientOf(t, nodes);
  for (let i = 1; i <= 5; i++) cluster.putDirect('default', `k${i}`, i);
  const seen: number[] = [];
  for await (const event of client.watch('default', '', { fromRevision: 3 })) {
    seen.push(event.modRevision);
    if (event.modRevision === 5) break;
  }
  t.same(seen, [3, 4, 5]);
  await waitFor(() => nodes[0]!.requests('unwatch').length === 1, 'unwatch');
  await waitFor(() => nodes[0]!.watchCount === 0, 'the node to drop the watch');
});

t.test('a watch resumes on another node without a gap or a repeat across hundreds of events', async (t) => {
  const { cluster, nodes } = await startFakes(t, 2);
  const [a, b] = nodes as [FakeNode, FakeNode];
  b.faults.replayOverlap = 5;
  const client = clientOf(t, nodes);
  const watch = client.watch('default', 'key/');
  await waitFor(() => a.watchCount === 1, 'the subscription on the first node');
  const total = 300;
  const received = take(watch, total);
  await writeSlowly(cluster, total, async (i) => {
    if (i === 100) await a.stop();
    if (i === 200) b.dropConnections();
  });
  const events = await received;
  t.same(revisions(events), range(1, total), 'every revision exactly once, in order');
  t.ok(b.requests('watch').length >= 2, 'resubscribed on the second node after each loss');
  const froms = b.requests('watch').map((r) => r.fromRevision as number);
  t.ok(
    froms.every((from) => from > 100),
    `resubscribed from past what had arrived (${froms.join(', ')})`,
  );
  t.equal(watch.lastRevision, total);
  watch.close();
});

t.test('watchEnded with a retryable error resubscribes; with COMPACTED the iterator throws it', async (t) => {
  const { cluster, nodes } = await startFakes(t, 1);
  const client = clientOf(t, nodes);
  const watch = client.watch('default', '');
  await waitFor(() => nodes[0]!.watchCount === 1, 'the subscription');
  cluster.putDirect('default', 'k', 1);
  t.same(revisions(await take(watch, 1)), [1]);

  nodes[0]!.endWatches({ code: 'UNAVAILABLE', message: 'restarting the hub', retryable: true });
  cluster.putDirect('default', 'k', 2);
  await waitFor(() => nodes[0]!.watchCount === 1, 'the resubscription');
  cluster.putDirect('default', 'k', 3);
  t.same(revisions(await take(watch, 2)), [2, 3], 'the event written while unsubscribed is not lost');
  t.equal(nodes[0]!.requests('watch').at(-1)!.fromRevision, 2);

  nodes[0]!.endWatches({ code: 'COMPACTED', message: 'too far behind', retryable: false, revision: 3 });
  const error = await rejection(take(watch, 1));
  t.match(error, { code: 'COMPACTED', revision: 3 });
  t.same(await take(watch, 1), [], 'after the error, iteration is over');
});

t.test('a watch from a compacted revision throws COMPACTED with the current revision', async (t) => {
  const { cluster, nodes } = await startFakes(t, 1);
  const client = clientOf(t, nodes);
  for (let i = 0; i < 10; i++) cluster.putDirect('default', 'k', i);
  cluster.compactedThrough = 5;
  const error = await rejection(take(client.watch('default', '', { fromRevision: 3 }), 1));
  t.match(error, { code: 'COMPACTED', revision: 10, retryable: false });
});

t.test(
  'a consumer that does not read ends the watch with SLOW_CONSUMER, after what was buffered',
  async (t) => {
    const { cluster, nodes } = await startFakes(t, 1);
    const client = clientOf(t, nodes, { watchBufferEvents: 10 });
    const watch = client.watch('default', '');
    await waitFor(() => nodes[0]!.watchCount === 1, 'the subscription');
    for (let i = 0; i < 50; i++) cluster.putDirect('default', `k${i}`, i);
    // The client unwatches when the buffer overflows: wait for that, not for time.
    await waitFor(() => nodes[0]!.requests('unwatch').length === 1, 'the overflow');
    const delivered: WatchEvent[] = [];
    const error = await rejection(
      (async () => {
        for await (const event of watch) delivered.push(event);
      })(),
    );
    t.same(revisions(delivered), range(1, 10), 'the buffered events first, none skipped');
    t.match(error, { code: 'SLOW_CONSUMER', revision: 10 });
    t.equal(watch.lastRevision, 10, 'where to watch again from');
  },
);

t.test('close() ends a waiting iteration cleanly; so does closing the client', async (t) => {
  const { nodes } = await startFakes(t, 1);
  const client = clientOf(t, nodes);
  const first = client.watch('default', '');
  const second = client.watch('default', 'x');
  await waitFor(() => nodes[0]!.watchCount === 2, 'two subscriptions');
  const waiting = first[Symbol.asyncIterator]().next();
  first.close();
  t.same(await waiting, { done: true, value: undefined });
  await waitFor(() => nodes[0]!.watchCount === 1, 'unwatch of the first');

  const waitingSecond = second[Symbol.asyncIterator]().next();
  await client.close();
  t.same(await waitingSecond, { done: true, value: undefined });
});

t.test('a watch closed before its subscription is answered is unwatched when the answer comes', async (t) => {
  const { cluster, nodes } = await startFakes(t, 1);
  const client = clientOf(t, nodes);
  nodes[0]!.faults.hold = true;
  const watch = client.watch('default', '');
  await waitFor(() => nodes[0]!.heldCount === 1, 'the held subscription');
  watch.close();
  nodes[0]!.releaseHeld();
  cluster.putDirect('default', 'k', 1);
  await waitFor(() => nodes[0]!.watchCount === 0, 'the orphaned subscription to be dropped');
  t.same(await take(watch, 1), []);
});
