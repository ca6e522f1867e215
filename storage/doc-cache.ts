// The documents a state store last read or wrote, kept in memory so that applying a write rarely reads the engine.

/*
 * Why: applying a put needs the document it replaces (its create revision and version, the
 * previous value for a patch). Read from RocksDB, that is one MultiGet per applied batch, about
 * 4 µs per put on this machine, on every member. Written keys are usually written again soon.
 *
 * Contract: it holds documents of one state generation as the last durable apply left them
 * (null: known absent). The state store reads it only inside apply, sets what a batch wrote
 * once the batch is durable, and clears it when it switches generation (snapshot install).
 * Documents change in no other way (a realm is deleted only when empty), so an entry is never
 * stale. Bounded by bytes (key, JSON text and a fixed overhead per entry); the entries cached
 * first go first (FIFO: an update keeps an entry's place, so neither a hit nor an update moves
 * anything in the Map; a hot key evicted is read once more). A limit of 0 keeps nothing.
 */

import type { StoredDoc } from './codec.js';

/** What an entry costs beyond its name and JSON text: the Map slot, the object, its numbers. */
const ENTRY_OVERHEAD_BYTES = 96;

export class DocCache {
  private readonly entries = new Map<string, StoredDoc | null>();
  private bytes = 0;

  constructor(private readonly maxBytes: number) {}

  /** The cached document (null: absent), or undefined if not cached. */
  get(name: string): StoredDoc | null | undefined {
    return this.entries.get(name);
  }

  set(name: string, doc: StoredDoc | null): void {
    const size = sizeOf(name, doc);
    const old = this.entries.get(name);
    if (old !== undefined) this.bytes -= sizeOf(name, old);
    if (size > this.maxBytes) {
      if (old !== undefined) this.entries.delete(name);
      return;
    }
    this.entries.set(name, doc);
    this.bytes += size;
    if (this.bytes > this.maxBytes) this.evict();
  }

  private evict(): void {
    for (const [oldest, entry] of this.entries) {
      if (this.bytes <= this.maxBytes) return;
      this.entries.delete(oldest);
      this.bytes -= sizeOf(oldest, entry);
    }
  }

  clear(): void {
    this.entries.clear();
    this.bytes = 0;
  }

  get size(): number {
    return this.entries.size;
  }

  /** Bytes the entries are counted at (at most the limit). */
  get countedBytes(): number {
    return this.bytes;
  }
}

function sizeOf(name: string, doc: StoredDoc | null): number {
  // UTF-16 code units in memory: two bytes each.
  return ENTRY_OVERHEAD_BYTES + 2 * (name.length + (doc === null ? 0 : doc.json.length));
}
