// The two acknowledgements of a Ready: durable (advancePersisted) and applied (advanceApplied), in order, persistence ahead of application.

import t from 'tap';
import { MemoryStorage } from '../../raft/memory-storage.js';
import { SeededPrng } from '../../raft/prng.js';
import { RawNode } from '../../raft/raw-node.js';
import { MessageType, message, type Ready, Role } from '../../raft/types.js';
import { enc } from './harness.js';

/** Persists what `rd` asks into `storage` (what a store does before advancePersisted). */
function persist(storage: MemoryStorage, rd: Ready): void {
  if (rd.snapshot) storage.applySnapshot(rd.snapshot);
  storage.append(rd.entries);
  if (rd.hardState) storage.setHardState(rd.hardState);
}

/** A three-voter leader '1' with its first entry committed and applied; its followers are the test. */
function leaderOfThree(): { node: RawNode; storage: MemoryStorage } {
  const storage = new MemoryStorage({ voters: ['1', '2', '3'], learners: [] });
  const node = new RawNode({ id: '1', storage, prng: new SeededPrng(7) });
  node.campaign();
  const step = (type: MessageType, from: string, extra: Partial<Parameters<typeof message>[0]> = {}) =>
    t.ok(node.step(message({ type, from, to: '1', term: node.status().term, ...extra })).ok);
  let rd = node.ready();
  persist(storage, rd);
  node.advance(rd);
  step(MessageType.PreVoteResponse, '2', { term: node.status().term + 1 });
  rd = node.ready();
  persist(storage, rd);
  node.advance(rd);
  step(MessageType.VoteResponse, '2');
  t.equal(node.status().role, Role.Leader);
  // The leader's empty entry of its term: durable here, acknowledged by '2', applied.
  while (node.hasReady()) {
    rd = node.ready();
    persist(storage, rd);
    node.advance(rd);
  }
  step(MessageType.AppendResponse, '2', { index: node.status().lastIndex });
  while (node.hasReady()) {
    rd = node.ready();
    persist(storage, rd);
    node.advance(rd);
  }
  t.equal(node.status().appliedIndex, node.status().lastIndex, 'the leader starts with everything applied');
  return { node, storage };
}

t.test("a leader's durable append counts toward commit before the earlier Readies are applied", (t) => {
  const { node, storage } = leaderOfThree();
  const term = node.status().term;
  const first = node.propose(enc('a'));
  t.ok(first.ok);
  const rd1 = node.ready();
  t.equal(rd1.entries.length, 1);
  persist(storage, rd1);
  node.advancePersisted(rd1);
  // Follower '2' acknowledges entry a: with the leader's own durable copy, that is a quorum.
  t.ok(
    node.step(
      message({ type: MessageType.AppendResponse, from: '2', to: '1', term, index: rd1.entries[0]!.index }),
    ).ok,
  );
  const rd2 = node.ready();
  t.same(
    rd2.committedEntries.map((e) => e.index),
    [rd1.entries[0]!.index],
    'a is committed and handed out for apply while rd1 is still unapplied',
  );
  // A second proposal, made durable before anything is applied.
  t.ok(node.propose(enc('b')).ok);
  const rd3 = node.ready();
  persist(storage, rd2);
  node.advancePersisted(rd2);
  persist(storage, rd3);
  node.advancePersisted(rd3);
  const b = rd3.entries[0]!.index;
  t.ok(node.step(message({ type: MessageType.AppendResponse, from: '3', to: '1', term, index: b })).ok);
  t.equal(node.status().commitIndex, b, 'b commits on the leader and one follower, nothing applied yet');
  const before = node.status().appliedIndex;
  t.ok(before < b);

  t.throws(
    () => node.advanceApplied(rd2),
    /out of order|before advancePersisted/,
    'applies go in Ready order',
  );
  node.advanceApplied(rd1);
  node.advanceApplied(rd2);
  t.equal(node.status().appliedIndex, rd1.entries[0]!.index, 'applied through a');
  node.advanceApplied(rd3);
  const rd4 = node.ready();
  t.same(
    rd4.committedEntries.map((e) => e.index),
    [b],
    'b is handed out for apply after the Readies before it',
  );
  persist(storage, rd4);
  node.advance(rd4);
  t.equal(node.status().appliedIndex, b);
  t.end();
});

t.test('a Ready is acknowledged as applied only after it is acknowledged as durable, each in order', (t) => {
  const { node, storage } = leaderOfThree();
  t.ok(node.propose(enc('x')).ok);
  const rd1 = node.ready();
  t.ok(node.propose(enc('y')).ok);
  const rd2 = node.ready();
  t.throws(() => node.advanceApplied(rd1), /before advancePersisted/, 'not applied before durable');
  t.throws(() => node.advancePersisted(rd2), /out of order/, 'not durable out of order');
  persist(storage, rd1);
  node.advancePersisted(rd1);
  t.throws(() => node.advancePersisted(rd1), /out of order|unknown/, 'not twice');
  persist(storage, rd2);
  node.advancePersisted(rd2);
  node.advanceApplied(rd1);
  node.advanceApplied(rd2);
  t.throws(() => node.advanceApplied(rd2), /before advancePersisted|out of order/, 'not applied twice');
  t.end();
});
