// The one definition of every key storage/ writes to the engine, and of the ranges scanned over them.

/*
 * Key layout. Engines order keys bytewise (memcmp), so every integer is a fixed-width
 * big-endian unsigned number and every variable-length part sits last or behind its length.
 * Everything a range scan needs is then one contiguous key range: a seek to its first key
 * and a read forward until its end, never a second seek.
 *
 *   key := 0x00 name:utf8                                  node-wide record (format, cluster id)
 *        | 0x01 group:u32 space:u8 rest                     a raft group's record
 *
 *   space 0x01 RAFT      rest := record:u8                  raft's durable state:
 *                          record 0x01 hard state, 0x02 log bounds (compaction point),
 *                          0x03 latest snapshot metadata
 *   space 0x02 LOG       rest := index:u64                  one log entry
 *   space 0x03 POINTER   rest := (empty)                    which state generation is current
 *   space 0x04 STATE     rest := generation:u32 kind:u8 body
 *                          kind 0x01 META     body := record:u8           applied index and term,
 *                                                        revision, membership, log time, history floor
 *                          kind 0x02 REALM    body := realm:utf8          a realm
 *                          kind 0x03 DOC      body := realmLength:u8 realm:utf8 key:utf8
 *                                                                        a document
 *                          kind 0x04 HISTORY  body := revision:u64 event:u32
 *                                                                        one change, for watch resume
 *                          kind 0x05 SESSION  body := session:u64        a client session (§6.3)
 *                          kind 0x06 ACCESS   body := 0x01               users, grants, the auth
 *                                                                        switch, definition version
 *                          kind 0x07 TOKEN    body := id:utf8            one token (its hash)
 *
 * Why these choices:
 * - The group id leads every group key, so one group's data is one range (dropping or
 *   streaming a group is one range operation) and many groups share an engine.
 * - Log keys are dense and fixed-width: entries(low, high) reads one contiguous range, and
 *   compacting a prefix is one range delete [LOG 0, LOG i+1).
 * - State lives under a generation number. Installing a snapshot writes the new state under
 *   generation g+1 beside the current one, then flips POINTER in one synced write; the old
 *   generation is range-deleted afterwards. Nothing is ever half-replaced.
 * - Documents carry their realm as length-prefixed bytes, so the keys of one realm are one range
 *   and a prefix listing within a realm is one range [prefix, prefixEnd(prefix)) with no
 *   realm name being a prefix of another's keys.
 * - History is keyed by revision, so "every change since revision r" is a range from r and
 *   dropping old history is a range delete below the floor. Events of one revision (a
 *   transaction) are numbered by `event`.
 * - META sorts first inside a generation, so a snapshot stream meets the applied index and
 *   membership before any data and can write its header from the same consistent view.
 */

import { invariant } from './errors.js';

const NODE_TAG = 0x00;
const GROUP_TAG = 0x01;

export const Space = { Raft: 0x01, Log: 0x02, Pointer: 0x03, State: 0x04 } as const;
export const RaftRecord = { HardState: 0x01, LogBounds: 0x02, Snapshot: 0x03 } as const;
export const StateKind = {
  Meta: 0x01,
  Realm: 0x02,
  Doc: 0x03,
  History: 0x04,
  Session: 0x05,
  Access: 0x06,
  Token: 0x07,
  /** Group 1's catalog of the other raft groups (one record). */
  Groups: 0x08,
} as const;
/** The largest state kind a snapshot may carry. */
export const LAST_STATE_KIND = StateKind.Groups;
export const MetaRecord = { Applied: 0x01 } as const;

export const MAX_GROUP_ID = 0xffff_ffff;
export const MAX_GENERATION = 0xffff_ffff;
/** Realm names are at most this many UTF-8 bytes (they are length-prefixed with one byte). */
export const MAX_REALM_BYTES = 64;

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/** A key: the engine stores and compares raw bytes. */
export type Key = Uint8Array;

function writeU32(out: Uint8Array, at: number, value: number): void {
  out[at] = value >>> 24;
  out[at + 1] = (value >>> 16) & 0xff;
  out[at + 2] = (value >>> 8) & 0xff;
  out[at + 3] = value & 0xff;
}

function readU32(bytes: Uint8Array, at: number): number {
  return ((bytes[at]! << 24) >>> 0) + (bytes[at + 1]! << 16) + (bytes[at + 2]! << 8) + bytes[at + 3]!;
}

/** Writes a safe non-negative integer as 8 big-endian bytes. */
export function writeU64(out: Uint8Array, at: number, value: number): void {
  invariant(
    Number.isSafeInteger(value) && value >= 0,
    () => `u64 key part must be a safe non-negative integer, got ${value}`,
  );
  writeU32(out, at, Math.floor(value / 0x1_0000_0000));
  writeU32(out, at + 4, value >>> 0);
}

export function readU64(bytes: Uint8Array, at: number): number {
  return readU32(bytes, at) * 0x1_0000_0000 + readU32(bytes, at + 4);
}

function groupPrefix(group: number, space: number, restBytes: number): Uint8Array {
  invariant(
    Number.isInteger(group) && group >= 1 && group <= MAX_GROUP_ID,
    () => `group id must be an integer in [1, ${MAX_GROUP_ID}], got ${group}`,
  );
  const out = new Uint8Array(6 + restBytes);
  out[0] = GROUP_TAG;
  writeU32(out, 1, group);
  out[5] = space;
  return out;
}

/** A node-wide record (format version, cluster id). */
export function nodeKey(name: string): Key {
  const bytes = encoder.encode(name);
  const out = new Uint8Array(1 + bytes.length);
  out[0] = NODE_TAG;
  out.set(bytes, 1);
  return out;
}

/** Every key of one group: [start, end). */
export function groupRange(group: number): [Key, Key] {
  const start = groupPrefix(group, 0, 0).subarray(0, 5);
  return [start, prefixEnd(start)];
}

/** The range holding the node-wide records and every group: all keys. */
export function groupIdsRange(): [Key, Key] {
  return [Uint8Array.of(GROUP_TAG), Uint8Array.of(GROUP_TAG + 1)];
}

/** The group id of a group key (one that starts with the group tag). */
export function groupOfKey(key: Key): number {
  invariant(key.length >= 5 && key[0] === GROUP_TAG, 'not a group key');
  return readU32(key, 1);
}

export function raftKey(group: number, record: number): Key {
  const out = groupPrefix(group, Space.Raft, 1);
  out[6] = record;
  return out;
}

export function logKey(group: number, index: number): Key {
  const out = groupPrefix(group, Space.Log, 8);
  writeU64(out, 6, index);
  return out;
}

/** The index of a log key. */
export function logKeyIndex(key: Key): number {
  return readU64(key, 6);
}

/** Log keys for indexes in [low, high). */
export function logRange(group: number, low: number, high: number): [Key, Key] {
  return [logKey(group, low), logKey(group, high)];
}

/** Every log key of the group, whatever its index. */
export function logRangeAll(group: number): [Key, Key] {
  const start = groupPrefix(group, Space.Log, 0);
  return [start, prefixEnd(start)];
}

export function pointerKey(group: number): Key {
  return groupPrefix(group, Space.Pointer, 0);
}

function stateKey(group: number, generation: number, kind: number, bodyBytes: number): Uint8Array {
  invariant(
    Number.isInteger(generation) && generation >= 0 && generation <= MAX_GENERATION,
    () => `generation must be an integer in [0, ${MAX_GENERATION}], got ${generation}`,
  );
  const out = groupPrefix(group, Space.State, 5 + bodyBytes);
  writeU32(out, 6, generation);
  out[10] = kind;
  return out;
}

/** Length of the prefix [tag group space generation] that snapshot streams strip from state keys. */
export const STATE_PREFIX_BYTES = 10;

/** Every key of one state generation. */
export function generationRange(group: number, generation: number): [Key, Key] {
  const start = stateKey(group, generation, 0, 0).subarray(0, STATE_PREFIX_BYTES);
  return [start, prefixEnd(start)];
}

/** Every state key of every generation other than `keep`: the two ranges around it. */
export function otherGenerationRanges(group: number, keep: number): [Key, Key][] {
  const all = groupPrefix(group, Space.State, 0);
  const [keepStart, keepEnd] = generationRange(group, keep);
  return [
    [all, keepStart],
    [keepEnd, prefixEnd(all)],
  ];
}

/** Re-roots a state key stripped to its suffix (kind and body) under `generation`. */
export function stateKeyFromSuffix(group: number, generation: number, suffix: Uint8Array): Key {
  invariant(suffix.length >= 1, 'empty state key suffix');
  const out = stateKey(group, generation, suffix[0]!, suffix.length - 1);
  out.set(suffix, STATE_PREFIX_BYTES);
  return out;
}

export function metaKey(group: number, generation: number, record: number): Key {
  const out = stateKey(group, generation, StateKind.Meta, 1);
  out[11] = record;
  return out;
}

export function realmKey(group: number, generation: number, realm: string): Key {
  const name = encoder.encode(realm);
  const out = stateKey(group, generation, StateKind.Realm, name.length);
  out.set(name, 11);
  return out;
}

export function realmRange(group: number, generation: number): [Key, Key] {
  const start = stateKey(group, generation, StateKind.Realm, 0);
  return [start, prefixEnd(start)];
}

export function realmOfKey(key: Key): string {
  return decoder.decode(key.subarray(11));
}

function docPrefix(group: number, generation: number, realm: string, keyPart: Uint8Array): Uint8Array {
  const name = encoder.encode(realm);
  invariant(
    name.length >= 1 && name.length <= MAX_REALM_BYTES,
    () => `realm name must be 1..${MAX_REALM_BYTES} bytes, got ${name.length}`,
  );
  const out = stateKey(group, generation, StateKind.Doc, 1 + name.length + keyPart.length);
  out[11] = name.length;
  out.set(name, 12);
  out.set(keyPart, 12 + name.length);
  return out;
}

export function docKey(group: number, generation: number, realm: string, key: string): Key {
  return docPrefix(group, generation, realm, encoder.encode(key));
}

/** The keys of `realm` that start with `prefix` (every key of the realm for ''). */
export function docRange(group: number, generation: number, realm: string, prefix: string): [Key, Key] {
  const start = docPrefix(group, generation, realm, encoder.encode(prefix));
  return [start, prefixEnd(start)];
}

/** The realm and document key of a document key. */
export function docOfKey(key: Key): { realm: string; key: string } {
  const length = key[11]!;
  return {
    realm: decoder.decode(key.subarray(12, 12 + length)),
    key: decoder.decode(key.subarray(12 + length)),
  };
}

export function historyKey(group: number, generation: number, revision: number, event: number): Key {
  const out = stateKey(group, generation, StateKind.History, 12);
  writeU64(out, 11, revision);
  writeU32(out, 19, event);
  return out;
}

/** History keys for revisions in [fromRevision, toRevision). */
export function historyRange(
  group: number,
  generation: number,
  fromRevision: number,
  toRevision: number,
): [Key, Key] {
  return [historyKey(group, generation, fromRevision, 0), historyKey(group, generation, toRevision, 0)];
}

export function historyKeyRevision(key: Key): number {
  return readU64(key, 11);
}

export function sessionKey(group: number, generation: number, session: number): Key {
  const out = stateKey(group, generation, StateKind.Session, 8);
  writeU64(out, 11, session);
  return out;
}

export function sessionRange(group: number, generation: number): [Key, Key] {
  const start = stateKey(group, generation, StateKind.Session, 0);
  return [start, prefixEnd(start)];
}

export function accessKey(group: number, generation: number): Key {
  const out = stateKey(group, generation, StateKind.Access, 1);
  out[11] = 0x01;
  return out;
}

/** Group 1's catalog of raft groups: one record. */
export function groupsKey(group: number, generation: number): Key {
  const out = stateKey(group, generation, StateKind.Groups, 1);
  out[11] = 0x01;
  return out;
}

export function tokenKey(group: number, generation: number, id: string): Key {
  const bytes = encoder.encode(id);
  const out = stateKey(group, generation, StateKind.Token, bytes.length);
  out.set(bytes, 11);
  return out;
}

export function tokenRange(group: number, generation: number): [Key, Key] {
  const start = stateKey(group, generation, StateKind.Token, 0);
  return [start, prefixEnd(start)];
}

/**
 * The smallest key greater than every key that starts with `prefix`: drop trailing 0xff bytes,
 * then add one to the last byte. A prefix of only 0xff bytes has no such key; that never
 * occurs here because every prefix starts with a tag byte below 0xff.
 */
export function prefixEnd(prefix: Uint8Array): Uint8Array {
  let end = prefix.length;
  while (end > 0 && prefix[end - 1] === 0xff) end--;
  invariant(end > 0, 'prefixEnd of an all-0xff prefix');
  const out = prefix.slice(0, end);
  out[end - 1]!++;
  return out;
}

/** Bytewise comparison, the order every engine keeps. */
export function compareKeys(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (a[i] !== b[i]) return a[i]! - b[i]!;
  }
  return a.length - b.length;
}
