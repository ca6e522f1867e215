// The raft batch codec and the frame decoder: round trips, limits, and fuzzing with random and cut input.

import t from 'tap';
import {
  BATCH_HEADER_BYTES_MAX,
  DEFAULT_RAFT_CODEC_LIMITS,
  decodeRaftBatch,
  encodeRaftBatch,
  messageBytesMax,
  nodeIdBytesMax,
} from '../../net/codec.js';
import { FrameTooLargeError, MalformedFrameError } from '../../net/errors.js';
import { FrameDecoder, FrameKind, frame, LENGTH_PREFIX_BYTES } from '../../net/framing.js';
import { Reader, Writer } from '../../net/wire.js';
import { type Entry, EntryType, type Message, MessageType, message } from '../../raft/types.js';
import { seededRandom } from './helpers.js';

const MAX = 16 * 1024 * 1024;

function entry(index: number, bytes: number, term = 3, type = EntryType.Normal): Entry {
  const data = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) data[i] = (index * 31 + i) & 0xff;
  return { term, index, type, data };
}

/** One of every message type, with every optional field exercised somewhere. */
function sampleMessages(): Message[] {
  const out: Message[] = [];
  for (let type = 0; type <= MessageType.SnapshotStatus; type++) {
    out.push(
      message({ type, from: 'n1', to: 'n2', term: type + 1, logTerm: type, index: 1000 + type, commit: 7 }),
    );
  }
  out.push(
    message({
      type: MessageType.Append,
      from: 'n1',
      to: 'n3',
      term: 2 ** 40,
      logTerm: 2 ** 40 - 1,
      index: Number.MAX_SAFE_INTEGER - 10,
      commit: Number.MAX_SAFE_INTEGER - 20,
      entries: [entry(1, 0), entry(2, 1), entry(3, 300, 9, EntryType.MembershipChange), entry(4, 70_000)],
    }),
    message({
      type: MessageType.AppendResponse,
      from: 'n3',
      to: 'n1',
      term: 5,
      index: 99,
      reject: true,
      rejectHint: 42,
      logTerm: 4,
    }),
    message({ type: MessageType.Heartbeat, from: 'n1', to: 'n2', context: new Uint8Array([1, 2, 3]) }),
    // A commit notice: an empty append the follower answers only if it rejects it.
    message({
      type: MessageType.Append,
      from: 'n1',
      to: 'n2',
      term: 3,
      index: 9,
      logTerm: 3,
      commit: 9,
      replyOnlyOnReject: true,
    }),
    // Quiescence: the leader's last heartbeat and the follower's answer.
    message({ type: MessageType.Heartbeat, from: 'n1', to: 'n3', term: 5, commit: 12, quiesce: true }),
    message({ type: MessageType.HeartbeatResponse, from: 'n3', to: 'n1', term: 5, quiesce: true }),
    message({ type: MessageType.ReadIndex, from: 'é節🙂', to: '', context: new Uint8Array(0) }),
    message({
      type: MessageType.Snapshot,
      from: 'n1',
      to: 'n4',
      term: 8,
      snapshot: {
        metadata: { index: 500, term: 7, membership: { voters: ['n1', 'n2', 'n3'], learners: ['n4'] } },
        data: new Uint8Array([9, 8, 7, 6]),
      },
    }),
  );
  return out;
}

/** Compares decoded messages field by field (bytes by value). */
function normalise(messages: readonly Message[]): unknown[] {
  return messages.map((m) => ({
    ...m,
    entries: m.entries.map((e) => ({ ...e, data: [...e.data] })),
    context: m.context === undefined ? undefined : [...m.context],
    snapshot:
      m.snapshot === undefined ? undefined : { metadata: m.snapshot.metadata, data: [...m.snapshot.data] },
  }));
}

function payloadOf(encoded: Uint8Array): Uint8Array {
  return encoded.subarray(LENGTH_PREFIX_BYTES);
}

t.test('a batch round-trips every message type, every field, and extreme values', async (t) => {
  const messages = sampleMessages();
  const encoded = encodeRaftBatch(0xffff_ffff, messages, MAX);
  t.equal(
    new DataView(encoded.buffer, encoded.byteOffset).getUint32(0),
    encoded.length - LENGTH_PREFIX_BYTES,
  );
  const decoded = decodeRaftBatch(payloadOf(encoded));
  t.equal(decoded.groupId, 0xffff_ffff);
  t.same(normalise(decoded.messages), normalise(messages));
  t.equal(decoded.messages[0]!.context, undefined, 'absent optional fields stay absent');
  t.equal(decoded.messages[0]!.replyOnlyOnReject, undefined);
  t.equal(
    decoded.messages.filter((m) => m.replyOnlyOnReject === true).length,
    1,
    'the reply-only-on-reject flag round-trips',
  );
  t.equal(decoded.messages.filter((m) => m.quiesce === true).length, 2, 'so does the quiesce flag');
  t.equal(decoded.messages[0]!.quiesce, undefined);
});

t.test('node ids are written once per frame, so a big batch pays for them once', async (t) => {
  const from = '12D3KooWCuv1ih34VKCsiaLQ7rDNRgHaR7bErtYmSkeDffYz68sb';
  const to = '12D3KooWK58UZ7PPEPESoGBFhg9DbQkhNzQYiZBhFptuAZz9P8j7';
  const heartbeats = Array.from({ length: 100 }, () =>
    message({ type: MessageType.Heartbeat, from, to, term: 7, commit: 999 }),
  );
  const encoded = encodeRaftBatch(1, heartbeats, MAX);
  t.ok(
    encoded.length < 2 * (from.length + to.length) + 100 * 14,
    `100 heartbeats in ${encoded.length} bytes`,
  );
});

t.test('decoded byte fields do not alias the input buffer', async (t) => {
  const encoded = encodeRaftBatch(
    1,
    [message({ type: MessageType.Append, from: 'a', to: 'b', entries: [entry(1, 8)] })],
    MAX,
  );
  const payload = payloadOf(encoded);
  const decoded = decodeRaftBatch(payload);
  const before = [...decoded.messages[0]!.entries[0]!.data];
  payload.fill(0xee);
  t.same([...decoded.messages[0]!.entries[0]!.data], before);
});

t.test(
  'the size estimate bounds the real encoding, so the batcher never builds an oversized frame',
  async (t) => {
    for (const m of sampleMessages()) {
      const encoded = encodeRaftBatch(5, [m], MAX);
      const bound =
        BATCH_HEADER_BYTES_MAX + messageBytesMax(m) + nodeIdBytesMax(m.from) + nodeIdBytesMax(m.to) + 64;
      t.ok(encoded.length <= bound, `type ${m.type}: ${encoded.length} <= ${bound}`);
    }
  },
);

t.test('encoding refuses a frame over the limit', async (t) => {
  const big = message({ type: MessageType.Append, from: 'a', to: 'b', entries: [entry(1, 10_000)] });
  t.throws(() => encodeRaftBatch(1, [big], 4096), FrameTooLargeError);
});

t.test('decoding refuses input over the codec limits with MalformedFrameError', async (t) => {
  const messages = Array.from({ length: 10 }, () =>
    message({ type: MessageType.Heartbeat, from: 'a', to: 'b' }),
  );
  const payload = payloadOf(encodeRaftBatch(70, messages, MAX));
  t.throws(
    () => decodeRaftBatch(payload, { ...DEFAULT_RAFT_CODEC_LIMITS, maxMessagesPerFrame: 9 }),
    MalformedFrameError,
  );
  t.throws(
    () => decodeRaftBatch(payload, { ...DEFAULT_RAFT_CODEC_LIMITS, maxGroupId: 69 }),
    MalformedFrameError,
  );
  const longId = payloadOf(
    encodeRaftBatch(1, [message({ type: MessageType.Heartbeat, from: 'x'.repeat(300), to: 'b' })], MAX),
  );
  t.throws(() => decodeRaftBatch(longId), MalformedFrameError);
});

t.test('decoding refuses structurally wrong frames with a reason', async (t) => {
  const cases: [string, Uint8Array][] = [
    ['empty', new Uint8Array(0)],
    ['wrong kind', new Uint8Array([FrameKind.RpcRequest, 0, 0, 1])],
    ['zero messages', new Writer().uint8(FrameKind.RaftBatch).varint(1).varint(0).varint(0).finish()],
    [
      'unknown message type',
      new Writer().uint8(FrameKind.RaftBatch).varint(1).varint(1).string('a').varint(1).uint8(99).finish(),
    ],
    [
      'id outside the table',
      new Writer()
        .uint8(FrameKind.RaftBatch)
        .varint(1)
        .varint(1)
        .string('a')
        .varint(1)
        .uint8(9)
        .varint(5)
        .finish(),
    ],
    [
      'varint longer than 8 bytes',
      new Writer()
        .uint8(FrameKind.RaftBatch)
        .raw(new Uint8Array([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 1]))
        .finish(),
    ],
    [
      'invalid UTF-8 node id',
      new Writer()
        .uint8(FrameKind.RaftBatch)
        .varint(1)
        .varint(1)
        .varint(2)
        .raw(new Uint8Array([0xc3, 0x28]))
        .finish(),
    ],
    [
      'huge count with no bytes behind it',
      new Writer()
        .uint8(FrameKind.RaftBatch)
        .varint(1)
        .varint(0)
        .varint(2 ** 40)
        .finish(),
    ],
  ];
  const valid = payloadOf(encodeRaftBatch(1, sampleMessages(), MAX));
  const trailing = new Uint8Array(valid.length + 1);
  trailing.set(valid);
  cases.push(['trailing byte', trailing]);
  for (const [name, bytes] of cases) {
    t.throws(() => decodeRaftBatch(bytes), MalformedFrameError, name);
  }
});

t.test('fuzz: random bytes, truncations and bit flips only ever raise MalformedFrameError', async (t) => {
  const random = seededRandom(0xc0de);
  const valid = payloadOf(encodeRaftBatch(3, sampleMessages(), MAX));
  let rejected = 0;
  let accepted = 0;
  const check = (bytes: Uint8Array) => {
    try {
      decodeRaftBatch(bytes);
      accepted++;
    } catch (err) {
      if (!(err instanceof MalformedFrameError)) throw err;
      rejected++;
    }
  };
  for (let i = 0; i < 3000; i++) {
    const bytes = new Uint8Array(Math.floor(random() * 200));
    for (let j = 0; j < bytes.length; j++) bytes[j] = Math.floor(random() * 256);
    if (bytes.length > 0 && random() < 0.5) bytes[0] = FrameKind.RaftBatch;
    check(bytes);
  }
  for (let cut = 0; cut < valid.length; cut += Math.max(1, Math.floor(valid.length / 2000))) {
    check(valid.subarray(0, cut));
  }
  for (let i = 0; i < 3000; i++) {
    const flipped = valid.slice();
    const at = Math.floor(random() * flipped.length);
    flipped[at] = flipped[at]! ^ (1 << Math.floor(random() * 8));
    check(flipped);
  }
  t.ok(rejected > 5000, `${rejected} rejected, ${accepted} decoded (bit flips in entry data decode fine)`);
});

t.test('the frame decoder reassembles frames split at every byte boundary', async (t) => {
  const payloads = [new Uint8Array([1, 2, 3]), new Uint8Array([4]), new Uint8Array(1000).fill(7)];
  const stream = new Uint8Array(payloads.reduce((n, p) => n + LENGTH_PREFIX_BYTES + p.length, 0));
  let offset = 0;
  for (const p of payloads) {
    stream.set(frame(p), offset);
    offset += LENGTH_PREFIX_BYTES + p.length;
  }
  for (const cut of [1, 2, 3, 4, 5, 7, 8, 9, 500, stream.length - 1]) {
    const decoder = new FrameDecoder(4096);
    const out = [...decoder.push(stream.subarray(0, cut)), ...decoder.push([stream.subarray(cut)])];
    t.same(
      out.map((p) => [...p]),
      payloads.map((p) => [...p]),
      `cut at ${cut}`,
    );
    t.equal(decoder.bufferedBytes, 0);
  }
  const byteByByte = new FrameDecoder(4096);
  const out: Uint8Array[] = [];
  for (let i = 0; i < stream.length; i++) out.push(...byteByByte.push(stream.subarray(i, i + 1)));
  t.equal(out.length, 3, 'one byte at a time');
});

t.test('the frame decoder refuses an oversized length at once, and an empty frame', async (t) => {
  const decoder = new FrameDecoder(1024);
  const prefix = new Uint8Array(4);
  new DataView(prefix.buffer).setUint32(0, 1025);
  t.throws(() => decoder.push(prefix), FrameTooLargeError, 'nothing of the body is needed to refuse');
  t.throws(() => decoder.push(new Uint8Array([1])), MalformedFrameError, 'unusable after an error');
  t.throws(() => new FrameDecoder(1024).push(new Uint8Array(4)), MalformedFrameError, 'empty frame');
});

t.test('the reader refuses varints above 2^53 - 1 and reads what the writer wrote', async (t) => {
  const values = [0, 1, 127, 128, 300, 2 ** 31 - 1, 2 ** 31, 2 ** 32, 2 ** 48 + 5, Number.MAX_SAFE_INTEGER];
  const writer = new Writer(4);
  for (const value of values) writer.varint(value);
  const reader = new Reader(writer.finish());
  for (const value of values) t.equal(reader.varint('v'), value);
  reader.expectEnd('values');
  const tooBig = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
  t.throws(() => new Reader(tooBig).varint('v'), MalformedFrameError);
  t.throws(() => new Writer().varint(-1), RangeError);
  t.throws(() => new Writer().varint(0.5), RangeError);
});
