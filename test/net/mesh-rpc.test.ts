// Request forwarding with deadlines, and snapshot transfer with backpressure, between real meshes.

import { createHash } from 'node:crypto';
import t, { type Test } from 'tap';
import type { MeshLimits } from '../../net/config.js';
import { NetError, RemoteError } from '../../net/errors.js';
import type { MeshHandlers } from '../../net/mesh.js';
import type { IncomingSnapshot } from '../../net/snapshot.js';
import {
  freePorts,
  newKey,
  newSecret,
  startNode,
  stopAll,
  type TestNode,
  waitFor,
  waitFullyConnected,
} from './helpers.js';

const MIB = 1024 * 1024;

/** Two connected meshes; only B has the given handlers. */
async function pair(
  t: Test,
  handlers: Partial<MeshHandlers>,
  limits: Partial<MeshLimits> = {},
): Promise<[TestNode, TestNode]> {
  const secret = newSecret();
  const [portA, portB] = await freePorts(2);
  const a = await startNode({
    key: await newKey(),
    port: portA!,
    secret,
    peers: [`/ip4/127.0.0.1/tcp/${portB}`],
    limits,
  });
  const b = await startNode({
    key: await newKey(),
    port: portB!,
    secret,
    peers: [`/ip4/127.0.0.1/tcp/${portA}`],
    limits,
    handlers,
  });
  t.teardown(() => stopAll([a, b]));
  await waitFullyConnected([a, b]);
  return [a, b];
}

t.test('forwarded requests: answers, remote error codes, concurrency', async (t) => {
  const [a, b] = await pair(t, {
    request: async (from, payload) => {
      const text = new TextDecoder().decode(payload);
      if (text === 'not-leader') throw Object.assign(new Error('ask the leader'), { code: 'NOT_LEADER' });
      if (text === 'bug') throw new Error('a bug with no code');
      return new TextEncoder().encode(`${from.slice(-4)}:${text.toUpperCase()}`);
    },
  });
  const answer = await a.mesh.request(b.mesh.peerId, new TextEncoder().encode('hello'));
  t.equal(
    new TextDecoder().decode(answer),
    `${a.mesh.peerId.slice(-4)}:HELLO`,
    'the handler sees the authenticated caller',
  );

  const remote = await a.mesh
    .request(b.mesh.peerId, new TextEncoder().encode('not-leader'))
    .catch((err) => err);
  t.ok(remote instanceof RemoteError);
  t.equal(remote.remoteCode, 'NOT_LEADER');
  t.equal(remote.remoteMessage, 'ask the leader');
  const internal = await a.mesh.request(b.mesh.peerId, new TextEncoder().encode('bug')).catch((err) => err);
  t.equal(internal.remoteCode, 'INTERNAL', 'an error without a code is not leaked');
  t.equal(b.logger.events('request_handler_failed').length, 1, 'and is logged where it happened');

  const many = await Promise.all(
    Array.from({ length: 300 }, (_, i) => a.mesh.request(b.mesh.peerId, new TextEncoder().encode(`r${i}`))),
  );
  t.same(
    many.map((bytes) => new TextDecoder().decode(bytes).split(':')[1]),
    Array.from({ length: 300 }, (_, i) => `R${i}`),
    'each answer matches its request',
  );
  t.equal(a.mesh.counters().requestsSent, 303);
  t.equal(b.mesh.counters().requestsReceived, 303);
});

t.test('a request past its deadline fails with TIMEOUT and the handler is told to stop', async (t) => {
  const aborted: unknown[] = [];
  const deadlines: number[] = [];
  const [a, b] = await pair(t, {
    request: (_from, _payload, { signal, timeoutMs }) =>
      new Promise((_resolve, reject) => {
        deadlines.push(timeoutMs);
        signal.addEventListener('abort', () => {
          aborted.push(signal.reason);
          reject(signal.reason);
        });
      }),
  });
  const err = await a.mesh.request(b.mesh.peerId, new Uint8Array([1]), { timeoutMs: 150 }).catch((e) => e);
  t.ok(err instanceof NetError);
  t.equal(err.code, 'TIMEOUT');
  await waitFor('the handler to see its signal fire', () => aborted.length === 1);
  t.ok(deadlines[0]! <= 150 && deadlines[0]! > 0, `the deadline travelled: ${deadlines[0]} ms left`);
  t.equal(a.mesh.counters().requestTimeouts, 1);

  const controller = new AbortController();
  const pending = a.mesh.request(b.mesh.peerId, new Uint8Array([2]), {
    timeoutMs: 10_000,
    signal: controller.signal,
  });
  controller.abort(new Error('client gave up'));
  await t.rejects(pending, { message: 'client gave up' });
  await waitFor('the cancel to reach the handler', () => aborted.length === 2);
});

t.test(
  'requests refuse what cannot succeed: unknown peers, oversized payloads, too many outstanding, no handler',
  async (t) => {
    const hold: (() => void)[] = [];
    const [a, b] = await pair(
      t,
      {
        request: () =>
          new Promise((resolve) => {
            hold.push(() => resolve(new Uint8Array(0)));
          }),
      },
      { maxOutboundRequestsPerPeer: 4, maxRequestBytes: 4096 },
    );
    await t.rejects(a.mesh.request('12D3KooWNotConnected', new Uint8Array(1)), {
      code: 'UNAVAILABLE',
      notSent: true,
    });
    await t.rejects(a.mesh.request(b.mesh.peerId, new Uint8Array(5000)), { code: 'FRAME_TOO_LARGE' });
    const outstanding = Array.from({ length: 4 }, () => a.mesh.request(b.mesh.peerId, new Uint8Array(1)));
    await t.rejects(a.mesh.request(b.mesh.peerId, new Uint8Array(1)), { code: 'OVERLOADED', notSent: true });
    await waitFor('the handler to hold four', () => hold.length === 4);
    for (const release of hold) release();
    await Promise.all(outstanding);

    const noHandler = await b.mesh.request(a.mesh.peerId, new Uint8Array(1)).catch((err) => err);
    t.equal(noHandler.remoteCode, 'UNAVAILABLE', 'a node without a request handler refuses');
    t.ok(noHandler instanceof RemoteError);
  },
);

t.test('many large requests at once queue behind the stream instead of overflowing libp2p', async (t) => {
  // 64 × 512 KiB each way: far beyond libp2p's hard write-buffer cap for these limits (which
  // resets the stream), so this passes only if requests and answers wait for the stream.
  const limits = {
    maxFrameBytes: 1024 * 1024,
    maxRequestBytes: 600 * 1024,
    raftFrameTargetBytes: 64 * 1024,
    snapshotChunkBytes: 64 * 1024,
    maxSnapshotHeaderBytes: 1024,
    streamHighWaterBytes: 256 * 1024,
    maxStreamWindowBytes: 1024 * 1024,
  };
  const [a, b] = await pair(t, { request: async (_from, payload) => payload }, limits);
  const payloads = Array.from({ length: 64 }, (_, i) => new Uint8Array(512 * 1024).fill(i));
  const answers = await Promise.all(
    payloads.map((p) => a.mesh.request(b.mesh.peerId, p, { timeoutMs: 60_000 })),
  );
  t.ok(
    answers.every(
      (answer, i) => answer.length === 512 * 1024 && answer[0] === i && answer[answer.length - 1] === i,
    ),
  );
  t.equal(a.mesh.counters().framesRejected + b.mesh.counters().framesRejected, 0);
  t.ok(a.mesh.peers()[0]!.rpcStream, 'the request stream survived');
});

t.test('a lost connection fails outstanding requests with UNAVAILABLE', async (t) => {
  let started = 0;
  const [a, b] = await pair(t, {
    request: () => {
      started++;
      return new Promise(() => {});
    },
  });
  const pending = a.mesh.request(b.mesh.peerId, new Uint8Array(1), { timeoutMs: 30_000 }).catch((err) => err);
  await waitFor('the request to arrive', () => started === 1);
  await a.mesh.disconnect(b.mesh.peerId);
  const err = await pending;
  t.equal(err.code, 'UNAVAILABLE');
  t.match(err.message, /may have been applied/, 'says the outcome is unknown');
  t.equal(err.notSent, false, 'and does not claim it was never sent');
});

/** Bytes 0..n-1 of a deterministic pattern, produced in pieces of `piece` bytes. */
async function* pattern(
  total: number,
  piece: number,
  produced: { bytes: number },
): AsyncGenerator<Uint8Array> {
  for (let offset = 0; offset < total; offset += piece) {
    const length = Math.min(piece, total - offset);
    const chunk = new Uint8Array(length);
    for (let i = 0; i < length; i += 4096) chunk[i] = ((offset + i) / 4096) & 0xff;
    produced.bytes += length;
    yield chunk;
  }
}

function digestOf(total: number, piece: number): string {
  const hash = createHash('sha256');
  for (let offset = 0; offset < total; offset += piece) {
    const chunk = new Uint8Array(Math.min(piece, total - offset));
    for (let i = 0; i < chunk.length; i += 4096) chunk[i] = ((offset + i) / 4096) & 0xff;
    hash.update(chunk);
  }
  return hash.digest('hex');
}

t.test(
  'a snapshot streams with backpressure: a stalled receiver stalls the sender, then all arrives intact',
  async (t) => {
    const total = 96 * MIB;
    let release!: () => void;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const received: { header: string; groupId: number; digest: string; bytes: number }[] = [];
    const [a, b] = await pair(
      t,
      {
        snapshot: async (incoming: IncomingSnapshot) => {
          await held;
          const hash = createHash('sha256');
          let bytes = 0;
          for await (const chunk of incoming.chunks) {
            hash.update(chunk);
            bytes += chunk.length;
          }
          received.push({
            header: new TextDecoder().decode(incoming.header),
            groupId: incoming.groupId,
            digest: hash.digest('hex'),
            bytes,
          });
        },
      },
      {
        streamHighWaterBytes: 256 * 1024,
        snapshotReceiveBufferBytes: 1 * MIB,
        maxStreamWindowBytes: 1 * MIB,
        snapshotChunkBytes: 64 * 1024,
      },
    );
    const produced = { bytes: 0 };
    const sending = a.mesh.sendSnapshot(b.mesh.peerId, {
      groupId: 9,
      header: new TextEncoder().encode('index=42'),
      source: pattern(total, MIB, produced),
    });
    sending.catch(() => {});
    // Wait until the producer stops being pulled: it is blocked on the stream, not buffering.
    let last = -1;
    let stable = 0;
    await waitFor('the sender to stall behind the held receiver', () => {
      stable = produced.bytes === last && produced.bytes > 0 ? stable + 1 : 0;
      last = produced.bytes;
      return stable >= 20;
    });
    t.ok(
      produced.bytes < 16 * MIB,
      `the sender stalled after ${(produced.bytes / MIB).toFixed(1)} MiB of ${total / MIB}`,
    );
    release();
    t.equal(await sending, total);
    t.same(received, [{ header: 'index=42', groupId: 9, digest: digestOf(total, MIB), bytes: total }]);
    t.equal(a.mesh.counters().snapshotsSent, 1);
    t.equal(b.mesh.counters().snapshotsReceived, 1);
    t.equal(b.mesh.counters().snapshotBytesReceived, total);
  },
);

t.test(
  'a snapshot to a receiver that stays slow: every pause holds, the read buffer stays bounded, all arrives',
  async (t) => {
    // A consumer slower than the link pauses the stream again and again, also while the data
    // buffered during the last pause is being handed to it; the muxer must stop granting window
    // each time, or the stream buffers without bound and libp2p resets it.
    const total = 24 * MIB;
    const received: { digest: string; bytes: number }[] = [];
    const [a, b] = await pair(
      t,
      {
        snapshot: async (incoming: IncomingSnapshot) => {
          const hash = createHash('sha256');
          let bytes = 0;
          for await (const chunk of incoming.chunks) {
            hash.update(chunk);
            bytes += chunk.length;
            await new Promise((resolve) => setTimeout(resolve, 1));
          }
          received.push({ digest: hash.digest('hex'), bytes });
        },
      },
      {
        maxFrameBytes: 1 * MIB,
        maxRequestBytes: 512 * 1024,
        streamHighWaterBytes: 256 * 1024,
        snapshotReceiveBufferBytes: 256 * 1024,
        maxStreamWindowBytes: 512 * 1024,
        maxStreamReadBufferBytes: 2 * MIB,
        snapshotChunkBytes: 64 * 1024,
      },
    );
    const sent = await a.mesh.sendSnapshot(b.mesh.peerId, {
      groupId: 3,
      header: new TextEncoder().encode('slow'),
      source: pattern(total, MIB, { bytes: 0 }),
    });
    t.equal(sent, total);
    t.same(received, [{ digest: digestOf(total, MIB), bytes: total }]);
    t.equal(b.mesh.counters().snapshotsFailed, 0);
  },
);

t.test('a receiver that refuses a snapshot fails the sender with its code', async (t) => {
  const [a, b] = await pair(t, {
    snapshot: async () => {
      throw Object.assign(new Error('this node is read-only'), { code: 'READ_ONLY' });
    },
  });
  const err = await a.mesh
    .sendSnapshot(b.mesh.peerId, {
      groupId: 1,
      header: new Uint8Array(0),
      source: pattern(8 * MIB, MIB, { bytes: 0 }),
    })
    .catch((e) => e);
  t.ok(err instanceof RemoteError, String(err));
  t.equal(err.remoteCode, 'READ_ONLY');
  const none = await b.mesh
    .sendSnapshot(a.mesh.peerId, { groupId: 1, header: new Uint8Array(0), source: [new Uint8Array(10)] })
    .catch((e) => e);
  t.equal(none.remoteCode, 'UNAVAILABLE', 'a node without a snapshot handler refuses');
  t.equal(a.mesh.counters().snapshotsFailed, 2, 'the refused send, and the refused receive');
  t.equal(b.mesh.counters().snapshotsFailed, 2);
});
