// Paper tests for ReadIndex (dissertation §6.4): no answer before a current-term commit, index covers acked writes.

import t from 'tap';
import type { ReadState } from '../../raft/types.js';
import { MessageType, Role } from '../../raft/types.js';
import { dec, enc, isElection, Network, ofType } from './harness.js';

const THREE = ['1', '2', '3'];

function readStates(net: Network, id: string): { index: number; context: string }[] {
  return net
    .node(id)
    .readies.flatMap((rd) => rd.readStates)
    .map((rs: ReadState) => ({ index: rs.index, context: dec(rs.context) }));
}

t.test(
  'dissertation §6.4 after a leader change, ReadIndex waits for a commit in the new term and covers acked writes',
  (t) => {
    // Without CheckQuorum the deposed leader keeps believing it leads: a stale leader to test against.
    const net = new Network({ voters: THREE, config: { checkQuorum: false } });
    net.elect('1');
    for (const w of ['w1', 'w2', 'w3']) t.ok(net.propose('1', w).ok);
    net.stabilize();
    t.same(net.values('1'), ['w1', 'w2', 'w3'], 'writes acknowledged by the old leader');
    const acked = net.node('1').appliedIndex;

    net.isolate('1');
    net.campaign('2');
    net.stabilize(isElection);
    t.equal(net.status('2').role, Role.Leader);
    const noop = net.status('2').lastIndex;

    t.ok(net.raw('2').readIndex(enc('r1')).ok);
    net.deliver(ofType(MessageType.Append, '2', '3')); // 3 stores the no-op; its ack is held back.
    t.same(readStates(net, '2'), [], 'no read point before the new term has a committed entry');
    t.same(
      net.mailbox.filter((m) => m.type === MessageType.Heartbeat && m.context !== undefined),
      [],
      'not even a confirmation round yet',
    );

    net.stabilize();
    const [r1] = readStates(net, '2');
    t.equal(readStates(net, '2').length, 1, 'answered once the no-op committed and a quorum confirmed');
    t.equal(r1!.context, 'r1');
    t.ok(r1!.index >= acked, `read index ${r1!.index} covers every write acked before (${acked})`);
    t.ok(r1!.index >= noop, 'and the new leader no-op');

    // A write acknowledged by the new leader, then a read through a follower: answered via the leader.
    const w4 = net.propose('2', 'w4');
    t.ok(w4.ok);
    net.stabilize();
    t.ok(net.raw('3').readIndex(enc('r2')).ok);
    net.processNode('3');
    t.equal(
      net.mailbox.filter(ofType(MessageType.ReadIndex, '3', '2')).length,
      1,
      'the follower asks the leader',
    );
    net.stabilize();
    const r2 = readStates(net, '3');
    t.same(
      r2.map((r) => r.context),
      ['r2'],
    );
    t.ok(w4.ok && r2[0]!.index >= w4.value.index, 'the follower read point covers w4');
    t.equal(r2[0]!.index, net.status('2').commitIndex);

    // The isolated old leader can never confirm its leadership, so never answers.
    t.equal(net.status('1').role, Role.Leader, '1 still believes it leads');
    t.ok(net.raw('1').readIndex(enc('stale')).ok);
    for (let i = 0; i < 30; i++) {
      net.tick('1');
      net.stabilize();
    }
    t.same(readStates(net, '1'), [], 'a leader cut off from the quorum answers no read');
    net.heal();
    net.tickAll(5);
    t.equal(net.status('1').role, Role.Follower);
    t.same(readStates(net, '1'), [], 'nor after it learns it was deposed');
    t.end();
  },
);

t.test('dissertation §6.4 a read point is at least every write committed before the read started', (t) => {
  const net = new Network({ voters: THREE });
  net.elect('1');
  for (let i = 0; i < 5; i++) {
    const w = net.propose('1', `w${i}`);
    net.stabilize();
    t.ok(net.raw(THREE[i % 3]!).readIndex(enc(`r${i}`)).ok);
    net.stabilize();
    const rs = readStates(net, THREE[i % 3]!).find((r) => r.context === `r${i}`);
    t.ok(rs && w.ok && rs.index >= w.value.index, `read r${i} at ${rs?.index} covers w${i}`);
  }
  t.end();
});

t.test(
  'dissertation §6.4 a follower that knows no leader refuses a read; a leader bounds pending reads',
  (t) => {
    const net = new Network({ voters: THREE, config: { maxPendingReadIndex: 1 } });
    t.match(net.raw('2').readIndex(enc('r')), { ok: false, error: { code: 'NO_LEADER' } });
    net.elect('1');
    net.cut('1', '2');
    net.cut('1', '3');
    t.ok(net.raw('1').readIndex(enc('a')).ok);
    t.match(net.raw('1').readIndex(enc('b')), { ok: false, error: { code: 'READ_INDEX_LIMIT' } });
    net.heal();
    net.tickAll(1);
    t.same(
      readStates(net, '1').map((r) => r.context),
      ['a'],
    );
    t.ok(net.raw('1').readIndex(enc('b')).ok, 'room again once answered');
    t.end();
  },
);
