// The client API on a member: writes proposed on the leader, reads served from this member's replica, its status.

import {
  COMMAND_VERSION,
  type CommandResult,
  type Document,
  encodeCommand,
  type ListOptions,
  type MemberRole,
  type Operation,
  type SessionRef,
} from '../storage/index.js';
import type { LeaderForwarder } from './forwarding.js';
import type { Consistency, KvService, MemberStatus, NodeStatus, ServedRead } from './kv-service.js';
import { DriverError } from './raft-driver.js';
import type { RaftGroup } from './raft-group.js';

/**
 * Fault injection for tests only: a node started with this variable set to a key is killed
 * (SIGKILL) after a client write of that key has applied and before the node answers it.
 */
const FAULT_KILL_BEFORE_ANSWER = process.env.CONCLAVE_FAULT_KILL_BEFORE_ANSWER;

export interface MemberKvInit {
  readonly name: string;
  readonly group: RaftGroup;
  readonly forwarder: LeaderForwarder;
  readonly requestTimeoutMs: number;
  /** Throws the node's refusal when it takes no requests (stopping: UNAVAILABLE; removed: REMOVED). */
  readonly refuseIfStopping: () => void;
  /** Why the node is not ready regardless of raft (removed, stopping), or undefined. */
  readonly notReadyReason: () => string | undefined;
  readonly onFaultInjected: (key: string) => void;
}

/** KvService on a member of one raft group. */
export class MemberKv implements KvService {
  constructor(private readonly init: MemberKvInit) {}

  /** Proposes on the leader: here if this node leads, otherwise forwarded over the mesh. */
  async write(op: Operation, session?: SessionRef): Promise<CommandResult> {
    this.init.refuseIfStopping();
    const result = await this.init.forwarder.run({ type: 'write', op, ...(session ? { session } : {}) }, () =>
      this.proposeHere(op, session),
    );
    if (FAULT_KILL_BEFORE_ANSWER !== undefined && 'key' in op && op.key === FAULT_KILL_BEFORE_ANSWER) {
      this.init.onFaultInjected(op.key);
    }
    return result;
  }

  /** Proposes on this node, which should lead (raft refuses with NOT_LEADER otherwise). */
  async proposeHere(op: Operation, session?: SessionRef): Promise<CommandResult> {
    this.init.refuseIfStopping();
    const command = encodeCommand({
      v: COMMAND_VERSION,
      time: Date.now(),
      ...(session ? { session } : {}),
      op,
    });
    const result = await this.init.group.driver.propose(command, this.init.requestTimeoutMs);
    if (result === undefined) throw new DriverError('UNAVAILABLE', 'the entry applied without a result');
    return result;
  }

  async get(realm: string, key: string, consistency: Consistency): Promise<ServedRead<Document>> {
    await this.readBarrier(consistency);
    return this.withStaleness(await this.state.get(realm, key), consistency);
  }

  async list(
    realm: string,
    options: ListOptions,
    consistency: Consistency,
  ): Promise<ServedRead<{ documents: Document[]; more: boolean }>> {
    await this.readBarrier(consistency);
    return this.withStaleness(await this.state.list(realm, options), consistency);
  }

  async realms(consistency: Consistency): Promise<ServedRead<string[]>> {
    await this.readBarrier(consistency);
    return this.withStaleness(
      { ok: true, revision: this.state.revision, value: this.state.realms() },
      consistency,
    );
  }

  status(): NodeStatus {
    const name = this.init.name;
    const raft = this.init.group.driver.status();
    const { voters, learners } = raft.membership;
    const roles = this.init.group.storage.state.meta.roles ?? {};
    const member = (m: string, role: MemberRole): MemberStatus => {
      const progress = raft.progress?.get(m);
      return progress
        ? {
            name: m,
            role,
            match: progress.match,
            next: progress.next,
            state: progress.state,
            recentActive: progress.recentActive,
          }
        : { name: m, role };
    };
    return {
      name,
      id: name,
      role: voters.includes(name) ? 'voter' : learners.includes(name) ? (roles[name] ?? 'learner') : 'none',
      state: raft.role,
      leader: raft.leader,
      term: raft.term,
      commitIndex: raft.commitIndex,
      appliedIndex: this.state.appliedIndex,
      revision: this.state.revision,
      members: [
        ...voters.map((m) => member(m, 'voter')),
        ...learners.map((m) => member(m, roles[m] ?? 'learner')),
      ],
    };
  }

  ready(): { ready: boolean; reason?: string } {
    const reason = this.init.notReadyReason();
    if (reason !== undefined) return { ready: false, reason };
    const driver = this.init.group.driver;
    const failure = driver.failure;
    if (failure !== undefined) return { ready: false, reason: `raft group failed: ${failure.message}` };
    const raft = driver.status();
    if (raft.leader === '') return { ready: false, reason: 'no known leader' };
    const lag = raft.commitIndex - this.state.appliedIndex;
    if (lag > 1000)
      return { ready: false, reason: `applied state is ${lag} entries behind the commit index` };
    return { ready: true };
  }

  private get state() {
    return this.init.group.storage.state;
  }

  /** Linearizable reads wait for a confirmed read index to be applied (dissertation §6.4). */
  private async readBarrier(consistency: Consistency): Promise<void> {
    this.init.refuseIfStopping();
    if (consistency !== 'linearizable') return;
    const driver = this.init.group.driver;
    await driver.waitForLeader(this.init.requestTimeoutMs);
    await driver.readIndex(this.init.requestTimeoutMs);
  }

  private withStaleness<T extends object>(
    result: T,
    consistency: Consistency,
  ): T & { stale?: { appliedIndex: number; leaderCommitIndex: number } } {
    if (consistency !== 'stale') return result;
    const raft = this.init.group.driver.status();
    return {
      ...result,
      stale: { appliedIndex: this.state.appliedIndex, leaderCommitIndex: raft.commitIndex },
    };
  }
}
