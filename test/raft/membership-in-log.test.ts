// Paper tests for the membership rule (dissertation §4.1): the latest membership in the log is in effect, committed or not.

import t from 'tap';
import {
  encodeMembershipChange,
  type MembershipChange,
  MembershipChangeType,
} from '../../raft/membership-change.js';
import { MemoryStorage } from '../../raft/memory-storage.js';
import { SeededPrng } from '../../raft/prng.js';
import { RawNode } from '../../raft/raw-node.js';
import {
  type Entry,
  EntryType,
  type Membership,
  type Message,
  MessageType,
  message,
  Role,
} from '../../raft/types.js';
import { enc, Network, ofType } from './harness.js';

const promote = (nodeId: string): MembershipChange => ({ type: MembershipChangeType.PromoteLearner, nodeId });
const addLearner = (nodeId: string): MembershipChange => ({ type: MembershipChangeType.AddLearner, nodeId });
const remove = (nodeId: string): MembershipChange => ({ type: MembershipChangeType.RemoveNode, nodeId });

function normal(index: number, term: number): Entry {
  return { index, term, type: EntryType.Normal, data: enc(`${index}@${term}`) };
}

function change(index: number, term: number, c: MembershipChange): Entry {
  return { index, term, type: EntryType.MembershipChange, data: encodeMembershipChange(c) };
}

/**
 * A node restarted from what it persisted: `membership` as of `applied`, the log `entries`
 * after the bootstrap snapshot at index 1, and a hard state whose commit is `commit` (the
 * commit index need not be durable, so it may be far behind what the cluster committed).
 */
function restarted(
  id: string,
  membership: Membership,
  entries: Entry[],
  applied: number,
  commit: number,
  term: number,
): RawNode {
  const storage = MemoryStorage.bootstrap(membership);
  storage.append(entries);
  storage.setHardState({ term, vote: '', commit });
  return new RawNode({
    id,
    storage,
    prng: new SeededPrng(1),
    applied,
    electionTicks: 10,
    heartbeatTicks: 1,
    preVote: false,
  });
}

/** Like restarted(), with its storage, so that a test can persist what the node's Readies hold. */
function restartedWithStorage(
  id: string,
  membership: Membership,
  entries: Entry[],
  term: number,
): { raw: RawNode; storage: MemoryStorage } {
  const storage = MemoryStorage.bootstrap(membership);
  storage.append(entries);
  storage.setHardState({ term, vote: '', commit: 2 });
  const raw = new RawNode({
    id,
    storage,
    prng: new SeededPrng(1),
    applied: 2,
    electionTicks: 10,
    heartbeatTicks: 1,
    preVote: false,
  });
  return { raw, storage };
}

/** Persists every pending Ready of the node, then returns what it sends. */
function persistAndDrain(node: { raw: RawNode; storage: MemoryStorage }): Message[] {
  const out: Message[] = [];
  while (node.raw.hasReady()) {
    const rd = node.raw.ready();
    if (rd.snapshot) node.storage.applySnapshot(rd.snapshot);
    node.storage.append(rd.entries);
    if (rd.hardState) node.storage.setHardState(rd.hardState);
    out.push(...rd.messages, ...rd.messagesAfterPersist);
    node.raw.advance(rd);
  }
  return out;
}

/** Every message the node has to send, persisted or not. */
function drain(raw: RawNode): Message[] {
  const out: Message[] = [];
  while (raw.hasReady()) {
    const rd = raw.ready();
    out.push(...rd.messages, ...rd.messagesAfterPersist);
    raw.advance(rd);
  }
  return out;
}

const isCampaign = (m: Message): boolean => m.type === MessageType.PreVote || m.type === MessageType.Vote;

function grant(raw: RawNode, from: string, term: number): void {
  const result = raw.step(message({ type: MessageType.VoteResponse, from, to: raw.id, term }));
  if (!result.ok) throw result.error;
  drain(raw);
}

t.test(
  '§4.1 seed 1853: a node that does not know its promotions are committed still counts the new voters',
  (t) => {
    // Founded as {n1,n2,n3} with learners n6,n7; n1 promoted n6 (index 3) and n7 (index 5), and
    // committed both with n1,n6,n7. n2 holds them but, restarted with commit 2 (the Readies that
    // moved its commit were lost in a crash), never learned they committed.
    const founders: Membership = { voters: ['n1', 'n2', 'n3'], learners: ['n6', 'n7'] };
    const log = [normal(2, 2), change(3, 2, promote('n6')), normal(4, 2), change(5, 2, promote('n7'))];
    const n2 = restarted('n2', founders, log, 2, 2, 2);
    t.same(n2.status().membership, { voters: ['n1', 'n2', 'n3', 'n6', 'n7'], learners: [] });
    t.equal(n2.status().membershipIndex, 5);
    t.same(n2.membership(), founders, 'the applied membership is still the founders’');

    n2.campaign();
    const votes = drain(n2).filter(ofType(MessageType.Vote));
    t.same(votes.map((m) => m.to).sort(), ['n1', 'n3', 'n6', 'n7'], 'it asks all five voters');
    grant(n2, 'n3', 3);
    t.equal(
      n2.status().role,
      Role.Candidate,
      'n2 + n3 are 2 of 5: not a quorum (before the fix it led here)',
    );
    grant(n2, 'n6', 3);
    t.equal(n2.status().role, Role.Leader, 'a third vote of the five wins');
    t.end();
  },
);

t.test('§4.1 seed 961: a learner whose log holds its own promotion campaigns, committed or not', (t) => {
  // Voters {n1}, n4 a learner; n4's log has its promotion at index 3, its commit says 2.
  const n4 = restarted(
    'n4',
    { voters: ['n1'], learners: ['n4'] },
    [normal(2, 2), change(3, 2, promote('n4'))],
    2,
    2,
    2,
  );
  t.same(n4.status().membership, { voters: ['n1', 'n4'], learners: [] });
  for (let i = 0; i < 30; i++) n4.tick();
  const sent = drain(n4);
  t.ok(
    sent.some((m) => (m.type === MessageType.PreVote || m.type === MessageType.Vote) && m.to === 'n1'),
    'it asks n1 for a vote (before the fix it waited forever as a learner)',
  );
  t.end();
});

t.test('§4.1 a membership change takes effect when appended, and a truncation undoes it', (t) => {
  const net = new Network({
    voters: ['1', '2', '3', '4', '5'],
    config: { preVote: false, checkQuorum: false },
  });
  net.elect('1');
  net.cut('1', '3');
  net.cut('1', '4');
  net.cut('1', '5');
  const proposed = net.raw('1').proposeMembershipChange(addLearner('6'));
  t.ok(proposed.ok);
  net.stabilize();
  t.same(net.status('2').membership.learners, ['6'], 'a follower uses the change as soon as it holds it');
  t.same(net.status('2').appliedMembership.learners, [], 'though it has not applied it');
  t.equal(
    net.status('2').commitIndex < (proposed.ok ? proposed.value.index : 0),
    true,
    'nor is it committed',
  );

  // 3, 4 and 5 elect 3 without the change; its log replaces 2's suffix.
  net.isolate('1');
  net.cut('2', '3');
  net.cut('2', '4');
  net.cut('2', '5');
  net.elect('3');
  t.ok(net.propose('3', 'x').ok);
  net.stabilize();
  net.heal();
  net.isolate('1');
  net.tickAll(3);
  t.same(
    net.status('2').membership,
    { voters: ['1', '2', '3', '4', '5'], learners: [] },
    'truncated away, the change is undone',
  );
  t.same(net.values('2'), ['x']);
  t.end();
});

t.test(
  '§4.2.2 a leader removing itself leads without counting itself, then steps down once it is committed',
  (t) => {
    const net = new Network({ voters: ['1', '2', '3'] });
    net.elect('1');
    const removal = net.raw('1').proposeMembershipChange(remove('1'));
    t.ok(removal.ok);
    net.processNode('1');
    t.same(net.status('1').membership.voters, ['2', '3'], 'the leader uses the new membership at once');
    t.equal(net.status('1').role, Role.Leader, 'and still leads while the change commits');
    // Only 2 answers: 1 and 2 would be a quorum of the old three, but 1 no longer counts itself.
    net.cut('1', '3');
    net.stabilize();
    t.ok(removal.ok && net.status('1').commitIndex < removal.value.index, 'not committed by 1 and 2 alone');
    net.heal();
    net.tickAll(2);
    t.ok(removal.ok && net.status('1').commitIndex >= removal.value.index, 'committed by 2 and 3');
    t.not(net.status('1').role, Role.Leader, 'then the removed leader steps down');
    net.tickAll(30);
    t.equal(net.leaderIds().length, 1);
    t.not(net.leaderIds()[0], '1', 'the remaining voters elect one of themselves');
    t.end();
  },
);

t.test('§4.1 after a restart the membership is rebuilt from the log above the applied index', (t) => {
  const net = new Network({ voters: ['1', '2', '3'], learners: ['4'] });
  net.elect('1');
  t.ok(net.raw('1').proposeMembershipChange(promote('4')).ok);
  net.processNode('1');
  // 2 receives the promotion but never hears it committed.
  net.cut('1', '3');
  net.deliver(ofType(MessageType.Append, '1', '2'));
  net.take();
  t.same(net.status('2').membership.voters, ['1', '2', '3', '4']);
  net.crash('2');
  net.restart('2');
  t.same(net.status('2').membership.voters, ['1', '2', '3', '4'], 'the restarted follower still counts 4');
  t.same(net.status('2').appliedMembership.voters, ['1', '2', '3'], 'it has applied only the old one');
  t.end();
});

t.test(
  '§4.2.2 groups seed 20: a leader of two voters that appended its own removal and lost its leadership campaigns again, and steps down once it applied the removal',
  (t) => {
    // {n1,n3}; n3 led term 2 and appended its removal at index 3, then restarted before it
    // committed. n1 (log to 2, the old membership) needs n3's vote and cannot get it: n3's log
    // is longer. Before the fix n3, no voter in its own log's membership, never campaigned: no
    // leader, ever.
    const both: Membership = { voters: ['n1', 'n3'], learners: [] };
    const n3 = restartedWithStorage('n3', both, [normal(2, 2), change(3, 2, remove('n3'))], 2);
    const n1 = restartedWithStorage('n1', both, [normal(2, 2)], 2);
    t.same(n3.raw.status().membership.voters, ['n1'], 'its log says it is removed');
    for (let i = 0; i < 30; i++) n3.raw.tick();
    let queue = persistAndDrain(n3);
    t.same(
      queue.filter(isCampaign).map((m) => m.to),
      ['n1'],
      'with the removal not known committed, it asks the one voter of that membership',
    );
    const nodes = new Map([
      ['n1', n1],
      ['n3', n3],
    ]);
    let led = false;
    for (let round = 0; round < 50 && queue.length > 0; round++) {
      for (const m of queue) {
        const result = nodes.get(m.to)?.raw.step(m);
        if (result !== undefined && !result.ok) throw result.error;
      }
      queue = [...persistAndDrain(n1), ...persistAndDrain(n3)];
      if (n3.raw.status().role === Role.Leader) led = true;
    }
    t.ok(led, "n1's vote is a quorum of {n1}: n3 led, without counting itself");
    t.ok(n1.raw.status().commitIndex >= 3, 'n1 holds the removal, committed');
    t.same(n1.raw.status().membership.voters, ['n1']);
    t.not(n3.raw.status().role, Role.Leader, 'n3 applied it and stepped down');
    for (let i = 0; i < 30; i++) n3.raw.tick();
    t.same(persistAndDrain(n3).filter(isCampaign), [], 'and never campaigns again');
    for (let i = 0; i < 30; i++) n1.raw.tick();
    persistAndDrain(n1);
    t.equal(n1.raw.status().role, Role.Leader, 'n1, the one voter left, leads');

    // A learner removed (never a voter) does not campaign, committed or not.
    const learner = restarted(
      'n4',
      { voters: ['n1'], learners: ['n4'] },
      [normal(2, 2), change(3, 2, remove('n4'))],
      2,
      2,
      2,
    );
    for (let i = 0; i < 30; i++) learner.tick();
    t.same(drain(learner).filter(isCampaign), [], 'a removed learner stays quiet');
    t.end();
  },
);
