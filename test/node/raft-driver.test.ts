// The raft driver with real timers over in-memory storage and an in-process network.

import t from 'tap';
import {
  type Entry,
  MemoryStorage,
  type Message,
  MessageType,
  RawNode,
  type Ready,
  Role,
  SeededPrng,
  type Snapshot,
} from '../../raft/index.js';
import {
  DriverError,
  type Logger,
  RaftDriver,
  type ReadyStore,
  type StateMachine,
} from '../../src/raft-driver.js';
import { type RecordingLogger, recordingLogger } from '../net/helpers.js';

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {} };

/** A store that takes `delayMs` per write and coalesces writes queued meanwhile (group commit). */
class DelayedMemoryStore implements ReadyStore {
  writes = 0;
  readies = 0;
  private queue: { ready: Ready; resolve: () => void }[] = [];
  private writing = false;
  constructor(
    readonly storage: MemoryStorage,
    private readonly delayMs: number,
  ) {}

  persist(ready: Ready): Promise<void> {
    this.readies++;
    return new Promise((resolve) => {
      this.queue.push({ ready, resolve });
      if (!this.writing) void this.flush();
    });
  }

  private async flush(): Promise<void> {
    this.writing = true;
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0);
      await new Promise((r) => setTimeout(r, this.delayMs));
      this.writes++;
      for (const { ready, resolve } of batch) {
        if (ready.snapshot) this.storage.applySnapshot(ready.snapshot);
        this.storage.append(ready.entries);
        if (ready.hardState) this.storage.setHardState(ready.hardState);
        resolve();
      }
    }
    this.writing = false;
  }
}

class Counter implements StateMachine<number> {
  total = 0;
  async applySnapshot(snapshot: Snapshot): Promise<void> {
    this.total = snapshot.data.length > 0 ? Number(new TextDecoder().decode(snapshot.data)) : 0;
  }
  async apply(entries: readonly Entry[]): Promise<(number | undefined)[]> {
    return entries.map((entry) => {
      if (entry.type !== 0 || entry.data.length === 0) return undefined;
      this.total += Number(new TextDecoder().decode(entry.data));
      return this.total;
    });
  }
}

interface Member {
  id: string;
  driver: RaftDriver<number>;
  store: DelayedMemoryStore;
  counter: Counter;
  down: boolean;
  /** Every message this member's driver handed to its sender. */
  sent: Message[];
}

function cluster(ids: string[], loggers: Map<string, RecordingLogger> = new Map()): Member[] {
  const members = new Map<string, Member>();
  for (const [i, id] of ids.entries()) {
    const storage = MemoryStorage.bootstrap({ voters: ids, learners: [] });
    const store = new DelayedMemoryStore(storage, 1);
    const counter = new Counter();
    const node = new RawNode({
      id,
      storage,
      prng: new SeededPrng(100 + i),
      electionTicks: 10,
      heartbeatTicks: 2,
    });
    const driver = new RaftDriver<number>({
      node,
      store,
      stateMachine: counter,
      logger: loggers.get(id) ?? quiet,
      tickMs: 10,
      maxPendingRequests: 10_000,
      sender: {
        send(messages: readonly Message[]) {
          members.get(id)!.sent.push(...messages);
          for (const message of messages) {
            setImmediate(() => {
              const target = members.get(message.to);
              if (target && !target.down && !members.get(message.from)!.down) target.driver.receive(message);
            });
          }
        },
      },
    });
    members.set(id, { id, driver, store, counter, down: false, sent: [] });
  }
  return [...members.values()];
}

async function until<T>(what: string, probe: () => T | undefined, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = probe();
    if (value !== undefined) return value;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`timed out waiting for ${what}`);
}

function leaderOf(members: Member[]): Member | undefined {
  return members.find((m) => !m.down && m.driver.status().role === Role.Leader);
}

t.test('three drivers elect a leader, apply proposals in order and serve reads', async (t) => {
  const members = cluster(['a', 'b', 'c']);
  for (const m of members) m.driver.start();
  t.teardown(() => Promise.all(members.map((m) => m.driver.stop())));
  const leader = await until('a leader', () => leaderOf(members));

  const results = await Promise.all(
    Array.from({ length: 200 }, () => leader.driver.propose(new TextEncoder().encode('1'), 2000)),
  );
  t.same(
    results.slice().sort((x, y) => x! - y!),
    Array.from({ length: 200 }, (_, i) => i + 1),
    'every proposal resolves with the running total it produced',
  );
  t.ok(
    leader.store.writes < leader.store.readies || leader.store.readies < 200,
    'writes are batched: fewer Readies or fsyncs than proposals',
  );
  t.ok(leader.store.readies < 200, `200 concurrent proposals took ${leader.store.readies} Readies`);

  const follower = members.find((m) => m !== leader)!;
  const index = await follower.driver.readIndex(2000);
  t.ok(index >= 201, `a follower's read index (${index}) covers every acknowledged write`);
  t.equal(follower.counter.total, 200, 'and the follower has applied them when the read is served');
});

t.test(
  "a leader's commit notices go out before it answers the write, so followers apply alongside it",
  async (t) => {
    const members = cluster(['a', 'b', 'c']);
    for (const m of members) m.driver.start();
    t.teardown(() => Promise.all(members.map((m) => m.driver.stop())));
    const leader = await until('a leader', () => leaderOf(members));
    await leader.driver.propose(new TextEncoder().encode('1'), 2000);
    const isNotice = (m: Message) =>
      m.type === MessageType.Append && m.entries.length === 0 && m.replyOnlyOnReject;
    const followers = members.filter((m) => m !== leader);
    const writes = 20;
    let late = 0;
    for (let i = 0; i < writes; i++) {
      const index = leader.driver.status().lastIndex + 1;
      await leader.driver.propose(new TextEncoder().encode('1'), 2000);
      // The answer is here: the notice of this commit must have gone already.
      if (!leader.sent.some((m) => isNotice(m) && m.commit >= index)) late++;
      await until(`the followers to learn commit ${index}`, () =>
        followers.every((m) => m.driver.status().commitIndex >= index) ? true : undefined,
      );
    }
    t.equal(late, 0, 'every commit notice went before the answer to its write');
    t.same(
      followers.map((m) => m.counter.total),
      [writes + 1, writes + 1],
      'the followers applied every write',
    );
  },
);

t.test('a proposal on a follower is refused with NOT_LEADER naming the leader', async (t) => {
  const members = cluster(['a', 'b', 'c']);
  for (const m of members) m.driver.start();
  t.teardown(() => Promise.all(members.map((m) => m.driver.stop())));
  const leader = await until('a leader', () => leaderOf(members));
  const follower = members.find((m) => m !== leader)!;
  await until('the follower to know the leader', () =>
    follower.driver.status().leader === leader.id ? true : undefined,
  );
  const error = await follower.driver.propose(new TextEncoder().encode('1'), 1000).catch((e: unknown) => e);
  t.ok(error instanceof DriverError, 'a DriverError');
  t.equal((error as DriverError).code, 'NOT_LEADER');
  t.equal((error as DriverError).leader, leader.id, 'it names the leader for redirection');
});

t.test('when the leader goes silent the others elect a new one and keep committing', async (t) => {
  const loggers = new Map(['a', 'b', 'c'].map((id) => [id, recordingLogger()]));
  const members = cluster(['a', 'b', 'c'], loggers);
  for (const m of members) m.driver.start();
  t.teardown(() => Promise.all(members.map((m) => m.driver.stop())));
  const first = await until('a leader', () => leaderOf(members));
  await first.driver.propose(new TextEncoder().encode('5'), 2000);
  first.down = true;
  const started = Date.now();
  const second = await until('a new leader', () => leaderOf(members.filter((m) => m !== first)));
  const total = await second.driver.propose(new TextEncoder().encode('1'), 2000);
  t.not(second.id, first.id, 'another node leads');
  t.equal(total, 6, "the new leader applied the old leader's committed write first");
  t.ok(Date.now() - started < 3000, `failover took ${Date.now() - started} ms`);
  for (const m of members.filter((m) => m !== first)) {
    const changes = loggers.get(m.id)!.events('raft.leader_changed');
    t.same(
      changes.map((line) => line.leader),
      [first.id, second.id],
      `${m.id} logged each leader it learned of, once`,
    );
    t.equal(m.driver.counters().leaderChanges, 2, `${m.id} counted them`);
  }
});

t.test('stop() fails waiting requests with STOPPED', async (t) => {
  const members = cluster(['a', 'b', 'c']);
  for (const m of members) m.driver.start();
  const leader = await until('a leader', () => leaderOf(members));
  for (const m of members) if (m !== leader) m.down = true;
  const pending = leader.driver.propose(new TextEncoder().encode('1'), 5000).catch((e: unknown) => e);
  await leader.driver.stop();
  const error = (await pending) as DriverError;
  t.equal(error.code, 'STOPPED');
  t.equal(error.indeterminate, true, 'a proposed write is indeterminate: it may still commit');
  await Promise.all(members.map((m) => m.driver.stop()));
});
