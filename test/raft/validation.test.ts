// Tests that bad configuration is refused naming the setting, and malformed peer messages are refused changing nothing.

import t from 'tap';
import type { RaftConfigInput } from '../../raft/config.js';
import { RaftConfigError } from '../../raft/errors.js';
import { MemoryStorage } from '../../raft/memory-storage.js';
import { SeededPrng } from '../../raft/prng.js';
import { RawNode } from '../../raft/raw-node.js';
import { type Entry, EntryType, type Message, MessageType, message } from '../../raft/types.js';
import { enc, Network } from './harness.js';

const THREE = ['1', '2', '3'];

t.test('configuration: an out-of-bounds value is refused with RaftConfigError naming the setting', (t) => {
  const base = (): RaftConfigInput => ({
    id: '1',
    storage: new MemoryStorage({ voters: ['1'], learners: [] }),
    prng: new SeededPrng(1),
  });
  const cases: [string, Record<string, unknown>][] = [
    ['id', { id: '' }],
    ['id', { id: 'x'.repeat(257) }],
    ['storage', { storage: undefined as unknown }],
    ['prng', { prng: {} }],
    ['electionTicks', { electionTicks: 1 }],
    ['electionTicks', { electionTicks: 2.5 }],
    ['electionTicks', { electionTicks: Number.NaN }],
    ['heartbeatTicks', { electionTicks: 10, heartbeatTicks: 10 }],
    ['heartbeatTicks', { heartbeatTicks: 0 }],
    ['applied', { applied: -1 }],
    ['maxMessageBytes', { maxMessageBytes: 0 }],
    ['maxInflightMessages', { maxInflightMessages: 0 }],
    ['maxInflightBytes', { maxMessageBytes: 1000, maxInflightBytes: 999 }],
    ['maxUncommittedBytes', { maxUncommittedBytes: 0 }],
    ['maxCommittedBytesPerReady', { maxCommittedBytesPerReady: 0 }],
    ['maxPendingReadIndex', { maxPendingReadIndex: 0 }],
    ['learnerCatchUpMaxLagEntries', { learnerCatchUpMaxLagEntries: -1 }],
    ['preVote', { preVote: 'yes' }],
    ['checkQuorum', { checkQuorum: 1 }],
  ];
  for (const [setting, override] of cases) {
    let error: unknown;
    try {
      new RawNode({ ...base(), ...override } as RaftConfigInput);
    } catch (e) {
      error = e;
    }
    t.ok(error instanceof RaftConfigError, `${JSON.stringify(override).slice(0, 60)} is refused`);
    t.equal((error as RaftConfigError).setting, setting, `naming ${setting}`);
    t.match((error as Error).message, setting);
  }
  t.doesNotThrow(
    () => new RawNode({ ...base(), electionTicks: 2, heartbeatTicks: 1 }),
    'the tightest valid timing',
  );
  t.end();
});

/** A three-node cluster with leader 1 and one committed entry; messages are then stepped into 2 by hand. */
function cluster(): Network {
  const net = new Network({ voters: THREE });
  net.elect('1');
  net.propose('1', 'x');
  net.stabilize();
  return net;
}

const term = cluster().status('2').term;
const entry = (index: number, entryTerm = term): Entry => ({
  index,
  term: entryTerm,
  type: EntryType.Normal,
  data: enc('e'),
});
const hb = (fields: Partial<Message>): Message =>
  message({ type: MessageType.Heartbeat, from: '1', to: '2', term, ...fields });

const MALFORMED: [string, Message][] = [
  ['negative index', message({ type: MessageType.Append, from: '1', to: '2', term, index: -1 })],
  ['fractional term', hb({ term: term + 0.5 })],
  ['NaN commit from a newer term', hb({ term: term + 5, commit: Number.NaN })],
  ['unknown type', hb({ type: 99 as MessageType })],
  ['local Hup from a peer', message({ type: MessageType.Hup, from: '3', to: '2' })],
  ['local TransferLeader from a peer', message({ type: MessageType.TransferLeader, from: '3', to: '2' })],
  ['local SnapshotStatus from a peer', message({ type: MessageType.SnapshotStatus, from: '3', to: '2' })],
  ['addressed to another node', hb({ to: '3', term: term + 1 })],
  ['no sender', hb({ from: '', term: term + 1 })],
  ['entries not an array', hb({ type: MessageType.Append, entries: 'x' as unknown as Entry[] })],
  // Structurally broken messages from a newer term: adopting that term would already be a change.
  [
    'Append whose entries have a gap',
    message({
      type: MessageType.Append,
      from: '3',
      to: '2',
      term: term + 1,
      index: 2,
      logTerm: term,
      entries: [entry(3, term + 1), entry(5, term + 1)],
    }),
  ],
  [
    'Append carrying an entry of a later term than the message',
    message({
      type: MessageType.Append,
      from: '3',
      to: '2',
      term: term + 1,
      index: 2,
      logTerm: term,
      entries: [entry(3, term + 7)],
    }),
  ],
  [
    'Snapshot message without a snapshot',
    message({ type: MessageType.Snapshot, from: '3', to: '2', term: term + 1 }),
  ],
];

for (const [what, m] of MALFORMED) {
  t.test(
    `a malformed or misdirected message is refused with INVALID_MESSAGE and changes nothing: ${what}`,
    (t) => {
      const net = cluster();
      const before = net.status('2');
      const logBefore = net.logTerms('2');
      const result = net.raw('2').step(m);
      t.match(result, { ok: false, error: { code: 'INVALID_MESSAGE' } }, 'refused with INVALID_MESSAGE');
      t.same(net.status('2'), before, 'raft state unchanged');
      t.equal(net.raw('2').hasReady(), false, 'nothing to persist or send');
      net.process();
      t.same(net.logTerms('2'), logBefore, 'log unchanged');
      net.tickAll(5);
      t.same(net.leaderIds(), ['1'], 'the cluster carries on under the same leader');
      t.equal(net.status('2').term, term);
      t.end();
    },
  );
}
