// The raft state machine: elections, replication, membership, transfer, ReadIndex. Pure and deterministic.

import { type RaftConfig, type RaftConfigInput, validateRaftConfig } from './config.js';
import { fail, invariant, ok, RaftError, type RaftErrorCode, type Result } from './errors.js';
import {
  encodeMembershipChange,
  type MembershipChange,
  MembershipChangeType,
  membershipChangeProblem,
} from './membership-change.js';
import { MembershipLog } from './membership-log.js';
import { Progress, ProgressState } from './progress.js';
import { RaftLog } from './raft-log.js';
import { ReadIndexQueue } from './read-index-queue.js';
import {
  type Entry,
  EntryType,
  entriesBytes,
  type HardState,
  LOCAL_MESSAGE_TYPES,
  type Membership,
  type Message,
  MessageType,
  message,
  NONE,
  type NodeId,
  type ReadState,
  Role,
  type Snapshot,
  type SoftState,
} from './types.js';

/** Context of a Vote sent on a leader's TimeoutNow: it bypasses the leader lease (§3.10 / §6.4). */
const TRANSFER_CONTEXT = Uint8Array.of(0x54);
const NO_ENTRIES: readonly Entry[] = Object.freeze([]);

/**
 * Responses whose meaning depends on local state being durable: they wait for persistence.
 * A vote grant promises the vote is on disk (§5.1); an append ack promises the entries are.
 */
const AFTER_PERSIST: ReadonlySet<MessageType> = new Set([
  MessageType.AppendResponse,
  MessageType.Vote,
  MessageType.VoteResponse,
]);

type CampaignKind = 'pre-election' | 'election' | 'transfer';
type VoteOutcome = 'won' | 'lost' | 'pending';

export class Raft {
  readonly id: NodeId;
  readonly config: RaftConfig;
  readonly log: RaftLog;

  term = 0;
  vote: NodeId = NONE;
  role: Role = Role.Follower;
  lead: NodeId = NONE;
  /** Every membership the log defines; the newest is in effect (see MembershipLog). */
  readonly memberships: MembershipLog;
  readonly progress = new Map<NodeId, Progress>();

  /** Outgoing messages that may be sent at once. */
  messages: Message[] = [];
  /** Outgoing messages that may only be sent once the current unstable state is persisted. */
  messagesAfterPersist: Message[] = [];
  readStates: ReadState[] = [];

  private readonly votes = new Map<NodeId, boolean>();
  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout = 0;
  /** The voter this leader is handing leadership to, or NONE. */
  leadTransferee: NodeId = NONE;
  /** Index of the latest membership change in the log; a new one waits until it is applied. */
  private pendingMembershipIndex = 0;
  private uncommittedBytes = 0;
  private appendBroadcastPending = false;
  private readonly readIndexQueue = new ReadIndexQueue();
  /**
   * Quiescence (config.quiesceAfterTicks): a quiesced node does not tick. A leader quiesces
   * after that many idle heartbeat ticks and waits for each recently active follower to say it
   * quiesced too (`quiesceAwaited`); one that has not within two ticks wakes the leader again.
   */
  private quiesced = false;
  private idleTicks = 0;
  private quiesceWait = 0;
  private quiesceAwaited: Set<NodeId> | undefined;
  /** ReadIndex requests held until the leader has committed an entry of its term. */
  private pendingReadIndex: Message[] = [];

  constructor(input: RaftConfigInput) {
    this.config = validateRaftConfig(input);
    this.id = this.config.id;
    const { hardState, membership } = this.config.storage.initialState();
    this.log = new RaftLog(this.config.storage, this.config.applied);
    // The storage's membership is as of the applied index; changes in the log above it are in
    // effect too, committed or not (§4.1), so a restart never falls back to an older one.
    this.memberships = new MembershipLog(membership, this.log.applied);
    for (let low = this.log.applied + 1; low <= this.log.lastIndex(); ) {
      const entries = this.log.slice(low, this.log.lastIndex() + 1, this.config.maxMessageBytes);
      this.memberships.appended(entries.filter((entry) => entry.type === EntryType.MembershipChange));
      low += entries.length;
    }
    this.log.onAppend = (entries) => {
      if (this.memberships.appended(entries)) this.onMembershipChanged();
    };
    this.rebuildProgress();
    if (hardState.term > 0 || hardState.vote !== NONE || hardState.commit > 0) {
      invariant(
        hardState.commit <= this.log.lastIndex(),
        () => `hard state commit ${hardState.commit} beyond the last index ${this.log.lastIndex()}`,
      );
      // The commit index need not be durable (the driver may skip writing a Ready that only
      // moves it): the snapshot index and what the application applied were committed, so
      // both are floors.
      this.log.committed = Math.max(
        hardState.commit,
        this.log.committed,
        Math.min(this.log.applied, this.log.lastIndex()),
      );
      this.term = hardState.term;
      this.vote = hardState.vote;
    }
    invariant(
      this.log.applied <= this.log.committed,
      () => `applied ${this.log.applied} beyond commit ${this.log.committed}`,
    );
    this.becomeFollower(this.term, NONE);
  }

  // ---- Observers -------------------------------------------------------------------------

  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed };
  }

  softState(): SoftState {
    return { leader: this.lead, role: this.role };
  }

  /** The membership in effect: the latest in the log, committed or not (dissertation §4.1). */
  get membership(): Membership {
    return this.memberships.current.membership;
  }

  /** The log index of the membership in effect. */
  get membershipIndex(): number {
    return this.memberships.current.index;
  }

  /**
   * The membership as of the applied index: what a snapshot taken now must record. While an
   * installed snapshot waits to be applied, it is the snapshot's.
   */
  appliedMembership(): { index: number; membership: Membership } {
    return this.memberships.at(Math.max(this.log.applied, this.memberships.baseIndex));
  }

  isVoter(id: NodeId = this.id): boolean {
    return this.membership.voters.includes(id);
  }

  /**
   * A node may campaign only if it is a voter (learners and removed nodes never disrupt), or if
   * the change that removed it is in its log but not known committed and it was a voter before
   * it. The second case is a leader that appended its own removal and lost its leadership (a
   * crash, a step-down) before the change committed: in a cluster of two voters the other
   * cannot be elected without its vote, and it refuses that vote to a log shorter than its own,
   * so if it did not campaign neither would ever lead. It campaigns under the membership in its
   * log, in which it is no voter (its own vote does not count), and once leader steps down as
   * soon as it has applied that change (onApplied). Single-server changes keep this safe: any
   * majority of the old membership meets any majority of the new.
   */
  private promotable(): boolean {
    if (this.isVoter(this.id)) return true;
    const current = this.memberships.current;
    return (
      current.index > this.log.committed &&
      this.memberships.at(current.index - 1).membership.voters.includes(this.id)
    );
  }

  // ---- Application API -----------------------------------------------------------------

  tick(): void {
    if (this.quiesced) {
      // A leader still waiting for followers to quiesce gives up after two ticks and wakes.
      if (this.quiesceAwaited !== undefined && ++this.quiesceWait >= 2) this.wake();
      return;
    }
    if (this.role === Role.Leader) this.tickHeartbeat();
    else this.tickElection();
  }

  /** Whether this node is quiesced (it neither ticks nor sends heartbeats until woken). */
  get isQuiesced(): boolean {
    return this.quiesced;
  }

  /**
   * Ends quiescence: the node ticks again (a follower's election timer resumes where it stopped).
   * The application calls it for a follower whose leader it believes gone; any message other
   * than quiescence's own, and any proposal, read or transfer, also wakes the node.
   */
  wake(): void {
    if (!this.quiesced) return;
    this.quiesced = false;
    this.idleTicks = 0;
    this.quiesceWait = 0;
    this.quiesceAwaited = undefined;
  }

  /**
   * Steps a message from a peer (or a local one). Invalid messages are refused with
   * INVALID_MESSAGE and change nothing.
   */
  step(m: Message): Result<void> {
    const problem = messageProblem(m, this.id);
    if (problem !== undefined) return fail('INVALID_MESSAGE', problem);
    if (m.from !== this.id && LOCAL_MESSAGE_TYPES.has(m.type)) {
      return fail('INVALID_MESSAGE', `message type ${m.type} is local-only`);
    }
    this.stepMessage(m);
    return ok(undefined);
  }

  /** Appends `data` as a new entry at the leader. Returns its index and term. */
  propose(data: Uint8Array): Result<{ index: number; term: number }> {
    this.wake();
    if (this.role !== Role.Leader) return fail('NOT_LEADER', `${this.id} is ${this.role}`, this.lead);
    if (this.leadTransferee !== NONE) {
      return fail('TRANSFER_IN_PROGRESS', `leadership is moving to ${this.leadTransferee}`, this.lead);
    }
    if (data.length > this.config.maxMessageBytes) {
      return fail(
        'TOO_LARGE',
        `proposal of ${data.length} bytes exceeds maxMessageBytes ${this.config.maxMessageBytes}`,
      );
    }
    return this.appendAsLeader(EntryType.Normal, data);
  }

  /**
   * Why a membership change would be refused now whatever it is (not leading, a transfer under
   * way, no entry of this term committed, the previous change not applied), or undefined. Cheap:
   * no error is built (RawNode.status() asks on every call).
   */
  membershipChangeRefusalCode(): RaftErrorCode | undefined {
    if (this.role !== Role.Leader) return 'NOT_LEADER';
    if (this.leadTransferee !== NONE) return 'TRANSFER_IN_PROGRESS';
    if (!this.committedEntryInCurrentTerm()) return 'NO_COMMITTED_ENTRY_IN_TERM';
    if (this.pendingMembershipIndex > this.log.applied) return 'MEMBERSHIP_CHANGE_PENDING';
    return undefined;
  }

  /** The refusal membershipChangeRefusalCode() names, as the error proposeMembershipChange() answers. */
  private membershipChangeRefusal(): RaftError | undefined {
    switch (this.membershipChangeRefusalCode()) {
      case undefined:
        return undefined;
      case 'NOT_LEADER':
        return new RaftError('NOT_LEADER', `${this.id} is ${this.role}`, this.lead);
      case 'TRANSFER_IN_PROGRESS':
        return new RaftError(
          'TRANSFER_IN_PROGRESS',
          `leadership is moving to ${this.leadTransferee}`,
          this.lead,
        );
      case 'NO_COMMITTED_ENTRY_IN_TERM':
        return new RaftError(
          'NO_COMMITTED_ENTRY_IN_TERM',
          `leader of term ${this.term} has not committed an entry of its term`,
        );
      default:
        return new RaftError(
          'MEMBERSHIP_CHANGE_PENDING',
          `the change at index ${this.pendingMembershipIndex} is not applied yet (applied ${this.log.applied})`,
        );
    }
  }

  /**
   * Proposes one membership change. Refused unless this node leads, has committed an entry
   * of its term, and the previous change is applied (dissertation §4.1, and the fix in §4.1.2
   * of Ongaro's 2015 errata). A learner is promoted only once caught up.
   */
  proposeMembershipChange(change: MembershipChange): Result<{ index: number; term: number }> {
    this.wake();
    const refused = this.membershipChangeRefusal();
    if (refused !== undefined) return { ok: false, error: refused };
    const problem = membershipChangeProblem(this.membership, change);
    if (problem !== undefined) return fail('INVALID_MEMBERSHIP_CHANGE', problem);
    if (change.type === MembershipChangeType.PromoteLearner) {
      const pr = this.progress.get(change.nodeId)!;
      const lag = this.log.committed - pr.match;
      // Dissertation §4.2.1: a server that has never answered (match 0) or has gone quiet is
      // not promoted, whatever its lag, or the cluster would gain a dead voter.
      // Heard from in this CheckQuorum round or the previous one: right after a round resets the
      // marks, a learner that answers every heartbeat would otherwise look quiet.
      const active = pr.recentActive || pr.activeLastRound;
      if (pr.match === 0 || !active || lag > this.config.learnerCatchUpMaxLagEntries) {
        return fail(
          'LEARNER_NOT_CAUGHT_UP',
          `${change.nodeId} is ${lag} entries behind the commit index (at most ${this.config.learnerCatchUpMaxLagEntries}), has answered: ${pr.match > 0}, recently active: ${active}`,
        );
      }
    }
    const result = this.appendAsLeader(EntryType.MembershipChange, encodeMembershipChange(change));
    if (result.ok) this.pendingMembershipIndex = result.value.index;
    return result;
  }

  /**
   * Requests a linearizable read point (§6.4). The answer arrives as a ReadState with the
   * same context once a quorum has confirmed the leadership; contexts must be unique.
   */
  readIndex(context: Uint8Array): Result<void> {
    this.wake();
    if (this.role === Role.Leader) {
      if (this.readIndexQueue.size + this.pendingReadIndex.length >= this.config.maxPendingReadIndex) {
        return fail('READ_INDEX_LIMIT', `${this.config.maxPendingReadIndex} reads are already pending`);
      }
      this.handleReadIndex(message({ type: MessageType.ReadIndex, from: this.id, to: this.id, context }));
      return ok(undefined);
    }
    if (this.lead === NONE) return fail('NO_LEADER', `${this.id} knows no leader in term ${this.term}`);
    this.send({ type: MessageType.ReadIndex, to: this.lead, context });
    return ok(undefined);
  }

  /** Starts handing leadership to voter `to` (§3.10); abandoned after an election timeout. */
  transferLeadership(to: NodeId): Result<void> {
    this.wake();
    if (this.role !== Role.Leader) return fail('NOT_LEADER', `${this.id} is ${this.role}`, this.lead);
    if (!this.isVoter(to)) return fail('INVALID_TRANSFER_TARGET', `${to} is not a voter`);
    if (to === this.id) return ok(undefined);
    if (this.leadTransferee === to) return ok(undefined);
    this.abortLeaderTransfer();
    this.electionElapsed = 0;
    this.leadTransferee = to;
    const pr = this.progress.get(to)!;
    if (pr.match === this.log.lastIndex()) this.sendTimeoutNow(to);
    else this.sendAppend(to);
    return ok(undefined);
  }

  /** The transport could not deliver to `id`: stop pipelining to it until it answers. */
  reportUnreachable(id: NodeId): void {
    if (this.role !== Role.Leader) return;
    const pr = this.progress.get(id);
    if (pr && pr.state === ProgressState.Replicate) pr.becomeProbe();
  }

  /** A snapshot send to `id` finished; `succeeded` false makes the leader retry from a probe. */
  reportSnapshot(id: NodeId, succeeded: boolean): void {
    if (this.role !== Role.Leader) return;
    const pr = this.progress.get(id);
    if (!pr || pr.state !== ProgressState.Snapshot) return;
    if (!succeeded) pr.pendingSnapshot = 0;
    pr.becomeProbe();
    // Wait for the follower's answer (or the next heartbeat) before probing again.
    pr.probeSent = true;
  }

  // ---- Called by RawNode when the application reports progress ---------------------------

  /** The application persisted entries through (index, term) and possibly a snapshot. */
  onPersisted(lastIndex: number, lastTerm: number, snapshotIndex: number): void {
    if (snapshotIndex > 0) this.log.unstable.stableSnapTo(snapshotIndex);
    if (lastIndex > 0) this.log.unstable.stableTo(lastIndex, lastTerm);
    if (this.role === Role.Leader) {
      const self = this.progress.get(this.id);
      if (self?.maybeUpdate(this.log.stableLastIndex()) && this.maybeCommit()) this.bcastAppend();
    }
  }

  /** The application applied committed entries through `index` (the membership changes among them too). */
  onSnapshotApplied(index: number): void {
    this.log.appliedTo(index);
  }

  onApplied(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    this.log.appliedTo(entries[entries.length - 1]!.index);
    this.memberships.compactTo(this.log.applied);
    if (this.role !== Role.Leader) return;
    this.uncommittedBytes = Math.max(0, this.uncommittedBytes - entriesBytes(entries));
    // §4.2.2: a leader that is not in the membership it committed steps down once it is
    // committed (it has managed the cluster meanwhile without counting itself); so does one
    // elected after losing its leadership with its removal pending (promotable), once it has
    // applied that removal.
    if (!this.isVoter(this.id) && this.log.applied >= this.membershipIndex) {
      this.becomeFollower(this.term, NONE);
    }
  }

  // ---- Transitions -----------------------------------------------------------------------

  private reset(term: number): void {
    if (this.term !== term) {
      this.term = term;
      this.vote = NONE;
    }
    this.lead = NONE;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.wake();
    this.randomizedElectionTimeout =
      this.config.electionTicks + this.config.prng.nextInt(this.config.electionTicks);
    this.abortLeaderTransfer();
    this.votes.clear();
    for (const [id, pr] of this.progress) {
      const next = this.log.lastIndex() + 1;
      const fresh = new Progress(
        next,
        pr.isLearner,
        this.config.maxInflightMessages,
        this.config.maxInflightBytes,
      );
      if (id === this.id) fresh.match = this.log.stableLastIndex();
      this.progress.set(id, fresh);
    }
    this.pendingMembershipIndex = 0;
    this.uncommittedBytes = 0;
    this.appendBroadcastPending = false;
    this.readIndexQueue.clear();
    this.pendingReadIndex = [];
  }

  private becomeFollower(term: number, lead: NodeId): void {
    this.reset(term);
    this.lead = lead;
    this.role = Role.Follower;
  }

  private becomePreCandidate(): void {
    invariant(this.role !== Role.Leader, 'leader cannot become pre-candidate');
    // A pre-candidate changes neither term nor vote (dissertation §9.6).
    this.votes.clear();
    this.lead = NONE;
    this.role = Role.PreCandidate;
  }

  private becomeCandidate(): void {
    invariant(this.role !== Role.Leader, 'leader cannot become candidate');
    this.reset(this.term + 1);
    this.vote = this.id;
    this.role = Role.Candidate;
  }

  private becomeLeader(): void {
    invariant(this.role === Role.Candidate, () => `${this.role} cannot become leader`);
    this.reset(this.term);
    this.lead = this.id;
    this.role = Role.Leader;
    this.progress.get(this.id)?.becomeReplicate();
    // Conservatively assume the log holds an unapplied membership change.
    this.pendingMembershipIndex = this.log.lastIndex();
    // §8: a no-op entry of the new term lets the leader learn what is committed.
    this.appendEntries([{ term: 0, index: 0, type: EntryType.Normal, data: new Uint8Array(0) }]);
  }

  // ---- Ticks -----------------------------------------------------------------------------

  private tickElection(): void {
    this.electionElapsed++;
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.hup(this.config.preVote ? 'pre-election' : 'election');
    }
  }

  private tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.config.electionTicks) {
      this.electionElapsed = 0;
      if (this.config.checkQuorum && !this.quorumActive()) {
        // §6.2: a leader cut off from a quorum steps down rather than serve stale reads.
        this.becomeFollower(this.term, NONE);
        return;
      }
      if (this.leadTransferee !== NONE) this.abortLeaderTransfer();
    }
    if (this.heartbeatElapsed >= this.config.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      const quiesceAfter = this.config.quiesceAfterTicks;
      this.idleTicks = quiesceAfter > 0 && this.idle() ? this.idleTicks + 1 : 0;
      if (quiesceAfter > 0 && this.idleTicks >= quiesceAfter) {
        this.quiesce();
        return;
      }
      this.bcastHeartbeat(this.readIndexQueue.lastContext());
    }
  }

  /**
   * Whether the group has nothing to do: every entry committed and held by every follower, no
   * read, transfer or membership change pending. A follower that went silent holds the whole
   * log too if nothing was written since; it needs no heartbeat, and wakes the group when it
   * campaigns.
   */
  private idle(): boolean {
    const last = this.log.lastIndex();
    if (
      this.log.committed !== last ||
      this.leadTransferee !== NONE ||
      this.readIndexQueue.size > 0 ||
      this.pendingReadIndex.length > 0 ||
      this.pendingMembershipIndex > this.log.committed
    ) {
      return false;
    }
    for (const [id, pr] of this.progress) if (id !== this.id && pr.match !== last) return false;
    return true;
  }

  /** Sends the last heartbeats, flagged, and stops ticking; the recently active followers must answer. */
  private quiesce(): void {
    this.quiesced = true;
    this.idleTicks = 0;
    this.quiesceWait = 0;
    this.quiesceAwaited = new Set();
    for (const [id, pr] of this.progress) {
      if (id !== this.id && pr.recentActive) this.quiesceAwaited.add(id);
    }
    if (this.quiesceAwaited.size === 0) this.quiesceAwaited = undefined;
    this.bcastHeartbeat(undefined, true);
  }

  // ---- Elections -------------------------------------------------------------------------

  private hup(kind: CampaignKind): void {
    if (this.role === Role.Leader || !this.promotable()) return;
    this.campaign(kind);
  }

  private campaign(kind: CampaignKind): void {
    // Re-checked here: a membership change may have removed us while we pre-campaigned.
    if (!this.promotable()) {
      this.becomeFollower(this.term, NONE);
      return;
    }
    let voteType: MessageType;
    let term: number;
    if (kind === 'pre-election') {
      this.becomePreCandidate();
      voteType = MessageType.PreVote;
      term = this.term + 1;
    } else {
      this.becomeCandidate();
      voteType = MessageType.Vote;
      term = this.term;
    }
    if (kind === 'pre-election') {
      // A pre-vote changes nothing durable, so it counts itself at once.
      if (this.poll(this.id, true) === 'won') {
        this.campaign('election');
        return;
      }
    } else {
      // Our own vote counts only once the new term and vote are durable (§5.1): it comes back
      // to us after persistence, like everyone else's. A single voter that led before its term
      // was on disk could, after a crash, lead that term again with other entries.
      this.send({ type: MessageType.VoteResponse, to: this.id, term });
    }
    for (const id of this.membership.voters) {
      if (id === this.id) continue;
      this.send({
        type: voteType,
        to: id,
        term,
        index: this.log.lastIndex(),
        logTerm: this.log.lastTerm(),
        ...(kind === 'transfer' ? { context: TRANSFER_CONTEXT } : {}),
      });
    }
  }

  private poll(id: NodeId, granted: boolean): VoteOutcome {
    if (!this.votes.has(id)) this.votes.set(id, granted);
    let yes = 0;
    let no = 0;
    for (const voter of this.membership.voters) {
      const vote = this.votes.get(voter);
      if (vote === true) yes++;
      else if (vote === false) no++;
    }
    const quorum = Math.floor(this.membership.voters.length / 2) + 1;
    if (yes >= quorum) return 'won';
    if (no > this.membership.voters.length - quorum) return 'lost';
    return 'pending';
  }

  // ---- Stepping --------------------------------------------------------------------------

  private stepMessage(m: Message): void {
    if (this.quiesced && !this.keepsQuiet(m)) this.wake();
    if (m.term > this.term) {
      if (m.type === MessageType.Vote || m.type === MessageType.PreVote) {
        const force = m.context !== undefined && bytesEqual(m.context, TRANSFER_CONTEXT);
        const inLease =
          this.config.checkQuorum && this.lead !== NONE && this.electionElapsed < this.config.electionTicks;
        // §4.2.3: a server that heard from a leader recently ignores requests to replace it,
        // so a removed or partitioned server cannot disrupt a healthy cluster.
        if (!force && inLease) return;
      }
      if (m.type === MessageType.PreVote) {
        // A pre-vote request does not change our term.
      } else if (m.type === MessageType.PreVoteResponse && !m.reject) {
        // A granted pre-vote carries the future term; the term changes only if we win.
      } else if (
        m.type === MessageType.Append ||
        m.type === MessageType.Heartbeat ||
        m.type === MessageType.Snapshot
      ) {
        this.becomeFollower(m.term, m.from);
      } else if (m.type === MessageType.Vote) {
        // Figure 2: only hearing from the leader or granting a vote restarts the election timer.
        // Adopting a candidate's term must not: a candidate whose log is behind could otherwise
        // keep resetting the timer of the one node able to win, and no leader would ever emerge.
        const { electionElapsed, randomizedElectionTimeout } = this;
        this.becomeFollower(m.term, NONE);
        this.electionElapsed = electionElapsed;
        this.randomizedElectionTimeout = randomizedElectionTimeout;
      } else {
        this.becomeFollower(m.term, NONE);
      }
    } else if (m.term < this.term && m.term !== 0) {
      if (
        (this.config.checkQuorum || this.config.preVote) &&
        (m.type === MessageType.Heartbeat || m.type === MessageType.Append)
      ) {
        // Tell a stale leader about the newer term so it steps down; without this, a node that
        // bumped its term while cut off could never rejoin under PreVote.
        this.send({ type: MessageType.AppendResponse, to: m.from });
      } else if (m.type === MessageType.PreVote) {
        this.send({ type: MessageType.PreVoteResponse, to: m.from, term: this.term, reject: true });
      }
      return;
    }

    switch (m.type) {
      case MessageType.Hup:
        this.hup(this.config.preVote ? 'pre-election' : 'election');
        return;
      case MessageType.Vote:
      case MessageType.PreVote:
        this.handleVoteRequest(m);
        return;
      default:
        break;
    }
    switch (this.role) {
      case Role.Leader:
        this.stepLeader(m);
        return;
      case Role.Candidate:
      case Role.PreCandidate:
        this.stepCandidate(m);
        return;
      case Role.Follower:
        this.stepFollower(m);
        return;
    }
  }

  /**
   * Messages that leave a quiesced node quiesced: quiescence's own heartbeats and answers, and
   * answers to what the leader sent before it quiesced. A quiesced leader counts the followers'
   * answers to its last heartbeats; once every awaited one has quiesced it stops waiting.
   */
  private keepsQuiet(m: Message): boolean {
    if (m.type === MessageType.Heartbeat) return m.quiesce === true;
    if (m.type === MessageType.HeartbeatResponse) {
      if (m.quiesce !== true) return false;
      this.quiesceAwaited?.delete(m.from);
      if (this.quiesceAwaited?.size === 0) this.quiesceAwaited = undefined;
      return true;
    }
    return m.type === MessageType.AppendResponse && !m.reject;
  }

  private handleVoteRequest(m: Message): void {
    const responseType = m.type === MessageType.Vote ? MessageType.VoteResponse : MessageType.PreVoteResponse;
    const canVote =
      this.vote === m.from ||
      (this.vote === NONE && this.lead === NONE) ||
      (m.type === MessageType.PreVote && m.term > this.term);
    if (canVote && this.log.isUpToDate(m.index, m.logTerm)) {
      // The response carries the request's term so a pre-candidate can count it.
      this.send({ type: responseType, to: m.from, term: m.term });
      if (m.type === MessageType.Vote) {
        this.electionElapsed = 0;
        this.vote = m.from;
      }
    } else {
      this.send({ type: responseType, to: m.from, term: this.term, reject: true });
    }
  }

  private stepLeader(m: Message): void {
    switch (m.type) {
      case MessageType.Beat:
        this.bcastHeartbeat(this.readIndexQueue.lastContext());
        return;
      case MessageType.ReadIndex:
        if (!this.progress.has(m.from)) return;
        if (this.readIndexQueue.size + this.pendingReadIndex.length >= this.config.maxPendingReadIndex)
          return;
        this.handleReadIndex(m);
        return;
      default:
        break;
    }
    const pr = this.progress.get(m.from);
    if (pr === undefined) return;
    switch (m.type) {
      case MessageType.AppendResponse:
        this.handleAppendResponse(m, pr);
        return;
      case MessageType.HeartbeatResponse:
        this.handleHeartbeatResponse(m, pr);
        return;
      case MessageType.Unreachable:
        if (pr.state === ProgressState.Replicate) pr.becomeProbe();
        return;
      default:
        return;
    }
  }

  private stepCandidate(m: Message): void {
    const expected = this.role === Role.PreCandidate ? MessageType.PreVoteResponse : MessageType.VoteResponse;
    switch (m.type) {
      case MessageType.Append:
        this.becomeFollower(m.term, m.from);
        this.handleAppendEntries(m);
        return;
      case MessageType.Heartbeat:
        this.becomeFollower(m.term, m.from);
        this.handleHeartbeat(m);
        return;
      case MessageType.Snapshot:
        this.becomeFollower(m.term, m.from);
        this.handleSnapshot(m);
        return;
      case expected: {
        if (!this.membership.voters.includes(m.from)) return;
        // A granted pre-vote counts only for the round we are in (its term is ours plus one).
        if (this.role === Role.PreCandidate && !m.reject && m.term !== this.term + 1) return;
        const outcome = this.poll(m.from, !m.reject);
        if (outcome === 'won') {
          if (this.role === Role.PreCandidate) this.campaign('election');
          else {
            this.becomeLeader();
            this.bcastAppend();
          }
        } else if (outcome === 'lost') {
          this.becomeFollower(this.term, NONE);
        }
        return;
      }
      default:
        return;
    }
  }

  private stepFollower(m: Message): void {
    switch (m.type) {
      case MessageType.Append:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleAppendEntries(m);
        return;
      case MessageType.Heartbeat:
        this.electionElapsed = 0;
        this.lead = m.from;
        // The leader is idle and stops its heartbeats: stop the election timer with it.
        if (m.quiesce === true) this.quiesced = true;
        this.handleHeartbeat(m);
        return;
      case MessageType.Snapshot:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleSnapshot(m);
        return;
      case MessageType.TimeoutNow:
        // §3.10: the leader asks us to start an election at once, skipping the pre-vote.
        // Only this term's leader can send it (election safety), even if we have not heard from it yet.
        if (this.promotable() && (m.from === this.lead || this.lead === NONE)) this.hup('transfer');
        return;
      case MessageType.ReadIndexResponse:
        if (m.context !== undefined) this.readStates.push({ index: m.index, context: m.context });
        return;
      default:
        return;
    }
  }

  // ---- Replication: follower side --------------------------------------------------------

  private handleAppendEntries(m: Message): void {
    if (m.index < this.log.committed) {
      this.send({ type: MessageType.AppendResponse, to: m.from, index: this.log.committed });
      return;
    }
    const lastNewIndex = this.log.maybeAppend(m.index, m.logTerm, m.commit, m.entries);
    if (lastNewIndex !== undefined) {
      if (m.replyOnlyOnReject !== true || m.entries.length > 0) {
        this.send({ type: MessageType.AppendResponse, to: m.from, index: lastNewIndex });
      }
      return;
    }
    // Reject with a hint (§5.3 optimisation): the last index whose term is ≤ the leader's
    // term there, so the leader can skip a whole conflicting term per round trip.
    const hintIndex = this.log.findConflictByTerm(Math.min(m.index, this.log.lastIndex()), m.logTerm);
    const hintTerm = this.log.term(hintIndex) ?? 0;
    this.send({
      type: MessageType.AppendResponse,
      to: m.from,
      index: m.index,
      reject: true,
      rejectHint: hintIndex,
      logTerm: hintTerm,
    });
  }

  private handleHeartbeat(m: Message): void {
    // The leader sends at most our match index as commit, so this never commits an unknown entry.
    this.log.commitTo(Math.min(m.commit, this.log.lastIndex()));
    this.send({
      type: MessageType.HeartbeatResponse,
      to: m.from,
      ...(m.context ? { context: m.context } : {}),
      ...(this.quiesced ? { quiesce: true } : {}),
    });
  }

  private handleSnapshot(m: Message): void {
    const snapshot = m.snapshot!; // Present: step() refuses a Snapshot message without one.
    if (this.restore(snapshot)) {
      this.send({ type: MessageType.AppendResponse, to: m.from, index: this.log.lastIndex() });
    } else {
      this.send({ type: MessageType.AppendResponse, to: m.from, index: this.log.committed });
    }
  }

  /** Installs a snapshot from the leader; false if we already have what it holds. */
  private restore(snapshot: Snapshot): boolean {
    const { index, term, membership } = snapshot.metadata;
    if (index <= this.log.committed) return false;
    // A snapshot need not list us: a joiner gets one taken before it was added, and learns of
    // its own addition from the entries that follow.
    if (this.log.matchTerm(index, term)) {
      // Our log already has the snapshot's last entry: just advance commit.
      this.log.commitTo(index);
      return false;
    }
    this.log.restore(snapshot);
    this.memberships.reset(membership, index);
    this.rebuildProgress();
    return true;
  }

  // ---- Replication: leader side ----------------------------------------------------------

  private appendAsLeader(type: EntryType, data: Uint8Array): Result<{ index: number; term: number }> {
    const entry: Entry = { term: this.term, index: this.log.lastIndex() + 1, type, data };
    if (
      this.uncommittedBytes > 0 &&
      data.length > 0 &&
      this.uncommittedBytes + data.length > this.config.maxUncommittedBytes
    ) {
      return fail(
        'UNCOMMITTED_LIMIT',
        `${this.uncommittedBytes} uncommitted bytes; another ${data.length} would pass maxUncommittedBytes ${this.config.maxUncommittedBytes}`,
        this.lead,
      );
    }
    this.appendEntries([entry]);
    this.bcastAppend();
    return ok({ index: entry.index, term: entry.term });
  }

  private appendEntries(entries: Entry[]): void {
    let index = this.log.lastIndex();
    const stamped = entries.map((entry) => ({ ...entry, term: this.term, index: ++index }));
    this.uncommittedBytes += entriesBytes(stamped);
    this.log.append(stamped);
    // The leader counts itself only once these entries are durable (see onPersisted).
  }

  /**
   * Appends to all followers go out once per Ready (see flushAppendBroadcast), so proposals
   * and acknowledgements that arrive together share one Append per follower.
   */
  private bcastAppend(): void {
    this.appendBroadcastPending = true;
  }

  /** Sends the Appends a bcastAppend() asked for; RawNode calls it before building a Ready. */
  flushAppendBroadcast(): void {
    if (!this.appendBroadcastPending) return;
    this.appendBroadcastPending = false;
    if (this.role !== Role.Leader) return;
    for (const id of this.progress.keys()) {
      if (id !== this.id) this.maybeSendAppend(id, true, true);
    }
  }

  private sendAppend(to: NodeId): void {
    this.maybeSendAppend(to, true);
  }

  /**
   * Sends one Append (or a snapshot) to `to` if its window allows; returns whether it sent.
   * `broadcast`: sent by the broadcast after a proposal or a commit. Such an append without
   * entries to a follower in Replicate state is a commit notice, flagged replyOnlyOnReject: a
   * success would report `index`, which the follower acknowledged already or will acknowledge
   * in its answer to the append that carried it. If that answer is lost, the next heartbeat
   * answer finds match behind and sends an unflagged append, which is answered.
   */
  private maybeSendAppend(to: NodeId, sendIfEmpty: boolean, broadcast = false): boolean {
    const pr = this.progress.get(to);
    if (pr === undefined || pr.isPaused()) return false;
    const prevIndex = pr.next - 1;
    const prevTerm = this.log.term(prevIndex);
    const entries = this.log.entriesFrom(pr.next, this.config.maxMessageBytes);
    if (prevTerm === undefined || entries === undefined) return this.maybeSendSnapshot(to, pr);
    if (entries.length === 0 && !sendIfEmpty) return false;
    this.send({
      type: MessageType.Append,
      to,
      index: prevIndex,
      logTerm: prevTerm,
      entries,
      commit: this.log.committed,
      replyOnlyOnReject: broadcast && entries.length === 0 && pr.state === ProgressState.Replicate,
    });
    const last = entries.length > 0 ? entries[entries.length - 1]!.index : prevIndex;
    pr.sentEntries(last, entriesBytes(entries), entries.length);
    return true;
  }

  private maybeSendSnapshot(to: NodeId, pr: Progress): boolean {
    if (!pr.recentActive) return false;
    let snapshot: Snapshot;
    try {
      snapshot = this.log.snapshot();
    } catch {
      return false; // Temporarily unavailable; the next heartbeat response retries.
    }
    if (snapshot.metadata.index === 0) return false;
    this.send({ type: MessageType.Snapshot, to, snapshot });
    pr.becomeSnapshot(snapshot.metadata.index);
    return true;
  }

  private handleAppendResponse(m: Message, pr: Progress): void {
    // An acknowledgement of entries we never had can only come from a broken peer.
    if (!m.reject && m.index > this.log.lastIndex()) return;
    pr.recentActive = true;
    if (m.reject) {
      let nextProbe = m.rejectHint;
      if (m.logTerm > 0) nextProbe = this.log.findConflictByTerm(m.rejectHint, m.logTerm);
      if (pr.maybeDecreaseTo(m.index, nextProbe)) {
        if (pr.state === ProgressState.Replicate) pr.becomeProbe();
        this.sendAppend(m.from);
      }
      return;
    }
    const wasPaused = pr.isPaused();
    if (!(pr.maybeUpdate(m.index) || (pr.match === m.index && pr.state === ProgressState.Probe))) return;
    if (pr.state === ProgressState.Probe) {
      pr.becomeReplicate();
    } else if (pr.state === ProgressState.Snapshot && pr.match + 1 >= this.log.firstIndex()) {
      pr.becomeProbe();
      pr.becomeReplicate();
    } else if (pr.state === ProgressState.Replicate) {
      pr.inflights.freeLE(m.index);
    }
    if (this.maybeCommit()) {
      this.bcastAppend();
    } else if (wasPaused) {
      this.sendAppend(m.from);
    }
    // Pipelining: keep the window full while the follower catches up.
    while (this.maybeSendAppend(m.from, false)) {}
    if (m.from === this.leadTransferee && pr.match === this.log.lastIndex()) this.sendTimeoutNow(m.from);
  }

  private handleHeartbeatResponse(m: Message, pr: Progress): void {
    pr.recentActive = true;
    pr.probeSent = false;
    if (pr.state === ProgressState.Replicate && pr.inflights.full()) pr.inflights.freeFirstOne();
    if (pr.match < this.log.lastIndex()) this.sendAppend(m.from);
    if (m.context === undefined) return;
    const acks = this.readIndexQueue.ack(m.from, m.context);
    if (acks === undefined) return;
    acks.add(this.id);
    if (!this.isQuorum(acks)) return;
    for (const read of this.readIndexQueue.releaseThrough(m.context))
      this.answerRead(read.from, read.index, read.context);
  }

  private handleReadIndex(m: Message): void {
    const context = m.context ?? new Uint8Array(0);
    if (!this.committedEntryInCurrentTerm()) {
      // §6.4 step 1: the leader's commit index is only known once it commits an entry of its term.
      this.pendingReadIndex.push(m);
      return;
    }
    if (this.membership.voters.length === 1 && this.isVoter(this.id)) {
      this.answerRead(m.from, this.log.committed, context);
      return;
    }
    if (this.readIndexQueue.add(this.log.committed, m.from, context) === undefined) return;
    this.readIndexQueue.ack(this.id, context);
    this.bcastHeartbeat(context);
  }

  private answerRead(from: NodeId, index: number, context: Uint8Array): void {
    if (from === this.id) this.readStates.push({ index, context });
    else this.send({ type: MessageType.ReadIndexResponse, to: from, index, context });
  }

  private releasePendingReadIndex(): void {
    if (this.pendingReadIndex.length === 0 || !this.committedEntryInCurrentTerm()) return;
    const pending = this.pendingReadIndex;
    this.pendingReadIndex = [];
    for (const m of pending) this.handleReadIndex(m);
  }

  private bcastHeartbeat(context: Uint8Array | undefined, quiesce = false): void {
    for (const [id, pr] of this.progress) {
      if (id === this.id) continue;
      this.send({
        type: MessageType.Heartbeat,
        to: id,
        // Never tell a follower to commit past what it is known to hold.
        commit: Math.min(pr.match, this.log.committed),
        ...(context ? { context } : {}),
        ...(quiesce ? { quiesce } : {}),
      });
    }
  }

  private sendTimeoutNow(to: NodeId): void {
    this.send({ type: MessageType.TimeoutNow, to });
  }

  private abortLeaderTransfer(): void {
    this.leadTransferee = NONE;
  }

  /** Commits the highest index a quorum of voters holds, if it is of the current term (§5.4.2). */
  private maybeCommit(): boolean {
    const matches = this.membership.voters
      .map((id) => this.progress.get(id)?.match ?? 0)
      .sort((a, b) => b - a);
    if (matches.length === 0) return false;
    const quorumIndex = matches[Math.floor(matches.length / 2)]!;
    const committed = this.log.maybeCommit(quorumIndex, this.term);
    if (committed) this.releasePendingReadIndex();
    return committed;
  }

  private committedEntryInCurrentTerm(): boolean {
    return this.log.term(this.log.committed) === this.term;
  }

  private isQuorum(ids: ReadonlySet<NodeId>): boolean {
    let count = 0;
    for (const id of this.membership.voters) if (ids.has(id)) count++;
    return count >= Math.floor(this.membership.voters.length / 2) + 1;
  }

  /** CheckQuorum: were a quorum of voters active since the last check? Resets the marks. */
  private quorumActive(): boolean {
    const active = new Set<NodeId>();
    for (const [id, pr] of this.progress) {
      if (id === this.id || pr.recentActive) active.add(id);
      if (id !== this.id) {
        pr.activeLastRound = pr.recentActive;
        pr.recentActive = false;
      }
    }
    return this.isQuorum(active);
  }

  // ---- Membership ------------------------------------------------------------------------

  /** The membership in effect changed: a change entered the log, or a truncation undid one. */
  private onMembershipChanged(): void {
    this.rebuildProgress();
    if (this.role !== Role.Leader) return;
    if (this.leadTransferee !== NONE && !this.isVoter(this.leadTransferee)) this.abortLeaderTransfer();
    // A smaller quorum may commit more, or already confirm pending reads; a new member needs
    // its first Append.
    this.maybeCommit();
    for (const read of this.readIndexQueue.releaseConfirmed((acks) => this.isQuorum(acks))) {
      this.answerRead(read.from, read.index, read.context);
    }
    this.bcastAppend();
  }

  /** Brings the progress map in line with the membership, keeping existing progress. */
  private rebuildProgress(): void {
    const members = new Set([...this.membership.voters, ...this.membership.learners]);
    for (const id of [...this.progress.keys()]) if (!members.has(id)) this.progress.delete(id);
    for (const id of members) {
      const isLearner = this.membership.learners.includes(id);
      const existing = this.progress.get(id);
      if (existing) {
        existing.isLearner = isLearner;
        continue;
      }
      const pr = new Progress(
        this.log.lastIndex() + 1,
        isLearner,
        this.config.maxInflightMessages,
        this.config.maxInflightBytes,
      );
      // A new member counts as active so the leader will send it a snapshot if needed.
      pr.recentActive = true;
      if (id === this.id) pr.match = this.log.stableLastIndex();
      this.progress.set(id, pr);
    }
  }

  // ---- Output ----------------------------------------------------------------------------

  private send(m: Partial<Message> & Pick<Message, 'type' | 'to'>): void {
    // Built field by field so every message has one shape (it is the hottest allocation).
    const stamped: Message = {
      type: m.type,
      from: this.id,
      to: m.to,
      term: m.term ? m.term : this.term,
      logTerm: m.logTerm ?? 0,
      index: m.index ?? 0,
      entries: m.entries ?? NO_ENTRIES,
      commit: m.commit ?? 0,
      reject: m.reject ?? false,
      rejectHint: m.rejectHint ?? 0,
      snapshot: m.snapshot,
      context: m.context,
      replyOnlyOnReject: m.replyOnlyOnReject === true ? true : undefined,
      quiesce: m.quiesce === true ? true : undefined,
    };
    if (AFTER_PERSIST.has(stamped.type)) this.messagesAfterPersist.push(stamped);
    else this.messages.push(stamped);
  }
}

/** Why a message from the wire cannot be stepped, or undefined if it is well-formed. */
function messageProblem(m: Message, self: NodeId): string | undefined {
  if (typeof m !== 'object' || m === null) return 'not an object';
  if (!(m.type in MessageType) || typeof m.type !== 'number') return `unknown type ${String(m.type)}`;
  if (typeof m.from !== 'string' || m.from.length === 0) return 'missing sender';
  if (m.to !== self) return `addressed to ${String(m.to)}, not ${self}`;
  for (const field of ['term', 'logTerm', 'index', 'commit', 'rejectHint'] as const) {
    const value = m[field];
    if (!Number.isSafeInteger(value) || value < 0) return `${field} is not a non-negative integer`;
  }
  if (m.replyOnlyOnReject !== undefined && typeof m.replyOnlyOnReject !== 'boolean') {
    return 'replyOnlyOnReject is not a boolean';
  }
  if (m.quiesce !== undefined && typeof m.quiesce !== 'boolean') return 'quiesce is not a boolean';
  if (m.quiesce === true && m.type !== MessageType.Heartbeat && m.type !== MessageType.HeartbeatResponse) {
    return `quiesce on a message of type ${m.type}`;
  }
  if (!Array.isArray(m.entries)) return 'entries is not an array';
  if (m.context !== undefined && !(m.context instanceof Uint8Array)) return 'context is not bytes';
  if (m.snapshot !== undefined && m.type !== MessageType.Snapshot)
    return `snapshot on a message of type ${m.type}`;
  // Every message between peers carries its sender's term; only local messages have none.
  if (m.term === 0 && !LOCAL_MESSAGE_TYPES.has(m.type)) return 'term 0 on a peer message';
  // Checked before any state changes: a bad message from a newer term must not depose our leader.
  if (m.type === MessageType.Append && !entriesFollow(m))
    return 'entries do not follow the message index and term';
  if (m.type !== MessageType.Append && m.entries.length > 0) return `entries on a message of type ${m.type}`;
  if (m.type === MessageType.Snapshot) {
    const problem = snapshotProblem(m.snapshot);
    if (problem !== undefined) return problem;
  }
  return undefined;
}

function snapshotProblem(snapshot: Snapshot | undefined): string | undefined {
  if (typeof snapshot !== 'object' || snapshot === null) return 'snapshot message without a snapshot';
  const { metadata, data } = snapshot;
  if (typeof metadata !== 'object' || metadata === null) return 'snapshot without metadata';
  if (!Number.isSafeInteger(metadata.index) || metadata.index < 1)
    return 'snapshot index is not a positive integer';
  if (!Number.isSafeInteger(metadata.term) || metadata.term < 1)
    return 'snapshot term is not a positive integer';
  const membership = metadata.membership;
  if (typeof membership !== 'object' || membership === null) return 'snapshot without membership';
  for (const list of [membership.voters, membership.learners]) {
    if (!Array.isArray(list) || !list.every((id) => typeof id === 'string' && id.length > 0)) {
      return 'snapshot membership is not two lists of node ids';
    }
  }
  if (membership.voters.length === 0) return 'snapshot membership has no voters';
  if (!(data instanceof Uint8Array)) return 'snapshot data is not bytes';
  return undefined;
}

/** Entries of an Append must follow its index contiguously, with terms not above the message's. */
function entriesFollow(m: Message): boolean {
  let expected = m.index + 1;
  let previousTerm = m.logTerm;
  for (const entry of m.entries) {
    if (typeof entry !== 'object' || entry === null) return false;
    if (!Number.isSafeInteger(entry.term) || !Number.isSafeInteger(entry.index)) return false;
    if (entry.index !== expected || entry.term < previousTerm || entry.term > m.term) return false;
    if (
      !(entry.data instanceof Uint8Array) ||
      (entry.type !== EntryType.Normal && entry.type !== EntryType.MembershipChange)
    ) {
      return false;
    }
    expected++;
    previousTerm = entry.term;
  }
  return true;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
