// The membership in effect at each point of the log: the latest change in the log, committed or not (dissertation §4.1).

import { invariant } from './errors.js';
import { applyMembershipChange, decodeMembershipChange } from './membership-change.js';
import { type Entry, EntryType, type Membership } from './types.js';

/** A membership and the log index it is as of (a change entry's index, or a base such as a snapshot's). */
export interface MembershipAt {
  readonly index: number;
  readonly membership: Membership;
}

/**
 * The memberships a node's log defines, oldest first. The first is the base: the membership
 * as of an index at or below the commit index (the applied index, or an installed snapshot's),
 * which no truncation can reach. Each later one is the effect of a membership change entry
 * in the log above it.
 *
 * A server uses the newest one for everything (elections, commit, reads), whether its entry
 * is committed or not: a change takes effect as soon as it is in the log, and is undone if a
 * new leader's log truncates it away. This is what makes single-server changes safe whatever
 * a node knows of the commit index, including after a restart that lost it.
 */
export class MembershipLog {
  private history: MembershipAt[];

  constructor(base: Membership, baseIndex: number) {
    this.history = [{ index: baseIndex, membership: base }];
  }

  /** The membership in effect: the latest in the log. */
  get current(): MembershipAt {
    return this.history[this.history.length - 1]!;
  }

  /** The index of the oldest membership kept: nothing below it can be asked for. */
  get baseIndex(): number {
    return this.history[0]!.index;
  }

  /** The membership as of log index `index` (not below the base). */
  at(index: number): MembershipAt {
    invariant(
      index >= this.history[0]!.index,
      () => `membership at ${index} is below the base ${this.history[0]!.index}`,
    );
    for (let i = this.history.length - 1; i > 0; i--) {
      if (this.history[i]!.index <= index) return this.history[i]!;
    }
    return this.history[0]!;
  }

  /**
   * Entries were appended from `entries[0].index` on, replacing whatever the log held from
   * there. Returns whether the membership in effect changed.
   */
  appended(entries: readonly Entry[]): boolean {
    if (entries.length === 0) return false;
    const before = this.current;
    const from = entries[0]!.index;
    invariant(
      from > this.history[0]!.index,
      () => `append at ${from} truncates the membership base ${this.history[0]!.index}`,
    );
    while (this.history.length > 1 && this.history[this.history.length - 1]!.index >= from)
      this.history.pop();
    for (const entry of entries) {
      if (entry.type !== EntryType.MembershipChange) continue;
      const change = decodeMembershipChange(entry.data);
      const membership =
        change === undefined
          ? this.current.membership
          : applyMembershipChange(this.current.membership, change);
      this.history.push({ index: entry.index, membership });
    }
    return this.current !== before && !membershipEqual(this.current.membership, before.membership);
  }

  /** Forgets what lies below `index` (at most the commit index): no truncation reaches it again. */
  compactTo(index: number): void {
    let keep = 0;
    for (let i = 1; i < this.history.length; i++) if (this.history[i]!.index <= index) keep = i;
    if (keep > 0) this.history = this.history.slice(keep);
  }

  /** Starts over from `membership` as of `index` (a snapshot was installed; the log before it is gone). */
  reset(membership: Membership, index: number): void {
    this.history = [{ index, membership }];
  }
}

export function membershipEqual(a: Membership, b: Membership): boolean {
  return sameList(a.voters, b.voters) && sameList(a.learners, b.learners);
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
