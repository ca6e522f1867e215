// Paper tests for log compaction (§7): InstallSnapshot to a far-behind follower, and races with log truncation.

import t, { type Test } from 'tap';
import { MembershipChangeType } from '../../raft/membership-change.js';
import { MessageType, Role } from '../../raft/types.js';
import { isElection, Network, ofType } from './harness.js';

const THREE = ['1', '2', '3'];
const FIVE = ['1', '2', '3', '4', '5'];
const BASIC = { preVote: false, checkQuorum: false };

t.test('§7 a follower behind the leader compaction point is brought up to date with a snapshot', (t) => {
  const net = new Network({ voters: THREE });
  net.elect('1');
  net.isolate('3');
  for (let i = 0; i < 20; i++) t.ok(net.propose('1', `v${i}`).ok);
  net.stabilize();
  const snapIndex = net.compact('1');
  t.ok(
    net.node('1').storage.firstIndex() > net.status('3').lastIndex + 1,
    'the leader no longer has what 3 needs',
  );

  net.heal();
  net.tickAll(3);
  t.equal(net.sent.filter(ofType(MessageType.Snapshot, '1', '3')).length, 1, 'one snapshot was sent');
  t.equal(net.node('3').storage.snapshot().metadata.index, snapIndex, '3 installed it');
  t.equal(net.status('3').commitIndex, net.status('1').commitIndex);
  t.same(net.values('3'), net.values('1'), "3's state machine was restored from it");
  t.equal(net.values('3').length, 20);

  t.ok(net.propose('1', 'after').ok);
  net.stabilize();
  t.same(net.values('3').slice(-1), ['after'], 'and replication resumes with ordinary Appends');
  t.same(net.logTerms('3'), net.logTerms('1'));
  t.equal(net.status('1').progress!.get('3')!.state, 'replicate');
  t.end();
});

t.test('§7 a snapshot the transport failed to send is retried', (t) => {
  const net = new Network({ voters: THREE });
  net.elect('1');
  net.isolate('3');
  for (let i = 0; i < 5; i++) net.propose('1', `v${i}`);
  net.stabilize();
  net.compact('1');
  net.heal();
  net.tick('1');
  net.stabilize((m) => m.type !== MessageType.Snapshot);
  t.equal(net.take(ofType(MessageType.Snapshot, '1', '3')).length, 1, 'a snapshot was sent, and is lost');
  net.raw('1').reportSnapshot('3', false);
  t.equal(net.status('1').progress!.get('3')!.state, 'probe', 'the leader is told and probes again');
  net.tickAll(3);
  t.equal(net.sent.filter(ofType(MessageType.Snapshot, '1', '3')).length, 2, 'the snapshot was sent again');
  t.same(net.values('3'), net.values('1'));
  t.end();
});

/**
 * Five servers: 1 (leader of term 1, reaching only 3) leaves a stale suffix on 3; then 2 leads
 * term 2 with 4 and 5, commits more, and compacts its log past where 3's suffix starts.
 */
function divergedFollower(t: Test): Network {
  const net = new Network({ voters: FIVE, config: BASIC });
  net.elect('1');
  for (const id of ['2', '4', '5']) net.cut('1', id);
  for (let i = 0; i < 12; i++) net.propose('1', `stale${i}`); // Indexes 2..13, term 1: on 1 and 3 only.
  net.stabilize();
  t.equal(net.status('3').lastIndex, 13);
  t.equal(net.status('1').commitIndex, 1, 'the stale entries never committed');

  net.isolate('1');
  net.isolate('3');
  net.campaign('2');
  net.stabilize(isElection);
  t.equal(net.status('2').role, Role.Leader);
  for (let i = 0; i < 8; i++) net.propose('2', `v${i}`); // Indexes 3..10, term 2.
  net.stabilize();
  t.equal(net.status('2').commitIndex, 10);
  t.equal(net.compact('2'), 10);
  // Reconnect 3 to 2 only; 2's first probe finds 3's log compacted away on its side.
  net.heal();
  for (const id of ['1', '4', '5']) net.cut('3', id);
  net.isolate('1');
  for (let i = 0; i < 3 && !net.mailbox.some(ofType(MessageType.Snapshot)); i++) {
    net.tick('2');
    net.stabilize((m) => m.type !== MessageType.Snapshot);
  }
  t.equal(
    net.mailbox.filter(ofType(MessageType.Snapshot, '2', '3')).length,
    1,
    'a snapshot is on its way to 3',
  );
  return net;
}

t.test('§7 a snapshot replaces a follower log whose conflicting suffix reaches past the snapshot', (t) => {
  const net = divergedFollower(t);
  const snapshot = net.mailbox.find(ofType(MessageType.Snapshot))!;
  net.stabilize();
  t.equal(net.node('3').storage.snapshot().metadata.index, 10);
  t.same(net.logTerms('3'), [], "nothing of 3's old log survives past the snapshot (stale 11..13@1 gone)");
  t.same(net.values('3'), net.values('2'));
  t.notOk(
    net.values('3').some((v) => v.startsWith('stale')),
    'no stale entry was applied',
  );

  t.ok(net.propose('2', 'v8').ok);
  net.stabilize();
  t.same(net.logTerms('3'), ['11@2']);
  t.same(net.values('3'), net.values('2'));

  // The same snapshot delivered again (a duplicate) changes nothing: it is not ahead of 3's commit.
  net.mailbox.push(snapshot);
  net.stabilize();
  t.same(net.logTerms('3'), ['11@2'], 'a stale duplicate snapshot does not truncate newer entries');
  t.same(net.values('3'), net.values('2'));
  t.end();
});

t.test(
  '§7 a snapshot still in flight when a new leader has already repaired the follower log is ignored',
  (t) => {
    const net = divergedFollower(t);
    const [held] = net.take(ofType(MessageType.Snapshot, '2', '3'));
    net.crash('2');
    net.crash('1');
    net.heal();
    net.campaign('4'); // Term 3, with 3 and 5 (their logs are not more up to date).
    net.stabilize(isElection);
    t.equal(net.status('4').role, Role.Leader);
    net.stabilize();
    const expected = ['1@1', '2@2', ...Array.from({ length: 8 }, (_, i) => `${i + 3}@2`), '11@3'];
    t.same(net.logTerms('3'), expected, "4 truncated 3's stale suffix and replaced it with its log");

    net.mailbox.push(held!); // Term 2: from a leader 3 knows is deposed.
    net.stabilize();
    t.equal(net.node('3').storage.snapshot().metadata.index, 0, 'the stale snapshot was not installed');
    t.same(net.logTerms('3'), expected, '3 still holds the leader log');
    t.same(net.values('3'), net.values('4'), "and the leader's state");
    t.notOk(net.values('3').some((v) => v.startsWith('stale')));
    t.end();
  },
);

t.test(
  '§7 the snapshot carries the membership: a follower that missed a change learns it from the snapshot',
  (t) => {
    const net = new Network({ voters: THREE });
    net.elect('1');
    net.isolate('3');
    t.ok(net.raw('1').proposeMembershipChange({ type: MembershipChangeType.AddLearner, nodeId: '4' }).ok);
    net.propose('1', 'v');
    net.stabilize();
    net.compact('1');
    net.heal();
    net.tickAll(3);
    t.equal(net.node('3').storage.snapshot().metadata.index, net.node('1').storage.snapshot().metadata.index);
    t.same(net.status('3').membership, { voters: THREE, learners: ['4'] }, '3 knows of the learner');
    net.crash('3');
    net.restart('3');
    t.same(net.status('3').membership, { voters: THREE, learners: ['4'] }, 'also after a restart');
    t.end();
  },
);

t.test(
  '§7/dissertation §4.2.1 a new server with an empty log catches up from a snapshot, then is promoted',
  (t) => {
    const net = new Network({ voters: THREE, config: { learnerCatchUpMaxLagEntries: 0 } });
    net.elect('1');
    for (let i = 0; i < 10; i++) net.propose('1', `v${i}`);
    net.stabilize();
    net.addNode('4', { voters: [], learners: [] }, { learnerCatchUpMaxLagEntries: 0 }); // Knows nothing yet.
    net.isolate('4');
    t.ok(net.raw('1').proposeMembershipChange({ type: MembershipChangeType.AddLearner, nodeId: '4' }).ok);
    net.stabilize();
    net.compact('1');
    t.match(
      net.raw('1').proposeMembershipChange({ type: MembershipChangeType.PromoteLearner, nodeId: '4' }),
      {
        ok: false,
        error: { code: 'LEARNER_NOT_CAUGHT_UP' },
      },
    );
    net.heal();
    net.tickAll(3);
    t.equal(
      net.sent.filter(ofType(MessageType.Snapshot, '1', '4')).length,
      1,
      'caught up through a snapshot',
    );
    t.same(net.values('4'), net.values('1'));
    t.same(net.status('4').membership, { voters: THREE, learners: ['4'] });
    t.ok(net.raw('1').proposeMembershipChange({ type: MembershipChangeType.PromoteLearner, nodeId: '4' }).ok);
    net.stabilize();
    t.same(net.status('4').membership.voters, ['1', '2', '3', '4']);
    t.end();
  },
);

t.test('§7 once a snapshot is installed and advanced, raft reports it as applied', (t) => {
  const net = new Network({ voters: THREE });
  net.elect('1');
  net.isolate('3');
  for (let i = 0; i < 5; i++) net.propose('1', `v${i}`);
  net.stabilize();
  const snapIndex = net.compact('1');
  net.heal();
  net.tickAll(3);
  t.equal(net.node('3').appliedIndex, snapIndex, 'the application applied the snapshot (harness view)');
  t.equal(net.status('3').commitIndex, snapIndex);
  t.equal(net.status('3').appliedIndex, snapIndex, "raft's applied index moved to the snapshot index too");
  t.end();
});
