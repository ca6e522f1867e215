// An in-memory LogStorage: the twin of the RocksDB log store, for tests and the simulator.

import { CompactedError, invariant, UnavailableError } from './errors.js';
import type { LogStorage } from './log-storage.js';
import { type Entry, emptyHardState, type HardState, type Membership, type Snapshot } from './types.js';

/**
 * Holds the log as an array whose element 0 stands for the snapshot point (index and term
 * only). Writes are what the application does with a Ready; they are "durable" at once.
 */
export class MemoryStorage implements LogStorage {
  private hardState: HardState = emptyHardState();
  private membership: Membership;
  private snap: Snapshot;
  /** entriesAt[0] is a dummy at the snapshot index. */
  private log: Entry[];

  /**
   * An empty log whose snapshot point (index 0) carries `membership`. Suits a fixed set of
   * nodes, or a node about to join (empty membership); a cluster that will add nodes should be
   * created with bootstrap(), because index 0 cannot be sent to a joiner.
   */
  constructor(membership: Membership = { voters: [], learners: [] }) {
    this.membership = membership;
    this.snap = { metadata: { index: 0, term: 0, membership }, data: new Uint8Array(0) };
    this.log = [dummy(0, 0)];
  }

  /**
   * A founding member's storage: the initial membership as a snapshot at index 1, term 1, with
   * `data` as the initial state. Every founder holds the same snapshot, and a node that joins
   * later receives a snapshot carrying the membership instead of entries it could not interpret.
   */
  static bootstrap(membership: Membership, data: Uint8Array = new Uint8Array(0)): MemoryStorage {
    const storage = new MemoryStorage(membership);
    storage.snap = { metadata: { index: 1, term: 1, membership }, data };
    storage.log = [dummy(1, 1)];
    storage.hardState = { term: 1, vote: '', commit: 1 };
    return storage;
  }

  initialState(): { hardState: HardState; membership: Membership } {
    return { hardState: this.hardState, membership: this.membership };
  }

  setHardState(hardState: HardState): void {
    this.hardState = hardState;
  }

  /** Records the membership as of the applied index (what initialState reports). */
  setMembership(membership: Membership): void {
    this.membership = membership;
  }

  entries(low: number, high: number, maxBytes: number): Entry[] {
    const offset = this.log[0]!.index;
    if (low <= offset) throw new CompactedError(low, offset + 1);
    if (high > this.lastIndex() + 1) throw new UnavailableError(high - 1, this.lastIndex());
    const out: Entry[] = [];
    let bytes = 0;
    for (let i = low; i < high; i++) {
      const entry = this.log[i - offset]!;
      bytes += entry.data.length;
      if (out.length > 0 && bytes > maxBytes) break;
      out.push(entry);
    }
    return out;
  }

  term(index: number): number {
    const offset = this.log[0]!.index;
    if (index < offset) throw new CompactedError(index, offset + 1);
    if (index - offset >= this.log.length) throw new UnavailableError(index, this.lastIndex());
    return this.log[index - offset]!.term;
  }

  firstIndex(): number {
    return this.log[0]!.index + 1;
  }

  lastIndex(): number {
    return this.log[0]!.index + this.log.length - 1;
  }

  snapshot(): Snapshot {
    return this.snap;
  }

  /** Persists entries, replacing any suffix they conflict with. Entries must be contiguous. */
  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const first = this.firstIndex();
    const last = entries[entries.length - 1]!.index;
    if (last < first) return; // Entirely compacted already.
    let toAppend = entries;
    if (entries[0]!.index < first) toAppend = entries.slice(first - entries[0]!.index);
    const offset = toAppend[0]!.index - this.log[0]!.index;
    invariant(
      offset <= this.log.length,
      () => `append gap: entry ${toAppend[0]!.index} after last ${this.lastIndex()}`,
    );
    this.log.length = offset;
    for (const entry of toAppend) this.log.push(entry);
  }

  /** Replaces the whole log by a snapshot (a follower installing what the leader sent). */
  applySnapshot(snapshot: Snapshot): void {
    const { index, term } = snapshot.metadata;
    if (index <= this.snap.metadata.index) return;
    this.snap = snapshot;
    this.membership = snapshot.metadata.membership;
    this.log = [dummy(index, term)];
  }

  /**
   * Records a snapshot the application took at `index` (≤ applied) and optionally compacts
   * the log up to it. `membership` is the membership as of `index`.
   */
  createSnapshot(index: number, membership: Membership, data: Uint8Array): Snapshot {
    invariant(
      index <= this.lastIndex(),
      () => `snapshot index ${index} beyond last index ${this.lastIndex()}`,
    );
    if (index <= this.snap.metadata.index) return this.snap;
    this.snap = { metadata: { index, term: this.term(index), membership }, data };
    return this.snap;
  }

  /** Discards entries up to and including `index`, which must not exceed the last index. */
  compact(index: number): void {
    const offset = this.log[0]!.index;
    if (index <= offset) return;
    invariant(index <= this.lastIndex(), () => `compact ${index} beyond last index ${this.lastIndex()}`);
    const term = this.term(index);
    this.log = [dummy(index, term), ...this.log.slice(index - offset + 1)];
  }
}

function dummy(index: number, term: number): Entry {
  return { index, term, type: 0, data: new Uint8Array(0) };
}
