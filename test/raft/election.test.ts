// Paper tests for leader election: split votes, stale leaders, durable votes, PreVote, CheckQuorum, random-fault safety.

import t, { type Test } from 'tap';
import { MemoryStorage } from '../../raft/memory-storage.js';
import { SeededPrng } from '../../raft/prng.js';
import { RawNode } from '../../raft/raw-node.js';
import { EntryType, MessageType, message, Role } from '../../raft/types.js';
import { enc, Network, ofType } from './harness.js';

const THREE = ['1', '2', '3'];

/** Asserts that no term had two leaders (Election Safety, Figure 3). */
function assertOneLeaderPerTerm(t: Test, net: Network): void {
  const byTerm = new Map<number, Set<string>>();
  for (const { id, term } of net.leaders) {
    const ids = byTerm.get(term) ?? new Set<string>();
    ids.add(id);
    byTerm.set(term, ids);
  }
  const doubles = [...byTerm].filter(([, ids]) => ids.size > 1).map(([term, ids]) => `${term}:${[...ids]}`);
  t.same(doubles, [], 'at most one leader per term');
}

t.test(
  '§5.2 split vote: nobody wins the term, a later election in a new term elects exactly one leader',
  (t) => {
    const net = new Network({ voters: THREE });
    // All three time out together: each votes for itself and refuses the others.
    for (const id of THREE) net.campaign(id);
    net.stabilize();
    t.same(net.leaders, [], 'no leader in the split term');
    for (const id of THREE) {
      const s = net.status(id);
      t.equal(s.term, 1, `${id} is in term 1`);
      t.equal(s.vote, id, `${id} voted for itself`);
      t.not(s.role, Role.Leader);
    }
    // Randomized timeouts (§5.2) break the tie.
    let ticks = 0;
    while (net.leaderIds().length === 0 && ticks < 100) {
      net.tickAll();
      ticks++;
    }
    const [leader] = net.leaderIds();
    t.equal(net.leaderIds().length, 1, 'one leader after the re-election');
    t.ok(net.status(leader!).term > 1, 'the new election is in a new term');
    for (const id of THREE) t.equal(net.status(id).leader, leader, `${id} follows the new leader`);
    assertOneLeaderPerTerm(t, net);
    t.end();
  },
);

t.test(
  '§5.1 a stale leader steps down when it sees a higher term, and its uncommitted entry is discarded',
  (t) => {
    // Without CheckQuorum the cut-off leader keeps believing it leads until it hears of term 2.
    const net = new Network({ voters: THREE, config: { checkQuorum: false } });
    net.elect('1');
    net.isolate('1');
    net.elect('2');
    t.equal(net.status('2').term, 2);
    t.equal(net.status('1').role, Role.Leader, 'the cut-off leader still believes it leads term 1');
    t.ok(net.propose('1', 'stale').ok, 'and accepts a proposal it can never commit');
    t.ok(net.propose('2', 'fresh').ok);
    net.stabilize();

    net.heal();
    net.tick('1'); // The stale leader heartbeats; the answers carry term 2.
    net.stabilize();
    t.equal(net.status('1').role, Role.Follower, 'stale leader stepped down');
    t.equal(net.status('1').term, 2, 'and adopted the higher term');

    net.tickAll(3);
    t.same(net.logTerms('1'), net.logTerms('2'), "the old leader's log now matches the new leader's");
    for (const id of THREE) t.same(net.values(id), ['fresh'], `${id} applied only the committed entry`);
    assertOneLeaderPerTerm(t, net);
    t.end();
  },
);

t.test('§5.1/Figure 2: vote and term are persisted before the VoteResponse may be sent', (t) => {
  const storage = new MemoryStorage({ voters: THREE, learners: [] });
  const node = new RawNode({ id: '2', storage, prng: new SeededPrng(1), preVote: false });
  t.ok(node.step(message({ type: MessageType.Vote, from: '1', to: '2', term: 5 })).ok);
  const rd = node.ready();
  t.same(
    rd.messages.filter((m) => m.type === MessageType.VoteResponse),
    [],
    'no VoteResponse among the messages that may go before persisting',
  );
  const responses = rd.messagesAfterPersist.filter((m) => m.type === MessageType.VoteResponse);
  t.equal(responses.length, 1, 'the VoteResponse waits for persistence');
  t.equal(responses[0]!.reject, false, 'vote granted');
  t.equal(responses[0]!.term, 5);
  t.same(rd.hardState, { term: 5, vote: '1', commit: 0 }, 'the same Ready carries the new term and vote');
  t.equal(rd.mustSync, true, 'and must be synced');
  t.end();
});

t.test('§5.1/Figure 2: entries and a new term are persisted before the AppendResponse may be sent', (t) => {
  const storage = new MemoryStorage({ voters: THREE, learners: [] });
  const node = new RawNode({ id: '2', storage, prng: new SeededPrng(1) });
  const entry = { index: 1, term: 6, type: EntryType.Normal, data: enc('x') };
  t.ok(node.step(message({ type: MessageType.Append, from: '3', to: '2', term: 6, entries: [entry] })).ok);
  const rd = node.ready();
  t.same(
    rd.messages.filter((m) => m.type === MessageType.AppendResponse),
    [],
    'no AppendResponse before persisting',
  );
  const responses = rd.messagesAfterPersist.filter((m) => m.type === MessageType.AppendResponse);
  t.equal(responses.length, 1);
  t.match(responses[0], { reject: false, index: 1, term: 6 });
  t.same(rd.entries, [entry], 'the entries to persist are in the same Ready');
  t.same(rd.hardState, { term: 6, vote: '', commit: 0 }, 'with the new term');
  t.equal(rd.mustSync, true);
  storage.append(rd.entries);
  storage.setHardState(rd.hardState!);
  node.advance(rd);

  // A rejection (log mismatch) is a response too: it also waits.
  t.ok(
    node.step(message({ type: MessageType.Append, from: '3', to: '2', term: 7, index: 5, logTerm: 6 })).ok,
  );
  const rd2 = node.ready();
  t.same(rd2.hardState, { term: 7, vote: '', commit: 0 });
  t.equal(rd2.mustSync, true);
  t.same(
    rd2.messages.filter((m) => m.type === MessageType.AppendResponse),
    [],
  );
  t.match(
    rd2.messagesAfterPersist.filter((m) => m.type === MessageType.AppendResponse),
    [{ reject: true, term: 7 }],
  );
  t.end();
});

t.test("§5.1/Figure 2: a candidate's own vote is persisted before it asks for votes", (t) => {
  const storage = new MemoryStorage({ voters: THREE, learners: [] });
  const node = new RawNode({ id: '1', storage, prng: new SeededPrng(1), preVote: false });
  node.campaign();
  const rd = node.ready();
  t.same(rd.hardState, { term: 1, vote: '1', commit: 0 });
  t.equal(rd.mustSync, true);
  t.same(
    rd.messages.filter((m) => m.type === MessageType.Vote),
    [],
  );
  t.equal(rd.messagesAfterPersist.filter((m) => m.type === MessageType.Vote).length, 2);
  t.end();
});

t.test('§5.2 a vote survives a crash: a restarted server does not vote twice in a term', (t) => {
  const net = new Network({ voters: THREE, config: { checkQuorum: false, preVote: false } });
  net.campaign('1');
  net.deliver(ofType(MessageType.Vote, '1', '2'));
  t.equal(net.status('2').vote, '1', '2 voted for 1 in term 1');
  net.crash('2'); // Its VoteResponse is lost with it.
  net.restart('2');
  t.equal(net.status('2').term, 1);
  t.equal(net.status('2').vote, '1', 'the vote came back from storage');
  net.take(); // 1's other requests are lost too.
  net.campaign('3'); // Also term 1.
  net.deliver(ofType(MessageType.Vote, '3', '2'));
  const answers = net.take(ofType(MessageType.VoteResponse, '2', '3'));
  t.equal(answers.length, 1);
  t.equal(answers[0]!.reject, true, '2 refuses a second vote in term 1');
  t.end();
});

t.test(
  '§5.2/§5.4.3 election safety and state machine safety under random loss, partitions and crashes',
  (t) => {
    const ids = ['1', '2', '3', '4', '5'];
    for (let seed = 1; seed <= 12; seed++) {
      const net = new Network({ voters: ids, seed });
      const rng = new SeededPrng(seed * 31);
      const pick = () => ids[rng.nextInt(ids.length)]!;
      let proposals = 0;
      for (let step = 0; step < 400; step++) {
        if (rng.chance(0.03)) net.heal();
        if (rng.chance(0.03)) net.isolate(pick());
        if (rng.chance(0.02)) net.cut(pick(), pick());
        if (rng.chance(0.02)) for (const leader of net.leaderIds()) net.isolate(leader);
        if (rng.chance(0.01)) {
          const id = pick();
          if (!net.node(id).crashed && [...net.nodes.values()].filter((n) => n.crashed).length < 2)
            net.crash(id);
        }
        if (rng.chance(0.03)) {
          for (const n of net.nodes.values()) if (n.crashed) net.restart(n.id);
        }
        for (const n of net.nodes.values()) if (!n.crashed) net.tick(n.id);
        for (const leader of net.leaderIds())
          if (rng.chance(0.3)) net.propose(leader, `s${seed}v${proposals++}`);
        for (let round = 0; round < 3; round++) {
          net.take(() => rng.chance(0.1));
          net.deliver();
        }
      }
      for (const n of net.nodes.values()) if (n.crashed) net.restart(n.id);
      net.heal();
      net.tickAll(60);

      assertOneLeaderPerTerm(t, net);
      t.equal(net.leaderIds().length, 1, `seed ${seed}: one leader once healed`);
      const longest = ids.map((id) => net.values(id)).sort((a, b) => b.length - a.length)[0]!;
      for (const id of ids) {
        t.same(net.values(id), longest, `seed ${seed}: ${id} applied the same sequence`);
      }
      t.ok(longest.length > 0, `seed ${seed}: some proposals committed`);
      const leader = net.leaderIds()[0]!;
      for (const id of ids)
        t.same(net.logTerms(id), net.logTerms(leader), `seed ${seed}: ${id}'s log matches`);
    }
    t.end();
  },
);

t.test('§5.4.3 applied prefixes agree at every step (checked continuously under faults)', (t) => {
  const ids = ['1', '2', '3'];
  const net = new Network({ voters: ids, seed: 99 });
  const rng = new SeededPrng(4242);
  let bad = '';
  for (let step = 0; step < 600 && bad === ''; step++) {
    if (rng.chance(0.05)) net.heal();
    if (rng.chance(0.05)) net.isolate(ids[rng.nextInt(3)]!);
    for (const id of ids) net.tick(id);
    for (const leader of net.leaderIds()) net.propose(leader, `v${step}`);
    net.take(() => rng.chance(0.2));
    net.deliver();
    net.deliver();
    for (const a of ids) {
      for (const b of ids) {
        const va = net.values(a);
        const vb = net.values(b);
        const n = Math.min(va.length, vb.length);
        if (va.slice(0, n).join() !== vb.slice(0, n).join()) bad = `step ${step}: ${a} and ${b} diverge`;
      }
    }
  }
  t.equal(bad, '', 'no two state machines ever applied different entries at the same position');
  t.ok(net.values('1').length + net.values('2').length > 10, 'progress was made');
  assertOneLeaderPerTerm(t, net);
  t.end();
});

t.test(
  'dissertation §9.6 PreVote: a partitioned server rejoining neither raises the term nor deposes the leader',
  (t) => {
    const net = new Network({ voters: THREE });
    net.elect('1');
    const term = net.status('1').term;
    net.isolate('3');
    net.tickAll(100); // 3 times out again and again.
    t.equal(net.status('3').term, term, 'a pre-candidate does not bump its term');
    t.ok(
      net.sent.some((m) => m.from === '3' && m.type === MessageType.PreVote),
      '3 did try pre-elections',
    );
    t.ok(net.propose('1', 'x').ok);
    net.stabilize();

    net.heal();
    net.tickAll(100);
    t.equal(net.status('1').role, Role.Leader, '1 still leads');
    for (const id of THREE) t.equal(net.status(id).term, term, `${id} is still in term ${term}`);
    t.same(net.leaders, [{ id: '1', term }], 'there was never another election');
    t.same(net.values('3'), ['x'], 'the rejoined server caught up');
    t.end();
  },
);

t.test('dissertation §9.6 (contrast): without PreVote the rejoining server does disrupt the leader', (t) => {
  const net = new Network({ voters: THREE, config: { preVote: false, checkQuorum: false } });
  net.elect('1');
  net.isolate('3');
  net.tickAll(100);
  t.ok(net.status('3').term > 1, 'the isolated server bumped its term');
  net.heal();
  net.tickAll(100);
  t.ok(net.status('1').term > 1, "the cluster's term was raised");
  t.ok(net.leaders.length > 1, 'the stable leader was deposed and a new election held');
  t.end();
});

t.test(
  'dissertation §6.2 CheckQuorum: a leader that hears from no quorum within an election timeout steps down',
  (t) => {
    const electionTicks = 10;
    const net = new Network({ voters: THREE, config: { electionTicks } });
    net.elect('1');
    net.tickAll(50);
    t.equal(net.status('1').role, Role.Leader, 'a leader in touch with a quorum stays');
    const term = net.status('1').term;

    net.isolate('1');
    let ticks = 0;
    while (net.status('1').role === Role.Leader && ticks < 10 * electionTicks) {
      net.tick('1');
      ticks++;
    }
    t.equal(net.status('1').role, Role.Follower, 'the cut-off leader stepped down');
    // The quorum check runs once per election timeout, so the last contact may be up to one timeout before it.
    t.ok(ticks <= 2 * electionTicks, `within two election timeouts (took ${ticks} ticks)`);
    t.ok(ticks >= electionTicks, 'but not before an election timeout');
    t.equal(net.status('1').term, term, 'stepping down does not change the term');
    t.equal(net.status('1').leader, '', 'and it knows no leader');
    t.match(net.propose('1', 'late'), { ok: false, error: { code: 'NOT_LEADER' } });
    t.end();
  },
);

t.test('dissertation §6.2 CheckQuorum: a leader hearing only from a learner still steps down', (t) => {
  const net = new Network({ voters: THREE, learners: ['4'] });
  net.elect('1');
  net.cut('1', '2');
  net.cut('1', '3');
  for (let i = 0; i < 20; i++) {
    net.tick('1');
    net.stabilize(); // 1 and the learner 4 still talk.
  }
  t.equal(net.status('1').role, Role.Follower, 'learner acks do not make a quorum');
  t.end();
});

t.test('§5.4.1 election restriction: a voter refuses a candidate whose log is less up to date', (t) => {
  const net = new Network({ voters: THREE, config: { preVote: false, checkQuorum: false } });
  net.elect('1');
  net.isolate('3');
  t.ok(net.propose('1', 'x').ok);
  net.stabilize(); // Committed by 1 and 2; 3 lacks it.
  net.heal();
  net.isolate('1');
  net.campaign('3');
  net.stabilize();
  const answer = net.delivered.find(ofType(MessageType.VoteResponse, '2', '3'));
  t.equal(answer?.reject, true, '2 refuses 3: its last entry is older');
  t.not(net.status('3').role, Role.Leader, '3 cannot win');
  net.campaign('2');
  net.stabilize();
  t.equal(net.status('2').role, Role.Leader, '2, holding every committed entry, can');
  t.same(net.values('3'), ['x'], 'and the committed entry survives the leader change');
  t.end();
});

t.test('§5.2 / Figure 2: adopting a losing candidate’s term does not restart the election timer', (t) => {
  // Without PreVote, 2 keeps campaigning with a shorter log and loses; 1 (the only node that
  // can win) must still reach its own timeout rather than be reset by every vote request.
  const net = new Network({
    voters: ['1', '2', '3'],
    config: { preVote: false, checkQuorum: false, electionTicks: 10 },
  });
  net.elect('1');
  t.ok(net.propose('1', 'a').ok);
  net.stabilize();
  net.crash('3');
  net.cut('1', '2');
  t.ok(net.propose('1', 'b').ok); // Only 1 has 'b' now: 2's log is behind.
  net.stabilize();
  net.crash('1');
  net.restart('1');
  net.heal();
  // 2 campaigns every few ticks; deliver its requests to 1 as they come.
  let oneCampaigned = false;
  const sentBefore = net.sent.length;
  for (let tick = 0; tick < 40 && !oneCampaigned; tick++) {
    // 2's clock runs at three times 1's speed: its timeouts (10–19 ticks) always come first.
    for (let i = 0; i < 3; i++) net.raw('2').tick();
    net.processNode('2');
    net.tick('1');
    net.deliver((m) => m.to === '1');
    oneCampaigned = net.sent.slice(sentBefore).some((m) => m.from === '1' && m.type === MessageType.Vote);
    net.take((m) => m.from === '1' && m.type !== MessageType.Vote);
  }
  t.ok(oneCampaigned, 'the up-to-date node campaigned although the other kept raising the term');
  for (let tick = 0; tick < 100 && net.leaderIds().length === 0; tick++) net.tickAll();
  t.same(net.leaderIds(), ['1'], 'and only it can win');
  t.end();
});
