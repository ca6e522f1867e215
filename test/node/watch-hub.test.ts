// WatchHub against a real RealmStateStore on the memory engine: live fan-out, catch-up from history without gap or repeat, compaction, flow control, ends, and snapshot installs.

import t, { type Test } from 'tap';
import type { Subscription, WatchSink, WatchSource } from '../../src/watch-hub.js';
import { WatchHub, type WatchHubLimits } from '../../src/watch-hub.js';
import type { WatchEvent, WsError } from '../../src/ws-protocol.js';
import type {
  GroupStorage,
  HistoryOptions,
  RealmStateStore,
  StateChange,
  StorageConfigInput,
} from '../../storage/index.js';
import { openStorage, until, Writer } from './ws-harness.js';

/** A sink that records what it is given; it can refuse deliveries and pretend to have a backlog. */
class RecordingSink implements WatchSink {
  readonly batches: WatchEvent[][] = [];
  readonly ended: WsError[] = [];
  /** false: deliver() answers false (the subscriber is gone). */
  accept = true;
  refused = 0;
  backlog = 0;
  backlogReads = 0;

  deliver(events: readonly WatchEvent[]): boolean {
    if (!this.accept) {
      this.refused++;
      return false;
    }
    this.batches.push([...events]);
    return true;
  }

  end(error: WsError): void {
    this.ended.push(error);
  }

  get backlogBytes(): number {
    this.backlogReads++;
    return this.backlog;
  }

  get events(): WatchEvent[] {
    return this.batches.flat();
  }

  /** The revision of every event delivered, in delivery order. */
  get revisions(): number[] {
    return this.events.map((event) => event.modRevision);
  }

  get last(): number {
    return this.revisions.at(-1) ?? 0;
  }
}

/** The state store as the hub's source, counting history reads; `afterRead` runs between a read and its answer. */
class CountingSource implements WatchSource {
  /** The prefix of every history read, in order. */
  readonly prefixes: string[] = [];
  afterRead: (() => Promise<void>) | undefined;

  get reads(): number {
    return this.prefixes.length;
  }

  constructor(readonly store: RealmStateStore) {}

  get revision(): number {
    return this.store.revision;
  }

  async history(realm: string, options: HistoryOptions) {
    this.prefixes.push(options.prefix ?? '');
    const page = await this.store.history(realm, options);
    await this.afterRead?.();
    return page;
  }
}

interface Rig {
  readonly group: GroupStorage;
  readonly writer: Writer;
  readonly source: CountingSource;
  readonly hub: WatchHub;
}

/** A group on the memory engine, a hub wired to its store's changes; the hub is stopped at teardown. */
async function rig(
  t: Test,
  limits: Partial<WatchHubLimits> = {},
  storage: Partial<StorageConfigInput> = {},
): Promise<Rig> {
  const { group } = await openStorage(t, storage);
  const source = new CountingSource(group.state);
  const hub = new WatchHub(source, limits);
  group.state.onChange((change) => hub.onChange(change));
  t.teardown(() => {
    hub.stop();
    group.state.onChange(undefined);
  });
  return { group, writer: new Writer(group), source, hub };
}

/** Subscribes and asserts it was accepted. */
async function subscribe(
  hub: WatchHub,
  realm: string,
  prefix: string,
  from: number | undefined,
  sink: WatchSink,
): Promise<Subscription> {
  const result = await hub.subscribe(realm, prefix, from, sink);
  if (!result.ok) throw new Error(`subscribe refused: ${result.error.code} ${result.error.message}`);
  return result.subscription;
}

/** Revisions strictly increase across the whole delivery (no repeat, no reordering). */
function strictlyIncreasing(revisions: readonly number[]): boolean {
  return revisions.every((revision, i) => i === 0 || revision > revisions[i - 1]!);
}

t.test('live: every change of the realm under the prefix, in revision order, nothing else', async (t) => {
  const { hub, writer, group } = await rig(t);
  await writer.write({ type: 'createRealm', realm: 'other' });
  const sink = new RecordingSink();
  const otherSink = new RecordingSink();
  const sub = await subscribe(hub, 'default', 'a/', undefined, sink);
  t.equal(sub.revision, group.state.revision, 'the subscription reports the revision it started at');
  sub.start();
  (await subscribe(hub, 'other', '', undefined, otherSink)).start();
  t.equal(hub.subscriptions, 2);

  const r1 = await writer.put('a/1', { n: 1 });
  await writer.put('b/1', { n: 1 }); // Another prefix.
  const rOther = await writer.put('a/1', { n: 'other' }, 'other'); // Another realm.
  const r2 = await writer.put('a/2', { n: 2 });
  const r3 = await writer.put('a/1', { n: 11 });
  const rDel = (await writer.write({ type: 'delete', realm: 'default', key: 'a/1' })).revision;
  const rTxn = (
    await writer.write({
      type: 'txn',
      realm: 'default',
      compares: [],
      success: [
        { type: 'put', key: 'a/3', value: [3] },
        { type: 'put', key: 'b/3', value: 3 },
        { type: 'patch', key: 'a/2', patch: { m: true } },
      ],
    })
  ).revision;
  await until(() => sink.last === rTxn, 'the transaction delivered');

  t.strictSame(sink.batches, [
    [{ type: 'put', key: 'a/1', value: { n: 1 }, modRevision: r1, createRevision: r1, version: 1 }],
    [{ type: 'put', key: 'a/2', value: { n: 2 }, modRevision: r2, createRevision: r2, version: 1 }],
    [{ type: 'put', key: 'a/1', value: { n: 11 }, modRevision: r3, createRevision: r1, version: 2 }],
    [{ type: 'delete', key: 'a/1', value: null, modRevision: rDel }],
    [
      { type: 'put', key: 'a/3', value: [3], modRevision: rTxn, createRevision: rTxn, version: 1 },
      {
        type: 'put',
        key: 'a/2',
        value: { n: 2, m: true },
        modRevision: rTxn,
        createRevision: r2,
        version: 2,
      },
    ],
  ]);
  t.strictSame(otherSink.batches, [
    [
      {
        type: 'put',
        key: 'a/1',
        value: { n: 'other' },
        modRevision: rOther,
        createRevision: rOther,
        version: 1,
      },
    ],
  ]);
  t.equal(sink.ended.length + otherSink.ended.length, 0, 'nothing ended');
});

t.test('a transaction arrives in one deliver() call, live and while catching up', async (t) => {
  const { hub, writer } = await rig(t, { pageEvents: 2 });
  const txn = () =>
    writer.write({
      type: 'txn',
      realm: 'default',
      compares: [],
      success: ['t/1', 't/2', 't/3', 't/4', 't/5'].map((key) => ({ type: 'put' as const, key, value: key })),
    });
  const before = (await txn()).revision;
  await writer.put('t/0', 0);
  const live = new RecordingSink();
  (await subscribe(hub, 'default', 't/', undefined, live)).start();
  const catching = new RecordingSink();
  // From the first transaction: a history read of 2 events per page must not split it.
  (await subscribe(hub, 'default', 't/', before, catching)).start();
  const after = (await txn()).revision;
  await until(() => live.last === after && catching.last === after, 'both delivered the second transaction');

  t.strictSame(
    live.batches.map((batch) => batch.map((e) => e.modRevision)),
    [[after, after, after, after, after]],
    'live: one call with the five events',
  );
  // Catching up: each revision's events all in one batch.
  const batchOf = new Map<number, Set<number>>();
  catching.batches.forEach((batch, i) => {
    for (const event of batch) {
      const set = batchOf.get(event.modRevision) ?? new Set();
      set.add(i);
      batchOf.set(event.modRevision, set);
    }
  });
  t.strictSame(
    [...batchOf.entries()].map(([revision, batches]) => [revision, batches.size]),
    [
      [before, 1],
      [before + 1, 1],
      [after, 1],
    ],
    'every revision delivered within exactly one call',
  );
  t.equal(catching.events.filter((e) => e.modRevision === before).length, 5);
  t.equal(catching.events.filter((e) => e.modRevision === after).length, 5);
});

t.test(
  'catch-up from an old revision, with writes landing between every history read and its answer',
  async (t) => {
    const { hub, writer, source } = await rig(t, { pageEvents: 2 });
    let n = 0;
    const write = () => {
      n++;
      // Half the writes match the prefix; a transaction now and then.
      if (n % 7 === 0) {
        return writer.write({
          type: 'txn',
          realm: 'default',
          compares: [],
          success: [
            { type: 'put', key: `k/${n}a`, value: n },
            { type: 'put', key: `x/${n}`, value: n },
            { type: 'put', key: `k/${n}b`, value: n },
          ],
        });
      }
      return writer.write({
        type: 'put',
        realm: 'default',
        key: n % 2 === 0 ? `k/${n}` : `x/${n}`,
        value: n,
      });
    };
    for (let i = 0; i < 40; i++) await write();
    const from = writer.done[5]!.result.revision;
    // Every read the hub makes is followed by two more writes before the hub sees the page.
    let interleaved = 60;
    source.afterRead = async () => {
      for (let i = 0; i < 2 && interleaved > 0; i++, interleaved--) await write();
    };
    const sink = new RecordingSink();
    (await subscribe(hub, 'default', 'k/', from, sink)).start();
    await until(() => interleaved === 0, 'the interleaved writes');
    source.afterRead = undefined;
    const last = await writer.put('k/last', 'end');
    await until(() => sink.last === last, 'the last write delivered');

    const expected = writer.done
      .filter((w) => w.result.revision >= from)
      .flatMap((w) => {
        const op = w.op;
        if (op.type === 'put') return op.key.startsWith('k/') ? [w.result.revision] : [];
        if (op.type === 'txn') return [w.result.revision, w.result.revision];
        return [];
      });
    t.strictSame(
      sink.revisions,
      expected,
      'exactly the matching revisions from `from` on: no gap, no repeat',
    );
    t.ok(strictlyIncreasing([...new Set(sink.revisions)]), 'in revision order');
    t.ok(source.reads > 10, `it caught up in pages (${source.reads} reads)`);

    // It is live now: a new change arrives without another history read.
    const reads = source.reads;
    const next = await writer.put('k/live', 1);
    await until(() => sink.last === next, 'the live write');
    t.equal(source.reads, reads, 'delivered live, not from history');
    t.strictSame(sink.ended, []);
  },
);

t.test('catch-up while a writer runs freely alongside: no gap, no repeat', async (t) => {
  const { hub, writer } = await rig(t, { pageEvents: 2 });
  for (let i = 0; i < 30; i++) await writer.put(`k/${i}`, i);
  const sinks = [new RecordingSink(), new RecordingSink(), new RecordingSink()];
  const writing = (async () => {
    for (let i = 0; i < 150; i++) await writer.put(`k/w${i}`, i);
  })();
  // Three subscriptions started at different moments of the writing, from revision 2.
  for (const sink of sinks) {
    (await subscribe(hub, 'default', 'k/', 2, sink)).start();
    await writer.put('k/gap', 0);
  }
  await writing;
  const last = await writer.put('k/end', 0);
  for (const [i, sink] of sinks.entries()) {
    await until(() => sink.last === last, `sink ${i} caught up`);
  }
  const expected = writer.done.map((w) => w.result.revision);
  t.strictSame(expected[0], 2, 'the first write made revision 2');
  for (const [i, sink] of sinks.entries()) {
    t.strictSame(
      sink.revisions,
      expected,
      `sink ${i}: every revision from 2 to ${last}, once each, in order`,
    );
    t.strictSame(sink.ended, []);
  }
});

t.test(
  'without fromRevision: only changes after the subscription, also ones applied during its first read',
  async (t) => {
    const { hub, writer, source, group } = await rig(t, { pageEvents: 2 });
    for (let i = 0; i < 5; i++) await writer.put(`k/${i}`, i);
    const during: number[] = [];
    source.afterRead = async () => {
      source.afterRead = undefined;
      for (let i = 0; i < 3; i++) during.push(await writer.put(`k/during${i}`, i));
    };
    const sink = new RecordingSink();
    const revisionBefore = group.state.revision;
    const sub = await subscribe(hub, 'default', 'k/', undefined, sink);
    t.equal(sub.revision, revisionBefore, 'the revision when it was made');
    sub.start();
    const after = await writer.put('k/after', 1);
    await until(() => sink.last === after, 'the later write');
    t.strictSame(sink.revisions, [...during, after], 'from the subscription revision + 1 on, none before');
  },
);

t.test('fromRevision at or below the history floor: COMPACTED with the current revision', async (t) => {
  const { hub, writer, group } = await rig(t, { pageEvents: 4 }, { historyMaxRevisions: 8 });
  for (let i = 0; i < 30; i++) await writer.put(`k/${i}`, i);
  const floor = group.state.meta.historyFloor;
  const current = group.state.revision;
  t.ok(floor > 1, `history was evicted (floor ${floor})`);
  for (const from of [1, floor - 1, floor]) {
    const sink = new RecordingSink();
    const result = await hub.subscribe('default', '', from, sink);
    t.match(
      result,
      { ok: false, error: { code: 'COMPACTED', revision: current, retryable: false, message: String } },
      `from ${from}`,
    );
  }
  t.equal(hub.subscriptions, 0, 'refused subscriptions hold nothing');

  const sink = new RecordingSink();
  (await subscribe(hub, 'default', '', floor + 1, sink)).start();
  await until(() => sink.last === current, 'caught up');
  t.strictSame(
    sink.revisions,
    Array.from({ length: current - floor }, (_, i) => floor + 1 + i),
    'from the floor + 1 on: every retained revision',
  );
  t.equal(hub.subscriptions, 1);
});

t.test('a subscription that falls below the floor while catching up ends with COMPACTED', async (t) => {
  const { hub, writer, group } = await rig(
    t,
    { pageEvents: 2, maxBacklogBytes: 100 },
    { historyMaxRevisions: 8 },
  );
  for (let i = 0; i < 5; i++) await writer.put(`k/${i}`, i);
  const sink = new RecordingSink();
  sink.backlog = 1_000; // Catch-up pauses after the first page.
  (await subscribe(hub, 'default', '', 2, sink)).start();
  t.strictSame(sink.revisions, [2, 3], 'the first page');
  for (let i = 0; i < 30; i++) await writer.put(`k/more${i}`, i);
  t.ok(group.state.meta.historyFloor >= 4, 'its next revision is no longer retained');
  sink.backlog = 0;
  await until(() => sink.ended.length === 1, 'the end');
  t.match(sink.ended[0], { code: 'COMPACTED', revision: group.state.revision, retryable: false });
  t.strictSame(sink.revisions, [2, 3], 'nothing after the first page');
  t.equal(hub.subscriptions, 0);
});

t.test('subscribe answers the store errors and the subscription limit', async (t) => {
  const { hub } = await rig(t, { maxSubscriptions: 1 });
  t.match(await hub.subscribe('nope', '', undefined, new RecordingSink()), {
    ok: false,
    error: { code: 'NOT_FOUND', retryable: false },
  });
  t.match(await hub.subscribe('default', '', 0, new RecordingSink()), {
    ok: false,
    error: { code: 'INVALID_ARGUMENT', retryable: false },
  });
  t.match(await hub.subscribe('bad realm!', '', undefined, new RecordingSink()), {
    ok: false,
    error: { code: 'INVALID_ARGUMENT' },
  });
  t.equal(hub.subscriptions, 0);
  const held = await subscribe(hub, 'default', '', undefined, new RecordingSink());
  t.match(await hub.subscribe('default', '', undefined, new RecordingSink()), {
    ok: false,
    error: { code: 'UNAVAILABLE', retryable: true },
  });
  held.cancel();
  t.equal(hub.subscriptions, 0);
  t.match(await hub.subscribe('default', '', undefined, new RecordingSink()), { ok: true }, 'room again');
});

t.test('maxSubscriptions holds for subscriptions made concurrently', async (t) => {
  const { hub } = await rig(t, { maxSubscriptions: 2 });
  const results = await Promise.all(
    Array.from({ length: 5 }, () => hub.subscribe('default', '', undefined, new RecordingSink())),
  );
  const accepted = results.filter((r) => r.ok).length;
  t.equal(accepted, 2, `two of five accepted (accepted ${accepted})`);
  t.ok(hub.subscriptions <= 2, `at most the limit held (holds ${hub.subscriptions})`);
  for (const result of results) {
    if (!result.ok) t.match(result.error, { code: 'UNAVAILABLE', retryable: true }, 'the rest refused');
  }
});

t.test('a sink whose deliver() answers false is dropped, live or catching up', async (t) => {
  const { hub, writer } = await rig(t, { pageEvents: 2 });
  await writer.put('k/0', 0);
  const live = new RecordingSink();
  const kept = new RecordingSink();
  (await subscribe(hub, 'default', '', undefined, live)).start();
  (await subscribe(hub, 'default', '', undefined, kept)).start();
  const catching = new RecordingSink();
  catching.accept = false;
  (await subscribe(hub, 'default', '', 2, catching)).start();
  t.equal(catching.refused, 1, 'the first page was offered');
  t.equal(hub.subscriptions, 2, 'and the refusing sink dropped');

  live.accept = false;
  const r = await writer.put('k/1', 1);
  await until(() => kept.last === r, 'delivered to the other');
  t.equal(live.refused, 1);
  t.equal(hub.subscriptions, 1, 'the refusing sink was dropped');
  const r2 = await writer.put('k/2', 2);
  await until(() => kept.last === r2, 'the next write');
  t.equal(live.refused, 1, 'no delivery is offered after the drop');
  t.equal(catching.refused, 1);
  t.strictSame([live.ended, catching.ended], [[], []], 'a dropped sink is not ended');
});

t.test('cancel() stops delivery at once, live, paused or not yet started', async (t) => {
  const { hub, writer, source } = await rig(t, { pageEvents: 2, maxBacklogBytes: 100 });
  for (let i = 0; i < 6; i++) await writer.put(`k/${i}`, i);
  const live = new RecordingSink();
  const witness = new RecordingSink();
  const liveSub = await subscribe(hub, 'default', '', undefined, live);
  liveSub.start();
  (await subscribe(hub, 'default', '', undefined, witness)).start();
  const r1 = await writer.put('k/a', 1);
  t.strictSame(live.revisions, [r1]);
  liveSub.cancel();
  liveSub.cancel(); // Idempotent.
  t.equal(hub.subscriptions, 1);

  const paused = new RecordingSink();
  paused.backlog = 1_000;
  const pausedSub = await subscribe(hub, 'default', '', 2, paused);
  pausedSub.start();
  t.strictSame(paused.revisions, [2, 3], 'first page, then paused');
  // A second paused subscription shows the catch-up loops keep turning meanwhile.
  const clock = new RecordingSink();
  clock.backlog = 1_000;
  (await subscribe(hub, 'default', '', 2, clock)).start();
  await until(() => paused.backlogReads >= 3, 'the paused catch-up polling its backlog');
  pausedSub.cancel();
  const polls = paused.backlogReads;
  paused.backlog = 0;

  const unstarted = new RecordingSink();
  const unstartedSub = await subscribe(hub, 'default', '', 2, unstarted);
  unstartedSub.cancel();
  unstartedSub.start();
  const reads = source.reads;
  t.equal(hub.subscriptions, 2, 'the witness and the clock');

  const r2 = await writer.put('k/b', 2);
  await until(() => witness.last === r2, 'the witness got the next write');
  const ticks = clock.backlogReads;
  await until(() => clock.backlogReads >= ticks + 5, 'five more turns of the other catch-up loop');
  t.strictSame(live.revisions, [r1], 'nothing after cancel');
  t.strictSame(paused.revisions, [2, 3], 'the cancelled catch-up delivered nothing more');
  t.equal(paused.backlogReads, polls, 'and stopped polling its backlog');
  t.equal(source.reads, reads, 'no history read after the cancels');
  t.strictSame(unstarted.batches, [], 'a cancelled subscription does not start');
  t.strictSame([live.ended, paused.ended, unstarted.ended], [[], [], []], 'cancel does not call end()');
});

t.test('stop() ends every subscription with a retryable UNAVAILABLE and refuses new ones', async (t) => {
  const { hub, writer } = await rig(t, { pageEvents: 2, maxBacklogBytes: 100 });
  for (let i = 0; i < 6; i++) await writer.put(`k/${i}`, i);
  const live = new RecordingSink();
  const paused = new RecordingSink();
  paused.backlog = 1_000;
  const other = new RecordingSink();
  await writer.write({ type: 'createRealm', realm: 'other' });
  (await subscribe(hub, 'default', '', undefined, live)).start();
  (await subscribe(hub, 'default', '', 2, paused)).start();
  (await subscribe(hub, 'other', '', undefined, other)).start();
  t.equal(hub.subscriptions, 3);
  hub.stop();
  t.equal(hub.subscriptions, 0);
  for (const [name, sink] of [
    ['live', live],
    ['paused', paused],
    ['other realm', other],
  ] as const) {
    t.equal(sink.ended.length, 1, `${name}: ended once`);
    t.match(sink.ended[0], { code: 'UNAVAILABLE', retryable: true, message: String }, name);
  }
  paused.backlog = 0;
  await writer.put('k/after', 1);
  t.strictSame(live.batches, [], 'nothing delivered after stop');
  t.strictSame(paused.revisions, [2, 3]);
  t.match(await hub.subscribe('default', '', undefined, new RecordingSink()), {
    ok: false,
    error: { code: 'UNAVAILABLE', retryable: true },
  });
  t.equal(hub.subscriptions, 0);
});

t.test('a backlog above the limit pauses catch-up until it drops', async (t) => {
  const { hub, writer, source } = await rig(t, { pageEvents: 2, maxBacklogBytes: 1_000 });
  for (let i = 0; i < 20; i++) await writer.put(`k/${i}`, i);
  const sink = new RecordingSink();
  sink.backlog = 1_001;
  const readsBefore = source.reads;
  (await subscribe(hub, 'default', '', 2, sink)).start();
  t.strictSame(sink.revisions, [2, 3], 'the first page (read by subscribe) is delivered');
  // The catch-up checks the backlog again and again without reading on.
  await until(() => sink.backlogReads >= 5, 'five backlog checks');
  t.equal(source.reads, readsBefore + 1, 'no read beyond the first page while the backlog is high');
  t.strictSame(sink.revisions, [2, 3]);
  // Live changes do not reach a subscription that is catching up either.
  await writer.put('k/new', 1);
  t.strictSame(sink.revisions, [2, 3]);

  sink.backlog = 1_000; // At the limit is not above it.
  const last = writer.done.at(-1)!.result.revision;
  await until(() => sink.last === last, 'catch-up resumed');
  t.strictSame(
    sink.revisions,
    Array.from({ length: last - 1 }, (_, i) => 2 + i),
  );
  t.ok(source.reads >= readsBefore + 10, 'it went on reading pages');
});

t.test('a snapshot install sends live subscriptions back through the new history', async (t) => {
  // The leader's state runs ahead; the follower's, with the hub, is replaced by its snapshot.
  const leader = await openStorage(t);
  const follower = await openStorage(t);
  const leaderWriter = new Writer(leader.group);
  const followerWriter = new Writer(follower.group);
  const both = async (key: string, value: number) => {
    const a = await leaderWriter.put(key, value);
    const b = await followerWriter.put(key, value);
    if (a !== b) throw new Error('the two states diverged');
    return a;
  };
  for (let i = 0; i < 10; i++) await both(`k/${i}`, i);
  const source = new CountingSource(follower.group.state);
  const hub = new WatchHub(source, { pageEvents: 3 });
  const changes: StateChange[] = [];
  follower.group.state.onChange((change) => {
    changes.push(change);
    hub.onChange(change);
  });
  t.teardown(() => hub.stop());
  const sink = new RecordingSink();
  const kSink = new RecordingSink();
  (await subscribe(hub, 'default', '', undefined, sink)).start();
  (await subscribe(hub, 'default', 'k/11', undefined, kSink)).start();
  const shared = await both('k/10', 10);
  t.strictSame(sink.revisions, [shared], 'live before the install');

  const missed: number[] = [];
  for (let i = 11; i < 20; i++) missed.push(await leaderWriter.put(`k/${i}`, i));
  const snapshot = await leader.group.createSnapshot();
  const reads = source.reads;
  await follower.group.installSnapshot(snapshot.path, { index: snapshot.header.index, term: 1 });
  t.match(
    changes.at(-1),
    { kind: 'replaced', revision: missed.at(-1) },
    'the store reported the replacement',
  );
  await until(() => sink.last === missed.at(-1) && kSink.last === missed[0], 'the missed revisions');
  t.strictSame(sink.revisions, [shared, ...missed], 'the changes it missed, from the new history, once each');
  t.strictSame(kSink.revisions, [missed[0]], 'with its prefix: only k/11');
  t.ok(source.reads > reads, 'read from history');

  // Then live again on the new state.
  const unprefixedReads = () => source.prefixes.filter((p) => p === '').length;
  const readsLive = unprefixedReads();
  const after = await new Writer(follower.group).put('k/after', 1);
  await until(() => sink.last === after, 'the write after the install');
  t.equal(unprefixedReads(), readsLive, 'delivered live');
  t.strictSame([sink.ended, kSink.ended], [[], []]);
  t.equal(hub.subscriptions, 2);
});

t.test(
  'a snapshot install whose history floor passed a live subscription ends it with COMPACTED',
  async (t) => {
    const leader = await openStorage(t, { historyMaxRevisions: 4 });
    const follower = await openStorage(t);
    const leaderWriter = new Writer(leader.group);
    const followerWriter = new Writer(follower.group);
    for (let i = 0; i < 5; i++) {
      await leaderWriter.put(`k/${i}`, i);
      await followerWriter.put(`k/${i}`, i);
    }
    const hub = new WatchHub(follower.group.state, { pageEvents: 3, maxBacklogBytes: 100 });
    follower.group.state.onChange((change) => hub.onChange(change));
    t.teardown(() => hub.stop());
    const live = new RecordingSink();
    (await subscribe(hub, 'default', '', undefined, live)).start();
    for (let i = 5; i < 30; i++) await leaderWriter.put(`k/${i}`, i);
    const snapshot = await leader.group.createSnapshot();
    t.ok(leader.group.state.meta.historyFloor > 7, 'the leader evicted the history the follower lacks');
    await follower.group.installSnapshot(snapshot.path, { index: snapshot.header.index, term: 1 });
    await until(() => live.ended.length === 1, 'the live subscription ended');
    t.match(live.ended[0], { code: 'COMPACTED', revision: leader.group.state.revision, retryable: false });
    t.strictSame(live.batches, [], 'nothing delivered');
    t.equal(hub.subscriptions, 0);
  },
);

t.test(
  "a 'replaced' change: live subscriptions read history again; ones below its floor end COMPACTED",
  async (t) => {
    // A fake source: history is a list the test controls.
    const events: { revision: number; key: string }[] = [];
    let floor = 0;
    let revision = 3;
    let reads = 0;
    const source: WatchSource = {
      get revision() {
        return revision;
      },
      async history(realm, options) {
        reads++;
        if (options.fromRevision <= floor) {
          return { ok: false, revision, error: { code: 'COMPACTED', message: `below ${floor}` } };
        }
        const page = events.filter((e) => e.revision >= options.fromRevision).slice(0, options.limit ?? 100);
        return {
          ok: true,
          revision,
          value: {
            events: page.map((e) => ({
              type: 'put' as const,
              revision: e.revision,
              realm,
              key: e.key,
              value: e.revision,
              createRevision: e.revision,
              modRevision: e.revision,
              version: 1,
            })),
            nextRevision: page.length === 0 ? options.fromRevision : page.at(-1)!.revision + 1,
          },
        };
      },
    };
    const hub = new WatchHub(source, { pageEvents: 2 });
    t.teardown(() => hub.stop());
    const a = new RecordingSink();
    const b = new RecordingSink();
    (await subscribe(hub, 'default', '', undefined, a)).start();
    t.equal(reads, 1);
    // A change at revision 4 takes `a` to next 5; b subscribes after it.
    events.push({ revision: 4, key: 'x' });
    revision = 4;
    hub.onChange({
      kind: 'applied',
      revision: 4,
      events: [
        JSON.stringify({
          type: 'put',
          revision: 4,
          realm: 'default',
          key: 'x',
          value: 4,
          createRevision: 4,
          modRevision: 4,
          version: 1,
        }),
      ],
    });
    t.strictSame(a.revisions, [4]);
    (await subscribe(hub, 'default', '', undefined, b)).start();
    // The replacement brings revisions 5..8; its floor is 4, so both resume from history.
    for (let r = 5; r <= 8; r++) events.push({ revision: r, key: `y${r}` });
    revision = 8;
    floor = 4;
    const readsBefore = reads;
    hub.onChange({ kind: 'replaced', revision: 8, historyFloor: 4 });
    await until(() => a.last === 8 && b.last === 8, 'both caught up');
    t.strictSame(a.revisions, [4, 5, 6, 7, 8]);
    t.strictSame(b.revisions, [5, 6, 7, 8]);
    t.ok(reads >= readsBefore + 4, 'two pages each');
    // Another replacement, whose floor is past where they are: both end COMPACTED.
    for (let r = 9; r <= 12; r++) events.push({ revision: r, key: `z${r}` });
    revision = 12;
    floor = 10;
    hub.onChange({ kind: 'replaced', revision: 12, historyFloor: 10 });
    await until(() => a.ended.length === 1 && b.ended.length === 1, 'both ended');
    t.match(a.ended[0], { code: 'COMPACTED', revision: 12, retryable: false });
    t.match(b.ended[0], { code: 'COMPACTED', revision: 12, retryable: false });
    t.strictSame(a.revisions, [4, 5, 6, 7, 8], 'nothing more delivered');
    t.equal(hub.subscriptions, 0);
  },
);
