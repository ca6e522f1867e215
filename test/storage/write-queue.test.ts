// Group commit on a scripted engine: what joins a batch, in what order callbacks run, and fail-stop.

import t from 'tap';
import type { IterateOptions, KvEngine, WriteOp } from '../../storage/engine.js';
import { WriteQueue } from '../../storage/write-queue.js';

/** An engine whose writes complete only when the test says so, recording everything. */
class ScriptedEngine implements KvEngine {
  readonly kind = 'memory' as const;
  readonly rangeDelete = 'key-by-key' as const;

  constructor(readonly syncCoversEarlierWrites = true) {}
  readonly writes: { keys: string[]; sync: boolean }[] = [];
  readonly log: string[] = [];
  private pending: { resolve: () => void; reject: (error: Error) => void }[] = [];

  async open(): Promise<void> {}
  async close(): Promise<void> {}

  write(ops: readonly WriteOp[], sync: boolean): Promise<void> {
    const keys = ops.map((op) => Buffer.from(op.key).toString());
    this.writes.push({ keys, sync });
    this.log.push(`write ${keys.join(',')}`);
    return new Promise((resolve, reject) => this.pending.push({ resolve, reject }));
  }

  /** Completes the oldest write in flight. */
  finishWrite(error?: Error): void {
    const next = this.pending.shift();
    if (!next) throw new Error('no write in flight');
    if (error) next.reject(error);
    else next.resolve();
  }

  get inFlight(): number {
    return this.pending.length;
  }

  async clear(gte: Uint8Array, lt: Uint8Array): Promise<void> {
    this.log.push(`clear ${Buffer.from(gte).toString()}..${Buffer.from(lt).toString()}`);
  }

  getManySync(): (Uint8Array | undefined)[] {
    return [];
  }

  async getMany(): Promise<(Uint8Array | undefined)[]> {
    return [];
  }

  iterate(
    _gte: Uint8Array,
    _lt: Uint8Array,
    _options?: IterateOptions,
  ): AsyncIterable<[Uint8Array, Uint8Array]> {
    return { async *[Symbol.asyncIterator]() {} };
  }
}

const op = (key: string, bytes = 1): WriteOp => ({
  type: 'put',
  key: Buffer.from(key),
  value: new Uint8Array(bytes),
});
/** Lets the queue's scheduled flush run: two turns, since a flush scheduled by a completion queues behind ours. */
const turn = async () => {
  for (let i = 0; i < 2; i++) await new Promise<void>((resolve) => setImmediate(resolve));
};

t.test(
  'requests of one turn form one synced batch; those arriving during a write form the next',
  async (t) => {
    const engine = new ScriptedEngine();
    const queue = new WriteQueue(engine, { maxBatchBytes: 1 << 20, maxPendingBytes: 1 << 22 });
    const done: string[] = [];
    const submit = (key: string) =>
      queue
        .submit([op(key)], { onDurable: () => done.push(`durable ${key}`) })
        .then(() => done.push(`resolved ${key}`));
    const first = [submit('a'), submit('b'), submit('c')];
    await turn();
    t.same(engine.writes, [{ keys: ['a', 'b', 'c'], sync: true }], 'one synced write for the first turn');
    const second = [submit('d'), submit('e')];
    await turn();
    t.equal(engine.writes.length, 1, 'nothing more is written while a write is in flight');
    engine.finishWrite();
    await Promise.all(first);
    await turn();
    t.same(engine.writes[1], { keys: ['d', 'e'], sync: true }, 'what queued meanwhile is the next batch');
    engine.finishWrite();
    await Promise.all(second);
    t.same(done, [
      'durable a',
      'durable b',
      'durable c',
      'resolved a',
      'resolved b',
      'resolved c',
      'durable d',
      'durable e',
      'resolved d',
      'resolved e',
    ]);
    t.same(queue.stats, { batches: 2, unsyncedBatches: 0, requests: 5, ops: 5, bytes: 10, clears: 0 });
  },
);

t.test('a batch stops at maxBatchBytes but never splits a request', async (t) => {
  const engine = new ScriptedEngine();
  const queue = new WriteQueue(engine, { maxBatchBytes: 100, maxPendingBytes: 10_000 });
  const all = [
    queue.submit([op('a', 40), op('b', 40)]),
    queue.submit([op('c', 40)]),
    queue.submit([op('d', 500)]),
  ];
  await turn();
  engine.finishWrite();
  await turn();
  engine.finishWrite();
  await turn();
  engine.finishWrite();
  await Promise.all(all);
  t.same(
    engine.writes.map((w) => w.keys),
    [['a', 'b'], ['c'], ['d']],
    'a+b (82 bytes) fit, c would pass 100, d goes alone although larger',
  );
});

t.test('clears run after their request is durable, in order', async (t) => {
  const engine = new ScriptedEngine();
  const queue = new WriteQueue(engine, { maxBatchBytes: 1 << 20, maxPendingBytes: 1 << 22 });
  const p = queue.submit([op('bound')], { clears: [[Buffer.from('0'), Buffer.from('5')]] });
  const q = queue.submit([], { clears: [[Buffer.from('5'), Buffer.from('9')]] });
  await turn();
  t.same(engine.log, ['write bound'], 'no clear before the write is durable');
  engine.finishWrite();
  await Promise.all([p, q]);
  await queue.drain();
  t.same(engine.log, ['write bound', 'clear 0..5', 'clear 5..9']);
});

t.test(
  'a failed write stops the queue: that batch, the waiting ones and later ones are refused',
  async (t) => {
    const engine = new ScriptedEngine();
    const queue = new WriteQueue(engine, { maxBatchBytes: 1 << 20, maxPendingBytes: 1 << 22 });
    let durable = 0;
    const inFlight = queue.submit([op('a')], { onDurable: () => durable++ });
    await turn();
    const waiting = queue.submit([op('b')], { onDurable: () => durable++ });
    engine.finishWrite(new Error('EIO: fsync failed'));
    await t.rejects(inFlight, { code: 'STORAGE_FAILED' });
    await t.rejects(waiting, { code: 'STORAGE_FAILED' });
    await t.rejects(queue.submit([op('c')]), { code: 'STORAGE_FAILED' });
    t.equal(durable, 0, 'no request is reported durable');
    t.equal(engine.writes.length, 1, 'nothing is retried');
    t.match(queue.failed?.message, /EIO/);
    await queue.drain();
  },
);

t.test('more than maxPendingBytes waiting is refused with STORAGE_BUSY; the queue goes on', async (t) => {
  const engine = new ScriptedEngine();
  const queue = new WriteQueue(engine, { maxBatchBytes: 100, maxPendingBytes: 200 });
  const first = queue.submit([op('a', 150)]);
  await t.rejects(queue.submit([op('b', 150)]), { code: 'STORAGE_BUSY' });
  await turn();
  engine.finishWrite();
  await first;
  const later = queue.submit([op('c', 150)]);
  await turn();
  engine.finishWrite();
  await later;
  t.same(
    engine.writes.map((w) => w.keys),
    [['a'], ['c']],
  );
});

t.test('close waits for what is queued, then refuses', async (t) => {
  const engine = new ScriptedEngine();
  const queue = new WriteQueue(engine, { maxBatchBytes: 100, maxPendingBytes: 1000 });
  const p = queue.submit([op('a')]);
  const closed = queue.close();
  await turn();
  engine.finishWrite();
  await p;
  await closed;
  await t.rejects(queue.submit([op('b')]), { code: 'STORAGE_CLOSED' });
  t.equal(engine.inFlight, 0);
});

t.test(
  'a batch of only sync:false requests is written unsynced; one synced request syncs its batch',
  async (t) => {
    const engine = new ScriptedEngine();
    const queue = new WriteQueue(engine, { maxBatchBytes: 1 << 20, maxPendingBytes: 1 << 22 });
    const first = Promise.all([
      queue.submit([op('a1')], { sync: false }),
      queue.submit([op('a2')], { sync: false }),
    ]);
    await turn();
    engine.finishWrite();
    await first;
    const second = Promise.all([queue.submit([op('b1')], { sync: false }), queue.submit([op('b2')])]);
    await turn();
    engine.finishWrite();
    await second;
    t.same(
      engine.writes,
      [
        { keys: ['a1', 'a2'], sync: false },
        { keys: ['b1', 'b2'], sync: true },
      ],
      'unsynced alone, synced when mixed',
    );
    t.match(queue.stats, { batches: 1, unsyncedBatches: 1 }, 'counted apart');
  },
);

t.test(
  'on an engine whose sync does not cover earlier writes (LevelDB), every batch is synced',
  async (t) => {
    const engine = new ScriptedEngine(false);
    const queue = new WriteQueue(engine, { maxBatchBytes: 1 << 20, maxPendingBytes: 1 << 22 });
    const done = queue.submit([op('a')], { sync: false });
    await turn();
    engine.finishWrite();
    await done;
    t.same(engine.writes, [{ keys: ['a'], sync: true }], 'synced anyway');
  },
);

t.test(
  'requests submitted in one task form one batch, written when the task ends, not a turn later',
  async (t) => {
    const engine = new ScriptedEngine();
    const queue = new WriteQueue(engine, { maxBatchBytes: 1 << 20, maxPendingBytes: 1 << 22 });
    const applied = Promise.all([
      queue.submit([op('apply1')], { sync: false }),
      queue.submit([op('apply2')], { sync: false }),
    ]);
    await Promise.resolve(); // Microtasks only: no turn of the event loop.
    t.same(engine.writes, [{ keys: ['apply1', 'apply2'], sync: false }], 'unsynced, together, at once');
    engine.finishWrite();
    await applied;

    const synced = Promise.all([queue.submit([op('log1')]), queue.submit([op('log2')], { sync: false })]);
    await Promise.resolve();
    t.same(engine.writes[1], { keys: ['log1', 'log2'], sync: true }, 'a synced request syncs its batch');
    const behind = queue.submit([op('later')]);
    await turn();
    t.equal(engine.writes.length, 2, 'what arrives while a batch is in flight waits for it');
    engine.finishWrite();
    await synced;
    await turn();
    t.same(engine.writes[2], { keys: ['later'], sync: true }, 'then forms the next batch');
    engine.finishWrite();
    await behind;
  },
);
