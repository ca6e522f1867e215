// Drives one raft group with real time and I/O: ticks, pipelined persistence, sending, applying, waiting clients.

import {
  type Entry,
  type MembershipChange,
  type Message,
  type RaftError,
  type RaftStatus,
  type RawNode,
  type Ready,
  Role,
  type Snapshot,
} from '../raft/index.js';
import { AppendClock } from './append-clock.js';

export type { Logger } from '../net/log.js';

import type { Logger } from '../net/log.js';
import type { TickClock } from './tick-clock.js';

/**
 * Durable storage of what a Ready says to persist.
 *
 * Contract: persist() may be called again before an earlier call resolved; calls take effect
 * in call order and resolve in call order, each only once its snapshot, entries (replacing any
 * conflicting suffix) and hard state are on disk (fsync'd when `ready.mustSync`). An
 * implementation should coalesce the calls queued behind an in-flight write into one synced
 * batch (group commit). A rejection is fatal for the group: nothing after it is persisted.
 */
export interface ReadyStore {
  persist(ready: Ready): Promise<void>;
}

/**
 * The replicated state machine. Calls come in log order, one at a time: applySnapshot()
 * replaces the whole state; apply() applies committed entries and records the applied index
 * with them atomically. Results are returned per entry, in order (undefined for entries that
 * produce none, such as a leader's no-op or a membership change).
 */
export interface StateMachine<Result> {
  applySnapshot(snapshot: Snapshot): Promise<void>;
  apply(entries: readonly Entry[]): Promise<(Result | undefined)[]>;
}

/** Sends raft messages to peers; must not block. Delivery is best effort. */
export interface MessageSender {
  send(messages: readonly Message[]): void;
}

/** A leader this node learned of: when (ms since the epoch), who, in which term. */
export interface LeaderChange {
  readonly at: number;
  readonly leader: string;
  readonly term: number;
}

const MAX_LEADER_HISTORY = 20;

export interface RaftDriverOptions<Result> {
  readonly node: RawNode;
  readonly store: ReadyStore;
  readonly stateMachine: StateMachine<Result>;
  readonly sender: MessageSender;
  readonly logger: Logger;
  /** Milliseconds per raft tick. */
  readonly tickMs: number;
  /**
   * The node's shared clock (tick-clock.ts): this group ticks and drains in the same task as the
   * node's other groups. Without it the driver runs a timer of its own.
   */
  readonly clock?: TickClock;
  /** Requests waiting for their entry or read index; more are refused with UNAVAILABLE. */
  readonly maxPendingRequests: number;
}

/** Stable codes the client edge maps to HTTP answers. All but TIMEOUT and UNAVAILABLE are definite. */
export type DriverErrorCode =
  | 'NOT_LEADER'
  | 'NO_LEADER'
  | 'TIMEOUT'
  | 'UNAVAILABLE'
  | 'TOO_LARGE'
  | 'STOPPED'
  /** A satellite or DR replica refuses to edit the realm definition. */
  | 'READ_ONLY';

/**
 * An operation failed. `retryable` says whether retrying elsewhere may succeed; `indeterminate`
 * says the operation may still take effect (a write that was proposed but whose fate is unknown).
 */
export class DriverError extends Error {
  constructor(
    readonly code: DriverErrorCode,
    detail: string,
    readonly leader = '',
    readonly indeterminate = false,
  ) {
    super(`${code}: ${detail}`);
    this.name = 'DriverError';
  }

  get retryable(): boolean {
    return this.code !== 'TOO_LARGE' && this.code !== 'READ_ONLY';
  }
}

interface PendingProposal<Result> {
  readonly index: number;
  readonly term: number;
  readonly resolve: (result: Result | undefined) => void;
  readonly reject: (error: DriverError) => void;
  readonly timer: NodeJS.Timeout;
}

interface PendingRead {
  readonly context: string;
  /** The term the request was made in: raft drops it if the term changes or leadership is lost. */
  readonly term: number;
  index: number | undefined;
  readonly resolve: (index: number) => void;
  readonly reject: (error: DriverError) => void;
  readonly timer: NodeJS.Timeout;
}

/**
 * Owns one RawNode. Everything that touches the node runs on the event loop, so there are
 * no concurrent calls into raft. Readies are taken as soon as they appear: their `messages`
 * go out at once, their persistence is started at once (the store pipelines and group-commits).
 * Two chains then complete them, each strictly in Ready order: once a Ready is durable, its
 * after-persist messages go and raft is told (advancePersisted: the leader's own append counts
 * toward commit from then on); once it is durable and the Readies before it are applied, its
 * committed entries are applied and raft is told (advanceApplied). Persistence thus runs ahead
 * of application instead of waiting for it.
 */
export class RaftDriver<Result> {
  private readonly node: RawNode;
  private readonly options: RaftDriverOptions<Result>;
  private ticker: NodeJS.Timeout | undefined;
  /** Removes this group from the shared clock (when it ticks on one). */
  private unclock: (() => void) | undefined;
  private scheduled = false;
  private stopped = false;
  /** The in-order chain of Readies becoming durable (after-persist messages, advancePersisted). */
  private persisting: Promise<void> = Promise.resolve();
  /** The in-order chain of applies (apply, advanceApplied); each also waits for its Ready to be durable. */
  private applying: Promise<void> = Promise.resolve();
  private inFlightReadies = 0;
  /** When this node appended its entries: members' lag in ms, as the leader reports it. */
  readonly appends = new AppendClock();
  private failureCause: Error | undefined;
  private appliedIndex = 0;
  private readonly proposals = new Map<number, PendingProposal<Result>>();
  private readonly reads = new Map<string, PendingRead>();
  private nextReadId = 1;
  private lastRole: Role = Role.Follower;
  private lastLeader = '';
  private readonly stateListeners = new Set<(status: RaftStatus) => void>();
  private readonly counts = { proposals: 0, proposalsFailed: 0, messagesRefused: 0, leaderChanges: 0 };

  /** Running totals: proposals (and those that failed), peers' messages refused, leaders seen. */
  counters(): { proposals: number; proposalsFailed: number; messagesRefused: number; leaderChanges: number } {
    return { ...this.counts };
  }
  private readonly leaderHistory: LeaderChange[] = [];
  /** The last leader changes this node learned of (at most 20), oldest first. */
  recentLeaders(): readonly LeaderChange[] {
    return [...this.leaderHistory];
  }
  private readonly failureListeners = new Set<(error: Error) => void>();

  constructor(options: RaftDriverOptions<Result>) {
    this.options = options;
    this.node = options.node;
    this.appliedIndex = options.node.status().appliedIndex;
  }

  start(): void {
    if (this.ticker !== undefined || this.unclock !== undefined || this.stopped) return;
    const clock = this.options.clock;
    if (clock !== undefined) {
      // Drained in the clock's task, beside the node's other groups: their messages share a flush.
      this.unclock = clock.add(() => {
        if (this.stopped || this.failureCause) return;
        try {
          this.node.tick();
          this.drain();
        } catch (error) {
          this.fail(error as Error);
        }
      });
    } else {
      this.ticker = setInterval(() => {
        this.node.tick();
        this.schedule();
      }, this.options.tickMs);
      this.ticker.unref?.();
    }
    this.schedule();
  }

  /** Stops ticking, fails every waiting request with STOPPED, and waits for in-flight writes. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.ticker !== undefined) clearInterval(this.ticker);
    this.ticker = undefined;
    this.unclock?.();
    this.unclock = undefined;
    this.failAll(new DriverError('STOPPED', 'the node is stopping', '', true));
    await this.persisting.catch(() => undefined);
    await this.applying.catch(() => undefined);
  }

  status(): RaftStatus {
    return this.node.status();
  }

  /** Ends the group's quiescence here (its leader looks gone): the election timer runs again. */
  wake(): void {
    if (this.stopped) return;
    this.node.wake();
    this.schedule();
  }

  /** Why the group failed (a write to storage was refused, say), or undefined while it runs. */
  get failure(): Error | undefined {
    return this.failureCause;
  }

  /** Called once if the group fails: nothing is persisted or applied after that. */
  onFailure(listener: (error: Error) => void): void {
    this.failureListeners.add(listener);
  }

  /** Called with the new status whenever this node's role or known leader changes. */
  onStateChange(listener: (status: RaftStatus) => void): () => void {
    this.stateListeners.add(listener);
    return () => this.stateListeners.delete(listener);
  }

  /**
   * Resolves once a leader is known (at once if one is), or rejects with NO_LEADER after
   * `timeoutMs`: requests that arrive during an election wait for it instead of failing.
   */
  waitForLeader(timeoutMs: number): Promise<string> {
    const known = this.node.status().leader;
    if (known !== '') return Promise.resolve(known);
    if (this.stopped) return Promise.reject(new DriverError('STOPPED', 'the node is stopping'));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        unsubscribe();
        reject(new DriverError('NO_LEADER', `no leader known after ${timeoutMs} ms`));
      }, timeoutMs);
      const unsubscribe = this.onStateChange((status) => {
        if (status.leader === '') return;
        clearTimeout(timer);
        unsubscribe();
        resolve(status.leader);
      });
    });
  }

  /** A message from a peer. Malformed messages are dropped with a log line, never thrown. */
  receive(message: Message): void {
    if (this.stopped) return;
    const result = this.node.step(message);
    if (!result.ok) {
      this.counts.messagesRefused++;
      this.options.logger.warn('raft.message_refused', { from: message.from, reason: result.error.message });
      return;
    }
    this.schedule();
  }

  /** Campaigns at once (a single-voter node at boot need not wait an election timeout). */
  campaign(): void {
    this.node.campaign();
    this.schedule();
  }

  /** The transport could not deliver to `peer`: raft stops pipelining to it until it answers. */
  reportUnreachable(peer: string): void {
    this.node.reportUnreachable(peer);
  }

  /** A snapshot send to `peer` finished (or failed): raft probes it again. */
  reportSnapshot(peer: string, succeeded: boolean): void {
    this.node.reportSnapshot(peer, succeeded);
    this.schedule();
  }

  transferLeadership(to: string): RaftError | undefined {
    const result = this.node.transferLeadership(to);
    this.schedule();
    return result.ok ? undefined : result.error;
  }

  /**
   * Proposes `data` on this node (it must lead) and resolves with the state machine's result
   * once the entry is applied here. Rejects with NOT_LEADER (definite, carries the leader),
   * TOO_LARGE or UNAVAILABLE (definite), or TIMEOUT / STOPPED / NO_LEADER after it was
   * proposed (indeterminate: it may still be applied).
   */
  propose(data: Uint8Array, timeoutMs: number): Promise<Result | undefined> {
    if (this.stopped) return Promise.reject(new DriverError('STOPPED', 'the node is stopping'));
    this.throwIfFailed();
    if (this.proposals.size + this.reads.size >= this.options.maxPendingRequests) {
      return Promise.reject(
        new DriverError('UNAVAILABLE', `${this.options.maxPendingRequests} requests already pending`),
      );
    }
    const proposed = this.node.propose(data);
    this.counts.proposals++;
    if (!proposed.ok) {
      this.counts.proposalsFailed++;
      return Promise.reject(fromRaftError(proposed.error));
    }
    const tracked = this.track(proposed.value.index, proposed.value.term, timeoutMs);
    tracked.then(undefined, () => {
      this.counts.proposalsFailed++;
    });
    return tracked;
  }

  /**
   * Proposes one membership change (dissertation §4.1) on this node (it must lead) and
   * resolves once it is applied here. Rejects with the RaftError itself for the refusals a
   * caller reports as they are (MEMBERSHIP_CHANGE_PENDING, NO_COMMITTED_ENTRY_IN_TERM,
   * INVALID_MEMBERSHIP_CHANGE, LEARNER_NOT_CAUGHT_UP), otherwise as propose() does.
   */
  proposeMembershipChange(change: MembershipChange, timeoutMs: number): Promise<void> {
    if (this.stopped) return Promise.reject(new DriverError('STOPPED', 'the node is stopping'));
    this.throwIfFailed();
    const proposed = this.node.proposeMembershipChange(change);
    if (!proposed.ok) {
      return Promise.reject(
        MEMBERSHIP_REFUSALS.has(proposed.error.code) ? proposed.error : fromRaftError(proposed.error),
      );
    }
    return this.track(proposed.value.index, proposed.value.term, timeoutMs).then(() => undefined);
  }

  /** Waits for the entry at (index, term) to apply here. */
  private track(index: number, term: number, timeoutMs: number): Promise<Result | undefined> {
    this.schedule();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.proposals.delete(index);
        reject(
          new DriverError(
            'TIMEOUT',
            `entry ${index} not applied within ${timeoutMs} ms`,
            this.leader(),
            true,
          ),
        );
      }, timeoutMs);
      this.proposals.set(index, { index, term, resolve, reject, timer });
    });
  }

  /**
   * Resolves with an index at which a linearizable read may be served, once this node has
   * applied it (ReadIndex, dissertation §6.4; from a follower it asks the leader).
   */
  readIndex(timeoutMs: number): Promise<number> {
    if (this.stopped) return Promise.reject(new DriverError('STOPPED', 'the node is stopping'));
    this.throwIfFailed();
    if (this.proposals.size + this.reads.size >= this.options.maxPendingRequests) {
      return Promise.reject(
        new DriverError('UNAVAILABLE', `${this.options.maxPendingRequests} requests already pending`),
      );
    }
    // Read contexts must be unique across the cluster (the leader matches acks by context alone).
    const context = `${this.node.id}/${this.nextReadId++}`;
    const requested = this.node.readIndex(new TextEncoder().encode(context));
    if (!requested.ok) return Promise.reject(fromRaftError(requested.error));
    this.schedule();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.reads.delete(context);
        reject(new DriverError('TIMEOUT', `read index not confirmed within ${timeoutMs} ms`, this.leader()));
      }, timeoutMs);
      this.reads.set(context, {
        context,
        term: this.node.status().term,
        index: undefined,
        resolve,
        reject,
        timer,
      });
    });
  }

  private leader(): string {
    return this.node.status().leader;
  }

  private throwIfFailed(): void {
    if (this.failureCause)
      throw new DriverError('UNAVAILABLE', `raft group failed: ${this.failureCause.message}`);
  }

  /** Coalesces work: many messages and proposals in one event-loop turn make one Ready. */
  private schedule(): void {
    if (this.scheduled || this.stopped || this.failureCause) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.drain();
    });
  }

  private drain(): void {
    if (this.stopped || this.failureCause) return;
    while (this.node.hasReady()) {
      const ready = this.node.ready();
      if (ready.softState) this.onSoftState();
      // A Ready that only moves the commit index has nothing raft needs on disk (the commit
      // index is recovered from the applied index and the leader): skip the synced write.
      const last = ready.entries[ready.entries.length - 1];
      if (last !== undefined) this.appends.record(last.index, Date.now());
      const mustWrite = ready.entries.length > 0 || ready.snapshot !== undefined || ready.mustSync;
      // The messages are handed over before persistence: both start when this task ends, in that
      // order, so a leader's appends are on the wire before its own synced write (which blocks
      // the event loop when RocksDB writes inline). Raft allows a leader to send before its own
      // append is durable; messagesAfterPersist are what must wait. (Persisting first, with the
      // write on a worker thread, measured no faster: the followers' round trip is the longer
      // path.)
      // A leader's commit notices (appends that only carry the new commit index) go with the
      // rest, before it applies: followers apply, and their watchers see the write, alongside
      // the leader rather than after its answer. (Holding them until after the answer was tried:
      // on 2 cores it changed the writer's p50 within noise, and delayed events at followers'
      // watchers by 0.4 ms: bench watch, latency from the write sent, 2.4 against 2.0 ms.)
      if (ready.messages.length > 0) this.options.sender.send(ready.messages);
      const persisted = mustWrite ? this.options.store.persist(ready) : Promise.resolve();
      for (const readState of ready.readStates) {
        const pending = this.reads.get(new TextDecoder().decode(readState.context));
        if (pending) pending.index = readState.index;
      }
      this.inFlightReadies++;
      const durable = this.persisting.then(async () => {
        await persisted;
        this.onDurable(ready);
      });
      this.persisting = durable;
      this.applying = this.applying.then(async () => {
        await durable;
        await this.applyReady(ready);
      });
      // Either chain's first failure fails the group; later links only repeat it.
      durable.catch((error: Error) => this.fail(error));
      this.applying.catch((error: Error) => this.fail(error));
    }
    this.serveReads();
  }

  /** `ready` is durable: send what waited for it and tell raft. Runs in Ready order. */
  private onDurable(ready: Ready): void {
    if (this.failureCause) return;
    if (ready.messagesAfterPersist.length > 0) this.options.sender.send(ready.messagesAfterPersist);
    this.node.advancePersisted(ready);
    this.schedule();
  }

  /** After `ready` is durable and every Ready before it applied: apply it, tell raft. Runs in Ready order. */
  private async applyReady(ready: Ready): Promise<void> {
    if (this.failureCause) return;
    if (ready.snapshot) {
      await this.options.stateMachine.applySnapshot(ready.snapshot);
      this.appliedIndex = Math.max(this.appliedIndex, ready.snapshot.metadata.index);
    }
    const entries = ready.committedEntries.filter((entry) => entry.index > this.appliedIndex);
    if (entries.length > 0) {
      const results = await this.options.stateMachine.apply(entries);
      for (const [i, entry] of entries.entries()) this.settleProposal(entry, results[i]);
      this.appliedIndex = entries[entries.length - 1]!.index;
    }
    this.node.advanceApplied(ready);
    this.inFlightReadies--;
    this.serveReads();
    this.schedule();
  }

  private settleProposal(entry: Entry, result: Result | undefined): void {
    const pending = this.proposals.get(entry.index);
    if (pending === undefined) return;
    this.proposals.delete(entry.index);
    clearTimeout(pending.timer);
    if (entry.term === pending.term) pending.resolve(result);
    // Another entry won this index: ours was never committed and never will be.
    else
      pending.reject(
        new DriverError(
          'NOT_LEADER',
          `entry ${entry.index} was superseded by term ${entry.term}`,
          this.leader(),
        ),
      );
  }

  private serveReads(): void {
    for (const pending of this.reads.values()) {
      if (pending.index !== undefined && pending.index <= this.appliedIndex) {
        this.reads.delete(pending.context);
        clearTimeout(pending.timer);
        pending.resolve(pending.index);
      }
    }
  }

  private onSoftState(): void {
    const status = this.node.status();
    const lostLeadership = this.lastRole === Role.Leader && status.role !== Role.Leader;
    const leaderChanged = status.leader !== this.lastLeader;
    if (leaderChanged && status.leader !== '') {
      this.counts.leaderChanges++;
      this.leaderHistory.push({ at: Date.now(), leader: status.leader, term: status.term });
      if (this.leaderHistory.length > MAX_LEADER_HISTORY) this.leaderHistory.shift();
      // Once per change this node learns of: who leads now, in which term.
      this.options.logger.info('raft.leader_changed', {
        leader: status.leader,
        term: status.term,
        self: status.leader === this.node.id,
      });
    }
    this.lastRole = status.role;
    this.lastLeader = status.leader;
    if (lostLeadership || leaderChanged) {
      // Raft drops pending read requests when the term changes or leadership is lost; fail
      // those now rather than at their timeout.
      for (const pending of this.reads.values()) {
        if (pending.index !== undefined) continue;
        if (pending.term === status.term && status.leader !== '') continue;
        clearTimeout(pending.timer);
        pending.reject(
          new DriverError('NO_LEADER', 'leadership changed before the read was confirmed', status.leader),
        );
        this.reads.delete(pending.context);
      }
    }
    for (const listener of this.stateListeners) listener(status);
  }

  private fail(error: Error): void {
    if (this.failureCause) return;
    this.failureCause = error;
    this.options.logger.error('raft.group_failed', { error: error.message });
    this.failAll(new DriverError('UNAVAILABLE', `raft group failed: ${error.message}`, '', true));
    if (this.ticker !== undefined) clearInterval(this.ticker);
    this.ticker = undefined;
    this.unclock?.();
    this.unclock = undefined;
    for (const listener of this.failureListeners) listener(error);
  }

  private failAll(error: DriverError): void {
    for (const pending of this.proposals.values()) {
      clearTimeout(pending.timer);
      pending.reject(error);
    }
    this.proposals.clear();
    for (const pending of this.reads.values()) {
      clearTimeout(pending.timer);
      pending.reject(error);
    }
    this.reads.clear();
  }

  /** Readies handed to the store and not yet completed (for status and tests). */
  get readiesInFlight(): number {
    return this.inFlightReadies;
  }
}

const MEMBERSHIP_REFUSALS: ReadonlySet<string> = new Set([
  'MEMBERSHIP_CHANGE_PENDING',
  'NO_COMMITTED_ENTRY_IN_TERM',
  'INVALID_MEMBERSHIP_CHANGE',
  'LEARNER_NOT_CAUGHT_UP',
]);

function fromRaftError(error: RaftError): DriverError {
  switch (error.code) {
    case 'NOT_LEADER':
    case 'TRANSFER_IN_PROGRESS':
      return new DriverError('NOT_LEADER', error.message, error.leader);
    case 'NO_LEADER':
      return new DriverError('NO_LEADER', error.message);
    case 'TOO_LARGE':
      return new DriverError('TOO_LARGE', error.message);
    default:
      return new DriverError('UNAVAILABLE', error.message, error.leader);
  }
}
