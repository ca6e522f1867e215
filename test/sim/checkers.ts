// Raft's safety properties (Figure 3 of the paper), checked incrementally as the simulation runs.

import type { Entry, Membership, NodeId } from '../../raft/index.js';

/** What the checker needs to see of a new leader's log. */
export interface LeaderLog {
  readonly firstIndex: number;
  readonly lastIndex: number;
  termAt(index: number): number | undefined;
}

/** Each check is O(1) per event, so every event of every step is checked. */
export class SafetyChecker {
  readonly violations: string[] = [];
  /** Election safety: the one leader of each term, and which of its lives (restarts) led it. */
  private readonly leaders = new Map<number, { id: NodeId; incarnation: number }>();
  /** Log matching: for each (index, term) seen in any durable log, its data and the term before it. */
  private readonly logEntries = new Map<string, { data: string; previousTerm: number }>();
  /** State machine safety: the entry applied at each index, by whoever applied it first. */
  private readonly appliedEntries = new Map<number, { term: number; data: string }>();
  /** The membership after applying each membership change, by index. */
  private readonly memberships = new Map<number, string>();
  /**
   * Per term X: the highest entry some node knew committed while in term X. A node learns of a
   * commit in a term no earlier than the one the entry was committed in, so an entry seen
   * committed in term X was committed in a term ≤ X.
   */
  private readonly committedSeenInTerm = new Map<number, { index: number; term: number }>();

  constructor(private readonly now: () => number) {}

  private violation(text: string): void {
    this.violations.push(`step ${this.now()}: ${text}`);
  }

  /**
   * §5.2 Election Safety: at most one leader can be elected in a given term. A server that
   * crashed and came back is a new leader if it leads the same term again: it has forgotten
   * that term (it was not durable), and may write other entries under it.
   * `incarnation` counts the server's restarts.
   */
  leaderElected(id: NodeId, term: number, log: LeaderLog, incarnation = 0): void {
    const existing = this.leaders.get(term);
    if (existing !== undefined && existing.id !== id) {
      this.violation(`election safety: ${id} and ${existing.id} both lead term ${term}`);
    } else if (existing !== undefined && existing.incarnation !== incarnation) {
      this.violation(`election safety: ${id} leads term ${term} again after a restart (it had forgotten it)`);
    }
    this.leaders.set(term, { id, incarnation });
    // §5.4 Leader Completeness: a leader's log holds every entry committed in earlier terms.
    // Only earlier ones: a paused candidate may become leader of its old term after a later
    // term committed more (its votes were granted before); it can then commit nothing.
    let index = 0;
    let committedTerm = 0;
    for (const [seenTerm, seen] of this.committedSeenInTerm) {
      if (seenTerm < term && seen.index > index) ({ index, term: committedTerm } = seen);
    }
    if (index === 0) return;
    if (index > log.lastIndex) {
      this.violation(
        `leader completeness: ${id} leads term ${term} with last index ${log.lastIndex} < ${index}, committed before term ${term}`,
      );
    } else if (index >= log.firstIndex - 1) {
      // (Below that, the leader's snapshot covers the committed entry.)
      const ours = log.termAt(index);
      if (ours !== committedTerm) {
        this.violation(
          `leader completeness: ${id} leads term ${term} with term ${ours} at ${index}, where term ${committedTerm} was committed before term ${term}`,
        );
      }
    }
  }

  /**
   * §5.3 Log Matching, by induction: every durable (index, term) carries the same data and
   * follows the same previous term everywhere; then equal (index, term) implies equal prefixes.
   */
  entryPersisted(node: NodeId, entry: Entry, previousTerm: number | undefined): void {
    const key = `${entry.index}:${entry.term}`;
    const data = bytesKey(entry.data);
    const seen = this.logEntries.get(key);
    if (seen === undefined) {
      this.logEntries.set(key, { data, previousTerm: previousTerm ?? -1 });
      return;
    }
    if (seen.data !== data)
      this.violation(`log matching: ${node} holds different data at index ${entry.index} term ${entry.term}`);
    if (previousTerm !== undefined && seen.previousTerm !== -1 && seen.previousTerm !== previousTerm) {
      this.violation(
        `log matching: ${node} has term ${previousTerm} before (${entry.index}, ${entry.term}), another log has ${seen.previousTerm}`,
      );
    }
  }

  /** §5.4.3 State Machine Safety: no two servers apply different entries at one index. */
  entryApplied(node: NodeId, entry: Entry, previousApplied: number): void {
    if (entry.index !== previousApplied + 1) {
      this.violation(`apply order: ${node} applied ${entry.index} after ${previousApplied}`);
    }
    const data = bytesKey(entry.data);
    const seen = this.appliedEntries.get(entry.index);
    if (seen === undefined) {
      this.appliedEntries.set(entry.index, { term: entry.term, data });
    } else if (seen.term !== entry.term || seen.data !== data) {
      this.violation(
        `state machine safety: ${node} applied term ${entry.term} at ${entry.index}, another node applied term ${seen.term}`,
      );
    }
  }

  /** Membership is state machine state too: after applying index i, every node has the same. */
  membershipApplied(node: NodeId, index: number, membership: Membership): void {
    const text = JSON.stringify(membership);
    const seen = this.memberships.get(index);
    if (seen === undefined) this.memberships.set(index, text);
    else if (seen !== text)
      this.violation(`membership: ${node} has ${text} after applying ${index}, another node has ${seen}`);
  }

  /** A snapshot installed at `index` must agree with what was applied there. */
  snapshotInstalled(node: NodeId, index: number, term: number): void {
    const seen = this.appliedEntries.get(index);
    if (seen !== undefined && seen.term !== term) {
      this.violation(
        `state machine safety: ${node} installed a snapshot of term ${term} at ${index}, applied term was ${seen.term}`,
      );
    }
  }

  /**
   * `node`, in term `term`, knows entries through `current` (of term `entryTerm`, undefined if
   * compacted) are committed. Commit never moves backwards on a node that has not crashed.
   */
  commitObserved(
    node: NodeId,
    previous: number,
    current: number,
    term: number,
    entryTerm: number | undefined,
  ): void {
    if (current < previous) this.violation(`commit regressed on ${node}: ${previous} -> ${current}`);
    if (entryTerm === undefined || current === 0) return;
    const seen = this.committedSeenInTerm.get(term);
    if (seen === undefined || seen.index < current)
      this.committedSeenInTerm.set(term, { index: current, term: entryTerm });
  }

  leaderOf(term: number): NodeId | undefined {
    return this.leaders.get(term)?.id;
  }

  get termsWithLeader(): number {
    return this.leaders.size;
  }

  get appliedCount(): number {
    return this.appliedEntries.size;
  }
}

function bytesKey(data: Uint8Array): string {
  let key = '';
  for (const byte of data) key += String.fromCharCode(byte);
  return key;
}
