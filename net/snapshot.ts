// Snapshot transfer: one stream per transfer, chunked, with backpressure both ways and an acknowledgement.
//
// Frames (after the kind byte), sender → receiver, then one back:
//   SnapshotHeader  groupId, header (opaque bytes: what src/ needs to place the snapshot)
//   SnapshotChunk   bytes (to the end of the frame), many
//   SnapshotEnd     totalBytes
//   SnapshotAck     u8 status; status 1: code, message     (receiver → sender)
// The receiver's consumer pulls chunks; while it lags by more than snapshotReceiveBufferBytes
// the stream is paused, yamux stops granting window, and the sender's writes wait. Integrity
// on the wire is Noise's AEAD; end-to-end integrity is the snapshot file's own checksum.

import type { Stream } from '@libp2p/interface';
import { type ChannelCounters, FramedChannel } from './channel.js';
import type { MeshLimits } from './config.js';
import { describeError, FrameTooLargeError, MalformedFrameError, NetError, RemoteError } from './errors.js';
import { FrameKind, LENGTH_PREFIX_BYTES } from './framing.js';
import type { Logger } from './log.js';
import { copyBytes, decodeStrictly, Reader, Writer } from './wire.js';

/** A snapshot arriving from a peer. Iterate `chunks` to the end before resolving the handler. */
export interface IncomingSnapshot {
  readonly from: string;
  readonly groupId: number;
  /** The sender's opaque header. */
  readonly header: Uint8Array;
  /**
   * The snapshot's bytes, in order. Throws NetError UNAVAILABLE if the stream breaks, TIMEOUT
   * if the sender stalls past snapshotIdleTimeoutMs, MALFORMED_FRAME if the sender's total does
   * not match what arrived. Iterable once.
   */
  readonly chunks: AsyncIterable<Uint8Array>;
}

/**
 * Receives one snapshot. Resolving acknowledges it (the sender's sendSnapshot resolves);
 * throwing (an Error with a string `code` passes the code on) fails the sender's call with
 * RemoteError. Resolving before `chunks` ended counts as a failure (INCOMPLETE).
 */
export type SnapshotHandler = (incoming: IncomingSnapshot) => Promise<void>;

export interface SnapshotCounters extends ChannelCounters {
  snapshotsSent: number;
  snapshotsReceived: number;
  snapshotsFailed: number;
  snapshotBytesSent: number;
  snapshotBytesReceived: number;
}

export interface SendSnapshotOptions {
  readonly groupId: number;
  readonly header: Uint8Array;
  /** The snapshot's bytes; any chunking, re-chunked to snapshotChunkBytes on the wire. */
  readonly source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>;
  readonly signal?: AbortSignal;
}

interface Shared {
  readonly limits: MeshLimits;
  readonly logger: Logger;
  readonly counters: SnapshotCounters;
}

const STATUS_OK = 0;
const STATUS_ERROR = 1;
const CODE_PATTERN = /^[A-Z][A-Z0-9_]{0,63}$/;

/**
 * Sends one snapshot over `stream` (opened by the caller on the snapshot protocol). Resolves
 * with the bytes sent once the receiver acknowledged; rejects with RemoteError (the receiver
 * refused), NetError TIMEOUT (no progress for snapshotIdleTimeoutMs), UNAVAILABLE (stream
 * lost) or the signal's reason. The stream is closed either way.
 */
export async function sendSnapshotOn(
  stream: Stream,
  peer: string,
  options: SendSnapshotOptions,
  shared: Shared,
): Promise<number> {
  const { limits, counters } = shared;
  if (options.header.length > limits.maxSnapshotHeaderBytes) {
    throw new FrameTooLargeError('snapshot header', options.header.length, limits.maxSnapshotHeaderBytes);
  }
  const idle = new IdleTimer(limits.snapshotIdleTimeoutMs, 'snapshot transfer');
  const signal = options.signal === undefined ? idle.signal : AbortSignal.any([options.signal, idle.signal]);
  const ack = deferred<void>();
  ack.promise.catch(() => {});
  let acked = false;
  const channel = new FramedChannel({
    stream,
    peer,
    protocol: 'snapshot',
    maxFrameBytes: limits.maxFrameBytes,
    highWaterBytes: limits.streamHighWaterBytes,
    maxReadBufferBytes: limits.maxStreamReadBufferBytes,
    logger: shared.logger,
    counters,
    onFrame: (payload) => {
      const result = decodeAck(payload);
      acked = true;
      if (result.ok) ack.resolve();
      else ack.reject(new RemoteError(result.code, result.message));
    },
    onClose: (reason) => {
      if (!acked)
        ack.reject(
          new NetError('UNAVAILABLE', `snapshot stream to ${peer} closed before the ack: ${reason}`),
        );
    },
  });
  let total = 0;
  try {
    channel.send(
      frameOf(
        new Writer(options.header.length + 32)
          .uint32(0)
          .uint8(FrameKind.SnapshotHeader)
          .varint(options.groupId)
          .bytes(options.header),
      ),
    );
    for await (const piece of options.source) {
      for (let offset = 0; offset < piece.length; offset += limits.snapshotChunkBytes) {
        signal.throwIfAborted();
        // An early answer is a refusal (overloaded, unwilling): stop sending, report it.
        if (acked) await ack.promise;
        const chunk = piece.subarray(offset, Math.min(piece.length, offset + limits.snapshotChunkBytes));
        total += chunk.length;
        if (total > limits.maxSnapshotBytes)
          throw new FrameTooLargeError('snapshot', total, limits.maxSnapshotBytes);
        const frame = new Uint8Array(LENGTH_PREFIX_BYTES + 1 + chunk.length);
        new DataView(frame.buffer).setUint32(0, 1 + chunk.length);
        frame[LENGTH_PREFIX_BYTES] = FrameKind.SnapshotChunk;
        frame.set(chunk, LENGTH_PREFIX_BYTES + 1);
        channel.send(frame);
        if (!channel.writable) await channel.waitWritable(signal);
        idle.touch();
      }
    }
    channel.send(frameOf(new Writer(16).uint32(0).uint8(FrameKind.SnapshotEnd).varint(total)));
    idle.touch();
    await raceSignal(ack.promise, signal);
    counters.snapshotsSent++;
    counters.snapshotBytesSent += total;
    await channel.close('snapshot sent');
    return total;
  } catch (err) {
    counters.snapshotsFailed++;
    channel.abort(`snapshot send failed: ${describeError(err)}`);
    // A write that failed because the receiver refused and closed reports the refusal.
    if (acked) await ack.promise;
    throw err;
  } finally {
    idle.stop();
  }
}

/**
 * Serves one inbound snapshot stream: decodes the header, hands an IncomingSnapshot to
 * `handler`, feeds it chunks with backpressure, and answers with the ack. Never throws.
 */
export async function receiveSnapshotOn(
  stream: Stream,
  peer: string,
  handler: SnapshotHandler | undefined,
  shared: Shared,
): Promise<void> {
  const { limits, counters, logger } = shared;
  const inbox = new ChunkInbox(limits.snapshotReceiveBufferBytes, limits.snapshotIdleTimeoutMs);
  const header = deferred<{ groupId: number; header: Uint8Array }>();
  header.promise.catch(() => {});
  const progress: { state: 'header' | 'chunks' | 'ended' } = { state: 'header' };
  let received = 0;
  const channel: FramedChannel = new FramedChannel({
    stream,
    peer,
    protocol: 'snapshot',
    maxFrameBytes: limits.maxFrameBytes,
    highWaterBytes: limits.streamHighWaterBytes,
    maxReadBufferBytes: limits.maxStreamReadBufferBytes,
    logger,
    counters,
    onFrame: (payload) => {
      const kind = payload[0];
      const state = progress.state;
      if (state === 'header') {
        if (kind !== FrameKind.SnapshotHeader)
          throw new MalformedFrameError(`snapshot stream began with kind ${kind}`);
        header.resolve(decodeHeader(payload, limits));
        progress.state = 'chunks';
      } else if (state === 'chunks' && kind === FrameKind.SnapshotChunk) {
        // A view, not a copy: the frame's buffer is this frame's alone (reassembled, or one
        // decrypted Noise message) and the consumer is about to write it out.
        const chunk = payload.subarray(1);
        received += chunk.length;
        if (received > limits.maxSnapshotBytes)
          throw new FrameTooLargeError('snapshot', received, limits.maxSnapshotBytes);
        if (inbox.push(chunk)) channel.pause();
      } else if (state === 'chunks' && kind === FrameKind.SnapshotEnd) {
        const total = decodeEnd(payload);
        if (total !== received)
          throw new MalformedFrameError(`snapshot end says ${total} bytes, ${received} arrived`);
        progress.state = 'ended';
        inbox.end();
      } else {
        throw new MalformedFrameError(`frame kind ${kind} in snapshot state ${state}`);
      }
    },
    onClose: (reason) => {
      const err = new NetError('UNAVAILABLE', `snapshot stream from ${peer} closed: ${reason}`);
      header.reject(err);
      inbox.fail(err);
    },
  });
  inbox.onLow = () => channel.resume();
  const answer = (status: { ok: true } | { ok: false; code: string; message: string }) => {
    const writer = new Writer(128)
      .uint32(0)
      .uint8(FrameKind.SnapshotAck)
      .uint8(status.ok ? STATUS_OK : STATUS_ERROR);
    if (!status.ok) writer.string(status.code).string(status.message.slice(0, 512));
    try {
      channel.send(frameOf(writer));
    } catch {
      // Closed: the sender sees the stream end without an ack.
    }
  };
  let first: { groupId: number; header: Uint8Array };
  try {
    first = await raceSignal(header.promise, AbortSignal.timeout(limits.snapshotIdleTimeoutMs));
  } catch (err) {
    counters.snapshotsFailed++;
    channel.abort(`no snapshot header: ${describeError(err)}`);
    return;
  }
  if (handler === undefined) {
    counters.snapshotsFailed++;
    answer({ ok: false, code: 'UNAVAILABLE', message: 'this node accepts no snapshots' });
    await channel.close('snapshot refused');
    return;
  }
  const incoming: IncomingSnapshot = {
    from: peer,
    groupId: first.groupId,
    header: first.header,
    chunks: inbox,
  };
  try {
    await handler(incoming);
    if (progress.state !== 'ended' || !inbox.drained) {
      throw new NetError('UNAVAILABLE', 'the snapshot handler returned before the end of the snapshot');
    }
    counters.snapshotsReceived++;
    counters.snapshotBytesReceived += received;
    answer({ ok: true });
    await channel.close('snapshot received');
  } catch (err) {
    counters.snapshotsFailed++;
    const code = (err as { code?: unknown } | null)?.code;
    const message = err instanceof Error ? err.message : String(err);
    answer({
      ok: false,
      code: typeof code === 'string' && CODE_PATTERN.test(code) ? code : 'INTERNAL',
      message,
    });
    logger.warn('snapshot_receive_failed', { peer, groupId: first.groupId, error: describeError(err) });
    await channel.close('snapshot failed');
  } finally {
    inbox.stop();
  }
}

/** Chunks between the stream and the consumer; says when to pause and when to resume. */
class ChunkInbox implements AsyncIterable<Uint8Array> {
  onLow: () => void = () => {};
  private readonly chunks: Uint8Array[] = [];
  private bytes = 0;
  private ended = false;
  private failure: Error | undefined;
  private waiter: (() => void) | undefined;
  private iterated = false;
  private readonly idle: IdleTimer;

  constructor(
    private readonly highWaterBytes: number,
    idleTimeoutMs: number,
  ) {
    this.idle = new IdleTimer(idleTimeoutMs, 'snapshot transfer');
    this.idle.signal.addEventListener('abort', () => this.fail(this.idle.signal.reason as Error));
  }

  /** True once everything was delivered to the consumer. */
  get drained(): boolean {
    return this.ended && this.chunks.length === 0;
  }

  /** Adds a chunk; returns true if the stream should pause. */
  push(chunk: Uint8Array): boolean {
    this.idle.touch();
    this.chunks.push(chunk);
    this.bytes += chunk.length;
    this.wake();
    return this.bytes > this.highWaterBytes;
  }

  end(): void {
    this.ended = true;
    this.idle.stop();
    this.wake();
  }

  fail(err: Error): void {
    if (this.ended || this.failure !== undefined) return;
    this.failure = err;
    this.idle.stop();
    this.wake();
  }

  stop(): void {
    this.idle.stop();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    if (this.iterated) throw new NetError('UNAVAILABLE', 'snapshot chunks can be iterated once');
    this.iterated = true;
    for (;;) {
      const chunk = this.chunks.shift();
      if (chunk !== undefined) {
        const wasHigh = this.bytes > this.highWaterBytes / 2;
        this.bytes -= chunk.length;
        if (wasHigh && this.bytes <= this.highWaterBytes / 2) this.onLow();
        yield chunk;
        continue;
      }
      if (this.failure !== undefined) throw this.failure;
      if (this.ended) return;
      await new Promise<void>((resolve) => {
        this.waiter = resolve;
      });
    }
  }

  private wake(): void {
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.();
  }
}

/** An AbortSignal that fires when touch() has not been called for `timeoutMs`. */
class IdleTimer {
  private readonly controller = new AbortController();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly timeoutMs: number,
    private readonly what: string,
  ) {
    this.touch();
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  touch(): void {
    if (this.controller.signal.aborted) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.controller.abort(
        new NetError('TIMEOUT', `${this.what} made no progress for ${this.timeoutMs} ms`),
      );
    }, this.timeoutMs);
    this.timer.unref();
  }

  stop(): void {
    clearTimeout(this.timer);
  }
}

function decodeHeader(payload: Uint8Array, limits: MeshLimits): { groupId: number; header: Uint8Array } {
  return decodeStrictly('snapshot header', () => {
    const reader = new Reader(payload, 1);
    const groupId = reader.varintIn('group id', 0, limits.maxGroupId);
    const header = copyBytes(reader.bytesField('header', limits.maxSnapshotHeaderBytes));
    reader.expectEnd('snapshot header');
    return { groupId, header };
  });
}

function decodeEnd(payload: Uint8Array): number {
  return decodeStrictly('snapshot end', () => {
    const reader = new Reader(payload, 1);
    const total = reader.varint('total bytes');
    reader.expectEnd('snapshot end');
    return total;
  });
}

function decodeAck(payload: Uint8Array): { ok: true } | { ok: false; code: string; message: string } {
  return decodeStrictly('snapshot ack', () => {
    const reader = new Reader(payload);
    const kind = reader.uint8('frame kind');
    if (kind !== FrameKind.SnapshotAck)
      throw new MalformedFrameError(`frame kind ${kind} where an ack belongs`);
    const status = reader.uint8('status');
    if (status === STATUS_OK) {
      reader.expectEnd('snapshot ack');
      return { ok: true as const };
    }
    if (status !== STATUS_ERROR) throw new MalformedFrameError(`unknown ack status ${status}`);
    const code = reader.string('error code', 64);
    const message = reader.string('error message', 1024);
    reader.expectEnd('snapshot ack');
    return { ok: false as const, code, message };
  });
}

function frameOf(writer: Writer): Uint8Array {
  writer.patchUint32(0, writer.length - LENGTH_PREFIX_BYTES);
  return writer.finish();
}

/** A promise with its resolve and reject exposed. */
function deferred<T>(): { promise: Promise<T>; resolve: (value: T) => void; reject: (err: Error) => void } {
  let resolve!: (value: T) => void;
  let reject!: (err: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Resolves or rejects with `promise`, or rejects with the signal's reason if it fires first. */
function raceSignal<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}
