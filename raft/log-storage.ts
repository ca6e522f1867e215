// The narrow, synchronous interface through which raft reads the durable log.

import type { Entry, HardState, Membership, Snapshot } from './types.js';

/**
 * The durable log as raft sees it. Raft only reads; the application writes what each Ready
 * says to persist and tells the storage about snapshots and compaction.
 *
 * Contract:
 * - Reads are synchronous: an implementation keeps the entries after its last compaction
 *   (or a bounded tail plus an index) in memory.
 * - `initialState().membership` is the membership as of the application's applied index
 *   (the `applied` raft config), i.e. including every change the application has applied.
 * - firstIndex() is one past the snapshot index; term(firstIndex() - 1) is the snapshot term.
 * - entries() and term() throw CompactedError below firstIndex() - 1 (entries: below
 *   firstIndex()) and UnavailableError above lastIndex().
 */
export interface LogStorage {
  initialState(): { hardState: HardState; membership: Membership };
  /** Entries in [low, high), at most `maxBytes` of payload but always at least one. */
  entries(low: number, high: number, maxBytes: number): Entry[];
  term(index: number): number;
  firstIndex(): number;
  lastIndex(): number;
  /** The most recent snapshot; raft sends it to a follower that is behind firstIndex(). */
  snapshot(): Snapshot;
}
