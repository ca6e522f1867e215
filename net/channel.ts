// A libp2p stream carrying length-prefixed frames: bounded reads, bounded writes, one logged close reason.

import type { Stream } from '@libp2p/interface';
import { describeError, FrameTooLargeError, MalformedFrameError, NetError } from './errors.js';
import { FrameDecoder } from './framing.js';
import type { Logger } from './log.js';

/** Counters a channel bumps; shared by all channels of a mesh. */
export interface ChannelCounters {
  framesReceived: number;
  framesSent: number;
  bytesReceived: number;
  bytesSent: number;
  /** Frames refused as malformed or oversized; each closed its stream. */
  framesRejected: number;
}

export interface FramedChannelInit {
  readonly stream: Stream;
  /** The remote peer id, for logs. */
  readonly peer: string;
  /** The protocol's short name (raft, rpc, snapshot, hello), for logs. */
  readonly protocol: string;
  readonly maxFrameBytes: number;
  /** Above this many bytes in libp2p's write buffer, writers should wait (waitWritable). */
  readonly highWaterBytes: number;
  /** Bytes a paused stream may buffer before libp2p resets it. */
  readonly maxReadBufferBytes: number;
  readonly logger: Logger;
  readonly counters: ChannelCounters;
  /**
   * Called once per complete frame, in order. Throwing MalformedFrameError or
   * FrameTooLargeError rejects the frame: the stream is aborted with that reason. Any other
   * throw is a bug in the handler; it is logged and also closes the stream, never the node.
   */
  readonly onFrame: (payload: Uint8Array) => void;
  /** Called exactly once, when the stream is closed for any reason. */
  readonly onClose?: (reason: string) => void;
}

/**
 * Frames over one libp2p stream. Reading: a FrameDecoder bounded by maxFrameBytes; a bad frame
 * aborts the stream (logged as `frame_rejected`, counted). Writing: send() hands a frame to
 * libp2p at once; callers keep the write buffer bounded by awaiting waitWritable() whenever
 * writable is false. libp2p's own onDrain() is not used: in @libp2p/utils 7 its promise is
 * never re-armed after the first drain, so it stops applying backpressure.
 */
export class FramedChannel {
  readonly stream: Stream;
  readonly peer: string;
  readonly protocol: string;
  private readonly decoder: FrameDecoder;
  private readonly init: FramedChannelInit;
  private closeReason: string | undefined;

  constructor(init: FramedChannelInit) {
    this.init = init;
    this.stream = init.stream;
    this.peer = init.peer;
    this.protocol = init.protocol;
    this.decoder = new FrameDecoder(init.maxFrameBytes);
    // Hard stops behind the soft ones: libp2p resets a stream whose buffers pass these.
    this.stream.maxReadBufferLength = init.maxReadBufferBytes;
    this.stream.maxWriteBufferLength = init.highWaterBytes + 2 * (init.maxFrameBytes + 4);
    this.stream.addEventListener('message', (event) => this.onData(event.data));
    this.stream.addEventListener('close', (event) => {
      this.finish(event.error === undefined ? 'closed' : `closed: ${describeError(event.error)}`);
    });
    this.stream.addEventListener('remoteCloseWrite', () => {
      // The remote will send nothing more; a long-lived channel is over.
      this.close('remote closed its end').catch(() => {});
    });
    if (this.stream.status !== 'open') this.finish(`stream was ${this.stream.status} at start`);
  }

  /** False once the stream is closed or closing. */
  get open(): boolean {
    return this.closeReason === undefined;
  }

  /** Why the channel closed, or undefined while open. */
  get reason(): string | undefined {
    return this.closeReason;
  }

  /** Bytes handed to send() that libp2p has not yet passed to the muxer. */
  get bufferedBytes(): number {
    return this.stream.writeBufferLength;
  }

  /** True while the write buffer is at or below the high-water mark. */
  get writable(): boolean {
    return this.open && this.stream.writeBufferLength <= this.init.highWaterBytes;
  }

  /**
   * Hands one encoded frame (length prefix included) to the stream. Never blocks; throws
   * NetError UNAVAILABLE if the channel is closed.
   */
  send(frame: Uint8Array): void {
    if (!this.open) throw new NetError('UNAVAILABLE', `${this.protocol} stream to ${this.peer} is closed`);
    try {
      this.stream.send(frame);
    } catch (err) {
      this.abort(`send failed: ${describeError(err)}`);
      throw new NetError('UNAVAILABLE', `${this.protocol} stream to ${this.peer} failed`, { cause: err });
    }
    this.init.counters.framesSent++;
    this.init.counters.bytesSent += frame.length;
  }

  /**
   * Resolves once the write buffer is at or below half the high-water mark; rejects with
   * NetError UNAVAILABLE if the channel closes first, or with the signal's reason if aborted.
   */
  waitWritable(signal?: AbortSignal): Promise<void> {
    const lowWater = this.init.highWaterBytes / 2;
    if (!this.open) {
      return Promise.reject(new NetError('UNAVAILABLE', `${this.protocol} stream to ${this.peer} is closed`));
    }
    if (this.stream.writeBufferLength <= lowWater) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const stream = this.stream;
      const cleanup = () => {
        stream.removeEventListener('drain', onDrain);
        stream.removeEventListener('idle', check);
        stream.removeEventListener('close', onClose);
        signal?.removeEventListener('abort', onAbort);
      };
      const check = () => {
        if (stream.writeBufferLength > lowWater) return;
        cleanup();
        resolve();
      };
      // libp2p sends the queue in a microtask after 'drain'; look after it has run.
      const onDrain = () => queueMicrotask(check);
      const onClose = () => {
        cleanup();
        reject(
          new NetError('UNAVAILABLE', `${this.protocol} stream to ${this.peer} closed: ${this.closeReason}`),
        );
      };
      const onAbort = () => {
        cleanup();
        reject(signal?.reason ?? new NetError('ABORTED', 'aborted'));
      };
      stream.addEventListener('drain', onDrain);
      stream.addEventListener('idle', check);
      stream.addEventListener('close', onClose);
      signal?.addEventListener('abort', onAbort);
      if (signal?.aborted) onAbort();
    });
  }

  /** Stops reading until resume(): the muxer stops granting send window, so the sender waits. */
  pause(): void {
    if (this.open && this.stream.readStatus === 'readable') this.stream.pause();
  }

  resume(): void {
    if (!this.open || this.stream.readStatus !== 'paused') return;
    this.stream.resume();
    // libp2p's resume() hands over what was buffered while paused and only then tells the muxer
    // to grant window again; a consumer that paused once more during that hand-over would leave
    // the stream paused and the muxer granting, and the buffer would grow until libp2p resets
    // the stream (a 1 GiB snapshot to a joiner did). Tell the muxer again that we are paused.
    if (this.stream.readStatus === 'paused') {
      (this.stream as unknown as { sendPause?: () => void }).sendPause?.();
    }
  }

  /** Closes gracefully after what is buffered has gone out; the remote sees an orderly end. */
  async close(reason = 'closed locally'): Promise<void> {
    if (!this.open) return;
    this.finish(reason);
    try {
      await this.stream.close({ signal: AbortSignal.timeout(5_000) });
    } catch (err) {
      this.stream.abort(err as Error);
    }
  }

  /** Closes at once, discarding buffered data; the remote sees a reset. Logged with `reason`. */
  abort(reason: string): void {
    if (!this.open) return;
    this.finish(reason);
    this.stream.abort(new NetError('UNAVAILABLE', reason));
  }

  /** Aborts because the remote sent a bad frame: counted and logged at warn. */
  reject(err: MalformedFrameError | FrameTooLargeError): void {
    this.init.counters.framesRejected++;
    this.init.logger.warn('frame_rejected', {
      peer: this.peer,
      protocol: this.protocol,
      code: err.code,
      reason: err instanceof MalformedFrameError ? err.reason : err.message,
    });
    this.abort(`rejected frame: ${err.message}`);
  }

  private onData(data: Uint8Array | Iterable<Uint8Array>): void {
    if (!this.open) return;
    let frames: Uint8Array[];
    try {
      frames = this.decoder.push(data);
    } catch (err) {
      this.rejectOrFail(err);
      return;
    }
    for (const payload of frames) {
      if (!this.open) return;
      this.init.counters.framesReceived++;
      this.init.counters.bytesReceived += payload.length + 4;
      try {
        this.init.onFrame(payload);
      } catch (err) {
        this.rejectOrFail(err);
        return;
      }
    }
  }

  private rejectOrFail(err: unknown): void {
    if (err instanceof MalformedFrameError || err instanceof FrameTooLargeError) {
      this.reject(err);
      return;
    }
    this.init.logger.error('frame_handler_failed', {
      peer: this.peer,
      protocol: this.protocol,
      error: describeError(err),
    });
    this.abort(`frame handler failed: ${describeError(err)}`);
  }

  private finish(reason: string): void {
    if (this.closeReason !== undefined) return;
    this.closeReason = reason;
    this.init.logger.debug('stream_closed', { peer: this.peer, protocol: this.protocol, reason });
    try {
      this.init.onClose?.(reason);
    } catch (err) {
      this.init.logger.error('close_handler_failed', { peer: this.peer, error: describeError(err) });
    }
  }
}
