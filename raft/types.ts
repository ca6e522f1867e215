// The data types of the raft core: entries, messages, hard state, membership, snapshots, Ready.

/** A node's identity within one raft group: a non-empty string chosen by the application. */
export type NodeId = string;

/** The absent node id: no leader known, no vote cast. */
export const NONE: NodeId = '';

export enum EntryType {
  /** Application data, opaque to raft (an empty payload is the leader's no-op). */
  Normal = 0,
  /** A membership change encoded with encodeMembershipChange(). */
  MembershipChange = 1,
}

/** One log entry. `data` is opaque bytes; raft never looks inside a Normal entry. */
export interface Entry {
  readonly term: number;
  readonly index: number;
  readonly type: EntryType;
  readonly data: Uint8Array;
}

/** The state that must be on disk before any message that depends on it is sent (§5.1, Figure 2). */
export interface HardState {
  readonly term: number;
  readonly vote: NodeId;
  readonly commit: number;
}

/** The membership: voters elect and count for commit; learners only replicate. Disjoint sets. */
export interface Membership {
  readonly voters: readonly NodeId[];
  readonly learners: readonly NodeId[];
}

export interface SnapshotMetadata {
  readonly index: number;
  readonly term: number;
  /** The membership as of `index`. */
  readonly membership: Membership;
}

/**
 * A point-in-time image of the state machine. `data` is opaque to raft: the state
 * itself for small machines, or a descriptor the application uses to stream a file.
 */
export interface Snapshot {
  readonly metadata: SnapshotMetadata;
  readonly data: Uint8Array;
}

export enum MessageType {
  /** Local: start an election. */
  Hup = 0,
  /** Local: the leader should broadcast heartbeats. */
  Beat = 1,
  Append = 2,
  AppendResponse = 3,
  Vote = 4,
  VoteResponse = 5,
  PreVote = 6,
  PreVoteResponse = 7,
  Snapshot = 8,
  Heartbeat = 9,
  HeartbeatResponse = 10,
  TimeoutNow = 11,
  ReadIndex = 12,
  ReadIndexResponse = 13,
  TransferLeader = 14,
  /** Local: the transport could not reach `from`'s peer. */
  Unreachable = 15,
  /** Local: a snapshot send finished (`reject` means it failed). */
  SnapshotStatus = 16,
}

/** Message types that only the local application may step; a peer sending one is ignored. */
export const LOCAL_MESSAGE_TYPES: ReadonlySet<MessageType> = new Set([
  MessageType.Hup,
  MessageType.Beat,
  MessageType.Unreachable,
  MessageType.SnapshotStatus,
  MessageType.TransferLeader,
]);

/** One raft message. Fields that a type does not use are zero, false or empty. */
export interface Message {
  readonly type: MessageType;
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: number;
  /** Append: term of the entry at `index`. Rejections: term of the hint entry. */
  readonly logTerm: number;
  readonly index: number;
  readonly entries: readonly Entry[];
  readonly commit: number;
  readonly reject: boolean;
  readonly rejectHint: number;
  readonly snapshot?: Snapshot;
  /** ReadIndex request context, echoed in heartbeats and read states; or the campaign kind. */
  readonly context?: Uint8Array;
  /**
   * Append only: the leader learns nothing from a successful answer (it carries no entries, and
   * `index` was sent in an earlier append whose own answer reports it), so the follower answers
   * only a rejection. This is the commit notice a leader sends after each commit: answered, it
   * costs every write a second round of answers that each wake the leader for nothing.
   */
  readonly replyOnlyOnReject?: boolean;
  /**
   * Heartbeat: the leader is idle (everything committed and held by every follower) and stops
   * its heartbeats; the follower stops its election timer until any other message arrives or
   * the application wakes it (RawNode.wake). HeartbeatResponse: the follower did so.
   */
  readonly quiesce?: boolean;
}

export enum Role {
  Follower = 'follower',
  PreCandidate = 'pre-candidate',
  Candidate = 'candidate',
  Leader = 'leader',
}

/** Volatile state the application may want to observe (not persisted). */
export interface SoftState {
  readonly leader: NodeId;
  readonly role: Role;
}

/** A linearizable read point: once the application has applied `index`, it may serve the read. */
export interface ReadState {
  readonly index: number;
  readonly context: Uint8Array;
}

/**
 * What the application must do next, in this order:
 * 1. send `messages` (they may go at once, in parallel with step 2);
 * 2. persist `snapshot`, then `entries` (replacing any conflicting suffix), then `hardState`,
 *    with an fsync when `mustSync`;
 * 3. only then send `messagesAfterPersist`, and call advancePersisted(ready);
 * 4. apply `snapshot` (if any) and then `committedEntries`, in order, and call
 *    advanceApplied(ready). (advance(ready) does both acknowledgements at once.)
 * Steps 2-3 of later Readies may run before step 4 of earlier ones: a node's durable append
 * counts toward commit without waiting for its state machine.
 */
export interface Ready {
  readonly softState?: SoftState;
  readonly hardState?: HardState;
  readonly entries: readonly Entry[];
  readonly snapshot?: Snapshot;
  readonly committedEntries: readonly Entry[];
  readonly messages: readonly Message[];
  readonly messagesAfterPersist: readonly Message[];
  readonly readStates: readonly ReadState[];
  readonly mustSync: boolean;
}

export function emptyHardState(): HardState {
  return { term: 0, vote: NONE, commit: 0 };
}

export function isEmptyHardState(hardState: HardState): boolean {
  return hardState.term === 0 && hardState.vote === NONE && hardState.commit === 0;
}

export function hardStateEqual(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

const EMPTY_ENTRIES: readonly Entry[] = Object.freeze([]);

/** Builds a message with every unused field zeroed. */
export function message(fields: Partial<Message> & Pick<Message, 'type' | 'from' | 'to'>): Message {
  return {
    term: 0,
    logTerm: 0,
    index: 0,
    entries: EMPTY_ENTRIES,
    commit: 0,
    reject: false,
    rejectHint: 0,
    ...fields,
  };
}

/** The payload size of entries as counted by every byte limit in raft. */
export function entriesBytes(entries: readonly Entry[]): number {
  let bytes = 0;
  for (const entry of entries) bytes += entry.data.length;
  return bytes;
}
