// Paper tests for log replication: Figure 7 repair, Figure 8 commitment rule, pipelining and size limits.

import t, { type Test } from 'tap';
import { entriesBytes, MessageType, Role } from '../../raft/types.js';
import { fillLog, isElection, Network, ofType } from './harness.js';

const BASIC = { preVote: false, checkQuorum: false };

/** Figure 7: the leader of term 8 and six followers' logs, as the term of each entry from index 1. */
const FIGURE_7: Record<string, number[]> = {
  L: [1, 1, 1, 4, 4, 5, 5, 6, 6, 6],
  a: [1, 1, 1, 4, 4, 5, 5, 6, 6], // missing an entry
  b: [1, 1, 1, 4], // missing many
  c: [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6], // an extra uncommitted entry
  d: [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7], // extra entries of a later term
  e: [1, 1, 1, 4, 4, 4, 4], // missing and extra
  f: [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3], // a leader of terms 2 and 3 whose entries never committed
};

t.test('§5.3 Figure 7: followers with missing and extra entries are made to match the leader', (t) => {
  const ids = Object.keys(FIGURE_7);
  const net = new Network({
    voters: ids,
    config: BASIC,
    // The leader was last in term 7 (it campaigns into term 8); d saw term 7 too.
    prepare: (id, s) => fillLog(s, FIGURE_7[id]!, id === 'L' || id === 'd' ? 7 : undefined),
  });
  net.elect('L');
  t.equal(net.status('L').term, 8);
  const expected = [...FIGURE_7.L!.map((term, i) => `${i + 1}@${term}`), '11@8'];
  t.same(net.logTerms('L'), expected, "the leader's log plus its term-8 no-op");
  for (const id of ids) {
    t.same(net.logTerms(id), expected, `${id}'s log matches the leader's`);
    t.same(
      net.log(id).map((e) => e.data),
      net.log('L').map((e) => e.data),
      `${id}'s entries carry the leader's data`,
    );
    t.same(net.values(id), net.values('L'), `${id} applied the leader's entries`);
    t.equal(net.status(id).commitIndex, 11);
  }
  t.notOk(net.values('d').includes('11@7'), "d's extra term-7 entries were never applied");

  // Fast back-off (§5.3, last paragraphs): a rejection carries a hint so the leader skips whole
  // terms; naively f alone would reject 7 probes (indexes 10 down to 4).
  for (const id of ids.filter((id) => id !== 'L')) {
    const rejects = net.delivered.filter(
      (m) => m.type === MessageType.AppendResponse && m.from === id && m.reject,
    );
    t.ok(rejects.length <= 1, `${id} rejected ${rejects.length} Append(s): at most one round trip lost`);
  }
  const appendsToF = net.delivered.filter(ofType(MessageType.Append, 'L', 'f'));
  t.ok(appendsToF.length <= 3, `f was repaired with ${appendsToF.length} Appends`);
  t.end();
});

/**
 * Figure 8 up to (c), with five servers S1..S5. Our leaders append a no-op when elected, so
 * each term-n leader's first entry is its no-op: S1's term-2 entries are index 2 (no-op) and
 * index 3 ("x"); S5's term-3 entry is index 2; S1's term-4 entry is index 4.
 */
function figure8ThroughC(t: Test): Network {
  const net = new Network({ voters: ['1', '2', '3', '4', '5'], config: BASIC });
  net.elect('2'); // Index 1, term 1, on every server.

  // (a) S1 leads term 2 and replicates its entries to S2 only.
  net.campaign('1');
  net.stabilize(isElection);
  t.equal(net.status('1').role, Role.Leader);
  t.equal(net.status('1').term, 2);
  for (const id of ['3', '4', '5']) net.cut('1', id);
  t.ok(net.propose('1', 'x').ok);
  net.stabilize();
  t.same(net.logTerms('2'), ['1@1', '2@2', '3@2'], '(a) S2 holds the term-2 entries');
  t.same(net.logTerms('3'), ['1@1']);

  // (b) S1 crashes; S5 is elected for term 3 (by S3, S4, S5) and appends an entry at index 2.
  net.crash('1');
  net.heal();
  net.campaign('5');
  net.stabilize(isElection);
  t.equal(net.status('5').role, Role.Leader);
  t.equal(net.status('5').term, 3);
  net.crash('5'); // Before it replicates anything.
  t.same(net.logTerms('5'), ['1@1', '2@3'], '(b) S5 holds a term-3 entry at index 2');

  // (c) S1 restarts, is elected for term 4 (S3, S4 voted in term 3, so two rounds).
  net.restart('1');
  net.campaign('1');
  net.stabilize(isElection);
  net.campaign('1');
  net.stabilize(isElection);
  t.equal(net.status('1').role, Role.Leader);
  t.equal(net.status('1').term, 4);
  // S1 replicates its term-2 entries to S3, but S3 never gets the term-4 entry; S4 gets nothing.
  net.cut('1', '4');
  net.rewrite = (m) =>
    m.type === MessageType.Append && m.to === '3'
      ? { ...m, entries: m.entries.filter((e) => e.term < 4) }
      : m;
  net.stabilize();
  net.rewrite = undefined;
  for (const id of ['1', '2', '3']) t.match(net.logTerms(id), ['1@1', '2@2', '3@2'], `(c) S${id} holds x`);
  return net;
}

t.test('§5.4.2 Figure 8: an old-term entry on a majority is not committed by counting replicas', (t) => {
  const net = figure8ThroughC(t);
  t.equal(
    net.status('1').commitIndex,
    1,
    'S1 does not commit its term-2 entries although a majority holds them',
  );
  for (const id of ['1', '2', '3']) t.same(net.values(id), [], `S${id} has not applied x`);

  // (d) S1 crashes; S5 can be elected (by S3, S4) and overwrites the term-2 entries everywhere.
  net.crash('1');
  net.restart('5');
  net.campaign('5'); // Term 4: everyone already voted for S1.
  net.stabilize(isElection);
  net.campaign('5'); // Term 5: S3 and S4 vote for it (its last term 3 beats their 2 and 1).
  net.stabilize(isElection);
  t.equal(net.status('5').role, Role.Leader, '(d) S5 is elected');
  net.stabilize();
  for (const id of ['2', '3', '4', '5']) {
    t.same(net.logTerms(id), ['1@1', '2@3', '3@5'], `(d) S${id}'s log is S5's: x is gone`);
    t.same(net.values(id), [], `S${id} never applied x`);
    t.equal(net.status(id).commitIndex, 3);
  }
  t.end();
});

t.test(
  '§5.4.2 Figure 8 (e): once an entry of the current term is on a majority, the older ones commit with it',
  (t) => {
    const net = figure8ThroughC(t);
    t.equal(net.status('1').commitIndex, 1);
    net.stabilize(); // Nothing rewritten now: S3 gets the term-4 entry.
    net.tick('1'); // A heartbeat round lets S1 see that S3 lacks the term-4 entry, and send it.
    net.stabilize();
    t.equal(net.status('1').commitIndex, 4, 'the term-4 entry commits, and x (index 3) with it');
    for (const id of ['1', '2', '3']) t.same(net.values(id), ['x'], `S${id} applied x`);

    // Now S5 can no longer be elected: a majority has a more up-to-date log.
    net.crash('1');
    net.restart('5');
    for (let i = 0; i < 3; i++) {
      net.campaign('5');
      net.stabilize(isElection);
    }
    t.not(net.status('5').role, Role.Leader, 'S5 cannot win');
    t.end();
  },
);

t.test(
  '§5.3 pipelining: with maxInflightMessages=k, at most k unacknowledged Appends go to a replicating follower',
  (t) => {
    const k = 3;
    const net = new Network({ voters: ['1', '2', '3'], config: { maxInflightMessages: k } });
    net.elect('1');
    t.equal(net.status('1').progress!.get('2')!.state, 'replicate');
    const inFlightTo2 = () => net.mailbox.filter(ofType(MessageType.Append, '1', '2'));

    for (let i = 0; i < 10; i++) t.ok(net.propose('1', `v${i}`).ok);
    t.equal(inFlightTo2().length, k, `${k} Appends in flight, one per proposal, then the window is full`);
    t.same(
      inFlightTo2().map((m) => m.entries.length),
      [1, 1, 1],
    );
    net.deliver(ofType(MessageType.Append, '1', '2'));
    t.equal(inFlightTo2().length, 0, 'nothing more goes while the acks are outstanding');

    net.deliver(ofType(MessageType.AppendResponse, '2', '1'));
    const refill = inFlightTo2();
    t.ok(refill.length >= 1 && refill.length <= k, 'acks reopen the window');
    t.equal(
      refill.reduce((n, m) => n + m.entries.length, 0),
      7,
      'and the 7 waiting entries go out',
    );
    net.stabilize();
    t.same(net.values('2'), net.values('1'));
    t.equal(net.values('1').length, 10);
    t.end();
  },
);

t.test('§5.3 the Append byte limit splits a catch-up into several batches', (t) => {
  const maxMessageBytes = 10;
  const net = new Network({ voters: ['1', '2', '3'], config: { maxMessageBytes } });
  net.elect('1');
  net.isolate('3');
  for (let i = 0; i < 6; i++) t.ok(net.propose('1', `abc${i}`).ok); // 4 bytes each
  net.stabilize();
  const before = net.sent.length;
  net.heal();
  net.tickAll(3);
  const appends = net.sent
    .slice(before)
    .filter((m) => m.type === MessageType.Append && m.to === '3' && m.entries.length > 0);
  t.ok(appends.length >= 3, `the 24 bytes went in ${appends.length} Appends`);
  for (const m of appends)
    t.ok(entriesBytes(m.entries) <= maxMessageBytes, `an Append carries ${entriesBytes(m.entries)} bytes`);
  t.same(net.values('3'), net.values('1'));
  t.equal(net.values('3').length, 6);
  t.end();
});

t.test('a proposal bigger than maxMessageBytes is refused with TOO_LARGE', (t) => {
  const net = new Network({ voters: ['1'], config: { maxMessageBytes: 100 } });
  net.elect('1');
  const last = net.status('1').lastIndex;
  t.match(net.raw('1').propose(new Uint8Array(101)), { ok: false, error: { code: 'TOO_LARGE' } });
  t.equal(net.status('1').lastIndex, last, 'nothing appended');
  t.ok(net.raw('1').propose(new Uint8Array(100)).ok, 'exactly the limit is fine');
  t.end();
});

t.test(
  'uncommitted bytes beyond maxUncommittedBytes are refused with UNCOMMITTED_LIMIT until they commit',
  (t) => {
    const net = new Network({ voters: ['1', '2', '3'], config: { maxUncommittedBytes: 10 } });
    net.elect('1');
    net.cut('1', '2');
    net.cut('1', '3');
    t.ok(net.propose('1', 'aaaaaa').ok, '6 bytes');
    t.match(net.propose('1', 'bbbbbb'), { ok: false, error: { code: 'UNCOMMITTED_LIMIT' } }, '12 > 10');
    t.ok(net.propose('1', 'cccc').ok, '10 bytes is the limit');
    const last = net.status('1').lastIndex;
    t.match(net.propose('1', 'd'), { ok: false, error: { code: 'UNCOMMITTED_LIMIT' } });
    t.equal(net.status('1').lastIndex, last, 'a refused proposal appends nothing');
    net.heal();
    net.tickAll(2);
    t.same(net.values('1'), ['aaaaaa', 'cccc']);
    t.ok(net.propose('1', 'eeeeee').ok, 'committed and applied bytes no longer count');
    t.end();
  },
);
