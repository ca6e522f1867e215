// The leader's view of each follower: match/next indexes, probe/replicate/snapshot state, inflight window.

import { invariant } from './errors.js';

export enum ProgressState {
  /** One Append at a time until the follower's match point is found. */
  Probe = 'probe',
  /** Optimistic pipelining of Appends within the inflight window. */
  Replicate = 'replicate',
  /** Waiting for a snapshot to be installed; no Appends. */
  Snapshot = 'snapshot',
}

/** A ring buffer of the last index and byte size of each Append in flight to one follower. */
export class Inflights {
  private readonly indexes: number[];
  private readonly sizes: number[];
  private start = 0;
  count = 0;
  bytes = 0;

  constructor(
    readonly maxMessages: number,
    readonly maxBytes: number,
  ) {
    this.indexes = new Array(maxMessages).fill(0);
    this.sizes = new Array(maxMessages).fill(0);
  }

  full(): boolean {
    return this.count === this.maxMessages || this.bytes >= this.maxBytes;
  }

  add(index: number, bytes: number): void {
    invariant(this.count < this.maxMessages, 'inflights overflow');
    const slot = (this.start + this.count) % this.maxMessages;
    this.indexes[slot] = index;
    this.sizes[slot] = bytes;
    this.count++;
    this.bytes += bytes;
  }

  /** Frees every Append whose last index is ≤ `index`. */
  freeLE(index: number): void {
    while (this.count > 0 && this.indexes[this.start]! <= index) {
      this.bytes -= this.sizes[this.start]!;
      this.start = (this.start + 1) % this.maxMessages;
      this.count--;
    }
    if (this.count === 0) {
      this.start = 0;
      this.bytes = 0;
    }
  }

  /** Frees the oldest Append, so a follower whose answers were lost is probed again. */
  freeFirstOne(): void {
    if (this.count > 0) this.freeLE(this.indexes[this.start]!);
  }

  reset(): void {
    this.start = 0;
    this.count = 0;
    this.bytes = 0;
  }
}

export class Progress {
  match = 0;
  next: number;
  state: ProgressState = ProgressState.Probe;
  /** In Probe: an Append was sent and no answer came yet (cleared by a heartbeat response). */
  probeSent = false;
  /** In Snapshot: the index of the snapshot being sent. */
  pendingSnapshot = 0;
  /** Heard from since the last CheckQuorum round. */
  recentActive = false;
  /** Was recentActive when the last CheckQuorum round reset it (heard from in the previous round). */
  activeLastRound = false;
  readonly inflights: Inflights;
  isLearner: boolean;

  constructor(next: number, isLearner: boolean, maxInflightMessages: number, maxInflightBytes: number) {
    this.next = next;
    this.isLearner = isLearner;
    this.inflights = new Inflights(maxInflightMessages, maxInflightBytes);
  }

  private resetState(state: ProgressState): void {
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.state = state;
    this.inflights.reset();
  }

  becomeProbe(): void {
    if (this.state === ProgressState.Snapshot) {
      const pending = this.pendingSnapshot;
      this.resetState(ProgressState.Probe);
      this.next = Math.max(this.match + 1, pending + 1);
    } else {
      this.resetState(ProgressState.Probe);
      this.next = this.match + 1;
    }
  }

  becomeReplicate(): void {
    this.resetState(ProgressState.Replicate);
    this.next = this.match + 1;
  }

  becomeSnapshot(snapshotIndex: number): void {
    this.resetState(ProgressState.Snapshot);
    this.pendingSnapshot = snapshotIndex;
  }

  /** An Append carrying entries up to `lastIndex` and `bytes` of payload was sent. */
  sentEntries(lastIndex: number, bytes: number, entryCount: number): void {
    if (this.state === ProgressState.Replicate) {
      if (entryCount > 0) {
        this.next = lastIndex + 1;
        this.inflights.add(lastIndex, bytes);
      }
    } else if (this.state === ProgressState.Probe) {
      this.probeSent = true;
    }
  }

  /** A successful response for `index`; returns whether it told us anything new. */
  maybeUpdate(index: number): boolean {
    let updated = false;
    if (this.match < index) {
      this.match = index;
      updated = true;
      this.probeSent = false;
    }
    this.next = Math.max(this.next, index + 1);
    return updated;
  }

  /**
   * A rejection of an Append at `rejected`; `matchHint` is where the follower suggests to
   * resume. Returns false for a stale rejection.
   */
  maybeDecreaseTo(rejected: number, matchHint: number): boolean {
    if (this.state === ProgressState.Replicate) {
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1, 1);
    this.probeSent = false;
    return true;
  }

  /** Whether the leader must hold Appends to this follower for now. */
  isPaused(): boolean {
    switch (this.state) {
      case ProgressState.Probe:
        return this.probeSent;
      case ProgressState.Replicate:
        return this.inflights.full();
      case ProgressState.Snapshot:
        return true;
    }
  }
}
