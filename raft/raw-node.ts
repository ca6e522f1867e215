// The application's handle on one raft group: feed it ticks and messages, collect Readies.

import type { RaftConfigInput } from './config.js';
import { invariant, type RaftErrorCode, type Result } from './errors.js';
import type { MembershipChange } from './membership-change.js';
import type { ProgressState } from './progress.js';
import { Raft } from './raft.js';
import {
  type Entry,
  type HardState,
  hardStateEqual,
  type Membership,
  type Message,
  MessageType,
  message,
  type NodeId,
  type Ready,
  type Role,
  type SoftState,
} from './types.js';

/** A follower's replication state as the leader sees it. */
export interface ProgressStatus {
  readonly match: number;
  readonly next: number;
  readonly state: ProgressState;
  readonly isLearner: boolean;
  readonly recentActive: boolean;
}

export interface RaftStatus {
  readonly id: NodeId;
  readonly role: Role;
  readonly leader: NodeId;
  readonly term: number;
  readonly vote: NodeId;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  readonly lastIndex: number;
  /**
   * The membership in effect: the latest in the log, committed or not (dissertation §4.1).
   * It decides who votes, who counts for commit and whom the leader replicates to.
   */
  readonly membership: Membership;
  /** The log index `membership` is as of (a membership entry's, or an installed snapshot's). */
  readonly membershipIndex: number;
  /** The membership as of the applied index: what the state machine (and a snapshot) holds. */
  readonly appliedMembership: Membership;
  /** The log index `appliedMembership` is as of. */
  readonly appliedMembershipIndex: number;
  readonly leadTransferee: NodeId;
  /**
   * Why a membership change proposed now would be refused whatever it is (NOT_LEADER,
   * TRANSFER_IN_PROGRESS, NO_COMMITTED_ENTRY_IN_TERM, MEMBERSHIP_CHANGE_PENDING), or undefined
   * when one may be proposed.
   */
  readonly membershipChangeRefusal: RaftErrorCode | undefined;
  /** Quiesced (config.quiesceAfterTicks): not ticking until a message or wake(). */
  readonly quiesced: boolean;
  /** Only on the leader. */
  readonly progress?: ReadonlyMap<NodeId, ProgressStatus>;
}

/**
 * Wraps the raft state machine with the Ready/advance protocol. Readies may be taken while
 * earlier ones are still being persisted or applied. Each is acknowledged twice, in the order
 * taken: advancePersisted() once it is durable (each Ready's persistence follows the previous
 * one's, so `messagesAfterPersist` of Ready n may go once Readies 1..n are durable), then
 * advanceApplied() once its committed entries are applied. Persistence may run ahead of
 * application: Ready n+1 may be acknowledged as durable before Ready n is applied.
 *
 * Membership rule (dissertation §4.1): a node uses the latest membership in its log, whether
 * that entry is committed or not, from the moment it enters the log; a truncation that removes
 * it brings back the one before. A membership change does not wait to be applied. So what a
 * node knows of the commit index (which need not be durable) never decides who may vote or
 * count, and a restart rebuilds the same membership from the durable log: the storage's
 * initialState() membership as of the applied index, plus every change entry above it. The
 * leader proposes one change at a time, only after it has committed an entry of its term
 * and applied the previous change; it steps down once a change that removed it is applied.
 */
export class RawNode {
  private readonly raft: Raft;
  private prevSoftState: SoftState;
  private prevHardState: HardState;
  /** Readies taken and not yet acknowledged as durable, oldest first. */
  private readonly toPersist: Ready[] = [];
  /** Per Ready in toPersist: messages raft addressed to itself, stepped back once it is durable. */
  private readonly selfMessages: Message[][] = [];
  /** Readies acknowledged as durable and not yet as applied, oldest first. */
  private readonly toApply: Ready[] = [];

  constructor(config: RaftConfigInput) {
    this.raft = new Raft(config);
    this.prevSoftState = this.raft.softState();
    this.prevHardState = this.raft.hardState();
  }

  get id(): NodeId {
    return this.raft.id;
  }

  /** Advances logical time by one tick. */
  tick(): void {
    this.raft.tick();
  }

  /**
   * Ends quiescence (config.quiesceAfterTicks): call it when this node's leader looks gone (its
   * process down or cut off), so that the node's election timer runs again.
   */
  wake(): void {
    this.raft.wake();
  }

  /** Starts an election now (used by tests and by a single node at boot). */
  campaign(): void {
    this.raft.step(message({ type: MessageType.Hup, from: this.raft.id, to: this.raft.id }));
  }

  /** Steps a message received from a peer. A malformed one is refused and changes nothing. */
  step(m: Message): Result<void> {
    return this.raft.step(m);
  }

  propose(data: Uint8Array): Result<{ index: number; term: number }> {
    return this.raft.propose(data);
  }

  proposeMembershipChange(change: MembershipChange): Result<{ index: number; term: number }> {
    return this.raft.proposeMembershipChange(change);
  }

  readIndex(context: Uint8Array): Result<void> {
    return this.raft.readIndex(context);
  }

  transferLeadership(to: NodeId): Result<void> {
    return this.raft.transferLeadership(to);
  }

  reportUnreachable(id: NodeId): void {
    this.raft.reportUnreachable(id);
  }

  reportSnapshot(id: NodeId, succeeded: boolean): void {
    this.raft.reportSnapshot(id, succeeded);
  }

  hasReady(): boolean {
    const raft = this.raft;
    raft.flushAppendBroadcast();
    return (
      raft.messages.length > 0 ||
      raft.messagesAfterPersist.length > 0 ||
      raft.readStates.length > 0 ||
      raft.log.unstable.nextEntries().length > 0 ||
      raft.log.unstable.nextSnapshot() !== undefined ||
      raft.log.hasNextCommittedEntries() ||
      !hardStateEqual(raft.hardState(), this.prevHardState) ||
      !softStateEqual(raft.softState(), this.prevSoftState)
    );
  }

  /** Collects what to persist, send and apply since the last Ready. See Ready for the order. */
  ready(): Ready {
    const raft = this.raft;
    raft.flushAppendBroadcast();
    const entries = raft.log.unstable.nextEntries();
    const snapshot = raft.log.unstable.nextSnapshot();
    const committedEntries = raft.log.nextCommittedEntries(raft.config.maxCommittedBytesPerReady);
    const hardState = raft.hardState();
    const softState = raft.softState();
    const hardStateChanged = !hardStateEqual(hardState, this.prevHardState);
    const rd: Ready = {
      ...(softStateEqual(softState, this.prevSoftState) ? {} : { softState }),
      ...(hardStateChanged ? { hardState } : {}),
      entries,
      ...(snapshot ? { snapshot } : {}),
      committedEntries,
      messages: raft.messages,
      messagesAfterPersist: raft.messagesAfterPersist.filter((m) => m.to !== raft.id),
      readStates: raft.readStates,
      mustSync:
        entries.length > 0 ||
        snapshot !== undefined ||
        hardState.term !== this.prevHardState.term ||
        hardState.vote !== this.prevHardState.vote,
    };
    this.selfMessages.push(raft.messagesAfterPersist.filter((m) => m.to === raft.id));
    raft.messages = [];
    raft.messagesAfterPersist = [];
    raft.readStates = [];
    raft.log.unstable.acceptInProgress();
    if (committedEntries.length > 0)
      raft.log.acceptApplying(committedEntries[committedEntries.length - 1]!.index);
    this.prevSoftState = softState;
    if (hardStateChanged) this.prevHardState = hardState;
    this.toPersist.push(rd);
    return rd;
  }

  /**
   * Acknowledges the oldest Ready not yet acknowledged as durable: its snapshot, entries and
   * hard state are on stable storage (and its messagesAfterPersist may go). The leader counts
   * its own entries toward commit from here. Throws (invariant) if `rd` is not that Ready.
   */
  advancePersisted(rd: Ready): void {
    invariant(this.toPersist[0] === rd, 'advancePersisted() called out of order or with an unknown Ready');
    this.toPersist.shift();
    const toSelf = this.selfMessages.shift() ?? [];
    const last: Entry | undefined = rd.entries[rd.entries.length - 1];
    this.raft.onPersisted(last?.index ?? 0, last?.term ?? 0, rd.snapshot?.metadata.index ?? 0);
    this.toApply.push(rd);
    for (const m of toSelf) this.raft.step(m);
  }

  /**
   * Acknowledges the oldest durable Ready not yet acknowledged as applied: its snapshot and
   * committed entries are applied. Throws (invariant) if `rd` is not that Ready, in particular
   * if it was not acknowledged as durable first.
   */
  advanceApplied(rd: Ready): void {
    invariant(this.toApply[0] === rd, 'advanceApplied() called out of order or before advancePersisted()');
    this.toApply.shift();
    if (rd.snapshot) this.raft.onSnapshotApplied(rd.snapshot.metadata.index);
    this.raft.onApplied(rd.committedEntries);
  }

  /** Both acknowledgements of `rd` at once: durable, then applied. */
  advance(rd: Ready): void {
    this.advancePersisted(rd);
    this.advanceApplied(rd);
  }

  /** The term of the log entry at `index` (durable or not), or undefined if compacted or absent. */
  logTerm(index: number): number | undefined {
    return this.raft.log.term(index);
  }

  /** The first index still in the log (one past the snapshot). */
  firstIndex(): number {
    return this.raft.log.firstIndex();
  }

  /**
   * The membership as of the applied index: what a snapshot taken at the applied index records,
   * and what the storage's initialState() must return after a restart. (The membership raft
   * uses is the latest in its log, `status().membership`.)
   */
  membership(): Membership {
    return this.raft.appliedMembership().membership;
  }

  status(): RaftStatus {
    const raft = this.raft;
    const base = {
      id: raft.id,
      role: raft.role,
      leader: raft.lead,
      term: raft.term,
      vote: raft.vote,
      commitIndex: raft.log.committed,
      appliedIndex: raft.log.applied,
      lastIndex: raft.log.lastIndex(),
      membership: raft.membership,
      membershipIndex: raft.membershipIndex,
      appliedMembership: raft.appliedMembership().membership,
      appliedMembershipIndex: raft.appliedMembership().index,
      leadTransferee: raft.leadTransferee,
      membershipChangeRefusal: raft.membershipChangeRefusalCode(),
      quiesced: raft.isQuiesced,
    };
    if (raft.role !== 'leader') return base;
    const progress = new Map<NodeId, ProgressStatus>();
    for (const [id, pr] of raft.progress) {
      progress.set(id, {
        match: pr.match,
        next: pr.next,
        state: pr.state,
        isLearner: pr.isLearner,
        recentActive: pr.recentActive,
      });
    }
    return { ...base, progress };
  }
}

function softStateEqual(a: SoftState, b: SoftState): boolean {
  return a.leader === b.leader && a.role === b.role;
}
