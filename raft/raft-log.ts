// The log as raft sees it: durable entries in LogStorage followed by unstable ones not yet persisted.

import { invariant } from './errors.js';
import type { LogStorage } from './log-storage.js';
import { type Entry, entriesBytes, type Snapshot } from './types.js';

/**
 * Entries (and possibly a snapshot) that raft has accepted but the application has not yet
 * reported persisted. `offset` is the index of entries[0].
 */
class Unstable {
  snapshot: Snapshot | undefined;
  entries: Entry[] = [];
  offset: number;
  /** Entries below this index were handed out in a Ready whose persistence is in progress. */
  offsetInProgress: number;
  snapshotInProgress = false;

  constructor(offset: number) {
    this.offset = offset;
    this.offsetInProgress = offset;
  }

  /** Entries not yet handed out for persistence. */
  nextEntries(): Entry[] {
    return this.entries.slice(this.offsetInProgress - this.offset);
  }

  nextSnapshot(): Snapshot | undefined {
    return this.snapshotInProgress ? undefined : this.snapshot;
  }

  /** Everything unstable has now been handed out in a Ready. */
  acceptInProgress(): void {
    this.offsetInProgress = this.offset + this.entries.length;
    if (this.snapshot) this.snapshotInProgress = true;
  }

  firstIndex(): number | undefined {
    return this.snapshot ? this.snapshot.metadata.index + 1 : undefined;
  }

  lastIndex(): number | undefined {
    if (this.entries.length > 0) return this.offset + this.entries.length - 1;
    return this.snapshot ? this.snapshot.metadata.index : undefined;
  }

  term(index: number): number | undefined {
    if (index < this.offset) {
      if (this.snapshot && this.snapshot.metadata.index === index) return this.snapshot.metadata.term;
      return undefined;
    }
    const last = this.lastIndex();
    if (last === undefined || index > last) return undefined;
    return this.entries[index - this.offset]!.term;
  }

  /** The application persisted entries up to (index, term): drop them if they are still ours. */
  stableTo(index: number, term: number): void {
    const actual = this.term(index);
    if (actual === undefined || actual !== term || index < this.offset) return;
    this.entries = this.entries.slice(index + 1 - this.offset);
    this.offset = index + 1;
    this.offsetInProgress = Math.max(this.offsetInProgress, this.offset);
  }

  stableSnapTo(index: number): void {
    if (this.snapshot && this.snapshot.metadata.index === index) {
      this.snapshot = undefined;
      this.snapshotInProgress = false;
    }
  }

  restore(snapshot: Snapshot): void {
    this.offset = snapshot.metadata.index + 1;
    this.offsetInProgress = this.offset;
    this.entries = [];
    this.snapshot = snapshot;
    this.snapshotInProgress = false;
  }

  truncateAndAppend(entries: readonly Entry[]): void {
    const after = entries[0]!.index;
    if (after === this.offset + this.entries.length) {
      for (const entry of entries) this.entries.push(entry);
    } else if (after <= this.offset) {
      // Replaces everything unstable; the application overwrites its durable suffix from `after`.
      this.offset = after;
      this.offsetInProgress = after;
      this.entries = entries.slice();
    } else {
      this.entries = this.entries.slice(0, after - this.offset);
      this.offsetInProgress = Math.min(this.offsetInProgress, after);
      for (const entry of entries) this.entries.push(entry);
    }
  }

  slice(low: number, high: number): Entry[] {
    invariant(
      low >= this.offset && high <= this.offset + this.entries.length && low <= high,
      () => `unstable slice [${low}, ${high}) out of [${this.offset}, ${this.offset + this.entries.length})`,
    );
    return this.entries.slice(low - this.offset, high - this.offset);
  }
}

export class RaftLog {
  readonly storage: LogStorage;
  readonly unstable: Unstable;
  /** Highest index known to be stored on a quorum. */
  committed: number;
  /** Highest index the application has reported applied. */
  applied: number;
  /** Highest index handed to the application to apply (≥ applied). */
  applying: number;
  /** Told of every append, after it, with the entries that replaced the log from their first index. */
  onAppend: ((entries: readonly Entry[]) => void) | undefined;

  constructor(storage: LogStorage, applied: number) {
    this.storage = storage;
    const first = storage.firstIndex();
    const last = storage.lastIndex();
    this.unstable = new Unstable(last + 1);
    this.committed = first - 1;
    this.applied = first - 1;
    if (applied > this.applied) this.applied = applied;
    this.applying = this.applied;
  }

  firstIndex(): number {
    return this.unstable.firstIndex() ?? this.storage.firstIndex();
  }

  lastIndex(): number {
    return this.unstable.lastIndex() ?? this.storage.lastIndex();
  }

  lastTerm(): number {
    const term = this.term(this.lastIndex());
    invariant(term !== undefined, 'the last entry has no term');
    return term;
  }

  /** The term of the entry at `index`, or undefined if it is compacted or beyond the log. */
  term(index: number): number | undefined {
    const dummyIndex = this.firstIndex() - 1;
    if (index < dummyIndex || index > this.lastIndex()) return undefined;
    const unstableTerm = this.unstable.term(index);
    if (unstableTerm !== undefined) return unstableTerm;
    try {
      return this.storage.term(index);
    } catch {
      return undefined;
    }
  }

  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term;
  }

  /** §5.4.1: a candidate's log is at least as up to date as ours. */
  isUpToDate(lastIndex: number, term: number): boolean {
    const ourTerm = this.lastTerm();
    return term > ourTerm || (term === ourTerm && lastIndex >= this.lastIndex());
  }

  /**
   * Appends entries that follow (index, logTerm) if our log matches there (§5.3), truncating
   * a conflicting suffix. Returns the index of the last new entry, or undefined on mismatch.
   */
  maybeAppend(
    index: number,
    logTerm: number,
    committed: number,
    entries: readonly Entry[],
  ): number | undefined {
    if (!this.matchTerm(index, logTerm)) return undefined;
    const lastNewIndex = index + entries.length;
    const conflict = this.findConflict(entries);
    if (conflict !== 0) {
      invariant(
        conflict > this.committed,
        () => `conflict at ${conflict} is at or below commit ${this.committed}`,
      );
      this.append(entries.slice(conflict - entries[0]!.index));
    }
    this.commitTo(Math.min(committed, lastNewIndex));
    return lastNewIndex;
  }

  append(entries: readonly Entry[]): number {
    if (entries.length === 0) return this.lastIndex();
    invariant(
      entries[0]!.index - 1 >= this.committed,
      () => `append at ${entries[0]!.index} below commit ${this.committed}`,
    );
    this.unstable.truncateAndAppend(entries);
    this.onAppend?.(entries);
    return this.lastIndex();
  }

  /** The first index whose term differs from ours (or that is new to us), or 0 if none. */
  findConflict(entries: readonly Entry[]): number {
    for (const entry of entries) {
      if (!this.matchTerm(entry.index, entry.term)) return entry.index;
    }
    return 0;
  }

  /**
   * The largest index ≤ `index` whose term is ≤ `term` (fast conflict back-off, §5.3 and
   * dissertation §5.3's optimisation). Stops at the compaction boundary.
   */
  findConflictByTerm(index: number, term: number): number {
    let i = Math.min(index, this.lastIndex());
    for (; i >= 0; i--) {
      const ourTerm = this.term(i);
      if (ourTerm === undefined) return i;
      if (ourTerm <= term) return i;
    }
    return 0;
  }

  hasNextCommittedEntries(): boolean {
    return this.committed > Math.max(this.applying, this.firstIndex() - 1);
  }

  /** Committed entries not yet handed out, at most `maxBytes` (but at least one). */
  nextCommittedEntries(maxBytes: number): Entry[] {
    const low = Math.max(this.applying + 1, this.firstIndex());
    if (this.committed + 1 <= low) return [];
    return this.slice(low, this.committed + 1, maxBytes);
  }

  snapshot(): Snapshot {
    return this.unstable.snapshot ?? this.storage.snapshot();
  }

  commitTo(index: number): void {
    if (index <= this.committed) return;
    invariant(index <= this.lastIndex(), () => `commit ${index} beyond last index ${this.lastIndex()}`);
    this.committed = index;
  }

  acceptApplying(index: number): void {
    if (index > this.applying) this.applying = index;
  }

  appliedTo(index: number): void {
    if (index <= this.applied) return;
    invariant(index <= this.committed, () => `applied ${index} beyond commit ${this.committed}`);
    this.applied = index;
    if (this.applying < index) this.applying = index;
  }

  /** Commits `maxIndex` if its entry is of `term` (§5.4.2: only current-term entries by counting). */
  maybeCommit(maxIndex: number, term: number): boolean {
    if (maxIndex > this.committed && this.term(maxIndex) === term) {
      this.commitTo(maxIndex);
      return true;
    }
    return false;
  }

  restore(snapshot: Snapshot): void {
    this.committed = snapshot.metadata.index;
    this.unstable.restore(snapshot);
  }

  /** The last index known durable (everything before the unstable part). */
  stableLastIndex(): number {
    return this.unstable.snapshot ? this.storage.lastIndex() : this.unstable.offset - 1;
  }

  /** Entries from `low` to the end of the log, at most `maxBytes` (but at least one). */
  entriesFrom(low: number, maxBytes: number): Entry[] | undefined {
    if (low > this.lastIndex()) return [];
    if (low < this.firstIndex()) return undefined;
    return this.slice(low, this.lastIndex() + 1, maxBytes);
  }

  /** Entries in [low, high) across storage and unstable, bounded by bytes (at least one). */
  slice(low: number, high: number, maxBytes: number): Entry[] {
    invariant(
      low >= this.firstIndex() && high <= this.lastIndex() + 1,
      () => `slice [${low}, ${high}) out of bounds`,
    );
    if (low === high) return [];
    let out: Entry[] = [];
    const unstableOffset = this.unstable.offset;
    if (low < unstableOffset) {
      out = this.storage.entries(low, Math.min(high, unstableOffset), maxBytes);
      // Storage stopped early because of the byte limit.
      if (out.length < Math.min(high, unstableOffset) - low) return out;
    }
    if (high > unstableOffset) {
      const fromUnstable = this.unstable.slice(Math.max(low, unstableOffset), high);
      let bytes = entriesBytes(out);
      for (const entry of fromUnstable) {
        bytes += entry.data.length;
        if (out.length > 0 && bytes > maxBytes) break;
        out.push(entry);
      }
    }
    return out;
  }
}
