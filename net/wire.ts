// Byte-level building blocks of every net/ wire format: a growable writer and a strict reader.

import { MalformedFrameError } from './errors.js';

const TEXT_ENCODER = new TextEncoder();
const TEXT_DECODER = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

const STRING_CACHE_ENTRIES = 4096;
const STRING_CACHE = new Map<string, Uint8Array>();

/** The largest varint: 2^53 - 1 needs 8 bytes of 7 bits. */
const MAX_VARINT_BYTES = 8;

/** Appends big-endian fixed ints, unsigned LEB128 varints (up to 2^53 - 1) and bytes. */
export class Writer {
  private buffer: Uint8Array;
  private view: DataView;
  private offset = 0;

  constructor(initialBytes = 256) {
    this.buffer = new Uint8Array(Math.max(16, initialBytes));
    this.view = new DataView(this.buffer.buffer);
  }

  get length(): number {
    return this.offset;
  }

  uint8(value: number): this {
    this.reserve(1);
    this.buffer[this.offset++] = value;
    return this;
  }

  uint32(value: number): this {
    this.reserve(4);
    this.view.setUint32(this.offset, value);
    this.offset += 4;
    return this;
  }

  /** Overwrites four bytes already written (a length prefix reserved earlier). */
  patchUint32(at: number, value: number): void {
    if (at < 0 || at + 4 > this.offset)
      throw new RangeError(`patch at ${at} outside the ${this.offset} written bytes`);
    this.view.setUint32(at, value);
  }

  varint(value: number): this {
    if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`varint out of range: ${value}`);
    this.reserve(MAX_VARINT_BYTES);
    const buffer = this.buffer;
    let offset = this.offset;
    let rest = value;
    while (rest > 0x7fffffff) {
      buffer[offset++] = (rest % 0x80) | 0x80;
      rest = Math.floor(rest / 0x80);
    }
    while (rest >= 0x80) {
      buffer[offset++] = (rest & 0x7f) | 0x80;
      rest >>>= 7;
    }
    buffer[offset++] = rest;
    this.offset = offset;
    return this;
  }

  raw(bytes: Uint8Array): this {
    this.reserve(bytes.length);
    this.buffer.set(bytes, this.offset);
    this.offset += bytes.length;
    return this;
  }

  /** A varint length followed by the bytes. */
  bytes(bytes: Uint8Array): this {
    return this.varint(bytes.length).raw(bytes);
  }

  /** A varint byte length followed by the UTF-8 encoding. */
  string(value: string): this {
    return this.bytes(TEXT_ENCODER.encode(value));
  }

  /**
   * Like string(), for the few strings written again and again (node ids): their encodings are
   * cached (at most STRING_CACHE_ENTRIES; the cache is emptied when full).
   */
  internedString(value: string): this {
    let encoded = STRING_CACHE.get(value);
    if (encoded === undefined) {
      if (STRING_CACHE.size >= STRING_CACHE_ENTRIES) STRING_CACHE.clear();
      encoded = TEXT_ENCODER.encode(value);
      STRING_CACHE.set(value, encoded);
    }
    return this.bytes(encoded);
  }

  /** The written bytes; a view of the internal buffer, valid until the next write. */
  finish(): Uint8Array {
    return this.buffer.subarray(0, this.offset);
  }

  private reserve(bytes: number): void {
    const needed = this.offset + bytes;
    if (needed <= this.buffer.length) return;
    let size = this.buffer.length * 2;
    while (size < needed) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buffer.subarray(0, this.offset));
    this.buffer = next;
    this.view = new DataView(next.buffer);
  }
}

/**
 * Reads what Writer wrote, refusing anything out of bounds with MalformedFrameError: a read
 * past the end, a varint longer than 8 bytes or above 2^53 - 1, invalid UTF-8.
 */
export class Reader {
  private readonly bytes: Uint8Array;
  private readonly view: DataView;
  private offset: number;

  constructor(bytes: Uint8Array, offset = 0) {
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.offset = offset;
  }

  get remaining(): number {
    return this.bytes.length - this.offset;
  }

  get position(): number {
    return this.offset;
  }

  uint8(what: string): number {
    if (this.offset >= this.bytes.length) throw new MalformedFrameError(`truncated at ${what}`);
    return this.bytes[this.offset++]!;
  }

  uint32(what: string): number {
    if (this.offset + 4 > this.bytes.length) throw new MalformedFrameError(`truncated at ${what}`);
    const value = this.view.getUint32(this.offset);
    this.offset += 4;
    return value;
  }

  varint(what: string): number {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < MAX_VARINT_BYTES; i++) {
      if (this.offset >= this.bytes.length) throw new MalformedFrameError(`truncated at ${what}`);
      const byte = this.bytes[this.offset++]!;
      value += (byte & 0x7f) * scale;
      if ((byte & 0x80) === 0) {
        if (value > Number.MAX_SAFE_INTEGER) throw new MalformedFrameError(`${what} exceeds 2^53 - 1`);
        return value;
      }
      scale *= 0x80;
    }
    throw new MalformedFrameError(`${what} is a varint longer than ${MAX_VARINT_BYTES} bytes`);
  }

  /** A varint that must lie in [min, max]. */
  varintIn(what: string, min: number, max: number): number {
    const value = this.varint(what);
    if (value < min || value > max)
      throw new MalformedFrameError(`${what} ${value} outside [${min}, ${max}]`);
    return value;
  }

  /** `length` raw bytes: a view of the reader's buffer, not a copy. */
  raw(what: string, length: number): Uint8Array {
    if (length > this.bytes.length - this.offset) {
      throw new MalformedFrameError(`${what} of ${length} bytes runs past the end of the frame`);
    }
    const out = this.bytes.subarray(this.offset, this.offset + length);
    this.offset += length;
    return out;
  }

  /** A varint length (at most maxBytes) followed by that many bytes, as a view. */
  bytesField(what: string, maxBytes: number): Uint8Array {
    const length = this.varint(what);
    if (length > maxBytes) throw new MalformedFrameError(`${what} of ${length} bytes exceeds ${maxBytes}`);
    return this.raw(what, length);
  }

  /** A varint byte length (at most maxBytes) followed by valid UTF-8. */
  string(what: string, maxBytes: number): string {
    const length = this.varint(what);
    if (length > maxBytes) throw new MalformedFrameError(`${what} of ${length} bytes exceeds ${maxBytes}`);
    if (length > this.bytes.length - this.offset) {
      throw new MalformedFrameError(`${what} of ${length} bytes runs past the end of the frame`);
    }
    const view = this.bytes.subarray(this.offset, this.offset + length);
    this.offset += length;
    try {
      return TEXT_DECODER.decode(view);
    } catch {
      throw new MalformedFrameError(`${what} is not valid UTF-8`);
    }
  }

  /** Whether every byte has been read (an optional trailing field is absent). */
  atEnd(): boolean {
    return this.offset === this.bytes.length;
  }

  /** Refuses trailing bytes: a frame must be consumed exactly. */
  expectEnd(what: string): void {
    if (this.offset !== this.bytes.length) {
      throw new MalformedFrameError(`${this.bytes.length - this.offset} trailing bytes after ${what}`);
    }
  }
}

/**
 * A copy of `bytes` in a fresh plain Uint8Array. Not `bytes.slice()`: on a Node Buffer (which
 * libp2p hands out) slice() returns a view, not a copy.
 */
export function copyBytes(bytes: Uint8Array, start = 0, end = bytes.length): Uint8Array {
  const out = new Uint8Array(Math.max(0, end - start));
  out.set(bytes.subarray(start, end));
  return out;
}

/** Runs a decoder so that only MalformedFrameError can escape: anything else becomes one. */
export function decodeStrictly<T>(what: string, decode: () => T): T {
  try {
    return decode();
  } catch (err) {
    if (err instanceof MalformedFrameError) throw err;
    throw new MalformedFrameError(`${what}: ${err instanceof Error ? err.message : String(err)}`);
  }
}
