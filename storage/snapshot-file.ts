// The snapshot file: a checksummed, chunked stream of a group's state; also the backup format.

/*
 * Layout (integers big-endian):
 *
 *   file     := preamble header chunk* end
 *   preamble := magic[8] = 89 'C' 'N' 'C' 'L' 'S' 'N' 'P'    (0x89: a 7-bit transfer mangles it visibly)
 *               formatVersion:u32  headerLength:u32
 *   header   := headerJson[headerLength]  headerCrc:u32       crc32c(preamble ++ headerJson)
 *   chunk    := type:u8 = 1  seq:u32  payloadLength:u32  recordCount:u32  crc:u32  payload
 *               crc = crc32c(type ++ seq ++ payloadLength ++ recordCount ++ payload)
 *   payload  := (keyLength:u32 key valueLength:u32 value)*
 *   end      := type:u8 = 2  seq:u32  recordTotal:u64  payloadTotal:u64  crc:u32   and then end of file
 *
 * headerJson: { clusterId, group, index, term, membership, revision, createdAtMs }. createdAtMs
 * is wall clock, for operators only. Keys are state keys with their group and generation
 * stripped (keys.ts STATE_PREFIX_BYTES), so a file restores into any generation.
 *
 * What a reader refuses, and how it says so (SnapshotFileError codes): a wrong magic
 * (NOT_A_SNAPSHOT); a formatVersion above ours (NEWER_FORMAT, checked before anything else
 * is parsed because a newer format may lay out the rest differently); a checksum, length,
 * sequence or count that does not match (CORRUPT); end of file before the end record
 * (TRUNCATED); bytes after it (CORRUPT). Sequence numbers and totals catch a dropped,
 * repeated or reordered chunk that its own checksum cannot.
 */

import { type FileHandle, open } from 'node:fs/promises';
import type { Membership } from '../raft/types.js';
import { isMembership } from './codec.js';
import { crc32c } from './crc32c.js';
import { SnapshotFileError } from './errors.js';
import { readU64, writeU64 } from './keys.js';

export const SNAPSHOT_FORMAT_VERSION = 1;

const MAGIC = Uint8Array.of(0x89, 0x43, 0x4e, 0x43, 0x4c, 0x53, 0x4e, 0x50);
const PREAMBLE_BYTES = 16;
const CHUNK_HEADER_BYTES = 17;
const END_BYTES = 1 + 4 + 8 + 8 + 4;
const CHUNK_TYPE = 1;
const END_TYPE = 2;
const HEADER_MAX_BYTES = 1024 * 1024;
/** The largest chunk payload a reader accepts: bounds the memory a hostile file can make us allocate. */
export const CHUNK_READ_MAX_BYTES = 512 * 1024 * 1024;

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

export interface SnapshotHeader {
  readonly clusterId: string;
  readonly group: number;
  /** The applied index the state is at, and its term. */
  readonly index: number;
  readonly term: number;
  /** The membership as of `index`. */
  readonly membership: Membership;
  /** The cluster revision as of `index`. */
  readonly revision: number;
  /** Wall clock when written; informational only. */
  readonly createdAtMs: number;
}

export interface SnapshotFileInfo {
  readonly header: SnapshotHeader;
  /** File size in bytes. */
  readonly bytes: number;
  readonly records: number;
  readonly chunks: number;
}

/**
 * Writes `records` (state key suffix, value) under `header` to a new file at `path` and
 * fsyncs it. The caller writes to a temporary name and renames (see GroupStorage), so a
 * crash never leaves a partial file under a snapshot's name.
 */
export async function writeSnapshotFile(
  path: string,
  header: SnapshotHeader,
  records: AsyncIterable<readonly [Uint8Array, Uint8Array]>,
  chunkBytes: number,
): Promise<SnapshotFileInfo> {
  const file = await open(path, 'wx');
  try {
    const writer = new ChunkWriter(file, chunkBytes);
    await writer.writeRaw(encodePreambleAndHeader(header));
    for await (const [key, value] of records) await writer.add(key, value);
    await writer.finish();
    await file.sync();
    return { header, bytes: writer.position, records: writer.recordTotal, chunks: writer.seq };
  } finally {
    await file.close();
  }
}

function encodePreambleAndHeader(header: SnapshotHeader): Uint8Array {
  return encodeHeaderBlock(SNAPSHOT_FORMAT_VERSION, header);
}

/**
 * @internal The preamble and checksummed JSON header a snapshot file and a backup set
 * (backup-set.ts) both start with, for format `version`.
 */
export function encodeHeaderBlock(version: number, header: unknown): Uint8Array {
  const json = encoder.encode(JSON.stringify(header));
  if (json.length > HEADER_MAX_BYTES) {
    throw new RangeError(`a file header of ${json.length} bytes exceeds ${HEADER_MAX_BYTES}`);
  }
  const out = new Uint8Array(PREAMBLE_BYTES + json.length + 4);
  const view = new DataView(out.buffer);
  out.set(MAGIC, 0);
  view.setUint32(8, version);
  view.setUint32(12, json.length);
  out.set(json, PREAMBLE_BYTES);
  view.setUint32(PREAMBLE_BYTES + json.length, crc32c(out.subarray(0, PREAMBLE_BYTES + json.length)));
  return out;
}

class ChunkWriter {
  position = 0;
  seq = 0;
  recordTotal = 0;
  private payloadTotal = 0;
  private buffer: Buffer;
  private used = CHUNK_HEADER_BYTES;
  private count = 0;

  constructor(
    private readonly file: FileHandle,
    private readonly chunkBytes: number,
  ) {
    this.buffer = Buffer.allocUnsafe(CHUNK_HEADER_BYTES + chunkBytes);
  }

  async writeRaw(bytes: Uint8Array): Promise<void> {
    let written = 0;
    while (written < bytes.length) {
      const { bytesWritten } = await this.file.write(bytes, written, bytes.length - written, this.position);
      written += bytesWritten;
      this.position += bytesWritten;
    }
  }

  async add(key: Uint8Array, value: Uint8Array): Promise<void> {
    const recordBytes = 8 + key.length + value.length;
    if (this.count > 0 && this.used - CHUNK_HEADER_BYTES + recordBytes > this.chunkBytes) await this.flush();
    if (CHUNK_HEADER_BYTES + recordBytes > this.buffer.length) {
      this.buffer = Buffer.allocUnsafe(CHUNK_HEADER_BYTES + recordBytes); // One oversized record, alone.
    }
    this.buffer.writeUInt32BE(key.length, this.used);
    this.buffer.set(key, this.used + 4);
    this.buffer.writeUInt32BE(value.length, this.used + 4 + key.length);
    this.buffer.set(value, this.used + 8 + key.length);
    this.used += recordBytes;
    this.count++;
  }

  async flush(): Promise<void> {
    if (this.count === 0) return;
    const payloadLength = this.used - CHUNK_HEADER_BYTES;
    const b = this.buffer;
    b[0] = CHUNK_TYPE;
    b.writeUInt32BE(this.seq, 1);
    b.writeUInt32BE(payloadLength, 5);
    b.writeUInt32BE(this.count, 9);
    const crc = crc32c(b.subarray(CHUNK_HEADER_BYTES, this.used), crc32c(b.subarray(0, 13)));
    b.writeUInt32BE(crc, 13);
    await this.writeRaw(b.subarray(0, this.used));
    this.seq++;
    this.recordTotal += this.count;
    this.payloadTotal += payloadLength;
    this.count = 0;
    this.used = CHUNK_HEADER_BYTES;
    if (this.buffer.length > CHUNK_HEADER_BYTES + this.chunkBytes) {
      this.buffer = Buffer.allocUnsafe(CHUNK_HEADER_BYTES + this.chunkBytes);
    }
  }

  async finish(): Promise<void> {
    await this.flush();
    const end = new Uint8Array(END_BYTES);
    end[0] = END_TYPE;
    new DataView(end.buffer).setUint32(1, this.seq);
    writeU64(end, 5, this.recordTotal);
    writeU64(end, 13, this.payloadTotal);
    new DataView(end.buffer).setUint32(21, crc32c(end.subarray(0, 21)));
    await this.writeRaw(end);
  }
}

/**
 * An open snapshot file whose preamble and header are verified. Read its records with
 * chunks(): every chunk is verified before it is yielded, and the end record after the last,
 * so a consumer that writes records aside must not use them until chunks() has finished.
 */
export class SnapshotReader {
  private position: number;
  private finished = false;

  private constructor(
    private readonly file: FileHandle,
    readonly path: string,
    readonly header: SnapshotHeader,
    /** The file's size (a whole file), or where the section ends in it. */
    readonly size: number,
    headerEnd: number,
    private readonly sectioned: boolean,
  ) {
    this.position = headerEnd;
  }

  /**
   * Opens `path` and verifies magic, format version and header. Throws SnapshotFileError. With
   * `section`, reads the snapshot image of `length` bytes at `offset` (one group of a backup
   * set, backup-set.ts) and ends it there instead of at the end of the file.
   */
  static async open(path: string, section?: { offset: number; length: number }): Promise<SnapshotReader> {
    const file = await open(path, 'r');
    try {
      const size = section === undefined ? (await file.stat()).size : section.offset + section.length;
      const block = await readHeaderBlock(file, path, section?.offset ?? 0);
      if (block.version === BACKUP_SET_FORMAT_VERSION) {
        throw new SnapshotFileError(
          'SNAPSHOT_NOT_A_SNAPSHOT',
          path,
          'the file is a backup of several raft groups (a backup set), not one group snapshot',
        );
      }
      if (block.version > SNAPSHOT_FORMAT_VERSION) {
        throw new SnapshotFileError(
          'SNAPSHOT_NEWER_FORMAT',
          path,
          `format version ${block.version} is newer than ${SNAPSHOT_FORMAT_VERSION}, the newest this build reads`,
        );
      }
      const header = parseHeader(block.json, path);
      return new SnapshotReader(file, path, header, size, block.end, section !== undefined);
    } catch (error) {
      await file.close();
      throw error;
    }
  }

  /** Yields each chunk's records once its checksum holds; throws SnapshotFileError at the first problem. */
  async *chunks(): AsyncGenerator<[Uint8Array, Uint8Array][]> {
    let seq = 0;
    let recordTotal = 0;
    let payloadTotal = 0;
    for (;;) {
      const type = (await this.read(1, `chunk ${seq}`))[0]!;
      if (type === END_TYPE) {
        const end = await this.read(END_BYTES - 1, 'the end record');
        const whole = new Uint8Array(END_BYTES);
        whole[0] = END_TYPE;
        whole.set(end, 1);
        const view = new DataView(whole.buffer);
        if (crc32c(whole.subarray(0, 21)) !== view.getUint32(21))
          this.corrupt('end record checksum mismatch');
        if (view.getUint32(1) !== seq)
          this.corrupt(`end record counts ${view.getUint32(1)} chunks, read ${seq}`);
        if (readU64(whole, 5) !== recordTotal || readU64(whole, 13) !== payloadTotal) {
          this.corrupt(`end record totals ${readU64(whole, 5)} records, read ${recordTotal}`);
        }
        if (this.position !== this.size)
          this.corrupt(`${this.size - this.position} bytes after the end record`);
        this.finished = true;
        return;
      }
      if (type !== CHUNK_TYPE) this.corrupt(`unknown record type ${type} at byte ${this.position - 1}`);
      const head = await this.read(CHUNK_HEADER_BYTES - 1, `chunk ${seq}'s header`);
      const headView = new DataView(head.buffer, head.byteOffset, head.byteLength);
      const chunkSeq = headView.getUint32(0);
      const payloadLength = headView.getUint32(4);
      const recordCount = headView.getUint32(8);
      const crc = headView.getUint32(12);
      if (chunkSeq !== seq) this.corrupt(`chunk ${seq} is numbered ${chunkSeq}`);
      if (payloadLength > CHUNK_READ_MAX_BYTES) this.corrupt(`chunk ${seq} claims ${payloadLength} bytes`);
      const payload = await this.read(payloadLength, `chunk ${seq}'s payload`);
      const prefix = new Uint8Array(13);
      prefix[0] = CHUNK_TYPE;
      prefix.set(head.subarray(0, 12), 1);
      if (crc32c(payload, crc32c(prefix)) !== crc) this.corrupt(`chunk ${seq} checksum mismatch`);
      yield this.parseRecords(payload, recordCount, seq);
      seq++;
      recordTotal += recordCount;
      payloadTotal += payloadLength;
    }
  }

  /** Whether chunks() verified the end record. */
  get complete(): boolean {
    return this.finished;
  }

  close(): Promise<void> {
    return this.file.close();
  }

  private parseRecords(payload: Uint8Array, count: number, seq: number): [Uint8Array, Uint8Array][] {
    const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
    const records: [Uint8Array, Uint8Array][] = [];
    let at = 0;
    for (let i = 0; i < count; i++) {
      if (at + 4 > payload.length) this.corrupt(`chunk ${seq} record ${i} overruns the chunk`);
      const keyLength = view.getUint32(at);
      if (at + 8 + keyLength > payload.length) this.corrupt(`chunk ${seq} record ${i} overruns the chunk`);
      const key = payload.subarray(at + 4, at + 4 + keyLength);
      const valueLength = view.getUint32(at + 4 + keyLength);
      const valueAt = at + 8 + keyLength;
      if (valueAt + valueLength > payload.length) this.corrupt(`chunk ${seq} record ${i} overruns the chunk`);
      records.push([key, payload.subarray(valueAt, valueAt + valueLength)]);
      at = valueAt + valueLength;
    }
    if (at !== payload.length)
      this.corrupt(`chunk ${seq} has ${payload.length - at} bytes after its records`);
    return records;
  }

  private async read(length: number, what: string): Promise<Uint8Array> {
    if (this.position + length > this.size) {
      // Past a section's end (a whole file's end is found by the read itself).
      throw new SnapshotFileError(
        'SNAPSHOT_TRUNCATED',
        this.path,
        `the ${this.sectioned ? 'section' : 'file'} ends at byte ${this.size} inside ${what} (${this.position + length - this.size} bytes missing)`,
      );
    }
    const bytes = await readAt(this.file, this.path, this.position, length, what);
    this.position += length;
    return bytes;
  }

  private corrupt(detail: string): never {
    throw new SnapshotFileError('SNAPSHOT_CORRUPT', this.path, detail);
  }
}

/** The format version of a backup set (backup-set.ts), which shares the preamble; a snapshot image is version 1. */
export const BACKUP_SET_FORMAT_VERSION = 2;

/**
 * @internal Reads and checks the preamble and header at `offset`: the magic (NOT_A_SNAPSHOT),
 * a version this build knows (NEWER_FORMAT above BACKUP_SET_FORMAT_VERSION, CORRUPT for 0),
 * the header's length and checksum (CORRUPT), TRUNCATED if the file ends inside them. Returns
 * the version, the header's JSON bytes and where the header block ends.
 */
export async function readHeaderBlock(
  file: FileHandle,
  path: string,
  offset: number,
): Promise<{ version: number; json: Uint8Array; end: number }> {
  const preamble = await readAt(file, path, offset, PREAMBLE_BYTES, 'the preamble');
  if (!equalBytes(preamble.subarray(0, 8), MAGIC)) {
    throw new SnapshotFileError(
      'SNAPSHOT_NOT_A_SNAPSHOT',
      path,
      offset === 0
        ? 'the file does not start with the snapshot magic'
        : `no snapshot magic at byte ${offset}, where a group's section should start`,
    );
  }
  const view = new DataView(preamble.buffer, preamble.byteOffset, preamble.byteLength);
  const version = view.getUint32(8);
  const newest = Math.max(SNAPSHOT_FORMAT_VERSION, BACKUP_SET_FORMAT_VERSION);
  if (version > newest) {
    throw new SnapshotFileError(
      'SNAPSHOT_NEWER_FORMAT',
      path,
      `format version ${version} is newer than ${newest}, the newest this build reads`,
    );
  }
  if (version === 0) throw new SnapshotFileError('SNAPSHOT_CORRUPT', path, 'format version 0');
  const headerLength = view.getUint32(12);
  if (headerLength > HEADER_MAX_BYTES) {
    throw new SnapshotFileError(
      'SNAPSHOT_CORRUPT',
      path,
      `header length ${headerLength} exceeds ${HEADER_MAX_BYTES}`,
    );
  }
  const rest = await readAt(file, path, offset + PREAMBLE_BYTES, headerLength + 4, 'the header');
  const json = rest.subarray(0, headerLength);
  const expected = new DataView(rest.buffer, rest.byteOffset + headerLength, 4).getUint32(0);
  if (crc32c(json, crc32c(preamble)) !== expected) {
    throw new SnapshotFileError('SNAPSHOT_CORRUPT', path, 'header checksum mismatch');
  }
  return { version, json, end: offset + PREAMBLE_BYTES + headerLength + 4 };
}

async function readAt(
  file: FileHandle,
  path: string,
  position: number,
  length: number,
  what: string,
): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  let filled = 0;
  while (filled < length) {
    const { bytesRead } = await file.read(out, filled, length - filled, position + filled);
    if (bytesRead === 0) {
      throw new SnapshotFileError(
        'SNAPSHOT_TRUNCATED',
        path,
        `the file ends at byte ${position + filled} inside ${what} (${length - filled} bytes missing)`,
      );
    }
    filled += bytesRead;
  }
  return out;
}

function parseHeader(json: Uint8Array, path: string): SnapshotHeader {
  let header: Partial<SnapshotHeader>;
  try {
    header = JSON.parse(decoder.decode(json)) as Partial<SnapshotHeader>;
  } catch {
    throw new SnapshotFileError('SNAPSHOT_CORRUPT', path, 'the header is not JSON');
  }
  const count = (value: unknown): boolean => Number.isSafeInteger(value) && (value as number) >= 0;
  if (
    typeof header !== 'object' ||
    header === null ||
    typeof header.clusterId !== 'string' ||
    !count(header.group) ||
    !count(header.index) ||
    !count(header.term) ||
    !count(header.revision) ||
    typeof header.createdAtMs !== 'number' ||
    !isMembership(header.membership)
  ) {
    throw new SnapshotFileError(
      'SNAPSHOT_CORRUPT',
      path,
      'the header lacks a field or has one of the wrong type',
    );
  }
  return header as SnapshotHeader;
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}
