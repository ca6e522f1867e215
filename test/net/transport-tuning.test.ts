// The two libp2p corrections: one transport write per encrypted message, yamux window updates only at half a window.

import { StreamState, YamuxStream } from '@chainsafe/libp2p-yamux/stream';
import type { AbortOptions } from '@libp2p/interface';
import { AbstractMessageStream, type SendResult } from '@libp2p/utils';
import t from 'tap';
import { Uint8ArrayList } from 'uint8arraylist';
import { silentLogger } from '../../net/log.js';
import { coalesceWrites, coalescingEncrypter, halfWindowUpdates } from '../../net/transport-tuning.js';

// A logger with the shape libp2p's streams call (a function with level methods), saying nothing.
const quiet = Object.assign(() => {}, {
  error: () => {},
  trace: () => {},
  enabled: false,
  newScope: () => quiet,
}) as never;

/** A transport connection that records the buffers handed to it, one entry per write. */
class RecordingConnection extends AbstractMessageStream {
  readonly writes: Uint8Array[][] = [];
  constructor() {
    super({ log: quiet, direction: 'outbound' });
  }
  sendData(data: Uint8ArrayList): SendResult {
    this.writes.push([...data]);
    return { sentBytes: data.byteLength, canSendMore: true };
  }
  sendReset(): void {}
  sendPause(): void {}
  sendResume(): void {}
  async close(_options?: AbortOptions): Promise<void> {}
}

t.test('a message sent as several buffers reaches the transport as one write', async (t) => {
  const plain = new RecordingConnection();
  plain.send(new Uint8ArrayList(Uint8Array.of(0, 3), Uint8Array.of(7, 8, 9)));
  t.equal(plain.writes[0]!.length, 2, 'without the correction: one transport write per buffer');

  const connection = coalesceWrites(new RecordingConnection());
  connection.send(new Uint8ArrayList(Uint8Array.of(0, 3), Uint8Array.of(7, 8, 9)));
  connection.send(Uint8Array.of(1, 2));
  t.equal(connection.writes.length, 2);
  t.same(
    connection.writes[0]!.map((b) => [...b]),
    [[0, 3, 7, 8, 9]],
    'the two buffers joined, bytes in order',
  );
  t.same(
    connection.writes[1]!.map((b) => [...b]),
    [[1, 2]],
  );
  t.equal(coalesceWrites(connection), connection, 'wrapping twice changes nothing');
  const before = connection.writes.length;
  connection.send(new Uint8ArrayList(Uint8Array.of(5), Uint8Array.of(6)));
  t.equal(connection.writes.length, before + 1);
  t.equal(connection.writes[before]!.length, 1, 'still one buffer after a second wrap');
});

t.test('the wrapped encrypter secures coalesced connections and keeps its identity', async (t) => {
  const seen: unknown[] = [];
  const encrypter = {
    protocol: '/test',
    secureInbound: async (connection: unknown) => {
      seen.push(connection);
      return { connection, remotePeer: 'p' };
    },
    secureOutbound: async (connection: unknown) => {
      seen.push(connection);
      return { connection, remotePeer: 'p' };
    },
  };
  const factory = coalescingEncrypter(() => encrypter as never);
  const wrapped = factory({});
  t.equal(wrapped, encrypter as never, 'the encrypter object itself (its symbols and protocol kept)');
  const inbound = new RecordingConnection();
  const outbound = new RecordingConnection();
  await wrapped.secureInbound(inbound);
  await wrapped.secureOutbound(outbound);
  t.same(seen, [inbound, outbound]);
  for (const connection of [inbound, outbound]) {
    connection.send(new Uint8ArrayList(Uint8Array.of(1), Uint8Array.of(2)));
    t.equal(connection.writes[0]!.length, 1, 'one buffer per write');
  }
});

interface Sent {
  readonly type: number;
  readonly flag: number;
  readonly length: number;
}

const WINDOW = 256 * 1024;
const WINDOW_UPDATE = 1;
const DATA = 0;

function yamuxStream(state: StreamState): { stream: YamuxStream; sent: Sent[] } {
  const sent: Sent[] = [];
  const stream = new YamuxStream({
    id: '1',
    streamId: 1,
    direction: 'inbound',
    log: quiet,
    state,
    initialStreamWindowSize: WINDOW,
    getRTT: () => -1,
    sendFrame: (header) => {
      sent.push({ type: header.type, flag: header.flag, length: header.length });
      return true;
    },
  });
  return { stream, sent };
}

/** A data frame as yamux's decoder hands it over (yamux 8 types it with its own uint8arraylist 2). */
function dataFrame(bytes: number): Parameters<YamuxStream['handleData']>[0] {
  return {
    header: { type: DATA, flag: 0, streamID: 1, length: bytes },
    data: new Uint8ArrayList(new Uint8Array(bytes)),
  } as never;
}

t.test('yamux sends a window update once half the window is consumed, not per frame', async (t) => {
  t.ok(halfWindowUpdates(silentLogger), 'the policy is installed');
  t.ok(halfWindowUpdates(silentLogger), 'installing again is harmless');

  const { stream, sent } = yamuxStream(StreamState.Established);
  stream.addEventListener('message', () => {});
  // 100 raft-sized frames of 1 KiB: 100 KiB, under half of the 256 KiB window.
  for (let i = 0; i < 100; i++) stream.handleData(dataFrame(1024));
  t.same(
    sent.filter((f) => f.type === WINDOW_UPDATE),
    [],
    'no update while more than half the window is left',
  );
  // 30 more: 130 KiB consumed, past half.
  for (let i = 0; i < 30; i++) stream.handleData(dataFrame(1024));
  const updates = sent.filter((f) => f.type === WINDOW_UPDATE);
  t.equal(updates.length, 1, 'one update when half the window is used');
  t.equal(
    updates[0]!.length,
    128 * 1024,
    'sent with the frame that reached half, returning what was consumed',
  );
  // The sender never ran short: it always had at least half a window left.
  for (let i = 0; i < 2000; i++) stream.handleData(dataFrame(1024));
  t.equal(
    sent.filter((f) => f.type === WINDOW_UPDATE).length,
    Math.floor(2130 / 128),
    'one update per half window, 2130 frames in all',
  );
});

t.test('an opening stream still acknowledges at once, and a paused one stays silent', async (t) => {
  halfWindowUpdates(silentLogger);
  const opening = yamuxStream(StreamState.SYNReceived);
  opening.stream.addEventListener('message', () => {});
  opening.stream.handleData(dataFrame(10));
  t.equal(opening.sent.length, 1, 'the first frame is answered');
  t.equal(opening.sent[0]!.type, WINDOW_UPDATE);
  t.ok((opening.sent[0]!.flag & 0x2) === 0x2, 'with the ACK flag that opens the stream');

  const paused = yamuxStream(StreamState.Established);
  paused.stream.addEventListener('message', () => {});
  paused.stream.sendPause();
  for (let i = 0; i < 200; i++) paused.stream.handleData(dataFrame(1024));
  t.equal(paused.sent.length, 0, 'a paused stream grants no window');
  paused.stream.sendResume();
  t.equal(paused.sent.length, 1, 'resuming grants what was consumed');
  t.equal(paused.sent[0]!.length, 200 * 1024);
});
