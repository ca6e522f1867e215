// Length-prefixed frames on a byte stream: every Conclave stream carries [u32 length][u8 kind][body].

import { FrameTooLargeError, MalformedFrameError } from './errors.js';

/** Bytes of the big-endian length prefix in front of every frame. */
export const LENGTH_PREFIX_BYTES = 4;

/** The first byte of every frame payload. Values are part of the wire format: never renumber. */
export enum FrameKind {
  RaftBatch = 1,
  RpcRequest = 2,
  RpcResponse = 3,
  RpcCancel = 4,
  SnapshotHeader = 5,
  SnapshotChunk = 6,
  SnapshotEnd = 7,
  SnapshotAck = 8,
  HelloInit = 9,
  HelloReply = 10,
  HelloProof = 11,
  HelloAccept = 12,
}

/** Prefixes `payload` (which starts with its kind byte) with its length. */
export function frame(payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(LENGTH_PREFIX_BYTES + payload.length);
  new DataView(out.buffer).setUint32(0, payload.length);
  out.set(payload, LENGTH_PREFIX_BYTES);
  return out;
}

/**
 * Splits a byte stream into frame payloads. Chunks go in with push(); complete payloads come
 * out in order. A declared length above maxFrameBytes throws FrameTooLargeError as soon as
 * the prefix arrives (nothing of the body is buffered), and an empty frame throws
 * MalformedFrameError; after a throw the decoder is unusable and the stream must be closed.
 * Payloads are zero-copy views when a frame lies within one chunk.
 */
export class FrameDecoder {
  private readonly maxFrameBytes: number;
  private chunks: Uint8Array[] = [];
  private buffered = 0;
  private expected = -1;
  private failed = false;

  constructor(maxFrameBytes: number) {
    if (!Number.isInteger(maxFrameBytes) || maxFrameBytes < 1) {
      throw new RangeError(`maxFrameBytes must be a positive integer, got ${maxFrameBytes}`);
    }
    this.maxFrameBytes = maxFrameBytes;
  }

  /** Bytes received but not yet returned as frames (at most one frame plus its prefix). */
  get bufferedBytes(): number {
    return this.buffered;
  }

  /** Adds bytes; returns the frames they complete (possibly none). */
  push(data: Uint8Array | Iterable<Uint8Array>): Uint8Array[] {
    if (this.failed) throw new MalformedFrameError('decoder used after a framing error');
    if (data instanceof Uint8Array) this.append(data);
    else for (const chunk of data) this.append(chunk);
    const frames: Uint8Array[] = [];
    try {
      for (;;) {
        if (this.expected < 0) {
          if (this.buffered < LENGTH_PREFIX_BYTES) break;
          const length = this.takeLength();
          this.expected = length;
          if (length === 0) throw new MalformedFrameError('empty frame');
          if (length > this.maxFrameBytes) throw new FrameTooLargeError('frame', length, this.maxFrameBytes);
        }
        if (this.buffered < this.expected) break;
        frames.push(this.take(this.expected));
        this.expected = -1;
      }
    } catch (err) {
      this.failed = true;
      this.chunks = [];
      this.buffered = 0;
      throw err;
    }
    return frames;
  }

  private append(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
  }

  /** Removes the big-endian u32 length prefix (at least four bytes are buffered), without allocating. */
  private takeLength(): number {
    const first = this.chunks[0]!;
    if (first.length >= LENGTH_PREFIX_BYTES) {
      const value = first[0]! * 0x1000000 + ((first[1]! << 16) | (first[2]! << 8) | first[3]!);
      if (first.length === LENGTH_PREFIX_BYTES) this.chunks.shift();
      else this.chunks[0] = first.subarray(LENGTH_PREFIX_BYTES);
      this.buffered -= LENGTH_PREFIX_BYTES;
      return value;
    }
    let value = 0;
    for (let i = 0; i < LENGTH_PREFIX_BYTES; i++) {
      const head = this.chunks[0]!;
      value = value * 256 + head[0]!;
      if (head.length === 1) this.chunks.shift();
      else this.chunks[0] = head.subarray(1);
    }
    this.buffered -= LENGTH_PREFIX_BYTES;
    return value;
  }

  /** Removes and returns the first `length` buffered bytes: a view if they lie in one chunk, else a copy. */
  private take(length: number): Uint8Array {
    const head = this.chunks[0]!;
    if (head.length >= length) return this.takeFromHead(head, length);
    const out = new Uint8Array(length);
    let filled = 0;
    while (filled < length) {
      const chunk = this.chunks[0]!;
      const n = Math.min(chunk.length, length - filled);
      out.set(chunk.subarray(0, n), filled);
      filled += n;
      if (n === chunk.length) this.chunks.shift();
      else this.chunks[0] = chunk.subarray(n);
    }
    this.buffered -= length;
    return out;
  }

  private takeFromHead(head: Uint8Array, length: number): Uint8Array {
    const out = head.subarray(0, length);
    if (length === head.length) this.chunks.shift();
    else this.chunks[0] = head.subarray(length);
    this.buffered -= length;
    return out;
  }
}
