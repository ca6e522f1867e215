// Paper tests for membership changes: learners, promotion after catch-up, one change at a time, removed servers.

import t from 'tap';
import { type MembershipChange, MembershipChangeType } from '../../raft/membership-change.js';
import { MessageType, Role } from '../../raft/types.js';
import { isElection, Network } from './harness.js';

const THREE = ['1', '2', '3'];
const addLearner = (nodeId: string): MembershipChange => ({ type: MembershipChangeType.AddLearner, nodeId });
const promote = (nodeId: string): MembershipChange => ({ type: MembershipChangeType.PromoteLearner, nodeId });
const remove = (nodeId: string): MembershipChange => ({ type: MembershipChangeType.RemoveNode, nodeId });

/** Starts server `id` with an empty log, cut off from everyone, and has leader 1 add it as a learner. */
function addCutOffLearner(net: Network, id: string): void {
  net.addNode(id, { voters: THREE, learners: [id] });
  net.isolate(id);
  const result = net.raw('1').proposeMembershipChange(addLearner(id));
  if (!result.ok) throw result.error;
  net.stabilize();
}

t.test('dissertation §4.2.1 a learner neither counts for commit nor votes nor campaigns', (t) => {
  const net = new Network({ voters: THREE, learners: ['4'] });
  net.elect('1');
  net.cut('1', '2');
  net.cut('1', '3');
  const commit = net.status('1').commitIndex;
  t.ok(net.propose('1', 'x').ok);
  net.stabilize();
  t.equal(net.status('4').lastIndex, net.status('1').lastIndex, 'the learner stores the entry');
  t.equal(net.status('1').commitIndex, commit, 'but leader + learner are no quorum of 3 voters');
  net.heal();
  net.tickAll(2);
  t.same(net.values('4'), ['x'], 'once the voters ack, the learner applies it too');

  net.isolate('4');
  net.tick('4', 100);
  t.equal(net.status('4').role, Role.Follower, 'an isolated learner never campaigns');
  t.equal(net.status('4').term, net.status('1').term);

  net.heal();
  net.cut('2', '1');
  net.cut('2', '3');
  net.campaign('2'); // 2 can reach only the learner.
  net.stabilize();
  t.not(net.status('2').role, Role.Leader, 'a learner cannot help elect anyone');
  t.same(
    net.sent.filter((m) => m.to === '4' && isElection(m)),
    [],
    'nobody ever asks a learner for a vote',
  );
  t.same(
    net.sent.filter((m) => m.from === '4' && isElection(m)),
    [],
    'and a learner never asks',
  );
  t.end();
});

t.test(
  'dissertation §4.2.1 a learner is promoted only once caught up: LEARNER_NOT_CAUGHT_UP while it lags',
  (t) => {
    const net = new Network({ voters: THREE, config: { learnerCatchUpMaxLagEntries: 2 } });
    net.elect('1');
    for (let i = 0; i < 10; i++) net.propose('1', `v${i}`);
    net.stabilize();
    addCutOffLearner(net, '4');
    t.same(net.status('1').membership.learners, ['4']);

    const refused = net.raw('1').proposeMembershipChange(promote('4'));
    t.match(
      refused,
      { ok: false, error: { code: 'LEARNER_NOT_CAUGHT_UP' } },
      'refused while 12 entries behind',
    );

    net.heal();
    net.tickAll(3);
    t.same(net.values('4'), net.values('1'), 'the learner caught up');
    const accepted = net.raw('1').proposeMembershipChange(promote('4'));
    t.ok(accepted.ok, 'promotion accepted once caught up');
    net.stabilize();
    for (const id of ['1', '2', '3', '4']) {
      t.same(
        net.status(id).membership,
        { voters: ['1', '2', '3', '4'], learners: [] },
        `${id} sees 4 as a voter`,
      );
    }
    // 4 now counts: with 3 cut off, 1 and 2 alone are no quorum of four voters; 1, 2 and 4 are.
    net.cut('1', '3');
    t.ok(net.propose('1', 'w').ok);
    net.stabilize();
    t.same(net.values('4').slice(-1), ['w']);
    t.end();
  },
);

t.test('dissertation §4.2.1 a learner that has never answered the leader is not promoted', (t) => {
  // Default lag bound (100 entries), short log: only "has it ever answered?" can tell.
  const net = new Network({ voters: THREE });
  net.elect('1');
  addCutOffLearner(net, '4');
  t.equal(net.status('1').progress!.get('4')!.match, 0, 'the leader has never heard from 4');
  t.match(
    net.raw('1').proposeMembershipChange(promote('4')),
    { ok: false, error: { code: 'LEARNER_NOT_CAUGHT_UP' } },
    'an unreachable server must not become a voter (it would raise the quorum to 3 of 4 with one server down)',
  );
  t.end();
});

t.test(
  'dissertation §4.1 a change waits for a committed entry of the leader term, and for the previous change',
  (t) => {
    const net = new Network({ voters: THREE, config: { checkQuorum: false } });
    net.elect('1');
    t.ok(net.propose('1', 'x').ok);
    net.stabilize();

    // 2 takes over in term 2; its no-op is not yet committed although earlier entries are.
    net.campaign('2');
    net.stabilize(isElection);
    t.equal(net.status('2').role, Role.Leader);
    t.ok(net.status('2').commitIndex > 0, 'entries of term 1 are committed');
    const early = net.raw('2').proposeMembershipChange(addLearner('4'));
    t.match(early, { ok: false, error: { code: 'NO_COMMITTED_ENTRY_IN_TERM' } });
    const last = net.status('2').lastIndex;
    t.ok(net.propose('2', 'y').ok, 'ordinary proposals are fine meanwhile');
    t.equal(net.status('2').lastIndex, last + 1, 'the refused change appended nothing');

    net.stabilize();
    t.ok(
      net.raw('2').proposeMembershipChange(addLearner('4')).ok,
      'accepted once the term-2 no-op committed',
    );
    t.match(
      net.raw('2').proposeMembershipChange(addLearner('5')),
      { ok: false, error: { code: 'MEMBERSHIP_CHANGE_PENDING' } },
      'one change at a time',
    );
    t.match(net.raw('2').proposeMembershipChange(remove('3')), {
      ok: false,
      error: { code: 'MEMBERSHIP_CHANGE_PENDING' },
    });
    net.stabilize();
    t.ok(net.raw('2').proposeMembershipChange(addLearner('5')).ok, 'accepted once the first is applied');
    net.stabilize();
    t.same(net.status('1').membership, { voters: THREE, learners: ['4', '5'] });
    t.end();
  },
);

for (const [name, config] of [
  ['PreVote and CheckQuorum', {}],
  ['CheckQuorum only', { preVote: false }],
] as const) {
  t.test(
    `dissertation §4.2.3 a removed server does not disrupt the cluster when it comes back (${name})`,
    (t) => {
      const net = new Network({ voters: THREE, config });
      net.elect('1');
      net.isolate('3'); // 3 never learns that it was removed.
      t.ok(net.raw('1').proposeMembershipChange(remove('3')).ok);
      net.stabilize();
      t.same(net.status('1').membership.voters, ['1', '2']);
      t.same(net.status('2').membership.voters, ['1', '2']);
      t.same(net.status('3').membership.voters, THREE, '3 still thinks it is a voter');
      const term = net.status('1').term;

      net.tickAll(50);
      net.heal();
      net.tickAll(100);
      const type = 'preVote' in config ? MessageType.Vote : MessageType.PreVote;
      t.ok(
        net.sent.some((m) => m.from === '3' && m.type === type && m.to !== '3'),
        '3 kept trying to get elected',
      );
      t.equal(net.status('1').role, Role.Leader, '1 still leads');
      t.equal(net.status('1').term, term, 'in the same term');
      t.equal(net.status('2').term, term);
      t.same(net.leaders, [{ id: '1', term }], 'no other election happened');
      t.ok(net.propose('1', 'after').ok);
      net.stabilize();
      t.same(net.values('2'), ['after'], 'the remaining cluster keeps committing');
      t.end();
    },
  );
}
