// One simulated server: a RawNode driven like the real driver, with a persistence queue a crash can lose.

import {
  type Entry,
  EntryType,
  type Membership,
  MemoryStorage,
  type Message,
  type NodeId,
  RawNode,
  type ReadState,
  type Ready,
  Role,
  SeededPrng,
  type Snapshot,
} from '../../raft/index.js';
import type { SafetyChecker } from './checkers.js';
import { KvStateMachine } from './kv.js';

export interface SimNodeHooks {
  send(message: Message): void;
  /** A committed entry was applied on `node`; `result` is the state machine's answer. */
  applied(node: SimNode, entry: Entry): void;
  readState(node: SimNode, readState: ReadState): void;
  crashed(node: SimNode): void;
  /** `node` has just become leader (seen in a Ready). */
  becameLeader(node: SimNode): void;
}

export interface SimRaftOptions {
  preVote: boolean;
  checkQuorum: boolean;
  electionTicks: number;
  heartbeatTicks: number;
  maxMessageBytes: number;
  maxInflightMessages: number;
  /** Idle heartbeat ticks before a leader quiesces its group; 0 or absent: never. */
  quiesceAfterTicks?: number;
}

interface Persisting {
  readonly ready: Ready;
  readonly persistAt: number;
}

interface Applying {
  readonly ready: Ready;
  readonly applyAt: number;
}

export class SimNode {
  readonly storage: MemoryStorage;
  raft: RawNode | undefined;
  kv = new KvStateMachine();
  appliedIndex = 0;
  /** Ticks per global tick, e.g. 0.8 for a slow clock (tick skew). */
  readonly tickRate: number;
  private tickCredit = 0;
  private queue: Persisting[] = [];
  /** Durable Readies waiting to be applied: the real driver applies apart from persisting. */
  private applyQueue: Applying[] = [];
  private lastRole: Role = Role.Follower;
  private lastCommit = 0;
  restarts = 0;
  /** A paused process (a long GC, a stopped VM) neither ticks nor reads nor writes until then. */
  pausedUntil = 0;
  /** Messages that arrived while paused, read on resume. */
  readonly inbox: Message[] = [];

  constructor(
    readonly id: NodeId,
    /** Founders start from the bootstrap snapshot; joiners start empty. */
    founder: boolean,
    membership: Membership,
    private readonly options: SimRaftOptions,
    private readonly prng: SeededPrng,
    private readonly checker: SafetyChecker,
    private readonly hooks: SimNodeHooks,
  ) {
    this.storage = founder ? MemoryStorage.bootstrap(membership) : new MemoryStorage();
    this.tickRate = 0.7 + prng.nextFloat() * 0.6;
    this.start();
  }

  get alive(): boolean {
    return this.raft !== undefined;
  }

  /** Boots from what is durable: the storage's snapshot, log and hard state. */
  start(): void {
    const snapshot = this.storage.snapshot();
    this.storage.setMembership(snapshot.metadata.membership);
    this.kv = KvStateMachine.deserialize(snapshot.data);
    this.appliedIndex = snapshot.metadata.index;
    this.lastRole = Role.Follower;
    this.lastCommit = 0;
    this.raft = new RawNode({
      id: this.id,
      storage: this.storage,
      prng: new SeededPrng(this.prng.nextUint32()),
      applied: this.appliedIndex,
      electionTicks: this.options.electionTicks,
      heartbeatTicks: this.options.heartbeatTicks,
      maxMessageBytes: this.options.maxMessageBytes,
      maxInflightMessages: this.options.maxInflightMessages,
      preVote: this.options.preVote,
      checkQuorum: this.options.checkQuorum,
      ...(this.options.quiesceAfterTicks ? { quiesceAfterTicks: this.options.quiesceAfterTicks } : {}),
    });
  }

  /** Loses everything not yet persisted: the Readies in the queue and all volatile state. */
  crash(): void {
    if (!this.raft) return;
    this.raft = undefined;
    this.queue = [];
    this.applyQueue = [];
    this.inbox.length = 0;
    this.pausedUntil = 0;
    this.hooks.crashed(this);
  }

  restart(): void {
    if (this.raft) return;
    this.restarts++;
    this.start();
  }

  get persistQueueLength(): number {
    return this.queue.length;
  }

  isPaused(now: number): boolean {
    return now < this.pausedUntil;
  }

  tick(now: number): void {
    if (!this.raft || this.isPaused(now)) return;
    this.tickCredit += this.tickRate;
    while (this.tickCredit >= 1) {
      this.tickCredit -= 1;
      this.raft.tick();
    }
  }

  /** Takes every available Ready: sends what may go at once and queues the rest for persistence. */
  collect(now: number, persistDelay: () => number): void {
    const raft = this.raft;
    if (!raft || this.isPaused(now)) return;
    while (raft.hasReady()) {
      const ready = raft.ready();
      if (ready.softState) {
        if (ready.softState.role === Role.Leader && this.lastRole !== Role.Leader) {
          const status = raft.status();
          this.checker.leaderElected(
            this.id,
            status.term,
            {
              firstIndex: raft.firstIndex(),
              lastIndex: status.lastIndex,
              termAt: (index) => raft.logTerm(index),
            },
            this.restarts,
          );
          this.hooks.becameLeader(this);
        }
        this.lastRole = ready.softState.role;
      }
      if (ready.hardState) {
        const { commit, term } = ready.hardState;
        this.checker.commitObserved(this.id, this.lastCommit, commit, term, raft.logTerm(commit));
        this.lastCommit = ready.hardState.commit;
      }
      for (const message of ready.messages) this.hooks.send(message);
      for (const readState of ready.readStates) this.hooks.readState(this, readState);
      const previous = this.queue[this.queue.length - 1]?.persistAt ?? now;
      this.queue.push({ ready, persistAt: Math.max(previous, now + persistDelay()) });
    }
  }

  /**
   * Completes the persistence of queued Readies that are due, in order (each then waits
   * `applyDelay()` more steps, after the one before it, to be applied), then applies the
   * durable Readies that are due, in order: persistence runs ahead of application, as in the
   * real driver.
   */
  persistDue(now: number, applyDelay: () => number): void {
    if (this.isPaused(now)) return;
    while (this.raft && this.queue.length > 0 && this.queue[0]!.persistAt <= now) {
      const { ready } = this.queue.shift()!;
      this.persist(ready);
      for (const message of ready.messagesAfterPersist) this.hooks.send(message);
      this.raft.advancePersisted(ready);
      const previous = this.applyQueue[this.applyQueue.length - 1]?.applyAt ?? now;
      this.applyQueue.push({ ready, applyAt: Math.max(previous, now + applyDelay()) });
    }
    while (this.raft && this.applyQueue.length > 0 && this.applyQueue[0]!.applyAt <= now) {
      const { ready } = this.applyQueue.shift()!;
      this.apply(ready);
      this.raft.advanceApplied(ready);
      this.storage.setMembership(this.raft.membership());
      const lastChange = ready.committedEntries.findLast(
        (entry) => entry.type === EntryType.MembershipChange,
      );
      // Only when the membership is as of that entry (a snapshot installed since supersedes it).
      if (lastChange && this.raft.status().appliedMembershipIndex === lastChange.index) {
        this.checker.membershipApplied(this.id, lastChange.index, this.raft.membership());
      }
    }
  }

  private persist(ready: Ready): void {
    if (ready.snapshot) this.installSnapshot(ready.snapshot);
    this.storage.append(ready.entries);
    for (const entry of ready.entries) {
      let previousTerm: number | undefined;
      try {
        previousTerm = this.storage.term(entry.index - 1);
      } catch {
        previousTerm = undefined;
      }
      this.checker.entryPersisted(this.id, entry, previousTerm);
    }
    // Like the real driver, often skip writing a Ready that only moves the commit index:
    // raft must recover the commit index from the applied index and the leader.
    const commitOnly = ready.entries.length === 0 && !ready.snapshot && !ready.mustSync;
    if (ready.hardState && !(commitOnly && this.prng.chance(0.7))) this.storage.setHardState(ready.hardState);
  }

  private installSnapshot(snapshot: Snapshot): void {
    this.storage.applySnapshot(snapshot);
    this.kv = KvStateMachine.deserialize(snapshot.data);
    this.appliedIndex = snapshot.metadata.index;
    this.checker.snapshotInstalled(this.id, snapshot.metadata.index, snapshot.metadata.term);
  }

  private apply(ready: Ready): void {
    for (const entry of ready.committedEntries) {
      if (entry.index <= this.appliedIndex) continue; // Covered by a snapshot installed in this Ready.
      this.checker.entryApplied(this.id, entry, this.appliedIndex);
      this.appliedIndex = entry.index;
      this.hooks.applied(this, entry);
    }
  }

  /** Takes a snapshot at the applied index and compacts all but `keepEntries` entries before it. */
  snapshotAndCompact(keepEntries: number): void {
    const raft = this.raft;
    if (!raft || this.appliedIndex <= this.storage.firstIndex()) return;
    // Only what is durable may be compacted; applied entries always are.
    const index = Math.min(this.appliedIndex, this.storage.lastIndex());
    if (index !== this.appliedIndex) return;
    this.storage.createSnapshot(index, raft.membership(), this.kv.serialize());
    const compactTo = index - keepEntries;
    if (compactTo >= this.storage.firstIndex()) this.storage.compact(compactTo);
  }

  isLeader(): boolean {
    return this.raft?.status().role === Role.Leader;
  }

  /** Entries applied here whose type is a membership change are handled by raft itself. */
  static isCommand(entry: Entry): boolean {
    return entry.type === EntryType.Normal && entry.data.length > 0;
  }
}
