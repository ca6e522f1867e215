// Quiescence (config.quiesceAfterTicks): an idle group stops ticking and heartbeating until a message, a proposal or the application wakes it.

import t from 'tap';
import { validateRaftConfig } from '../../raft/config.js';
import { MemoryStorage } from '../../raft/memory-storage.js';
import { SeededPrng } from '../../raft/prng.js';
import { MessageType, message, Role } from '../../raft/types.js';
import { Network } from './harness.js';

const QUIESCE = { quiesceAfterTicks: 3, preVote: true, checkQuorum: true };

t.test(
  'an idle leader quiesces its followers after quiesceAfterTicks heartbeats; then nothing is sent',
  (t) => {
    const net = new Network({ voters: ['1', '2', '3'], config: QUIESCE });
    net.elect('1');
    t.ok(net.propose('1', 'x').ok);
    net.stabilize();
    net.tickAll(3);
    const flagged = net.sent.filter((m) => m.type === MessageType.Heartbeat && m.quiesce === true);
    t.same(flagged.map((m) => m.to).sort(), ['2', '3'], 'the last heartbeats carry the flag');
    t.ok(
      net.sent.some((m) => m.type === MessageType.HeartbeatResponse && m.quiesce === true),
      'the followers answer that they quiesced',
    );
    for (const id of ['1', '2', '3']) t.equal(net.status(id).quiesced, true, `${id} is quiesced`);
    const before = net.sent.length;
    net.tickAll(50);
    t.equal(net.sent.length, before, 'fifty ticks later nobody has sent anything');
    t.equal(net.status('1').role, Role.Leader, 'and 1 still leads');
    t.end();
  },
);

t.test('a proposal wakes the group; it commits, and the group quiesces again', (t) => {
  const net = new Network({ voters: ['1', '2', '3'], config: QUIESCE });
  net.elect('1');
  net.tickAll(5);
  t.equal(net.status('2').quiesced, true);
  t.ok(net.propose('1', 'y').ok);
  net.stabilize();
  t.same(net.values('2'), ['y'], 'replicated and applied on a quiesced follower');
  t.equal(net.status('1').quiesced, false, 'the leader woke');
  net.tickAll(5);
  t.equal(net.status('1').quiesced, true, 'idle again: quiesced again');
  t.end();
});

t.test(
  'a quiesced follower never campaigns on its own; wake() lets it elect once its leader is gone',
  (t) => {
    const net = new Network({ voters: ['1', '2', '3'], config: QUIESCE });
    net.elect('1');
    net.tickAll(5);
    net.crash('1');
    net.tickAll(100);
    t.same(net.leaderIds(), [], 'no election without a wake: the application must wake them');
    net.raw('2').wake();
    net.raw('3').wake();
    net.tickAll(40);
    t.equal(net.leaderIds().length, 1, 'woken, they elect');
    t.not(net.leaderIds()[0], '1');
    t.end();
  },
);

t.test('a follower that does not confirm keeps the leader awake (it retries later)', (t) => {
  const net = new Network({ voters: ['1', '2', '3'], config: QUIESCE });
  net.elect('1');
  net.cutOneWay('3', '1'); // 3's answers are lost.
  net.tickAll(3);
  t.equal(net.status('1').quiesced, true, 'after three idle heartbeats the leader quiesces');
  net.tickAll(2);
  t.equal(net.status('1').quiesced, false, 'not every follower confirmed: the leader woke again');
  net.heal();
  net.tickAll(6);
  t.equal(net.status('1').quiesced, true, 'once they all confirm, it quiesces');
  t.end();
});

t.test('any other message wakes a quiesced node; a vote request meets the lease as before', (t) => {
  const net = new Network({ voters: ['1', '2', '3'], config: QUIESCE });
  net.elect('1');
  net.tickAll(5);
  const result = net
    .raw('2')
    .step(message({ type: MessageType.PreVote, from: '3', to: '2', term: net.status('2').term + 1 }));
  t.ok(result.ok);
  t.equal(net.status('2').quiesced, false, 'woken by a pre-vote');
  t.equal(net.status('2').role, Role.Follower, 'still following its leader');
  t.end();
});

t.test('bad input: the flag on another message type, a bad setting', (t) => {
  const net = new Network({ voters: ['1', '2'], config: QUIESCE });
  net.elect('1');
  const refused = net
    .raw('2')
    .step(
      message({ type: MessageType.Append, from: '1', to: '2', term: net.status('2').term, quiesce: true }),
    );
  t.match(refused, {
    ok: false,
    error: { code: 'INVALID_MESSAGE', message: /quiesce on a message of type/ },
  });
  t.throws(
    () =>
      validateRaftConfig({
        id: 'a',
        storage: MemoryStorage.bootstrap({ voters: ['a'], learners: [] }),
        prng: new SeededPrng(1),
        quiesceAfterTicks: -1,
      }),
    /quiesceAfterTicks/,
  );
  t.end();
});
