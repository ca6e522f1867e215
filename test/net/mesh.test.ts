// Real libp2p meshes on loopback: connecting from hardcoded addresses, raft frames, batching, drops and redials.

import t from 'tap';
import { EntryType, type Message, MessageType, message } from '../../raft/types.js';
import {
  freePorts,
  messagesFrom,
  newKey,
  newSecret,
  startCluster,
  startNode,
  stopAll,
  type TestNode,
  waitFor,
  waitFullyConnected,
} from './helpers.js';

/** An Append from `from` to `to` whose single entry encodes (group, seq). */
function append(from: string, to: string, groupId: number, seq: number, bytes = 100): Message {
  const data = new Uint8Array(bytes);
  new DataView(data.buffer).setUint32(0, groupId);
  new DataView(data.buffer).setUint32(4, seq);
  return message({
    type: MessageType.Append,
    from,
    to,
    term: 1,
    index: seq,
    logTerm: 1,
    commit: seq,
    entries: [{ term: 1, index: seq + 1, type: EntryType.Normal, data }],
  });
}

function seqOf(m: Message): number {
  const data = m.entries[0]!.data;
  return new DataView(data.buffer, data.byteOffset).getUint32(4);
}

t.test(
  'three meshes connect from hardcoded addresses and exchange batched raft frames in order',
  async (t) => {
    const nodes = await startCluster(3);
    t.teardown(() => stopAll(nodes));
    await waitFullyConnected(nodes);
    const perGroup = { 1: 500, 2: 100 };
    // Everything below is sent in one event-loop turn: it must leave in few frames.
    for (const a of nodes) {
      for (const b of nodes) {
        if (a === b) continue;
        for (const [group, count] of Object.entries(perGroup)) {
          const batch = Array.from({ length: count }, (_, seq) =>
            append(a.mesh.peerId, b.mesh.peerId, Number(group), seq),
          );
          t.equal(a.mesh.sendRaft(b.mesh.peerId, Number(group), batch), true);
        }
      }
    }
    await waitFor('every node to receive 600 messages from each peer', () =>
      nodes.every((b) => nodes.every((a) => a === b || messagesFrom(b, a.mesh.peerId).length === 600)),
    );
    for (const b of nodes) {
      for (const a of nodes) {
        if (a === b) continue;
        for (const [group, count] of Object.entries(perGroup)) {
          const got = messagesFrom(b, a.mesh.peerId, Number(group));
          t.same(
            got.map(seqOf),
            Array.from({ length: count }, (_, i) => i),
            `group ${group} in order, ${a.mesh.peerId.slice(-4)}→${b.mesh.peerId.slice(-4)}`,
          );
          t.equal(got[0]!.from, a.mesh.peerId);
          t.equal(got[0]!.entries[0]!.data.length, 100);
        }
        const frames = b.received.raft.filter((batch) => batch.from === a.mesh.peerId).length;
        t.ok(frames <= 6, `600 messages arrived in ${frames} frames`);
      }
    }
    for (const node of nodes) {
      const counters = node.mesh.counters();
      t.equal(counters.framesRejected, 0);
      t.equal(counters.raftMessagesDropped, 0);
      t.equal(counters.strangersRejected, 0);
      t.equal(counters.raftMessagesReceived, 1200);
    }
    // Both ends dialed each pair; the tie-break leaves one connection per pair.
    await waitFor('one connection per pair', () =>
      nodes.every((node) => node.mesh.peers().every((peer) => peer.connections === 1)),
    );
    t.equal(nodes[0]!.mesh.peers().length, 2);
  },
);

t.test('pinned peer ids: a configured address answering with another peer id is not accepted', async (t) => {
  const secret = newSecret();
  const [portA, portB] = await freePorts(2);
  const impostorKey = await newKey();
  const { peerIdFromPrivateKey } = await import('@libp2p/peer-id');
  const expected = peerIdFromPrivateKey(await newKey()).toString();
  const b = await startNode({ key: impostorKey, port: portB!, secret, peers: [] });
  const a = await startNode({
    key: await newKey(),
    port: portA!,
    secret,
    peers: [`/ip4/127.0.0.1/tcp/${portB}/p2p/${expected}`],
  });
  t.teardown(() => stopAll([a, b]));
  await waitFor('two failed dials', () => a.mesh.counters().dialFailures >= 2);
  t.equal(a.mesh.isConnected(b.mesh.peerId), false);
  t.equal(a.mesh.peers().length, 0);
  t.ok(a.logger.events('dial_failed').length >= 2, 'each failure is logged with its retry delay');
  t.type(a.logger.events('dial_failed')[0]!.retryInMs, 'number');
});

t.test(
  "a member's frames flow again after its connection drops and after it restarts (redial with backoff)",
  async (t) => {
    const secret = newSecret();
    const [portA, portB] = await freePorts(2);
    const keyA = await newKey();
    const keyB = await newKey();
    const specB = { key: keyB, port: portB!, secret, peers: [`/ip4/127.0.0.1/tcp/${portA}`] };
    const a = await startNode({ key: keyA, port: portA!, secret, peers: [`/ip4/127.0.0.1/tcp/${portB}`] });
    let b: TestNode | undefined = await startNode(specB);
    t.teardown(() => stopAll([a, b]));
    await waitFullyConnected([a, b!]);
    const idA = a.mesh.peerId;
    const idB = b!.mesh.peerId;
    let seq = 0;
    const sendSome = (count: number) => {
      const batch = Array.from({ length: count }, () => append(idA, idB, 1, seq++));
      return a.mesh.sendRaft(idB, 1, batch);
    };

    t.equal(sendSome(50), true);
    await waitFor('the first 50', () => messagesFrom(b!, idA).length === 50);

    // 1. The connection drops under both ends; the configured peers redial.
    await a.mesh.disconnect(idB);
    await waitFor('A to notice the drop', () => a.received.downs.includes(idB));
    await waitFullyConnected([a, b!]);
    t.equal(sendSome(50), true);
    await waitFor('50 more after the redial', () => messagesFrom(b!, idA).length === 100);

    // 2. B goes away entirely: A's dials fail and back off; sends are refused, not buffered.
    const failuresBefore = a.mesh.counters().dialFailures;
    await b!.mesh.stop();
    b = undefined;
    await waitFor('A to see B down', () => !a.mesh.isConnected(idB));
    t.equal(sendSome(10), false, 'no stream: refused at once');
    seq -= 10;
    await waitFor('A to fail two redials', () => a.mesh.counters().dialFailures >= failuresBefore + 2);

    // 3. B restarts with the same key and port: same peer id, found again by A's redial.
    b = await startNode(specB);
    t.equal(b.mesh.peerId, idB);
    await waitFullyConnected([a, b]);
    t.equal(sendSome(50), true);
    await waitFor('50 at the restarted B', () => messagesFrom(b!, idA).length === 50);
    t.same(
      messagesFrom(b, idA).map(seqOf),
      Array.from({ length: 50 }, (_, i) => 100 + i),
      'in order, none lost after the redial',
    );
    t.ok(a.received.ups.filter((peer) => peer === idB).length >= 3, 'peerUp after each reconnect');
    t.ok(a.received.downs.filter((peer) => peer === idB).length >= 2, 'peerDown after each loss');
  },
);

t.test('a full queue refuses raft messages instead of buffering without bound', async (t) => {
  const nodes = await startCluster(2, { limits: { maxRaftQueueBytesPerPeer: 64 * 1024 } });
  t.teardown(() => stopAll(nodes));
  await waitFullyConnected(nodes);
  const [a, b] = nodes as [TestNode, TestNode];
  let accepted = 0;
  let refused = 0;
  for (let seq = 0; seq < 200; seq++) {
    // 200 × ~1 KiB in one turn: more than the 64 KiB queue holds.
    if (a.mesh.sendRaft(b.mesh.peerId, 1, [append(a.mesh.peerId, b.mesh.peerId, 1, seq, 1024)])) accepted++;
    else refused++;
  }
  t.ok(refused > 0 && accepted > 0, `${accepted} accepted, ${refused} refused`);
  await waitFor('the accepted ones to arrive', () => messagesFrom(b, a.mesh.peerId).length === accepted);
  t.equal(a.mesh.counters().raftMessagesDropped, refused);
  t.equal(
    a.mesh.sendRaft(b.mesh.peerId, 1, [append(a.mesh.peerId, b.mesh.peerId, 1, 999, 1024)]),
    true,
    'room again once drained',
  );
});

t.test('a raft message larger than a frame is refused and logged, the link stays up', async (t) => {
  const nodes = await startCluster(2, {
    limits: {
      maxFrameBytes: 64 * 1024,
      raftFrameTargetBytes: 16 * 1024,
      maxRequestBytes: 32 * 1024,
      snapshotChunkBytes: 16 * 1024,
      maxSnapshotHeaderBytes: 1024,
    },
  });
  t.teardown(() => stopAll(nodes));
  await waitFullyConnected(nodes);
  const [a, b] = nodes as [TestNode, TestNode];
  t.equal(a.mesh.sendRaft(b.mesh.peerId, 1, [append(a.mesh.peerId, b.mesh.peerId, 1, 0, 100_000)]), false);
  t.equal(a.logger.events('raft_message_too_large').length, 1);
  t.equal(a.mesh.sendRaft(b.mesh.peerId, 1, [append(a.mesh.peerId, b.mesh.peerId, 1, 1, 100)]), true);
  await waitFor('the small one', () => messagesFrom(b, a.mesh.peerId).length === 1);
  t.throws(
    () => a.mesh.sendRaft(b.mesh.peerId, -1, []),
    RangeError,
    'a group id out of range is a programming error',
  );
});
