// Who may use the mesh, and what a bad frame does: strangers are closed and counted, bad frames close their stream.

import t from 'tap';
import { encodeRaftBatch } from '../../net/codec.js';
import { FrameKind, frame } from '../../net/framing.js';
import { PROTOCOLS } from '../../net/mesh.js';
import { MessageType, message } from '../../raft/types.js';
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
import { lengthPrefix, rogueConnect, rogueNode, writeRaw } from './rogue.js';

t.test('a peer without the secret cannot connect: both ends close and count it', async (t) => {
  const [portA, portB, portC] = await freePorts(3);
  const secret = newSecret();
  const a = await startNode({
    key: await newKey(),
    port: portA!,
    secret,
    peers: [`/ip4/127.0.0.1/tcp/${portB}`],
  });
  const b = await startNode({ key: await newKey(), port: portB!, secret, peers: [] });
  // C knows the addresses but holds another secret.
  const c = await startNode({
    key: await newKey(),
    port: portC!,
    secret: newSecret(),
    peers: [`/ip4/127.0.0.1/tcp/${portA}`, `/ip4/127.0.0.1/tcp/${portB}`],
  });
  t.teardown(() => stopAll([a, b, c]));
  await waitFullyConnected([a, b]);
  await waitFor(
    'A and B to reject C, and C to reject them',
    () =>
      a.mesh.counters().strangersRejected >= 1 &&
      b.mesh.counters().strangersRejected >= 1 &&
      [a, b].every((member) =>
        c.logger.events('stranger_rejected').some((line) => line.peer === member.mesh.peerId),
      ),
  );
  for (const member of [a, b]) {
    t.equal(member.mesh.isConnected(c.mesh.peerId), false);
    t.notOk(
      member.mesh.peers().some((peer) => peer.peer === c.mesh.peerId),
      'no session for the stranger',
    );
    t.equal(
      member.mesh.sendRaft(c.mesh.peerId, 1, [message({ type: MessageType.Heartbeat, from: 'x', to: 'y' })]),
      false,
    );
    await t.rejects(member.mesh.request(c.mesh.peerId, new Uint8Array(1)), { code: 'UNAVAILABLE' });
    // The listener proves first; the stranger, unable to check the proof, hangs up.
    const rejected = member.logger.events('stranger_rejected');
    t.ok(
      rejected.some((line) => line.peer === c.mesh.peerId),
      'the stranger is logged by peer id',
    );
  }
  const cLines = c.logger.events('stranger_rejected');
  t.ok(
    cLines.some((line) => line.peer === a.mesh.peerId && line.reason === 'bad_proof'),
    'C sees A fail the proof',
  );
  t.ok(
    cLines.some((line) => line.peer === b.mesh.peerId && line.reason === 'bad_proof'),
    'C sees B fail the proof',
  );
  t.equal(c.mesh.peers().length, 0);
  t.ok(c.mesh.counters().dialFailures >= 2, 'the stranger keeps failing with backoff');
  t.ok(a.mesh.isConnected(b.mesh.peerId), 'the members are unaffected');
});

t.test('a peer that holds the secret but is refused by admit() never connects', async (t) => {
  const [portA, portB] = await freePorts(2);
  const secret = newSecret();
  const keyB = await newKey();
  const { peerIdFromPrivateKey } = await import('@libp2p/peer-id');
  const removed = peerIdFromPrivateKey(keyB).toString();
  const a = await startNode({
    key: await newKey(),
    port: portA!,
    secret,
    peers: [],
    admit: (peer) => peer !== removed,
  });
  const b = await startNode({ key: keyB, port: portB!, secret, peers: [`/ip4/127.0.0.1/tcp/${portA}`] });
  t.teardown(() => stopAll([a, b]));
  await waitFor(
    'two refusals at A, two failed dials at B',
    () => a.mesh.counters().peersDenied >= 2 && b.mesh.counters().dialFailures >= 2,
  );
  t.equal(a.mesh.peers().length, 0);
  t.equal(a.mesh.counters().connectionsAuthenticated, 0, 'refused before the hello');
  t.equal(a.logger.events('peer_denied')[0]!.peer, removed);
  t.equal(b.mesh.peers().length, 0, 'the refused peer has no session either');
});

t.test('a connection that never says hello is closed at the deadline and counted', async (t) => {
  const [port] = await freePorts(1);
  const a = await startNode({
    key: await newKey(),
    port: port!,
    secret: newSecret(),
    peers: [],
    limits: { helloTimeoutMs: 300 },
  });
  const rogue = await rogueNode();
  t.teardown(async () => {
    await rogue.stop();
    await stopAll([a]);
  });
  const connection = await rogueConnect(rogue, `/ip4/127.0.0.1/tcp/${port}`);
  await waitFor('the silent connection to be closed', () => connection.status !== 'open');
  t.equal(a.mesh.counters().strangersRejected, 1);
  t.equal(a.logger.events('stranger_rejected')[0]!.reason, 'timeout');
});

t.test(
  'opening a Conclave protocol before proving the secret is refused, counted, and closes the connection',
  async (t) => {
    const [port] = await freePorts(1);
    const a = await startNode({ key: await newKey(), port: port!, secret: newSecret(), peers: [] });
    const rogue = await rogueNode();
    t.teardown(async () => {
      await rogue.stop();
      await stopAll([a]);
    });
    const connection = await rogueConnect(rogue, `/ip4/127.0.0.1/tcp/${port}`);
    const heartbeat = encodeRaftBatch(
      1,
      [message({ type: MessageType.Heartbeat, from: 'x', to: 'y' })],
      1 << 20,
    );
    await writeRaw(connection, PROTOCOLS.raft, heartbeat).catch(() => undefined);
    await waitFor('the connection to be closed', () => connection.status !== 'open');
    t.equal(a.mesh.counters().streamsRefused, 1);
    t.equal(a.mesh.counters().strangersRejected, 1);
    t.equal(a.mesh.counters().raftMessagesReceived, 0, 'nothing reached the raft handler');
    t.equal(a.logger.events('stream_refused')[0]!.protocol, 'raft');
  },
);

t.test(
  'malformed and oversized frames from a member close that stream with a logged reason, never the node',
  async (t) => {
    const secret = newSecret();
    const nodes = await startCluster(2, {
      secret,
      limits: {
        maxFrameBytes: 64 * 1024,
        raftFrameTargetBytes: 16 * 1024,
        maxRequestBytes: 32 * 1024,
        snapshotChunkBytes: 16 * 1024,
        maxSnapshotHeaderBytes: 1024,
      },
    });
    const rogue = await rogueNode();
    t.teardown(async () => {
      await rogue.stop();
      await stopAll(nodes);
    });
    const [a, b] = nodes as [TestNode, TestNode];
    await waitFullyConnected(nodes);
    const address = a.mesh.addresses()[0]!;
    const connection = await rogueConnect(rogue, address, secret);
    await waitFor('A to accept the rogue member', () =>
      a.mesh.peers().some((peer) => peer.peer === rogue.peerId.toString()),
    );

    const attacks: [string, string, Uint8Array, string][] = [
      [
        'garbage in a raft frame',
        PROTOCOLS.raft,
        frame(new Uint8Array([FrameKind.RaftBatch, 0xff, 0xff, 0xff])),
        'MALFORMED_FRAME',
      ],
      [
        'a raft frame of the wrong kind',
        PROTOCOLS.raft,
        frame(new Uint8Array([FrameKind.SnapshotChunk, 1, 2])),
        'MALFORMED_FRAME',
      ],
      ['a length prefix over maxFrameBytes', PROTOCOLS.raft, lengthPrefix(64 * 1024 + 1), 'FRAME_TOO_LARGE'],
      ['an empty frame', PROTOCOLS.raft, lengthPrefix(0), 'MALFORMED_FRAME'],
      ['an unknown rpc frame', PROTOCOLS.rpc, frame(new Uint8Array([99, 1, 2])), 'MALFORMED_FRAME'],
      [
        'a truncated rpc request',
        PROTOCOLS.rpc,
        frame(new Uint8Array([FrameKind.RpcRequest, 0x80])),
        'MALFORMED_FRAME',
      ],
      [
        'a snapshot that starts with a chunk',
        PROTOCOLS.snapshot,
        frame(new Uint8Array([FrameKind.SnapshotChunk, 1])),
        'MALFORMED_FRAME',
      ],
    ];
    let expectedRejections = 0;
    for (const [name, protocol, bytes, code] of attacks) {
      const stream = await writeRaw(connection, protocol, bytes);
      expectedRejections++;
      await waitFor(`${name}: rejected`, () => a.mesh.counters().framesRejected === expectedRejections);
      await waitFor(`${name}: the stream closed`, () => stream.status !== 'open');
      const line = a.logger.events('frame_rejected').at(-1)!;
      t.equal(line.code, code, `${name}: logged as ${code}`);
      t.type(line.reason, 'string');
      t.equal(line.peer, rogue.peerId.toString());
    }
    t.equal(connection.status, 'open', 'a bad frame closes its stream, not the connection');
    t.equal(a.mesh.counters().raftMessagesReceived, 0);

    // The node is unharmed: its real peer still exchanges frames both ways.
    t.equal(
      a.mesh.sendRaft(b.mesh.peerId, 1, [
        message({ type: MessageType.Heartbeat, from: 'a', to: 'b', term: 3 }),
      ]),
      true,
    );
    t.equal(
      b.mesh.sendRaft(a.mesh.peerId, 1, [
        message({ type: MessageType.HeartbeatResponse, from: 'b', to: 'a', term: 3 }),
      ]),
      true,
    );
    await waitFor(
      'frames both ways',
      () => messagesFrom(b, a.mesh.peerId).length === 1 && messagesFrom(a, b.mesh.peerId).length === 1,
    );
  },
);
