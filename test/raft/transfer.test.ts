// Paper tests for leadership transfer (dissertation §3.10): catch up the target, TimeoutNow, abandon on timeout.

import t from 'tap';
import { MembershipChangeType } from '../../raft/membership-change.js';
import { MessageType, Role } from '../../raft/types.js';
import { Network, ofType } from './harness.js';

const THREE = ['1', '2', '3'];

t.test(
  'dissertation §3.10 transfer: proposals stop, the lagging target is caught up, then TimeoutNow makes it win',
  (t) => {
    const net = new Network({ voters: THREE });
    net.elect('1');
    const term = net.status('1').term;
    net.isolate('3');
    for (let i = 0; i < 5; i++) t.ok(net.propose('1', `v${i}`).ok);
    net.stabilize();
    net.heal();
    const leaderLast = net.status('1').lastIndex;
    t.ok(net.status('3').lastIndex < leaderLast, '3 lags');

    t.ok(net.raw('1').transferLeadership('3').ok);
    net.process();
    t.equal(net.status('1').leadTransferee, '3');
    t.match(net.propose('1', 'during'), { ok: false, error: { code: 'TRANSFER_IN_PROGRESS', leader: '1' } });
    t.match(net.raw('1').proposeMembershipChange({ type: MembershipChangeType.RemoveNode, nodeId: '2' }), {
      ok: false,
      error: { code: 'TRANSFER_IN_PROGRESS' },
    });
    t.same(net.mailbox.filter(ofType(MessageType.TimeoutNow)), [], 'no TimeoutNow while the target lags');

    let targetLastAtTimeoutNow = -1;
    net.rewrite = (m) => {
      if (m.type === MessageType.TimeoutNow) targetLastAtTimeoutNow = net.status(m.to).lastIndex;
      return m;
    };
    net.stabilize();
    net.rewrite = undefined;
    t.equal(targetLastAtTimeoutNow, leaderLast, 'TimeoutNow reached 3 only once it held the whole log');
    t.equal(net.status('3').role, Role.Leader, 'the target won');
    t.equal(net.status('3').term, term + 1, 'in the next term (no pre-vote round needed)');
    t.equal(net.status('1').role, Role.Follower);
    t.equal(net.status('1').leader, '3');
    t.ok(net.propose('3', 'after').ok);
    net.stabilize();
    for (const id of THREE) t.same(net.values(id), ['v0', 'v1', 'v2', 'v3', 'v4', 'after'], `${id}'s state`);
    t.end();
  },
);

t.test(
  'dissertation §3.10 transfer to an up-to-date target sends TimeoutNow at once; voters in a lease still vote',
  (t) => {
    const net = new Network({ voters: THREE });
    net.elect('1');
    net.tickAll(3); // Everyone is within its leader lease.
    t.ok(net.raw('1').transferLeadership('2').ok);
    net.process();
    t.equal(net.mailbox.filter(ofType(MessageType.TimeoutNow, '1', '2')).length, 1);
    net.stabilize();
    t.equal(net.status('2').role, Role.Leader);
    t.same(net.leaderIds(), ['2']);
    t.end();
  },
);

t.test(
  'dissertation §3.10 a transfer to an unreachable server is abandoned after an election timeout',
  (t) => {
    const electionTicks = 10;
    const net = new Network({ voters: THREE, config: { electionTicks } });
    net.elect('1');
    const term = net.status('1').term;
    net.isolate('3');
    t.ok(net.raw('1').transferLeadership('3').ok);
    net.tickAll(electionTicks - 1);
    t.equal(net.status('1').leadTransferee, '3', 'still trying just before the timeout');
    t.match(net.propose('1', 'early'), { ok: false, error: { code: 'TRANSFER_IN_PROGRESS' } });
    net.tickAll(1);
    t.equal(net.status('1').leadTransferee, '', 'abandoned after one election timeout');
    t.ok(net.propose('1', 'late').ok, 'proposals are accepted again');
    net.stabilize();
    t.equal(net.status('1').role, Role.Leader);
    t.equal(net.status('1').term, term);
    t.same(net.values('2'), ['late']);
    t.end();
  },
);

t.test('dissertation §3.10 only a voter can be a transfer target', (t) => {
  const net = new Network({ voters: THREE, learners: ['4'] });
  net.elect('1');
  t.match(
    net.raw('1').transferLeadership('4'),
    { ok: false, error: { code: 'INVALID_TRANSFER_TARGET' } },
    'a learner',
  );
  t.match(
    net.raw('1').transferLeadership('9'),
    { ok: false, error: { code: 'INVALID_TRANSFER_TARGET' } },
    'a stranger',
  );
  t.match(net.raw('2').transferLeadership('3'), { ok: false, error: { code: 'NOT_LEADER', leader: '1' } });
  t.equal(net.status('1').leadTransferee, '');
  t.ok(net.propose('1', 'x').ok);
  t.end();
});
