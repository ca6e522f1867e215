// Review tests: each reproduces a bug a review of raft/ found (they failed before the fixes in the same commit).

import t, { type Test } from 'tap';
import { type MembershipChange, MembershipChangeType } from '../../raft/membership-change.js';
import {
  type Entry,
  EntryType,
  type Message,
  MessageType,
  message,
  type Ready,
  Role,
} from '../../raft/types.js';
import { dec, enc, Network, ofType } from './harness.js';

const THREE = ['1', '2', '3'];
const addLearner = (nodeId: string): MembershipChange => ({ type: MembershipChangeType.AddLearner, nodeId });
const remove = (nodeId: string): MembershipChange => ({ type: MembershipChangeType.RemoveNode, nodeId });

/**
 * Drives one node of a harness Network by hand, so a test decides when its Readies are persisted
 * and when they are advanced. The harness stops driving it (it is marked crashed), so messages to
 * it must be stepped with `stepAll` and the others delivered with a filter excluding it.
 */
class ManualNode {
  readonly outstanding: Ready[] = [];
  constructor(
    private readonly net: Network,
    readonly id: string,
  ) {
    net.node(id).crashed = true;
  }

  /** Steps every queued message addressed to this node (and matching `filter`). */
  stepAll(filter: (m: Message) => boolean = () => true): Message[] {
    const ms = this.net.take((m) => m.to === this.id && filter(m));
    for (const m of ms) {
      const r = this.net.raw(this.id).step(m);
      if (!r.ok) throw r.error;
    }
    return ms;
  }

  /** Takes the next Ready, persists it and sends all its messages, but does not advance it. */
  persistNext(): Ready | undefined {
    const raw = this.net.raw(this.id);
    if (!raw.hasReady()) return undefined;
    const rd = raw.ready();
    const node = this.net.node(this.id);
    if (rd.snapshot) node.storage.applySnapshot(rd.snapshot);
    node.storage.append(rd.entries);
    if (rd.hardState) node.storage.setHardState(rd.hardState);
    for (const m of [...rd.messages, ...rd.messagesAfterPersist]) this.net.mailbox.push(m);
    this.outstanding.push(rd);
    return rd;
  }

  persistAll(): void {
    while (this.persistNext() !== undefined) {}
  }

  /** Applies and advances the oldest outstanding Ready. */
  advanceOne(): void {
    const rd = this.outstanding.shift()!;
    const node = this.net.node(this.id);
    if (rd.snapshot) {
      const data = dec(rd.snapshot.data);
      node.values = data === '' ? [] : (JSON.parse(data) as string[]);
      node.appliedIndex = rd.snapshot.metadata.index;
    }
    for (const e of rd.committedEntries) {
      if (e.type === EntryType.Normal && e.data.length > 0) node.values.push(dec(e.data));
      node.appliedIndex = e.index;
    }
    this.net.raw(this.id).advance(rd);
    node.storage.setMembership(this.net.raw(this.id).membership());
  }

  advanceAll(): void {
    while (this.outstanding.length > 0) this.advanceOne();
  }
}

/** Runs `f`, reporting a throw as a failure with the error text instead of aborting the test. */
function noThrow(t: Test, what: string, f: () => unknown): unknown {
  try {
    const result = f();
    t.pass(`${what}: did not throw`);
    return result;
  } catch (e) {
    t.fail(`${what}: threw ${(e as Error).name}: ${(e as Error).message}`);
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------

t.test(
  '§5.2 Election Safety / §5.3 Log Matching: a single-voter leader must not send entries of a term it has not persisted',
  (t) => {
    // One voter and one learner: the way a cluster grows from `start --single`.
    const net = new Network({ voters: ['1'], learners: ['2'] });
    net.elect('1');
    t.ok(net.propose('1', 'a').ok);
    net.stabilize();
    t.same(net.values('2'), ['a']);
    const durableTerm = net.node('1').storage.initialState().hardState.term;

    // 1 restarts and campaigns. Its new term and vote are in the Ready; it must not lead (and
    // so must not send entries of that term) before that Ready is durable. The messages that
    // may go at once reach the learner, then 1 crashes before persisting anything.
    net.crash('1');
    net.restart('1');
    const raw = net.raw('1');
    raw.campaign();
    t.equal(
      raw.status().role,
      Role.Candidate,
      'a single voter is only a candidate until its vote is durable',
    );
    t.equal(raw.propose(enc('y')).ok, false, 'so it takes no proposal yet');
    const rd = raw.ready();
    t.equal(rd.hardState?.term, durableTerm + 1, 'the Ready carries the new term, not yet durable');
    t.ok(rd.mustSync, 'and must be synced');
    const early = rd.messages.filter((m) => m.type === MessageType.Append && m.entries.length > 0);
    t.equal(early.length, 0, 'no Append of the new term is among the messages that may go at once');
    net.mailbox.push(...rd.messages);
    net.deliver((m) => m.to === '2');
    net.crash('1'); // Nothing of rd was persisted.

    // 1 comes back in its old durable term, wins the same term again and proposes something else.
    net.restart('1');
    t.equal(net.status('1').term, durableTerm);
    net.campaign('1');
    t.equal(net.status('1').term, durableTerm + 1, 'the same term is led a second time');
    t.ok(net.propose('1', 'x').ok);
    net.stabilize();
    net.tickAll(3);

    t.same(net.logTerms('2'), net.logTerms('1'), 'same (index, term) positions');
    t.same(
      net.log('2').map((e) => dec(e.data)),
      net.log('1').map((e) => dec(e.data)),
      'Log Matching: same index and term must hold the same entry',
    );
    t.same(
      net.values('2'),
      net.values('1'),
      'State Machine Safety: the learner applies what the leader applied',
    );
    t.end();
  },
);

t.test(
  'dissertation §4.1/§5.4.3 membership from an installed snapshot is not overwritten by older conf changes applied after it',
  (t) => {
    const net = new Network({ voters: THREE });
    net.elect('1');
    net.stabilize();
    const n3 = new ManualNode(net, '3');
    const others = (m: Message) => m.to !== '3';

    // The leader adds learner 4 (never started; messages to it are lost).
    t.ok(net.raw('1').proposeMembershipChange(addLearner('4')).ok);
    net.processNode('1');
    net.stabilize(others);
    t.same(net.status('1').membership.learners, ['4'], 'the leader applied AddLearner(4)');

    // 3 receives the entry and the commit; its application persists the Ready but is slow to apply it.
    n3.stepAll();
    n3.persistAll();
    const pendingChange = n3.outstanding
      .flatMap((rd) => rd.committedEntries)
      .find((e) => e.type === EntryType.MembershipChange);
    t.ok(pendingChange, "3 was handed AddLearner(4) to apply and hasn't advanced yet");
    t.same(net.status('3').appliedMembership.learners, [], '3 has not applied it yet');
    t.same(net.status('3').membership.learners, ['4'], 'but uses it: it is in its log (§4.1)');

    // Meanwhile 4 is removed again, more is written, and the leader compacts its log.
    net.stabilize(others);
    t.ok(net.raw('1').proposeMembershipChange(remove('4')).ok);
    net.processNode('1');
    net.stabilize(others);
    for (let i = 0; i < 3; i++) net.propose('1', `v${i}`);
    net.stabilize(others);
    net.take((m) => m.to === '3'); // 3 missed all that.
    net.compact('1');
    t.same(net.status('1').membership, { voters: THREE, learners: [] });

    // The leader catches 3 up with a snapshot (its membership: no learner).
    let snapshots = 0;
    for (let round = 0; round < 20 && snapshots === 0; round++) {
      net.tick('1');
      net.stabilize(others);
      snapshots += n3.stepAll().filter((m) => m.type === MessageType.Snapshot).length;
      n3.persistAll();
      net.stabilize(others);
    }
    t.equal(snapshots, 1, 'a snapshot reached 3');
    t.same(net.status('3').membership, { voters: THREE, learners: [] }, 'restored the snapshot membership');

    // Now 3's application finishes applying what it was handed earlier, then the snapshot.
    n3.advanceAll();
    t.same(
      net.status('3').membership,
      { voters: THREE, learners: [] },
      "after applying everything 3's membership is the snapshot's (4 was removed)",
    );
    t.same(
      net.status('3').appliedMembership,
      { voters: THREE, learners: [] },
      'so is its applied membership',
    );
    t.same(net.status('3').membership, net.status('1').membership, 'and agrees with the leader');
    t.end();
  },
);

// ---- Malformed peer messages must be refused, never thrown on -----------------------------

function follower(): { net: Network; term: number; last: number; lastTerm: number } {
  const net = new Network({ voters: THREE });
  net.elect('1');
  net.propose('1', 'x');
  net.stabilize();
  const s = net.status('2');
  return { net, term: s.term, last: s.lastIndex, lastTerm: net.raw('2').logTerm(s.lastIndex)! };
}

t.test('a peer Append whose entries array holds a non-object is refused, not thrown on', (t) => {
  const { net, term, last, lastTerm } = follower();
  const m = message({
    type: MessageType.Append,
    from: '1',
    to: '2',
    term,
    index: last,
    logTerm: lastTerm,
    entries: [null as unknown as Entry],
  });
  const r = noThrow(t, 'step', () => net.raw('2').step(m)) as { ok: boolean } | undefined;
  t.equal(r?.ok, false, 'refused as INVALID_MESSAGE');
  t.end();
});

t.test('a peer Append whose entry has no term is refused; it must neither throw nor be acked (§5.3)', (t) => {
  const { net, term, last, lastTerm } = follower();
  const bad = { index: last + 1, type: EntryType.Normal, data: enc('e') } as unknown as Entry;
  const withCommit = message({
    type: MessageType.Append,
    from: '1',
    to: '2',
    term,
    index: last,
    logTerm: lastTerm,
    entries: [bad],
    commit: last + 1,
  });
  const r = noThrow(t, 'step with commit', () => net.raw('2').step(withCommit)) as
    | { ok: boolean }
    | undefined;
  t.equal(r?.ok, false, 'refused as INVALID_MESSAGE');

  const { net: net2 } = follower();
  const noCommit = { ...withCommit, commit: 0 };
  noThrow(t, 'step without commit', () => net2.raw('2').step(noCommit));
  const rd = net2.raw('2').ready();
  const acks = rd.messagesAfterPersist.filter((m) => m.type === MessageType.AppendResponse && !m.reject);
  t.same(
    acks.map((m) => m.index).filter((i) => i > net2.status('2').lastIndex),
    [],
    'never acknowledges an index beyond its own last index',
  );
  t.end();
});

t.test('a peer message whose context is not bytes is refused, not thrown on', (t) => {
  const { net, term } = follower();
  const vote = message({
    type: MessageType.Vote,
    from: '3',
    to: '2',
    term: term + 1,
    index: 100,
    logTerm: term,
    context: null as unknown as Uint8Array,
  });
  noThrow(t, 'Vote from a newer term with context null', () => net.raw('2').step(vote));

  const { net: net2, term: term2 } = follower();
  const hbResp = message({
    type: MessageType.HeartbeatResponse,
    from: '2',
    to: '1',
    term: term2,
    context: 7 as unknown as Uint8Array,
  });
  noThrow(t, 'HeartbeatResponse to the leader with context 7', () => net2.raw('1').step(hbResp));
  t.end();
});

t.test('a peer message of term 0 (never valid from a peer) is refused and changes nothing', (t) => {
  // 2 holds an entry that is not committed: the leader's acks from 2 are lost, 3 is cut off.
  const net = new Network({ voters: THREE });
  net.elect('1');
  net.isolate('3');
  net.cutOneWay('2', '1');
  const commit = net.status('2').commitIndex;
  t.ok(net.propose('1', 'uncommitted').ok);
  net.stabilize();
  t.equal(net.status('1').commitIndex, commit, 'the leader has not committed it');
  t.ok(net.status('2').lastIndex > commit, '2 holds it');

  const m = message({ type: MessageType.Heartbeat, from: '9', to: '2', term: 0, commit: 1000 });
  const r = net.raw('2').step(m);
  t.equal(r.ok, false, 'a term-0 Heartbeat from a peer is refused');
  t.equal(net.status('2').commitIndex, commit, "2's commit index did not move");
  t.equal(net.status('2').leader, '1', "2's leader is unchanged");
  t.end();
});

// ---- ReadIndex ----------------------------------------------------------------------------

t.test(
  'dissertation §6.4 a read pending when the cluster shrinks to the leader alone is still answered',
  (t) => {
    const net = new Network({ voters: ['1', '2'] });
    net.elect('1');
    net.propose('1', 'x');
    net.stabilize();
    const noHeartbeats = (m: Message) =>
      m.type !== MessageType.Heartbeat && m.type !== MessageType.HeartbeatResponse;

    // A read waits for 2's heartbeat ack, which is lost; 2 is then removed (it still acks Appends).
    t.ok(net.raw('1').readIndex(enc('r1')).ok);
    net.processNode('1');
    net.take(ofType(MessageType.Heartbeat));
    t.ok(net.raw('1').proposeMembershipChange(remove('2')).ok);
    net.processNode('1');
    net.stabilize(noHeartbeats);
    t.same(net.status('1').membership.voters, ['1'], '1 is now the only voter');

    net.tickAll(30);
    const reads = net
      .node('1')
      .readies.flatMap((rd) => rd.readStates)
      .map((rs) => dec(rs.context));
    t.ok(reads.includes('r1'), 'the pending read is answered: the leader alone is a quorum now');
    t.end();
  },
);

// ---- Leadership transfer ------------------------------------------------------------------

t.test(
  'dissertation §3.10 transfer to a just-restarted, caught-up voter completes (TimeoutNow before its first heartbeat)',
  (t) => {
    const net = new Network({ voters: THREE });
    net.elect('1');
    net.propose('1', 'x');
    net.stabilize();
    const term = net.status('1').term;
    // 2 restarts (a rolling restart), with its whole log durable; it has not heard from 1 yet.
    net.crash('2');
    net.restart('2');
    t.equal(net.status('2').leader, '', '2 knows no leader yet');
    t.equal(net.status('2').lastIndex, net.status('1').lastIndex, '2 holds the whole log');

    t.ok(net.raw('1').transferLeadership('2').ok);
    net.processNode('1');
    t.equal(
      net.mailbox.filter(ofType(MessageType.TimeoutNow, '1', '2')).length,
      1,
      'TimeoutNow sent at once',
    );
    net.stabilize();
    net.tickAll(5); // Well within the transfer's election timeout.
    t.equal(net.status('2').role, Role.Leader, 'the target took over');
    t.equal(net.status('2').term, term + 1);
    t.end();
  },
);

// ---- Membership API -----------------------------------------------------------------------

t.test('dissertation §4.1 a membership change accepted by the leader takes effect when applied', (t) => {
  const net = new Network({ voters: THREE });
  net.elect('1');
  net.stabilize();
  // An id the log encoding cannot carry: accepted, committed, then silently ignored everywhere.
  for (const nodeId of ['', 'n'.repeat(1100)]) {
    const r = net.raw('1').proposeMembershipChange(addLearner(nodeId));
    net.stabilize();
    if (r.ok) {
      t.ok(
        net.status('1').membership.learners.includes(nodeId),
        `AddLearner(${nodeId.length}-char id) was accepted (index ${r.value.index}), so it must be applied`,
      );
    } else {
      t.pass(`AddLearner(${nodeId.length}-char id) refused: ${r.error.code}`);
    }
  }
  t.end();
});
