// Commit notices: the empty append a leader sends after a commit is answered by the follower only when it rejects it.

import t from 'tap';
import { MemoryStorage } from '../../raft/memory-storage.js';
import { SeededPrng } from '../../raft/prng.js';
import { RawNode } from '../../raft/raw-node.js';
import { EntryType, type Message, MessageType, message } from '../../raft/types.js';
import { enc, Network } from './harness.js';

function follower(): RawNode {
  const storage = new MemoryStorage({ voters: ['1', '2', '3'], learners: [] });
  const node = new RawNode({ id: '2', storage, prng: new SeededPrng(3) });
  const entry = { index: 1, term: 1, type: EntryType.Normal, data: enc('x') };
  t.ok(node.step(message({ type: MessageType.Append, from: '1', to: '2', term: 1, entries: [entry] })).ok);
  const rd = node.ready();
  storage.append(rd.entries);
  if (rd.hardState) storage.setHardState(rd.hardState);
  node.advance(rd);
  return node;
}

/** Steps an append from leader '1' in term 1, flagged replyOnlyOnReject, into `node`. */
function stepNotice(node: RawNode, fields: Partial<Message>): void {
  const append = message({
    type: MessageType.Append,
    from: '1',
    to: '2',
    term: 1,
    replyOnlyOnReject: true,
    ...fields,
  });
  t.ok(node.step(append).ok);
}

function answers(node: RawNode): Message[] {
  const out: Message[] = [];
  while (node.hasReady()) {
    const rd = node.ready();
    out.push(...rd.messages, ...rd.messagesAfterPersist);
    node.advance(rd);
  }
  return out.filter((m) => m.type === MessageType.AppendResponse);
}

t.test('a follower takes the commit from a notice without answering it', (t) => {
  const node = follower();
  const notice = { type: MessageType.Append, from: '1', to: '2', term: 1, index: 1, logTerm: 1, commit: 1 };
  t.ok(node.step(message({ ...notice, replyOnlyOnReject: true })).ok);
  t.same(answers(node), [], 'no answer to a notice that matches');
  t.equal(node.status().commitIndex, 1, 'the commit index moved');

  t.ok(node.step(message({ ...notice, commit: 1 })).ok);
  t.equal(answers(node).length, 1, 'the same append without the flag is answered');
  t.end();
});

t.test('a notice that does not match the log is rejected, so the leader learns of it', (t) => {
  const node = follower();
  stepNotice(node, { index: 5, logTerm: 1, commit: 5 });
  const out = answers(node);
  t.equal(out.length, 1);
  t.match(out[0], { reject: true, index: 5 });
  t.end();
});

t.test('an append that carries entries is always answered, flag or not', (t) => {
  const node = follower();
  const entry = { index: 2, term: 1, type: EntryType.Normal, data: enc('y') };
  stepNotice(node, { index: 1, logTerm: 1, entries: [entry] });
  t.match(answers(node), [{ index: 2, reject: false }]);
  t.end();
});

t.test('a flag of the wrong type is refused as malformed', (t) => {
  const node = follower();
  const result = node.step({
    ...message({ type: MessageType.Append, from: '1', to: '2', term: 1, index: 1, logTerm: 1 }),
    replyOnlyOnReject: 'yes' as unknown as boolean,
  });
  t.notOk(result.ok);
  t.end();
});

t.test('after a commit, a leader sends each follower in sync a notice it need not answer', (t) => {
  const net = new Network({ voters: ['1', '2', '3'] });
  net.elect('1');
  const before = net.sent.length;
  t.ok(net.propose('1', 'a').ok);
  net.stabilize();
  const sent = net.sent.slice(before);
  const notices = sent.filter((m) => m.type === MessageType.Append && m.entries.length === 0 && m.commit > 0);
  t.same(
    sent
      .filter((m) => m.type === MessageType.AppendResponse)
      .map((m) => m.from)
      .sort(),
    ['2', '3'],
    'only the appends that carried the entry were answered',
  );
  t.equal(net.status('2').commitIndex, net.status('1').commitIndex, 'the followers learned the commit');
  t.ok(notices.length > 0, 'the commit went out as notices');
  t.ok(
    notices.every((m) => m.replyOnlyOnReject === true),
    'each flagged: both followers were sent the entry',
  );
  t.end();
});
