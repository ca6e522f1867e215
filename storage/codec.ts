// Byte encodings of the values storage/ writes: log entries, raft's hard state and bounds, documents.

/*
 * Every value starts with a one-byte layout version so a later format can change a layout
 * and still read the old one. Log entries also carry a CRC-32C over their index, term, type
 * and payload: the engines checksum their blocks, but only our own checksum proves that the
 * bytes handed back are the entry written at that index (LevelDB does not verify block
 * checksums on reads unless asked, and a misplaced value would pass a block check).
 * Records written rarely or small (metadata, sessions) are JSON behind the version byte.
 */

import type { Entry, EntryType, HardState, Membership } from '../raft/types.js';
import { crc32c } from './crc32c.js';
import { StorageError } from './errors.js';
import { readU64, writeU64 } from './keys.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

const ENTRY_LAYOUT = 1;
const ENTRY_HEADER_BYTES = 1 + 1 + 8 + 4; // layout, type, term, crc
const HARD_STATE_LAYOUT = 1;
const LOG_BOUNDS_LAYOUT = 1;
const JSON_LAYOUT = 1;
const DOC_LAYOUT = 1;
const DOC_HEADER_BYTES = 1 + 8 + 8 + 8;

function entryChecksum(index: number, term: number, type: number, data: Uint8Array): number {
  const header = new Uint8Array(17);
  writeU64(header, 0, index);
  writeU64(header, 8, term);
  header[16] = type;
  return crc32c(data, crc32c(header));
}

/** [layout u8][type u8][term u64][crc32c u32][data]; the index is the key. */
export function encodeEntry(entry: Entry): Uint8Array {
  // Every header byte is written below; a Buffer, so the engine takes it without wrapping.
  const out = Buffer.allocUnsafeSlow(ENTRY_HEADER_BYTES + entry.data.length);
  out[0] = ENTRY_LAYOUT;
  out[1] = entry.type;
  writeU64(out, 2, entry.term);
  const crc = entryChecksum(entry.index, entry.term, entry.type, entry.data);
  new DataView(out.buffer, out.byteOffset, out.byteLength).setUint32(10, crc);
  out.set(entry.data, ENTRY_HEADER_BYTES);
  return out;
}

/** Decodes and verifies the entry stored at `index`; a mismatch is DATA_CORRUPT. */
export function decodeEntry(index: number, bytes: Uint8Array): Entry {
  if (bytes.length < ENTRY_HEADER_BYTES || bytes[0] !== ENTRY_LAYOUT) {
    throw new StorageError('DATA_CORRUPT', `log entry ${index}: unknown layout or short value`);
  }
  const type = bytes[1]! as EntryType;
  const term = readU64(bytes, 2);
  const crc = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(10);
  // A copy into a plain Uint8Array: engines hand out Buffers, whose slice() is a view.
  const data = new Uint8Array(bytes.subarray(ENTRY_HEADER_BYTES));
  if (entryChecksum(index, term, type, data) !== crc) {
    throw new StorageError('DATA_CORRUPT', `log entry ${index}: checksum mismatch`);
  }
  return { index, term, type, data };
}

/** The term of an encoded entry without decoding or verifying its payload. */
export function entryTerm(index: number, bytes: Uint8Array): number {
  if (bytes.length < ENTRY_HEADER_BYTES || bytes[0] !== ENTRY_LAYOUT) {
    throw new StorageError('DATA_CORRUPT', `log entry ${index}: unknown layout or short value`);
  }
  return readU64(bytes, 2);
}

/** [layout u8][term u64][commit u64][vote utf8]. */
export function encodeHardState(hardState: HardState): Uint8Array {
  const vote = encoder.encode(hardState.vote);
  const out = new Uint8Array(17 + vote.length);
  out[0] = HARD_STATE_LAYOUT;
  writeU64(out, 1, hardState.term);
  writeU64(out, 9, hardState.commit);
  out.set(vote, 17);
  return out;
}

export function decodeHardState(bytes: Uint8Array): HardState {
  if (bytes.length < 17 || bytes[0] !== HARD_STATE_LAYOUT) {
    throw new StorageError('DATA_CORRUPT', 'hard state: unknown layout or short value');
  }
  return { term: readU64(bytes, 1), vote: decodeUtf8(bytes.subarray(17), 'vote'), commit: readU64(bytes, 9) };
}

/** Where the log starts: entries after `index` are kept; `term` is the term at `index`. */
export interface LogBounds {
  readonly index: number;
  readonly term: number;
}

/** [layout u8][index u64][term u64]. */
export function encodeLogBounds(bounds: LogBounds): Uint8Array {
  const out = new Uint8Array(17);
  out[0] = LOG_BOUNDS_LAYOUT;
  writeU64(out, 1, bounds.index);
  writeU64(out, 9, bounds.term);
  return out;
}

export function decodeLogBounds(bytes: Uint8Array): LogBounds {
  if (bytes.length !== 17 || bytes[0] !== LOG_BOUNDS_LAYOUT) {
    throw new StorageError('DATA_CORRUPT', 'log bounds: unknown layout or wrong length');
  }
  return { index: readU64(bytes, 1), term: readU64(bytes, 9) };
}

/** [layout u8][JSON utf8]. */
export function encodeJson(value: unknown): Uint8Array {
  return encodeJsonText(JSON.stringify(value));
}

/** The same layout for JSON text the caller assembled. */
export function encodeJsonText(json: string): Uint8Array {
  const out = withUtf8(1, json);
  out[0] = JSON_LAYOUT;
  return out;
}

/**
 * `header` bytes for the caller to fill, then `text` as UTF-8, encoded in place: one allocation
 * and no copy (TextEncoder would make the text's array, then a copy after the header). A Buffer
 * of its own memory (not a slice of Node's shared pool, which a kept value would pin), so the
 * engine takes it without wrapping.
 */
function withUtf8(header: number, text: string): Buffer {
  const out = Buffer.allocUnsafeSlow(header + Buffer.byteLength(text, 'utf8'));
  out.write(text, header, 'utf8');
  return out;
}

export function decodeJson<T>(bytes: Uint8Array, what: string): T {
  if (bytes.length < 2 || bytes[0] !== JSON_LAYOUT) {
    throw new StorageError('DATA_CORRUPT', `${what}: unknown layout or short value`);
  }
  try {
    return JSON.parse(decoder.decode(bytes.subarray(1))) as T;
  } catch (error) {
    throw new StorageError('DATA_CORRUPT', `${what}: not JSON`, { cause: error });
  }
}

/** A stored document: its JSON text and its revisions. */
export interface StoredDoc {
  readonly createRevision: number;
  readonly modRevision: number;
  readonly version: number;
  /** The document as JSON text, exactly as stored. */
  readonly json: string;
}

/** [layout u8][createRevision u64][modRevision u64][version u64][JSON utf8]. */
export function encodeDoc(doc: StoredDoc): Uint8Array {
  const out = withUtf8(DOC_HEADER_BYTES, doc.json);
  out[0] = DOC_LAYOUT;
  writeU64(out, 1, doc.createRevision);
  writeU64(out, 9, doc.modRevision);
  writeU64(out, 17, doc.version);
  return out;
}

export function decodeDoc(bytes: Uint8Array): StoredDoc {
  if (bytes.length < DOC_HEADER_BYTES || bytes[0] !== DOC_LAYOUT) {
    throw new StorageError('DATA_CORRUPT', 'document: unknown layout or short value');
  }
  return {
    createRevision: readU64(bytes, 1),
    modRevision: readU64(bytes, 9),
    version: readU64(bytes, 17),
    json: decodeUtf8(bytes.subarray(DOC_HEADER_BYTES), 'document'),
  };
}

export function isMembership(value: unknown): value is Membership {
  if (typeof value !== 'object' || value === null) return false;
  const m = value as Record<string, unknown>;
  const ids = (list: unknown): boolean =>
    Array.isArray(list) && list.every((id) => typeof id === 'string' && id.length > 0);
  return ids(m.voters) && ids(m.learners);
}

function decodeUtf8(bytes: Uint8Array, what: string): string {
  try {
    return decoder.decode(bytes);
  } catch (error) {
    throw new StorageError('DATA_CORRUPT', `${what}: invalid UTF-8`, { cause: error });
  }
}

export function utf8(text: string): Uint8Array {
  return encoder.encode(text);
}

export function fromUtf8(bytes: Uint8Array): string {
  return decoder.decode(bytes);
}
